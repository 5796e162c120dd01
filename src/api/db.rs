//! `/db/dump` (Heketi's JSON dump), `/db/import` (Hekate: load a Heketi dump into an empty
//! cluster) and `/db/check` (Heketi's consistency check over the replicated state).

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use hekate_raft::{StateReader, StoreError};
use serde::Serialize;

use super::error::ApiError;
use super::{outcome, AppState, ReadMode};
use crate::dump::{self, Dump};
use crate::state::{self, keys};

fn go_pretty(body: String) -> Response {
    let mut r = Response::new(axum::body::Body::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

pub async fn dump(State(st): State<AppState>, mode: ReadMode) -> Result<Response, ApiError> {
    st.read_barrier(mode).await?;
    // The whole state as one document: built off the async workers (see `topology`).
    tokio::task::spawn_blocking(move || -> Result<Response, ApiError> {
        let d = st
            .replica()
            .read(|r| dump::export(r))
            .map_err(|e| ApiError::Internal(format!("Could not construct dump from DB: {e}")))?;
        Ok(go_pretty(dump::to_go_json(&d)))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("db dump: {e}")))?
}

pub async fn import(State(st): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let d: Dump = serde_json::from_slice(&body).map_err(|e| ApiError::Unparsable(e.to_string()))?;
    let plan = dump::plan_import(&d).map_err(|e| ApiError::BadRequest(format!("import refused: {e}")))?;
    let set = &plan.set;
    let counts = serde_json::json!({
        "clusters": set.clusters.len(), "nodes": set.nodes.len(), "devices": set.devices.len(),
        "bricks": set.bricks.len(), "volumes": set.volumes.len(),
        "blockvolumes": plan.blockvolumes.len(),
    });
    let cmd = plan.command();
    // ImportWithBlock is log format 3: on a new cluster the agreement may not have run yet.
    st.format_for(&cmd).await;
    outcome(st.replica().propose(&cmd).await?)?;
    Ok(super::respond::json(StatusCode::OK, &counts))
}

#[derive(Debug, Serialize, Default)]
struct Bucket {
    total: usize,
    pending: usize,
    ok: usize,
    notok: usize,
    inconsistencies: Option<Vec<String>>,
}

impl Bucket {
    fn check(&mut self, pending: bool, problems: Vec<String>) {
        self.total += 1;
        if pending {
            self.pending += 1;
        }
        if problems.is_empty() {
            self.ok += 1;
        } else {
            self.notok += 1;
            self.inconsistencies.get_or_insert_with(Vec::new).extend(problems);
        }
    }
}

#[derive(Debug, Serialize, Default)]
struct Check {
    clusters: Bucket,
    volumes: Bucket,
    bricks: Bucket,
    nodes: Bucket,
    devices: Bucket,
    blockvolumes: Bucket,
    dbattributes: Bucket,
    pendingoperations: Bucket,
    totalinconsistencies: usize,
}

/// Heketi's consistency check over this replica's state: each entry kind's references, the
/// devices' accounting, the clusters' volume counts.
fn check(r: &impl StateReader) -> Result<Check, StoreError> {
    let mut c = Check::default();
    check_volumes(r, &mut c.volumes)?;
    let index = device_index(r)?;
    let bricks = check_bricks(r, &index, &mut c.bricks)?;
    check_devices(r, &index, &bricks, &mut c.devices)?;
    check_nodes(r, &mut c.nodes)?;
    check_clusters(r, &mut c.clusters)?;
    check_blockvolumes(r, &mut c.blockvolumes)?;
    for _ in state::pending_op_ids(r)? {
        c.pendingoperations.check(true, Vec::new());
    }
    c.totalinconsistencies = [
        &c.clusters,
        &c.volumes,
        &c.bricks,
        &c.nodes,
        &c.devices,
        &c.blockvolumes,
    ]
    .iter()
    .map(|b| b.inconsistencies.as_ref().map_or(0, Vec::len))
    .sum();
    Ok(c)
}

/// Each volume's cluster exists; its bricks exist and point back to it. A block-hosting
/// volume's block volumes exist and its sizes add up (`size == Σ block sizes + free +
/// reserved`, Heketi's invariant; not checked while it or one of its block volumes has an
/// operation in flight, which moves sizes in two steps); another volume hosts none.
fn check_volumes(r: &impl StateReader, bucket: &mut Bucket) -> Result<(), StoreError> {
    for v in state::all::<state::VolumeEntry>(r, keys::VOLUME_PREFIX)? {
        let mut p = Vec::new();
        let mut blocks = Vec::new();
        for b in state::bhv_block_ids(r, &v.id)? {
            match state::get_blockvolume(r, &b)? {
                None => p.push(format!("Volume {} unknown block volume {b}", v.id)),
                Some(b) => blocks.push(b),
            }
        }
        if !v.block && !blocks.is_empty() {
            p.push(format!(
                "Volume {} is not a block-hosting volume but hosts {} block volumes",
                v.id,
                blocks.len()
            ));
        }
        let moving = v.pending.is_some() || blocks.iter().any(|b| b.pending.is_some());
        if v.block && !moving {
            let used: u64 = blocks.iter().map(|b| b.size).sum();
            if v.size != used + v.block_free + v.block_reserved {
                p.push(format!(
                    "Volume {} size {} differs from its block volumes' {used} + free {} + reserved {}",
                    v.id, v.size, v.block_free, v.block_reserved
                ));
            }
        }
        if state::get_cluster(r, &v.cluster)?.is_none() {
            p.push(format!("Volume {} unknown cluster {}", v.id, v.cluster));
        }
        for b in &v.bricks {
            match state::get_brick(r, b)? {
                None => p.push(format!("Volume {} unknown brick {b}", v.id)),
                Some(b) if b.volume != v.id => p.push(format!(
                    "Volume {} brick {} points to volume {}",
                    v.id, b.id, b.volume
                )),
                _ => {}
            }
        }
        bucket.check(v.pending.is_some(), p);
    }
    Ok(())
}

/// What [`check_bricks`] read that [`check_devices`] checks the devices against.
#[derive(Default)]
struct BrickTotals {
    /// What the bricks take from each device.
    used: BTreeMap<String, u64>,
    /// Each brick's device, by brick id.
    device_of: BTreeMap<String, String>,
}

/// The device index (`db/<device>/<brick>`): each device's listed bricks, in id order. One
/// pass over it, for the bricks' check and the devices'.
fn device_index(r: &impl StateReader) -> Result<BTreeMap<String, BTreeSet<String>>, StoreError> {
    let mut index: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    r.visit_prefix(keys::DEVICE_BRICK_PREFIX, &mut |k, _| {
        if let Some((device, brick)) = keys::device_brick_of(k) {
            index.entry(device).or_default().insert(brick);
        }
        Ok(())
    })?;
    Ok(index)
}

/// Each brick's device and volume exist, and its device lists it.
fn check_bricks(
    r: &impl StateReader,
    index: &BTreeMap<String, BTreeSet<String>>,
    bucket: &mut Bucket,
) -> Result<BrickTotals, StoreError> {
    let mut t = BrickTotals::default();
    for b in state::all::<state::BrickEntry>(r, keys::BRICK_PREFIX)? {
        let mut p = Vec::new();
        if state::get_device(r, &b.device)?.is_none() {
            p.push(format!("Brick {} unknown device {}", b.id, b.device));
        }
        if state::get_volume(r, &b.volume)?.is_none() {
            p.push(format!("Brick {} unknown volume {}", b.id, b.volume));
        }
        // `GET /topology` lists a device's bricks by each brick's device, the point reads by
        // the device's index: the two must agree.
        if !index.get(&b.device).is_some_and(|listed| listed.contains(&b.id)) {
            p.push(format!(
                "Brick {} missing from device {}'s brick list",
                b.id, b.device
            ));
        }
        *t.used.entry(b.device.clone()).or_default() += b.allocation();
        bucket.check(b.pending.is_some(), p);
        t.device_of.insert(b.id, b.device);
    }
    Ok(t)
}

/// Each device's sizes add up and its used space is its bricks'; its node exists; it lists
/// only bricks that name it.
fn check_devices(
    r: &impl StateReader,
    index: &BTreeMap<String, BTreeSet<String>>,
    bricks: &BrickTotals,
    bucket: &mut Bucket,
) -> Result<(), StoreError> {
    for d in state::all::<state::DeviceEntry>(r, keys::DEVICE_PREFIX)? {
        let mut p = Vec::new();
        if d.total != d.free + d.used {
            p.push(format!(
                "Device {} size values differ Total({}) != Free({}) + Used({})",
                d.id, d.total, d.free, d.used
            ));
        }
        let sum = bricks.used.get(&d.id).copied().unwrap_or(0);
        if d.used != sum {
            p.push(format!(
                "Device {} used {} differs from its bricks' allocations {sum}",
                d.id, d.used
            ));
        }
        if state::get_node(r, &d.node)?.is_none() {
            p.push(format!("Device {} unknown node {}", d.id, d.node));
        }
        for id in index.get(&d.id).into_iter().flatten() {
            match bricks.device_of.get(id) {
                None => p.push(format!("Device {} unknown brick {id}", d.id)),
                Some(on) if *on != d.id => p.push(format!(
                    "Device {} lists brick {id}, which is on device {on}",
                    d.id
                )),
                Some(_) => {}
            }
        }
        bucket.check(d.pending.is_some(), p);
    }
    Ok(())
}

/// Each node's devices exist.
fn check_nodes(r: &impl StateReader, bucket: &mut Bucket) -> Result<(), StoreError> {
    for n in state::all::<state::NodeEntry>(r, keys::NODE_PREFIX)? {
        let mut p = Vec::new();
        for d in &n.devices {
            if state::get_device(r, d)?.is_none() {
                p.push(format!("Node {} unknown device {d}", n.id));
            }
        }
        bucket.check(n.pending.is_some(), p);
    }
    Ok(())
}

/// Each cluster's nodes exist and its volume count matches its volume index.
fn check_clusters(r: &impl StateReader, bucket: &mut Bucket) -> Result<(), StoreError> {
    for cl in state::all::<state::ClusterEntry>(r, keys::CLUSTER_PREFIX)? {
        let mut p = Vec::new();
        for n in &cl.nodes {
            if state::get_node(r, n)?.is_none() {
                p.push(format!("Cluster {} unknown node {n}", cl.id));
            }
        }
        let vols = state::cluster_volume_ids(r, &cl.id)?;
        if vols.len() as u64 != cl.volume_count {
            p.push(format!(
                "Cluster {} counts {} volumes but lists {}",
                cl.id,
                cl.volume_count,
                vols.len()
            ));
        }
        bucket.check(false, p);
    }
    Ok(())
}

/// Each block volume's cluster exists and lists it (once created); its block-hosting volume exists, is one,
/// is in the same cluster and lists it; its name is the one its name index holds.
fn check_blockvolumes(r: &impl StateReader, bucket: &mut Bucket) -> Result<(), StoreError> {
    for b in state::all::<state::BlockVolumeEntry>(r, keys::BLOCKVOLUME_PREFIX)? {
        let mut p = Vec::new();
        match state::get_cluster(r, &b.cluster)? {
            None => p.push(format!("BlockVolume {} unknown cluster {}", b.id, b.cluster)),
            // Listed once created (hidden ones are being created or deleted).
            Some(c) if !b.hidden && !c.blockvolumes.contains(&b.id) => p.push(format!(
                "BlockVolume {} not listed by its cluster {}",
                b.id, b.cluster
            )),
            _ => {}
        }
        match state::get_volume(r, &b.bhv)? {
            None => p.push(format!(
                "BlockVolume {} unknown block-hosting volume {}",
                b.id, b.bhv
            )),
            Some(v) => {
                if !v.block {
                    p.push(format!(
                        "BlockVolume {} hosted by volume {} which is not a block-hosting volume",
                        b.id, v.id
                    ));
                }
                if v.cluster != b.cluster {
                    p.push(format!(
                        "BlockVolume {} in cluster {} but its block-hosting volume {} is in cluster {}",
                        b.id, b.cluster, v.id, v.cluster
                    ));
                }
                if !state::bhv_block_ids(r, &v.id)?.contains(&b.id) {
                    p.push(format!(
                        "BlockVolume {} not listed by its block-hosting volume {}",
                        b.id, v.id
                    ));
                }
            }
        }
        let named = r.get(&keys::blockvolume_name(&b.bhv, &b.name))?;
        if named.as_deref() != Some(b.id.as_bytes()) {
            p.push(format!(
                "BlockVolume {} name {:?} is not indexed to it",
                b.id, b.name
            ));
        }
        bucket.check(b.pending.is_some(), p);
    }
    Ok(())
}

pub async fn db_check(State(st): State<AppState>, mode: ReadMode) -> Result<Response, ApiError> {
    st.read_barrier(mode).await?;
    let c = st.replica().read(|r| check(r))?;
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    c.serialize(&mut ser)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(go_pretty(format!("{}\n", String::from_utf8_lossy(&out))))
}

/// Heketi served its BoltDB file here. Hekate has none: its state is a replicated RocksDB.
pub async fn backup() -> ApiError {
    ApiError::NotImplemented(
        "Hekate has no BoltDB file to back up; GET /db/dump returns the whole state in Heketi's JSON format"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::dump::tests::{block_dump, plan_all, BHV, BV1};
    use crate::state::ops::testing::{view, Sm};
    use crate::state::Outcome;

    /// Applies the import of the block dump (`dump::tests::block_dump`) after `edit`
    /// (bypassing the import's own checks, as a bug would) and returns the number of block
    /// volumes the check counted and the inconsistencies it found.
    async fn problems(edit: fn(&mut crate::dump::ImportPlan)) -> (usize, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = Sm::new(dir.path());
        let mut plan = plan_all(&block_dump()).unwrap();
        edit(&mut plan);
        assert!(!plan.blockvolumes.is_empty());
        assert_eq!(sm.apply(plan.command()).await, Outcome::Done);
        let c = check(&view(&sm)).unwrap();
        let all = [&c.clusters, &c.volumes, &c.blockvolumes, &c.bricks, &c.devices]
            .iter()
            .flat_map(|b| b.inconsistencies.clone().unwrap_or_default())
            .collect();
        (c.blockvolumes.total, all)
    }

    #[tokio::test]
    async fn imported_block_volumes_are_consistent() {
        assert_eq!(problems(|_| {}).await, (2, vec![]));
    }

    #[tokio::test]
    async fn a_block_hosting_volume_whose_sizes_do_not_add_up_is_reported() {
        let (_, p) = problems(|plan| {
            let v = plan.set.volumes.iter_mut().find(|v| v.id == BHV).unwrap();
            v.block_free += 1;
        })
        .await;
        assert_eq!(
            p,
            vec![format!(
                "Volume {BHV} size 10 differs from its block volumes' 3 + free 7 + reserved 1"
            )]
        );
    }

    #[tokio::test]
    async fn a_block_volume_on_a_file_volume_is_reported() {
        let (_, p) = problems(|plan| {
            let file = plan.set.volumes.iter().find(|v| !v.block).unwrap().id.clone();
            let b = plan.blockvolumes.iter_mut().find(|b| b.id == BV1).unwrap();
            b.bhv = file;
        })
        .await;
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(
            p[0].contains("is not a block-hosting volume but hosts 1 block volumes"),
            "{p:?}"
        );
        assert!(
            p[1].contains("differs from its block volumes' 1 + free 6 + reserved 1"),
            "{p:?}"
        );
        assert!(
            p[2].contains(&format!("BlockVolume {BV1} hosted by volume")),
            "{p:?}"
        );
    }

    /// A brick whose device's list does not hold it, and a device listing a brick of
    /// another device: `GET /topology` and the point reads would show different lists.
    #[tokio::test]
    async fn a_brick_listed_under_another_device_is_reported() {
        let (_, p) = problems(|plan| {
            let devices = &mut plan.set.devices;
            let from = devices.iter().position(|(_, b)| !b.is_empty()).unwrap();
            let to = (from + 1) % devices.len();
            let brick = devices[from].1.remove(0);
            devices[to].1.push(brick);
        })
        .await;
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("missing from device"), "{p:?}");
        assert!(p[1].contains(", which is on device "), "{p:?}");
    }

    #[tokio::test]
    async fn a_block_volume_of_an_unknown_cluster_is_reported() {
        let (_, p) = problems(|plan| {
            let b = plan.blockvolumes.iter_mut().find(|b| b.id == BV1).unwrap();
            b.cluster = "0123456789abcdef0123456789abcdef".into();
        })
        .await;
        assert!(
            p.iter()
                .any(|m| m == &format!("BlockVolume {BV1} unknown cluster 0123456789abcdef0123456789abcdef")),
            "{p:?}"
        );
    }
}
