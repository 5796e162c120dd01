//! Brick eviction on the nodes (also device and node removal with bricks): each move creates
//! the new brick, `replace-brick`s it in, destroys the old one, and is committed as it
//! succeeds (`OpStep i`), so a new leader resumes after the moves already done. The state
//! effects: `state::ops::evict`.

use crate::state::Command;
use hekate_raft::{StateReader, StoreError};

use crate::executor::{Executor, VolumeOwner};
use crate::ops::exec::{backoff, destroy_until_gone, gluster_bricks, spec, Ctx};
use crate::ops::runner::Drive;
use crate::ops::step::{StepError, StepResult};
use crate::state;
use crate::state::model::{Eviction, ExecReport, VolumeEntry};

pub async fn drive(d: &Drive<'_>, evictions: &[Eviction], healcheck: bool) -> Option<Command> {
    d.once(|| run(d, evictions, healcheck)).await
}

pub fn load(ctx: &mut Ctx, r: &impl StateReader, evictions: &[Eviction]) -> Result<(), StoreError> {
    for e in evictions {
        ctx.add_node(r, &e.new.node)?;
        if let Some(b) = state::get_brick(r, &e.old)? {
            ctx.add_node(r, &b.node)?;
            ctx.old_bricks.insert(b.id.clone(), b);
        }
        if let Some(v) = state::get_volume(r, &e.volume)? {
            ctx.volumes.insert(v.id.clone(), v);
        }
    }
    Ok(())
}

/// Runs the evictions not yet committed, committing each as it succeeds.
async fn run(d: &Drive<'_>, evictions: &[Eviction], healcheck: bool) -> StepResult<ExecReport> {
    for (i, e) in evictions.iter().enumerate().skip(d.op.progress) {
        evict_one(d.exec(), d.ctx, e, healcheck, &d.leading()).await?;
        d.commit_step(i).await?;
    }
    Ok(ExecReport::default())
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
