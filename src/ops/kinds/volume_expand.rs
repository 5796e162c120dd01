//! Volume expand on the nodes. Bricks are created, then `OpStep 0` is committed before the
//! first `add-brick` (the point of no return: from there Gluster may hold some new bricks). A
//! failure before it rolls back as before. A failure after it reads the volume back: if
//! Gluster holds every new brick the expand is done; otherwise the bricks Gluster holds stay
//! (`OpFailKept`) and only the others are destroyed. If Gluster cannot be read, nothing is
//! undone or committed: the read is tried again, backing off, by this leader or the next.
//! The state effects: `state::ops::volume_expand`.

use std::sync::atomic::{AtomicBool, Ordering};

use hekate_raft::{StateReader, StoreError};

use crate::executor::{Executor, VolumeOwner};
use crate::ops::exec::{self, create_bricks, destroy_bricks, gluster_bricks, volume_spec, Ctx};
use crate::ops::runner::Drive;
use crate::ops::step::{StepError, StepResult};
use crate::state;
use crate::state::model::{BrickEntry, ExecReport};
use crate::state::Command;

pub fn load(
    ctx: &mut Ctx,
    r: &impl StateReader,
    volume: &str,
    bricks: &[BrickEntry],
) -> Result<(), StoreError> {
    for b in bricks {
        ctx.add_node(r, &b.node)?;
    }
    ctx.bricks = bricks.to_vec();
    ctx.volume = state::get_volume(r, volume)?;
    if let Some(v) = ctx.volume.clone() {
        ctx.add_cluster_nodes(r, &v.cluster)?;
    }
    Ok(())
}

pub async fn drive(d: &Drive<'_>, bricks: &[BrickEntry]) -> Option<Command> {
    let (op, ctx, exec) = (d.op, d.ctx, d.exec());
    let flag = AtomicBool::new(op.progress > 0);
    let marked = &flag;
    let r = d
        .retried(|| async move {
            prepare(exec, ctx, bricks).await?;
            if !marked.load(Ordering::SeqCst) {
                if !d.mark().await {
                    return Err(StepError::Stopped);
                }
                marked.store(true, Ordering::SeqCst);
            }
            add(exec, ctx, bricks).await
        })
        .await;
    let error = match r {
        Ok(()) => return d.end(Ok(ExecReport::default())),
        Err(e) if e.leaves_pending() => return None,
        Err(e) => e,
    };
    if !marked.load(Ordering::SeqCst) {
        // Gluster never saw these bricks: undo on the nodes, then fail.
        if let Err(ce) = destroy_bricks(exec, ctx, bricks).await {
            tracing::warn!(op = %op.id, "cleanup after failed expand left bricks: {ce}");
        }
        return d.end(Err(error));
    }
    past_the_mark(d, bricks, error).await
}

/// A failure past the point of no return: the bricks Gluster holds stay, the others go.
async fn past_the_mark(d: &Drive<'_>, bricks: &[BrickEntry], error: StepError) -> Option<Command> {
    let (op, ctx, exec) = (d.op, d.ctx, d.exec());
    let name = ctx.volume.as_ref().map(|v| v.name.clone()).unwrap_or_default();
    let mut round = 0;
    let listed = loop {
        match gluster_bricks(exec, ctx, &name).await {
            Ok(l) => break l,
            Err(read) => {
                round += 1;
                tracing::warn!(
                    op = %op.id,
                    "expand failed ({error}) and Gluster's bricks cannot be read ({read}); trying again"
                );
                tokio::time::sleep(exec::backoff(round)).await;
                if !d.leading()() {
                    return None;
                }
            }
        }
    };
    let planned: Vec<(String, String)> = bricks
        .iter()
        .map(|b| (b.id.clone(), exec::gluster_name(ctx, b)))
        .collect();
    let kept = exec::kept_bricks(&planned, &listed);
    if kept.len() == bricks.len() {
        tracing::info!(op = %op.id, "expand answered \"{error}\" but Gluster has every new brick: done");
        return d.end(Ok(ExecReport::default()));
    }
    let unused: Vec<BrickEntry> = bricks.iter().filter(|b| !kept.contains(&b.id)).cloned().collect();
    if let Err(ce) = destroy_bricks(exec, ctx, &unused).await {
        tracing::warn!(op = %op.id, "cleanup after failed expand left bricks: {ce}");
    }
    let error = if kept.is_empty() {
        error.to_string()
    } else {
        format!(
            "{error} (Gluster kept {} of the {} new bricks; they stay in the volume)",
            kept.len(),
            bricks.len()
        )
    };
    Some(Command::OpFailKept {
        id: op.id.clone(),
        kept,
        error,
        now: crate::clock::now_secs(),
    })
}

/// The first part of an expand, before anything changes in Gluster: the volume is Hekate's,
/// the new bricks exist (created if absent).
async fn prepare(exec: &dyn Executor, ctx: &Ctx, bricks: &[BrickEntry]) -> StepResult<()> {
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
async fn add(exec: &dyn Executor, ctx: &Ctx, bricks: &[BrickEntry]) -> StepResult<()> {
    let Some(v) = &ctx.volume else {
        return Err(StepError::Failed("volume vanished during expansion".into()));
    };
    let host = bricks.first().map(|b| ctx.manage(&b.node)).unwrap_or_default();
    let spec = volume_spec(v, bricks, ctx);
    exec.volume_expand(&host, &spec, &spec.bricks)
        .await
        .map_err(StepError::from)
}
