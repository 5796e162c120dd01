//! Node add on the nodes: a peer of the cluster probes the new node (none for the first
//! node of a cluster). The state effects: `state::ops::node_add`.

use crate::executor::Executor;
use crate::ops::step::StepResult;
use crate::state::model::{ExecReport, NodeEntry};

pub async fn run(exec: &dyn Executor, node: &NodeEntry, probe_from: Option<&str>) -> StepResult<ExecReport> {
    if let Some(peer) = probe_from {
        exec.peer_probe(peer, node.storage_host()).await?;
    }
    Ok(ExecReport::default())
}
