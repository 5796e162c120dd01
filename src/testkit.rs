//! A launcher for local clusters of `hekate serve` processes: writes configs, starts, kills
//! (SIGKILL), stops (SIGTERM), pauses and restarts replicas, and waits on conditions (never
//! on sleeps). Used by the process-level tests, the benchmarks and the drill.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{Client, Reply};

/// How to lay out a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub replicas: u64,
    /// Extra `raft.timeouts` keys (snapshot thresholds, election timeouts...).
    pub timeouts: Value,
    /// Path of the `hekate` binary.
    pub binary: PathBuf,
    pub loglevel: String,
    /// `glusterfs.mockexec` (latency, failures); `nodes_url` is set to the cluster's own.
    pub mockexec: Value,
    /// Extra `glusterfs` keys (limits such as `max_inflight_operations`).
    pub glusterfs: Value,
    /// Extra `raft` keys (`forward_timeout_ms`...).
    pub raft: Value,
    /// Share the mock's nodes between replicas through a `hekate mock-nodes` process (as
    /// real nodes are shared), as `hekate dev` does. Off: each replica models its own nodes
    /// in memory (no failover).
    pub shared_mock: bool,
    /// Run each replica in its own network namespace (see [`Netns`]); empty: all on loopback.
    pub netns: Option<Netns>,
    /// The production transport: HTTPS on the API (`enable_tls`) and mutual TLS between
    /// replicas on their own peer ports, with a CA and certificates generated under the
    /// cluster's directory (`tls/`).
    pub tls: bool,
    /// `raft.limits` keys (timeouts, connection bounds).
    pub limits: Value,
}

impl ClusterSpec {
    pub fn new(binary: impl Into<PathBuf>, replicas: u64) -> ClusterSpec {
        ClusterSpec {
            replicas,
            timeouts: json!({}),
            binary: binary.into(),
            loglevel: "info".into(),
            mockexec: json!({}),
            glusterfs: json!({}),
            raft: json!({}),
            shared_mock: true,
            netns: None,
            tls: false,
            limits: json!({}),
        }
    }
}

pub struct ProcCluster {
    pub dir: PathBuf,
    pub spec: ClusterSpec,
    pub admin_key: String,
    pub user_key: String,
    pub secret: String,
    ports: Vec<(u64, u16)>,
    /// Peer listener ports (with `tls`; otherwise peers use the API port).
    peer_ports: Vec<(u64, u16)>,
    /// API addresses announced to peers instead of the real ones (a capturing proxy).
    advertised_api: Vec<(u64, String)>,
    pki: Option<crate::tls::GeneratedPki>,
    procs: Vec<(u64, Option<Child>)>,
    http: reqwest::Client,
    /// The shared nodes (with `shared_mock`), started with the first replica; stopped after
    /// the replicas when the cluster is dropped.
    mock_nodes: Option<crate::dev::MockNodes>,
}

/// Free TCP ports on 127.0.0.1 (bound, then released).
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    Ok(listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()?)
}

impl ProcCluster {
    /// Writes the configs of replicas 1..=n under `dir` (not started yet).
    pub fn create(dir: &Path, spec: ClusterSpec) -> anyhow::Result<ProcCluster> {
        let ports = free_ports(spec.replicas as usize * if spec.tls { 2 } else { 1 })?;
        let (ports, peer_ports) = ports.split_at(spec.replicas as usize);
        let rnd = || hex::encode(rand::random::<[u8; 16]>());
        let pki = if spec.tls {
            let names: Vec<String> = (1..=spec.replicas).map(|i| format!("replica-{i}")).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let hosts: Vec<String> = match &spec.netns {
                Some(ns) => (1..=spec.replicas).map(|i| ns.addr(i)).collect(),
                None => vec!["127.0.0.1".into(), "localhost".into()],
            };
            Some(crate::tls::generate(&dir.join("tls"), &names, &hosts)?)
        } else {
            None
        };
        let mut http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30));
        if let Some(p) = &pki {
            http = http.tls_certs_only(reqwest::Certificate::from_pem_bundle(&std::fs::read(
                &p.ca_file,
            )?)?);
        }
        let c = ProcCluster {
            dir: dir.to_path_buf(),
            admin_key: rnd(),
            user_key: rnd(),
            secret: format!("{}{}", rnd(), rnd()),
            ports: (1..=spec.replicas).zip(ports.iter().copied()).collect(),
            peer_ports: (1..=spec.replicas).zip(peer_ports.iter().copied()).collect(),
            advertised_api: Vec::new(),
            pki,
            procs: Vec::new(),
            spec,
            http: http.build()?,
            mock_nodes: None,
        };
        for id in 1..=c.spec.replicas {
            c.write_config(id, false)?;
        }
        Ok(c)
    }

    fn peers(&self) -> Value {
        Value::Array(
            self.ports
                .iter()
                .map(|(id, p)| {
                    let api = self
                        .advertised_api
                        .iter()
                        .find(|(i, _)| i == id)
                        .map(|(_, a)| a.clone())
                        .unwrap_or_else(|| format!("{}:{p}", self.host(*id)));
                    let mut m = json!({"id": id, "api": api});
                    if let Some(pp) = self.peer_port(*id) {
                        m["peer"] = json!(format!("{}:{pp}", self.host(*id)));
                    } else if let Some(peer) = self.peer_host(*id) {
                        m["peer"] = json!(format!("{peer}:{p}"));
                    }
                    m
                })
                .collect(),
        )
    }

    /// The address of replica `id`'s separate peer network, when its namespaces have one.
    fn peer_host(&self, id: u64) -> Option<String> {
        self.spec
            .netns
            .as_ref()
            .filter(|ns| ns.peer_net)
            .map(|ns| ns.peer_addr(id))
    }

    /// Replica `id`'s peer listener port, when it has its own (with `tls`).
    pub fn peer_port(&self, id: u64) -> Option<u16> {
        self.peer_ports.iter().find(|(i, _)| *i == id).map(|(_, p)| *p)
    }

    /// Announces `addr` to the peers as replica `id`'s API address (the replica still listens
    /// on its own port): lets a test put a recording proxy where followers would reach the
    /// leader's API. Rewrites every config; call before starting.
    pub fn advertise_api(&mut self, id: u64, addr: &str) -> anyhow::Result<()> {
        self.advertised_api.retain(|(i, _)| *i != id);
        self.advertised_api.push((id, addr.to_string()));
        for i in self.ids() {
            self.write_config(i, false)?;
        }
        Ok(())
    }

    /// The cluster CA (with `tls`).
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.pki.as_ref().map(|p| p.ca_file.clone())
    }

    /// Replica `id`'s certificate and key files (with `tls`).
    pub fn cert_files(&self, id: u64) -> Option<(PathBuf, PathBuf)> {
        let (c, k) = self.pki.as_ref()?.cert(&format!("replica-{id}"))?;
        Some((c.to_path_buf(), k.to_path_buf()))
    }

    pub fn config_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("replica-{id}")).join("heketi.json")
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.join(format!("replica-{id}")).join("data")
    }

    /// Where the replicas reach their shared (mock) nodes (with `shared_mock`).
    pub fn mock_nodes_url(&self) -> String {
        crate::dev::MockNodes::url(&std::path::absolute(&self.dir).unwrap_or_else(|_| self.dir.clone()))
    }

    /// A client of the shared (mock) nodes, as tests and drills use it: read the model and
    /// the command record, arm faults, plant, stop glusterd.
    pub fn mock_nodes(&self) -> anyhow::Result<crate::executor::mock::MockExecutor> {
        if !self.spec.shared_mock {
            bail!("this cluster's replicas model their own nodes (shared_mock is off)");
        }
        Ok(crate::executor::mock::MockExecutor::new(
            crate::executor::mock::MockConfig {
                nodes_url: self.mock_nodes_url(),
                ..Default::default()
            },
        )?)
    }

    /// Starts the shared nodes' process if it is not running (the first replica's start
    /// does); a restart resumes the model from `mock-nodes.json`.
    pub fn start_mock_nodes(&mut self) -> anyhow::Result<()> {
        if self.spec.shared_mock && self.mock_nodes.is_none() {
            let n = crate::dev::MockNodes::start(&self.spec.binary, &self.dir, crate::dev::MOCK_PERSIST_MS)?;
            self.mock_nodes = Some(n);
        }
        Ok(())
    }

    /// Stops the shared nodes' process (SIGTERM: it writes the model first).
    pub fn stop_mock_nodes(&mut self) {
        if let Some(mut n) = self.mock_nodes.take() {
            n.stop();
        }
    }

    fn mock_config(&self) -> Value {
        let mut m = self.spec.mockexec.clone();
        if !m.is_object() {
            m = json!({});
        }
        if self.spec.shared_mock {
            m["nodes_url"] = json!(self.mock_nodes_url());
        }
        m
    }

    fn write_config(&self, id: u64, join: bool) -> anyhow::Result<()> {
        let port = self.port(id)?;
        let cfg = json!({
            "port": port.to_string(),
            "jwt": {"admin": {"key": self.admin_key}, "user": {"key": self.user_key}},
            "glusterfs": {"executor": "mock", "loglevel": self.spec.loglevel, "mockexec": self.mock_config()},
            "raft": {
                "id": id, "data_dir": self.data_dir(id), "secret": self.secret, "join": join,
                "api_listen": format!("{}:{port}", self.host(id)), "peers": self.peers(),
                "timeouts": self.spec.timeouts,
            }
        });
        let mut cfg = cfg;
        if let Some(peer) = self.peer_host(id) {
            cfg["raft"]["peer_listen"] = json!(format!("{peer}:{port}"));
        }
        if let Value::Object(extra) = &self.spec.raft {
            for (k, v) in extra {
                cfg["raft"][k] = v.clone();
            }
        }
        if let Value::Object(l) = &self.spec.limits {
            cfg["raft"]["limits"] = Value::Object(l.clone());
        }
        if let (Some(ca), Some((cert, key))) = (self.ca_file(), self.cert_files(id)) {
            cfg["enable_tls"] = json!(true);
            cfg["cert_file"] = json!(cert);
            cfg["key_file"] = json!(key);
            cfg["raft"]["tls"] = json!({"ca_file": ca, "cert_file": cert, "key_file": key});
        }
        if let Value::Object(extra) = &self.spec.glusterfs {
            for (k, v) in extra {
                cfg["glusterfs"][k] = v.clone();
            }
        }
        let path = self.config_path(id);
        std::fs::create_dir_all(path.parent().unwrap_or(&self.dir))?;
        crate::dev::write_private(&path, serde_json::to_string_pretty(&cfg)?.as_bytes())?;
        Ok(())
    }

    /// Adds a replica id to the layout (a joining replica: it never bootstraps) and writes its config.
    pub fn add_replica(&mut self, id: u64) -> anyhow::Result<()> {
        if self.spec.tls {
            bail!("add_replica: not supported with tls (certificates are made at create)");
        }
        let port = free_ports(1)?[0];
        self.ports.push((id, port));
        self.write_config(id, true)
    }

    pub fn port(&self, id: u64) -> anyhow::Result<u16> {
        self.ports
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, p)| *p)
            .ok_or_else(|| anyhow!("no replica {id}"))
    }

    pub fn url(&self, id: u64) -> String {
        let scheme = if self.spec.tls { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.host(id), self.port(id).unwrap_or(0))
    }

    pub fn api_addr(&self, id: u64) -> String {
        format!("{}:{}", self.host(id), self.port(id).unwrap_or(0))
    }

    /// The address replica `id` listens on: its namespace's, or loopback.
    pub fn host(&self, id: u64) -> String {
        match &self.spec.netns {
            Some(ns) => ns.addr(id),
            None => "127.0.0.1".into(),
        }
    }

    pub fn ids(&self) -> Vec<u64> {
        self.ports.iter().map(|(i, _)| *i).collect()
    }

    pub fn client(&self, id: u64) -> Client {
        self.client_as(id, "admin", &self.admin_key)
    }

    /// A client of replica `id` signing as `user` (trusting the cluster CA with `tls`).
    pub fn client_as(&self, id: u64, user: &str, key: &str) -> Client {
        let tls = crate::client::ClientTls {
            ca_files: self.ca_file().into_iter().collect(),
            insecure: false,
        };
        Client::with_tls(vec![self.url(id)], user, key, &tls)
            .unwrap_or_else(|_| Client::new(vec![self.url(id)], user, key))
    }

    /// Starts replica `id` (its log goes to `replica-<id>/hekate.log`).
    pub fn start(&mut self, id: u64) -> anyhow::Result<u32> {
        if self.pid(id).is_some() {
            bail!("replica {id} is already running");
        }
        self.start_mock_nodes()?;
        let log_path = self.dir.join(format!("replica-{id}")).join("hekate.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let mut cmd = match &self.spec.netns {
            // `ip netns exec` execs in place: the child's pid is the replica's.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.name(id)]).arg(&self.spec.binary);
                c
            }
            None => Command::new(&self.spec.binary),
        };
        let child = cmd
            .arg("serve")
            .arg("--config")
            .arg(self.config_path(id))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("cannot start {}", self.spec.binary.display()))?;
        let pid = child.id();
        self.procs.retain(|(i, _)| *i != id);
        self.procs.push((id, Some(child)));
        Ok(pid)
    }

    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for id in self.ids() {
            self.start(id)?;
        }
        Ok(())
    }

    pub fn pid(&self, id: u64) -> Option<u32> {
        self.procs
            .iter()
            .find(|(i, _)| *i == id)
            .and_then(|(_, c)| c.as_ref().map(|c| c.id()))
    }

    pub fn signal(&mut self, id: u64, sig: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let pid = self
            .pid(id)
            .ok_or_else(|| anyhow!("replica {id} is not running"))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig)?;
        Ok(())
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, nix::sys::signal::Signal::SIGKILL)?;
        self.reap(id, Duration::from_secs(10))
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, nix::sys::signal::Signal::SIGTERM)?;
        self.reap(id, Duration::from_secs(15))
    }

    pub fn pause(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, nix::sys::signal::Signal::SIGSTOP)
    }

    pub fn resume(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, nix::sys::signal::Signal::SIGCONT)
    }

    fn reap(&mut self, id: u64, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        for (i, slot) in &mut self.procs {
            if *i != id {
                continue;
            }
            if let Some(c) = slot {
                loop {
                    if c.try_wait()?.is_some() {
                        break;
                    }
                    if Instant::now() > deadline {
                        c.kill()?;
                        c.wait()?;
                        bail!("replica {id} did not exit in {within:?}");
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            *slot = None;
        }
        Ok(())
    }

    /// Exit status of a replica that exited on its own (None while running).
    pub fn exited(&mut self, id: u64) -> Option<std::process::ExitStatus> {
        self.procs
            .iter_mut()
            .find(|(i, _)| *i == id)
            .and_then(|(_, c)| c.as_mut()?.try_wait().ok().flatten())
    }

    pub async fn status(&self, id: u64) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}/raft/status", self.url(id)))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    pub async fn is_ready(&self, id: u64) -> bool {
        let r = self
            .http
            .get(format!("{}/readyz", self.url(id)))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        matches!(r, Ok(r) if r.status().is_success())
    }

    /// Waits until every listed replica is ready.
    pub async fn wait_ready(&self, ids: &[u64], within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        for id in ids {
            while !self.is_ready(*id).await {
                if Instant::now() > deadline {
                    bail!("replica {id} not ready within {within:?}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Waits until the listed replicas agree on one leader among them; returns it.
    pub async fn wait_leader(&self, among: &[u64], within: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + within;
        loop {
            let mut seen = Vec::new();
            for id in among {
                if let Some(st) = self.status(*id).await {
                    seen.push(st["leader"].as_u64());
                }
            }
            if let Some(Some(l)) = seen.first() {
                let agreed =
                    seen.len() == among.len() && seen.iter().all(|s| *s == Some(*l)) && among.contains(l);
                if agreed && self.is_ready(*l).await {
                    return Ok(*l);
                }
            }
            if Instant::now() > deadline {
                bail!("no agreed leader among {among:?} within {within:?} (saw {seen:?})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A signed request to replica `id`.
    pub async fn call(
        &self,
        id: u64,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Reply> {
        self.client(id).call(method, path, body).await
    }

    /// A local (non-forwarded, possibly stale) read of `path` from replica `id`.
    pub async fn local_get(&self, id: u64, path: &str) -> anyhow::Result<Value> {
        let token = crate::auth::sign(
            "admin",
            &self.admin_key,
            "GET",
            path,
            crate::auth::now_unix(),
            300,
        );
        let r = self
            .http
            .get(format!("{}{path}", self.url(id)))
            .bearer_auth(token)
            .header(crate::api::READ_HEADER, "local")
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("local GET {path} on {id}: {status} {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    /// The last line of a replica's log that mentions `needle`, for error messages.
    pub fn log_tail(&self, id: u64) -> String {
        let p = self.dir.join(format!("replica-{id}")).join("hekate.log");
        let t = std::fs::read_to_string(p).unwrap_or_default();
        t.lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub async fn call_ok(
        &self,
        id: u64,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let r = self.call(id, method.clone(), path, body).await?;
        if !(200..300).contains(&r.status) {
            bail!("{method} {path} via replica {id}: {} {}", r.status, r.body.trim());
        }
        if r.body.trim().is_empty() {
            return Ok(Value::Null);
        }
        r.json()
    }
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        for (_, c) in &mut self.procs {
            if let Some(c) = c {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(c.id() as i32),
                    nix::sys::signal::Signal::SIGCONT,
                );
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if let Some(ns) = &self.spec.netns {
            ns.destroy();
        }
    }
}

/// Polls `cond` until it returns `Some`, or fails with `what` after `within`.
pub async fn wait_for<T, F, Fut>(within: Duration, what: &str, mut cond: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = cond().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The POST-cluster write used by tests and benchmarks: returns the new cluster id.
pub async fn create_cluster(c: &Client) -> anyhow::Result<String> {
    let r = c
        .call(
            Method::POST,
            "/clusters",
            Some(&json!({"file": true, "block": true})),
        )
        .await?;
    if r.status != 201 {
        bail!("POST /clusters: {} {}", r.status, r.body.trim());
    }
    Ok(r.json()?["id"].as_str().unwrap_or_default().to_string())
}

/// Polls an async operation's `/queue/...` location until it is no longer pending; returns
/// the final reply (303, 204 or 500). A 404 while polling is an error: the queue lost it;
/// transport errors are polled through until `within`.
pub async fn wait_queue(c: &Client, location: &str, within: Duration) -> anyhow::Result<Reply> {
    let deadline = Instant::now() + within;
    // Quick first polls (benchmarks time operations through this), then every 20 ms.
    let mut nap = Duration::from_millis(1);
    loop {
        // A GET is safe to repeat: a connection cut by the balancer is polled again.
        let r = match c.call(Method::GET, location, None).await {
            Ok(r) => r,
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if r.status == 404 {
            bail!("{location}: 404 while polling ({})", r.body.trim());
        }
        if !(r.status == 200 && r.headers.contains_key("x-pending")) && r.status != 503 {
            return Ok(r);
        }
        if Instant::now() > deadline {
            bail!("{location}: still pending after {within:?}");
        }
        tokio::time::sleep(nap).await;
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}

/// `POST /<kind>/<id>/state` (`kind`: `nodes` or `devices`) and its operation's outcome.
pub async fn set_state(c: &Client, kind: &str, id: &str, state: &str) -> anyhow::Result<Option<String>> {
    let body = json!({ "state": state });
    run_async(c, Method::POST, &format!("/{kind}/{id}/state"), Some(&body)).await
}

/// Starts an async request and waits for its outcome: Ok(Some(resource path)) on 303,
/// Ok(None) on 204; the error text on a synchronous refusal or a 500 from the queue.
pub async fn run_async(
    c: &Client,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<Option<String>> {
    let r = c.call(method.clone(), path, body).await?;
    if r.status != 202 {
        bail!("{method} {path}: {} {}", r.status, r.body.trim());
    }
    let loc = r.location();
    let done = wait_queue(c, &loc, Duration::from_secs(60)).await?;
    match done.status {
        303 => Ok(done
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(String::from)),
        204 => Ok(None),
        s => bail!("{method} {path}: operation ended {s}: {}", done.body.trim()),
    }
}

/// Removes everything through the API, the Heketi way: every volume, then per cluster each
/// device (offline, failed, delete), each node (offline, delete), the cluster. Leaves the
/// nodes as they were before the topology was loaded (benchmarks on the testbed end with it).
pub async fn unload_topology(c: &Client) -> anyhow::Result<()> {
    let vols = c.call(Method::GET, "/volumes", None).await?.json()?;
    for v in vols["volumes"].as_array().cloned().unwrap_or_default() {
        run_async(
            c,
            Method::DELETE,
            &format!("/volumes/{}", v.as_str().unwrap_or_default()),
            None,
        )
        .await?;
    }
    let topo = c.call(Method::GET, "/topology", None).await?.json()?;
    for cl in topo["clusters"].as_array().cloned().unwrap_or_default() {
        for n in cl["nodes"].as_array().cloned().unwrap_or_default() {
            for d in n["devices"].as_array().cloned().unwrap_or_default() {
                let id = d["id"].as_str().unwrap_or_default();
                for state in ["offline", "failed"] {
                    set_state(c, "devices", id, state).await?;
                }
                run_async(c, Method::DELETE, &format!("/devices/{id}"), None).await?;
            }
            let id = n["id"].as_str().unwrap_or_default();
            set_state(c, "nodes", id, "offline").await?;
            run_async(c, Method::DELETE, &format!("/nodes/{id}"), None).await?;
        }
        let r = c
            .call(
                Method::DELETE,
                &format!("/clusters/{}", cl["id"].as_str().unwrap_or_default()),
                None,
            )
            .await?;
        if r.status != 200 {
            bail!("cluster delete: {} {}", r.status, r.body.trim());
        }
    }
    Ok(())
}

/// Loads a heketi-cli topology file (`{"clusters":[{"nodes":[{"node":{...},"devices":[...]}]}]}`)
/// through the API; returns the new cluster ids.
pub async fn load_topology(c: &Client, topology: &Value) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for cl in topology["clusters"].as_array().cloned().unwrap_or_default() {
        let r = c
            .call(
                Method::POST,
                "/clusters",
                Some(&json!({"file": true, "block": true})),
            )
            .await?;
        let cid = r.json()?["id"].as_str().unwrap_or_default().to_string();
        for n in cl["nodes"].as_array().cloned().unwrap_or_default() {
            let mut node = n["node"].clone();
            node["cluster"] = json!(cid);
            let loc = run_async(c, Method::POST, "/nodes", Some(&node))
                .await?
                .unwrap_or_default();
            let nid = loc.trim_start_matches("/nodes/").to_string();
            for d in n["devices"].as_array().cloned().unwrap_or_default() {
                let body = json!({"node": nid, "name": d["name"], "destroydata": d["destroydata"].as_bool().unwrap_or(false)});
                run_async(c, Method::POST, "/devices", Some(&body)).await?;
            }
        }
        ids.push(cid);
    }
    Ok(ids)
}

/// A running testbed of real gluster nodes (`tests/testbed/testbed.sh up`), as its `env`
/// file describes it: used by the end-to-end tests and the testbed benchmark.
#[derive(Debug, Clone)]
pub struct TestbedEnv {
    /// `$HT_STATE`: the testbed's state directory (one subdirectory per node).
    pub state_dir: String,
    pub key: String,
    pub known_hosts: String,
    /// (name, address, loop disks) per node.
    pub nodes: Vec<(String, String, Vec<String>)>,
}

impl TestbedEnv {
    /// Reads `$HT_STATE/env` (default `/tmp/hekate-testbed/env`).
    pub fn read() -> anyhow::Result<TestbedEnv> {
        let state = std::env::var("HT_STATE").unwrap_or_else(|_| "/tmp/hekate-testbed".into());
        let path = format!("{state}/env");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("no testbed at {state} (tests/testbed/testbed.sh up)"))?;
        let env: std::collections::HashMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect();
        let get = |k: &str| {
            env.get(k)
                .map(|v| v.to_string())
                .ok_or_else(|| anyhow!("{path}: no {k}"))
        };
        let names = get("HT_NODES")?;
        let ips = get("HT_IPS")?;
        let mut nodes = Vec::new();
        for (n, ip) in names.split(' ').zip(ips.split(' ')) {
            let disks = get(&format!("{n}_DISKS"))?.split(' ').map(String::from).collect();
            nodes.push((n.to_string(), ip.to_string(), disks));
        }
        Ok(TestbedEnv {
            state_dir: state.clone(),
            key: get("HT_KEY")?,
            known_hosts: get("HT_KNOWN_HOSTS")?,
            nodes,
        })
    }

    /// The `glusterfs` keys that point a Hekate cluster's SSH executor at the testbed.
    pub fn glusterfs_config(&self) -> Value {
        json!({
            "executor": "ssh",
            "sshexec": {"keyfile": self.key, "known_hosts": self.known_hosts, "user": "root",
                        "port": "22", "fstab": "/etc/fstab"},
        })
    }
}

/// Network namespaces for replicas: one per replica, each with a veth on a private bridge
/// (`10.79.<n>.0/24`, the host at `.1`, replica `i` at `.1<i>`), so that a replica can be cut
/// off by taking its link down (a partition: it keeps running and keeps reaching whatever
/// is not on the network, like the mock's node model). With a peer network
/// ([`Netns::with_peer_net`]), each replica has a second veth on a second bridge
/// (`10.78.<n>.0/24`) that carries only Raft RPCs, so the peer path can be cut while the
/// API (clients, the load balancer) still reaches every replica. Needs root. Removed on drop.
#[derive(Debug, Clone)]
pub struct Netns {
    tag: String,
    subnet: u8,
    replicas: u64,
    pub peer_net: bool,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("run ip(8)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Netns {
    pub fn create(replicas: u64) -> anyhow::Result<Netns> {
        Netns::build(replicas, false)
    }

    /// Namespaces with a separate peer network (see the type's documentation).
    pub fn with_peer_net(replicas: u64) -> anyhow::Result<Netns> {
        Netns::build(replicas, true)
    }

    fn build(replicas: u64, peer_net: bool) -> anyhow::Result<Netns> {
        let pid = std::process::id();
        let ns = Netns {
            tag: format!("hk{}", pid % 100_000),
            subnet: (pid % 200 + 20) as u8,
            replicas,
            peer_net,
        };
        let br = ns.bridge();
        ns.destroy();
        ip(&["link", "add", &br, "type", "bridge"])?;
        ip(&["addr", "add", &format!("10.79.{}.1/24", ns.subnet), "dev", &br])?;
        ip(&["link", "set", &br, "up"])?;
        for id in 1..=replicas {
            let name = ns.name(id);
            let host_end = format!("{}v{id}", ns.tag);
            ip(&["netns", "add", &name])?;
            ip(&[
                "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &name,
            ])?;
            ip(&["link", "set", &host_end, "master", &br, "up"])?;
            ip(&[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{}/24", ns.addr(id)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &name, "link", "set", "eth0", "up"])?;
            ip(&["-n", &name, "link", "set", "lo", "up"])?;
        }
        if peer_net {
            let pbr = ns.peer_bridge();
            ip(&["link", "add", &pbr, "type", "bridge"])?;
            ip(&["link", "set", &pbr, "up"])?;
            for id in 1..=replicas {
                let name = ns.name(id);
                let host_end = format!("{}p{id}", ns.tag);
                ip(&[
                    "link", "add", &host_end, "type", "veth", "peer", "name", "eth1", "netns", &name,
                ])?;
                ip(&["link", "set", &host_end, "master", &pbr, "up"])?;
                let addr = format!("{}/24", ns.peer_addr(id));
                ip(&["-n", &name, "addr", "add", &addr, "dev", "eth1"])?;
                ip(&["-n", &name, "link", "set", "eth1", "up"])?;
            }
        }
        Ok(ns)
    }

    fn peer_bridge(&self) -> String {
        format!("{}pb", self.tag)
    }

    /// Replica `id`'s address on the peer network.
    pub fn peer_addr(&self, id: u64) -> String {
        format!("10.78.{}.{}", self.subnet, 10 + id)
    }

    /// Cuts replica `id`'s peer link only: it still serves clients and the load balancer,
    /// but hears from no other replica.
    pub fn cut_peers(&self, id: u64) -> anyhow::Result<()> {
        ip(&["-n", &self.name(id), "link", "set", "eth1", "down"])
    }

    pub fn heal_peers(&self, id: u64) -> anyhow::Result<()> {
        ip(&["-n", &self.name(id), "link", "set", "eth1", "up"])
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    pub fn name(&self, id: u64) -> String {
        format!("{}r{id}", self.tag)
    }

    pub fn addr(&self, id: u64) -> String {
        format!("10.79.{}.{}", self.subnet, 10 + id)
    }

    /// Takes replica `id`'s links down (the peer link too, when there is one): it is alone.
    pub fn partition(&self, id: u64) -> anyhow::Result<()> {
        ip(&["-n", &self.name(id), "link", "set", "eth0", "down"])?;
        if self.peer_net {
            self.cut_peers(id)?;
        }
        Ok(())
    }

    pub fn heal(&self, id: u64) -> anyhow::Result<()> {
        ip(&["-n", &self.name(id), "link", "set", "eth0", "up"])?;
        if self.peer_net {
            self.heal_peers(id)?;
        }
        Ok(())
    }

    /// Removes the namespaces and the bridge (the processes must be gone).
    pub fn destroy(&self) {
        for id in 1..=self.replicas {
            // The host end too: a namespace lingering in the kernel would keep it.
            let _ = ip(&["link", "del", &format!("{}v{id}", self.tag)]);
            let _ = ip(&["link", "del", &format!("{}p{id}", self.tag)]);
            let _ = ip(&["netns", "del", &self.name(id)]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
        let _ = ip(&["link", "del", &self.peer_bridge()]);
    }
}

/// One line of a node guard's log (`deploy/node/hekate-guard --log`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardRecord {
    /// When the guard decided, ns since the epoch.
    pub at: u128,
    pub cluster: String,
    /// 0 when the command carried none.
    pub term: u64,
    /// `ok`, `refused` or `unfenced`.
    pub verdict: String,
    pub command: String,
}

impl TestbedEnv {
    /// Node `node`'s guard log: every command that reached its sshd, with its verdict.
    pub fn guard_log(&self, node: &str) -> Vec<GuardRecord> {
        let text =
            std::fs::read_to_string(format!("{}/{node}/commands.log", self.state_dir)).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let mut it = l.splitn(5, ' ');
                let (secs, micros) = it.next()?.split_once('.')?;
                let at = secs.parse::<u128>().ok()? * 1_000_000_000 + micros.parse::<u128>().ok()? * 1000;
                Some(GuardRecord {
                    at,
                    cluster: it.next()?.to_string(),
                    term: it.next()?.parse().unwrap_or(0),
                    verdict: it.next()?.to_string(),
                    command: it.next().unwrap_or_default().to_string(),
                })
            })
            .collect()
    }

    /// Node `node`'s record of the commands it executed (the guard let them through): (start,
    /// ns since the epoch; term; `node: command`).
    pub fn command_log(&self, node: &str) -> Vec<(u128, u64, String)> {
        self.guard_log(node)
            .into_iter()
            .filter(|r| r.verdict != "refused")
            .map(|r| (r.at, r.term, format!("{node}: {}", r.command)))
            .collect()
    }
}

/// The order of terms in a node-side command record.
#[derive(Debug, Clone, Default)]
pub struct TermOrder {
    pub commands: usize,
    pub terms: usize,
    /// Commands of an older term that started after a newer term's first command.
    pub violations: Vec<String>,
    /// At each change of term: from the last command start of older terms to the first of
    /// the new one, ms.
    pub handover_gaps_ms: Vec<f64>,
}

/// Checks that terms only move forward in a record of (start ns, term, what); records
/// without a term (0) are ignored.
pub fn term_order(records: &[(u128, u64, String)]) -> TermOrder {
    let mut recs: Vec<&(u128, u64, String)> = records.iter().filter(|r| r.1 > 0).collect();
    recs.sort_by_key(|r| r.0);
    let mut out = TermOrder {
        commands: recs.len(),
        ..Default::default()
    };
    let mut max_term = 0u64;
    let mut last_of: std::collections::BTreeMap<u64, u128> = Default::default();
    for (at, term, what) in recs {
        if *term < max_term {
            out.violations.push(format!(
                "{what} (term {term}) started after term {max_term} began"
            ));
        } else if *term > max_term {
            if max_term > 0 {
                let last_old = last_of.range(..*term).map(|(_, a)| *a).max().unwrap_or(0);
                out.handover_gaps_ms.push((*at as f64 - last_old as f64) / 1e6);
            }
            max_term = *term;
        }
        let e = last_of.entry(*term).or_default();
        *e = (*e).max(*at);
    }
    out.terms = last_of.len();
    out
}
