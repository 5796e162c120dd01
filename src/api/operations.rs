//! The replicated queue (`/queue/{id}`), `/operations`, and Hekate's `/topology`.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde::Serialize;

use super::error::ApiError;
use super::respond::{empty, json, redirect_html, text};
use super::{route_id, AppState, ReadMode};
use crate::auth::{AuthError, Role};
use crate::state::model::{OpStatus, Operation};
use crate::state::{self};
use crate::views;

/// Heketi's async contract: 200 + `X-Pending` while running; then 303 to the resource, 204,
/// or 500 with the error. Unlike Heketi the result is not deleted on first read: it stays
/// readable on every replica until garbage-collected (`queue_retention_seconds`).
pub async fn queue(
    State(st): State<AppState>,
    mode: ReadMode,
    role: Option<Extension<Role>>,
    here: Option<Extension<AnsweredHere>>,
    held: Held,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = route_id(&id)?;
    let here = match here {
        Some(Extension(AnsweredHere(op))) => Some(op),
        None => queue_answer_here(&st, id)?,
    };
    let op = match here {
        Some(op) if op.status == OpStatus::Pending && !held.0 => {
            // Answered here and still running: wait a little for its end (`hold`), then
            // answer from what this replica applied, as before the wait.
            match hold(&st, op).await {
                op if op.status != OpStatus::Pending || st.replica().leads_with_quorum() => op,
                _ => barrier_read(&st, mode, id).await?,
            }
        }
        Some(op) => op,
        None => {
            let op = barrier_read(&st, mode, id).await?;
            match held.0 {
                true => op,
                false => hold(&st, op).await,
            }
        }
    };
    if matches!(role, Some(Extension(Role::User))) && !op.by_user {
        return Err(ApiError::Auth(AuthError::AdminRequired));
    }
    Ok(match op.status {
        OpStatus::Pending => {
            let mut r = empty(StatusCode::OK);
            r.headers_mut()
                .insert("x-pending", HeaderValue::from_static("true"));
            r
        }
        OpStatus::Done => match &op.location {
            Some(loc) => redirect_html(StatusCode::SEE_OTHER, loc, "See Other"),
            None => empty(StatusCode::NO_CONTENT),
        },
        // A name on the nodes held by something Hekate does not own: 409 with the conflict
        // (Heketi answers every failure 500; see docs/api-compatibility.md).
        OpStatus::Failed
            if op
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with(crate::executor::CONFLICT_PREFIX)) =>
        {
            text(StatusCode::CONFLICT, op.error.as_deref().unwrap_or_default())
        }
        OpStatus::Failed => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            op.error.as_deref().unwrap_or("failed"),
        ),
    })
}

/// An operation the forwarding layer already read and found answerable here.
#[derive(Clone)]
pub struct AnsweredHere(pub Operation);

/// The read barrier, then the operation as applied here (404 if unknown).
async fn barrier_read(st: &AppState, mode: ReadMode, id: &str) -> Result<Operation, ApiError> {
    st.read_barrier(mode).await?;
    st.replica()
        .read(|v| state::get_op(v, id))?
        .ok_or(ApiError::NotFound)
}

/// Set by a follower on a queue poll it forwards after holding it (`hold`): the leader
/// answers at once rather than holding it again.
pub const HELD_HEADER: &str = "x-hekate-held";

/// Whether this poll was already held by the follower that forwarded it.
pub struct Held(pub bool);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Held {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Held(parts.headers.contains_key(HELD_HEADER)))
    }
}

/// A poll of a pending operation waits, at most `queue_poll_hold_ms` (500 ms), for the
/// operation to end in this replica's applied state, and returns it as last read. Clients
/// poll every few milliseconds (heketi-cli every 400 ms): held, a poll is answered the moment
/// the operation ends, and a create costs one or two polls instead of one per interval. The
/// answer itself is the same as without the wait (the status codes are Heketi's), and the
/// wait is bounded, so a client is never kept longer than the hold. Woken by each applied
/// batch (`Replica::applied_watch`), which reads the operation again.
pub async fn hold(st: &AppState, mut op: Operation) -> Operation {
    let bound = st.policy().queue_hold;
    if op.status != OpStatus::Pending || bound.is_zero() {
        return op;
    }
    let deadline = tokio::time::Instant::now() + bound;
    let mut applied = st.replica().applied_watch();
    applied.borrow_and_update();
    loop {
        // Read after subscribing: an end applied in between is not missed.
        match st.replica().read(|v| state::get_op(v, &op.id)) {
            Ok(Some(now)) => op = now,
            // Forgotten (GC) or unreadable: answer from what was read before.
            _ => return op,
        }
        if op.status != OpStatus::Pending {
            return op;
        }
        match tokio::time::timeout_at(deadline, applied.changed()).await {
            Ok(Ok(())) => {}
            _ => return op,
        }
    }
}

/// A queue poll answered from this replica's applied state, without a quorum round (issue
/// 13: clients poll every few milliseconds): an operation that ended is final on every
/// replica that applied its end, so any replica answers it; a pending one is answered by a
/// leader that heard from a quorum lately (a pending answer is never final: a stale one only
/// costs the client one more poll). Anything else (unknown here, pending on a follower or a
/// doubting leader) takes the read barrier, as every other read does.
pub fn queue_answer_here(st: &AppState, id: &str) -> Result<Option<Operation>, ApiError> {
    let Some(op) = st.replica().read(|v| state::get_op(v, id))? else {
        return Ok(None);
    };
    let here = op.status != OpStatus::Pending || st.replica().leads_with_quorum();
    Ok(here.then_some(op))
}

#[derive(Serialize)]
struct Summary {
    total: usize,
    in_flight: usize,
    stale: usize,
    failed: usize,
    new: usize,
    /// Hekate: operations that ended failed (their cleanup done) within the queue
    /// retention, newest first, with the reason. Heketi's `failed` counts failed operations
    /// still awaiting cleanup, which Hekate never leaves: it stays 0. Omitted when empty,
    /// so the document is Heketi's exactly when nothing failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    recent_failures: Vec<Failure>,
}

#[derive(Serialize)]
struct Failure {
    id: String,
    type_name: &'static str,
    error: String,
    /// Unix seconds.
    finished: u64,
}

/// Operations that ended failed, newest first (at most 100).
fn recent_failures(st: &AppState) -> Result<Vec<Failure>, ApiError> {
    let ops = st
        .replica()
        .read(|v| state::all::<Operation>(v, state::keys::OP_PREFIX))?;
    let mut out: Vec<Failure> = ops
        .into_iter()
        .filter(|op| op.status == OpStatus::Failed)
        .map(|op| Failure {
            type_name: op.kind.type_name(),
            error: op.error.unwrap_or_default(),
            finished: op.finished.unwrap_or(0),
            id: op.id,
        })
        .collect();
    out.sort_by(|a, b| b.finished.cmp(&a.finished).then_with(|| a.id.cmp(&b.id)));
    out.truncate(100);
    Ok(out)
}

fn pending_ops(st: &AppState) -> Result<Vec<Operation>, ApiError> {
    Ok(st
        .replica()
        .read(|v| -> Result<Vec<Operation>, hekate_raft::StoreError> {
            let mut out = Vec::new();
            for id in state::pending_op_ids(v)? {
                if let Some(op) = state::get_op(v, &id)? {
                    out.push(op);
                }
            }
            Ok(out)
        })?)
}

/// `GET /operations`. Every pending operation is in flight: the leader's runner works on all
/// of them; none is ever `stale` (a new leader resumes them).
pub async fn summary(State(st): State<AppState>, mode: ReadMode) -> Result<Response, ApiError> {
    st.read_barrier(mode).await?;
    let n = pending_ops(&st)?.len();
    Ok(json(
        StatusCode::OK,
        &Summary {
            total: n,
            in_flight: n,
            stale: 0,
            failed: 0,
            new: n,
            recent_failures: recent_failures(&st)?,
        },
    ))
}

#[derive(Serialize)]
struct PendingOp {
    id: String,
    type_name: &'static str,
    status: &'static str,
    sub_status: &'static str,
}

#[derive(Serialize)]
struct PendingList {
    pendingoperations: Vec<PendingOp>,
}

pub async fn pending(State(st): State<AppState>, mode: ReadMode) -> Result<Response, ApiError> {
    st.read_barrier(mode).await?;
    let pendingoperations = pending_ops(&st)?
        .into_iter()
        .map(|op| PendingOp {
            id: op.id,
            type_name: op.kind.type_name(),
            status: "",
            sub_status: "in-flight",
        })
        .collect();
    Ok(json(StatusCode::OK, &PendingList { pendingoperations }))
}

#[derive(Serialize)]
struct Change {
    id: String,
    description: &'static str,
}

#[derive(Serialize)]
struct PendingDetail {
    id: String,
    type_name: &'static str,
    status: &'static str,
    sub_status: &'static str,
    changes: Vec<Change>,
}

pub async fn pending_one(
    State(st): State<AppState>,
    mode: ReadMode,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = route_id(&id)?;
    st.read_barrier(mode).await?;
    let op = st
        .replica()
        .read(|v| -> Result<_, hekate_raft::StoreError> {
            Ok(if state::pending_op_ids(v)?.iter().any(|p| p == id) {
                state::get_op(v, id)?
            } else {
                None
            })
        })?
        .ok_or_else(|| ApiError::NotFound2(format!("Id not found: {id}")))?;
    let changes = changes_of(&op);
    Ok(json(
        StatusCode::OK,
        &PendingDetail {
            id: op.id.clone(),
            type_name: op.kind.type_name(),
            status: "",
            sub_status: "",
            changes,
        },
    ))
}

fn changes_of(op: &Operation) -> Vec<Change> {
    crate::state::ops::changes(op)
        .into_iter()
        .map(|(id, description)| Change { id, description })
        .collect()
}

/// `GET /topology` (Hekate extension): what `heketi-cli topology info --json` assembles from
/// 1 + clusters + volumes + nodes requests, in one request and one consistent read.
/// How long `GET /topology` waits for its client to take the next cluster's chunk.
const TOPOLOGY_SEND_BOUND: std::time::Duration = std::time::Duration::from_secs(60);

/// Streamed one cluster at a time (`views::topology_chunks`), built on a blocking thread from
/// one consistent view: at 100,000 volumes the document is 230 MB, and building it whole
/// held it several times over in memory before the first byte left. A store error before
/// the first chunk is the usual 500; one after it ends the body early (the client sees a
/// truncated document, not a complete wrong one).
pub async fn topology(State(st): State<AppState>, mode: ReadMode) -> Result<Response, ApiError> {
    st.read_barrier(mode).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<Result<(), ApiError>>();
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut first = Some(first_tx);
        let result = st.replica().read(|v| {
            views::topology_chunks(v, &mut |chunk| {
                if let Some(f) = first.take() {
                    let _ = f.send(Ok(()));
                }
                // A client that stops reading does not hold this thread and its store
                // snapshot: a chunk not taken within the bound ends the walk.
                let sent = rt.block_on(tokio::time::timeout(TOPOLOGY_SEND_BOUND, tx.send(Ok(chunk))));
                matches!(sent, Ok(Ok(())))
            })
        });
        match result {
            Ok(()) => {
                let _ = rt.block_on(tokio::time::timeout(
                    TOPOLOGY_SEND_BOUND,
                    tx.send(Ok(b"\n".to_vec())),
                ));
            }
            Err(e) => match first.take() {
                Some(f) => {
                    let _ = f.send(Err(ApiError::from(e)));
                }
                None => {
                    tracing::error!("GET /topology ended early: {e}");
                    let _ = tx.try_send(Err(std::io::Error::other(e.to_string())));
                }
            },
        }
    });
    first_rx
        .await
        .map_err(|_| ApiError::Internal("topology: the builder stopped".into()))??;
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut r = Response::new(axum::body::Body::from_stream(stream));
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    Ok(r)
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupRequest {
    #[serde(default)]
    pub operations: Vec<String>,
}

/// `POST /operations/pending/cleanup`: Heketi cleans `stale`/`failed` operations; Hekate has
/// none (a new leader resumes operations), so this validates, is accepted, and ends with 204.
pub async fn cleanup(State(st): State<AppState>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let req: CleanupRequest = super::respond::parse_body(&body)?;
    if req.operations.len() > 32 {
        return Err(super::validate::failed(
            "operations: the length must be no more than 32",
        ));
    }
    if let Some(bad) = req.operations.iter().find(|o| !super::validate::is_uuid(o)) {
        return Err(super::validate::failed(&format!(
            "operations: {bad} is not a valid UUID"
        )));
    }
    let op = crate::ops::new_op(
        crate::state::model::OpKind::Cleanup,
        crate::state::model::OpPlan::Cleanup,
        false,
    );
    st.start(op).await
}
