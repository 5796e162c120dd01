//! The remote steps of each operation kind, and their cleanup when a step fails. Everything
//! the steps need from the state is gathered first ([`Ctx`]), so no state read happens while
//! a remote step runs. Steps are idempotent: a new leader re-runs them from the start.

use std::collections::BTreeMap;
use std::time::Duration;

use hekate_raft::{StateReader, StoreError};

use crate::executor::{BrickSpec, ExecError, Executor, VolumeOwner, VolumeSpec, OWNER_OPTION};
use crate::state::model::{BrickEntry, DurabilityKind, EntryState, NodeEntry, Operation, VolumeEntry};
use crate::state::{self};

pub use super::step::{StepError, StepResult};

/// The wait before the next round of a step that is retried until it is done (round 1, 2,
/// 3, ...: 1 s, 2 s, 4 s, ... at most 32 s).
pub fn backoff(round: u32) -> Duration {
    Duration::from_millis(500u64 << round.clamp(1, 6))
}

/// What an operation's steps need to know, read from one consistent view.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    pub nodes: BTreeMap<String, NodeEntry>,
    pub volume: Option<VolumeEntry>,
    pub bricks: Vec<BrickEntry>,
    pub device_state: Option<EntryState>,
    pub device_bricks: usize,
    pub device_name: Option<String>,
    /// Evictions: the bricks being replaced and their volumes.
    pub old_bricks: BTreeMap<String, BrickEntry>,
    pub volumes: BTreeMap<String, VolumeEntry>,
    /// Nodes the health monitor last saw down (`ops::health`), when the context was loaded.
    pub seen_down: std::collections::BTreeSet<String>,
    /// Block volume delete and expand: the block volume.
    pub block: Option<crate::state::model::BlockVolumeEntry>,
}

impl Ctx {
    pub fn load(r: &impl StateReader, op: &Operation) -> Result<Ctx, StoreError> {
        super::kinds::load(r, op)
    }

    /// Adds a node (once).
    pub fn add_node(&mut self, r: &impl StateReader, id: &str) -> Result<(), StoreError> {
        if !self.nodes.contains_key(id) {
            if let Some(n) = state::get_node(r, id)? {
                self.nodes.insert(id.to_string(), n);
            }
            let now = crate::clock::now_secs();
            if state::node_health(r, id)?.is_some_and(|h| h.down_at(now)) {
                self.seen_down.insert(id.to_string());
            }
        }
        Ok(())
    }

    /// Adds every node of a cluster: any of them can run volume-level gluster commands.
    pub fn add_cluster_nodes(&mut self, r: &impl StateReader, cluster: &str) -> Result<(), StoreError> {
        if let Some(c) = state::get_cluster(r, cluster)? {
            for n in c.nodes {
                self.add_node(r, &n)?;
            }
        }
        Ok(())
    }

    /// A device's state, brick count and name (device state and delete).
    pub fn add_device(&mut self, r: &impl StateReader, device: &str) -> Result<(), StoreError> {
        if let Some(d) = state::get_device(r, device)? {
            self.device_state = Some(d.state.clone());
            self.device_bricks = d.brick_count as usize;
            self.device_name = Some(d.name.clone());
        }
        Ok(())
    }

    /// The nodes to ask for a volume-level Gluster command, best first: online nodes that
    /// hold the operation's bricks, then other online nodes, online nodes the health monitor
    /// last saw down after both, then the rest (offline or failed: an administrator's sign that
    /// they may not answer, and a dead node costs its whole connect budget before the next is
    /// tried). Nodes seen down are kept last rather than dropped: the monitor may be stale.
    pub fn volume_hosts(&self) -> Vec<&NodeEntry> {
        let holds = |n: &NodeEntry| self.bricks.iter().any(|b| b.node == n.id);
        let mut nodes: Vec<&NodeEntry> = self.nodes.values().collect();
        nodes.sort_by_key(|n| (!n.state.is_online(), self.seen_down.contains(&n.id), !holds(n)));
        nodes
    }

    pub fn manage(&self, node: &str) -> String {
        self.nodes
            .get(node)
            .map(|n| n.manage_host().to_string())
            .unwrap_or_default()
    }
    pub fn storage(&self, node: &str) -> String {
        self.nodes
            .get(node)
            .map(|n| n.storage_host().to_string())
            .unwrap_or_default()
    }
}

pub fn spec(b: &BrickEntry, gid: i64) -> BrickSpec {
    BrickSpec {
        id: b.id.clone(),
        vg: format!("vg_{}", b.device),
        thin_pool: b.thin_pool(),
        lv_name: b.lvm_lv.clone(),
        mount: b
            .lvm_lv
            .as_ref()
            .map(|_| b.path.strip_suffix("/brick").unwrap_or(&b.path).to_string()),
        tp_size: b.tp_size,
        meta_size: b.pool_metadata_size,
        size: b.size,
        gid,
        arbiter: b.subtype == state::model::SUBTYPE_ARBITER,
    }
}

pub fn volume_spec(v: &VolumeEntry, bricks: &[BrickEntry], ctx: &Ctx) -> VolumeSpec {
    let d = &v.durability;
    // The ownership mark is Hekate's alone: a requested `user.heketi.id` is dropped.
    let mut options: Vec<String> = v
        .options
        .iter()
        .filter(|o| !o.is_empty() && o.split_whitespace().next() != Some(OWNER_OPTION))
        .cloned()
        .collect();
    options.push(format!("{OWNER_OPTION} {}", v.id));
    VolumeSpec {
        id: v.id.clone(),
        name: v.name.clone(),
        bricks: bricks
            .iter()
            .map(|b| format!("{}:{}", ctx.storage(&b.node), b.path))
            .collect(),
        replica: (d.kind() == DurabilityKind::Replicate).then(|| d.effective_replica()),
        arbiter: v.arbiter,
        disperse: (d.kind() == DurabilityKind::Disperse)
            .then(|| (d.data.unwrap_or(0), d.redundancy.unwrap_or(0))),
        options,
    }
}

/// The volume's bricks as Gluster lists them, asked of each node in turn until one answers;
/// none when Gluster says the volume does not exist. `Err` only when no node could tell.
pub async fn gluster_bricks(exec: &dyn Executor, ctx: &Ctx, volume: &str) -> StepResult<Vec<String>> {
    let mut last = StepError::Failed("no node to ask".into());
    for n in ctx.volume_hosts() {
        let host = n.manage_host();
        let listed = match exec.volume_owner(host, volume).await {
            Ok(VolumeOwner::Absent) => return Ok(Vec::new()),
            Ok(_) => exec.volume_bricks(host, volume).await,
            Err(e) => Err(e),
        };
        match listed {
            Ok(b) => return Ok(b),
            Err(e) => last = e.into(),
        }
    }
    Err(last)
}

/// Destroys `bricks` past a point of no return, where failing the operation back is no longer
/// possible: a brick whose destroy fails is tried again, in rounds backing off, for as long as
/// `leading()` holds (`Err(StepError::Stopped)` once it does not: the next leader resumes). Heketi's rule
/// for a dead node: a brick whose destroy still fails after `patience` rounds while its node
/// does not answer `glusterd_check` either is left to the node's fate; so is a brick whose
/// names are not Hekate's (nothing is done to it). Those are returned (and logged): the
/// caller releases them with the rest, and reconcile reports what is left on the node once it
/// is back (an orphan brick and the device's drift, both repaired by `reconcile --repair`).
pub async fn destroy_until_gone(
    exec: &dyn Executor,
    ctx: &Ctx,
    bricks: &[BrickEntry],
    patience: u32,
    leading: &(dyn Fn() -> bool + Send + Sync),
) -> StepResult<Vec<BrickEntry>> {
    let mut left: Vec<&BrickEntry> = bricks.iter().collect();
    let mut given_up = Vec::new();
    let mut round = 0u32;
    while !left.is_empty() {
        let results = exec
            .brick_destroy_all(&brick_round(ctx, left.iter().copied(), 0))
            .await;
        if !leading() {
            return Err(StepError::Stopped);
        }
        round += 1;
        let mut still = Vec::new();
        for (b, r) in left.into_iter().zip(results) {
            let Err(err) = r else { continue };
            let dead = matches!(err, ExecError::Foreign(_))
                || (round >= patience && exec.glusterd_check(&ctx.manage(&b.node)).await.is_err());
            if !leading() {
                return Err(StepError::Stopped);
            }
            if dead {
                tracing::warn!(
                    brick = %b.id, node = %b.node, device = %b.device,
                    "brick destroy failed and its node does not answer: left to the node's fate; \
                     reconcile reports it once the node is back: {err}"
                );
                given_up.push(b.clone());
            } else {
                tracing::warn!(brick = %b.id, round, "brick destroy failed; trying again: {err}");
                still.push(b);
            }
        }
        left = still;
        if !left.is_empty() {
            tokio::time::sleep(backoff(round)).await;
            if !leading() {
                return Err(StepError::Stopped);
            }
        }
    }
    Ok(given_up)
}

/// Each brick's managing host and spec: one round of a brick verb.
fn brick_round<'a>(
    ctx: &Ctx,
    bricks: impl IntoIterator<Item = &'a BrickEntry>,
    gid: i64,
) -> Vec<(String, BrickSpec)> {
    bricks
        .into_iter()
        .map(|b| (ctx.manage(&b.node), spec(b, gid)))
        .collect()
}

pub async fn create_bricks(
    exec: &dyn Executor,
    ctx: &Ctx,
    bricks: &[BrickEntry],
    gid: i64,
) -> StepResult<()> {
    exec.brick_create_all(&brick_round(ctx, bricks, gid))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map(|_| ())
        .map_err(StepError::from)
}

pub async fn destroy_bricks(exec: &dyn Executor, ctx: &Ctx, bricks: &[BrickEntry]) -> StepResult<()> {
    exec.brick_destroy_all(&brick_round(ctx, bricks, 0))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map(|_| ())
        .map_err(StepError::from)
}

/// The check before anything changes on a node: the name is free on the nodes, or already
/// Hekate's volume `id` (a resumed operation). A read; the refusal names the conflict.
/// `ours`: the bricks this operation creates the volume on. A volume without the mark on
/// exactly those bricks (paths named by this operation's brick ids) was made by an earlier
/// attempt that stopped between `volume create` and setting the mark: it is this one.
pub async fn name_is_free(
    exec: &dyn Executor,
    host: &str,
    name: &str,
    id: &str,
    ours: Option<&[String]>,
) -> StepResult<()> {
    let owner = exec.volume_owner(host, name).await.map_err(StepError::from)?;
    if let (VolumeOwner::Unmarked, Some(bricks)) = (&owner, ours) {
        if exec.volume_bricks(host, name).await.ok().as_deref() == Some(bricks) {
            return Ok(());
        }
    }
    owner.check(name, id).map_err(StepError::from)
}

/// `storagehost:path` of a brick, as Gluster names it.
pub fn gluster_name(ctx: &Ctx, b: &BrickEntry) -> String {
    format!("{}:{}", ctx.storage(&b.node), b.path)
}

/// Which of `planned` (brick id, Gluster name) Gluster lists in `gluster`: the bricks an
/// interrupted `add-brick` sequence left in the volume, in plan order.
pub fn kept_bricks(planned: &[(String, String)], gluster: &[String]) -> Vec<String> {
    planned
        .iter()
        .filter(|(_, name)| gluster.contains(name))
        .map(|(id, _)| id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_bricks_are_the_planned_ones_gluster_lists_in_plan_order() {
        let planned: Vec<(String, String)> = (1..=4)
            .map(|i| (format!("b{i}"), format!("10.0.0.{i}:/p/{i}/brick")))
            .collect();
        let gluster = vec![
            "10.0.0.9:/old/brick".to_string(),
            "10.0.0.2:/p/2/brick".to_string(),
            "10.0.0.1:/p/1/brick".to_string(),
        ];
        assert_eq!(kept_bricks(&planned, &gluster), vec!["b1", "b2"]);
        assert!(kept_bricks(&planned, &[]).is_empty());
        let all: Vec<String> = planned.iter().map(|p| p.1.clone()).collect();
        assert_eq!(kept_bricks(&planned, &all).len(), 4);
    }

    use crate::executor::mock::{Fault, MockConfig, MockExecutor};

    fn vg(n: u32) -> String {
        format!("vg_{n:032x}")
    }

    /// Two nodes (`h1`, `h2`), each with a device and one brick; the context that names them.
    #[tokio::test]
    async fn volume_commands_ask_online_brick_nodes_first() {
        let (_m, mut ctx, bricks) = MockExecutor::as_operator(two_bricks()).await;
        // A third node without bricks, and the first brick node offline.
        let mut third = ctx.nodes.values().next().unwrap().clone();
        third.id = format!("{:032x}", 0);
        third.manage = vec!["h0".into()];
        ctx.nodes.insert(third.id.clone(), third);
        ctx.bricks = bricks;
        let first = ctx.bricks[0].node.clone();
        ctx.nodes.get_mut(&first).unwrap().state = EntryState::Offline;
        let order: Vec<&str> = ctx.volume_hosts().iter().map(|n| n.manage_host()).collect();
        assert_eq!(order, ["h2", "h0", "h1"]);
        // The brick node the health monitor saw down goes after the node without bricks.
        let second = ctx.bricks[1].node.clone();
        ctx.seen_down.insert(second);
        let order: Vec<&str> = ctx.volume_hosts().iter().map(|n| n.manage_host()).collect();
        assert_eq!(order, ["h0", "h2", "h1"]);
    }

    async fn two_bricks() -> (MockExecutor, Ctx, Vec<BrickEntry>) {
        let m = MockExecutor::in_memory(MockConfig::default());
        let mut ctx = Ctx::default();
        let mut bricks = Vec::new();
        for n in 1..=2u32 {
            let host = format!("h{n}");
            let node = format!("{n:032x}");
            m.device_setup(&host, "/dev/vdb", &vg(n), false).await.unwrap();
            ctx.nodes.insert(
                node.clone(),
                NodeEntry {
                    id: node.clone(),
                    cluster: String::new(),
                    zone: 1,
                    manage: vec![host.clone()],
                    storage: vec![format!("10.0.0.{n}")],
                    tags: Default::default(),
                    state: "online".into(),
                    devices: Default::default(),
                    pending: None,
                },
            );
            let id = format!("{:032x}", 100 + n);
            let device = format!("{n:032x}");
            let b = BrickEntry {
                path: format!("/var/lib/heketi/mounts/vg_{device}/brick_{id}/brick"),
                id,
                device,
                node,
                volume: String::new(),
                size: 1 << 20,
                tp_size: 1 << 20,
                pool_metadata_size: 8192,
                subtype: state::model::SUBTYPE_NORMAL,
                pending: None,
                lvm_thin_pool: None,
                lvm_lv: None,
                pool_shared: false,
            };
            m.brick_create(&host, &spec(&b, 0)).await.unwrap();
            bricks.push(b);
        }
        (m, ctx, bricks)
    }

    async fn pools(m: &MockExecutor) -> usize {
        let s = m.snapshot().await.unwrap();
        s.hosts
            .values()
            .flat_map(|h| h.vgs.values())
            .map(|v| v.pools.len())
            .sum()
    }

    #[tokio::test]
    async fn destroys_past_the_point_of_no_return_are_retried_until_gone() {
        // Verbs without a fencing token: the guard does not apply to an operator.
        MockExecutor::as_operator(async {
            let (m, ctx, bricks) = two_bricks().await;
            // A live node refusing once (a busy mount): tried again, never given up.
            m.add_fault(Fault {
                verb: "brick_destroy".into(),
                host: "h1".into(),
                times: 1,
                message: "umount: target is busy".into(),
                ..Default::default()
            })
            .await
            .unwrap();
            let given_up = destroy_until_gone(&m, &ctx, &bricks, 1, &|| true).await.unwrap();
            assert!(given_up.is_empty());
            assert_eq!(pools(&m).await, 0, "both bricks gone");
        })
        .await;
    }

    #[tokio::test]
    async fn a_dead_node_s_brick_is_given_up_after_patience_rounds() {
        // Verbs without a fencing token: the guard does not apply to an operator.
        MockExecutor::as_operator(async {
            let (m, ctx, bricks) = two_bricks().await;
            m.add_fault(Fault {
                verb: "*".into(),
                host: "h2".into(),
                ..Default::default()
            })
            .await
            .unwrap();
            let given_up = destroy_until_gone(&m, &ctx, &bricks, 2, &|| true).await.unwrap();
            assert_eq!(given_up, vec![bricks[1].clone()]);
            let log = m.command_log().await.unwrap();
            let tries = log
                .iter()
                .filter(|r| r.verb == "brick_destroy" && r.host == "h2")
                .count();
            assert_eq!(tries, 2, "two rounds before giving up: {log:?}");
            assert_eq!(pools(&m).await, 1, "h1's brick is gone, h2's left to its fate");
        })
        .await;
    }

    #[tokio::test]
    async fn gluster_is_read_back_from_any_node_and_absent_means_no_bricks() {
        // Verbs without a fencing token: the guard does not apply to an operator.
        MockExecutor::as_operator(async {
            let (m, ctx, bricks) = two_bricks().await;
            assert_eq!(
                gluster_bricks(&m, &ctx, "vol").await,
                Ok(vec![]),
                "no such volume"
            );
            let names: Vec<String> = bricks
                .iter()
                .map(|b| format!("{}:{}", ctx.storage(&b.node), b.path))
                .collect();
            let vol = VolumeSpec {
                id: "v".into(),
                name: "vol".into(),
                bricks: names.clone(),
                replica: Some(2),
                arbiter: false,
                disperse: None,
                options: vec![format!("{OWNER_OPTION} v")],
            };
            m.volume_create("h1", &vol).await.unwrap();
            // h1 (the first node) cannot be reached: h2 answers.
            m.add_fault(Fault {
                verb: "*".into(),
                host: "h1".into(),
                ..Default::default()
            })
            .await
            .unwrap();
            assert_eq!(gluster_bricks(&m, &ctx, "vol").await, Ok(names));
            m.add_fault(Fault {
                verb: "*".into(),
                host: "h2".into(),
                ..Default::default()
            })
            .await
            .unwrap();
            assert!(
                gluster_bricks(&m, &ctx, "vol").await.is_err(),
                "nobody answers: unknown"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_lost_leadership_stops_the_rounds() {
        // Verbs without a fencing token: the guard does not apply to an operator.
        MockExecutor::as_operator(async {
            let (m, ctx, bricks) = two_bricks().await;
            let r = destroy_until_gone(&m, &ctx, &bricks, 1, &|| false).await;
            assert_eq!(r, Err(StepError::Stopped));
        })
        .await;
    }

    #[test]
    fn backoff_doubles_from_one_second_up_to_32() {
        let s: Vec<u64> = (0..9).map(|r| backoff(r).as_secs()).collect();
        assert_eq!(s, vec![1, 1, 2, 4, 8, 16, 32, 32, 32]);
    }
}
