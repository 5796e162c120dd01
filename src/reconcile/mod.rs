//! Reconcile: the leader reads what the nodes hold (LVM, mounts, fstab, peers, Gluster's
//! volumes) and compares it with the replicated state ([`compare`]), reporting orphans and
//! drift; asked explicitly, it repairs what can be repaired without losing data (orphan
//! volumes and bricks are destroyed, device sizes are re-read from LVM). It runs on demand
//! (`GET`/`POST /reconcile`, `hekate-cli reconcile`, Heketi's
//! `/internal/state/examine/gluster`) and periodically on the leader (report only).
//!
//! Every node command goes through the fence, like the runner's: a replica that cannot
//! confirm its leadership reads nothing and repairs nothing.

pub mod compare;

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::join_all;
use serde::Serialize;

use crate::executor::{BrickSpec, Executor};
use crate::ops::fence::Fenced;
use crate::state::model::{OpKind, OpPlan};
use crate::state::Command;
use crate::state::HekateReplica;
use compare::{Expected, Finding, Observed, Repair};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The leader's term the nodes were read under.
    pub term: u64,
    /// Operations in flight while the nodes were read (what they touch is skipped).
    pub pending_operations: usize,
    pub nodes_examined: usize,
    pub findings: Vec<Finding>,
    /// Empty unless a repair was asked for.
    pub repairs: Vec<RepairResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepairResult {
    pub repair: Repair,
    /// `done`, `started operation <id>`, or the node's error.
    pub result: String,
    pub ok: bool,
}

impl Report {
    /// One line per finding, for logs and Heketi's examiner report.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "Reconcile in term {} examined {} nodes while {} operations were in flight",
            self.term, self.nodes_examined, self.pending_operations
        )];
        if self.findings.is_empty() {
            out.push("hekate state matches the nodes".into());
        }
        out.extend(
            self.findings
                .iter()
                .map(|f| format!("{:?}: {}", f.kind, f.detail)),
        );
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("not the leader, or leadership not confirmed: {0}")]
    NotLeader(String),
    #[error("reading the state: {0}")]
    State(String),
}

/// Reads every node, compares, and repairs when `repair` is set. One cluster at a time: the
/// state is loaded, the cluster's nodes read and compared, and the cluster's records dropped
/// before the next, so that the leader holds one cluster's records, not the whole state's
/// (at 100,000 volumes the whole state held twice took a leader to 1.3 GB every hour).
pub async fn run(
    replica: &HekateReplica,
    exec: Arc<dyn Executor>,
    repair: bool,
) -> Result<Report, ReconcileError> {
    let fenced = Fenced::acquire(exec, replica.clone())
        .await
        .map_err(|e| ReconcileError::NotLeader(e.to_string()))?;
    let clusters = blocking(replica, |r| crate::state::cluster_ids(r)).await?;
    let mut report = Report {
        term: fenced.term(),
        pending_operations: 0,
        nodes_examined: 0,
        findings: Vec::new(),
        repairs: Vec::new(),
    };
    for cluster in clusters {
        let part = reconcile_cluster(replica, &fenced, cluster).await?;
        report.pending_operations = report.pending_operations.max(part.pending_operations);
        report.nodes_examined += part.nodes_examined;
        report.findings.extend(part.findings);
    }
    report.findings.sort();
    if repair {
        report.repairs = repair_all(replica, &fenced, &report.findings).await;
    }
    Ok(report)
}

/// A read of the state on the blocking pool: loading and comparing are seconds of CPU at
/// 100,000 volumes, and done on a runtime worker the leader's heartbeats need, they cost a
/// leader on two cores its quorum.
async fn blocking<T: Send + 'static>(
    replica: &HekateReplica,
    f: impl FnOnce(&hekate_raft::app::View<'_>) -> Result<T, hekate_raft::StoreError> + Send + 'static,
) -> Result<T, ReconcileError> {
    let replica = replica.clone();
    tokio::task::spawn_blocking(move || replica.read(|r| f(r)))
        .await
        .map_err(|e| ReconcileError::State(e.to_string()))?
        .map_err(|e| ReconcileError::State(e.to_string()))
}

/// One cluster's findings, with what was in flight and how many of its nodes were read.
async fn reconcile_cluster(
    replica: &HekateReplica,
    fenced: &Fenced,
    cluster: String,
) -> Result<Report, ReconcileError> {
    let id = cluster.clone();
    let before = blocking(replica, move |r| Expected::load_cluster(r, &id, &BTreeSet::new())).await?;
    let observed = observe(fenced, &before, &cluster).await;
    let marks: BTreeSet<String> = observed
        .volumes
        .values()
        .flatten()
        .flat_map(|g| g.values().filter_map(|v| v.mark.clone()))
        .filter(|m| !before.volumes.contains_key(m))
        .collect();
    let after = blocking(replica, move |r| Expected::load_cluster(r, &cluster, &marks)).await?;
    if fenced.tripped() {
        return Err(ReconcileError::NotLeader(
            "leadership lost while reading the nodes".into(),
        ));
    }
    let pending_operations = before.busy.pending_ops.max(after.busy.pending_ops);
    let nodes_examined = observed.nodes.values().filter(|r| r.is_ok()).count();
    let findings = tokio::task::spawn_blocking(move || compare::stable(before, after, &observed))
        .await
        .map_err(|e| ReconcileError::State(e.to_string()))?;
    Ok(Report {
        term: fenced.term(),
        pending_operations,
        nodes_examined,
        findings,
        repairs: Vec::new(),
    })
}

/// The nodes of `cluster` (pending ones too), its Gluster volumes and block volumes.
async fn observe(exec: &Fenced, e: &Expected, cluster: &str) -> Observed {
    let nodes = e.nodes.values().filter(|n| n.cluster == cluster);
    let reads = join_all(nodes.map(|n| async move {
        let r = exec.inventory(n.manage_host()).await.map_err(|x| x.to_string());
        (n.id.clone(), r)
    }))
    .await;
    let mut seen = Observed {
        nodes: reads.into_iter().collect(),
        ..Default::default()
    };
    if let Some(c) = e.clusters.get(cluster) {
        // Any reachable node of the cluster answers for the trusted pool.
        let host = c
            .nodes
            .iter()
            .filter(|n| matches!(seen.nodes.get(*n), Some(Ok(_))))
            .find_map(|n| e.nodes.get(n))
            .map(|n| n.manage_host().to_string());
        if let Some(h) = host {
            // Kept: this cluster's volumes only (an answer is the node's trusted pool's,
            // which may hold more than the cluster).
            let hosts = e.cluster_hosts(c);
            let v = exec
                .volumes(&h)
                .await
                .map(|all| {
                    all.into_iter()
                        .filter(|(_, v)| compare::on_hosts(v, &hosts))
                        .collect()
                })
                .map_err(|x| x.to_string());
            seen.volumes.insert(c.id.clone(), v);
        }
    }
    observe_blocks(exec, e, &mut seen).await;
    seen
}

/// `gluster-block list` of every block-hosting volume, on a reachable node of its cluster.
async fn observe_blocks(exec: &Fenced, e: &Expected, seen: &mut Observed) {
    for bhv in compare::block_bhvs(e) {
        let host = e
            .clusters
            .get(&bhv.cluster)
            .into_iter()
            .flat_map(|c| c.nodes.iter())
            .filter(|n| matches!(seen.nodes.get(*n), Some(Ok(_))))
            .find_map(|n| e.nodes.get(n))
            .map(|n| n.manage_host().to_string());
        if let Some(h) = host {
            let listed = exec.block_list(&h, &bhv.name).await.map_err(|x| x.to_string());
            seen.blocks.insert(bhv.id.clone(), listed.map(|l| (h, l)));
        }
    }
}

/// An orphan block volume goes only while its BHV is still Hekate's (marked with its id).
async fn destroy_block(
    exec: &Fenced,
    host: &str,
    bhv: &str,
    bhv_id: &str,
    name: &str,
) -> Result<String, String> {
    let check = async {
        match exec.volume_owner(host, bhv).await? {
            crate::executor::VolumeOwner::Absent => Ok(false),
            owner => owner.check(bhv, bhv_id).map(|()| true),
        }
    };
    match check.await.map_err(|e| e.to_string())? {
        false => Ok("block-hosting volume gone; nothing to delete".into()),
        true => exec
            .block_delete(host, bhv, name)
            .await
            .map(|_| "done".into())
            .map_err(|e| e.to_string()),
    }
}

async fn repair_all(replica: &HekateReplica, exec: &Fenced, findings: &[Finding]) -> Vec<RepairResult> {
    let mut repairs: Vec<Repair> = findings.iter().filter_map(|f| f.repair.clone()).collect();
    // Volumes before bricks (a brick in use by a volume cannot go), sizes last.
    repairs.sort_by_key(|r| match r {
        Repair::DestroyBlockVolume { .. } => 0,
        Repair::DestroyVolume { .. } => 1,
        Repair::DestroyBrick { .. } => 2,
        Repair::Resync { .. } => 3,
    });
    let mut out = Vec::new();
    for r in repairs {
        let res: Result<String, String> = match &r {
            Repair::DestroyBlockVolume {
                host,
                bhv,
                bhv_id,
                name,
            } => destroy_block(exec, host, bhv, bhv_id, name).await,
            Repair::DestroyVolume { host, name, id } => exec
                .volume_destroy(host, name, id)
                .await
                .map(|_| "done".into())
                .map_err(|e| e.to_string()),
            Repair::DestroyBrick {
                host,
                vg,
                id,
                lv,
                pool,
                mount,
            } => {
                let spec = BrickSpec {
                    id: id.clone(),
                    vg: vg.clone(),
                    thin_pool: pool.clone(),
                    lv_name: Some(lv.clone()),
                    mount: Some(mount.clone()),
                    tp_size: 0,
                    meta_size: 0,
                    size: 0,
                    gid: 0,
                    arbiter: false,
                };
                exec.brick_destroy(host, &spec)
                    .await
                    .map(|_| "done".into())
                    .map_err(|e| e.to_string())
            }
            Repair::Resync { device, host } => {
                let op = crate::ops::new_op(
                    OpKind::DeviceResync,
                    OpPlan::DeviceResync {
                        device: device.clone(),
                        host: host.clone(),
                    },
                    false,
                );
                let id = op.id.clone();
                match replica.propose(&Command::OpBegin { op: Box::new(op) }).await {
                    Ok(crate::state::command::Outcome::Done) => Ok(format!("started operation {id}")),
                    Ok(crate::state::command::Outcome::NotFound) => Err("device not found".into()),
                    Ok(crate::state::command::Outcome::Busy) => {
                        Err("too many operations in flight; retry".into())
                    }
                    Ok(
                        crate::state::command::Outcome::Conflict(m)
                        | crate::state::command::Outcome::Invalid(m)
                        | crate::state::command::Outcome::Failed(m),
                    ) => Err(m),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        if let Err(e) = &res {
            tracing::warn!(?r, "reconcile repair failed: {e}");
        } else {
            tracing::info!(?r, "reconcile repaired");
        }
        out.push(RepairResult {
            repair: r,
            ok: res.is_ok(),
            result: res.unwrap_or_else(|e| e),
        });
    }
    out
}
