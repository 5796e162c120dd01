//! `/volumes`: Heketi's volume resource (spec 1.5): validation in Heketi's order, cluster
//! selection (5.7), placement (5.2-5.5), then one committed operation carrying the whole
//! intent (new ids, placement, reserved capacity).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use hekate_raft::{StateReader, StoreError};
use serde::Deserialize;

use super::error::ApiError;
use super::respond::{self, json, parse_body};
use super::validate::{self, failed};
use super::{route_id, AppState, ReadMode};
use crate::allocator;
use crate::auth::Role;
use crate::config::Policy;
use crate::ids;
use crate::ops::{new_op, plan};
use crate::state::model::{ClusterEntry, Durability, OpKind, OpPlan, VolumeEntry};
use crate::state::{self};
use crate::views;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicateReq {
    pub replica: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisperseReq {
    pub data: Option<i64>,
    pub redundancy: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurabilityReq {
    #[serde(rename = "type", default)]
    pub kind: String,
    pub replicate: Option<ReplicateReq>,
    pub disperse: Option<DisperseReq>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotReq {
    #[serde(default)]
    pub enable: bool,
    #[serde(default)]
    pub factor: f32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeCreateRequest {
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub clusters: Vec<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub durability: DurabilityReq,
    #[serde(default)]
    pub gid: i64,
    #[serde(default)]
    pub glustervolumeoptions: Vec<String>,
    #[serde(default)]
    pub block: bool,
    #[serde(default)]
    pub snapshot: SnapshotReq,
}

/// Hekate's bound on sizes (`crate::validate::MAX_VOLUME_GIB`; Heketi has none and its
/// arithmetic wraps): `gib` more GiB on a volume of `existing` GiB.
fn too_big(field: &str, gib: u64, existing: u64) -> Result<(), ApiError> {
    let max = crate::validate::MAX_VOLUME_GIB;
    match existing.checked_add(gib) {
        Some(total) if total <= max => Ok(()),
        _ => Err(ApiError::BadRequest(format!(
            "{field}: {gib} GB would make a volume of more than the maximum supported size ({max} GB)"
        ))),
    }
}

/// Heketi's checks, in Heketi's order (spec 1.5, steps 1-7).
fn validate_create(r: &VolumeCreateRequest) -> Result<Durability, ApiError> {
    if r.size == 0 {
        return Err(failed("size: cannot be blank"));
    }
    if !r.name.is_empty() && !validate::is_volume_name(&r.name) {
        return Err(failed("name: must be in a valid format"));
    }
    if r.gid < 0 {
        return Err(ApiError::BadRequest("Bad group id less than zero".into()));
    }
    if r.gid >= 2_147_483_647 {
        return Err(ApiError::BadRequest(
            "Bad group id equal or greater than 2**32".into(),
        ));
    }
    let kind = match r.durability.kind.as_str() {
        "" | "none" => "none",
        "replicate" => "replicate",
        "disperse" => "disperse",
        _ => return Err(ApiError::BadRequest("Unknown durability type".into())),
    };
    if r.size < 1 {
        return Err(ApiError::BadRequest("Invalid volume size".into()));
    }
    too_big("size", r.size as u64, 0)?;
    if r.snapshot.enable && !(1.0..=100.0).contains(&r.snapshot.factor) {
        return Err(ApiError::BadRequest("Invalid snapshot factor".into()));
    }
    let replica = r.durability.replicate.as_ref().and_then(|x| x.replica);
    let (data, redundancy) = r
        .durability
        .disperse
        .as_ref()
        .map(|d| (d.data, d.redundancy))
        .unwrap_or((None, None));
    if kind == "replicate" && !matches!(replica.unwrap_or(0), 0 | 2 | 3) {
        // Heketi rejects > 3; Hekate also rejects 1 and negatives (a one-brick "replica").
        return Err(ApiError::BadRequest("Invalid replica value".into()));
    }
    if kind == "disperse" {
        let (d, rd) = (data.unwrap_or(0), redundancy.unwrap_or(0));
        if !matches!((d, rd), (2, 1) | (4, 2) | (8, 3) | (8, 4)) {
            return Err(ApiError::BadRequest(format!(
                "Invalid dispersion combination: {d}+{rd}"
            )));
        }
    }
    for o in &r.glustervolumeoptions {
        if !validate::is_volume_option(o) {
            return Err(failed(&format!(
                "glustervolumeoptions: {o:?} is not a valid volume option"
            )));
        }
    }
    Ok(Durability {
        kind: kind.into(),
        replica: r.durability.replicate.as_ref().and_then(|x| x.replica),
        data,
        redundancy,
    })
}

/// The size checks against the policy (the brick minimum per data brick, KiB overflow).
fn check_size(st: &AppState, req: &VolumeCreateRequest, durability: &Durability) -> Result<(), ApiError> {
    let min_kib = st.policy().brick_min_kib * durability.data_bricks();
    // Checked: a size whose KiB overflow u64 is refused, never wrapped (or a debug panic).
    let Some(size_kib) = crate::validate::gib_to_kib(req.size as u64) else {
        return Err(ApiError::BadRequest(format!(
            "Requested volume size ({} GB) is too large",
            req.size
        )));
    };
    if size_kib < min_kib {
        return Err(ApiError::BadRequest(format!(
            "Requested volume size ({} GB) is smaller than the minimum supported volume size ({min_kib})",
            req.size
        )));
    }
    Ok(())
}

/// The volume record a create request asks for (its cluster is chosen by placement).
fn volume_entry(req: &VolumeCreateRequest, durability: Durability, p: &Policy, id: String) -> VolumeEntry {
    let options: Vec<String> = p
        .pre_options
        .iter()
        .chain(req.glustervolumeoptions.iter())
        .chain(p.post_options.iter())
        .cloned()
        .collect();
    VolumeEntry {
        name: if req.name.is_empty() {
            format!("vol_{id}")
        } else {
            req.name.clone()
        },
        id,
        cluster: String::new(),
        size: req.size as u64,
        arbiter: plan::interpret(&options).arbiter,
        durability,
        gid: req.gid,
        options,
        block: req.block,
        snapshot_enable: req.snapshot.enable,
        snapshot_factor: if req.snapshot.enable {
            req.snapshot.factor
        } else {
            1.0
        },
        bricks: Default::default(),
        pending: None,
        hidden: false,
        // A block-hosting volume keeps 2 % in reserve (Heketi's 98/2 split).
        block_free: if req.block { req.size as u64 * 98 / 100 } else { 0 },
        block_reserved: if req.block {
            req.size as u64 - req.size as u64 * 98 / 100
        } else {
            0
        },
        block_restriction: String::new(),
        request_clusters: req.clusters.clone(),
        brick_sets: Vec::new(),
    }
}

pub async fn create(
    State(st): State<AppState>,
    role: Option<Extension<Role>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: VolumeCreateRequest = parse_body(&body)?;
    let durability = validate_create(&req)?;
    // Every cluster's record in one pass (placement needs them too): a scan of their
    // keyspace costs more than its few keys suggest, each record having been rewritten by
    // every create since the last flush.
    let records: Vec<ClusterEntry> = st
        .replica()
        .read(|v| state::all(v, state::keys::CLUSTER_PREFIX))?;
    let all_clusters: Vec<String> = records.iter().map(|c| c.id.clone()).collect();
    if all_clusters.is_empty() {
        return Err(ApiError::BadRequest("No clusters configured".into()));
    }
    for c in &req.clusters {
        if !all_clusters.contains(c) {
            return Err(ApiError::BadRequest(format!("Cluster id {c} not found")));
        }
    }
    check_size(&st, &req, &durability)?;
    st.throttle()?;
    let id = ids::new_id();
    let volume = volume_entry(&req, durability, st.policy(), id);
    let candidates = if req.clusters.is_empty() {
        all_clusters
    } else {
        req.clusters.clone()
    };
    if !req.name.is_empty() {
        if let Some(answer) = retried_create(&st, &volume, &candidates)? {
            return Ok(answer);
        }
    }
    let op_id = ids::new_id();
    let placed = st.replica().read(|r| {
        plan::place_volume(
            r,
            st.policy(),
            &volume,
            &candidates,
            &records,
            &op_id,
            crate::clock::now_secs(),
        )
    })?;
    let (cluster, bricks) = placed;
    let mut volume = volume;
    volume.cluster = cluster;
    let by_user = matches!(role, Some(Extension(Role::User)));
    let mut op = new_op(
        OpKind::VolumeCreate,
        OpPlan::VolumeCreate { volume, bricks },
        by_user,
    );
    op.id = op_id;
    st.start_limited(op).await.map_err(|e| match e {
        ApiError::Internal(m) => ApiError::Internal(format!("Failed to allocate new volume: {m}")),
        other => other,
    })
}

/// Idempotent creates: a create naming a volume that exists in a candidate cluster. The same
/// request again (a client retrying after a timeout or a failover) gets the original
/// operation's queue entry, which leads to the same volume; a different request gets 409.
/// Heketi made a second volume or failed late with a 500; see docs/api-compatibility.md.
fn retried_create(
    st: &AppState,
    v: &VolumeEntry,
    candidates: &[String],
) -> Result<Option<Response>, ApiError> {
    let found = st.replica().read(|r| -> Result<_, StoreError> {
        for c in candidates {
            let Some(raw) = r.get(&state::keys::volume_name(c, &v.name))? else {
                continue;
            };
            let id = String::from_utf8_lossy(&raw).to_string();
            let Some(existing) = state::get_volume(r, &id)? else {
                continue;
            };
            // The operation that created it: still pending, or done and kept in the queue.
            let creator = match &existing.pending {
                Some(op) => state::get_op(r, op)?.filter(|o| o.kind == OpKind::VolumeCreate),
                None => state::all::<crate::state::model::Operation>(r, state::keys::OP_PREFIX)?
                    .into_iter()
                    .find(|o| {
                        matches!(&o.plan, OpPlan::VolumeCreate { volume, .. } if volume.id == existing.id)
                            && o.status == crate::state::model::OpStatus::Done
                    }),
            };
            return Ok(Some((existing, creator.map(|o| o.id))));
        }
        Ok(None)
    })?;
    let Some((existing, creator)) = found else {
        return Ok(None);
    };
    let same = existing.size == v.size
        && existing.durability == v.durability
        && existing.gid == v.gid
        && existing.options == v.options
        && existing.block == v.block
        && existing.snapshot_enable == v.snapshot_enable
        && existing.snapshot_factor == v.snapshot_factor
        && existing.request_clusters == v.request_clusters;
    if !same {
        return Err(ApiError::Conflict(format!(
            "Volume name '{}' already in use by volume {} (created with a different request)",
            v.name, existing.id
        )));
    }
    match creator {
        Some(op) => Ok(Some(respond::accepted(&format!("/queue/{op}")))),
        None => Err(ApiError::Conflict(format!(
            "Volume name '{}' already in use by volume {}",
            v.name, existing.id
        ))),
    }
}

/// A volume that is not being created or deleted.
fn visible_volume(st: &AppState, id: &str) -> Result<VolumeEntry, ApiError> {
    match st.replica().read(|v| state::get_volume(v, id))? {
        Some(v) if !v.hidden => Ok(v),
        _ => Err(ApiError::NotFound),
    }
}

pub async fn info(
    State(st): State<AppState>,
    mode: ReadMode,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = route_id(&id)?;
    st.read_barrier(mode).await?;
    let v = visible_volume(&st, id)?;
    let info = st.replica().read(|r| {
        let hosts = views::cluster_hosts(r, &v.cluster)?;
        views::volume_info(r, &v, &hosts)
    })?;
    Ok(json(StatusCode::OK, &info))
}

#[derive(serde::Serialize)]
struct VolumeList {
    volumes: Vec<String>,
}

/// Read and written on a blocking thread: at 100,000 volumes the list is a scan of every
/// cluster's index and 3.5 MB of JSON, about 80 ms that would otherwise hold one of the
/// runtime's two workers (and with two lists at once, the heartbeats).
pub async fn list(State(st): State<AppState>, mode: ReadMode) -> Result<Response, ApiError> {
    st.read_barrier(mode).await?;
    tokio::task::spawn_blocking(move || -> Result<Response, ApiError> {
        let volumes = st.replica().read(|r| -> Result<Vec<String>, StoreError> {
            let mut out = Vec::new();
            for c in state::cluster_ids(r)? {
                out.extend(state::cluster_volume_ids(r, &c)?);
            }
            // A volume being deleted is hidden (Heketi's rule): past the point of no return
            // its Gluster volume is gone, and it never shows again.
            let deleting = state::deleting_volume_ids(r)?;
            out.retain(|v| !deleting.contains(v));
            out.sort();
            Ok(out)
        })?;
        Ok(json(StatusCode::OK, &VolumeList { volumes }))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("volume list: {e}")))?
}

pub async fn delete(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = route_id(&id)?.to_string();
    let v = visible_volume(&st, &id)?;
    if v.name == "heketidbstorage" {
        return Err(ApiError::Conflict(
            "Cannot delete volume containing the Heketi database".into(),
        ));
    }
    st.throttle()?;
    st.start_limited(new_op(
        OpKind::VolumeDelete,
        OpPlan::VolumeDelete { volume: id },
        false,
    ))
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpandRequest {
    #[serde(default)]
    pub expand_size: i64,
}

pub async fn expand(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = route_id(&id)?.to_string();
    let req: ExpandRequest = parse_body(&body)?;
    if req.expand_size == 0 {
        return Err(failed("expand_size: cannot be blank"));
    }
    if req.expand_size < 1 {
        return Err(failed("expand_size: must be no less than 1"));
    }
    let v = visible_volume(&st, &id)?;
    too_big("expand_size", req.expand_size as u64, v.size)?;
    st.throttle()?;
    let devices = st
        .replica()
        .read(|r| plan::device_views(r, &v.cluster, crate::clock::now_secs()))?;
    let alloc = plan::alloc_request(st.policy(), &v, req.expand_size as u64, v.bricks.len())?;
    let placed = allocator::place(&devices, &alloc)
        .map_err(|e| ApiError::Internal(format!("Failed to allocate volume expansion: {e}")))?;
    let op_id = ids::new_id();
    let bricks = plan::bricks_of(placed, &id, &op_id);
    let mut op = new_op(
        OpKind::VolumeExpand,
        OpPlan::VolumeExpand {
            volume: id,
            bricks,
            delta: req.expand_size as u64,
        },
        false,
    );
    op.id = op_id;
    st.start_limited(op).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloneRequest {
    #[serde(default)]
    pub name: String,
}

pub async fn clone(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = route_id(&id)?.to_string();
    let req: CloneRequest = respond::parse_optional_body(&body)?;
    if !req.name.is_empty() && !validate::is_volume_name(&req.name) {
        return Err(failed("name: must be in a valid format"));
    }
    let src = visible_volume(&st, &id)?;
    st.throttle()?;
    let clone_id = ids::new_id();
    let mut clone = src.clone();
    clone.name = if req.name.is_empty() {
        format!("vol_{clone_id}")
    } else {
        req.name
    };
    clone.id = clone_id;
    clone.bricks = Default::default();
    clone.brick_sets = Vec::new();
    clone.pending = None;
    clone.hidden = false;
    clone.request_clusters = Vec::new();
    st.start_limited(new_op(
        OpKind::VolumeClone,
        OpPlan::VolumeClone { source: id, clone },
        false,
    ))
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestrictionRequest {
    #[serde(default)]
    pub restriction: String,
}

pub async fn block_restriction(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = route_id(&id)?.to_string();
    let req: RestrictionRequest = parse_body(&body)?;
    if !matches!(req.restriction.as_str(), "" | "locked") {
        return Err(failed("restriction: must be a valid value"));
    }
    visible_volume(&st, &id)?;
    st.throttle()?;
    st.start_limited(new_op(
        OpKind::VolumeRestriction,
        OpPlan::VolumeRestriction {
            volume: id,
            restriction: req.restriction,
        },
        false,
    ))
    .await
}

#[cfg(test)]
mod size_tests {
    use super::too_big;
    use crate::validate::MAX_VOLUME_GIB;

    #[test]
    fn sizes_beyond_the_maximum_are_refused_without_overflow() {
        assert!(too_big("size", 1, 0).is_ok());
        assert!(too_big("size", MAX_VOLUME_GIB, 0).is_ok());
        assert!(too_big("size", MAX_VOLUME_GIB + 1, 0).is_err());
        assert!(too_big("expand_size", 1, MAX_VOLUME_GIB).is_err());
        assert!(too_big("expand_size", u64::MAX, 5).is_err());
        assert!(too_big("size", i64::MAX as u64, 0).is_err());
    }
}
