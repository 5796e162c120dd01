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
    /// This replica stopped being the leader while handling the request.
    #[error("leadership changed during the request; retry")]
    NotLeader,
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

impl From<ReplicaError> for ApiError {
    fn from(e: ReplicaError) -> Self {
        match e {
            ReplicaError::NotLeader { .. } => ApiError::NotLeader,
            ReplicaError::Unavailable(m) => ApiError::Unavailable(m),
            ReplicaError::Membership(m) => ApiError::Conflict(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unparsable(_) | ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound | ApiError::NotFound2(_) | ApiError::InvalidPath => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Auth(a) => StatusCode::from_u16(a.status()).unwrap_or(StatusCode::UNAUTHORIZED),
            ApiError::Unavailable(_) | ApiError::NotLeader => StatusCode::SERVICE_UNAVAILABLE,
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
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), "{self}");
        }
        let mut resp = crate::api::respond::text(status, &self.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if not_leader {
            resp.extensions_mut().insert(crate::api::forward::NotLeaderMarker);
        }
        resp
    }
}
