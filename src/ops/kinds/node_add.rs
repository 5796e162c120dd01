//! Node add on the nodes: glusterd must run on a peer of the cluster (or on the new node,
//! the first of its cluster), checked once, as Heketi's handler does, but as the operation's
//! first fenced step rather than in the HTTP request; then the peer probes the new node.
//! The state effects: `state::ops::node_add`.

use crate::executor::Executor;
use crate::ops::runner::Drive;
use crate::ops::step::{StepError, StepResult};
use crate::state::model::{ExecReport, NodeEntry};
use crate::state::Command;

pub async fn drive(d: &Drive<'_>, node: &NodeEntry, probe_from: Option<&str>) -> Option<Command> {
    if let Err(e) = glusterd_check(d.exec(), node, probe_from).await {
        return d.end(Err(e));
    }
    d.once(|| run(d.exec(), node, probe_from)).await
}

/// Heketi's check, with its messages; not retried (a node without glusterd stays so).
async fn glusterd_check(exec: &dyn Executor, node: &NodeEntry, probe_from: Option<&str>) -> StepResult<()> {
    let (host, refusal) = match probe_from {
        Some(peer) => (peer, "None of the nodes in cluster has glusterd running"),
        None => (node.manage_host(), "New Node doesn't have glusterd running"),
    };
    match exec.glusterd_check(host).await.map_err(StepError::from) {
        Err(e) if e.leaves_pending() => Err(e),
        Err(_) => Err(StepError::Failed(refusal.into())),
        Ok(()) => Ok(()),
    }
}

async fn run(exec: &dyn Executor, node: &NodeEntry, probe_from: Option<&str>) -> StepResult<ExecReport> {
    if let Some(peer) = probe_from {
        exec.peer_probe(peer, node.storage_host()).await?;
    }
    Ok(ExecReport::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::mock::{Fault, MockConfig, MockExecutor};

    fn node(host: &str) -> NodeEntry {
        NodeEntry {
            id: "n".into(),
            cluster: "c".into(),
            zone: 1,
            manage: vec![host.into()],
            storage: vec![format!("{host}.s")],
            tags: Default::default(),
            state: "online".into(),
            devices: Default::default(),
            pending: None,
        }
    }

    #[tokio::test]
    async fn glusterd_is_checked_on_the_peer_or_the_new_node_with_heketi_s_messages() {
        // Verbs without a fencing token: the guard does not apply to an operator.
        MockExecutor::as_operator(async {
            let m = MockExecutor::in_memory(MockConfig::default());
            for h in ["peer", "new"] {
                m.add_fault(Fault {
                    verb: "glusterd_check".into(),
                    host: h.into(),
                    times: 1,
                    message: "glusterd is not running".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            }
            assert_eq!(
                glusterd_check(&m, &node("new"), Some("peer")).await,
                Err(StepError::Failed(
                    "None of the nodes in cluster has glusterd running".into()
                ))
            );
            assert_eq!(
                glusterd_check(&m, &node("new"), None).await,
                Err(StepError::Failed("New Node doesn't have glusterd running".into()))
            );
            assert_eq!(glusterd_check(&m, &node("new"), None).await, Ok(()));
        })
        .await;
    }
}
