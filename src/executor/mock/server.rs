//! `hekate mock-nodes`: the simulated Gluster nodes of a local cluster as one small process,
//! so that every replica's mock executor sees the same nodes (a new leader sees what the old
//! one did) at a cost per verb independent of the number of volumes. It holds the model in
//! memory ([`Nodes`]), serves the verbs and the test controls (faults, glusterd, plants, the
//! model and the command record) over HTTP ([`super::remote`] is the client), and persists
//! the model to `--state FILE`.
//!
//! Persistence: the model is written whole (JSON, temporary file then rename) every
//! `--persist-ms` when it changed (`hekate dev`: 5 s), and at shutdown (SIGTERM/SIGINT). A
//! verb never waits for it; the price is that a mock-nodes killed with SIGKILL loses the
//! changes of its last interval, as a node losing its page cache would (reconcile reports
//! the drift), and that each write costs O(volumes). So a large model is written less
//! often: after a write that took d, the next waits at least 9d ([`persist_pause`]; at
//! 100,000 volumes about 16 s instead of 5). The command record and the faults' counters
//! live in memory only.
//!
//! Access: a Unix socket made 0600 (reachable from the replicas' network namespaces, and by
//! nobody but its owner, like the dev cluster's configs), or a loopback TCP port that then
//! requires a token (`--token-file`, sent in [`TOKEN_HEADER`], compared in constant time).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::extract::{DefaultBodyLimit, Request as HttpRequest, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::model::{Fault, MockState, Nodes, Request};
use super::remote::{
    NodesAddr, GENERATION_HEADER, MAX_ROUND, PATH_CMDLOG, PATH_FAULTS, PATH_GLUSTERD, PATH_STATE, PATH_VERB,
    PATH_VERBS, TOKEN_HEADER,
};

/// How `hekate mock-nodes` runs.
#[derive(Debug, Clone)]
pub struct NodesOptions {
    /// `unix:/path` or a loopback `IP:PORT`.
    pub listen: String,
    /// The model's file: read at start if present, written as described above.
    pub state: Option<PathBuf>,
    /// Required with a TCP listener; optional on a Unix socket.
    pub token: Option<String>,
    pub command_log_max: usize,
    pub persist_every: Duration,
}

/// A bound server, ready to run (the socket accepts connections already).
pub struct Bound {
    nodes: Arc<Nodes>,
    listener: Listener,
    opts: NodesOptions,
}

enum Listener {
    Unix(tokio::net::UnixListener, PathBuf),
    Tcp(tokio::net::TcpListener),
}

/// Reads the model file; none yet is an empty model, an unreadable one an error (the nodes
/// are not silently forgotten).
pub fn load_state(path: &Path) -> anyhow::Result<MockState> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(MockState::default()),
        Ok(text) => {
            serde_json::from_str(&text).with_context(|| format!("mock nodes state {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(MockState::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes the model whole, owner-only, by rename (a crash leaves the previous file). No
/// fsync: the file stands in for remote nodes, and a killed process's writes survive in the
/// page cache.
fn write_state(path: &Path, state: &MockState) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    // Streamed: 150 MB of JSON at 100,000 volumes, not held whole beside the model's copy.
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    serde_json::to_writer(&mut out, state)
        .map_err(anyhow::Error::from)
        .and_then(|()| Ok(out.flush()?))
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

/// Loads the model and binds the listener; refuses a socket another mock-nodes still serves.
pub async fn bind(opts: NodesOptions) -> anyhow::Result<Bound> {
    let state = match &opts.state {
        Some(p) => load_state(p)?,
        None => MockState::default(),
    };
    let listener = match NodesAddr::parse(&opts.listen)? {
        NodesAddr::Unix(path) => Listener::Unix(bind_unix(&path)?, path),
        NodesAddr::Tcp(addr) => {
            if opts.token.as_deref().unwrap_or_default().is_empty() {
                bail!(
                    "a TCP listener ({addr}) needs --token-file: every local user can reach it; \
                     or listen on unix:/path"
                );
            }
            Listener::Tcp(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?,
            )
        }
    };
    let nodes = Arc::new(Nodes::new(state, opts.command_log_max));
    Ok(Bound {
        nodes,
        listener,
        opts,
    })
}

/// Binds a 0600 socket at `path`: bound and narrowed under a temporary name, then renamed
/// into place, so a client that finds the path can connect, and only its owner may.
fn bind_unix(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!("{} exists and is not a socket", path.display());
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("another mock-nodes is serving {}", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("cannot remove the stale {}", path.display()))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = tokio::net::UnixListener::bind(&tmp)
        .with_context(|| format!("cannot listen on {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    Ok(listener)
}

#[derive(Clone)]
struct Served {
    nodes: Arc<Nodes>,
    token: Option<Arc<str>>,
}

impl Bound {
    /// The model this server holds (in-process tests look at it).
    pub fn nodes(&self) -> Arc<Nodes> {
        self.nodes.clone()
    }

    /// Serves until `shutdown`, persisting on the way and at the end.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let served = Served {
            nodes: self.nodes.clone(),
            token: self.opts.token.clone().filter(|t| !t.is_empty()).map(Arc::from),
        };
        let app = Router::new()
            .route(PATH_VERB, post(verb))
            .route(PATH_VERBS, post(verbs))
            .route(PATH_STATE, get(state_get).put(state_put))
            .route(PATH_FAULTS, post(fault_add).delete(faults_clear))
            .route(PATH_GLUSTERD, post(glusterd))
            .route(PATH_CMDLOG, get(cmdlog))
            // A plant sends the whole model back (tests; tens of MiB at 100,000 volumes).
            .layer(DefaultBodyLimit::max(1 << 30))
            .layer(middleware::from_fn_with_state(served.clone(), check_token))
            .with_state(served);
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let stopped = async move {
            let _ = stop_rx.changed().await;
        };
        let socket = match &self.listener {
            Listener::Unix(_, p) => Some(p.clone()),
            Listener::Tcp(_) => None,
        };
        let mut server = match self.listener {
            Listener::Unix(l, _) => {
                tokio::spawn(async move { axum::serve(l, app).with_graceful_shutdown(stopped).await })
            }
            Listener::Tcp(l) => {
                tokio::spawn(async move { axum::serve(l, app).with_graceful_shutdown(stopped).await })
            }
        };
        let persister = self.opts.state.clone().map(|path| {
            let nodes = self.nodes.clone();
            let every = self.opts.persist_every;
            tokio::spawn(async move {
                let (mut written, mut pause) = (0, every);
                loop {
                    tokio::time::sleep(pause).await;
                    let started = std::time::Instant::now();
                    written = persist(&nodes, &path, written).await;
                    pause = persist_pause(every, started.elapsed());
                }
            })
        });
        shutdown.await;
        let _ = stop_tx.send(true);
        // Replicas keep idle connections: give in-flight verbs a moment, not forever.
        if tokio::time::timeout(Duration::from_secs(3), &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
        if let Some(p) = persister {
            p.abort();
        }
        if let Some(path) = &self.opts.state {
            let (state, _) = self.nodes.snapshot();
            write_state(path, &state)?;
        }
        if let Some(s) = socket {
            let _ = std::fs::remove_file(s);
        }
        Ok(())
    }
}

/// A write of the model takes at most this share of the time (1 in 1 + this many).
const PERSIST_PAUSE_FACTOR: u32 = 9;

/// How long the persister waits after a write that took `took`: the interval, or nine times
/// the write if that is longer, so that writing the model costs at most a tenth of a core
/// whatever its size. At 100,000 volumes a write (the model copied under the lock, then 150
/// MB of JSON) took about 1.8 s of CPU: every 5 s, a third of a core taken from the replicas
/// on the same machine while they created volumes.
fn persist_pause(every: Duration, took: Duration) -> Duration {
    every.max(took.saturating_mul(PERSIST_PAUSE_FACTOR))
}

/// Writes the model if it changed since generation `written`; returns the generation now on
/// disk (unchanged after a failure, which is logged and retried at the next interval).
async fn persist(nodes: &Arc<Nodes>, path: &Path, written: u64) -> u64 {
    let Some((state, generation)) = nodes.changed_since(written) else {
        return written;
    };
    let path = path.to_path_buf();
    match tokio::task::spawn_blocking(move || write_state(&path, &state)).await {
        Ok(Ok(())) => generation,
        Ok(Err(e)) => {
            tracing::warn!("mock nodes: {e:#}");
            written
        }
        Err(e) => {
            tracing::warn!("mock nodes: persist task: {e}");
            written
        }
    }
}

async fn check_token(State(s): State<Served>, req: HttpRequest, next: Next) -> Response {
    if let Some(token) = &s.token {
        let given = req
            .headers()
            .get(TOKEN_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(given, token.as_bytes())) {
            tracing::warn!("mock nodes: refused a request without the token");
            return (StatusCode::UNAUTHORIZED, "mock nodes: missing or wrong token\n").into_response();
        }
    }
    next.run(req).await
}

async fn verb(State(s): State<Served>, Json(req): Json<Request>) -> Response {
    Json(s.nodes.run(&req)).into_response()
}

/// A round of verbs, each run as `/verb` runs it, in order.
async fn verbs(State(s): State<Served>, Json(reqs): Json<Vec<Request>>) -> Response {
    if reqs.len() > MAX_ROUND {
        let msg = format!("{} verbs in one round; at most {MAX_ROUND}", reqs.len());
        return (StatusCode::BAD_REQUEST, msg).into_response();
    }
    Json(reqs.iter().map(|r| s.nodes.run(r)).collect::<Vec<_>>()).into_response()
}

async fn state_get(State(s): State<Served>) -> Response {
    let (state, generation) = s.nodes.snapshot();
    ([(GENERATION_HEADER, generation.to_string())], Json(state)).into_response()
}

async fn state_put(State(s): State<Served>, headers: HeaderMap, Json(state): Json<MockState>) -> Response {
    let Some(generation) = headers
        .get(GENERATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
    else {
        return (
            StatusCode::BAD_REQUEST,
            format!("mock nodes: {GENERATION_HEADER} required\n"),
        )
            .into_response();
    };
    if s.nodes.replace(state, generation) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (StatusCode::CONFLICT, "mock nodes: the model changed meanwhile\n").into_response()
    }
}

async fn fault_add(State(s): State<Served>, Json(fault): Json<Fault>) -> StatusCode {
    s.nodes.add_fault(fault);
    StatusCode::NO_CONTENT
}

async fn faults_clear(State(s): State<Served>) -> Json<usize> {
    Json(s.nodes.clear_faults())
}

#[derive(Deserialize)]
struct Glusterd {
    host: String,
    down: bool,
}

async fn glusterd(State(s): State<Served>, Json(g): Json<Glusterd>) -> StatusCode {
    s.nodes.set_glusterd_down(&g.host, g.down);
    StatusCode::NO_CONTENT
}

async fn cmdlog(State(s): State<Served>) -> Response {
    Json(s.nodes.command_log()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::mock::model::{MockHost, MockVolume};

    /// A quick write keeps the interval; a costly one spaces the next by nine times its cost.
    #[test]
    fn a_costly_write_spaces_the_next() {
        let every = Duration::from_secs(5);
        assert_eq!(persist_pause(every, Duration::ZERO), every);
        assert_eq!(persist_pause(every, Duration::from_millis(500)), every);
        assert_eq!(
            persist_pause(every, Duration::from_millis(1800)),
            Duration::from_millis(16_200)
        );
        assert_eq!(
            persist_pause(every, Duration::MAX),
            Duration::MAX,
            "saturates, never panics"
        );
    }

    /// The model written (streamed, owner-only, by rename) loads back as it was.
    #[test]
    fn a_written_model_loads_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mock-nodes.json");
        let mut state = MockState::default();
        let mut host = MockHost::default();
        host.mounts.insert("/var/lib/heketi/mounts/vg_1/brick_2".into());
        host.peers.insert("10.0.0.2".into());
        state.hosts.insert("n1".into(), host);
        state.volumes.insert(
            "vol_a".into(),
            MockVolume {
                id: "g".into(),
                bricks: vec!["10.0.0.1:/var/lib/heketi/mounts/vg_1/brick_2/brick".into()],
                started: true,
                ..Default::default()
            },
        );
        write_state(&path, &MockState::default()).unwrap();
        write_state(&path, &state).unwrap();
        assert_eq!(load_state(&path).unwrap(), state);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
    }
}
