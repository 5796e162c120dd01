//! Volume create on the nodes: the name must be free there (or this operation's own volume,
//! on a resumed attempt), the bricks are created, then the Gluster volume with Hekate's
//! ownership mark; a failure undoes what the attempt made. The state effects:
//! `state::ops::volume_create`.

use crate::ops::runner::Drive;
use crate::state::Command;
use hekate_raft::{StateReader, StoreError};

use crate::executor::{ExecError, Executor};
use crate::ops::exec::{create_bricks, destroy_bricks, name_is_free, volume_spec, Ctx};
use crate::ops::step::{StepError, StepResult};
use crate::state::model::{BrickEntry, ExecReport, VolumeEntry};

pub async fn drive(d: &Drive<'_>, volume: &VolumeEntry, bricks: &[BrickEntry]) -> Option<Command> {
    d.once(|| run(d.exec(), d.ctx, volume, bricks)).await
}

pub fn load(
    ctx: &mut Ctx,
    r: &impl StateReader,
    volume: &VolumeEntry,
    bricks: &[BrickEntry],
) -> Result<(), StoreError> {
    for b in bricks {
        ctx.add_node(r, &b.node)?;
    }
    ctx.bricks = bricks.to_vec();
    ctx.volume = Some(volume.clone());
    Ok(())
}

pub(super) async fn run(
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
