//! The accept loop of both listeners (API and peers), replacing `axum::serve`, which has no
//! header-read timeout and no connection bound: a client that sends half a request header
//! would hold a socket and a task forever.
//!
//! Per listener: at most `max_connections` open connections (beyond it a new connection is
//! closed at once, so the accept backlog never fills with idle sockets); the TLS handshake and
//! each request header must complete within `header_read_timeout` (hyper's timer; it also
//! closes idle keep-alive connections); HTTP/1.1 only. Per API: at most
//! `max_inflight_requests` handled at once (503 with `Retry-After` beyond) and each request
//! answered within `request_timeout` (503). Graceful shutdown drains open connections.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::api::error::ApiError;
use crate::config::Limits;

/// What one listener enforces on its connections.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

impl From<&Limits> for ConnLimits {
    fn from(l: &Limits) -> Self {
        ConnLimits {
            header_read_timeout: Duration::from_millis(l.header_read_timeout_ms),
            max_connections: l.max_connections,
        }
    }
}

/// Serves `app` on `listener` (TLS when `tls` is given) until `shutdown` resolves, then
/// waits up to 10 s for open connections to finish their current request.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let refused = AtomicU64::new(0);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(stream);
            let n = refused.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(
                    total = n + 1,
                    "connection limit ({}) reached: closing new connections",
                    limits.max_connections
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        let header_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            serve_connection(stream, remote, app, acceptor, watcher, header_timeout).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 10 s of shutdown; closing them");
    }
}

/// One connection: HTTP/1.1 with keep-alive and the header timeout, after the TLS handshake
/// (bounded by the same timeout) when there is an acceptor; followed by graceful shutdown.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    remote: std::net::SocketAddr,
    app: Router,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    watcher: hyper_util::server::graceful::Watcher,
    header_timeout: Duration,
) {
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(remote));
        app.clone().oneshot(req)
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    match acceptor {
        None => {
            let conn = http.serve_connection(TokioIo::new(stream), svc);
            let _ = watcher.watch(conn).await;
        }
        Some(acc) => {
            let tls = match tokio::time::timeout(header_timeout, acc.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, "TLS handshake refused: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let conn = http.serve_connection(TokioIo::new(tls), svc);
            let _ = watcher.watch(conn).await;
        }
    }
}

/// The API's request limits (see the module header).
#[derive(Clone)]
pub struct RequestLimits {
    slots: Arc<Semaphore>,
    max: usize,
    timeout: Duration,
}

impl RequestLimits {
    pub fn new(l: &Limits) -> RequestLimits {
        RequestLimits {
            slots: Arc::new(Semaphore::new(l.max_inflight_requests)),
            max: l.max_inflight_requests,
            timeout: Duration::from_millis(l.request_timeout_ms),
        }
    }
}

/// Wraps `app` with the in-flight bound and the request timeout.
pub fn limit(app: Router, limits: RequestLimits) -> Router {
    app.layer(axum::middleware::from_fn_with_state(limits, limit_layer))
}

async fn limit_layer(State(l): State<RequestLimits>, req: Request, next: Next) -> Response {
    let Ok(_slot) = l.slots.clone().try_acquire_owned() else {
        return ApiError::Unavailable(format!("{} requests in flight on this server; retry", l.max))
            .into_response();
    };
    let write = !matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    match tokio::time::timeout(l.timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::Unavailable(format!(
            "request not answered within {} ms{}",
            l.timeout.as_millis(),
            if write {
                "; its outcome is unknown, check before retrying"
            } else {
                "; retry"
            }
        ))
        .into_response(),
    }
}

/// Raises this process's soft open-file limit to its hard limit (as Go does at start), so
/// `max_connections` is not cut short by a low default; returns the limit in force.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Ok((soft, _)) => soft,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;

    fn limits(inflight: usize, timeout_ms: u64) -> Limits {
        Limits {
            max_inflight_requests: inflight,
            request_timeout_ms: timeout_ms,
            ..Limits::default()
        }
    }

    #[tokio::test]
    async fn requests_beyond_the_inflight_bound_get_503_and_slow_ones_time_out() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let entered = Arc::new(tokio::sync::Notify::new());
        let (g, e) = (gate.clone(), entered.clone());
        let app = Router::new().route(
            "/wait",
            get(move || async move {
                e.notify_one();
                g.notified().await;
                "done"
            }),
        );
        let app = limit(app, RequestLimits::new(&limits(1, 60_000)));
        let req = |p: &str| axum::http::Request::get(p).body(Body::empty()).unwrap();
        let first = tokio::spawn(app.clone().oneshot(req("/wait")));
        // The first request holds the only slot until the gate opens.
        entered.notified().await;
        let second = app.clone().oneshot(req("/wait")).await.unwrap();
        assert_eq!(second.status(), 503);
        assert_eq!(second.headers().get("retry-after").unwrap(), "1");
        gate.notify_one();
        assert_eq!(first.await.unwrap().unwrap().status(), 200);

        let app = limit(
            Router::new().route("/never", get(std::future::pending::<&'static str>)),
            RequestLimits::new(&limits(4, 50)),
        );
        let r = app.oneshot(req("/never")).await.unwrap();
        assert_eq!(r.status(), 503);
        let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("not answered within 50 ms"));
    }
}
