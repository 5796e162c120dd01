//! The mock executor: Gluster nodes simulated by [`model::Nodes`] (PVs, VGs, thin pools and
//! LVs, mounts, peers, volumes, the node guard), with per-verb latency and failure injection
//! by verb and host.
//!
//! The nodes live in this process's memory, or in a `hekate mock-nodes` process
//! ([`server`]) that every replica of a local cluster reaches through `nodes_url`
//! ([`remote`]), so that, as with real nodes, a new leader sees what the old one did, each
//! verb costing the same whatever the number of volumes. Either way the same verb code runs
//! against the model. Never the only executor tested: it serves dev clusters and the
//! control-plane tests.

pub mod model;
pub mod remote;
pub mod server;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{
    BlockSpec, BlockTarget, BrickSpec, DeviceInfo, ExecError, ExecResult, Executor, GlusterVolume, HealBrick,
    NodeInventory, VolumeOwner, VolumeSpec,
};
use model::{fail, Nodes, Request, Verb};
pub use model::{CmdRecord, Fault, MockHost, MockState, MockVg, MockVolume};

/// `glusterfs.mockexec` in heketi.json.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MockConfig {
    /// Size of every device, GiB (env HEKETI_MOCK_DEVICE_SIZE_GB; default 500).
    pub device_size_gb: u64,
    /// The `hekate mock-nodes` process holding the nodes this replica shares with the others:
    /// `unix:/path/to/socket` or `http://127.0.0.1:PORT`. Empty: nodes in this process only.
    pub nodes_url: String,
    /// The token `hekate mock-nodes --token-file` requires (sent with every request).
    pub nodes_token: String,
    /// Milliseconds each verb takes (`brick_create`, `volume_create`, ... or `*`).
    pub latency_ms: BTreeMap<String, u64>,
    /// Injected failures.
    pub fail: Vec<Injection>,
    /// The in-process command record keeps this many records, the newest (0: 100,000).
    /// `hekate mock-nodes` has its own (`--command-log-max`).
    pub command_log_max: usize,
}

pub const DEFAULT_COMMAND_LOG_MAX: usize = 100_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Injection {
    /// Verb name, or `*`.
    pub verb: String,
    /// Host, or empty for every host.
    pub host: String,
    pub message: String,
}

pub struct MockExecutor {
    cfg: MockConfig,
    nodes: Backend,
}

/// Where the nodes live.
enum Backend {
    Memory(Arc<Nodes>),
    Remote(remote::NodesClient),
}

impl MockExecutor {
    /// Nodes in this process, or (with `nodes_url`) those of a `hekate mock-nodes` process.
    pub fn new(cfg: MockConfig) -> Result<MockExecutor, remote::NodesUrlError> {
        if cfg.nodes_url.is_empty() {
            return Ok(MockExecutor::in_memory(cfg));
        }
        let client = remote::NodesClient::new(&cfg.nodes_url, &cfg.nodes_token)?;
        Ok(MockExecutor {
            cfg: with_defaults(cfg),
            nodes: Backend::Remote(client),
        })
    }

    /// Nodes in this process only, whatever `nodes_url` says.
    pub fn in_memory(cfg: MockConfig) -> MockExecutor {
        let cfg = with_defaults(cfg);
        let nodes = Nodes::new(MockState::default(), cfg.command_log_max);
        MockExecutor {
            cfg,
            nodes: Backend::Memory(Arc::new(nodes)),
        }
    }

    /// A copy of the model (tests and drills inspect it for orphans).
    pub async fn snapshot(&self) -> ExecResult<MockState> {
        match &self.nodes {
            Backend::Memory(n) => Ok(n.snapshot().0),
            Backend::Remote(c) => Ok(c.snapshot().await?.0),
        }
    }

    /// One verb: delayed by its latency, then sent to the nodes with this task's fencing
    /// token and any static injection that matches; there the guard, a runtime [`Fault`]
    /// and the verb's effect follow ([`Nodes::run`]). Decodes the answer as `T`.
    async fn verb<T: DeserializeOwned + Send + 'static>(&self, host: &str, verb: Verb) -> ExecResult<T> {
        let name = verb.name();
        self.delay(name).await;
        let req = self.request(host, verb);
        match &self.nodes {
            Backend::Memory(n) => decode_value(name, n.run(&req)),
            Backend::Remote(c) => c.run(&req).await,
        }
    }

    /// One round of verbs of one kind on several hosts, as parallel calls of
    /// [`MockExecutor::verb`] would send them (one delay, as those would overlap), in one
    /// request to the nodes. Each is still guarded, faulted and recorded on its own there.
    async fn verbs<T: DeserializeOwned + Send + 'static>(
        &self,
        round: Vec<(String, Verb)>,
    ) -> Vec<ExecResult<T>> {
        let Some(name) = round.first().map(|(_, v)| v.name()) else {
            return Vec::new();
        };
        self.delay(name).await;
        let reqs: Vec<Request> = round
            .into_iter()
            .map(|(host, verb)| self.request(&host, verb))
            .collect();
        match &self.nodes {
            Backend::Memory(n) => reqs
                .iter()
                .map(|r| decode_value(r.verb.name(), n.run(r)))
                .collect(),
            Backend::Remote(c) => c.run_all(&reqs).await,
        }
    }

    /// The configured latency of a verb (`latency_ms`: by name, or `*`).
    async fn delay(&self, name: &str) {
        let ms = self
            .cfg
            .latency_ms
            .get(name)
            .or_else(|| self.cfg.latency_ms.get("*"))
            .copied()
            .unwrap_or(0);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    /// A verb as the nodes receive it: this task's fencing token, and any static
    /// injection of this configuration that matches.
    fn request(&self, host: &str, verb: Verb) -> Request {
        let name = verb.name();
        let inject = self
            .cfg
            .fail
            .iter()
            .find(|i| (i.verb == name || i.verb == "*") && (i.host.is_empty() || i.host == host))
            .map(|i| i.message.clone());
        Request {
            host: host.to_string(),
            token: super::current_fence(),
            operator: OPERATOR.try_with(|_| ()).is_ok(),
            inject,
            verb,
        }
    }

    /// Each brick's verb in one round; a brick whose names are not Hekate's is refused
    /// here, as `brick_create`/`brick_destroy` refuse it, and never sent.
    async fn brick_round<T: DeserializeOwned + Send + 'static>(
        &self,
        bricks: &[(String, BrickSpec)],
        create: bool,
    ) -> Vec<ExecResult<T>> {
        let mut refused: Vec<Option<ExecError>> = Vec::with_capacity(bricks.len());
        let mut round = Vec::with_capacity(bricks.len());
        for (host, b) in bricks {
            match b.check_ours() {
                Ok(()) => {
                    refused.push(None);
                    round.push((host.clone(), brick_verb(b, create)));
                }
                Err(e) => refused.push(Some(e)),
            }
        }
        let mut sent = self.verbs::<T>(round).await.into_iter();
        refused
            .into_iter()
            .map(|r| match r {
                Some(e) => Err(e),
                None => sent
                    .next()
                    .unwrap_or_else(|| Err(fail("mock nodes: an answer is missing"))),
            })
            .collect()
    }

    /// The command record, oldest first: `<ns> <term> <ok|refused> <verb> <host> [object]`
    /// for every verb that reached the nodes (the node-side record a fencing drill reads).
    pub async fn command_log(&self) -> ExecResult<Vec<CmdRecord>> {
        match &self.nodes {
            Backend::Memory(n) => Ok(n.command_log()),
            Backend::Remote(c) => c.command_log().await,
        }
    }

    /// Arms a fault (seen by every replica sharing the nodes).
    pub async fn add_fault(&self, fault: Fault) -> ExecResult<()> {
        match &self.nodes {
            Backend::Memory(n) => {
                n.add_fault(fault);
                Ok(())
            }
            Backend::Remote(c) => c.add_fault(&fault).await,
        }
    }

    /// Puts things on the nodes that Hekate did not make (tests of ownership): whatever `f`
    /// adds to the model, as an operator or another tool would. With shared nodes, `f` runs
    /// on a copy that replaces the model only if no verb changed it meanwhile (else again).
    pub async fn plant(&self, f: impl Fn(&mut MockState)) -> ExecResult<()> {
        match &self.nodes {
            Backend::Memory(n) => {
                n.change(f);
                Ok(())
            }
            Backend::Remote(c) => {
                for _ in 0..100 {
                    let (mut state, generation) = c.snapshot().await?;
                    f(&mut state);
                    if c.replace(&state, generation).await? {
                        return Ok(());
                    }
                }
                Err(fail("mock nodes: the model kept changing under the plant"))
            }
        }
    }

    /// Stops or starts a (mock) node's glusterd: its bricks go offline, its verbs fail.
    pub async fn set_glusterd_down(&self, host: &str, down: bool) -> ExecResult<()> {
        match &self.nodes {
            Backend::Memory(n) => {
                n.set_glusterd_down(host, down);
                Ok(())
            }
            Backend::Remote(c) => c.set_glusterd_down(host, down).await,
        }
    }

    /// Disarms every fault; returns how many had fired at least once.
    pub async fn clear_faults(&self) -> ExecResult<usize> {
        match &self.nodes {
            Backend::Memory(n) => Ok(n.clear_faults()),
            Backend::Remote(c) => c.clear_faults().await,
        }
    }
}

fn with_defaults(mut cfg: MockConfig) -> MockConfig {
    if cfg.device_size_gb == 0 {
        cfg.device_size_gb = 500;
    }
    if cfg.command_log_max == 0 {
        cfg.command_log_max = DEFAULT_COMMAND_LOG_MAX;
    }
    cfg
}

tokio::task_local! {
    /// Set by [`MockExecutor::as_operator`]: verbs run as an operator logged in on his own
    /// account would run them, past Hekate's guard (tests that plant orphans and drift).
    static OPERATOR: ();
}

impl MockExecutor {
    /// Runs `f`'s verbs as a node's operator (not Hekate): the guard does not apply, and
    /// the command record shows them with term 0.
    pub async fn as_operator<F: std::future::Future>(f: F) -> F::Output {
        OPERATOR.scope((), f).await
    }
}

/// An in-process answer decoded as the verb's result.
fn decode_value<T: DeserializeOwned>(name: &str, answer: ExecResult<serde_json::Value>) -> ExecResult<T> {
    serde_json::from_value(answer?).map_err(|e| fail(format!("mock nodes: bad answer to {name}: {e}")))
}

fn brick_verb(b: &BrickSpec, create: bool) -> Verb {
    let (vg, lv, tp, mount_dir) = (b.vg.clone(), b.lv(), b.tp(), b.mount_dir());
    if create {
        Verb::BrickCreate {
            vg,
            lv,
            tp,
            mount_dir,
            need: b.tp_size + b.meta_size,
        }
    } else {
        Verb::BrickDestroy {
            vg,
            lv,
            tp,
            mount_dir,
            path: b.path(),
        }
    }
}

#[async_trait]
impl Executor for MockExecutor {
    async fn claim(&self, host: &str) -> ExecResult<()> {
        self.verb(host, Verb::Claim).await
    }

    async fn glusterd_check(&self, host: &str) -> ExecResult<()> {
        self.verb(host, Verb::GlusterdCheck).await
    }

    async fn peer_probe(&self, host: &str, new_peer: &str) -> ExecResult<()> {
        let peer = new_peer.to_string();
        self.verb(host, Verb::PeerProbe { peer }).await
    }

    async fn peer_detach(&self, host: &str, peer: &str) -> ExecResult<()> {
        let peer = peer.to_string();
        self.verb(host, Verb::PeerDetach { peer }).await
    }

    async fn device_setup(
        &self,
        host: &str,
        device: &str,
        vg: &str,
        _destroydata: bool,
    ) -> ExecResult<DeviceInfo> {
        let verb = Verb::DeviceSetup {
            device: device.into(),
            vg: vg.into(),
            size_kib: self.cfg.device_size_gb * 1024 * 1024,
        };
        self.verb(host, verb).await
    }

    async fn device_teardown(&self, host: &str, device: &str, vg: &str) -> ExecResult<()> {
        let verb = Verb::DeviceTeardown {
            device: device.into(),
            vg: vg.into(),
        };
        self.verb(host, verb).await
    }

    async fn device_info(&self, host: &str, vg: &str) -> ExecResult<DeviceInfo> {
        self.verb(host, Verb::DeviceInfo { vg: vg.into() }).await
    }

    async fn brick_create(&self, host: &str, b: &BrickSpec) -> ExecResult<()> {
        b.check_ours()?;
        self.verb(host, brick_verb(b, true)).await
    }

    async fn brick_destroy(&self, host: &str, b: &BrickSpec) -> ExecResult<bool> {
        b.check_ours()?;
        self.verb(host, brick_verb(b, false)).await
    }

    async fn brick_create_all(&self, bricks: &[(String, BrickSpec)]) -> Vec<ExecResult<()>> {
        self.brick_round(bricks, true).await
    }

    async fn brick_destroy_all(&self, bricks: &[(String, BrickSpec)]) -> Vec<ExecResult<bool>> {
        self.brick_round(bricks, false).await
    }

    async fn volume_create(&self, host: &str, v: &VolumeSpec) -> ExecResult<()> {
        let verb = Verb::VolumeCreate {
            name: v.name.clone(),
            id: v.id.clone(),
            bricks: v.bricks.clone(),
            options: v.options.clone(),
        };
        self.verb(host, verb).await
    }

    /// As the SSH executor: a read (`volume_expand`: owner, bricks mounted, which are
    /// missing), then one `add_brick` verb per `add-brick` command, split as Gluster's CLI
    /// is driven (`commands::add_brick_chunks`), so a fault can stop the sequence half-way.
    async fn volume_expand(&self, host: &str, v: &VolumeSpec, new_bricks: &[String]) -> ExecResult<()> {
        let read = Verb::VolumeExpand {
            name: v.name.clone(),
            id: v.id.clone(),
            new_bricks: new_bricks.to_vec(),
        };
        let missing: Vec<String> = self.verb(host, read).await?;
        for chunk in super::commands::add_brick_chunks(v, &missing) {
            let add = Verb::AddBrick {
                name: v.name.clone(),
                bricks: chunk.to_vec(),
            };
            self.verb::<()>(host, add).await?;
        }
        Ok(())
    }

    async fn volume_destroy(&self, host: &str, name: &str, id: &str) -> ExecResult<()> {
        // The real executor reads `volume info` first: a read, then the destroy.
        self.volume_owner(host, name).await?.check(name, id)?;
        let verb = Verb::VolumeDestroy {
            name: name.into(),
            id: id.into(),
        };
        self.verb(host, verb).await
    }

    async fn volume_owner(&self, host: &str, name: &str) -> ExecResult<VolumeOwner> {
        self.verb(host, Verb::VolumeOwner { name: name.into() }).await
    }

    async fn replace_brick(&self, host: &str, volume: &str, old: &str, new: &str) -> ExecResult<()> {
        let verb = Verb::ReplaceBrick {
            volume: volume.into(),
            old: old.into(),
            new: new.into(),
        };
        self.verb(host, verb).await
    }

    async fn volume_clone(
        &self,
        host: &str,
        volume: &str,
        clone: &str,
        clone_id: &str,
    ) -> ExecResult<Vec<(String, String)>> {
        let verb = Verb::VolumeClone {
            volume: volume.into(),
            clone: clone.into(),
            clone_id: clone_id.into(),
        };
        self.verb(host, verb).await
    }

    async fn volume_bricks(&self, host: &str, volume: &str) -> ExecResult<Vec<String>> {
        let volume = volume.to_string();
        self.verb(host, Verb::VolumeBricks { volume }).await
    }

    async fn heal_info(&self, host: &str, volume: &str) -> ExecResult<Vec<HealBrick>> {
        let volume = volume.to_string();
        self.verb(host, Verb::HealInfo { volume }).await
    }

    async fn inventory(&self, host: &str) -> ExecResult<NodeInventory> {
        self.verb(host, Verb::Inventory).await
    }

    async fn volumes(&self, host: &str) -> ExecResult<BTreeMap<String, GlusterVolume>> {
        self.verb(host, Verb::Volumes).await
    }

    async fn block_create(&self, host: &str, spec: &BlockSpec) -> ExecResult<BlockTarget> {
        let spec = spec.clone();
        self.verb(host, Verb::BlockCreate { spec }).await
    }

    async fn block_info(&self, host: &str, bhv: &str, name: &str) -> ExecResult<Option<BlockTarget>> {
        let (bhv, name) = (bhv.to_string(), name.to_string());
        self.verb(host, Verb::BlockInfo { bhv, name }).await
    }

    async fn block_modify(&self, host: &str, bhv: &str, name: &str, size_gib: u64) -> ExecResult<()> {
        let (bhv, name) = (bhv.to_string(), name.to_string());
        self.verb(host, Verb::BlockModify { bhv, name, size_gib }).await
    }

    async fn block_delete(&self, host: &str, bhv: &str, name: &str) -> ExecResult<()> {
        let (bhv, name) = (bhv.to_string(), name.to_string());
        match self.verb(host, Verb::BlockDelete { bhv, name }).await {
            // gluster-block's "does not exist" (block volume or BHV): already deleted.
            Err(ExecError::Failed(m)) if m.contains("doesn't exist") || m.contains("does not exist") => {
                Ok(())
            }
            other => other,
        }
    }

    async fn block_list(&self, host: &str, bhv: &str) -> ExecResult<Vec<String>> {
        let bhv = bhv.to_string();
        self.verb(host, Verb::BlockList { bhv }).await
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{ExecError, Executor, FenceToken, FENCE, GUARD_REFUSED_PREFIX, OWNER_OPTION};
    use super::*;

    const VG: &str = "vg_0123456789abcdef0123456789abcdef";

    fn tok(cluster: &str, term: u64) -> FenceToken {
        FenceToken {
            cluster: cluster.into(),
            term,
        }
    }

    /// Runs `f` as the fence would: every verb carries a fencing token.
    async fn fenced<T>(f: impl std::future::Future<Output = T>) -> T {
        FENCE.scope(tok("c", 1), f).await
    }

    fn brick(id: &str) -> BrickSpec {
        BrickSpec {
            id: id.into(),
            vg: VG.into(),
            thin_pool: format!("tp_{id}"),
            lv_name: None,
            mount: None,
            tp_size: 1 << 20,
            meta_size: 8192,
            size: 1 << 20,
            gid: 0,
            arbiter: false,
        }
    }

    /// A `hekate mock-nodes` in this process, on a socket in `dir`.
    struct Served {
        url: String,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    }

    impl Served {
        async fn start(dir: &Path, state: Option<&Path>) -> Served {
            let url = format!("unix:{}", dir.join("nodes.sock").display());
            let bound = server::bind(server::NodesOptions {
                listen: url.clone(),
                state: state.map(Path::to_path_buf),
                token: None,
                command_log_max: 50,
                persist_every: Duration::from_secs(3600),
            })
            .await
            .unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(bound.run(async move {
                let _ = rx.await;
            }));
            Served {
                url,
                stop: Some(tx),
                task: Some(task),
            }
        }

        /// A replica's executor on these nodes.
        fn replica(&self, cfg: MockConfig) -> MockExecutor {
            MockExecutor::new(MockConfig {
                nodes_url: self.url.clone(),
                ..cfg
            })
            .unwrap()
        }

        /// SIGTERM's path: stops serving and writes the model.
        async fn stop(mut self) {
            let _ = self.stop.take().unwrap().send(());
            self.task.take().unwrap().await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn the_guard_refuses_stale_terms_and_unfenced_verbs() {
        let m = MockExecutor::in_memory(MockConfig::default());
        FENCE.scope(tok("c", 5), m.glusterd_check("h")).await.unwrap();
        let err = FENCE
            .scope(tok("c", 4), m.peer_probe("h", "x"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ExecError::Fenced(m) if m.starts_with(GUARD_REFUSED_PREFIX) && m.contains("older than term 5")),
            "{err}"
        );
        let err = m.peer_probe("h", "x").await.unwrap_err();
        assert!(
            matches!(&err, ExecError::Fenced(m) if m.contains("no fencing token")),
            "{err}"
        );
        assert!(
            m.snapshot().await.unwrap().hosts["h"].peers.is_empty(),
            "refused verbs changed nothing"
        );
        // Another cluster's identity has its own record.
        FENCE.scope(tok("d", 1), m.peer_probe("h", "y")).await.unwrap();
        FENCE.scope(tok("c", 6), m.peer_probe("h", "z")).await.unwrap();
        let h = &m.snapshot().await.unwrap().hosts["h"];
        assert_eq!(h.guard, [("c".to_string(), 6), ("d".to_string(), 1)].into());
        let log = m.command_log().await.unwrap();
        let refused: Vec<_> = log.into_iter().filter(|r| r.refused).collect();
        assert_eq!(refused.len(), 2, "{refused:?}");
    }

    #[tokio::test]
    async fn two_replicas_on_shared_nodes_are_fenced_by_the_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let nodes = Served::start(dir.path(), None).await;
        let (old, new) = (
            nodes.replica(MockConfig::default()),
            nodes.replica(MockConfig::default()),
        );
        FENCE.scope(tok("c", 4), old.peer_probe("h", "a")).await.unwrap();
        // The new leader's claim raises the node's record: the old leader's next verb is
        // refused there, with the guard's message, and changes nothing.
        FENCE.scope(tok("c", 5), new.claim("h")).await.unwrap();
        let err = FENCE
            .scope(tok("c", 4), old.peer_probe("h", "b"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ExecError::Fenced(m) if m.starts_with(GUARD_REFUSED_PREFIX) && m.contains("older than term 5 seen on h")),
            "{err}"
        );
        let err = old.peer_probe("h", "c").await.unwrap_err();
        assert!(
            matches!(&err, ExecError::Fenced(m) if m.contains("no fencing token")),
            "{err}"
        );
        // An operator's verb passes the guard (term 0 in the record).
        MockExecutor::as_operator(old.peer_probe("h", "op"))
            .await
            .unwrap();
        let s = new.snapshot().await.unwrap();
        assert_eq!(s.hosts["h"].peers, ["a".to_string(), "op".to_string()].into());
        assert_eq!(s.hosts["h"].guard, [("c".to_string(), 5)].into());
        let log = new.command_log().await.unwrap();
        let seen: Vec<(u64, bool, &str)> = log.iter().map(|r| (r.term, r.refused, r.verb.as_str())).collect();
        assert_eq!(
            seen,
            [
                (4, false, "peer_probe"),
                (5, false, "claim"),
                (4, true, "peer_probe"),
                (0, true, "peer_probe"),
                (0, false, "peer_probe")
            ]
        );
        nodes.stop().await;
    }

    #[tokio::test]
    async fn faults_and_injections_reach_every_replica() {
        fenced(async {
            let dir = tempfile::tempdir().unwrap();
            let nodes = Served::start(dir.path(), None).await;
            let a = nodes.replica(MockConfig {
                fail: vec![Injection {
                    verb: "peer_probe".into(),
                    host: "bad".into(),
                    message: "boom".into(),
                }],
                ..Default::default()
            });
            let b = nodes.replica(MockConfig::default());
            let test = nodes.replica(MockConfig::default());
            // A static injection is the replica's own; it still passes the node's guard.
            assert_eq!(
                a.peer_probe("bad", "x").await.unwrap_err(),
                ExecError::Failed("boom".into())
            );
            assert!(b.peer_probe("bad", "x").await.is_ok());
            // A fault armed by a test fires on whichever replica sends: skip one, fail one.
            test.add_fault(Fault {
                verb: "device_setup".into(),
                host: "h".into(),
                skip: 1,
                times: 1,
                ..Default::default()
            })
            .await
            .unwrap();
            a.device_setup("h", "/dev/sdb", VG, false).await.unwrap();
            let err = b.device_setup("h", "/dev/sdc", "vg_x", false).await.unwrap_err();
            assert!(
                matches!(err, ExecError::Unreachable { ref host, .. } if host == "h"),
                "{err}"
            );
            // `after`: the work is done on the node, the answer lost.
            test.add_fault(Fault {
                verb: "peer_probe".into(),
                after: true,
                message: "connection reset".into(),
                ..Default::default()
            })
            .await
            .unwrap();
            assert!(b.peer_probe("h", "late").await.is_err());
            let s = test.snapshot().await.unwrap();
            assert!(s.hosts["h"].peers.contains("late"));
            assert!(s.hosts["h"].vgs.contains_key(VG), "b sees what a did");
            assert!(!s.hosts["h"].vgs.contains_key("vg_x"));
            assert_eq!(test.clear_faults().await.unwrap(), 2);
            test.set_glusterd_down("h", true).await.unwrap();
            assert!(a.glusterd_check("h").await.is_err());
            test.set_glusterd_down("h", false).await.unwrap();
            a.glusterd_check("h").await.unwrap();
            nodes.stop().await;
        })
        .await
    }

    /// Three bricks on three hosts, as a replica-3 create sends them.
    async fn brick_round_on(m: &MockExecutor) -> Vec<ExecResult<()>> {
        for h in ["h1", "h2", "h3"] {
            m.device_setup(h, "/dev/sdb", VG, false).await.unwrap();
        }
        let mut foreign = brick("b3");
        foreign.thin_pool = "tp-b3;rm".into();
        let round = [
            ("h1".to_string(), brick("b1")),
            ("h2".to_string(), brick("b2")),
            ("h3".to_string(), foreign),
        ];
        m.brick_create_all(&round).await
    }

    /// A round of brick verbs goes to the shared nodes in one request, yet each brick is
    /// its own verb there: answered in order, a fault fails only its host's brick, each is
    /// recorded, and a brick not named as Hekate names bricks is never sent.
    #[tokio::test]
    async fn a_round_of_brick_verbs_answers_each_brick() {
        fenced(async {
            let dir = tempfile::tempdir().unwrap();
            let nodes = Served::start(dir.path(), None).await;
            let m = nodes.replica(MockConfig::default());
            m.add_fault(Fault {
                verb: "brick_create".into(),
                host: "h2".into(),
                times: 1,
                ..Default::default()
            })
            .await
            .unwrap();
            let out = brick_round_on(&m).await;
            assert_eq!(out[0], Ok(()));
            assert!(
                matches!(&out[1], Err(ExecError::Unreachable { host, .. }) if host == "h2"),
                "{:?}",
                out[1]
            );
            assert!(matches!(&out[2], Err(ExecError::Foreign(_))), "{:?}", out[2]);
            let s = m.snapshot().await.unwrap();
            assert!(s.hosts["h1"].vgs[VG].pools.contains_key("tp_b1"));
            assert!(!s.hosts["h2"].vgs[VG].pools.contains_key("tp_b2"));
            let sent: Vec<(String, String)> = m
                .command_log()
                .await
                .unwrap()
                .into_iter()
                .filter(|r| r.verb.starts_with("brick_"))
                .map(|r| (r.verb, r.host))
                .collect();
            let expect = |v: &str, hs: &[&str]| {
                hs.iter()
                    .map(|h| (v.to_string(), h.to_string()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(sent, expect("brick_create", &["h1", "h2"]));
            let gone = m
                .brick_destroy_all(&[("h1".into(), brick("b1")), ("h2".into(), brick("b2"))])
                .await;
            assert!(gone.iter().all(|r| r.is_ok()), "{gone:?}");
            assert!(!m.snapshot().await.unwrap().hosts["h1"].vgs[VG]
                .pools
                .contains_key("tp_b1"));
            nodes.stop().await;
        })
        .await
    }

    /// A `hekate mock-nodes` of an earlier release (no `/verbs`, as in a rolling upgrade
    /// of a cluster whose nodes process was started by the old build) gets one request
    /// per verb of the round, with the same answers.
    #[tokio::test]
    async fn a_round_reaches_nodes_without_the_round_path_verb_by_verb() {
        fenced(async {
            let dir = tempfile::tempdir().unwrap();
            let sock = dir.path().join("old.sock");
            let listener = tokio::net::UnixListener::bind(&sock).unwrap();
            let nodes = Arc::new(Nodes::new(MockState::default(), 50));
            let served = nodes.clone();
            let app = axum::Router::new().route(
                remote::PATH_VERB,
                axum::routing::post(move |axum::Json(req): axum::Json<Request>| {
                    let n = served.clone();
                    async move { axum::Json(n.run(&req)) }
                }),
            );
            let server = tokio::spawn(async move { axum::serve(listener, app).await });
            let m = MockExecutor::new(MockConfig {
                nodes_url: format!("unix:{}", sock.display()),
                ..Default::default()
            })
            .unwrap();
            let out = brick_round_on(&m).await;
            assert_eq!(out[0], Ok(()));
            assert_eq!(out[1], Ok(()));
            assert!(matches!(&out[2], Err(ExecError::Foreign(_))), "{:?}", out[2]);
            let created = nodes.snapshot().0;
            assert!(created.hosts["h2"].vgs[VG].pools.contains_key("tp_b2"));
            server.abort();
        })
        .await
    }

    #[tokio::test]
    async fn the_nodes_survive_a_restart_of_mock_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nodes.json");
        let nodes = Served::start(dir.path(), Some(&file)).await;
        let r = nodes.replica(MockConfig::default());
        FENCE
            .scope(tok("c", 7), async {
                r.device_setup("h", "/dev/sdb", VG, false).await.unwrap();
                r.brick_create("h", &brick("b1")).await.unwrap();
            })
            .await;
        r.plant(|s| {
            s.volumes.insert(
                "planted".into(),
                MockVolume {
                    id: "g".into(),
                    bricks: vec![format!("s:{}", brick("b1").path())],
                    started: true,
                    options: Default::default(),
                    blocks: Default::default(),
                },
            );
        })
        .await
        .unwrap();
        let before = r.snapshot().await.unwrap();
        nodes.stop().await;

        let err = FENCE.scope(tok("c", 7), r.claim("h")).await.unwrap_err();
        assert!(
            matches!(err, ExecError::Unreachable { ref host, .. } if host == "h"),
            "{err}"
        );

        let nodes = Served::start(dir.path(), Some(&file)).await;
        assert_eq!(
            r.snapshot().await.unwrap(),
            before,
            "the same nodes after the restart"
        );
        // The guard's record came back too, and so did the brick index: the planted
        // volume's brick is in use.
        let err = FENCE.scope(tok("c", 6), r.claim("h")).await.unwrap_err();
        assert!(matches!(err, ExecError::Fenced(_)), "{err}");
        let err = FENCE
            .scope(tok("c", 7), r.brick_destroy("h", &brick("b1")))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("in use by volume planted"), "{err}");
        nodes.stop().await;
    }

    #[tokio::test]
    async fn an_unreachable_server_is_an_unreachable_node() {
        let dir = tempfile::tempdir().unwrap();
        let r = MockExecutor::new(MockConfig {
            nodes_url: format!("unix:{}", dir.path().join("none.sock").display()),
            ..Default::default()
        })
        .unwrap();
        let err = fenced(r.glusterd_check("node1")).await.unwrap_err();
        assert!(
            matches!(&err, ExecError::Unreachable { host, msg } if host == "node1" && msg.contains("mock nodes at unix:")),
            "{err}"
        );
        assert!(r.snapshot().await.is_err());
        for bad in [
            "/no/scheme.sock",
            "unix:relative",
            "http://10.1.2.3:80",
            "localhost",
        ] {
            let cfg = MockConfig {
                nodes_url: bad.into(),
                ..Default::default()
            };
            assert!(MockExecutor::new(cfg).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_tcp_listener_needs_a_token_and_a_served_socket_is_not_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let opts = |listen: String, token: Option<&str>| server::NodesOptions {
            listen,
            state: None,
            token: token.map(String::from),
            command_log_max: 10,
            persist_every: Duration::from_secs(3600),
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let err = server::bind(opts(addr.clone(), None)).await.err().unwrap();
        assert!(err.to_string().contains("--token-file"), "{err}");
        assert!(server::bind(opts("10.0.0.1:1".into(), Some("t"))).await.is_err());
        let bound = server::bind(opts(addr.clone(), Some("sesame"))).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(bound.run(async move {
            let _ = rx.await;
        }));
        let cfg = |token: &str| MockConfig {
            nodes_url: format!("http://{addr}"),
            nodes_token: token.into(),
            ..Default::default()
        };
        let err = fenced(MockExecutor::new(cfg("wrong")).unwrap().claim("h"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ExecError::Unreachable { msg, .. } if msg.contains("401")),
            "{err}"
        );
        fenced(MockExecutor::new(cfg("sesame")).unwrap().claim("h"))
            .await
            .unwrap();
        let _ = tx.send(());
        task.await.unwrap().unwrap();

        let nodes = Served::start(dir.path(), None).await;
        let again = server::bind(opts(nodes.url.clone(), None)).await.err().unwrap();
        assert!(again.to_string().contains("another mock-nodes"), "{again}");
        nodes.stop().await;
        // Stopped: the socket is gone, and a new server may take the path.
        Served::start(dir.path(), None).await.stop().await;
    }

    #[tokio::test]
    async fn command_log_is_bounded() {
        fenced(async {
            let m = MockExecutor::in_memory(MockConfig {
                command_log_max: 10,
                ..Default::default()
            });
            let dir = tempfile::tempdir().unwrap();
            let nodes = Served::start(dir.path(), None).await; // keeps 50
            let r = nodes.replica(MockConfig::default());
            for i in 0..75 {
                m.glusterd_check(&format!("h{i}")).await.unwrap();
                r.glusterd_check(&format!("h{i}")).await.unwrap();
            }
            for (log, kept) in [
                (m.command_log().await.unwrap(), 10),
                (r.command_log().await.unwrap(), 50),
            ] {
                assert_eq!(log.len(), kept);
                assert_eq!(
                    (log[0].host.clone(), log[kept - 1].host.as_str()),
                    (format!("h{}", 75 - kept), "h74"),
                    "the newest are kept, oldest first"
                );
            }
            nodes.stop().await;
        })
        .await
    }

    /// The same rules, in memory and through `hekate mock-nodes`.
    async fn node_rules(m: &MockExecutor) {
        device_and_brick_rules(m).await;
        let clone = volume_rules(m).await;
        teardown_rules(m, &clone).await;
    }

    /// A device set up once (its PV not taken twice), a brick made once, space checked.
    async fn device_and_brick_rules(m: &MockExecutor) {
        assert!(m.brick_create("h", &brick("b1")).await.is_err(), "no VG yet");
        let d = m.device_setup("h", "/dev/sdb", VG, false).await.unwrap();
        assert_eq!(d.total_kib, 2 << 20);
        assert!(
            m.device_setup("h", "/dev/sdb", VG, false).await.is_ok(),
            "idempotent"
        );
        assert!(
            m.device_setup("h", "/dev/sdb", "vg_d2", false).await.is_err(),
            "PV in use"
        );
        m.brick_create("h", &brick("b1")).await.unwrap();
        m.brick_create("h", &brick("b1")).await.unwrap();
        let err = m.brick_create("h", &brick("b2")).await.unwrap_err();
        assert!(err.to_string().contains("Insufficient free space"), "{err}");
    }

    /// A volume on the brick, read back every way; cloned once. Returns the clone's bricks.
    async fn volume_rules(m: &MockExecutor) -> Vec<(String, String)> {
        let vol = VolumeSpec {
            id: "v".into(),
            name: "vol".into(),
            bricks: vec![format!("s:{}", brick("b1").path())],
            replica: None,
            arbiter: false,
            disperse: None,
            options: vec![format!("{OWNER_OPTION} v")],
        };
        m.volume_create("h", &vol).await.unwrap();
        assert_eq!(
            m.volume_owner("h", "vol").await.unwrap(),
            VolumeOwner::Marked("v".into())
        );
        assert_eq!(m.volume_bricks("h", "vol").await.unwrap(), vol.bricks);
        let heal = m.heal_info("h", "vol").await.unwrap();
        assert!(heal.len() == 1 && heal[0].connected, "{heal:?}");
        let inv = m.inventory("h").await.unwrap();
        assert_eq!(inv.vgs[VG].lvs.len(), 2, "the brick's LV and its pool: {inv:?}");
        assert_eq!(m.volumes("h").await.unwrap()["vol"].mark.as_deref(), Some("v"));
        let clone = m.volume_clone("h", "vol", "snap", "w").await.unwrap();
        assert_eq!(clone.len(), 1);
        assert_eq!(
            m.volume_clone("h", "vol", "snap", "w").await.unwrap(),
            clone,
            "idempotent"
        );
        clone
    }

    /// Foreign and in-use objects refused, then everything removed (a pool shared with the
    /// clone's LV last), leaving the host as it was.
    async fn teardown_rules(m: &MockExecutor, clone: &[(String, String)]) {
        m.volume_destroy("h", "snap", "w").await.unwrap();
        let other = m.volume_destroy("h", "vol", "w").await.unwrap_err();
        assert!(matches!(other, ExecError::Foreign(_)), "{other}");
        assert!(m.brick_destroy("h", &brick("b1")).await.is_err(), "brick in use");
        assert!(
            m.device_teardown("h", "/dev/sdb", VG).await.is_err(),
            "VG not empty"
        );
        m.volume_destroy("h", "vol", "v").await.unwrap();
        m.volume_destroy("h", "vol", "v").await.unwrap();
        // The clone's LV shares the thin pool: the pool stays until the last LV goes.
        let clone_lv = BrickSpec {
            lv_name: Some(clone[0].1.clone()),
            mount: Some(
                clone[0]
                    .0
                    .split_once(':')
                    .unwrap()
                    .1
                    .strip_suffix("/brick")
                    .unwrap()
                    .to_string(),
            ),
            ..brick("b1")
        };
        assert!(!m.brick_destroy("h", &brick("b1")).await.unwrap(), "pool shared");
        assert!(m.brick_destroy("h", &clone_lv).await.unwrap());
        assert!(
            m.brick_destroy("h", &brick("b1")).await.unwrap(),
            "already gone is fine"
        );
        m.device_teardown("h", "/dev/sdb", VG).await.unwrap();
        let left = MockHost {
            guard: Default::default(),
            ..m.snapshot().await.unwrap().hosts["h"].clone()
        };
        assert_eq!(left, MockHost::default());
    }

    #[tokio::test]
    async fn enforces_node_rules_and_is_idempotent_in_memory_and_shared() {
        fenced(async {
            let cfg = MockConfig {
                device_size_gb: 2,
                ..Default::default()
            };
            node_rules(&MockExecutor::in_memory(cfg.clone())).await;
            let dir = tempfile::tempdir().unwrap();
            let nodes = Served::start(dir.path(), None).await;
            node_rules(&nodes.replica(cfg)).await;
            nodes.stop().await;
        })
        .await
    }

    #[tokio::test]
    async fn foreign_volumes_and_bricks_are_left_alone() {
        fenced(async {
            let m = MockExecutor::in_memory(MockConfig::default());
            m.device_setup("h", "/dev/sdb", VG, false).await.unwrap();
            m.plant(|s| {
                s.volumes.insert(
                    "heketidbstorage".into(),
                    MockVolume {
                        id: "g".into(),
                        bricks: vec!["h:/srv/db/brick".into()],
                        started: true,
                        options: Default::default(),
                        blocks: Default::default(),
                    },
                );
            })
            .await
            .unwrap();
            assert_eq!(
                m.volume_owner("h", "heketidbstorage").await.unwrap(),
                VolumeOwner::Unmarked
            );
            assert_eq!(m.volume_owner("h", "nope").await.unwrap(), VolumeOwner::Absent);
            let e = m.volume_destroy("h", "heketidbstorage", "v").await.unwrap_err();
            assert!(e.to_string().starts_with(super::super::CONFLICT_PREFIX), "{e}");
            let vol = VolumeSpec {
                id: "v".into(),
                name: "heketidbstorage".into(),
                bricks: vec!["h:/srv/db/brick".into()],
                replica: None,
                arbiter: false,
                disperse: None,
                options: vec![],
            };
            assert!(matches!(
                m.volume_create("h", &vol).await,
                Err(ExecError::Foreign(_))
            ));
            assert!(matches!(
                m.volume_clone("h", "x", "heketidbstorage", "v").await,
                Err(ExecError::Foreign(_))
            ));
            // A brick outside Hekate's names is refused before the model is touched.
            let mut b = brick("b1");
            b.mount = Some("/srv/db".into());
            assert!(matches!(
                m.brick_destroy("h", &b).await,
                Err(ExecError::Foreign(_))
            ));
            let mut b = brick("b1");
            b.lv_name = Some("x;rm".into());
            assert!(matches!(
                m.brick_create("h", &b).await,
                Err(ExecError::Foreign(_))
            ));
            assert!(m
                .snapshot()
                .await
                .unwrap()
                .volumes
                .contains_key("heketidbstorage"));
            let log = m.command_log().await.unwrap();
            // The refused create and clone reached the (mock) node, which refused them; the
            // destroy never did: its ownership read came first.
            assert!(
                !log.iter()
                    .any(|r| r.object == "heketidbstorage" && r.verb == "volume_destroy"),
                "{log:?}"
            );
        })
        .await
    }
}
