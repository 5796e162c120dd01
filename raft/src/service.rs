//! The peer network, server side: an axum router for `/raft/rpc/*` that refuses any call
//! without the cluster secret (constant-time comparison), logs the refusal, and hands valid
//! calls to openraft. Mounted on the API listener or on a separate peer listener.

use std::sync::Arc;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::codec;
use crate::network::{RPC_PREFIX, SECRET_HEADER};
use crate::types::{NodeId, Raft};

/// What a replica tells its peers about itself: used for bootstrap probing and readiness.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerStatus {
    pub id: NodeId,
    pub initialized: bool,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_applied: Option<u64>,
    pub is_leader: bool,
}

pub(crate) struct PeerService {
    pub raft: Raft,
    pub secret: Arc<str>,
    pub id: NodeId,
    /// The newest log format this build reads (`Application::LOG_FORMAT`).
    pub log_format: u16,
    /// When an append from a leader last arrived (`crate::assist`).
    pub contact: Arc<crate::assist::LeaderContact>,
}

/// The `/raft/rpc/*` routes, with their own body limit (snapshot chunks are up to a few MiB).
pub(crate) fn router(svc: Arc<PeerService>) -> Router {
    Router::new()
        .route(&format!("{RPC_PREFIX}/append"), post(append))
        .route(&format!("{RPC_PREFIX}/vote"), post(vote))
        .route(&format!("{RPC_PREFIX}/snapshot"), post(snapshot))
        .route(&format!("{RPC_PREFIX}/status"), post(status))
        .route(&format!("{RPC_PREFIX}/elect"), post(elect))
        .route(&format!("{RPC_PREFIX}/format"), post(format))
        .route(&format!("{RPC_PREFIX}/probe"), post(probe))
        .route(&format!("{RPC_PREFIX}/read-index"), post(read_index))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(svc)
}

const BODY_LIMIT: usize = 64 * 1024 * 1024;

fn check_secret(svc: &PeerService, req: &Request, rpc: &str) -> Result<(), Response> {
    let given = req
        .headers()
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let ok: bool = given.ct_eq(svc.secret.as_bytes()).into();
    if ok {
        return Ok(());
    }
    let from = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "unknown".into());
    tracing::warn!(rpc, from, "peer RPC refused: missing or wrong cluster secret");
    Err((
        StatusCode::UNAUTHORIZED,
        "peer RPC refused: missing or wrong cluster secret\n",
    )
        .into_response())
}

async fn decode<T: serde::de::DeserializeOwned>(req: Request) -> Result<T, Response> {
    let body = axum::body::to_bytes(req.into_body(), BODY_LIMIT)
        .await
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response())?;
    codec::decode(&body).map_err(|e| (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response())
}

fn encode<T: Serialize>(v: &T) -> Response {
    match codec::encode(v) {
        Ok(b) => ([("content-type", "application/octet-stream")], b).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

macro_rules! rpc_handler {
    ($name:ident, $label:literal, $call:ident) => {
        async fn $name(State(svc): State<Arc<PeerService>>, req: Request) -> Response {
            if let Err(r) = check_secret(&svc, &req, $label) {
                return r;
            }
            let req = match decode(req).await {
                Ok(r) => r,
                Err(r) => return r,
            };
            encode(&svc.raft.$call(req).await)
        }
    };
}

/// An append (entries or heartbeat) from a leader: also the assistant's "heard a leader".
async fn append(State(svc): State<Arc<PeerService>>, req: Request) -> Response {
    if let Err(r) = check_secret(&svc, &req, "append") {
        return r;
    }
    let req: openraft::raft::AppendEntriesRequest<crate::types::TypeConfig> = match decode(req).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let res = svc.raft.append_entries(req).await;
    // Any answer but "your vote is stale" means the sender leads this replica's term.
    if matches!(&res, Ok(r) if !matches!(r, openraft::raft::AppendEntriesResponse::HigherVote(_))) {
        svc.contact.heard();
    }
    encode(&res)
}

rpc_handler!(vote, "vote", vote);
/// A snapshot chunk, decoded as bytes ([`crate::snapshot::ChunkIn`]).
async fn snapshot(State(svc): State<Arc<PeerService>>, req: Request) -> Response {
    if let Err(r) = check_secret(&svc, &req, "snapshot") {
        return r;
    }
    let chunk: crate::snapshot::ChunkIn = match decode(req).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    encode(&svc.raft.install_snapshot(chunk.into()).await)
}

async fn status(State(svc): State<Arc<PeerService>>, req: Request) -> Response {
    if let Err(r) = check_secret(&svc, &req, "status") {
        return r;
    }
    encode(&peer_status(&svc.raft, svc.id).await)
}

pub(crate) async fn peer_status(raft: &Raft, id: NodeId) -> PeerStatus {
    let initialized = raft.is_initialized().await.unwrap_or(false);
    let m = raft.metrics().borrow().clone();
    PeerStatus {
        id,
        initialized,
        leader: m.current_leader,
        term: m.current_term,
        last_applied: m.last_applied.map(|l| l.index),
        is_leader: m.current_leader == Some(id),
    }
}

/// Asks this replica to start an election now (leadership transfer, see `Replica::transfer_leader`).
async fn elect(State(svc): State<Arc<PeerService>>, req: Request) -> Response {
    if let Err(r) = check_secret(&svc, &req, "elect") {
        return r;
    }
    let res: Result<(), String> = svc.raft.trigger().elect().await.map_err(|e| e.to_string());
    encode(&res)
}

/// What the assistant of another voter asks (`crate::assist`): how long since this replica
/// heard a leader, and how long its log is.
async fn probe(State(svc): State<Arc<PeerService>>, req: Request) -> Response {
    if let Err(r) = check_secret(&svc, &req, "probe") {
        return r;
    }
    encode(&local_probe(&svc.raft, svc.id, &svc.contact))
}

pub(crate) fn local_probe(
    raft: &Raft,
    id: NodeId,
    contact: &crate::assist::LeaderContact,
) -> crate::assist::Probe {
    let m = raft.metrics().borrow().clone();
    crate::assist::Probe {
        id,
        is_leader: m.current_leader == Some(id),
        since_leader_ms: contact.since_ms(),
        last_log_index: m.last_log_index,
    }
}

/// How long a read index may take to confirm (a leader cut off from its quorum never does).
const READ_INDEX_BOUND: std::time::Duration = std::time::Duration::from_secs(10);

/// The read index of a follower's read (`Replica::read_index_barrier`): this replica
/// confirms with a quorum's heartbeat answers that it still leads, then answers the index a
/// read must see applied (Raft's ReadIndex). Not the leader, or no quorum within the bound:
/// an error, and the follower forwards its read instead.
async fn read_index(State(svc): State<Arc<PeerService>>, req: Request) -> Response {
    if let Err(r) = check_secret(&svc, &req, "read-index") {
        return r;
    }
    let res: Result<ReadIndex, String> =
        match tokio::time::timeout(READ_INDEX_BOUND, svc.raft.get_read_log_id()).await {
            Ok(Ok((read, _))) => Ok(ReadIndex {
                leader: svc.id,
                index: read.map_or(0, |l| l.index),
            }),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "leadership not confirmed by a quorum within {} s",
                READ_INDEX_BOUND.as_secs()
            )),
        };
    encode(&res)
}

/// A leader's answer to a read index request.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ReadIndex {
    /// The replica that confirmed it leads.
    pub leader: NodeId,
    /// What a read must see applied.
    pub index: u64,
}

/// This replica's id and the newest log format its build reads: the leader raises the format
/// of new entries only once every member reports at least it. The id matters: a build without
/// this RPC may hand the request to its API, whose forwarding layer would fetch the leader's
/// answer; an answer naming another replica counts as format 0.
async fn format(State(svc): State<Arc<PeerService>>, req: Request) -> Response {
    if let Err(r) = check_secret(&svc, &req, "format") {
        return r;
    }
    encode(&(svc.id, svc.log_format))
}
