//! The wire between a replica's mock executor and `hekate mock-nodes` ([`super::server`]):
//! where the server listens (`unix:/path` or loopback `http://127.0.0.1:PORT`), the paths
//! and headers of its small HTTP API, and the client. A verb is one `POST /verb` with a
//! [`Request`] in JSON, answered with the verb's `Result`; a server that cannot be reached
//! makes the verb fail as an unreachable node does ([`ExecError::Unreachable`]).

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::super::{ExecError, ExecResult};
use super::model::{CmdRecord, Fault, MockState, Request};

/// The token header (`hekate mock-nodes --token-file`).
pub const TOKEN_HEADER: &str = "x-hekate-nodes-token";
/// The model's generation (`GET /state` answers it, `PUT /state` requires it).
pub const GENERATION_HEADER: &str = "x-hekate-nodes-generation";

pub const PATH_VERB: &str = "/verb";
/// A round of verbs (`Vec<Request>`), answered with their results in order.
pub const PATH_VERBS: &str = "/verbs";
/// Most verbs one `/verbs` request carries; a longer round is sent in several.
pub const MAX_ROUND: usize = 1024;
/// An answer larger than this is decoded on the blocking pool.
const LARGE_ANSWER: usize = 1 << 20;
pub const PATH_STATE: &str = "/state";
pub const PATH_FAULTS: &str = "/faults";
pub const PATH_GLUSTERD: &str = "/glusterd";
pub const PATH_CMDLOG: &str = "/cmdlog";

/// Where `hekate mock-nodes` listens, or what a replica's `nodes_url` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodesAddr {
    /// A Unix socket: reachable from every network namespace of the host, protected by
    /// file permissions (the server makes it 0600).
    Unix(PathBuf),
    /// A loopback TCP address (a token is then required).
    Tcp(std::net::SocketAddr),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodesUrlError {
    #[error("mock nodes address {0:?}: expected unix:/absolute/path or a loopback IP:PORT (http://127.0.0.1:PORT)")]
    Syntax(String),
    #[error("mock nodes address {0}: only loopback addresses are served (the nodes have no authentication beyond a token)")]
    NotLoopback(String),
    #[error("mock nodes client: {0}")]
    Client(String),
}

impl NodesAddr {
    /// `unix:/path`, `http://IP:PORT` or `IP:PORT`, loopback only.
    pub fn parse(s: &str) -> Result<NodesAddr, NodesUrlError> {
        if let Some(path) = s.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(NodesUrlError::Syntax(s.into()));
            }
            return Ok(NodesAddr::Unix(PathBuf::from(path)));
        }
        let hostport = s.strip_prefix("http://").unwrap_or(s).trim_end_matches('/');
        let addr: std::net::SocketAddr = hostport.parse().map_err(|_| NodesUrlError::Syntax(s.into()))?;
        if !addr.ip().is_loopback() {
            return Err(NodesUrlError::NotLoopback(s.into()));
        }
        Ok(NodesAddr::Tcp(addr))
    }
}

impl std::fmt::Display for NodesAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodesAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            NodesAddr::Tcp(a) => write!(f, "http://{a}"),
        }
    }
}

/// A client of one `hekate mock-nodes`.
pub struct NodesClient {
    http: reqwest::Client,
    base: String,
    token: String,
    addr: NodesAddr,
}

/// A verb waits this long for the nodes' answer before it counts as unreachable (the mock
/// answers in microseconds; only a stopped or paused server takes this long).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl NodesClient {
    pub fn new(url: &str, token: &str) -> Result<NodesClient, NodesUrlError> {
        let addr = NodesAddr::parse(url)?;
        let builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .no_proxy();
        let (builder, base) = match &addr {
            NodesAddr::Unix(p) => (builder.unix_socket(p.clone()), "http://mock-nodes".to_string()),
            NodesAddr::Tcp(a) => (builder, format!("http://{a}")),
        };
        let http = builder
            .build()
            .map_err(|e| NodesUrlError::Client(e.to_string()))?;
        Ok(NodesClient {
            http,
            base,
            token: token.to_string(),
            addr,
        })
    }

    fn unreachable(&self, host: &str, e: impl std::fmt::Display) -> ExecError {
        ExecError::Unreachable {
            host: host.to_string(),
            msg: format!("mock nodes at {}: {e}", self.addr),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        if self.token.is_empty() {
            r
        } else {
            r.header(TOKEN_HEADER, &self.token)
        }
    }

    /// Sends `r`; a transport failure or a refusal of the request itself (not of the verb)
    /// is `Unreachable` for `host`.
    async fn send(&self, host: &str, r: reqwest::RequestBuilder) -> ExecResult<reqwest::Response> {
        let resp = r.send().await.map_err(|e| self.unreachable(host, e))?;
        if resp.status().is_success() || resp.status() == StatusCode::CONFLICT {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        Err(self.unreachable(host, format!("{status}: {}", body.trim())))
    }

    async fn body<T: DeserializeOwned>(&self, host: &str, resp: reqwest::Response) -> ExecResult<T> {
        resp.json().await.map_err(|e| self.unreachable(host, e))
    }

    /// One verb on the shared nodes ([`super::model::Nodes::run`] there), its answer
    /// decoded as `T` straight from the body: reconcile's whole-pool `volumes` answer is
    /// tens of MB at 100,000 volumes, and held as a `serde_json::Value` on the way it took
    /// a leader to 1.8 GB.
    pub async fn run<T: DeserializeOwned + Send + 'static>(&self, req: &Request) -> ExecResult<T> {
        let r = self.request(reqwest::Method::POST, PATH_VERB).json(req);
        let resp = self.send(&req.host, r).await?;
        let body = resp.bytes().await.map_err(|e| self.unreachable(&req.host, e))?;
        let name = req.verb.name();
        let large = body.len() > LARGE_ANSWER;
        let decode = move || {
            serde_json::from_slice::<Result<T, ExecError>>(&body)
                .map_err(|e| super::model::fail(format!("mock nodes: bad answer to {name}: {e}")))?
        };
        if !large {
            return decode();
        }
        // A whole pool's volumes: parsed off the runtime's workers, which the leader's
        // heartbeats need.
        tokio::task::spawn_blocking(decode)
            .await
            .map_err(|e| super::model::fail(format!("mock nodes: answer to {name}: {e}")))?
    }

    /// A round of verbs in one request (`/verbs`), the results in order. A transport
    /// failure makes each verb's node unreachable; a server without `/verbs` (an older
    /// `hekate mock-nodes`) is sent one request per verb.
    pub async fn run_all<T: DeserializeOwned + Send + 'static>(
        &self,
        reqs: &[Request],
    ) -> Vec<ExecResult<T>> {
        let mut out = Vec::with_capacity(reqs.len());
        for chunk in reqs.chunks(MAX_ROUND) {
            out.extend(self.run_round(chunk).await);
        }
        out
    }

    async fn run_round<T: DeserializeOwned + Send + 'static>(&self, reqs: &[Request]) -> Vec<ExecResult<T>> {
        let each = |e: &dyn std::fmt::Display| -> Vec<ExecResult<T>> {
            reqs.iter().map(|r| Err(self.unreachable(&r.host, e))).collect()
        };
        let r = self.request(reqwest::Method::POST, PATH_VERBS).json(reqs);
        let resp = match r.send().await {
            Ok(resp) => resp,
            Err(e) => return each(&e),
        };
        if resp.status() == StatusCode::NOT_FOUND {
            return futures::future::join_all(reqs.iter().map(|r| self.run(r))).await;
        }
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return each(&format!("{status}: {}", body.trim()));
        }
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return each(&e),
        };
        match serde_json::from_slice::<Vec<Result<T, ExecError>>>(&body) {
            Ok(answers) if answers.len() == reqs.len() => answers,
            Ok(answers) => {
                let m = format!("mock nodes: {} answers to {} verbs", answers.len(), reqs.len());
                reqs.iter().map(|_| Err(super::model::fail(m.clone()))).collect()
            }
            Err(e) => {
                let m = format!("mock nodes: bad answer to a round of verbs: {e}");
                reqs.iter().map(|_| Err(super::model::fail(m.clone()))).collect()
            }
        }
    }

    fn me(&self) -> String {
        self.addr.to_string()
    }

    /// The model and its generation.
    pub async fn snapshot(&self) -> ExecResult<(MockState, u64)> {
        let resp = self
            .send(&self.me(), self.request(reqwest::Method::GET, PATH_STATE))
            .await?;
        let generation = resp
            .headers()
            .get(GENERATION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| self.unreachable(&self.me(), "no generation in the answer"))?;
        Ok((self.body(&self.me(), resp).await?, generation))
    }

    /// Replaces the model if it is still at `generation`; false if it changed meanwhile.
    pub async fn replace(&self, state: &MockState, generation: u64) -> ExecResult<bool> {
        let r = self
            .request(reqwest::Method::PUT, PATH_STATE)
            .header(GENERATION_HEADER, generation.to_string())
            .json(state);
        let resp = self.send(&self.me(), r).await?;
        Ok(resp.status() != StatusCode::CONFLICT)
    }

    pub async fn add_fault(&self, fault: &Fault) -> ExecResult<()> {
        let r = self.request(reqwest::Method::POST, PATH_FAULTS).json(fault);
        self.send(&self.me(), r).await.map(|_| ())
    }

    /// Disarms every fault; how many had fired.
    pub async fn clear_faults(&self) -> ExecResult<usize> {
        let r = self.request(reqwest::Method::DELETE, PATH_FAULTS);
        let resp = self.send(&self.me(), r).await?;
        self.body(&self.me(), resp).await
    }

    pub async fn set_glusterd_down(&self, host: &str, down: bool) -> ExecResult<()> {
        let r = self
            .request(reqwest::Method::POST, PATH_GLUSTERD)
            .json(&json!({"host": host, "down": down}));
        self.send(&self.me(), r).await.map(|_| ())
    }

    pub async fn command_log(&self) -> ExecResult<Vec<CmdRecord>> {
        let resp = self
            .send(&self.me(), self.request(reqwest::Method::GET, PATH_CMDLOG))
            .await?;
        self.body(&self.me(), resp).await
    }
}
