//! Volume delete on the nodes. Until the Gluster volume is gone the delete may fail back
//! (the volume shows again, as before the request). Once it is gone, `OpStep 0` is committed
//! (the point of no return) and the delete only rolls forward: the bricks are destroyed
//! however many rounds it takes, by this leader or the next (which skips the volume step),
//! and the operation ends done. A brick on a dead node is left to the node's fate (see
//! `exec::destroy_until_gone`). The state effects: `state::ops::volume_delete`.

use hekate_raft::{StateReader, StoreError};

use crate::executor::{ExecError, Executor};
use crate::ops::exec::{destroy_until_gone, Ctx};
use crate::ops::runner::Drive;
use crate::ops::step::{StepError, StepResult};
use crate::state;
use crate::state::model::ExecReport;
use crate::state::Command;

pub fn load(ctx: &mut Ctx, r: &impl StateReader, volume: &str) -> Result<(), StoreError> {
    ctx.volume = state::get_volume(r, volume)?;
    if let Some(v) = ctx.volume.clone() {
        for b in &v.bricks {
            if let Some(b) = state::get_brick(r, b)? {
                ctx.add_node(r, &b.node)?;
                ctx.bricks.push(b);
            }
        }
        ctx.add_cluster_nodes(r, &v.cluster)?;
    }
    Ok(())
}

pub async fn drive(d: &Drive<'_>) -> Option<Command> {
    let (op, ctx, exec) = (d.op, d.ctx, d.exec());
    if op.progress == 0 {
        if let Err(e) = d.retried(|| gluster_volume(exec, ctx)).await {
            return d.end(Err(e));
        }
        if !d.mark().await {
            return None;
        }
    }
    let gone = destroy_until_gone(exec, ctx, &ctx.bricks, d.attempts(), &d.leading())
        .await
        .ok()?;
    if !gone.is_empty() {
        let ids: Vec<&str> = gone.iter().map(|b| b.id.as_str()).collect();
        tracing::warn!(
            op = %op.id,
            "volume deleted; bricks {ids:?} stay on their unreachable nodes until reconcile repairs them"
        );
    }
    d.end(Ok(ExecReport::default()))
}

/// The first half of a volume delete: the Gluster volume goes (any node of the cluster may
/// run it; "does not exist" counts as done). Until it succeeds the delete can fail back.
async fn gluster_volume(exec: &dyn Executor, ctx: &Ctx) -> StepResult<()> {
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
