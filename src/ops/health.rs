//! The node health monitor, leader-only (Heketi's, spec 7.7): after
//! `start_time_monitor_gluster_nodes`, every `refresh_time_monitor_gluster_nodes`, the leader
//! runs `systemctl status glusterd` on the manage host of every online node, through the fence
//! like any node command. What it sees is replicated (`Command::SetNodeHealth`, committed when
//! a node's health changes or its last observation is older than [`RECOMMIT_SECS`]), so a new
//! leader places bricks with its predecessor's knowledge at once and carries on within one
//! period. Nodes last seen down (within 2 hours, `NodeHealth::down_at`) are skipped by brick
//! placement. While the replicas have not agreed on log format 2 (a rolling upgrade from a
//! build without the monitor) nothing is committed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::executor::Executor;
use crate::ops::fence::Fenced;
use crate::state::{self, Command, HekateReplica, NodeEntry};

/// One node's check may take this long before it counts as down (SSH connect and the command).
const CHECK_BOUND: Duration = Duration::from_secs(10);

/// Nodes checked at once (a round over 300 nodes opens at most this many sessions).
const CONCURRENT_CHECKS: usize = 32;

/// An unchanged observation is committed again after this long, so that it does not expire
/// (2 hours) while the monitor keeps seeing the same.
pub const RECOMMIT_SECS: u64 = 3600;

pub struct Monitor {
    pub replica: HekateReplica,
    pub exec: Arc<dyn Executor>,
    pub first: Duration,
    pub every: Duration,
}

impl Monitor {
    /// Runs until `stop`; rounds only while this replica leads.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        tokio::select! {
            _ = tokio::time::sleep(self.first) => {}
            _ = stop.changed() => return,
        }
        loop {
            if self.replica.is_leader() {
                match self.round().await {
                    Ok(n) if n > 0 => tracing::info!(changed = n, "node health recorded"),
                    Ok(_) => {}
                    Err(e) => tracing::info!("health round not done: {e}"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.every) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// One round: checks every online node, commits what changed; returns how many.
    pub async fn round(&self) -> Result<usize, String> {
        let fenced = Fenced::acquire(self.exec.clone(), self.replica.clone())
            .await
            .map_err(|e| e.to_string())?;
        let nodes: Vec<NodeEntry> = self
            .replica
            .read(|r| state::all::<NodeEntry>(r, state::keys::NODE_PREFIX))
            .map_err(|e| e.to_string())?;
        let online: Vec<(String, String)> = nodes
            .into_iter()
            .filter(|n| n.state.is_online())
            .map(|n| (n.manage_host().to_string(), n.id))
            .collect();
        let fenced = &fenced;
        let seen: BTreeMap<String, bool> = futures::stream::iter(online)
            .map(|(host, id)| async move {
                let res = tokio::time::timeout(CHECK_BOUND, fenced.glusterd_check(&host)).await;
                if let Ok(Err(e)) = &res {
                    tracing::debug!(node = %id, "glusterd check: {e}");
                }
                (id, matches!(res, Ok(Ok(()))))
            })
            .buffer_unordered(CONCURRENT_CHECKS)
            .collect()
            .await;
        if fenced.tripped() {
            return Err("fenced while checking the nodes".into());
        }
        self.record(seen).await
    }

    /// Commits the observations that differ from the replicated ones (or are getting old).
    async fn record(&self, seen: BTreeMap<String, bool>) -> Result<usize, String> {
        let agreed = self
            .replica
            .read(|r| state::format::agreed(r))
            .map_err(|e| e.to_string())?;
        let now = crate::clock::now_secs();
        let mut changed = 0;
        for (node, up) in seen {
            let last = self
                .replica
                .read(|r| state::node_health(r, &node))
                .map_err(|e| e.to_string())?;
            let fresh = last.is_some_and(|h| h.up == up && now.saturating_sub(h.checked) < RECOMMIT_SECS);
            if fresh {
                continue;
            }
            if !up {
                tracing::warn!(node = %node, "node health: glusterd is down; placement skips the node");
            }
            let cmd = Command::SetNodeHealth { node, up, now };
            let needs = state::format::needs(&cmd);
            if agreed < needs {
                return Err(format!(
                    "node health not recorded: the replicas agreed on log format {agreed}, it needs {needs} (a rolling upgrade in progress?)"
                ));
            }
            self.replica.propose(&cmd).await.map_err(|e| e.to_string())?;
            changed += 1;
        }
        Ok(changed)
    }
}
