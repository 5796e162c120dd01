//! `/internal/failpoints`: arms the runner's drill failpoints on the replica that receives
//! the request (never forwarded: a drill targets one process). `GET` reads their state,
//! `PUT` arms a stall (`{"verb":"brick_create","ms":4000,"times":1}`), `DELETE` disarms.
//! Arming is refused unless `raft.failpoints` is set in the configuration.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::error::ApiError;
use super::respond::{empty, json};
use super::AppState;
use crate::ops::failpoint::Stall;

pub async fn get(State(st): State<AppState>) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &st.failpoints().status()))
}

pub async fn arm(State(st): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let stall: Stall = super::respond::parse_body(&body)?;
    st.failpoints()
        .arm(stall)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(json(StatusCode::OK, &st.failpoints().status()))
}

pub async fn clear(State(st): State<AppState>) -> Result<Response, ApiError> {
    st.failpoints().clear();
    Ok(empty(StatusCode::NO_CONTENT))
}
