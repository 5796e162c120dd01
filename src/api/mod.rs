//! The HTTP edge: Heketi's REST API plus Hekate's status and membership endpoints.
//!
//! Request path: `auth_layer` (JWT, before routing, as Heketi) -> `forward` (to the leader
//! unless this replica is the leader or the path is local) -> handler -> Raft proposal or
//! linearizable read -> response. Errors map to HTTP once, in [`error`].

pub mod admin;
pub mod auth_layer;
pub mod blockvolumes;
pub mod clusters;
pub mod db;
pub mod devices;
pub mod error;
pub mod evict;
pub mod failpoints;
pub mod footprint;
pub mod forward;
pub mod health;
pub mod metrics;
pub mod nodes;
pub mod operations;
pub mod reconcile;
pub mod replicas;
pub mod respond;
pub mod validate;
pub mod volumes;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

use crate::auth::Verifier;
use crate::config::Policy;
use crate::state::HekateReplica;

/// What every handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    replica: HekateReplica,
    opts: StateOptions,
    metrics_cache: metrics::MetricsCache,
}

/// What the API needs besides the replica.
pub struct StateOptions {
    /// `None` when auth is disabled.
    pub verifier: Option<Verifier>,
    pub forward_timeout: Duration,
    pub exec: Arc<dyn crate::executor::Executor>,
    pub policy: Policy,
    /// `default_state` from the config, used until an admin state is committed.
    pub default_admin_state: String,
    pub log: Option<crate::logging::LogControl>,
    /// The runner's drill failpoints (`/internal/failpoints`).
    pub failpoints: Arc<crate::ops::failpoint::Failpoints>,
}

impl AppState {
    pub fn new(replica: HekateReplica, opts: StateOptions) -> AppState {
        AppState(Arc::new(Inner {
            replica,
            opts,
            metrics_cache: Default::default(),
        }))
    }

    /// The executor behind the fence (leadership confirmed with a quorum, the fencing token
    /// on every command): the only way a handler reaches a node. Fails on a replica that
    /// does not lead (handlers that need it run on the leader, after forwarding).
    pub async fn fenced_executor(&self) -> Result<crate::ops::fence::Fenced, error::ApiError> {
        crate::ops::fence::Fenced::acquire(self.0.opts.exec.clone(), self.replica().clone())
            .await
            .map_err(error::ApiError::from)
    }

    pub fn failpoints(&self) -> &crate::ops::failpoint::Failpoints {
        &self.0.opts.failpoints
    }

    pub fn policy(&self) -> &Policy {
        &self.0.opts.policy
    }

    pub fn options(&self) -> &StateOptions {
        &self.0.opts
    }

    /// Refuses a new operation when too many are in flight (Heketi's 429).
    pub fn throttle(&self) -> Result<(), error::ApiError> {
        let n = self.replica().read(|v| crate::state::pending_op_ids(v))?.len();
        if n >= self.0.opts.policy.max_inflight {
            return Err(error::ApiError::Busy);
        }
        Ok(())
    }

    /// [`AppState::start`] under the in-flight limit: the limit is checked again in apply,
    /// atomically with the reservation ([`throttle`](AppState::throttle) is only an early
    /// answer that saves planning work).
    pub async fn start_limited(
        &self,
        op: crate::state::model::Operation,
    ) -> Result<axum::response::Response, error::ApiError> {
        let max_inflight = self.0.opts.policy.max_inflight as u64;
        let id = op.id.clone();
        let cmd = crate::state::Command::OpBeginLimited {
            op: Box::new(op),
            max_inflight,
        };
        self.begin(&cmd, &id).await
    }

    /// Commits an operation and answers Heketi's 202 with `Location: /queue/{id}`.
    pub async fn start(
        &self,
        op: crate::state::model::Operation,
    ) -> Result<axum::response::Response, error::ApiError> {
        let id = op.id.clone();
        self.begin(&crate::state::Command::OpBegin { op: Box::new(op) }, &id)
            .await
    }

    /// A command newer than the agreed log format (a new cluster's first seconds, before the
    /// leader's agreement round found every member): one agreement round now, so the request
    /// need not wait for the next. Still short after it, the proposal is refused with the
    /// reason (503, retry).
    pub(crate) async fn format_for(&self, cmd: &crate::state::Command) {
        let need = crate::state::format::needs(cmd);
        let agreed = self
            .replica()
            .read(|r| crate::state::format::agreed(r))
            .unwrap_or(0);
        if need > agreed {
            if let Err(e) = crate::ops::format::agree(self.replica()).await {
                tracing::info!("log format {need} needed, not agreed yet: {e}");
            }
        }
    }

    /// Proposes an operation's begin command and answers 202 `Location: /queue/{id}`.
    async fn begin(
        &self,
        cmd: &crate::state::Command,
        id: &str,
    ) -> Result<axum::response::Response, error::ApiError> {
        self.format_for(cmd).await;
        outcome(self.replica().propose(cmd).await?)?;
        Ok(respond::accepted(&format!("/queue/{id}")))
    }

    pub(crate) fn metrics_cache(&self) -> &metrics::MetricsCache {
        &self.0.metrics_cache
    }

    pub fn replica(&self) -> &HekateReplica {
        &self.0.replica
    }

    pub fn verifier(&self) -> Option<&Verifier> {
        self.0.opts.verifier.as_ref()
    }

    pub fn forward_timeout(&self) -> Duration {
        self.0.opts.forward_timeout
    }
}

/// The whole API router (without the peer RPC routes, which the server mounts itself).
pub fn router(st: AppState) -> Router {
    Router::new()
        .route("/hello", get(replicas::hello))
        .route("/metrics", get(metrics::metrics))
        .route("/admin", get(admin::get_state).post(admin::set_state))
        .route(
            "/internal/logging",
            get(admin::get_logging).post(admin::set_logging),
        )
        .route("/readyz", get(replicas::readyz))
        .route("/raft/status", get(replicas::status))
        .route("/raft/members", post(replicas::add_member))
        .route(
            "/raft/members/{id}",
            axum::routing::delete(replicas::remove_member),
        )
        .route("/raft/leader", post(replicas::transfer_leader))
        .route("/health/nodes", get(health::nodes))
        .route("/health/nodes/{id}", post(health::check))
        .route("/clusters", post(clusters::create).get(clusters::list))
        .route("/clusters/{id}", get(clusters::info).delete(clusters::delete))
        .route("/clusters/{id}/flags", post(clusters::set_flags))
        .route("/nodes", post(nodes::add))
        .route("/nodes/{id}", get(nodes::info).delete(nodes::delete))
        .route("/nodes/{id}/state", post(nodes::set_state))
        .route("/nodes/{id}/tags", post(nodes::set_tags))
        .route("/devices", post(devices::add))
        .route("/devices/{id}", get(devices::info).delete(devices::delete))
        .route("/devices/{id}/state", post(devices::set_state))
        .route("/devices/{id}/resync", get(devices::resync))
        .route("/devices/{id}/tags", post(devices::set_tags))
        .route("/volumes", post(volumes::create).get(volumes::list))
        .route("/volumes/{id}", get(volumes::info).delete(volumes::delete))
        .route("/volumes/{id}/expand", post(volumes::expand))
        .route("/volumes/{id}/clone", post(volumes::clone))
        .route(
            "/volumes/{id}/block-restriction",
            post(volumes::block_restriction),
        )
        .route(
            "/blockvolumes",
            post(blockvolumes::create).get(blockvolumes::list),
        )
        .route(
            "/blockvolumes/{id}",
            get(blockvolumes::info).delete(blockvolumes::delete),
        )
        .route("/blockvolumes/{id}/expand", post(blockvolumes::expand))
        .route("/operations/pending/cleanup", post(operations::cleanup))
        .route("/queue/{id}", get(operations::queue))
        .route("/bricks/to-evict/{id}", post(evict::evict_brick))
        .route("/operations", get(operations::summary))
        .route("/operations/pending", get(operations::pending))
        .route("/operations/pending/{id}", get(operations::pending_one))
        .route("/topology", get(operations::topology))
        .route("/db/dump", get(db::dump))
        .route("/db/check", get(db::db_check))
        .route("/db/import", post(db::import))
        .route("/backup/db", get(db::backup))
        .route("/internal/state/examine/gluster", get(reconcile::examine))
        .route("/reconcile", get(reconcile::report).post(reconcile::repair))
        .route(
            "/internal/failpoints",
            get(failpoints::get)
                .put(failpoints::arm)
                .delete(failpoints::clear),
        )
        .fallback(|| async { error::ApiError::InvalidPath.into_response() })
        .method_not_allowed_fallback(|| async { respond::empty(StatusCode::METHOD_NOT_ALLOWED) })
        // The forward layer buffers bodies with per-path limits; no second limit here.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(st.clone(), forward::layer))
        .layer(axum::middleware::from_fn_with_state(st.clone(), admin::gate))
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
        // After a follower's read index barrier the applied state is linearizable already.
        if parts.extensions.get::<forward::ReadIndexed>().is_some() {
            return Ok(ReadMode::Local);
        }
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

/// Maps a command's outcome to the API: refusals become Heketi's statuses.
pub fn outcome(o: crate::state::Outcome) -> Result<(), error::ApiError> {
    use crate::state::Outcome;
    match o {
        Outcome::Done => Ok(()),
        Outcome::NotFound => Err(error::ApiError::NotFound),
        Outcome::Conflict(m) => Err(error::ApiError::Conflict(m)),
        Outcome::Invalid(m) => Err(error::ApiError::BadRequest(m)),
        Outcome::Failed(m) => Err(error::ApiError::Internal(m)),
        Outcome::Busy => Err(error::ApiError::Busy),
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
