//! The HTTP edge: Heketi's REST API plus Hekate's status and membership endpoints.
//!
//! Request path: `auth_layer` (JWT, before routing, as Heketi) -> `forward` (to the leader
//! unless this replica is the leader or the path is local) -> handler -> Raft proposal or
//! linearizable read -> response. Errors map to HTTP once, in [`error`].

pub mod auth_layer;
pub mod clusters;
pub mod error;
pub mod forward;
pub mod replicas;
pub mod respond;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use hekate_raft::Replica;

use crate::auth::Verifier;
use crate::state::HekateApp;

pub type HekateReplica = Replica<HekateApp>;

/// What every handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    replica: HekateReplica,
    verifier: Option<Verifier>,
    forward_client: reqwest::Client,
    forward_timeout: Duration,
}

impl AppState {
    /// `verifier` is `None` when auth is disabled.
    pub fn new(replica: HekateReplica, verifier: Option<Verifier>, forward_timeout: Duration) -> AppState {
        let forward_client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        AppState(Arc::new(Inner {
            replica,
            verifier,
            forward_client,
            forward_timeout,
        }))
    }

    pub fn replica(&self) -> &HekateReplica {
        &self.0.replica
    }

    pub fn verifier(&self) -> Option<&Verifier> {
        self.0.verifier.as_ref()
    }

    pub fn forward_client(&self) -> &reqwest::Client {
        &self.0.forward_client
    }

    pub fn forward_timeout(&self) -> Duration {
        self.0.forward_timeout
    }
}

/// The whole API router (without the peer RPC routes, which the server mounts itself).
pub fn router(st: AppState) -> Router {
    Router::new()
        .route("/hello", get(replicas::hello))
        .route("/readyz", get(replicas::readyz))
        .route("/raft/status", get(replicas::status))
        .route("/raft/members", post(replicas::add_member))
        .route(
            "/raft/members/{id}",
            axum::routing::delete(replicas::remove_member),
        )
        .route("/raft/leader", post(replicas::transfer_leader))
        .route("/clusters", post(clusters::create).get(clusters::list))
        .route("/clusters/{id}", get(clusters::info).delete(clusters::delete))
        .route("/clusters/{id}/flags", post(clusters::set_flags))
        .fallback(|| async { error::ApiError::InvalidPath.into_response() })
        .method_not_allowed_fallback(|| async { respond::empty(StatusCode::METHOD_NOT_ALLOWED) })
        .layer(axum::middleware::from_fn_with_state(st.clone(), forward::layer))
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            auth_layer::layer,
        ))
        .with_state(st)
}

/// `x-hekate-read: local` on a GET: answer from this replica's applied state, without
/// forwarding and without a leadership check (may be stale; for operators and tests).
pub const READ_HEADER: &str = "x-hekate-read";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    Linearizable,
    Local,
}

impl ReadMode {
    pub fn of(headers: &axum::http::HeaderMap) -> ReadMode {
        match headers.get(READ_HEADER).map(|v| v.as_bytes()) {
            Some(b"local") => ReadMode::Local,
            _ => ReadMode::Linearizable,
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ReadMode {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ReadMode::of(&parts.headers))
    }
}

impl AppState {
    /// Before a read: confirm leadership with a quorum and catch up (unless a local read).
    pub async fn read_barrier(&self, mode: ReadMode) -> Result<(), error::ApiError> {
        match mode {
            ReadMode::Local => Ok(()),
            ReadMode::Linearizable => Ok(self.replica().linearizable_read().await?),
        }
    }
}

/// A path id as Heketi's routes accept it (`[A-Fa-f0-9]+`), else the router's 404.
pub fn route_id(id: &str) -> Result<&str, error::ApiError> {
    if crate::ids::is_route_id(id) {
        Ok(id)
    } else {
        Err(error::ApiError::InvalidPath)
    }
}
