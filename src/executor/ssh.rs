//! The SSH transport: one connection per node, kept and reused, with at most 8 commands
//! multiplexed on it at a time (OpenSSH's `MaxSessions` defaults to 10); reconnect with
//! backoff; a timeout per command; host keys verified against a known_hosts file (an unknown
//! or changed key is refused, naming the host and the key's fingerprint); public-key auth.
//! The private key is never logged.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::ChannelMsg;
use tokio::sync::{Mutex, Semaphore};

use super::commands::shell_line;
use super::{ExecError, ExecResult};

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

pub struct SshTransport {
    settings: SshSettings,
    conns: Mutex<HashMap<String, Arc<Conn>>>,
}

fn unreachable(host: &str, msg: impl std::fmt::Display) -> ExecError {
    ExecError::Unreachable {
        host: host.to_string(),
        msg: msg.to_string(),
    }
}

impl SshTransport {
    pub fn new(settings: SshSettings) -> SshTransport {
        SshTransport {
            settings,
            conns: Mutex::new(HashMap::new()),
        }
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
    async fn conn(&self, host: &str) -> ExecResult<Arc<Conn>> {
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(host) {
            if !c.handle.is_closed() {
                return Ok(c.clone());
            }
            conns.remove(host);
        }
        let mut last = None;
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
            }
            match self.connect(host).await {
                Ok(c) => {
                    conns.insert(host.to_string(), c.clone());
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
            self.conns.lock().await.remove(host);
        }
    }

    /// Runs one command (argv, quoted here, `sudo` prefixed when configured).
    pub async fn run(&self, host: &str, argv: &[String], timeout: Duration) -> ExecResult<Output> {
        let line = shell_line(argv, self.settings.sudo);
        for attempt in 0..2 {
            let conn = self.conn(host).await?;
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
                    self.conns.lock().await.remove(host);
                    continue;
                }
                Err(e) => return Err(unreachable(host, e)),
            };
            if let Some(term) = crate::executor::current_term() {
                // For the node-side command record (sshd `AcceptEnv HEKATE_TERM`); a server
                // that does not accept it ignores it.
                let _ = ch.set_env(false, "HEKATE_TERM", term.to_string()).await;
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

    /// Runs commands in order, stopping at the first failure (Heketi's batch).
    pub async fn batch(
        &self,
        host: &str,
        cmds: &[Vec<String>],
        timeout: Duration,
    ) -> ExecResult<Vec<Output>> {
        let mut outs = Vec::new();
        for c in cmds {
            let o = self.run(host, c, timeout).await?;
            if !o.ok() {
                return Err(ExecError::Failed(o.error_text()));
            }
            outs.push(o);
        }
        Ok(outs)
    }
}
