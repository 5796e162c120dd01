//! Volume clone on the nodes: through a Gluster snapshot of the source (which must be
//! Hekate's), the clone's bricks mapped to their source bricks. The state effects:
//! `state::ops::volume_clone`.

use crate::ops::runner::Drive;
use crate::state::Command;
use std::collections::BTreeMap;

use hekate_raft::{StateReader, StoreError};

use crate::executor::{Executor, VolumeOwner};
use crate::ops::exec::{name_is_free, Ctx};
use crate::ops::step::{StepError, StepResult};
use crate::state;
use crate::state::model::{BrickEntry, ExecReport, VolumeEntry};

pub async fn drive(d: &Drive<'_>, clone: &VolumeEntry) -> Option<Command> {
    d.once(|| run(d.exec(), d.ctx, clone)).await
}

pub fn load(ctx: &mut Ctx, r: &impl StateReader, source: &str) -> Result<(), StoreError> {
    ctx.volume = state::get_volume(r, source)?;
    if let Some(v) = ctx.volume.clone() {
        for b in &v.bricks {
            if let Some(b) = state::get_brick(r, b)? {
                ctx.add_node(r, &b.node)?;
                ctx.bricks.push(b);
            }
        }
    }
    Ok(())
}

/// Clones through a Gluster snapshot, then maps the clone's bricks to their source bricks
/// (Gluster lists both in the same order).
async fn run(exec: &dyn Executor, ctx: &Ctx, clone: &VolumeEntry) -> StepResult<ExecReport> {
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
