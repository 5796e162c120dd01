//! Asking a [`ProcCluster`]'s replicas how they are: Raft status, readiness, the agreed
//! leader, signed and local (non-forwarded) requests, the tail of a replica's log.

use std::time::{Duration, Instant};

use anyhow::bail;
use reqwest::Method;
use serde_json::Value;

use hekate::client::Reply;

use crate::ProcCluster;

impl ProcCluster {
    pub async fn status(&self, id: u64) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}/raft/status", self.url(id)))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    pub async fn is_ready(&self, id: u64) -> bool {
        let r = self
            .http
            .get(format!("{}/readyz", self.url(id)))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        matches!(r, Ok(r) if r.status().is_success())
    }

    /// Waits until every listed replica is ready.
    pub async fn wait_ready(&self, ids: &[u64], within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        for id in ids {
            while !self.is_ready(*id).await {
                if Instant::now() > deadline {
                    bail!("replica {id} not ready within {within:?}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Waits until the listed replicas agree on one leader among them; returns it.
    pub async fn wait_leader(&self, among: &[u64], within: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + within;
        loop {
            let mut seen = Vec::new();
            for id in among {
                if let Some(st) = self.status(*id).await {
                    seen.push(st["leader"].as_u64());
                }
            }
            if let Some(Some(l)) = seen.first() {
                let agreed =
                    seen.len() == among.len() && seen.iter().all(|s| *s == Some(*l)) && among.contains(l);
                if agreed && self.is_ready(*l).await {
                    return Ok(*l);
                }
            }
            if Instant::now() > deadline {
                bail!("no agreed leader among {among:?} within {within:?} (saw {seen:?})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A signed request to replica `id`.
    pub async fn call(
        &self,
        id: u64,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Reply> {
        self.client(id).call(method, path, body).await
    }

    /// A local (non-forwarded, possibly stale) read of `path` from replica `id`.
    pub async fn local_get(&self, id: u64, path: &str) -> anyhow::Result<Value> {
        let token = hekate::auth::sign(
            "admin",
            &self.admin_key,
            "GET",
            path,
            hekate::auth::now_unix(),
            300,
        );
        let r = self
            .http
            .get(format!("{}{path}", self.url(id)))
            .bearer_auth(token)
            .header(hekate::api::READ_HEADER, "local")
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("local GET {path} on {id}: {status} {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    /// The last line of a replica's log that mentions `needle`, for error messages.
    pub fn log_tail(&self, id: u64) -> String {
        let p = self.dir.join(format!("replica-{id}")).join("hekate.log");
        let t = std::fs::read_to_string(p).unwrap_or_default();
        t.lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub async fn call_ok(
        &self,
        id: u64,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let r = self.call(id, method.clone(), path, body).await?;
        if !(200..300).contains(&r.status) {
            bail!("{method} {path} via replica {id}: {} {}", r.status, r.body.trim());
        }
        if r.body.trim().is_empty() {
            return Ok(Value::Null);
        }
        r.json()
    }
}
