//! `/blockvolumes`: Heketi's block volume resource (spec 1.7): validation in Heketi's order,
//! the block-hosting volume chosen or planned (`ops::plan::place_block`), then one committed
//! operation; list, info, expand and delete.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::respond::{json, parse_body};
use super::validate::{self, failed};
use super::{route_id, AppState, ReadMode};
use crate::auth::Role;
use crate::ids;
use crate::ops::{new_op, plan};
use crate::state::model::{BlockVolumeEntry, OpKind, OpPlan};
use crate::state::{self};
use crate::views;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockVolumeCreateRequest {
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub clusters: Vec<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub hacount: i64,
    #[serde(default)]
    pub auth: bool,
}

/// Heketi's checks, in Heketi's order.
fn validate_create(r: &BlockVolumeCreateRequest) -> Result<(), ApiError> {
    if r.size == 0 {
        return Err(failed("size: cannot be blank"));
    }
    if r.size < 1 {
        return Err(failed("size: must be no less than 1"));
    }
    if !r.name.is_empty() && !validate::is_volume_name(&r.name) {
        return Err(failed("name: must be in a valid format"));
    }
    if r.hacount < 0 {
        return Err(failed("hacount: must be no less than 1"));
    }
    if r.size as u64 > crate::validate::MAX_VOLUME_GIB {
        return Err(ApiError::BadRequest(format!(
            "size: {} GB is more than the maximum supported size ({} GB)",
            r.size,
            crate::validate::MAX_VOLUME_GIB
        )));
    }
    Ok(())
}

pub async fn create(
    State(st): State<AppState>,
    role: Option<Extension<Role>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: BlockVolumeCreateRequest = parse_body(&body)?;
    validate_create(&req)?;
    let all_clusters = st.replica().read(|v| state::cluster_ids(v))?;
    if all_clusters.is_empty() {
        return Err(ApiError::BadRequest("No clusters configured".into()));
    }
    for c in &req.clusters {
        if !all_clusters.contains(c) {
            return Err(ApiError::BadRequest(format!("Cluster id {c} not found")));
        }
    }
    st.throttle()?;
    let id = ids::new_id();
    let block = BlockVolumeEntry {
        name: if req.name.is_empty() {
            format!("blockvol_{id}")
        } else {
            req.name.clone()
        },
        id,
        cluster: String::new(),
        bhv: String::new(),
        size: req.size as u64,
        usable_size: req.size as u64,
        hacount: req.hacount,
        auth: req.auth,
        hosts: Vec::new(),
        iqn: String::new(),
        username: String::new(),
        password: String::new(),
        pending: None,
        hidden: false,
    };
    let candidates = if req.clusters.is_empty() {
        all_clusters
    } else {
        req.clusters
    };
    let op_id = ids::new_id();
    let now = crate::clock::now_secs();
    let place = st
        .replica()
        .read(|r| plan::place_block(r, st.policy(), &block, &candidates, &op_id, now))?;
    let by_user = matches!(role, Some(Extension(Role::User)));
    let mut op = new_op(
        OpKind::BlockVolumeCreate,
        OpPlan::BlockVolumeCreate {
            block: Box::new(place.block),
            new_bhv: place.new_bhv.map(Box::new),
            bricks: place.bricks,
            prealloc: st.policy().block_prealloc,
        },
        by_user,
    );
    op.id = op_id;
    st.start_limited(op).await
}

fn visible_block(st: &AppState, id: &str) -> Result<BlockVolumeEntry, ApiError> {
    match st.replica().read(|r| state::get_blockvolume(r, id))? {
        Some(b) if !b.hidden => Ok(b),
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
    let b = visible_block(&st, id)?;
    Ok(json(StatusCode::OK, &views::block_volume_info(&b)))
}

#[derive(Serialize)]
struct BlockVolumeList {
    blockvolumes: Vec<String>,
}

pub async fn list(State(st): State<AppState>, mode: ReadMode) -> Result<Response, ApiError> {
    st.read_barrier(mode).await?;
    let blockvolumes = st
        .replica()
        .read(|r| -> Result<Vec<String>, hekate_raft::StoreError> {
            Ok(
                state::all::<BlockVolumeEntry>(r, state::keys::BLOCKVOLUME_PREFIX)?
                    .into_iter()
                    .filter(|b| !b.hidden)
                    .map(|b| b.id)
                    .collect(),
            )
        })?;
    Ok(json(StatusCode::OK, &BlockVolumeList { blockvolumes }))
}

pub async fn delete(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = route_id(&id)?.to_string();
    visible_block(&st, &id)?;
    st.throttle()?;
    st.start_limited(new_op(
        OpKind::BlockVolumeDelete,
        OpPlan::BlockVolumeDelete { block: id },
        false,
    ))
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockExpandRequest {
    #[serde(default)]
    pub new_size: i64,
}

pub async fn expand(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = route_id(&id)?.to_string();
    let req: BlockExpandRequest = parse_body(&body)?;
    if req.new_size == 0 {
        return Err(failed("new_size: cannot be blank"));
    }
    if req.new_size < 1 {
        return Err(ApiError::BadRequest("Invalid block volume size".into()));
    }
    visible_block(&st, &id)?;
    st.throttle()?;
    st.start_limited(new_op(
        OpKind::BlockVolumeExpand,
        OpPlan::BlockVolumeExpand {
            block: id,
            new_size: req.new_size as u64,
        },
        false,
    ))
    .await
}
