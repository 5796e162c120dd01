//! The SSH transport against a real OpenSSH sshd on loopback (started by the test, key-only)
//! that runs Hekate's node guard (`deploy/node/hekate-guard`) as its `ForceCommand`, as
//! deploy/README.md installs it: stdout, stderr and exit status; quoting of hostile
//! arguments; host-key refusal naming the fingerprint; the per-command timeout; more
//! concurrent commands than channels per host; the guard refusing stale terms, missing
//! tokens and identities it does not serve; a node without the guard; one dead host never
//! delaying commands to another. And the SSH executor's gluster-block verbs on the testbed's
//! real nodes (`tests/testbed/testbed.sh up`; skipped without it unless
//! `HEKATE_REQUIRE_TESTBED=1`), through a real fence of a replica in this process.

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

/// Runs `cmd` with bash inside testbed node `node`; (success, stdout + stderr).
fn on_node(node: &str, cmd: &str) -> (bool, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testbed/testbed.sh");
    let out = Command::new("bash")
        .args([script, "exec", node, "bash", "-c", cmd])
        .output()
        .expect("run testbed.sh exec");
    let mut s = String::from_utf8_lossy(&out.stdout).to_string();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

/// The block-hosting volume as a client sees it, through a FUSE mount on `node` made for the
/// look: every `block-store` file as (GBID, size, bytes allocated), and the `block-meta`
/// entries.
fn block_files(node: &str, volume: &str) -> (Vec<(String, u64, u64)>, Vec<String>) {
    let (ok, out) = on_node(
        node,
        &format!(
            "set -e; d=$(mktemp -d /run/blocktest.XXXXXX); mount -t glusterfs localhost:/{volume} $d; \
             trap 'umount $d; rmdir $d' EXIT; \
             for f in $d/block-store/*; do [ -e \"$f\" ] && stat -c 'store %n %s %b' \"$f\"; done; \
             ls $d/block-meta | sed 's/^/meta /'"
        ),
    );
    assert!(ok, "{out}");
    let mut store = Vec::new();
    let mut meta = Vec::new();
    for l in out.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.as_slice() {
            ["store", path, size, blocks] => store.push((
                path.rsplit('/').next().unwrap().to_string(),
                size.parse().unwrap(),
                blocks.parse::<u64>().unwrap() * 512,
            )),
            ["meta", name] => meta.push(name.to_string()),
            _ => {}
        }
    }
    store.sort();
    meta.sort();
    (store, meta)
}

const GIB: u64 = 1 << 30;

/// gluster-block through the SSH executor on the testbed: a replica-3 block-hosting volume
/// made with the executor's own verbs (devices, bricks, volume with Heketi's
/// `group gluster-block`), two block volumes (one with auth, preallocated; one sparse), their
/// storage files checked through a FUSE mount (sizes, allocation), info, a resize, the list,
/// deletes (twice: the second finds nothing and is done), then everything torn down and
/// nothing left. Every verb goes through the fence of a real (one-replica) Raft group, and
/// the nodes' guard checks its token, as in production.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gluster_block_verbs_on_the_testbed() {
    use hekate::executor::commands::CmdConfig;
    use hekate::executor::sshexec::SshExecutor;
    use hekate::executor::{BlockSpec, BrickSpec, Executor, VolumeSpec};

    let env = match hekate_testkit::TestbedEnv::read() {
        Ok(e) => e,
        Err(e) => {
            if std::env::var("HEKATE_REQUIRE_TESTBED").as_deref() == Ok("1") {
                panic!("HEKATE_REQUIRE_TESTBED=1 but {e:#}");
            }
            eprintln!("{e:#}: this test checks nothing");
            return;
        }
    };
    assert!(
        env.nodes.len() >= 3,
        "the testbed has {} nodes, 3 needed",
        env.nodes.len()
    );
    let nodes: Vec<(String, String, String)> = env.nodes[..3]
        .iter()
        .map(|(name, ip, disks)| (name.clone(), ip.clone(), disks[0].clone()))
        .collect();
    let ip = |i: usize| nodes[i].1.as_str();

    let replica = hekate_testkit::InProc::with(hekate_testkit::InProcSpec {
        runner: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let key = russh::keys::load_secret_key(&env.key, None).unwrap();
    let ssh = SshExecutor::new(
        SshTransport::new(SshSettings {
            user: "root".into(),
            port: 22,
            key: Arc::new(key),
            known_hosts: env.known_hosts.clone().into(),
            sudo: false,
            connect_timeout: Duration::from_secs(10),
            connection_per_step: false,
            node_guard: NodeGuard::Require,
        }),
        CmdConfig::default(),
    );
    let x = hekate::ops::fence::Fenced::acquire(Arc::new(ssh), replica.replica.clone())
        .await
        .unwrap();

    // The trusted pool, as far as it is not there yet (left as found at the end).
    let peers_before = x.inventory(ip(0)).await.unwrap().peers;
    for i in 1..3 {
        if !peers_before.contains(ip(i)) {
            x.peer_probe(ip(0), ip(i)).await.unwrap();
        }
    }
    // One 4 GiB brick per node, on its first disk.
    let mut bricks = Vec::new();
    for (i, (_, host, disk)) in nodes.iter().enumerate() {
        let vg = format!("vg_{}", hekate::ids::new_id());
        x.device_setup(host, disk, &vg, false).await.unwrap();
        let id = hekate::ids::new_id();
        let b = BrickSpec {
            id: id.clone(),
            vg: vg.clone(),
            thin_pool: format!("tp_{id}"),
            lv_name: None,
            mount: None,
            tp_size: 4 * 1024 * 1024,
            meta_size: 16 * 1024,
            size: 4 * 1024 * 1024,
            gid: 0,
            arbiter: false,
        };
        x.brick_create(host, &b).await.unwrap();
        bricks.push((i, host.clone(), disk.clone(), b));
    }
    let vol_id = hekate::ids::new_id();
    let bhv = format!("vol_{vol_id}");
    let vol = VolumeSpec {
        id: vol_id.clone(),
        name: bhv.clone(),
        bricks: bricks
            .iter()
            .map(|(_, h, _, b)| format!("{h}:{}", b.path()))
            .collect(),
        replica: Some(3),
        arbiter: false,
        disperse: None,
        options: vec!["group gluster-block".into(), format!("user.heketi.id {vol_id}")],
    };
    x.volume_create(ip(0), &vol).await.unwrap();
    assert!(x.block_list(ip(0), &bhv).await.unwrap().is_empty());

    let hosts: Vec<String> = (0..3).map(|i| ip(i).to_string()).collect();
    let secured = BlockSpec {
        bhv: bhv.clone(),
        name: "blk_auth".into(),
        ha: 3,
        auth: true,
        prealloc: true,
        hosts: hosts.clone(),
        size_gib: 1,
    };
    let plain = BlockSpec {
        name: "blk_plain".into(),
        ha: 2,
        auth: false,
        prealloc: false,
        size_gib: 2,
        ..secured.clone()
    };
    let t1 = x.block_create(ip(0), &secured).await.unwrap();
    let gbid1 = t1
        .iqn
        .strip_prefix("iqn.2016-12.org.gluster-block:")
        .unwrap()
        .to_string();
    assert_eq!(t1.username, gbid1);
    assert_eq!(t1.password.len(), 36, "{t1:?}");
    assert_eq!(
        (t1.hosts.clone(), t1.size_gib, t1.usable_gib),
        (hosts.clone(), 1, 1)
    );
    // Created from another node: gluster-block state lives in the volume, not on a node.
    let t2 = x.block_create(ip(1), &plain).await.unwrap();
    let gbid2 = t2
        .iqn
        .strip_prefix("iqn.2016-12.org.gluster-block:")
        .unwrap()
        .to_string();
    assert_eq!((t2.username.as_str(), t2.password.as_str()), ("", ""));
    assert_eq!(t2.hosts, hosts[..2].to_vec());
    // The same name again: refused with gluster-block's message.
    let e = x.block_create(ip(2), &plain).await.unwrap_err().to_string();
    assert_eq!(
        e,
        "Failed to create block volume: BLOCK with name: 'blk_plain' already EXIST"
    );

    let (store, meta) = block_files(&nodes[2].0, &bhv);
    let mut want = vec![gbid1.clone(), gbid2.clone()];
    want.sort();
    assert_eq!(store.iter().map(|f| f.0.clone()).collect::<Vec<_>>(), want);
    assert_eq!(meta, ["blk_auth", "blk_plain", "meta.lock"]);
    let file = |g: &str| store.iter().find(|f| f.0 == g).unwrap().clone();
    let (_, size1, alloc1) = file(&gbid1);
    assert_eq!(size1, GIB);
    assert!(alloc1 >= GIB, "prealloc full: {alloc1} bytes allocated");
    let (_, size2, alloc2) = file(&gbid2);
    assert_eq!(size2, 2 * GIB);
    assert!(alloc2 < GIB / 16, "prealloc no: {alloc2} bytes allocated");

    // info reads the target back (the password too), from any node.
    assert_eq!(
        x.block_info(ip(2), &bhv, "blk_auth").await.unwrap(),
        Some(t1.clone())
    );
    let i2 = x.block_info(ip(0), &bhv, "blk_plain").await.unwrap().unwrap();
    assert_eq!(i2, t2);
    assert_eq!(x.block_info(ip(0), &bhv, "blk_none").await.unwrap(), None);

    // Grow the sparse one to 3 GiB; a re-run (same size) is done, a shrink refused.
    x.block_modify(ip(0), &bhv, "blk_plain", 3).await.unwrap();
    x.block_modify(ip(1), &bhv, "blk_plain", 3).await.unwrap();
    let e = x
        .block_modify(ip(0), &bhv, "blk_plain", 1)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("Failed to expand block volume: Shrink size ?"),
        "{e}"
    );
    let i2 = x.block_info(ip(2), &bhv, "blk_plain").await.unwrap().unwrap();
    assert_eq!((i2.size_gib, i2.usable_gib), (3, 3));
    assert_eq!(file_size(&block_files(&nodes[0].0, &bhv).0, &gbid2), 3 * GIB);

    let mut names = x.block_list(ip(1), &bhv).await.unwrap();
    names.sort();
    assert_eq!(names, ["blk_auth", "blk_plain"]);

    // Deletes; a second delete finds nothing and is done.
    x.block_delete(ip(0), &bhv, "blk_auth").await.unwrap();
    x.block_delete(ip(1), &bhv, "blk_plain").await.unwrap();
    x.block_delete(ip(2), &bhv, "blk_plain").await.unwrap();
    assert!(x.block_list(ip(0), &bhv).await.unwrap().is_empty());
    assert_eq!(x.block_info(ip(0), &bhv, "blk_auth").await.unwrap(), None);
    let (store, meta) = block_files(&nodes[1].0, &bhv);
    assert!(store.is_empty(), "{store:?}");
    assert_eq!(meta, ["meta.lock"]);

    // The shim's FUSE mounts are gone: the volume stops and goes; a delete in a volume that
    // is gone is done too.
    x.volume_destroy(ip(0), &bhv, &vol_id).await.unwrap();
    x.block_delete(ip(0), &bhv, "blk_auth").await.unwrap();
    let e = x.block_list(ip(0), &bhv).await.unwrap_err().to_string();
    assert!(e.contains("does not exist"), "{e}");
    for (_, host, disk, b) in &bricks {
        assert!(x.brick_destroy(host, b).await.unwrap());
        x.device_teardown(host, disk, &b.vg).await.unwrap();
    }
    for i in 1..3 {
        if !peers_before.contains(ip(i)) {
            x.peer_detach(ip(0), ip(i)).await.unwrap();
        }
    }
    for (name, ..) in &nodes {
        let (_, left) = on_node(
            name,
            "lvm lvs --noheadings -o lv_name 2>/dev/null; grep -c heketi /etc/fstab; \
             grep -cE 'fuse.glusterfs|/var/lib/heketi/mounts' /proc/mounts; gluster --mode=script volume list",
        );
        assert_eq!(
            left.split_whitespace().collect::<Vec<_>>(),
            ["0", "0", "No", "volumes", "present", "in", "cluster"],
            "{name}: {left}"
        );
    }
    assert!(!x.tripped());
    replica.shutdown().await;
}

fn file_size(store: &[(String, u64, u64)], gbid: &str) -> u64 {
    store.iter().find(|f| f.0 == gbid).map(|f| f.1).unwrap()
}
