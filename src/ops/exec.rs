//! The remote steps of each operation kind, and their cleanup when a step fails. Everything
//! the steps need from the state is gathered first ([`Ctx`]), so no state read happens while
//! a remote step runs. Steps are idempotent: a new leader re-runs them from the start.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use hekate_raft::{StateReader, StoreError};

use crate::executor::{BrickSpec, ExecError, Executor, VolumeOwner, VolumeSpec, OWNER_OPTION};
use crate::state::model::{BrickEntry, ExecReport, NodeEntry, OpPlan, Operation, VolumeEntry};
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
    pub device_state: Option<String>,
    pub device_bricks: usize,
    pub device_name: Option<String>,
    /// Evictions: the bricks being replaced and their volumes.
    pub old_bricks: BTreeMap<String, BrickEntry>,
    pub volumes: BTreeMap<String, VolumeEntry>,
}

impl Ctx {
    pub fn load(r: &impl StateReader, op: &Operation) -> Result<Ctx, StoreError> {
        let mut ctx = Ctx::default();
        let add_node = |ctx: &mut Ctx, id: &str| -> Result<(), StoreError> {
            if !ctx.nodes.contains_key(id) {
                if let Some(n) = state::get_node(r, id)? {
                    ctx.nodes.insert(id.to_string(), n);
                }
            }
            Ok(())
        };
        match &op.plan {
            OpPlan::VolumeCreate { bricks, .. } | OpPlan::VolumeExpand { bricks, .. } => {
                for b in bricks {
                    add_node(&mut ctx, &b.node)?;
                }
                ctx.bricks = bricks.clone();
            }
            _ => {}
        }
        match &op.plan {
            OpPlan::VolumeCreate { volume, .. } => ctx.volume = Some(volume.clone()),
            OpPlan::VolumeDelete { volume } | OpPlan::VolumeExpand { volume, .. } => {
                ctx.volume = state::get_volume(r, volume)?;
                if let (Some(v), OpPlan::VolumeDelete { .. }) = (&ctx.volume, &op.plan) {
                    for b in v.bricks.clone() {
                        if let Some(b) = state::get_brick(r, &b)? {
                            add_node(&mut ctx, &b.node)?;
                            ctx.bricks.push(b);
                        }
                    }
                }
                if let Some(v) = &ctx.volume {
                    // Any node of the cluster can run volume-level gluster commands.
                    if let Some(c) = state::get_cluster(r, &v.cluster)? {
                        for n in c.nodes {
                            add_node(&mut ctx, &n)?;
                        }
                    }
                }
            }
            OpPlan::NodeState { node, .. } | OpPlan::NodeDelete { node, .. } => add_node(&mut ctx, node)?,
            OpPlan::VolumeClone { source, .. } => {
                ctx.volume = state::get_volume(r, source)?;
                if let Some(v) = ctx.volume.clone() {
                    for b in &v.bricks {
                        if let Some(b) = state::get_brick(r, b)? {
                            add_node(&mut ctx, &b.node)?;
                            ctx.bricks.push(b);
                        }
                    }
                }
            }
            OpPlan::Evict { evictions, .. } => {
                for e in evictions {
                    add_node(&mut ctx, &e.new.node)?;
                    if let Some(b) = state::get_brick(r, &e.old)? {
                        add_node(&mut ctx, &b.node)?;
                        ctx.old_bricks.insert(b.id.clone(), b);
                    }
                    if let Some(v) = state::get_volume(r, &e.volume)? {
                        ctx.volumes.insert(v.id.clone(), v);
                    }
                }
            }
            OpPlan::DeviceState { device, .. } | OpPlan::DeviceDelete { device, .. } => {
                if let Some(d) = state::get_device(r, device)? {
                    ctx.device_state = Some(d.state.clone());
                    ctx.device_bricks = d.brick_count as usize;
                    ctx.device_name = Some(d.name.clone());
                }
            }
            _ => {}
        }
        Ok(ctx)
    }

    /// The nodes to ask for a volume-level Gluster command, best first: online nodes that
    /// hold the operation's bricks, then other online nodes, then the rest (offline or failed:
    /// an administrator's sign that they may not answer, and a dead node costs its whole
    /// connect budget before the next is tried).
    pub fn volume_hosts(&self) -> Vec<&NodeEntry> {
        let holds = |n: &NodeEntry| self.bricks.iter().any(|b| b.node == n.id);
        let mut nodes: Vec<&NodeEntry> = self.nodes.values().collect();
        nodes.sort_by_key(|n| (n.state != "online", !holds(n)));
        nodes
    }

    fn manage(&self, node: &str) -> String {
        self.nodes
            .get(node)
            .map(|n| n.manage_host().to_string())
            .unwrap_or_default()
    }
    fn storage(&self, node: &str) -> String {
        self.nodes
            .get(node)
            .map(|n| n.storage_host().to_string())
            .unwrap_or_default()
    }
}

fn spec(b: &BrickEntry, gid: i64) -> BrickSpec {
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

fn volume_spec(v: &VolumeEntry, bricks: &[BrickEntry], ctx: &Ctx) -> VolumeSpec {
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
        replica: (d.kind == "replicate").then(|| d.effective_replica()),
        arbiter: v.arbiter,
        disperse: (d.kind == "disperse").then(|| (d.data.unwrap_or(0), d.redundancy.unwrap_or(0))),
        options,
    }
}

/// Runs the operation's remote steps. `Err` carries the message `/queue` reports; by then
/// the steps already cleaned up after themselves where they could.
pub async fn run(exec: &dyn Executor, ctx: &Ctx, op: &Operation) -> StepResult<ExecReport> {
    match &op.plan {
        OpPlan::NodeAdd { node, probe_from } => {
            if let Some(peer) = probe_from {
                exec.peer_probe(peer, node.storage_host())
                    .await
                    .map_err(StepError::from)?;
            }
            Ok(ExecReport::default())
        }
        OpPlan::NodeDelete { node, detach_from } => {
            if let (Some(peer), Some(n)) = (detach_from, ctx.nodes.get(node)) {
                // Heketi only logs a failed detach; so do we.
                if let Err(e) = exec.peer_detach(peer, n.storage_host()).await {
                    tracing::warn!("peer detach of {} failed: {e}", n.storage_host());
                }
            }
            Ok(ExecReport::default())
        }
        OpPlan::NodeState { node, state } => node_transition(ctx, node, state).map(|_| ExecReport::default()),
        OpPlan::DeviceState { device, state } => {
            device_transition(ctx, device, state).map(|_| ExecReport::default())
        }
        OpPlan::DeviceAdd {
            device,
            host,
            destroydata,
        } => {
            let vg = device.vg();
            let info = exec
                .device_setup(host, &device.name, &vg, *destroydata)
                .await
                .map_err(StepError::from)?;
            Ok(ExecReport {
                device_total: Some(info.total_kib),
                device_extent: Some(info.extent_kib),
                device_used: Some(info.used_kib),
                pv_uuid: Some(info.pv_uuid),
                paths: info.paths,
                ..Default::default()
            })
        }
        OpPlan::DeviceDelete { device, host, forget } => {
            let name = ctx.device_name.clone().unwrap_or_default();
            match exec.device_teardown(host, &name, &format!("vg_{device}")).await {
                Err(e) if !forget => Err(e.into()),
                _ => Ok(ExecReport::default()),
            }
        }
        OpPlan::DeviceResync { device, host } => {
            let info = exec
                .device_info(host, &format!("vg_{device}"))
                .await
                .map_err(StepError::from)?;
            Ok(ExecReport {
                device_total: Some(info.total_kib),
                device_used: Some(info.used_kib),
                device_extent: Some(info.extent_kib),
                ..Default::default()
            })
        }
        OpPlan::VolumeCreate { volume, bricks } => volume_create(exec, ctx, volume, bricks).await,
        OpPlan::VolumeDelete { .. } | OpPlan::VolumeExpand { .. } | OpPlan::Evict { .. } => Err(
            StepError::Failed("internal error: this operation runs step by step (ops::runner)".into()),
        ),
        OpPlan::VolumeClone { clone, .. } => volume_clone(exec, ctx, clone).await,
        OpPlan::VolumeRestriction { .. } | OpPlan::Cleanup => Ok(ExecReport::default()),
    }
}

/// Moves one brick: create the new one, `replace-brick` it into the volume, destroy the old
/// one (a dead old node is tolerated: its brick is gone with it). Idempotent: re-running after
/// a partial success converges.
///
/// Once `replace-brick` took effect the step only rolls forward: the new brick serves the
/// volume, so it is never undone; the old brick's destroy is retried until it is gone (or its
/// node is dead). A `replace-brick` whose answer is lost is judged by reading the volume back.
/// `leading`: whether this replica still leads (and its fence holds); `Err(StepError::Stopped)` when not.
pub async fn evict_one(
    exec: &dyn Executor,
    ctx: &Ctx,
    e: &crate::state::model::Eviction,
    healcheck: bool,
    leading: &(dyn Fn() -> bool + Send + Sync),
) -> StepResult<()> {
    let v = ctx
        .volumes
        .get(&e.volume)
        .ok_or_else(|| format!("volume {} vanished", e.volume))?;
    if healcheck && v.durability.kind == "none" {
        return Err(StepError::Failed(format!(
            "Cannot replace brick {} as only 0 of 1 required peer bricks are online",
            e.old
        )));
    }
    let old = ctx.old_bricks.get(&e.old);
    let host = ctx.manage(&e.new.node);
    // `replace-brick` changes the volume: it must be Hekate's volume of that name.
    match exec.volume_owner(&host, &v.name).await {
        Ok(VolumeOwner::Absent) => {
            return Err(StepError::Failed(format!("Volume {} does not exist", v.name)))
        }
        Ok(o) => o.check(&v.name, &v.id).map_err(StepError::from)?,
        Err(err) => return Err(err.into()),
    }
    if let (true, Some(old)) = (healcheck, old) {
        let old_path = format!("{}:{}", ctx.storage(&old.node), old.path);
        heal_check(exec, &host, v, &old_path, &e.old).await?;
    }
    exec.brick_create(&host, &spec(&e.new, v.gid))
        .await
        .map_err(StepError::from)?;
    let new_path = format!("{}:{}", ctx.storage(&e.new.node), e.new.path);
    if let Some(old) = old {
        let old_path = format!("{}:{}", ctx.storage(&old.node), old.path);
        if let Err(err) = exec.replace_brick(&host, &v.name, &old_path, &new_path).await {
            // The node may have done it and only its answer was lost: look before undoing.
            match gluster_bricks(exec, ctx, &v.name).await {
                Ok(now) if now.contains(&new_path) => {
                    tracing::info!(brick = %e.old, "replace-brick answered \"{err}\" but Gluster has the new brick: rolling forward");
                }
                Ok(_) => {
                    let _ = exec.brick_destroy(&host, &spec(&e.new, 0)).await;
                    return Err(err.into());
                }
                Err(read) => {
                    // Unknown: neither undo nor commit; the step is run again (it converges).
                    tracing::warn!(brick = %e.old, "replace-brick answered \"{err}\" and the volume cannot be read back ({read}); trying again");
                    tokio::time::sleep(backoff(2)).await;
                    return Err(StepError::Stopped);
                }
            }
        }
        // Past the point of no return: the new brick serves the volume.
        destroy_until_gone(exec, ctx, std::slice::from_ref(old), 1, leading).await?;
    }
    Ok(())
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
        let results = join_all(
            left.iter()
                .map(|b| async move { exec.brick_destroy(&ctx.manage(&b.node), &spec(b, 0)).await }),
        )
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

/// The safety rule before `replace-brick` (Heketi's, spec 6.6), on Gluster's own heal state:
/// the brick must not be the source of pending heals, and enough of the other bricks of its
/// set must be up. A brick no longer in the volume was replaced already (a resumed eviction).
/// Unlike Heketi, a brick counts as up only when Gluster says `Connected`: Gluster 10 names
/// unreachable bricks too, which Heketi's rule took for up.
async fn heal_check(
    exec: &dyn Executor,
    host: &str,
    v: &VolumeEntry,
    old_path: &str,
    old_id: &str,
) -> StepResult<()> {
    let order = exec.volume_bricks(host, &v.name).await.map_err(StepError::from)?;
    let Some(pos) = order.iter().position(|b| b == old_path) else {
        return Ok(());
    };
    let set = v.durability.set_size().max(1);
    let start = pos / set * set;
    let peers: Vec<&String> = order[start..(start + set).min(order.len())]
        .iter()
        .filter(|b| *b != old_path)
        .collect();
    let heal = exec.heal_info(host, &v.name).await.map_err(StepError::from)?;
    if let Some(b) = heal.iter().find(|b| b.name == old_path) {
        if b.connected && b.entries != "-" && b.entries != "0" {
            return Err(StepError::Failed(format!(
                "Cannot replace brick {old_id} as it is source brick for data to be healed"
            )));
        }
    }
    let online = heal
        .iter()
        .filter(|b| b.connected && peers.contains(&&b.name))
        .count();
    let quorum = v.durability.replace_quorum();
    if online < quorum {
        return Err(StepError::Failed(format!(
            "Cannot replace brick {old_id} as only {online} of {quorum} required peer bricks are online"
        )));
    }
    Ok(())
}

async fn create_bricks(exec: &dyn Executor, ctx: &Ctx, bricks: &[BrickEntry], gid: i64) -> StepResult<()> {
    let results = join_all(
        bricks
            .iter()
            .map(|b| async move { exec.brick_create(&ctx.manage(&b.node), &spec(b, gid)).await }),
    )
    .await;
    results
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map(|_| ())
        .map_err(StepError::from)
}

pub async fn destroy_bricks(exec: &dyn Executor, ctx: &Ctx, bricks: &[BrickEntry]) -> StepResult<()> {
    let results = join_all(
        bricks
            .iter()
            .map(|b| async move { exec.brick_destroy(&ctx.manage(&b.node), &spec(b, 0)).await }),
    )
    .await;
    results
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
async fn name_is_free(
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

async fn volume_create(
    exec: &dyn Executor,
    ctx: &Ctx,
    volume: &VolumeEntry,
    bricks: &[BrickEntry],
) -> StepResult<ExecReport> {
    let host = bricks.first().map(|b| ctx.manage(&b.node)).unwrap_or_default();
    // Nothing has changed on any node yet: a foreign volume of this name fails the operation
    // here, with nothing to undo.
    let spec = volume_spec(volume, bricks, ctx);
    name_is_free(exec, &host, &volume.name, &volume.id, Some(&spec.bricks)).await?;
    let result = async {
        create_bricks(exec, ctx, bricks, volume.gid).await?;
        exec.volume_create(&host, &spec).await.map_err(StepError::from)
    }
    .await;
    if let Err(e) = result {
        // Undo on the nodes what this attempt made; what cannot be undone now is found by
        // reconcile (orphans), never left silently.
        // The destroy verb itself refuses a volume of this name that is not this one.
        if let Err(de) = exec.volume_destroy(&host, &volume.name, &volume.id).await {
            if matches!(de, ExecError::Foreign(_)) {
                tracing::warn!(volume = %volume.id, "cleanup left a foreign volume alone: {de}");
            }
        }
        if let Err(ce) = destroy_bricks(exec, ctx, bricks).await {
            tracing::warn!(volume = %volume.id, "cleanup after failed create left bricks: {ce}");
        }
        return Err(e);
    }
    Ok(ExecReport::default())
}

/// The first half of a volume delete: the Gluster volume goes (any node of the cluster may
/// run it; "does not exist" counts as done). Until it succeeds the delete can fail back.
pub async fn volume_delete_gluster(exec: &dyn Executor, ctx: &Ctx) -> StepResult<()> {
    let Some(v) = &ctx.volume else {
        return Ok(());
    };
    let mut last = None;
    for n in ctx.volume_hosts() {
        match exec.volume_destroy(n.manage_host(), &v.name, &v.id).await {
            Ok(()) => return Ok(()),
            // Not ours: no other node will say otherwise, and its bricks are not touched.
            Err(e @ ExecError::Foreign(_)) => return Err(e.into()),
            Err(e) => last = Some(StepError::from(e)),
        }
    }
    match last {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The first part of an expand, before anything changes in Gluster: the volume is Hekate's,
/// the new bricks exist (created if absent).
pub async fn expand_prepare(exec: &dyn Executor, ctx: &Ctx, bricks: &[BrickEntry]) -> StepResult<()> {
    let Some(v) = &ctx.volume else {
        return Err(StepError::Failed("volume vanished during expansion".into()));
    };
    let host = bricks.first().map(|b| ctx.manage(&b.node)).unwrap_or_default();
    match exec.volume_owner(&host, &v.name).await {
        Ok(VolumeOwner::Absent) => {
            return Err(StepError::Failed(format!("Volume {} does not exist", v.name)))
        }
        Ok(o) => o.check(&v.name, &v.id).map_err(StepError::from)?,
        Err(e) => return Err(e.into()),
    }
    create_bricks(exec, ctx, bricks, v.gid).await
}

/// `add-brick` of the new bricks Gluster does not have yet (the point of no return).
pub async fn expand_add(exec: &dyn Executor, ctx: &Ctx, bricks: &[BrickEntry]) -> StepResult<()> {
    let Some(v) = &ctx.volume else {
        return Err(StepError::Failed("volume vanished during expansion".into()));
    };
    let host = bricks.first().map(|b| ctx.manage(&b.node)).unwrap_or_default();
    let spec = volume_spec(v, bricks, ctx);
    exec.volume_expand(&host, &spec, &spec.bricks)
        .await
        .map_err(StepError::from)
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

/// Heketi's node state table (spec 1.3).
fn node_transition(ctx: &Ctx, node: &str, to: &str) -> StepResult<()> {
    let from = ctx.nodes.get(node).map(|n| n.state.as_str()).unwrap_or("online");
    match (from, to) {
        (a, b) if a == b => Ok(()),
        ("online", "offline") | ("offline", "online") => Ok(()),
        ("online", "failed") => Err(StepError::Failed(format!(
            "Node must be offline before remove operation is performed, node:{node}"
        ))),
        // Removal with devices runs as an eviction operation; this path has none left.
        ("offline", "failed") => Ok(()),
        ("failed", s) => Err(StepError::Failed(format!(
            "Cannot move a failed/removed node to {s} state"
        ))),
        _ => Err(StepError::Failed(format!(
            "invalid state transition {from} -> {to}"
        ))),
    }
}

/// Heketi's device state table (spec 1.4).
fn device_transition(ctx: &Ctx, device: &str, to: &str) -> StepResult<()> {
    let from = ctx.device_state.as_deref().unwrap_or("online");
    match (from, to) {
        (a, b) if a == b => Ok(()),
        ("online", "offline") | ("offline", "online") | ("failed", "offline") => Ok(()),
        ("online", "failed") => Err(StepError::Failed(format!(
            "Device must be offline before remove operation is performed, device:{device}"
        ))),
        ("offline", "failed") if ctx.device_bricks == 0 => Ok(()),
        ("offline", "failed") => Err(StepError::Failed(format!(
            "Unable to delete device [{device}]: it holds bricks; retry"
        ))),
        ("failed", "online") => Err(StepError::Failed(
            "Cannot move a failed/removed device to online state".into(),
        )),
        _ => Err(StepError::Failed(format!(
            "invalid state transition {from} -> {to}"
        ))),
    }
}

/// Clones through a Gluster snapshot, then maps the clone's bricks to their source bricks
/// (Gluster lists both in the same order).
async fn volume_clone(exec: &dyn Executor, ctx: &Ctx, clone: &VolumeEntry) -> StepResult<ExecReport> {
    let Some(src) = &ctx.volume else {
        return Err(StepError::Failed("source volume vanished".into()));
    };
    let host = ctx
        .bricks
        .first()
        .map(|b| ctx.manage(&b.node))
        .unwrap_or_default();
    // The source must be Hekate's volume, and the clone's name free (or this clone's own,
    // on a resumed operation): both reads, before anything changes.
    match exec.volume_owner(&host, &src.name).await {
        Ok(VolumeOwner::Absent) => {
            return Err(StepError::Failed(format!("Volume {} does not exist", src.name)))
        }
        Ok(o) => o.check(&src.name, &src.id).map_err(StepError::from)?,
        Err(e) => return Err(e.into()),
    }
    name_is_free(exec, &host, &clone.name, &clone.id, None).await?;
    let order = exec
        .volume_bricks(&host, &src.name)
        .await
        .map_err(StepError::from)?;
    let by_path: BTreeMap<String, &BrickEntry> = ctx
        .bricks
        .iter()
        .map(|b| (format!("{}:{}", ctx.storage(&b.node), b.path), b))
        .collect();
    let cloned = exec
        .volume_clone(&host, &src.name, &clone.name, &clone.id)
        .await
        .map_err(StepError::from)?;
    if cloned.len() != order.len() {
        return Err(StepError::Failed(format!(
            "clone has {} bricks, source {}",
            cloned.len(),
            order.len()
        )));
    }
    let mut clones = Vec::new();
    for (src_path, (path, lv)) in order.iter().zip(cloned) {
        let b = by_path
            .get(src_path)
            .ok_or_else(|| format!("Gluster brick {src_path} is unknown to Hekate"))?;
        let path = path.split_once(':').map(|x| x.1.to_string()).unwrap_or(path);
        clones.push((b.id.clone(), path, lv));
    }
    Ok(ExecReport {
        clones,
        ..Default::default()
    })
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
        ctx.nodes.get_mut(&first).unwrap().state = "offline".into();
        let order: Vec<&str> = ctx.volume_hosts().iter().map(|n| n.manage_host()).collect();
        assert_eq!(order, ["h2", "h0", "h1"]);
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
