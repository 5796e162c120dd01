//! One Hekate replica inside the test process ([`InProc`]): a real single-node Raft group on
//! RocksDB in a temporary directory, the HTTP router as `hekate serve` mounts it (request
//! limits, peer routes), the operation runner, and the in-memory mock executor shared by the
//! router, the runner and the test (which arms faults and reads the nodes' model through it).
//! Requests go through `tower::ServiceExt::oneshot`, signed as hekate-cli signs them: no
//! socket, no child process. docs/testing.md ("In-process tier") says why a real Raft rather
//! than a fake leadership.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Body;
use axum::Router;
use http_body_util::BodyExt;
use reqwest::Method;
use serde_json::Value;
use tower::ServiceExt;

use hekate::api::{self, AppState, StateOptions};
use hekate::auth::{now_unix, sign, Verifier};
use hekate::client::Reply;
use hekate::config::{GlusterfsConfig, Limits, Policy};
use hekate::executor::mock::{MockConfig, MockExecutor};
use hekate::ops::runner::Runner;
use hekate::state::{Command, HekateApp, HekateReplica};
use hekate_raft::replica::ReplicaConfig;
use hekate_raft::{Member, Replica};

pub const ADMIN_KEY: &str = "inproc-admin-key-0123456789";
pub const USER_KEY: &str = "inproc-user-key-0123456789";
pub(crate) const SECRET: &str = "inproc-cluster-secret-0123456789";

/// How an in-process replica runs.
pub struct InProcSpec {
    /// The volume and operation policy (Heketi's defaults from an empty `glusterfs`).
    pub policy: Policy,
    /// The mock executor's settings (device size, latency, static injections).
    pub mock: MockConfig,
    /// Start the leader's background work as `hekate serve` does: the operation runner, the
    /// node health monitor (unless the policy turns it off) and the log-format agreement. Off:
    /// operations stay pending, as in the router fuzz, and the harness sets the group's
    /// identity the runner would set.
    pub runner: bool,
}

impl Default for InProcSpec {
    fn default() -> InProcSpec {
        InProcSpec {
            policy: Policy::from_config(&GlusterfsConfig::default()),
            mock: MockConfig::default(),
            runner: true,
        }
    }
}

/// A running in-process replica. Dropping it stops the runner; [`InProc::shutdown`] also
/// stops Raft cleanly.
pub struct InProc {
    pub app: Router,
    pub replica: HekateReplica,
    /// The nodes: the same executor the router and the runner use.
    pub mock: Arc<MockExecutor>,
    stop: tokio::sync::watch::Sender<bool>,
    runner: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl InProc {
    /// Starts a replica with Heketi's default policy and the runner on; returns once it leads.
    pub async fn start() -> anyhow::Result<InProc> {
        InProc::with(InProcSpec::default()).await
    }

    pub async fn with(spec: InProcSpec) -> anyhow::Result<InProc> {
        let dir = tempfile::tempdir()?;
        let member = Member {
            api_addr: "127.0.0.1:1".into(),
            peer_addr: "127.0.0.1:1".into(),
        };
        let replica = Replica::start(
            ReplicaConfig {
                id: 1,
                data_dir: dir.path().join("data"),
                settings: Default::default(),
                initial_members: [(1, member)].into(),
                join: false,
                secret: SECRET.into(),
                tls: None,
                store: Default::default(),
            },
            Arc::new(HekateApp),
        )
        .await
        .context("start the replica")?;
        replica.bootstrap().await;
        let mock = Arc::new(MockExecutor::in_memory(spec.mock));
        let failpoints = Arc::new(hekate::ops::failpoint::Failpoints::new(false));
        let background = spec
            .runner
            .then(|| Background::new(&replica, mock.clone(), &spec.policy, failpoints.clone()));
        let app = router(&replica, mock.clone(), spec.policy, failpoints);
        crate::wait_for(Duration::from_secs(30), "the replica to lead", || async {
            replica.ready().await.ok()
        })
        .await?;
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let runner = if let Some(b) = background {
            Some(b.spawn(&replica, &stop_rx))
        } else {
            // The runner sets the group's identity in its first term (operations need it);
            // without one, the harness does.
            let set = Command::SetIdentity {
                id: hekate::ids::new_id(),
            };
            replica.propose(&set).await.context("set the identity")?;
            None
        };
        crate::wait_for(Duration::from_secs(30), "the cluster identity", || async {
            replica.read(|r| hekate::state::identity(r)).ok().flatten()
        })
        .await?;
        Ok(InProc {
            app,
            replica,
            mock,
            stop,
            runner,
            _dir: dir,
        })
    }

    /// A request signed as the admin.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Reply> {
        self.call_as("admin", ADMIN_KEY, method, path, body).await
    }

    /// A request signed as `user` with `key` (hekate-cli's token: method, path, 300 s).
    pub async fn call_as(
        &self,
        user: &str,
        key: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Reply> {
        send(&self.app, user, key, method, path, body).await
    }

    /// A request that must succeed (2xx); its JSON body (Null when empty).
    pub async fn call_ok(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let r = self.call(method.clone(), path, body).await?;
        if !(200..300).contains(&r.status) {
            bail!("{method} {path}: {} {}", r.status, r.body.trim());
        }
        if r.body.trim().is_empty() {
            return Ok(Value::Null);
        }
        r.json()
    }

    /// Polls `/queue/...` until the operation is no longer pending; the final reply (303,
    /// 204 or 500).
    pub async fn wait_queue(&self, location: &str, within: Duration) -> anyhow::Result<Reply> {
        let deadline = Instant::now() + within;
        let mut nap = Duration::from_millis(1);
        loop {
            let r = self.call(Method::GET, location, None).await?;
            if r.status == 404 {
                bail!("{location}: 404 while polling ({})", r.body.trim());
            }
            if !(r.status == 200 && r.headers.contains_key("x-pending")) {
                return Ok(r);
            }
            if Instant::now() > deadline {
                bail!("{location}: still pending after {within:?}");
            }
            tokio::time::sleep(nap).await;
            nap = (nap * 2).min(Duration::from_millis(20));
        }
    }

    /// An async request to its end: Ok(Some(resource path)) on 303, Ok(None) on 204; the
    /// status and text of a synchronous refusal or of the operation's failure otherwise.
    pub async fn run_async(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Option<String>> {
        let r = self.call(method.clone(), path, body).await?;
        if r.status != 202 {
            bail!("{method} {path}: {} {}", r.status, r.body.trim());
        }
        let done = self.wait_queue(&r.location(), Duration::from_secs(30)).await?;
        match done.status {
            303 => Ok(Some(done.location())),
            204 => Ok(None),
            s => bail!("{method} {path}: operation ended {s}: {}", done.body.trim()),
        }
    }

    /// Stops the runner, then Raft.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.runner.take() {
            let _ = t.await;
        }
        self.replica.shutdown().await;
    }
}

/// The leader's background work, as `hekate serve` starts it (src/server.rs): the operation
/// runner, the node health monitor and the log-format agreement loop.
pub(crate) struct Background {
    runner: Arc<Runner>,
    monitor: Option<hekate::ops::health::Monitor>,
}

impl Background {
    pub(crate) fn new(
        replica: &HekateReplica,
        mock: Arc<MockExecutor>,
        policy: &Policy,
        failpoints: Arc<hekate::ops::failpoint::Failpoints>,
    ) -> Background {
        let runner = Runner::new(replica.clone(), mock.clone(), policy, failpoints);
        let monitor = policy
            .health_every_secs
            .map(|every| hekate::ops::health::Monitor {
                replica: replica.clone(),
                exec: mock,
                first: Duration::from_secs(policy.health_first_secs),
                every: Duration::from_secs(every),
            });
        Background { runner, monitor }
    }

    /// Spawns all three until `stop` turns; the runner's task.
    pub(crate) fn spawn(
        self,
        replica: &HekateReplica,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let runner = tokio::spawn(self.runner.run(stop.clone()));
        if let Some(m) = self.monitor {
            tokio::spawn(m.run(stop.clone()));
        }
        tokio::spawn(hekate::ops::format::agreement_loop(replica.clone(), stop.clone()));
        runner
    }
}

/// The router of a replica as `hekate serve` mounts it on a shared listener: the API with
/// its request limits, the peer routes and the forwarding entry.
pub(crate) fn router(
    replica: &HekateReplica,
    mock: Arc<MockExecutor>,
    policy: Policy,
    failpoints: Arc<hekate::ops::failpoint::Failpoints>,
) -> Router {
    let st = AppState::new(
        replica.clone(),
        StateOptions {
            verifier: Some(Verifier {
                admin_key: ADMIN_KEY.into(),
                user_key: USER_KEY.into(),
                iat_leeway_secs: 120,
            }),
            forward_timeout: Duration::from_millis(500),
            exec: mock,
            policy,
            default_admin_state: String::new(),
            log: None,
            failpoints,
        },
    );
    let api_app = hekate::listen::limit(
        api::router(st),
        hekate::listen::RequestLimits::new(&Limits::default()),
    );
    api_app.clone().merge(
        replica
            .peer_router()
            .merge(api::forward::peer_entry(api_app, SECRET)),
    )
}

/// A request to `app` signed as `user` with `key` (hekate-cli's token: method, path, 300 s),
/// through `oneshot`.
pub(crate) async fn send(
    app: &Router,
    user: &str,
    key: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<Reply> {
    let token = sign(user, key, method.as_str(), path, now_unix(), 300);
    let mut req = axum::http::Request::builder()
        .method(method.as_str())
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(serde_json::to_vec(b)?)
        }
        None => Body::empty(),
    };
    let resp = app.clone().oneshot(req.body(body)?).await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

impl Drop for InProc {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
