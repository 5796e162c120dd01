//! The SSH transport: one connection per node, kept and reused, with at most 8 commands
//! multiplexed on it at a time (OpenSSH's `MaxSessions` defaults to 10); reconnect with
//! backoff; a timeout per command; host keys verified against a known_hosts file (an unknown
//! or changed key is refused, naming the host and the key's fingerprint); public-key auth.
//! The private key is never logged.
//!
//! Hosts are independent: each has its own slot, and connecting (with its retries, up to
//! about 31 s for a dead node) holds only that host's lock, so one dead node never delays
//! commands to the others.
//!
//! Every command carries the fencing token (`HEKATE_CLUSTER`, `HEKATE_TERM` in the session
//! environment) and a command without one is not sent. Before the first command of a term
//! on a host, the transport claims the host (`hekate-guard claim`): the node's guard records
//! the term and the claim's answer proves the guard is there (`node_guard`: a node without it
//! is refused, or used with a loud warning). A refusal by the guard comes back as
//! [`ExecError::Fenced`] (stale term) or a plain failure naming the node's reason.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::ChannelMsg;
use tokio::sync::{Mutex, Semaphore};

use super::commands::shell_line;
use super::{ExecError, ExecResult, FenceToken, GUARD_REFUSED_PREFIX, GUARD_REFUSED_STATUS};

/// Exit status of a command the guard refused for a reason other than a stale term (no or
/// malformed token, an identity the node does not serve): a configuration error.
pub const GUARD_MISCONFIGURED_STATUS: u32 = 87;

/// What to do with a node whose sshd does not run `hekate-guard` (`sshexec.node_guard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeGuard {
    /// Refuse to run anything there (the default).
    #[default]
    Require,
    /// Run commands anyway, logging an error once per host and term (migration only: an
    /// unguarded node executes a deposed leader's commands).
    Warn,
}

/// Commands open on one connection at once.
pub const CHANNELS_PER_HOST: usize = 8;

#[derive(Clone)]
pub struct SshSettings {
    pub user: String,
    pub port: u16,
    pub key: Arc<PrivateKey>,
    pub known_hosts: PathBuf,
    pub sudo: bool,
    pub connect_timeout: Duration,
    /// Drop the node's connection at the start of every executor step (benchmark of what
    /// connection reuse buys).
    pub connection_per_step: bool,
    pub node_guard: NodeGuard,
}

impl std::fmt::Debug for SshSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("SshSettings")
            .field("user", &self.user)
            .field("port", &self.port)
            .field("known_hosts", &self.known_hosts)
            .field("sudo", &self.sudo)
            .finish()
    }
}

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub status: Option<u32>,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.status == Some(0)
    }

    /// Heketi's error text: stderr, or stdout when stderr is empty.
    pub fn error_text(&self) -> String {
        let e = self.stderr.trim();
        if e.is_empty() {
            self.stdout.trim().to_string()
        } else {
            e.to_string()
        }
    }
}

struct HostKeyCheck {
    host: String,
    port: u16,
    known_hosts: PathBuf,
    /// Why the key was refused, for the error message.
    refused: Arc<std::sync::Mutex<Option<String>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            *self.refused.lock().unwrap_or_else(|e| e.into_inner()) =
                Some("host certificates are not accepted".into());
            return Ok(false);
        };
        let fp = key.fingerprint(HashAlg::Sha256);
        let verdict = russh::keys::check_known_hosts_path(&self.host, self.port, key, &self.known_hosts);
        let why = match verdict {
            Ok(true) => return Ok(true),
            Ok(false) => format!(
                "host key {fp} of {}:{} is not in {}",
                self.host,
                self.port,
                self.known_hosts.display()
            ),
            Err(e) => format!(
                "host key {fp} of {}:{} does not match {}: {e}",
                self.host,
                self.port,
                self.known_hosts.display()
            ),
        };
        tracing::error!("{why}");
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        Ok(false)
    }
}

struct Conn {
    handle: Handle<HostKeyCheck>,
    slots: Arc<Semaphore>,
}

/// Everything the transport keeps for one host; its locks are this host's alone.
#[derive(Default)]
struct HostSlot {
    conn: StdMutex<Option<Arc<Conn>>>,
    /// Held while connecting (with retries) to this host.
    connecting: Mutex<()>,
    /// The newest token this host's guard confirmed to this process.
    claimed: StdMutex<Option<FenceToken>>,
    /// Held while claiming this host.
    claiming: Mutex<()>,
}

impl HostSlot {
    fn live(&self) -> Option<Arc<Conn>> {
        let c = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        c.as_ref().filter(|c| !c.handle.is_closed()).cloned()
    }

    fn forget(&self) {
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn claimed_for(&self, t: &FenceToken) -> bool {
        let c = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
        c.as_ref()
            .is_some_and(|c| c.cluster == t.cluster && c.term >= t.term)
    }
}

pub struct SshTransport {
    settings: SshSettings,
    hosts: StdMutex<HashMap<String, Arc<HostSlot>>>,
}

fn unreachable(host: &str, msg: impl std::fmt::Display) -> ExecError {
    ExecError::Unreachable {
        host: host.to_string(),
        msg: msg.to_string(),
    }
}

/// The guard's answer to a claim: `hekate-guard <version> claimed <cluster> <term>`.
fn claim_answer_ok(stdout: &str, t: &FenceToken) -> bool {
    let words: Vec<&str> = stdout.split_whitespace().collect();
    matches!(words.as_slice(), ["hekate-guard", _, "claimed", c, term] if *c == t.cluster && *term == t.term.to_string())
}

/// A guard's refusal, if `out` is one: a stale term is [`ExecError::Fenced`]; any other
/// refusal (no token, an identity the node does not serve) fails with the node's reason.
pub fn guard_refusal(host: &str, out: &Output) -> Option<ExecError> {
    let why = out.stderr.trim();
    if !why.starts_with(GUARD_REFUSED_PREFIX) {
        return None;
    }
    match out.status {
        Some(GUARD_REFUSED_STATUS) => Some(ExecError::Fenced(format!("{host}: {why}"))),
        Some(GUARD_MISCONFIGURED_STATUS) => Some(ExecError::Failed(format!("{host}: {why}"))),
        _ => None,
    }
}

impl SshTransport {
    pub fn new(settings: SshSettings) -> SshTransport {
        SshTransport {
            settings,
            hosts: StdMutex::new(HashMap::new()),
        }
    }

    fn slot(&self, host: &str) -> Arc<HostSlot> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts.entry(host.to_string()).or_default().clone()
    }

    async fn connect(&self, host: &str) -> ExecResult<Arc<Conn>> {
        let s = &self.settings;
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(300)),
            keepalive_interval: Some(Duration::from_secs(15)),
            // Small request/response exchanges: Nagle's algorithm would hold every command
            // back until the previous segment is acknowledged (tens of ms per command).
            nodelay: true,
            ..Default::default()
        });
        let refused = Arc::new(std::sync::Mutex::new(None));
        let handler = HostKeyCheck {
            host: host.to_string(),
            port: s.port,
            known_hosts: s.known_hosts.clone(),
            refused: refused.clone(),
        };
        let connecting = client::connect(config, (host, s.port), handler);
        let mut handle = match tokio::time::timeout(s.connect_timeout, connecting).await {
            Err(_) => {
                return Err(unreachable(
                    host,
                    format!("connect timeout after {:?}", s.connect_timeout),
                ))
            }
            Ok(Err(e)) => {
                let why = refused.lock().unwrap_or_else(|e| e.into_inner()).clone();
                return Err(match why {
                    Some(w) => ExecError::Failed(w),
                    None => unreachable(host, e),
                });
            }
            Ok(Ok(h)) => h,
        };
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .map_err(|e| unreachable(host, e))?
            .flatten();
        let auth = handle
            .authenticate_publickey(s.user.clone(), PrivateKeyWithHashAlg::new(s.key.clone(), hash))
            .await
            .map_err(|e| unreachable(host, e))?;
        if !auth.success() {
            return Err(ExecError::Failed(format!(
                "{host}: public key authentication as {} refused",
                s.user
            )));
        }
        Ok(Arc::new(Conn {
            handle,
            slots: Arc::new(Semaphore::new(CHANNELS_PER_HOST)),
        }))
    }

    /// The live connection to `host`, connecting (up to 3 tries, backing off) when needed.
    /// Only this host's lock is held while connecting.
    async fn conn(&self, slot: &HostSlot, host: &str) -> ExecResult<Arc<Conn>> {
        if let Some(c) = slot.live() {
            return Ok(c);
        }
        let _connecting = slot.connecting.lock().await;
        if let Some(c) = slot.live() {
            return Ok(c); // another task connected meanwhile
        }
        let mut last = None;
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
            }
            match self.connect(host).await {
                Ok(c) => {
                    *slot.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
                    return Ok(c);
                }
                // A refused host key or login will not get better by retrying.
                Err(e @ ExecError::Failed(_)) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| unreachable(host, "no connection")))
    }

    /// Starts an executor step on `host`: with `connection_per_step`, the next command
    /// connects afresh (steps already running keep theirs).
    pub async fn begin_step(&self, host: &str) {
        if self.settings.connection_per_step {
            self.slot(host).forget();
        }
    }

    /// Runs one command (argv, quoted here, `sudo` prefixed when configured) under the
    /// fencing token of the running verb; without one, nothing is sent.
    pub async fn run(&self, host: &str, argv: &[String], timeout: Duration) -> ExecResult<Output> {
        let Some(token) = super::current_fence() else {
            return Err(super::unfenced(
                argv.first().map(String::as_str).unwrap_or("a command"),
                host,
            ));
        };
        self.run_as(&token, host, argv, timeout).await
    }

    /// [`Self::run`] with an explicit token (the transport's own tests).
    pub async fn run_as(
        &self,
        token: &FenceToken,
        host: &str,
        argv: &[String],
        timeout: Duration,
    ) -> ExecResult<Output> {
        let slot = self.slot(host);
        self.claim(&slot, token, host).await?;
        let out = self
            .send(&slot, token, host, &shell_line(argv, self.settings.sudo), timeout)
            .await?;
        match guard_refusal(host, &out) {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Claims `host` for the running verb's token (the `claim` verb).
    pub async fn claim_host(&self, host: &str) -> ExecResult<()> {
        let Some(token) = super::current_fence() else {
            return Err(super::unfenced("claim", host));
        };
        self.claim(&self.slot(host), &token, host).await
    }

    /// Claims `host` for `token` (once per host and term): the guard records the term, waits
    /// for older terms' commands still running there, and answers; the answer proves the
    /// guard is in place.
    async fn claim(&self, slot: &HostSlot, token: &FenceToken, host: &str) -> ExecResult<()> {
        if slot.claimed_for(token) {
            return Ok(());
        }
        let _claiming = slot.claiming.lock().await;
        if slot.claimed_for(token) {
            return Ok(());
        }
        // The claim may wait for an older term's command (up to its own timeout).
        let out = self
            .send(
                slot,
                token,
                host,
                "hekate-guard claim",
                Duration::from_secs(10 * 60),
            )
            .await?;
        if let Some(e) = guard_refusal(host, &out) {
            return Err(e);
        }
        if !(out.ok() && claim_answer_ok(&out.stdout, token)) {
            let answer = format!(
                "exit status {:?}: {}",
                out.status,
                out.error_text().chars().take(200).collect::<String>()
            );
            match self.settings.node_guard {
                NodeGuard::Require => {
                    return Err(ExecError::Failed(format!(
                        "node {host} does not run hekate-guard ({answer}): install \
                         deploy/node/hekate-guard as its sshd ForceCommand (deploy/README.md, \
                         \"Node guard\"), or set glusterfs.sshexec.node_guard to \"warn\""
                    )))
                }
                NodeGuard::Warn => tracing::error!(
                    host,
                    term = token.term,
                    "node {host} does not run hekate-guard ({answer}): it will execute a deposed \
                     leader's commands; node_guard is \"warn\""
                ),
            }
        }
        *slot.claimed.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        Ok(())
    }

    /// Sends one command line with the token in the session environment.
    async fn send(
        &self,
        slot: &HostSlot,
        token: &FenceToken,
        host: &str,
        line: &str,
        timeout: Duration,
    ) -> ExecResult<Output> {
        for attempt in 0..2 {
            let conn = self.conn(slot, host).await?;
            let _slot = conn
                .slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| unreachable(host, e))?;
            let mut ch = match conn.handle.channel_open_session().await {
                Ok(ch) => ch,
                Err(e) if attempt == 0 => {
                    // A stale connection: forget it and reconnect once.
                    tracing::debug!(host, "channel open failed ({e}); reconnecting");
                    slot.forget();
                    continue;
                }
                Err(e) => return Err(unreachable(host, e)),
            };
            // The fencing token, for the node's guard (sshd `AcceptEnv HEKATE_CLUSTER
            // HEKATE_TERM`; a guard that does not get them refuses the command).
            for (k, v) in [
                ("HEKATE_CLUSTER", token.cluster.clone()),
                ("HEKATE_TERM", token.term.to_string()),
            ] {
                ch.set_env(false, k, v).await.map_err(|e| unreachable(host, e))?;
            }
            ch.exec(true, line.as_bytes())
                .await
                .map_err(|e| unreachable(host, e))?;
            let mut out = Output::default();
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            let collect = async {
                while let Some(msg) = ch.wait().await {
                    match msg {
                        ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
                        ChannelMsg::ExtendedData { data, ext: 1 } => stderr.extend_from_slice(&data),
                        ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
                        _ => {}
                    }
                }
            };
            if tokio::time::timeout(timeout, collect).await.is_err() {
                let _ = ch.close().await;
                return Err(ExecError::Failed(format!(
                    "SSH command timeout after {timeout:?} on {host}: {line}"
                )));
            }
            out.stdout = String::from_utf8_lossy(&stdout).into_owned();
            out.stderr = String::from_utf8_lossy(&stderr).into_owned();
            return Ok(out);
        }
        Err(unreachable(host, "no usable connection"))
    }

    /// Runs commands in order, stopping at the first failure (Heketi's batch), under the
    /// running verb's fencing token.
    pub async fn batch(
        &self,
        host: &str,
        cmds: &[Vec<String>],
        timeout: Duration,
    ) -> ExecResult<Vec<Output>> {
        let Some(token) = super::current_fence() else {
            return Err(super::unfenced("a batch", host));
        };
        self.batch_as(&token, host, cmds, timeout).await
    }

    /// [`Self::batch`] with an explicit token (the transport's own tests).
    pub async fn batch_as(
        &self,
        token: &FenceToken,
        host: &str,
        cmds: &[Vec<String>],
        timeout: Duration,
    ) -> ExecResult<Vec<Output>> {
        let mut outs = Vec::new();
        for c in cmds {
            let o = self.run_as(token, host, c, timeout).await?;
            if !o.ok() {
                return Err(ExecError::Failed(o.error_text()));
            }
            outs.push(o);
        }
        Ok(outs)
    }
}
