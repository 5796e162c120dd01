//! API errors, mapped to Heketi's status codes and plain-text bodies in exactly one place.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hekate_raft::{ReplicaError, StoreError};

use crate::auth::AuthError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// A 422 with its own message (`/internal/logging`).
    #[error("{0}")]
    Unprocessable(String),
    /// Heketi's 422 for bodies that do not parse.
    #[error("request unable to be parsed: {0}")]
    Unparsable(String),
    #[error("Id not found")]
    NotFound,
    /// A 404 with Heketi's specific message (`Cluster id does not exist`, ...).
    #[error("{0}")]
    NotFound2(String),
    /// A path no route matches (Heketi's router 404).
    #[error("Invalid path or request")]
    InvalidPath,
    #[error("{0}")]
    Conflict(String),
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// This replica stopped being the leader while handling the request (nothing of it
    /// was committed).
    #[error("leadership changed during the request; nothing was written, retry")]
    NotLeader,
    /// The write was refused before it reached the log (no leader, or a leader without a
    /// quorum): it never commits; retrying is safe.
    #[error("not accepted: {0}; nothing was written, retry")]
    NotAccepted(String),
    /// The write reached a leader but its commit was not confirmed in time: it may still
    /// commit. Clients must check before retrying.
    #[error("outcome unknown: {0}; the write may still be committed, check before retrying")]
    OutcomeUnknown(String),
    /// No leader, no quorum, or leadership moved mid-request: retry.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
    #[error("unsupported content type {0:?}: request bodies are JSON (application/json)")]
    UnsupportedMedia(String),
    /// Not provided by Hekate (with why and what to use instead).
    #[error("{0}")]
    NotImplemented(String),
    /// Too many operations in flight (Heketi's 429).
    #[error("Server busy. Retry operation later.")]
    Busy,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(format!("store: {e}"))
    }
}

impl From<crate::ops::plan::PlanError> for ApiError {
    fn from(e: crate::ops::plan::PlanError) -> Self {
        match e {
            crate::ops::plan::PlanError::Store(e) => e.into(),
            crate::ops::plan::PlanError::Failed(m) => ApiError::Internal(m),
            crate::ops::plan::PlanError::Busy => ApiError::Busy,
        }
    }
}

impl From<ReplicaError> for ApiError {
    fn from(e: ReplicaError) -> Self {
        match e {
            ReplicaError::NotLeader { .. } => ApiError::NotLeader,
            ReplicaError::NotAccepted(m) => ApiError::NotAccepted(m),
            ReplicaError::OutcomeUnknown(m) => ApiError::OutcomeUnknown(m),
            ReplicaError::Unavailable(m) => ApiError::Unavailable(m),
            ReplicaError::Membership(m) => ApiError::Conflict(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Header naming the outcome class of a write that was not answered with its result
/// (docs/api.md, "Outcome of a write"): `not-accepted` (never written) or `unknown`.
pub const OUTCOME_HEADER: &str = "x-hekate-outcome";

impl ApiError {
    /// The outcome class this error tells the client, if it is about a write's fate.
    pub fn outcome(&self) -> Option<&'static str> {
        match self {
            ApiError::NotLeader | ApiError::NotAccepted(_) => Some("not-accepted"),
            ApiError::OutcomeUnknown(_) => Some("unknown"),
            _ => None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unparsable(_) | ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound | ApiError::NotFound2(_) | ApiError::InvalidPath => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Auth(a) => StatusCode::from_u16(a.status()).unwrap_or(StatusCode::UNAUTHORIZED),
            ApiError::Unavailable(_) | ApiError::NotLeader | ApiError::NotAccepted(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::OutcomeUnknown(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Busy => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let not_leader = matches!(self, ApiError::NotLeader);
        let outcome = self.outcome();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), "{self}");
        }
        let mut resp = crate::api::respond::text(status, &self.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(outcome) = outcome {
            resp.headers_mut()
                .insert(OUTCOME_HEADER, HeaderValue::from_static(outcome));
        }
        if not_leader {
            resp.extensions_mut().insert(crate::api::forward::NotLeaderMarker);
        }
        resp
    }
}
