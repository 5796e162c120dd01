//! Node state change: no node is touched; the step checks the transition against Heketi's
//! node state table (spec 1.3). The state effects: `state::ops::node_state`.

use crate::ops::exec::Ctx;
use crate::ops::step::{StepError, StepResult};
use crate::state::model::ExecReport;

pub fn run(ctx: &Ctx, node: &str, to: &str) -> StepResult<ExecReport> {
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
    .map(|()| ExecReport::default())
}
