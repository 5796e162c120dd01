//! The SSH transport against a real OpenSSH sshd on loopback (started by the test, key-only)
//! that runs Hekate's node guard (`deploy/node/hekate-guard`) as its `ForceCommand`, as
//! deploy/README.md installs it: stdout, stderr and exit status; quoting of hostile
//! arguments; host-key refusal naming the fingerprint; the per-command timeout; more
//! concurrent commands than channels per host; the guard refusing stale terms, missing
//! tokens and identities it does not serve; a node without the guard; one dead host never
//! delaying commands to another.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hekate::executor::ssh::{NodeGuard, SshSettings, SshTransport};
use hekate::executor::{ExecError, FenceToken};

const CLUSTER: &str = "0123456789abcdef0123456789abcdef";

fn token(term: u64) -> FenceToken {
    FenceToken {
        cluster: CLUSTER.into(),
        term,
    }
}

fn guard_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/node/hekate-guard")
}

struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen (openssh-client)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn sshd_binary() -> PathBuf {
    let p = PathBuf::from("/usr/sbin/sshd");
    assert!(p.exists(), "openssh-server is installed by deploy/setup.sh");
    p
}

/// sshd with the guard as ForceCommand (`guard_args` after the script), or without (`None`).
fn start_sshd() -> Sshd {
    start_sshd_with(Some(""))
}

fn start_sshd_with(guard_args: Option<&str>) -> Sshd {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(&d.join("host"));
    keygen(&d.join("client"));
    std::fs::copy(d.join("client.pub"), d.join("authorized_keys")).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let port = hekate_testkit::free_ports(1).unwrap()[0];
    let cfg = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {h}\nAuthorizedKeysFile {a}\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin yes\nPidFile {p}\nMaxSessions 10\n{g}",
        h = d.join("host").display(),
        a = d.join("authorized_keys").display(),
        p = d.join("sshd.pid").display(),
        g = match guard_args {
            Some(extra) => format!(
                "AcceptEnv HEKATE_CLUSTER HEKATE_TERM\nForceCommand {} --state {} --log {} {extra}\n",
                guard_script().display(),
                d.join("guard").display(),
                d.join("guard.log").display()
            ),
            None => String::new(),
        },
    );
    std::fs::write(d.join("sshd_config"), cfg).unwrap();
    let child = Command::new(sshd_binary())
        .args(["-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sshd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let host_pub = std::fs::read_to_string(d.join("host.pub")).unwrap();
    std::fs::write(d.join("known_hosts"), format!("[127.0.0.1]:{port} {host_pub}")).unwrap();
    Sshd { child, port, dir }
}

fn transport(s: &Sshd, known_hosts: PathBuf) -> SshTransport {
    transport_with(s, known_hosts, NodeGuard::Require)
}

fn transport_with(s: &Sshd, known_hosts: PathBuf, node_guard: NodeGuard) -> SshTransport {
    let key = russh::keys::load_secret_key(s.dir.path().join("client"), None).unwrap();
    SshTransport::new(SshSettings {
        user: std::env::var("USER").unwrap_or_else(|_| "root".into()),
        port: s.port,
        key: Arc::new(key),
        known_hosts,
        sudo: false,
        connect_timeout: Duration::from_secs(5),
        connection_per_step: false,
        node_guard,
    })
}

/// The guard's log: (term, verdict, command) per line.
fn guard_log(s: &Sshd) -> Vec<(u64, String, String)> {
    std::fs::read_to_string(s.dir.path().join("guard.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(5, ' ');
            let _at = it.next()?;
            let _cluster = it.next()?;
            let term = it.next()?.parse().unwrap_or(0);
            Some((
                term,
                it.next()?.to_string(),
                it.next().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_commands_over_real_openssh() {
    let s = start_sshd();
    let t = transport(&s, s.dir.path().join("known_hosts"));
    let o = t
        .run_as(
            &token(1),
            "127.0.0.1",
            &args(&["sh", "-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(
        (o.stdout.as_str(), o.stderr.as_str(), o.status),
        ("out\n", "err\n", Some(3))
    );
    // Hostile arguments arrive as single arguments, never as shell syntax.
    let marker = s.dir.path().join("pwned");
    let evil = format!("a'b; touch {} $(id) `id` \"q\"", marker.display());
    let o = t
        .run_as(
            &token(1),
            "127.0.0.1",
            &args(&["printf", "%s", &evil]),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(o.stdout, evil);
    assert!(!marker.exists());
    // A batch stops at the first failure and reports its stderr.
    let err = t
        .batch_as(
            &token(1),
            "127.0.0.1",
            &[
                args(&["true"]),
                args(&["sh", "-c", "echo broken >&2; exit 1"]),
                args(&["touch", marker.to_str().unwrap()]),
            ],
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
    assert_eq!(err, ExecError::Failed("broken".into()));
    assert!(!marker.exists());
    // Timeout, and the connection survives it.
    let started = Instant::now();
    let err = t
        .run_as(
            &token(1),
            "127.0.0.1",
            &args(&["sleep", "5"]),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("SSH command timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(t
        .run_as(&token(1), "127.0.0.1", &args(&["true"]), Duration::from_secs(10))
        .await
        .unwrap()
        .ok());
    // 20 concurrent commands on one connection, 8 channels at a time (sshd allows 10).
    let t = Arc::new(t);
    let runs: Vec<_> = (0..20)
        .map(|i| {
            let t = t.clone();
            tokio::spawn(async move {
                t.run_as(
                    &token(1),
                    "127.0.0.1",
                    &args(&["sh", "-c", &format!("sleep 0.2; echo {i}")]),
                    Duration::from_secs(20),
                )
                .await
            })
        })
        .collect();
    for (i, r) in runs.into_iter().enumerate() {
        assert_eq!(r.await.unwrap().unwrap().stdout, format!("{i}\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_or_changed_host_keys_are_refused() {
    let s = start_sshd();
    let empty = s.dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let err = transport(&s, empty)
        .run_as(&token(1), "127.0.0.1", &args(&["true"]), Duration::from_secs(10))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("127.0.0.1") && msg.contains("SHA256:") && msg.contains("is not in"),
        "{msg}"
    );
    // A different key recorded for the host: refused as changed.
    keygen(&s.dir.path().join("other"));
    let other = std::fs::read_to_string(s.dir.path().join("other.pub")).unwrap();
    let wrong = s.dir.path().join("wrong_known_hosts");
    std::fs::write(&wrong, format!("[127.0.0.1]:{} {other}", s.port)).unwrap();
    let err = transport(&s, wrong)
        .run_as(&token(1), "127.0.0.1", &args(&["true"]), Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("SHA256:"), "{err}");
    // Nothing listening: unreachable, not a host-key error.
    let port = hekate_testkit::free_ports(1).unwrap()[0];
    let mut settings = transport(&s, s.dir.path().join("known_hosts"));
    settings = {
        let _ = &settings;
        let key = russh::keys::load_secret_key(s.dir.path().join("client"), None).unwrap();
        SshTransport::new(SshSettings {
            user: "root".into(),
            port,
            key: Arc::new(key),
            known_hosts: s.dir.path().join("known_hosts"),
            sudo: false,
            connect_timeout: Duration::from_secs(2),
            connection_per_step: false,
            node_guard: NodeGuard::Require,
        })
    };
    let err = settings
        .run_as(&token(1), "127.0.0.1", &args(&["true"]), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::Unreachable { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_refuses_stale_terms_and_runs_current_ones() {
    let s = start_sshd();
    let t = transport(&s, s.dir.path().join("known_hosts"));
    let d = s.dir.path();
    let touch = |name: &str| args(&["touch", d.join(name).to_str().unwrap()]);
    let ten = Duration::from_secs(10);
    t.run_as(&token(5), "127.0.0.1", &touch("t5"), ten).await.unwrap();
    t.run_as(&token(7), "127.0.0.1", &touch("t7"), ten).await.unwrap();
    // Term 6 after term 7: refused by the node, as fenced, and not executed.
    let err = t
        .run_as(&token(6), "127.0.0.1", &touch("t6"), ten)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ExecError::Fenced(m) if m.contains("term 6") && m.contains("older than term 7")),
        "{err}"
    );
    assert!(d.join("t5").exists() && d.join("t7").exists() && !d.join("t6").exists());
    // The term record is durable: a fresh transport (a restarted leader of term 6) is refused
    // at its claim.
    let fresh = transport(&s, d.join("known_hosts"));
    let err = fresh
        .run_as(&token(6), "127.0.0.1", &touch("t6"), ten)
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::Fenced(_)), "{err}");
    assert!(!d.join("t6").exists());
    assert_eq!(
        std::fs::read_to_string(d.join("guard").join(format!("{CLUSTER}.term"))).unwrap(),
        "7\n"
    );
    // Another cluster's identity has its own record (clusters may share nodes).
    let other = FenceToken {
        cluster: "fedcba9876543210fedcba9876543210".into(),
        term: 1,
    };
    t.run_as(&other, "127.0.0.1", &touch("o1"), ten).await.unwrap();
    assert!(d.join("o1").exists());
    // The log: every command with its verdict; claims first in each term.
    let log = guard_log(&s);
    let refused: Vec<_> = log.iter().filter(|r| r.1 == "refused").collect();
    assert_eq!(refused.len(), 2, "{log:?}");
    assert!(refused.iter().all(|r| r.0 == 6), "{log:?}");
    assert!(log
        .iter()
        .any(|r| r.0 == 7 && r.1 == "ok" && r.2 == "hekate-guard claim"));

    // No token (a plain ssh, as an operator's login would be): refused, nothing runs.
    let out = Command::new("ssh")
        .args([
            "-i",
            d.join("client").to_str().unwrap(),
            "-p",
            &s.port.to_string(),
        ])
        .args([
            "-o",
            &format!("UserKnownHostsFile={}", d.join("known_hosts").display()),
        ])
        .args([
            "-o",
            "BatchMode=yes",
            "127.0.0.1",
            "touch",
            d.join("plain").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(87), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("hekate-guard: refused: no fencing token"));
    assert!(!d.join("plain").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_term_waits_for_the_older_terms_commands_to_end() {
    let s = start_sshd();
    let old = Arc::new(transport(&s, s.dir.path().join("known_hosts")));
    let new = transport(&s, s.dir.path().join("known_hosts"));
    let d = s.dir.path().to_path_buf();
    let started = d.join("started");
    let ended = d.join("ended");
    let slow = args(&[
        "sh",
        "-c",
        &format!("touch {}; sleep 1; touch {}", started.display(), ended.display()),
    ]);
    let o = old.clone();
    let running = tokio::spawn(async move {
        o.run_as(&token(3), "127.0.0.1", &slow, Duration::from_secs(20))
            .await
    });
    let st = started.clone();
    hekate_testkit::wait_for(Duration::from_secs(20), "term 3's command", || {
        let st = st.clone();
        async move { st.exists().then_some(()) }
    })
    .await
    .unwrap();
    // Term 4's first command reaches the node while term 3's is still running: it waits.
    new.run_as(&token(4), "127.0.0.1", &args(&["true"]), Duration::from_secs(20))
        .await
        .unwrap();
    assert!(ended.exists(), "term 4 ran before term 3's command ended");
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_guard_is_refused_unless_warn() {
    let s = start_sshd_with(None);
    let kh = s.dir.path().join("known_hosts");
    let marker = s.dir.path().join("ran");
    let touch = args(&["touch", marker.to_str().unwrap()]);
    let err = transport(&s, kh.clone())
        .run_as(&token(1), "127.0.0.1", &touch, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not run hekate-guard"), "{err}");
    assert!(!marker.exists());
    transport_with(&s, kh, NodeGuard::Warn)
        .run_as(&token(1), "127.0.0.1", &touch, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(marker.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_refuses_identities_it_does_not_serve() {
    let s = start_sshd_with(Some(&format!("--clusters {CLUSTER}")));
    let t = transport(&s, s.dir.path().join("known_hosts"));
    let other = FenceToken {
        cluster: "fedcba9876543210fedcba9876543210".into(),
        term: 9,
    };
    let marker = s.dir.path().join("ran");
    let err = t
        .run_as(
            &other,
            "127.0.0.1",
            &args(&["touch", marker.to_str().unwrap()]),
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ExecError::Failed(m) if m.contains("is not served by this node")),
        "{err}"
    );
    assert!(!marker.exists());
    t.run_as(&token(1), "127.0.0.1", &args(&["true"]), Duration::from_secs(10))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_host_does_not_delay_commands_to_another() {
    let s = start_sshd();
    // 127.0.0.2 on sshd's port: accepts TCP and never speaks SSH (a hung node), so every
    // connect attempt to it runs into the connect timeout.
    let hung = std::net::TcpListener::bind(("127.0.0.2", s.port)).unwrap();
    let (accepted_tx, accepted) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in hung.incoming().take(3) {
            conns.push(c);
            let _ = accepted_tx.send(());
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let t = Arc::new(transport(&s, s.dir.path().join("known_hosts")));
    let t2 = t.clone();
    let dead = tokio::spawn(async move {
        t2.run_as(&token(1), "127.0.0.2", &args(&["true"]), Duration::from_secs(60))
            .await
    });
    // While the dead host's connects (with retries) run, the live host answers.
    tokio::task::spawn_blocking(move || accepted.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the connect to the hung host started");
    let live = t
        .run_as(
            &token(1),
            "127.0.0.1",
            &args(&["echo", "alive"]),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(live.stdout, "alive\n");
    assert!(
        !dead.is_finished(),
        "the dead host's connects should still be running"
    );
    let err = dead.await.unwrap().unwrap_err();
    assert!(matches!(err, ExecError::Unreachable { .. }), "{err}");
}
