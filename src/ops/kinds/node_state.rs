//! Node state change: no node is touched; the step checks the transition against Heketi's
//! node state table (spec 1.3). The state effects: `state::ops::node_state`.

use crate::ops::exec::Ctx;
use crate::ops::runner::Drive;
use crate::ops::step::{StepError, StepResult};
use crate::state::model::{EntryState, ExecReport};
use crate::state::Command;

pub async fn drive(d: &Drive<'_>, node: &str, to: &str) -> Option<Command> {
    d.once(|| async { run(d.ctx, node, to) }).await
}

fn run(ctx: &Ctx, node: &str, to: &str) -> StepResult<ExecReport> {
    use EntryState::{Failed, Offline, Online};
    let from = ctx.nodes.get(node).map_or(Online, |n| n.state.clone());
    let to = EntryState::parse(to);
    let refuse = |m: String| Err(StepError::Failed(m));
    match (&from, &to) {
        (a, b) if a == b => Ok(()),
        (Online, Offline) | (Offline, Online) => Ok(()),
        (Online, Failed) => refuse(format!(
            "Node must be offline before remove operation is performed, node:{node}"
        )),
        // Removal with devices runs as an eviction operation; this path has none left.
        (Offline, Failed) => Ok(()),
        (Failed, s) => refuse(format!("Cannot move a failed/removed node to {s} state")),
        _ => refuse(format!("invalid state transition {from} -> {to}")),
    }
    .map(|()| ExecReport::default())
}
