//! Any instance serves any request: a follower forwards, server side, every request that
//! must be answered by the leader (all writes, and reads, which are linearizable), with the
//! method, path, query, body and `Authorization` intact and a hop counter. This is the only
//! module that knows about forwarding.
//!
//! Forwarding is peer traffic: it goes to the leader's peer address (`/raft/forward/...`,
//! [`peer_entry`]) over the peer transport (mutual TLS with `raft.tls`) with the cluster
//! secret, never to the leader's API address. Every body is bounded, local paths included.
//!
//! Retry rules: a request that never reached a leader (connection refused, no leader yet) is
//! retried until `forward_timeout`; after that, 503 with `Retry-After`. A GET whose leader
//! stepped down mid-request is retried; a write is not (its outcome is unknown to us), and
//! the client gets 504 with `x-hekate-outcome: unknown`. Every write is answered within
//! `forward_timeout_ms` + `raft.timeouts.write_timeout_ms` (docs/api.md, "Outcome of a write").

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::time::Instant;

use crate::api::auth_layer::is_open_path;
use crate::api::error::ApiError;
use crate::api::{AppState, ReadMode};

pub const HOPS_HEADER: &str = "x-hekate-hops";
pub const MAX_HOPS: u32 = 3;
/// Largest request body accepted (Heketi's requests are small JSON documents).
pub const BODY_LIMIT: usize = 1024 * 1024;
pub const IMPORT_LIMIT: usize = 512 * 1024 * 1024;
/// Where the API is mounted on the peer listener, for requests forwarded by a follower.
pub const FORWARD_PREFIX: &str = "/raft/forward";
/// The peer header carrying the cluster secret (the same as raft RPCs).
const SECRET_HEADER: &str = hekate_raft::network::SECRET_HEADER;
const FORWARD_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Set on a response whose handler found this replica was no longer the leader.
#[derive(Clone, Copy)]
pub struct NotLeaderMarker;

/// Paths answered by the replica that receives them.
fn is_local(path: &str) -> bool {
    is_open_path(path) || path == "/internal/logging" || path == "/internal/failpoints"
}

/// `/queue/{id}` on a follower. An operation whose end this follower applied is final, so
/// answered here rather than by the leader, and handed to the handler so it is not read
/// twice (see `operations::queue_answer_here`). One still pending here is held here first
/// (`operations::hold`); if it ended meanwhile it is answered here too, else the request goes
/// to the leader marked as held. A leader answers every request itself anyway.
async fn queue_here(st: &AppState, req: &mut Request) -> Option<super::operations::AnsweredHere> {
    use super::operations::{hold, AnsweredHere, HELD_HEADER};
    if req.method() != Method::GET || st.replica().is_leader() {
        return None;
    }
    let id = req.uri().path().strip_prefix("/queue/")?;
    if !crate::ids::is_route_id(id) {
        return None;
    }
    let op = st.replica().read(|v| crate::state::get_op(v, id)).ok()??;
    if op.status != crate::state::model::OpStatus::Pending {
        return Some(AnsweredHere(op));
    }
    if req.headers().contains_key(HELD_HEADER) {
        return None;
    }
    let op = hold(st, op).await;
    if op.status != crate::state::model::OpStatus::Pending {
        return Some(AnsweredHere(op));
    }
    req.headers_mut()
        .insert(HELD_HEADER, HeaderValue::from_static("1"));
    None
}

/// The header of a read a follower answered after a read index barrier: the index it waited
/// for (docs/api.md).
pub const READ_INDEX_HEADER: &str = "x-hekate-read-index";

/// What a handler is told of a read answered after [`follower_read`]'s barrier: the state it
/// applied is linearizable already, no barrier of its own is needed.
#[derive(Clone, Copy)]
pub struct ReadIndexed;

/// Reads a follower answers itself after a read index barrier
/// (`Replica::read_index_barrier`) instead of forwarding: those of the whole state,
/// `GET /topology` (230 MB at 100,000 volumes), Heketi's `GET /db/dump` and `GET /db/check`.
/// Forwarded, the leader built them, spending its CPU and memory on them, and the follower
/// copied them on; here the replica asked builds them and the leader only confirms it leads.
fn follower_read(req: &Request) -> bool {
    req.method() == Method::GET && matches!(req.uri().path(), "/topology" | "/db/dump" | "/db/check")
}

/// A [`follower_read`] on a follower: answered here once the barrier holds (the response
/// says at which index); None, with the request untouched, when it does not (no leader, a
/// leader without the RPC, no quorum): the request is then forwarded as any other.
async fn read_here(st: &AppState, req: Request, next: &Next) -> Result<Response, Request> {
    if !follower_read(&req) || st.replica().is_leader() {
        return Err(req);
    }
    let index = match st.replica().read_index_barrier().await {
        Ok(index) => index,
        Err(e) => {
            tracing::debug!("{} forwarded: no read index here: {e}", req.uri().path());
            return Err(req);
        }
    };
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(ReadIndexed);
    let mut resp = answer_here(Request::from_parts(parts, body), next.clone(), None).await;
    resp.headers_mut()
        .insert(READ_INDEX_HEADER, HeaderValue::from(index));
    Ok(resp)
}

pub async fn layer(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let mut req = match read_here(&st, req, &next).await {
        Ok(resp) => return resp,
        Err(req) => req,
    };
    let here = queue_here(&st, &mut req).await;
    let local_read = req.method() == Method::GET && ReadMode::of(req.headers()) == ReadMode::Local;
    if is_local(req.uri().path()) || local_read || here.is_some() {
        return answer_here(req, next, here).await;
    }
    if let Some(resp) = refuse_media_type(&req) {
        return resp;
    }
    let hops: u32 = req
        .headers()
        .get(HOPS_HEADER)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let (parts, body) = req.into_parts();
    // A Heketi dump for `/db/import` can be large; everything else is a small document.
    let limit = if parts.uri.path() == "/db/import" {
        IMPORT_LIMIT
    } else {
        BODY_LIMIT
    };
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return ApiError::TooLarge(limit).into_response(),
    };
    let deadline = Instant::now() + st.forward_timeout();
    let replica = st.replica();
    let mut watch = replica.watch();
    loop {
        let leader = replica.leader();
        match leader {
            Some((id, _)) if id == replica.id() && replica.is_leader() => {
                let resp = run_on_leader(&st, &parts, &body, next.clone()).await;
                let retry =
                    resp.extensions().get::<NotLeaderMarker>().is_some() && parts.method == Method::GET;
                if !retry || Instant::now() >= deadline {
                    return resp;
                }
            }
            Some((id, member)) if id != replica.id() => {
                if hops >= MAX_HOPS {
                    let why = format!("request forwarded {hops} times without reaching a leader");
                    return refused(&parts.method, why).into_response();
                }
                match send(&st, &member.peer_addr, &parts, body.clone(), hops + 1).await {
                    Ok(resp) => return resp,
                    Err(Sent::No(e)) => {
                        tracing::debug!("leader {id} at {} unreachable: {e}", member.peer_addr)
                    }
                    Err(Sent::Maybe(e)) if parts.method == Method::GET => {
                        tracing::debug!("read via leader {id} failed: {e}")
                    }
                    Err(Sent::Maybe(e)) => {
                        return ApiError::OutcomeUnknown(format!(
                            "leader {id} failed while handling the request ({e})"
                        ))
                        .into_response()
                    }
                }
            }
            _ => {}
        }
        // Wait for news about the leader (or poll, in case the leader we know is dead).
        let now = Instant::now();
        if now >= deadline {
            let why = format!(
                "no leader reachable within {} ms",
                st.forward_timeout().as_millis()
            );
            return refused(&parts.method, why).into_response();
        }
        let nap = (deadline - now).min(Duration::from_millis(100));
        let _ = tokio::time::timeout(nap, watch.changed()).await;
    }
}

/// A request this replica answers itself (local paths, local reads, a final queue answer),
/// bounded like everything else.
async fn answer_here(req: Request, next: Next, here: Option<super::operations::AnsweredHere>) -> Response {
    let (mut parts, body) = req.into_parts();
    if let Some(op) = here {
        parts.extensions.insert(op);
    }
    let body = Body::new(http_body_util::Limited::new(body, BODY_LIMIT));
    next.run(Request::from_parts(parts, body)).await
}

/// This replica leads: the handler runs here. A write is planned against everything committed
/// so far, including what a follower may already have reported finished
/// (`Replica::applied_committed`).
async fn run_on_leader(
    st: &AppState,
    parts: &axum::http::request::Parts,
    body: &axum::body::Bytes,
    next: Next,
) -> Response {
    if parts.method != Method::GET {
        if let Err(e) = st.replica().applied_committed().await {
            return ApiError::from(e).into_response();
        }
    }
    let mut local = Request::builder()
        .method(parts.method.clone())
        .uri(parts.uri.clone())
        .body(Body::from(body.clone()))
        .unwrap_or_default();
    *local.headers_mut() = parts.headers.clone();
    *local.extensions_mut() = parts.extensions.clone();
    next.run(local).await
}

/// A request that never reached a leader: for a write, "not accepted" (safe to retry).
fn refused(method: &Method, why: String) -> ApiError {
    if method == Method::GET || method == Method::HEAD {
        ApiError::Unavailable(format!("{why}; retry"))
    } else {
        ApiError::NotAccepted(why)
    }
}

enum Sent {
    /// The request never left: safe to retry.
    No(String),
    /// The request may have been processed.
    Maybe(String),
}

/// Sends the request to the leader's peer listener, under [`FORWARD_PREFIX`], over the peer
/// network's transport (mutual TLS with `raft.tls`) with the cluster secret. Nothing is sent
/// to the leader's API address: what crosses the client network carries no raft credential.
async fn send(
    st: &AppState,
    peer_addr: &str,
    parts: &axum::http::request::Parts,
    body: bytes::Bytes,
    hops: u32,
) -> Result<Response, Sent> {
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let peer = st.replica().peer_http();
    let url = peer.url(peer_addr, &format!("{FORWARD_PREFIX}{path}"));
    let mut headers = HeaderMap::new();
    for (k, v) in &parts.headers {
        let hop_by_hop = matches!(
            k.as_str(),
            "host" | "content-length" | "connection" | "transfer-encoding"
        );
        let ours = k.as_str() == HOPS_HEADER || k.as_str() == SECRET_HEADER;
        if !hop_by_hop && !ours {
            headers.append(k.clone(), v.clone());
        }
    }
    headers.insert(HeaderName::from_static(HOPS_HEADER), HeaderValue::from(hops));
    if let Ok(v) = HeaderValue::from_str(peer.secret()) {
        headers.insert(HeaderName::from_static(SECRET_HEADER), v);
    }
    let resp = peer
        .client()
        .request(parts.method.clone(), url)
        .headers(headers)
        .timeout(FORWARD_REQUEST_TIMEOUT)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            if e.is_connect() {
                Sent::No(e.to_string())
            } else {
                Sent::Maybe(e.to_string())
            }
        })?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out_headers = HeaderMap::new();
    for (k, v) in resp.headers() {
        if !matches!(k.as_str(), "connection" | "transfer-encoding" | "content-length") {
            out_headers.append(k.clone(), v.clone());
        }
    }
    // A body of unknown length (streamed by the leader: `GET /topology`) is passed on as it
    // comes rather than held whole; a sized one is read first, so that a GET that fails
    // midway is retried (`Sent::Maybe`).
    let body = if resp.content_length().is_none() {
        let chunks = futures::stream::unfold(Some(resp), |resp| async move {
            let mut resp = resp?;
            match resp.chunk().await {
                Ok(Some(b)) => Some((Ok(b), Some(resp))),
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        });
        Body::from_stream(chunks)
    } else {
        Body::from(resp.bytes().await.map_err(|e| Sent::Maybe(e.to_string()))?)
    };
    let mut out = Response::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = out_headers;
    Ok(out)
}

/// Marks a request that reached this replica through [`peer_entry`]: a peer (holding the
/// cluster secret, and with `raft.tls` a certificate of the cluster CA) forwarded it after
/// gating it. Set only by [`peer_entry`]; clients cannot set extensions.
#[derive(Clone, Copy, Debug)]
pub struct ForwardedByPeer;

/// The API as peers reach it: mounted under [`FORWARD_PREFIX`] on the peer listener, only
/// for callers presenting the cluster secret.
pub fn peer_entry(api: Router, secret: &str) -> Router {
    Router::new()
        .nest(FORWARD_PREFIX, api)
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::<str>::from(secret),
            check_peer,
        ))
}

async fn check_peer(State(secret): State<std::sync::Arc<str>>, mut req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !bool::from(subtle::ConstantTimeEq::ct_eq(given, secret.as_bytes())) {
        let from = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.to_string())
            .unwrap_or_else(|| "unknown".into());
        tracing::warn!(from, "forwarded request refused: missing or wrong cluster secret");
        return (
            StatusCode::UNAUTHORIZED,
            "peer request refused: missing or wrong cluster secret\n",
        )
            .into_response();
    }
    req.extensions_mut().insert(ForwardedByPeer);
    next.run(req).await
}

/// Request bodies are JSON. Heketi never looked at `Content-Type`; Hekate accepts a missing
/// one and any JSON type, and refuses a body declared as something else (415).
fn refuse_media_type(req: &Request) -> Option<Response> {
    let ct = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)?
        .to_str()
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let ok = mime.is_empty() || mime == "application/json" || mime.ends_with("+json") || mime == "*/*";
    if ok || matches!(*req.method(), Method::GET | Method::HEAD | Method::DELETE) {
        return None;
    }
    Some(ApiError::UnsupportedMedia(mime).into_response())
}
