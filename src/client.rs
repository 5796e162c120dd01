//! A small HTTP client for Hekate's own commands (`hekate replica ...`, `hekate dev`) and the
//! tests: signs a Heketi JWT per request and fails over between several server URLs.

use std::time::Duration;

use anyhow::{anyhow, Context};
use reqwest::Method;

use crate::auth;

/// heketi-cli's TLS options.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// `--tls-cert/-C` (repeatable): PEM files of the CAs to trust.
    pub ca_files: Vec<std::path::PathBuf>,
    /// `--insecure-tls/-I`: accept any server certificate.
    pub insecure: bool,
}

#[derive(Clone)]
pub struct Client {
    pub servers: Vec<String>,
    pub user: String,
    pub key: String,
    http: reqwest::Client,
}

/// A finished exchange: status, headers and body text.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    /// The `Location` header (a 202's `/queue/<id>`, a 303's resource), or "".
    pub fn location(&self) -> String {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.body).with_context(|| format!("not JSON: {}", self.body))
    }

    pub fn ok(self) -> anyhow::Result<Reply> {
        if (200..300).contains(&self.status) {
            Ok(self)
        } else {
            Err(anyhow!("server answered {}: {}", self.status, self.body.trim()))
        }
    }
}

/// Why a CLI request failed: the server's message (Heketi's CLI prints it after `Error: `).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServerError(pub String);

impl Client {
    /// A request whose answer must be 2xx; returns the body (JSON or text).
    pub async fn expect_ok(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<Reply> {
        let r = self.call(method, path, body).await?;
        if !(200..300).contains(&r.status) {
            return Err(ServerError(r.body.trim_end().to_string()).into());
        }
        Ok(r)
    }

    /// Heketi's async contract from the client side: a 202 is followed by polling its
    /// `Location` (short backoff: 10 ms doubling to 500 ms) until it ends; a 303 is followed to
    /// the resource, whose JSON is returned. `progress` is called while waiting.
    pub async fn run_async(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        progress: &dyn Fn(std::time::Duration),
    ) -> anyhow::Result<Option<serde_json::Value>> {
        let r = self.call(method, path, body).await?;
        if r.status != 202 {
            if (200..300).contains(&r.status) {
                return Ok(serde_json::from_str(&r.body).ok());
            }
            return Err(ServerError(r.body.trim_end().to_string()).into());
        }
        let loc = r.location();
        let started = std::time::Instant::now();
        let mut nap = Duration::from_millis(10);
        loop {
            let q = self.call(Method::GET, &loc, None).await?;
            match q.status {
                200 | 503 => {}
                303 => {
                    let res = q.location();
                    let r = self.expect_ok(Method::GET, &res, None).await?;
                    return Ok(Some(r.json()?));
                }
                204 => return Ok(None),
                _ => return Err(ServerError(q.body.trim_end().to_string()).into()),
            }
            progress(started.elapsed());
            tokio::time::sleep(nap).await;
            nap = (nap * 2).min(Duration::from_millis(500));
        }
    }

    pub fn new(servers: Vec<String>, user: &str, key: &str) -> Client {
        Client::with_tls(servers, user, key, &ClientTls::default()).unwrap_or_else(|_| Client {
            servers: Vec::new(),
            user: user.to_string(),
            key: key.to_string(),
            http: reqwest::Client::default(),
        })
    }

    /// A client for `https://` servers as heketi-cli's `--tls-cert` / `--insecure-tls` make
    /// it: with CA files, only those CAs are trusted (no system roots, as Go's client with a
    /// custom pool); without, the system's roots.
    pub fn with_tls(servers: Vec<String>, user: &str, key: &str, tls: &ClientTls) -> anyhow::Result<Client> {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(60));
        if !tls.ca_files.is_empty() {
            let mut roots = Vec::new();
            for f in &tls.ca_files {
                let pem = std::fs::read(f)
                    .with_context(|| format!("cannot read TLS certificate {}", f.display()))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .with_context(|| format!("{} is not a PEM certificate", f.display()))?;
                if certs.is_empty() {
                    return Err(anyhow!("{} holds no certificate", f.display()));
                }
                roots.extend(certs);
            }
            b = b.tls_certs_only(roots);
        }
        if tls.insecure {
            b = b.tls_danger_accept_invalid_certs(true);
        }
        let http = b.build().context("cannot build the HTTP client")?;
        let servers = servers
            .into_iter()
            .map(|s| s.trim_end_matches('/').to_string())
            .collect();
        Ok(Client {
            servers,
            user: user.to_string(),
            key: key.to_string(),
            http,
        })
    }

    /// A GET answered from the first reachable replica's own state (`x-hekate-read: local`):
    /// no leader needed, possibly stale.
    pub async fn call_local_get(&self, path: &str) -> anyhow::Result<Reply> {
        let mut last = anyhow!("no server configured");
        for server in &self.servers {
            let token = auth::sign(&self.user, &self.key, "GET", path, auth::now_unix(), 300);
            let sent = self
                .http
                .get(format!("{server}{path}"))
                .bearer_auth(token)
                .header(crate::api::READ_HEADER, "local")
                .send()
                .await;
            match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    let body = resp.text().await?;
                    return Ok(Reply {
                        status,
                        headers,
                        body,
                    });
                }
                Err(e) => last = anyhow!("{server}: {}", chain(&e)),
            }
        }
        Err(last)
    }

    /// Sends to the first server that accepts a connection.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<Reply> {
        let mut last = anyhow!("no server configured");
        for server in &self.servers {
            match self.call_one(server, method.clone(), path, body).await {
                Ok(r) => return Ok(r),
                Err(e) if e.is_connect() => last = anyhow!("{server}: {}", chain(&e)),
                Err(e) => return Err(anyhow!("{server}: {}", chain(&e))),
            }
        }
        Err(last)
    }

    pub async fn call_one(
        &self,
        server: &str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, reqwest::Error> {
        let token = auth::sign(
            &self.user,
            &self.key,
            method.as_str(),
            path,
            auth::now_unix(),
            300,
        );
        let mut req = self
            .http
            .request(method, format!("{server}{path}"))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// An error with its causes (`error sending request: ... : invalid peer certificate:
/// UnknownIssuer`), so a TLS refusal says why.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
