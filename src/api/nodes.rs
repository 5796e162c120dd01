//! `/nodes`: Heketi's node resource (spec 1.3).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::error::ApiError;
use super::respond::{json, parse_body};
use super::validate::{self, failed};
use super::{outcome, route_id, AppState, ReadMode};
use crate::ids;
use crate::ops::new_op;
use crate::state::model::{EntryState, NodeEntry, OpKind, OpPlan, Tags};
use crate::state::{self, Command};
use crate::views;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostnamesReq {
    #[serde(default)]
    pub manage: Vec<String>,
    #[serde(default)]
    pub storage: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeAddRequest {
    #[serde(default)]
    pub zone: i64,
    #[serde(default)]
    pub hostnames: HostnamesReq,
    #[serde(default)]
    pub cluster: String,
    #[serde(default)]
    pub tags: Tags,
}

fn validate_add(r: &NodeAddRequest) -> Result<(), ApiError> {
    let mut errs = Vec::new();
    if !validate::is_uuid(&r.cluster) {
        errs.push(if r.cluster.is_empty() {
            "cluster: cannot be blank".to_string()
        } else {
            format!("cluster: {} is not a valid UUID", r.cluster)
        });
    }
    let mut host_errs = Vec::new();
    for (field, list) in [("manage", &r.hostnames.manage), ("storage", &r.hostnames.storage)] {
        if list.is_empty() {
            host_errs.push(format!("{field}: cannot be blank"));
        } else if !list.iter().all(|h| validate::is_host(h)) {
            host_errs.push(format!("{field}: {list:?} is not a valid {field} hostname"));
        }
    }
    if !host_errs.is_empty() {
        errs.push(format!("hostnames: ({}.)", host_errs.join("; ")));
    }
    if r.zone < 1 {
        errs.push(if r.zone == 0 {
            "zone: cannot be blank".into()
        } else {
            "zone: must be no less than 1".into()
        });
    }
    if !errs.is_empty() {
        errs.sort();
        return Err(failed(&errs.join("; ")));
    }
    validate::tags(&r.tags)
}

pub async fn add(State(st): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req: NodeAddRequest = parse_body(&body)?;
    validate_add(&req)?;
    let cluster = st
        .replica()
        .read(|v| state::get_cluster(v, &req.cluster))?
        .ok_or_else(|| ApiError::NotFound2("Cluster id does not exist".into()))?;
    let id = ids::new_id();
    // The peer that probes the new node; the operation's first step checks that glusterd
    // runs there (or on the new node, the first of its cluster): `ops::kinds::node_add`.
    let peer = first_online_peer(&st, &cluster.nodes)?;
    let node = NodeEntry {
        id,
        cluster: req.cluster,
        zone: req.zone,
        manage: req.hostnames.manage,
        storage: req.hostnames.storage,
        tags: req.tags,
        state: "online".into(),
        devices: Default::default(),
        pending: None,
    };
    st.start(new_op(
        OpKind::NodeAdd,
        OpPlan::NodeAdd {
            node,
            probe_from: peer,
        },
        false,
    ))
    .await
}

fn first_online_peer(
    st: &AppState,
    nodes: &std::collections::BTreeSet<String>,
) -> Result<Option<String>, ApiError> {
    st.replica()
        .read(|v| {
            for id in nodes {
                if let Some(n) = state::get_node(v, id)? {
                    if n.state.is_online() {
                        return Ok(Some(n.manage_host().to_string()));
                    }
                }
            }
            Ok::<_, hekate_raft::StoreError>(None)
        })
        .map_err(ApiError::from)
}

/// A visible node (one still being added is not).
pub fn visible_node(st: &AppState, id: &str) -> Result<NodeEntry, ApiError> {
    match st.replica().read(|v| state::get_node(v, id))? {
        Some(n) if n.pending.is_none() => Ok(n),
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
    let n = visible_node(&st, id)?;
    let info = st.replica().read(|v| views::node_info(v, &n))?;
    Ok(json(StatusCode::OK, &info))
}

pub async fn delete(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = route_id(&id)?.to_string();
    let n = visible_node(&st, &id)?;
    if !n.devices.is_empty() {
        return Err(ApiError::Conflict(format!(
            "Unable to delete node [{id}] because it contains devices"
        )));
    }
    let cluster = st.replica().read(|v| state::get_cluster(v, &n.cluster))?;
    let others: std::collections::BTreeSet<String> = cluster
        .map(|c| c.nodes.into_iter().filter(|x| *x != id).collect())
        .unwrap_or_default();
    let detach_from = first_online_peer(&st, &others)?;
    st.start(new_op(
        OpKind::NodeDelete,
        OpPlan::NodeDelete {
            node: id,
            detach_from,
        },
        false,
    ))
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateRequest {
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub healcheck: String,
}

pub fn validate_state(r: &StateRequest) -> Result<(), ApiError> {
    if r.state.is_empty() {
        return Err(failed("state: cannot be blank"));
    }
    if !matches!(r.state.as_str(), "online" | "offline" | "failed") {
        return Err(failed(&format!("state: {} is not valid state", r.state)));
    }
    if !matches!(r.healcheck.as_str(), "" | "enable" | "disable") {
        return Err(failed("healcheck: must be a valid value"));
    }
    Ok(())
}

pub async fn set_state(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = route_id(&id)?.to_string();
    let req: StateRequest = parse_body(&body)?;
    validate_state(&req)?;
    let n = visible_node(&st, &id)?;
    if req.state == "failed" && n.state == EntryState::Offline {
        let devices: Vec<String> = n.devices.iter().cloned().collect();
        let healcheck = req.healcheck != "disable";
        return super::evict::start_removal(&st, OpKind::NodeRemove, Some(id), devices, healcheck).await;
    }
    let failed = req.state == "failed";
    if failed {
        st.throttle()?;
    }
    let op = new_op(
        OpKind::NodeState,
        OpPlan::NodeState {
            node: id,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagsChangeRequest {
    #[serde(default)]
    pub tags: Tags,
    #[serde(default)]
    pub change_type: String,
}

/// The resulting tag map of a `set|update|delete` change.
pub fn change_tags(current: &Tags, req: &TagsChangeRequest) -> Result<Tags, ApiError> {
    let mut out = current.clone();
    match req.change_type.as_str() {
        "set" => out = req.tags.clone(),
        "update" => out.extend(req.tags.clone()),
        "delete" => req.tags.keys().for_each(|k| {
            out.remove(k);
        }),
        "" => return Err(failed("change_type: cannot be blank")),
        _ => return Err(failed("change_type: must be a valid value")),
    }
    validate::tags(&out)?;
    Ok(out)
}

pub async fn set_tags(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = route_id(&id)?.to_string();
    let req: TagsChangeRequest = parse_body(&body)?;
    let n = visible_node(&st, &id)?;
    let tags = change_tags(&n.tags, &req)?;
    outcome(
        st.replica()
            .propose(&Command::SetTags {
                node: Some(id),
                device: None,
                tags: tags.clone(),
            })
            .await?,
    )?;
    Ok(json(StatusCode::OK, &tags))
}
