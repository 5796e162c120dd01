//! Node delete on the nodes: a peer detaches the node (a failed detach is only logged, as
//! Heketi does). The state effects: `state::ops::node_delete`.

use crate::executor::Executor;
use crate::ops::exec::Ctx;
use crate::ops::runner::Drive;
use crate::ops::step::StepResult;
use crate::state::model::ExecReport;
use crate::state::Command;

pub async fn drive(d: &Drive<'_>, node: &str, detach_from: Option<&str>) -> Option<Command> {
    d.once(|| run(d.exec(), d.ctx, node, detach_from)).await
}

async fn run(
    exec: &dyn Executor,
    ctx: &Ctx,
    node: &str,
    detach_from: Option<&str>,
) -> StepResult<ExecReport> {
    if let (Some(peer), Some(n)) = (detach_from, ctx.nodes.get(node)) {
        // Heketi only logs a failed detach; so do we.
        if let Err(e) = exec.peer_detach(peer, n.storage_host()).await {
            tracing::warn!("peer detach of {} failed: {e}", n.storage_host());
        }
    }
    Ok(ExecReport::default())
}
