//! Planning operations: from one consistent view of the state, the policy and a request,
//! the operation's intent (where bricks go, which cluster takes a volume) or a refusal worded
//! as Heketi words it. Pure (no clock, no node, no proposal): handlers read a view, plan, and
//! start the operation; `state::ops` re-checks what may have changed when it is applied.

use std::collections::HashMap;

use hekate_raft::{StateReader, StoreError};

use crate::allocator::{self, DeviceView, Planned, Request, TagRule};
use crate::config::Policy;
use crate::state::model::{BrickEntry, ClusterEntry, VolumeEntry};
use crate::state::{self};
use crate::views;

/// Why a plan was not made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The request cannot be satisfied (a 500 in Heketi's terms), fully worded.
    #[error("{0}")]
    Failed(String),
    /// Not now: another operation must end first (Heketi's 429).
    #[error("too many operations in flight")]
    Busy,
}

mod block;
pub use block::{place_block, BlockPlace};

/// The per-volume options Heketi interprets.
pub struct VolumeOptions {
    pub arbiter: bool,
    pub zone_strict: Option<bool>,
    pub tag_rule: Option<String>,
    pub average_file_kib: Option<u64>,
}

pub fn interpret(options: &[String]) -> VolumeOptions {
    let mut v = VolumeOptions {
        arbiter: false,
        zone_strict: None,
        tag_rule: None,
        average_file_kib: None,
    };
    for o in options {
        let mut it = o.split_whitespace();
        match (it.next(), it.next()) {
            (Some("user.heketi.arbiter"), Some(x)) => v.arbiter = x == "true",
            (Some("user.heketi.zone-checking"), Some(x)) => v.zone_strict = Some(x == "strict"),
            (Some("user.heketi.device-tag-match"), Some(x)) => v.tag_rule = Some(x.to_string()),
            (Some("user.heketi.average-file-size"), Some(x)) => v.average_file_kib = x.parse().ok(),
            _ => {}
        }
    }
    v
}

/// The cluster's placeable devices at `now` (Unix seconds): online devices on online nodes
/// that the health monitor did not last see down (`ops::health`), with merged tags.
pub fn device_views(r: &impl StateReader, cluster: &str, now: u64) -> Result<Vec<DeviceView>, StoreError> {
    let Some(c) = state::get_cluster(r, cluster)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for nid in &c.nodes {
        let Some(n) = state::get_node(r, nid)? else {
            continue;
        };
        if !n.state.is_online() || state::node_health(r, nid)?.is_some_and(|h| h.down_at(now)) {
            continue;
        }
        for did in &n.devices {
            let Some(d) = state::get_device(r, did)? else {
                continue;
            };
            if d.state.is_online() && d.pending.is_none() {
                out.push(DeviceView {
                    id: d.id.clone(),
                    node: n.id.clone(),
                    zone: n.zone,
                    free: d.free,
                    extent: d.extent_size.max(1),
                    tags: views::merged_tags(&n.tags, &d.tags),
                });
            }
        }
    }
    Ok(out)
}

pub fn bricks_of(plan: Vec<Vec<Planned>>, volume: &str, op: &str) -> Vec<BrickEntry> {
    plan.into_iter()
        .flatten()
        .map(|p| super::planned_brick(p, volume, op))
        .collect()
}

pub fn alloc_request(
    p: &Policy,
    v: &VolumeEntry,
    size_gib: u64,
    existing: usize,
) -> Result<Request, PlanError> {
    let opts = interpret(&v.options);
    let tag_rule = match &opts.tag_rule {
        Some(r) => Some(TagRule::parse(r).map_err(PlanError::Failed)?),
        None => None,
    };
    Ok(Request {
        size_gib,
        set_size: v.durability.set_size(),
        data_bricks: v.durability.data_bricks(),
        snapshot_factor: v.snapshot_factor as f64,
        brick_min_kib: p.brick_min_kib,
        brick_max_kib: p.brick_max_kib,
        max_bricks: p.max_bricks,
        existing_bricks: existing,
        zone_strict: opts.zone_strict.unwrap_or(p.zone_strict),
        tag_rule,
        arbiter: opts.arbiter,
        average_file_kib: opts.average_file_kib.unwrap_or(p.average_file_kib),
        seed: allocator::seed_of(&v.id),
    })
}

/// Why a cluster cannot take the volume (spec 5.7), or None.
fn ineligible(
    r: &impl StateReader,
    p: &Policy,
    c: Option<&ClusterEntry>,
    v: &VolumeEntry,
) -> Result<Option<String>, StoreError> {
    let Some(c) = c else {
        return Ok(Some("not found".into()));
    };
    if !c.file && !c.block {
        return Ok(Some("Cluster has disabled all volume types".into()));
    }
    if (v.block && !c.block) || (!v.block && !c.file) {
        return Ok(Some("Cluster does not support requested volume type".into()));
    }
    if r.get(&state::keys::volume_name(&c.id, &v.name))?.is_some() {
        return Ok(Some(format!("Volume name '{}' already in use", v.name)));
    }
    if full(p, Some(c)) {
        return Ok(Some(format!(
            "Cluster has {} volumes and limit is {}",
            c.volume_count, p.max_volumes_per_cluster
        )));
    }
    Ok(None)
}

/// Whether a cluster holds `max_volumes_per_cluster` volumes (ineligible).
fn full(p: &Policy, c: Option<&ClusterEntry>) -> bool {
    let limit = p.max_volumes_per_cluster;
    limit >= 0 && c.is_some_and(|c| c.volume_count as i64 >= limit)
}

/// Tries the eligible clusters in order; the first placement wins (spec 5.7 messages). A
/// cluster's eligibility (its name check is a read) and its devices are read only when it is
/// tried: with Heketi's 1,000 volumes per cluster a large deployment has many clusters and
/// the first usually has room. `clusters`: every cluster's record, read by the caller in
/// one pass over their keyspace (a hundred point reads per create at 100,000 volumes were a
/// sixth of a leader's CPU; the handler has them already).
pub fn place_volume(
    r: &impl StateReader,
    p: &Policy,
    v: &VolumeEntry,
    candidates: &[String],
    clusters: &[ClusterEntry],
    op: &str,
    now: u64,
) -> Result<(String, Vec<BrickEntry>), PlanError> {
    let fail = |m: String| PlanError::Failed(format!("Failed to allocate new volume: {m}"));
    let records: HashMap<&str, &ClusterEntry> = clusters.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut failures = Vec::new();
    for cluster in candidates {
        // A full cluster is ineligible whatever else holds: its name check (a read that
        // finds nothing, in each of the 100 full clusters of a 100,000-volume deployment)
        // is left to the refusal's message below.
        let record = records.get(cluster.as_str()).copied();
        if full(p, record) || ineligible(r, p, record, v)?.is_some() {
            continue;
        }
        let devices = device_views(r, cluster, now)?;
        let mut vc = v.clone();
        vc.cluster = cluster.clone();
        let req = alloc_request(p, &vc, v.size, 0)?;
        match allocator::place(&devices, &req) {
            Ok(plan) => return Ok((cluster.clone(), bricks_of(plan, &v.id, op))),
            Err(allocator::AllocError::NoDevices) => {
                failures.push((cluster.clone(), "No online storage devices in cluster".into()))
            }
            Err(allocator::AllocError::AverageFileSize(a, b)) => failures.push((
                cluster.clone(),
                allocator::AllocError::AverageFileSize(a, b).to_string(),
            )),
            Err(_) => failures.push((cluster.clone(), "No space".to_string())),
        }
    }
    if failures.is_empty() {
        // No cluster was eligible: every candidate's reason, in Heketi's order.
        let mut reasons = Vec::new();
        for c in candidates {
            if let Some(why) = ineligible(r, p, records.get(c.as_str()).copied(), v)? {
                reasons.push((c.clone(), why));
            }
        }
        return Err(fail(if reasons.len() == 1 {
            reasons[0].1.clone()
        } else {
            let lines: String = reasons
                .iter()
                .map(|(c, r)| format!("\nCluster {c}: {r}"))
                .collect();
            format!("No eligible cluster for volume{lines}")
        }));
    }
    Err(fail(if failures.len() == 1 {
        failures[0].1.clone()
    } else {
        let lines: String = failures
            .iter()
            .map(|(c, r)| format!("\nCluster {c}: {r}"))
            .collect();
        format!("Unable to create volume on any cluster:{lines}")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ops::testing::{id, volume, world, Sm};
    use crate::state::Command;

    fn refusal(sm: &Sm, limit: i64, name: &str, candidates: &[String]) -> String {
        let p = Policy {
            max_volumes_per_cluster: limit,
            ..Policy::default()
        };
        let v = volume(50, name, 1);
        let view = crate::state::ops::testing::view(sm);
        let clusters = crate::state::all(&view, crate::state::keys::CLUSTER_PREFIX).unwrap();
        match place_volume(&view, &p, &v, candidates, &clusters, "op", 0) {
            Err(PlanError::Failed(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    /// Full clusters are passed over without their name check, yet a refusal gives the
    /// reasons in Heketi's order (type, name, then the volume limit) for every cluster.
    #[tokio::test]
    async fn a_full_cluster_is_refused_with_heketis_reason() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = world(dir.path()).await;
        let (full, off) = (id(1), id(9));
        sm.apply(Command::ClusterCreate {
            id: off.clone(),
            file: false,
            block: false,
        })
        .await;
        let one = |c: &String| vec![c.clone()];
        assert_eq!(
            refusal(&sm, 1, "vol", &one(&full)),
            "Failed to allocate new volume: Volume name 'vol' already in use"
        );
        assert_eq!(
            refusal(&sm, 1, "other", &one(&full)),
            "Failed to allocate new volume: Cluster has 1 volumes and limit is 1"
        );
        assert_eq!(
            refusal(&sm, 1, "vol", &[full.clone(), off.clone()]),
            format!(
                "Failed to allocate new volume: No eligible cluster for volume\n\
                 Cluster {full}: Volume name 'vol' already in use\n\
                 Cluster {off}: Cluster has disabled all volume types"
            )
        );
        // Under the limit the cluster is tried (its one 100 GiB device holds no 1 TiB brick).
        let p = Policy::default();
        let mut big = volume(50, "other", 1);
        big.size = 1024;
        let view = crate::state::ops::testing::view(&sm);
        let clusters = crate::state::all(&view, crate::state::keys::CLUSTER_PREFIX).unwrap();
        let err = place_volume(&view, &p, &big, &one(&full), &clusters, "op", 0);
        assert!(
            matches!(&err, Err(PlanError::Failed(m)) if m.ends_with("No space")),
            "{err:?}"
        );
    }
}
