//! The SSH transport against a real OpenSSH sshd on loopback (started by the test, key-only):
//! stdout, stderr and exit status; quoting of hostile arguments; host-key refusal naming the
//! fingerprint; the per-command timeout; more concurrent commands than channels per host.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hekate::executor::ssh::{SshSettings, SshTransport};
use hekate::executor::ExecError;

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

fn start_sshd() -> Sshd {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(&d.join("host"));
    keygen(&d.join("client"));
    std::fs::copy(d.join("client.pub"), d.join("authorized_keys")).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let port = hekate::testkit::free_ports(1).unwrap()[0];
    let cfg = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {h}\nAuthorizedKeysFile {a}\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin yes\nPidFile {p}\nMaxSessions 10\n",
        h = d.join("host").display(),
        a = d.join("authorized_keys").display(),
        p = d.join("sshd.pid").display(),
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
    let key = russh::keys::load_secret_key(s.dir.path().join("client"), None).unwrap();
    SshTransport::new(SshSettings {
        user: std::env::var("USER").unwrap_or_else(|_| "root".into()),
        port: s.port,
        key: Arc::new(key),
        known_hosts,
        sudo: false,
        connect_timeout: Duration::from_secs(5),
        connection_per_step: false,
    })
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_commands_over_real_openssh() {
    let s = start_sshd();
    let t = transport(&s, s.dir.path().join("known_hosts"));
    let o = t
        .run(
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
        .run(
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
        .batch(
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
        .run("127.0.0.1", &args(&["sleep", "5"]), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("SSH command timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(t
        .run("127.0.0.1", &args(&["true"]), Duration::from_secs(10))
        .await
        .unwrap()
        .ok());
    // 20 concurrent commands on one connection, 8 channels at a time (sshd allows 10).
    let t = Arc::new(t);
    let runs: Vec<_> = (0..20)
        .map(|i| {
            let t = t.clone();
            tokio::spawn(async move {
                t.run(
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
        .run("127.0.0.1", &args(&["true"]), Duration::from_secs(10))
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
        .run("127.0.0.1", &args(&["true"]), Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("SHA256:"), "{err}");
    // Nothing listening: unreachable, not a host-key error.
    let port = hekate::testkit::free_ports(1).unwrap()[0];
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
        })
    };
    let err = settings
        .run("127.0.0.1", &args(&["true"]), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::Unreachable { .. }), "{err}");
}
