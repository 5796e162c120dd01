//! `/devices`: Heketi's device resource (spec 1.4).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::error::ApiError;
use super::nodes::{change_tags, validate_state, visible_node, StateRequest, TagsChangeRequest};
use super::respond::{json, parse_body, parse_optional_body};
use super::validate::{self, failed};
use super::{outcome, route_id, AppState, ReadMode};
use crate::ids;
use crate::ops::new_op;
use crate::state::model::{DeviceEntry, EntryState, OpKind, OpPlan, Tags};
use crate::state::{self, Command};
use crate::views;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceAddRequest {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub tags: Tags,
    #[serde(default)]
    pub node: String,
    #[serde(default)]
    pub destroydata: bool,
}

pub async fn add(State(st): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req: DeviceAddRequest = parse_body(&body)?;
    let mut errs = Vec::new();
    if req.name.is_empty() {
        errs.push("name: cannot be blank".to_string());
    } else if !validate::is_device_path(&req.name) {
        errs.push("name: must be in a valid format".to_string());
    }
    if req.node.is_empty() {
        errs.push("node: cannot be blank".to_string());
    } else if !validate::is_uuid(&req.node) {
        errs.push(format!("node: {} is not a valid UUID", req.node));
    }
    if !errs.is_empty() {
        return Err(failed(&errs.join("; ")));
    }
    validate::tags(&req.tags)?;
    let node =
        visible_node(&st, &req.node).map_err(|_| ApiError::NotFound2("Node id does not exist".into()))?;
    let device = DeviceEntry {
        id: ids::new_id(),
        name: req.name,
        node: node.id.clone(),
        tags: req.tags,
        state: "online".into(),
        total: 0,
        free: 0,
        used: 0,
        extent_size: 4096,
        pv_uuid: String::new(),
        paths: Vec::new(),
        brick_count: 0,
        pending: None,
    };
    let host = node.manage_host().to_string();
    st.start(new_op(
        OpKind::DeviceAdd,
        OpPlan::DeviceAdd {
            device,
            host,
            destroydata: req.destroydata,
        },
        false,
    ))
    .await
}

/// A visible device (one still being added is not), with its node's manage host.
fn visible_device(st: &AppState, id: &str) -> Result<(DeviceEntry, String), ApiError> {
    let found = st.replica().read(|v| -> Result<_, hekate_raft::StoreError> {
        let Some(d) = state::get_device(v, id)? else {
            return Ok(None);
        };
        // A device joins its node's list when its add operation finishes.
        let Some(n) = state::get_node(v, &d.node)?.filter(|n| n.devices.contains(id)) else {
            return Ok(None);
        };
        Ok(Some((d, n.manage_host().to_string())))
    })?;
    found.ok_or(ApiError::NotFound)
}

pub async fn info(
    State(st): State<AppState>,
    mode: ReadMode,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = route_id(&id)?;
    st.read_barrier(mode).await?;
    let (d, _) = visible_device(&st, id)?;
    let info = st.replica().read(|v| views::device_info(v, &d))?;
    Ok(json(StatusCode::OK, &info))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceDeleteOptions {
    #[serde(default)]
    pub forceforget: bool,
}

pub async fn delete(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = route_id(&id)?.to_string();
    let opts: DeviceDeleteOptions = parse_optional_body(&body)?;
    let (d, host) = visible_device(&st, &id)?;
    if d.state != EntryState::Failed {
        return Err(ApiError::BadRequest(format!(
            "device: {id} is not in failed state"
        )));
    }
    if d.brick_count > 0 {
        return Err(ApiError::Conflict(format!(
            "Unable to delete device [{id}] because it contains bricks"
        )));
    }
    st.start(new_op(
        OpKind::DeviceDelete,
        OpPlan::DeviceDelete {
            device: id,
            host,
            forget: opts.forceforget,
        },
        false,
    ))
    .await
}

pub async fn set_state(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = route_id(&id)?.to_string();
    let req: StateRequest = parse_body(&body)?;
    validate_state(&req)?;
    let (d, _) = visible_device(&st, &id)?;
    if req.state == "failed" && d.state == EntryState::Offline && d.brick_count > 0 {
        let healcheck = req.healcheck != "disable";
        return super::evict::start_removal(&st, OpKind::DeviceRemove, None, vec![id], healcheck).await;
    }
    let failed = req.state == "failed";
    if failed {
        st.throttle()?;
    }
    let op = new_op(
        OpKind::DeviceState,
        OpPlan::DeviceState {
            device: id,
            state: req.state,
        },
        false,
    );
    if failed {
        st.start_limited(op).await
    } else {
        st.start(op).await
    }
}

pub async fn resync(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = route_id(&id)?.to_string();
    let (_, host) = visible_device(&st, &id)?;
    let op = new_op(
        OpKind::DeviceResync,
        OpPlan::DeviceResync { device: id, host },
        false,
    );
    let location = format!("/queue/{}", op.id);
    st.start(op).await?;
    // Heketi answers this (mutating) GET with Go's redirect body.
    Ok(super::respond::redirect_html(
        StatusCode::ACCEPTED,
        &location,
        "Accepted",
    ))
}

pub async fn set_tags(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = route_id(&id)?.to_string();
    let req: TagsChangeRequest = parse_body(&body)?;
    let (d, _) = visible_device(&st, &id)?;
    let tags = change_tags(&d.tags, &req)?;
    outcome(
        st.replica()
            .propose(&Command::SetTags {
                node: None,
                device: Some(id),
                tags: tags.clone(),
            })
            .await?,
    )?;
    Ok(json(StatusCode::OK, &tags))
}
