//! `hekate dev`: a local cluster of N replicas as separate OS processes on 127.0.0.1, with the
//! mock executor (or, with `--testbed` / `--glusterfs FILE`, the SSH executor on real nodes)
//! and auth on. Each replica's config is written to `D/replica-<id>/heketi.json`,
//! so a killed replica restarts alone with `hekate serve --config ...`; a second `hekate dev`
//! on the same D resumes the same cluster (same ids, ports, keys and data). With the mock,
//! the replicas share simulated nodes: one `hekate mock-nodes` process ([`MockNodes`], socket
//! `D/mock-nodes.sock`, model `D/mock-nodes.json`, log `D/mock-nodes.log`), started first and
//! stopped last.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

mod testbed;
pub use testbed::TestbedEnv;

#[derive(Debug, Clone)]
pub struct DevOptions {
    pub replicas: u64,
    pub base_port: u16,
    pub data_dir: PathBuf,
    pub admin_key: Option<String>,
    pub user_key: Option<String>,
    /// Replaces the `glusterfs` section (executor and its settings); None: the mock
    /// executor with a node model shared by the replicas.
    pub glusterfs: Option<serde_json::Value>,
    /// Run the production transport: HTTPS on the API and mutual TLS between replicas (on
    /// their own peer ports, `base_port + 100 + i`), with a CA and certificates generated
    /// in `D/tls` (files 0600).
    pub tls: bool,
    /// How often the mock nodes are written to `D/mock-nodes.json` when they changed
    /// (`hekate mock-nodes --persist-ms`; they are written at exit too).
    pub mock_persist_ms: u64,
}

/// Writes a file only its owner may read or write (0600): generated configs carry the JWT
/// keys and the cluster secret. An existing file is narrowed to 0600 before it is rewritten,
/// and the contents are written through that same handle.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.set_len(0)?;
    f.write_all(contents)?;
    f.sync_all()
}

fn random_key() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn config_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("replica-{id}")).join("heketi.json")
}

/// Writes (or reuses) the replicas' configs. Returns (admin key, user key).
pub fn prepare(opts: &DevOptions) -> anyhow::Result<(String, String)> {
    if opts.replicas == 0 || opts.replicas > 9 {
        bail!("--replicas must be between 1 and 9");
    }
    if u32::from(opts.base_port) + opts.replicas as u32 > 65535 {
        bail!(
            "--base-port {} leaves no room for {} replicas",
            opts.base_port,
            opts.replicas
        );
    }
    let existing = config_path(&opts.data_dir, 1);
    let previous: Option<serde_json::Value> = match std::fs::read_to_string(&existing) {
        Ok(t) => Some(
            serde_json::from_str(&t).with_context(|| format!("{} is not valid JSON", existing.display()))?,
        ),
        Err(_) => None,
    };
    let prev_str = |ptr: &str| {
        previous
            .as_ref()
            .and_then(|v| v.pointer(ptr))
            .and_then(|v| v.as_str())
            .map(String::from)
    };
    let keys = Keys {
        admin: opts
            .admin_key
            .clone()
            .or_else(|| prev_str("/jwt/admin/key"))
            .unwrap_or_else(random_key),
        user: opts
            .user_key
            .clone()
            .or_else(|| prev_str("/jwt/user/key"))
            .unwrap_or_else(random_key),
        secret: prev_str("/raft/secret").unwrap_or_else(|| format!("{}{}", random_key(), random_key())),
    };
    if let Some(prev) = &previous {
        check_resumable(prev, opts)?;
    }
    let pki = generate_pki(opts)?;
    for id in 1..=opts.replicas {
        let dir = opts.data_dir.join(format!("replica-{id}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let cfg = replica_config(opts, id, &keys, pki.as_ref())?;
        let path = config_path(&opts.data_dir, id);
        write_private(&path, serde_json::to_string_pretty(&cfg)?.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok((keys.admin, keys.user))
}

/// The keys every replica's config carries: the JWT keys and the cluster secret.
struct Keys {
    admin: String,
    user: String,
    secret: String,
}

/// A data dir resumes only the cluster it holds: the same number of replicas, and the same
/// executor (a mock cluster's topology names simulated hosts, which real nodes do not answer
/// for, and the other way round).
fn check_resumable(prev: &serde_json::Value, opts: &DevOptions) -> anyhow::Result<()> {
    let n = prev
        .pointer("/raft/peers")
        .and_then(|p| p.as_array())
        .map(|a| a.len() as u64);
    if n != Some(opts.replicas) {
        bail!(
            "{} holds a cluster of {:?} replicas; use the same --replicas or another --data-dir",
            opts.data_dir.display(),
            n
        );
    }
    let (had, wants) = (executor_of(&prev["glusterfs"]), executor_of_opts(opts));
    if had != wants {
        bail!(
            "{} holds a dev cluster with the {had} executor, whose topology is not the {wants} \
             executor's nodes; use another --data-dir (--testbed defaults to .hekate-dev-testbed) \
             or remove {} to start over",
            opts.data_dir.display(),
            opts.data_dir.display()
        );
    }
    Ok(())
}

/// With `--tls`: a CA and one certificate per replica in `D/tls` (peer ports at base + 100).
fn generate_pki(opts: &DevOptions) -> anyhow::Result<Option<crate::tls::GeneratedPki>> {
    if !opts.tls {
        return Ok(None);
    }
    if u32::from(opts.base_port) + 100 + opts.replicas as u32 > 65535 {
        bail!(
            "--base-port {} leaves no room for peer ports (base + 100)",
            opts.base_port
        );
    }
    let names: Vec<String> = (1..=opts.replicas).map(|i| format!("replica-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    Ok(Some(crate::tls::generate(
        &opts.data_dir.join("tls"),
        &names,
        &["127.0.0.1".into(), "localhost".into()],
    )?))
}

/// Replica `id`'s `heketi.json` (its directory exists).
fn replica_config(
    opts: &DevOptions,
    id: u64,
    keys: &Keys,
    pki: Option<&crate::tls::GeneratedPki>,
) -> anyhow::Result<serde_json::Value> {
    let peers: Vec<_> = (1..=opts.replicas)
        .map(|i| {
            let mut p = json!({"id": i, "api": format!("127.0.0.1:{}", port(opts, i))});
            if opts.tls {
                p["peer"] = json!(format!("127.0.0.1:{}", port(opts, i) + 100));
            }
            p
        })
        .collect();
    let dir = opts.data_dir.join(format!("replica-{id}"));
    let data = std::fs::canonicalize(&dir)?.join("data");
    let mut cfg = json!({
        "_comment": "written by `hekate dev`; restart this replica alone with `hekate serve --config <this file>`",
        "port": port(opts, id).to_string(),
        "jwt": {"admin": {"key": keys.admin}, "user": {"key": keys.user}},
        "glusterfs": match &opts.glusterfs {
            Some(g) => g.clone(),
            // Block volumes work out of the box on the simulated nodes: a 100 GiB
            // block-hosting volume is made for the first one (Heketi's default is off and
            // 1024 GiB, more than the simulated devices hold).
            None => json!({
                "executor": "mock", "loglevel": "info",
                "auto_create_block_hosting_volume": true, "block_hosting_volume_size": 100,
                "mockexec": {"nodes_url": MockNodes::url(&std::fs::canonicalize(&opts.data_dir)?)}
            }),
        },
        "raft": {
            "id": id,
            "data_dir": data.display().to_string(),
            "secret": keys.secret,
            "api_listen": format!("127.0.0.1:{}", port(opts, id)),
            "peers": peers,
        }
    });
    if let Some(pki) = pki {
        let abs =
            |p: &Path| -> anyhow::Result<String> { Ok(std::fs::canonicalize(p)?.display().to_string()) };
        let (cert, key) = pki
            .cert(&format!("replica-{id}"))
            .context("generated certificate missing")?;
        cfg["enable_tls"] = json!(true);
        cfg["cert_file"] = json!(abs(cert)?);
        cfg["key_file"] = json!(abs(key)?);
        cfg["raft"]["tls"] = json!({
            "ca_file": abs(&pki.ca_file)?, "cert_file": abs(cert)?, "key_file": abs(key)?,
        });
    }
    Ok(cfg)
}

/// The executor a `glusterfs` section selects (an empty one is `ssh`, as in `config`).
fn executor_of(glusterfs: &serde_json::Value) -> String {
    match glusterfs["executor"].as_str() {
        None | Some("") => "ssh".into(),
        Some(e) => e.into(),
    }
}

fn executor_of_opts(opts: &DevOptions) -> String {
    opts.glusterfs.as_ref().map_or("mock".into(), executor_of)
}

fn port(opts: &DevOptions, id: u64) -> u16 {
    opts.base_port + (id - 1) as u16
}

/// Runs the cluster in the foreground until SIGINT/SIGTERM, then stops every replica.
pub async fn run(opts: DevOptions) -> anyhow::Result<()> {
    let (admin, user) = prepare(&opts)?;
    let exe = std::env::current_exe().context("cannot find the hekate binary")?;
    let mut nodes = match opts.glusterfs {
        None => Some(MockNodes::start(
            &exe,
            &std::fs::canonicalize(&opts.data_dir)?,
            opts.mock_persist_ms,
            Some(processes(&opts)),
        )?),
        Some(_) => None,
    };
    let mut children = start_replicas(&opts, &exe)?;
    let scheme = if opts.tls { "https" } else { "http" };
    let servers: Vec<String> = (1..=opts.replicas)
        .map(|i| format!("{scheme}://127.0.0.1:{}", port(&opts, i)))
        .collect();
    let ca = opts.data_dir.join("tls").join("ca.pem");
    let mut http = reqwest::Client::builder();
    if opts.tls {
        let pem = std::fs::read(&ca).with_context(|| format!("cannot read {}", ca.display()))?;
        http = http.tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem)?);
    }
    let ready = wait_ready(&http.build()?, &servers, Duration::from_secs(60)).await;
    print_summary(&opts, &children, &servers, nodes.as_ref(), ready);
    println!(
        "\nexport HEKETI_CLI_SERVER={} HEKETI_CLI_USER=admin HEKETI_CLI_KEY={admin}",
        servers[0]
    );
    if opts.tls {
        let ca = std::fs::canonicalize(&ca)?;
        println!(
            "# cluster CA: {0}  (hekate-cli -C {0} ..., curl --cacert {0} ...)",
            ca.display()
        );
    }
    println!("# user key (iss=user): {user}");
    println!("# all servers: {}", servers.join(","));
    println!("Ctrl-C stops all replicas.");
    crate::server::shutdown_signal().await;
    println!("stopping replicas...");
    stop_replicas(&mut children).await;
    // Last: the replicas' final verbs reach the nodes, and the nodes are written.
    if let Some(n) = &mut nodes {
        n.stop();
    }
    Ok(())
}

/// The dev cluster's processes share one machine: each gets `cores / processes` async
/// worker threads (at least one) instead of tokio's default of one per core, unless the
/// operator set `TOKIO_WORKER_THREADS`. On 2 cores three replicas with two workers each
/// woke each other's threads for nothing: one each cut the cluster's CPU per create by
/// about 10 % (docs/decisions.md, "One async worker per dev process on a small machine").
/// A replica started alone (`hekate serve`) keeps one worker per core.
fn share_cores(cmd: &mut Command, processes: u64) {
    if std::env::var_os("TOKIO_WORKER_THREADS").is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cmd.env("TOKIO_WORKER_THREADS", workers_each(cores, processes).to_string());
}

/// The processes of the dev cluster that do the work: its replicas and, with the mock
/// executor, the simulated nodes.
fn processes(opts: &DevOptions) -> u64 {
    opts.replicas + u64::from(opts.glusterfs.is_none())
}

/// Worker threads for each of `processes` processes on `cores` cores.
fn workers_each(cores: usize, processes: u64) -> usize {
    (cores / processes.max(1) as usize).max(1)
}

/// Starts `hekate serve` for every replica, each logging to `replica-<id>/hekate.log`.
fn start_replicas(opts: &DevOptions, exe: &Path) -> anyhow::Result<Vec<(u64, Child)>> {
    let mut children = Vec::new();
    for id in 1..=opts.replicas {
        let dir = opts.data_dir.join(format!("replica-{id}"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("hekate.log"))?;
        let mut cmd = Command::new(exe);
        share_cores(&mut cmd, processes(opts));
        let child = cmd
            .arg("serve")
            .arg("--config")
            .arg(config_path(&opts.data_dir, id))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("cannot start replica {id}"))?;
        children.push((id, child));
    }
    Ok(children)
}

/// What runs where: replicas (pid, API, config), the mock nodes, readiness.
fn print_summary(
    opts: &DevOptions,
    children: &[(u64, Child)],
    servers: &[String],
    nodes: Option<&MockNodes>,
    ready: bool,
) {
    let executor = opts
        .glusterfs
        .as_ref()
        .and_then(|g| g["executor"].as_str())
        .unwrap_or("mock")
        .to_string();
    println!(
        "Hekate dev cluster: {} replicas, {executor} executor, data in {}",
        opts.replicas,
        opts.data_dir.display()
    );
    for (id, c) in children {
        println!(
            "  replica {id}: pid {} api {}  config {}",
            c.id(),
            servers[(*id - 1) as usize],
            config_path(&opts.data_dir, *id).display()
        );
    }
    if let Some(n) = nodes {
        println!("  mock nodes: pid {} {}", n.pid(), n.url);
    }
    if !ready {
        println!("warning: no replica reported ready within 60 s; see the hekate.log files");
    }
}

/// SIGTERM to every replica, then up to 10 s for them to exit (SIGKILL after).
async fn stop_replicas(children: &mut [(u64, Child)]) {
    for (_, c) in children.iter() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for (id, c) in children.iter_mut() {
        loop {
            match c.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
                _ => {
                    eprintln!("replica {id} did not stop; killing it");
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
            }
        }
    }
}

/// How often `hekate dev` has its mock nodes written when they changed (ms): each write is
/// the whole model (about 1 KiB per volume), so at 10,000 volumes every second would add
/// 10 MiB/s of disk writes beside the replicas' fsyncs; a mock-nodes killed with SIGKILL
/// loses at most this much (a SIGTERM writes everything).
pub const MOCK_PERSIST_MS: u64 = 5000;

/// A `hekate mock-nodes` process serving the simulated nodes of the cluster in `dir`
/// (`hekate dev`, and the test clusters of the `hekate-testkit` crate).
pub struct MockNodes {
    child: Option<Child>,
    /// What the replicas' `mockexec.nodes_url` says.
    pub url: String,
}

impl MockNodes {
    /// The socket of the nodes of the cluster in `dir` (an absolute path).
    pub fn url(dir: &Path) -> String {
        format!("unix:{}", dir.join("mock-nodes.sock").display())
    }

    /// Starts `binary mock-nodes` for `dir` (model `dir/mock-nodes.json`, log
    /// `dir/mock-nodes.log`, in its own process group so a terminal's Ctrl-C reaches it
    /// only through [`Self::stop`]) and waits until its socket is in place. The model is
    /// written every `persist_ms` when it changed, and at exit. With `share_among`, the
    /// machine's cores are shared among that many processes (`hekate dev`'s, see
    /// [`share_cores`]); without, it runs tokio's default worker count.
    pub fn start(
        binary: &Path,
        dir: &Path,
        persist_ms: u64,
        share_among: Option<u64>,
    ) -> anyhow::Result<MockNodes> {
        use std::os::unix::process::CommandExt;
        let dir = std::path::absolute(dir)?;
        let log_path = dir.join("mock-nodes.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let url = MockNodes::url(&dir);
        let socket = dir.join("mock-nodes.sock");
        let mut cmd = Command::new(binary);
        if let Some(n) = share_among {
            share_cores(&mut cmd, n);
        }
        let mut child = cmd
            .arg("mock-nodes")
            .arg("--listen")
            .arg(&url)
            .arg("--state")
            .arg(dir.join("mock-nodes.json"))
            .arg("--persist-ms")
            .arg(persist_ms.to_string())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {} mock-nodes", binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        // The server renames its socket into place once it accepts connections.
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                bail!(
                    "mock-nodes exited ({status}): {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("mock-nodes did not listen on {} within 30 s", socket.display());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(MockNodes {
            child: Some(child),
            url,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGTERM (the model is written), then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match c.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    eprintln!("mock-nodes did not stop; killing it");
                    let _ = c.kill();
                    let _ = c.wait();
                    return;
                }
            }
        }
    }
}

impl Drop for MockNodes {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn wait_ready(http: &reqwest::Client, servers: &[String], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        for s in servers {
            if let Ok(r) = http
                .get(format!("{s}/readyz"))
                .timeout(Duration::from_secs(1))
                .send()
                .await
            {
                if r.status().is_success() {
                    return true;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    /// Three replicas and the simulated nodes on 2 cores get one worker each; on 16 cores,
    /// four each; never none. The operator's `TOKIO_WORKER_THREADS` is left as it is (the
    /// child inherits it), so the command sets nothing then.
    #[test]
    fn the_dev_cluster_shares_the_cores() {
        assert_eq!(super::workers_each(2, 4), 1);
        assert_eq!(super::workers_each(16, 4), 4);
        assert_eq!(super::workers_each(1, 0), 1);
        assert_eq!(super::workers_each(8, 3), 2);
        let mut cmd = std::process::Command::new("true");
        super::share_cores(&mut cmd, 4);
        let set: Vec<_> = cmd.get_envs().collect();
        match std::env::var_os("TOKIO_WORKER_THREADS") {
            Some(_) => assert!(set.is_empty(), "{set:?}"),
            None => {
                let cores = std::thread::available_parallelism().unwrap().get();
                let want = super::workers_each(cores, 4).to_string();
                assert_eq!(
                    set,
                    vec![(
                        std::ffi::OsStr::new("TOKIO_WORKER_THREADS"),
                        Some(std::ffi::OsStr::new(want.as_str()))
                    )]
                );
            }
        }
    }

    /// A data dir keeps the executor it was made with: `--testbed` (ssh) on a mock cluster's
    /// dir, or the mock on an ssh cluster's, is refused naming the flag, and writes nothing.
    #[test]
    fn a_data_dir_keeps_its_executor() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = super::DevOptions {
            replicas: 3,
            base_port: 18080,
            data_dir: dir.path().join("mock"),
            admin_key: None,
            user_key: None,
            glusterfs: None,
            tls: false,
            mock_persist_ms: super::MOCK_PERSIST_MS,
        };
        let keys = super::prepare(&opts).unwrap();
        assert_eq!(super::prepare(&opts).unwrap(), keys, "a resume keeps the keys");
        let cfg = super::config_path(&opts.data_dir, 1);
        let before = std::fs::read(&cfg).unwrap();
        let ssh = serde_json::json!({"executor": "ssh", "sshexec": {"keyfile": "/k", "known_hosts": "/h"}});
        opts.glusterfs = Some(ssh.clone());
        let e = super::prepare(&opts).unwrap_err().to_string();
        assert!(
            e.contains("with the mock executor") && e.contains("--data-dir"),
            "{e}"
        );
        assert_eq!(
            std::fs::read(&cfg).unwrap(),
            before,
            "the refusal changed nothing"
        );

        opts.data_dir = dir.path().join("ssh");
        super::prepare(&opts).unwrap();
        super::prepare(&opts).unwrap();
        opts.glusterfs = None;
        let e = super::prepare(&opts).unwrap_err().to_string();
        assert!(
            e.contains("with the ssh executor") && e.contains("--data-dir"),
            "{e}"
        );
    }

    #[test]
    fn generated_configs_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("heketi.json");
        std::fs::write(&p, "old, longer contents").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::write_private(&p, b"{\"secret\":1}").unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"secret\":1}");
        let fresh = dir.path().join("new.json");
        super::write_private(&fresh, b"x").unwrap();
        assert_eq!(
            std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
