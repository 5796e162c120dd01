//! Several Hekate replicas inside the test process ([`InProcReplicas`]): each a real Raft
//! replica on RocksDB in its own directory, serving its router (API, peer routes, forwarding
//! entry) on a loopback port as `hekate serve` does, with its own background work (runner,
//! health monitor, log-format agreement); all share one set of in-memory mock nodes, as the
//! replicas of `hekate dev` share `hekate mock-nodes`.
//! Tests send requests to a chosen replica through `oneshot` (a follower forwards them to the
//! leader over loopback HTTP), and stop replicas to make the others elect a new leader.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use axum::Router;
use reqwest::Method;
use serde_json::Value;

use hekate::client::Reply;
use hekate::config::{GlusterfsConfig, Limits, Policy};
use hekate::executor::mock::{MockConfig, MockExecutor};
use hekate::state::{HekateApp, HekateReplica};
use hekate_raft::replica::ReplicaConfig;
use hekate_raft::{Member, Replica};

use crate::inproc::{router, send, Background, ADMIN_KEY, SECRET};

/// One running replica of an [`InProcReplicas`].
struct Running {
    app: Router,
    replica: HekateReplica,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

pub struct InProcReplicas {
    running: BTreeMap<u64, Running>,
    /// The nodes every replica's executor reaches.
    pub mock: Arc<MockExecutor>,
    _dir: tempfile::TempDir,
}

impl InProcReplicas {
    /// Starts replicas 1..=n on loopback ports; returns once they agree on a ready leader
    /// and the group's identity is set.
    pub async fn start(n: u64) -> anyhow::Result<InProcReplicas> {
        let dir = tempfile::tempdir()?;
        let mut listeners = BTreeMap::new();
        let mut members = BTreeMap::new();
        for id in 1..=n {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = l.local_addr()?.to_string();
            members.insert(
                id,
                Member {
                    api_addr: addr.clone(),
                    peer_addr: addr,
                },
            );
            listeners.insert(id, l);
        }
        let mock = Arc::new(MockExecutor::in_memory(MockConfig::default()));
        let mut running = BTreeMap::new();
        for (id, listener) in listeners {
            let replica = Replica::start(
                ReplicaConfig {
                    id,
                    data_dir: dir.path().join(format!("replica-{id}")),
                    settings: Default::default(),
                    initial_members: members.clone(),
                    join: false,
                    secret: SECRET.into(),
                    tls: None,
                    store: Default::default(),
                },
                Arc::new(HekateApp),
            )
            .await
            .with_context(|| format!("start replica {id}"))?;
            let policy = Policy::from_config(&GlusterfsConfig::default());
            let failpoints = Arc::new(hekate::ops::failpoint::Failpoints::new(false));
            let background = Background::new(&replica, mock.clone(), &policy, failpoints.clone());
            let app = router(&replica, mock.clone(), policy, failpoints);
            let (stop, stop_rx) = tokio::sync::watch::channel(false);
            let mut rx = stop_rx.clone();
            let serve = tokio::spawn(hekate::listen::serve(
                listener,
                app.clone(),
                None,
                hekate::listen::ConnLimits::from(&Limits::default()),
                async move {
                    let _ = rx.changed().await;
                },
            ));
            let boot = replica.clone();
            let bootstrap = tokio::spawn(async move { boot.bootstrap().await });
            let runner = background.spawn(&replica, &stop_rx);
            running.insert(
                id,
                Running {
                    app,
                    replica,
                    stop,
                    tasks: vec![serve, bootstrap, runner],
                },
            );
        }
        let r = InProcReplicas {
            running,
            mock,
            _dir: dir,
        };
        r.wait_leader(Duration::from_secs(30)).await?;
        let any = r.running.values().next().map(|x| x.replica.clone());
        crate::wait_for(Duration::from_secs(30), "the cluster identity", || {
            let any = any.clone();
            async move { any?.read(|v| hekate::state::identity(v)).ok().flatten() }
        })
        .await?;
        Ok(r)
    }

    /// The ids of the running replicas.
    pub fn ids(&self) -> Vec<u64> {
        self.running.keys().copied().collect()
    }

    /// Waits until every running replica names the same leader, and that leader is ready.
    pub async fn wait_leader(&self, within: Duration) -> anyhow::Result<u64> {
        crate::wait_for(within, "an agreed, ready leader", || async {
            let seen: Vec<Option<u64>> = self
                .running
                .values()
                .map(|r| r.replica.leader().map(|(id, _)| id))
                .collect();
            let leader = (*seen.first()?)?;
            if !seen.iter().all(|s| *s == Some(leader)) {
                return None;
            }
            self.running.get(&leader)?.replica.ready().await.ok()?;
            Some(leader)
        })
        .await
    }

    /// A request to replica `id`, signed as the admin.
    pub async fn call(
        &self,
        id: u64,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Reply> {
        let r = self
            .running
            .get(&id)
            .ok_or_else(|| anyhow!("replica {id} is not running"))?;
        send(&r.app, "admin", ADMIN_KEY, method, path, body).await
    }

    /// Replica `id`'s own (possibly stale, never forwarded) view of `path`.
    pub async fn local_get(&self, id: u64, path: &str) -> anyhow::Result<Value> {
        let r = self
            .running
            .get(&id)
            .ok_or_else(|| anyhow!("replica {id} is not running"))?;
        let token = hekate::auth::sign("admin", ADMIN_KEY, "GET", path, hekate::auth::now_unix(), 300);
        let req = axum::http::Request::builder()
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header(hekate::api::READ_HEADER, "local")
            .body(axum::body::Body::empty())?;
        let resp = tower::ServiceExt::oneshot(r.app.clone(), req).await?;
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await?
            .to_bytes();
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Stops replica `id` as a SIGTERM would (runner, listener, Raft), without a handoff.
    pub async fn stop(&mut self, id: u64) -> anyhow::Result<()> {
        let r = self
            .running
            .remove(&id)
            .ok_or_else(|| anyhow!("replica {id} is not running"))?;
        let _ = r.stop.send(true);
        r.replica.shutdown().await;
        for t in r.tasks {
            t.abort();
        }
        Ok(())
    }

    /// Stops every replica.
    pub async fn shutdown(mut self) {
        for id in self.ids() {
            let _ = self.stop(id).await;
        }
    }
}
