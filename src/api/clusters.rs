//! `/clusters`: Heketi's cluster resource (spec section 1.2).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::respond::{empty, json, parse_body};
use super::{route_id, AppState, ReadMode};
use crate::ids;
use crate::state::{self, ClusterEntry, Command};

/// `POST /clusters` and `POST /clusters/{id}/flags` body. Missing flags are false (Heketi's
/// code, not its docs). Unknown fields are refused (a difference, docs/api-compatibility.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFlags {
    #[serde(default)]
    pub file: bool,
    #[serde(default)]
    pub block: bool,
}

#[derive(Debug, Serialize)]
pub struct ClusterInfo {
    pub id: String,
    pub nodes: Vec<String>,
    pub volumes: Vec<String>,
    pub block: bool,
    pub file: bool,
    pub blockvolumes: Vec<String>,
}

impl ClusterInfo {
    pub fn new(c: ClusterEntry, volumes: Vec<String>) -> Self {
        ClusterInfo {
            id: c.id,
            nodes: c.nodes.into_iter().collect(),
            volumes,
            block: c.block,
            file: c.file,
            blockvolumes: c.blockvolumes.into_iter().collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ClusterList {
    pub clusters: Vec<String>,
}

use super::outcome;

pub async fn create(State(st): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req: ClusterFlags = parse_body(&body)?;
    let id = ids::new_id();
    outcome(
        st.replica()
            .propose(&Command::ClusterCreate {
                id: id.clone(),
                file: req.file,
                block: req.block,
            })
            .await?,
    )?;
    Ok(json(StatusCode::CREATED, &cluster_info(&st, &id)?))
}

pub async fn list(State(st): State<AppState>, mode: ReadMode) -> Result<Response, ApiError> {
    st.read_barrier(mode).await?;
    let clusters = st.replica().read(|v| state::cluster_ids(v))?;
    Ok(json(StatusCode::OK, &ClusterList { clusters }))
}

fn cluster_info(st: &AppState, id: &str) -> Result<ClusterInfo, ApiError> {
    let info = st.replica().read(|v| -> Result<_, hekate_raft::StoreError> {
        let Some(c) = state::get_cluster(v, id)? else {
            return Ok(None);
        };
        let volumes = state::visible_volume_ids(v, &c.id)?;
        Ok(Some(ClusterInfo::new(c, volumes)))
    })?;
    info.ok_or(ApiError::NotFound)
}

pub async fn info(
    State(st): State<AppState>,
    mode: ReadMode,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = route_id(&id)?;
    st.read_barrier(mode).await?;
    Ok(json(StatusCode::OK, &cluster_info(&st, id)?))
}

/// On the leader, refuse an unknown id before proposing (nothing is committed for it);
/// `apply` checks again, since the read and the commit are not atomic.
fn must_exist(st: &AppState, id: &str) -> Result<(), ApiError> {
    st.replica()
        .read(|v| state::get_cluster(v, id))?
        .map(|_| ())
        .ok_or(ApiError::NotFound)
}

pub async fn delete(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = route_id(&id)?.to_string();
    must_exist(&st, &id)?;
    outcome(st.replica().propose(&Command::ClusterDelete { id }).await?)?;
    Ok(empty(StatusCode::OK))
}

pub async fn set_flags(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = route_id(&id)?.to_string();
    let req: ClusterFlags = parse_body(&body)?;
    must_exist(&st, &id)?;
    outcome(
        st.replica()
            .propose(&Command::ClusterSetFlags {
                id,
                file: req.file,
                block: req.block,
            })
            .await?,
    )?;
    let mut r = empty(StatusCode::OK);
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    Ok(r)
}
