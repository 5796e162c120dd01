//! `/admin` (Heketi's maintenance modes) and `/internal/logging`.
//!
//! Unlike Heketi, the admin state is replicated: setting `read-only` through any instance puts
//! the whole cluster in maintenance. The gate runs on the instance that receives the request
//! (before forwarding), so `local-client` judges the real client address; a forwarded request
//! proves it was gated by arriving through the peer entry (`forward::peer_entry`). Fix of a Heketi quirk: `POST /admin` is
//! allowed in `read-only` mode, so maintenance can be left through the API.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::respond::{empty, json};
use super::{outcome, AppState};
use crate::state::{keys, Command};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminState {
    #[serde(default)]
    pub state: String,
}

/// The committed admin state, or the configured default.
pub fn current(st: &AppState) -> String {
    let stored = st
        .replica()
        .read(|v| hekate_raft::StateReader::get(v, keys::ADMIN_STATE))
        .ok()
        .flatten();
    match stored {
        Some(s) => String::from_utf8_lossy(&s).into_owned(),
        None if st.options().default_admin_state.is_empty() => "normal".into(),
        None => st.options().default_admin_state.clone(),
    }
}

pub async fn get_state(State(st): State<AppState>) -> Response {
    json(StatusCode::OK, &AdminState { state: current(&st) })
}

pub async fn set_state(State(st): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req: AdminState = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("request unable to be parsed: {e}")))?;
    if !matches!(req.state.as_str(), "normal" | "read-only" | "local-client") {
        return Err(super::validate::failed("state: must be a valid value"));
    }
    outcome(
        st.replica()
            .propose(&Command::SetAdminState { state: req.state })
            .await?,
    )?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// True when the request was forwarded by a replica (it came in through the peer entry).
pub fn forwarded_by_peer(req: &Request) -> bool {
    req.extensions()
        .get::<super::forward::ForwardedByPeer>()
        .is_some()
}

pub async fn gate(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let path = req.uri().path();
    if read || path == "/admin" || forwarded_by_peer(&req) {
        return next.run(req).await;
    }
    match current(&st).as_str() {
        "read-only" => ApiError::Unavailable("Service disabled for maintenance".into()).into_response(),
        "local-client" => {
            let local = req
                .extensions()
                .get::<ConnectInfo<std::net::SocketAddr>>()
                .is_some_and(|c| c.0.ip().is_loopback());
            if local {
                next.run(req).await
            } else {
                ApiError::Unavailable("Service disabled for maintenance".into()).into_response()
            }
        }
        _ => next.run(req).await,
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LogLevel {
    pub loglevel: std::collections::BTreeMap<String, String>,
}

pub async fn get_logging(State(st): State<AppState>) -> Response {
    let level = st
        .options()
        .log
        .as_ref()
        .map(|l| l.level())
        .unwrap_or_else(|| "info".into());
    json(
        StatusCode::OK,
        &LogLevel {
            loglevel: [("glusterfs".to_string(), level)].into(),
        },
    )
}

/// Sets this instance's log level (per instance, not replicated).
pub async fn set_logging(State(st): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req: LogLevel = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("request unable to be parsed: {e}")))?;
    let Some(level) = req.loglevel.get("glusterfs") else {
        return Err(ApiError::Unprocessable(
            "Only \"glusterfs\" logger may be modified".into(),
        ));
    };
    let Some(log) = st.options().log.as_ref() else {
        return Err(ApiError::Internal(
            "logging is not under this process's control".into(),
        ));
    };
    log.set(level).map_err(ApiError::Unprocessable)?;
    Ok(get_logging(State(st)).await)
}
