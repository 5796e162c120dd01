//! Block volume create on the nodes: the block-hosting volume first when one is created for
//! it (as a volume create), then the hosts that will export the target (the requested HA
//! count of cluster hosts whose glusterd answers, in random order, or all of them), then
//! `gluster-block create` on the first node whose glusterd answers. A resumed attempt asks
//! `gluster-block info` first and adopts the block volume an earlier attempt made, so a new
//! leader never makes it twice. A failure deletes the block volume and the BHV made for it.
//! The state effects: `state::ops::block_create`.

use hekate_raft::{StateReader, StoreError};
use rand::seq::SliceRandom;

use crate::executor::{BlockSpec, BlockTarget, Executor, VolumeOwner};
use crate::ops::exec::{destroy_bricks, Ctx};
use crate::ops::runner::Drive;
use crate::ops::step::{StepError, StepResult};
use crate::state;
use crate::state::model::{BlockExport, BlockVolumeEntry, BrickEntry, VolumeEntry};
use crate::state::Command;

pub fn load(
    ctx: &mut Ctx,
    r: &impl StateReader,
    block: &BlockVolumeEntry,
    new_bhv: Option<&VolumeEntry>,
    bricks: &[BrickEntry],
) -> Result<(), StoreError> {
    match new_bhv {
        Some(v) => super::volume_create::load(ctx, r, v, bricks)?,
        None => ctx.volume = state::get_volume(r, &block.bhv)?,
    }
    ctx.add_cluster_nodes(r, &block.cluster)
}

pub async fn drive(
    d: &Drive<'_>,
    block: &BlockVolumeEntry,
    new_bhv: Option<&VolumeEntry>,
    prealloc: bool,
) -> Option<Command> {
    let (exec, ctx) = (d.exec(), d.ctx);
    if let Some(v) = new_bhv {
        let made = d
            .retried(|| super::volume_create::run(exec, ctx, v, &ctx.bricks))
            .await;
        if let Err(e) = made {
            return d.end(Err(e));
        }
    }
    let r = d.retried(|| create(exec, ctx, block, prealloc)).await;
    if let Err(e) = &r {
        if !e.leaves_pending() {
            undo(exec, ctx, block, new_bhv).await;
        }
    }
    d.end_block(r)
}

/// The hosts to export the target: `hacount` cluster hosts whose glusterd answers, tried in
/// random order, when `0 < hacount <=` the cluster's hosts; else all of them (Heketi's rule).
async fn export_hosts(exec: &dyn Executor, ctx: &Ctx, hacount: i64) -> StepResult<Vec<String>> {
    let mut nodes: Vec<_> = ctx.nodes.values().collect();
    if hacount <= 0 || hacount as usize > nodes.len() {
        return Ok(nodes.iter().map(|n| n.storage_host().to_string()).collect());
    }
    nodes.shuffle(&mut rand::rng());
    let mut out = Vec::new();
    for n in nodes {
        if out.len() == hacount as usize {
            break;
        }
        match exec.glusterd_check(n.manage_host()).await {
            Ok(()) => out.push(n.storage_host().to_string()),
            Err(e) => {
                let e = StepError::from(e);
                if e.leaves_pending() {
                    return Err(e);
                }
            }
        }
    }
    if out.len() < hacount as usize {
        return Err(StepError::Failed("insufficient block hosts online".into()));
    }
    Ok(out)
}

/// The first node (best first, `Ctx::volume_hosts`) whose glusterd answers: where
/// gluster-block runs.
async fn command_host(exec: &dyn Executor, ctx: &Ctx) -> StepResult<String> {
    let mut last = StepError::Failed("No nodes in the block volume's cluster".into());
    for n in ctx.volume_hosts() {
        match exec.glusterd_check(n.manage_host()).await {
            Ok(()) => return Ok(n.manage_host().to_string()),
            Err(e) => last = StepError::from(e),
        }
        if last.leaves_pending() {
            break;
        }
    }
    Err(last)
}

async fn create(
    exec: &dyn Executor,
    ctx: &Ctx,
    block: &BlockVolumeEntry,
    prealloc: bool,
) -> StepResult<BlockExport> {
    let Some(bhv) = &ctx.volume else {
        return Err(StepError::Failed("Block hosting volume not found".into()));
    };
    let host = command_host(exec, ctx).await?;
    // The Gluster volume of the BHV's name must be Hekate's BHV (a volume of that name made
    // outside Hekate is left alone).
    match exec.volume_owner(&host, &bhv.name).await? {
        VolumeOwner::Absent => {
            return Err(format!("Block hosting volume {} does not exist on the nodes", bhv.name).into())
        }
        owner => owner.check(&bhv.name, &bhv.id)?,
    }
    if let Some(t) = exec.block_info(&host, &bhv.name, &block.name).await? {
        // Made by an earlier attempt of this operation (the name is this operation's in its
        // BHV): adopted, not made twice.
        if t.size_gib != block.size {
            return Err(StepError::Failed(format!(
                "block volume {}/{} exists with {} GiB, not the {} GiB requested",
                bhv.name, block.name, t.size_gib, block.size
            )));
        }
        return Ok(export(t, block));
    }
    let hosts = export_hosts(exec, ctx, block.hacount).await?;
    let spec = BlockSpec {
        bhv: bhv.name.clone(),
        name: block.name.clone(),
        ha: hosts.len(),
        auth: block.auth,
        prealloc,
        hosts: hosts.clone(),
        size_gib: block.size,
    };
    let mut t = exec.block_create(&host, &spec).await?;
    if t.hosts.is_empty() {
        t.hosts = hosts;
    }
    Ok(export(t, block))
}

fn export(t: BlockTarget, block: &BlockVolumeEntry) -> BlockExport {
    BlockExport {
        hosts: t.hosts,
        iqn: t.iqn,
        username: t.username,
        password: t.password,
        usable_size: block.size,
    }
}

/// After a failed create: the block volume goes (if made), then the BHV made for it. What
/// cannot be undone now is found by reconcile, never left silently.
async fn undo(exec: &dyn Executor, ctx: &Ctx, block: &BlockVolumeEntry, new_bhv: Option<&VolumeEntry>) {
    let Some(bhv) = &ctx.volume else {
        return;
    };
    for n in ctx.volume_hosts() {
        match exec.block_delete(n.manage_host(), &bhv.name, &block.name).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(block = %block.id, "cleanup of a failed block create on {}: {e}", n.manage_host())
            }
        }
    }
    if let Some(v) = new_bhv {
        let host = ctx
            .bricks
            .first()
            .map(|b| ctx.manage(&b.node))
            .unwrap_or_default();
        if let Err(e) = exec.volume_destroy(&host, &v.name, &v.id).await {
            tracing::warn!(volume = %v.id, "cleanup of the block-hosting volume left it: {e}");
        }
        if let Err(e) = destroy_bricks(exec, ctx, &ctx.bricks).await {
            tracing::warn!(volume = %v.id, "cleanup of the block-hosting volume left bricks: {e}");
        }
    }
}
