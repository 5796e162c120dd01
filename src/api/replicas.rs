//! Hekate's own endpoints: `/hello` (Heketi's), `/readyz`, `/raft/status`, and membership
//! administration (`/raft/members`, `/raft/leader`, admin only). Documented in docs/api.md.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hekate_raft::Member;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::respond::{json, parse_body, text};
use super::AppState;

pub async fn hello() -> Response {
    let mut r = "Hello from Heketi".into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    r
}

/// 200 when this replica knows a leader and has applied what the leader had applied.
pub async fn readyz(State(st): State<AppState>) -> Response {
    match st.replica().ready().await {
        Ok(()) => text(StatusCode::OK, "ready"),
        Err(why) => {
            let mut r = text(StatusCode::SERVICE_UNAVAILABLE, &format!("not ready: {why}"));
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
    }
}

/// The replica's Raft status plus the group's `identity` (the cluster part of the fencing
/// token, for a node guard's `--clusters`; null until the first leader sets it) and the log
/// formats: the one the members agreed on and the newest this build reads (`state::format`).
pub async fn status(State(st): State<AppState>) -> Response {
    let mut v = serde_json::to_value(st.replica().status()).unwrap_or_default();
    let identity = st.replica().read(|r| crate::state::identity(r)).ok().flatten();
    let agreed = st.replica().read(|r| crate::state::format::agreed(r)).ok();
    if let Some(o) = v.as_object_mut() {
        o.insert("identity".into(), serde_json::json!(identity));
        o.insert(
            "log_format".into(),
            serde_json::json!({"agreed": agreed, "reads": crate::state::format::CURRENT}),
        );
    }
    json(StatusCode::OK, &v)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub id: u64,
    pub api: String,
    #[serde(default)]
    pub peer: String,
}

#[derive(Debug, Serialize)]
struct Members {
    leader: Option<u64>,
    members: Vec<hekate_raft::MemberStatus>,
}

fn members(st: &AppState) -> Response {
    let s = st.replica().status();
    json(
        StatusCode::OK,
        &Members {
            leader: s.leader,
            members: s.members,
        },
    )
}

pub async fn add_member(State(st): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req: AddMember = parse_body(&body)?;
    if req.id == 0 {
        return Err(ApiError::BadRequest("id: must be a positive integer".into()));
    }
    crate::config::check_addr("api", &req.api).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let peer = if req.peer.is_empty() {
        req.api.clone()
    } else {
        req.peer.clone()
    };
    crate::config::check_addr("peer", &peer).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    st.replica()
        .add_member(
            req.id,
            Member {
                api_addr: req.api,
                peer_addr: peer,
            },
        )
        .await?;
    Ok(members(&st))
}

pub async fn remove_member(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id: u64 = id.parse().map_err(|_| ApiError::InvalidPath)?;
    st.replica().remove_member(id).await?;
    Ok(members(&st))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferLeader {
    pub id: u64,
}

pub async fn transfer_leader(State(st): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req: TransferLeader = parse_body(&body)?;
    let leader = st.replica().transfer_leader(req.id).await?;
    if leader != req.id {
        return Err(ApiError::Unavailable(format!(
            "leadership moved to replica {leader} instead of {}",
            req.id
        )));
    }
    Ok(json(StatusCode::OK, &serde_json::json!({ "leader": leader })))
}
