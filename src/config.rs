//! The one typed configuration: Heketi's `heketi.json` keys, their environment overrides, and
//! Hekate's `raft` section. Loaded once at start, validated into a `Result` whose error names
//! the offending key, then passed down explicitly. No other module reads the environment.
//!
//! Differences from Heketi (docs/api-compatibility.md): unknown keys are an error (Heketi
//! ignores them) except keys starting with `_`, which stay comments; key names are matched
//! exactly (Heketi: case-insensitively).

#[cfg(test)]
mod documented;
pub mod policy;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hekate_raft::RaftSettings;
use serde::{Deserialize, Serialize};

pub use policy::Policy;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub port: String,
    /// Parsed and ignored, as in Heketi: auth is on unless `--disable-auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_auth: Option<bool>,
    #[serde(default)]
    pub jwt: JwtConfig,
    #[serde(default)]
    pub backup_db_to_kube_secret: bool,
    #[serde(default)]
    pub enable_tls: bool,
    #[serde(default)]
    pub cert_file: String,
    #[serde(default)]
    pub key_file: String,
    #[serde(default)]
    pub profiling: bool,
    #[serde(default)]
    pub default_state: String,
    #[serde(default)]
    pub glusterfs: GlusterfsConfig,
    pub raft: RaftConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    #[serde(default)]
    pub admin: JwtKey,
    #[serde(default)]
    pub user: JwtKey,
}

#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKey {
    #[serde(default)]
    pub key: String,
}

/// What a `Debug` output shows of a secret: whether it is set, never its value.
fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() {
        "<unset>"
    } else {
        "<redacted>"
    }
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKey")
            .field("key", &redacted(&self.key))
            .finish()
    }
}

/// Heketi's `glusterfs` object (spec section 3.2). Keys Heketi ignores are accepted too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlusterfsConfig {
    pub db: String,
    pub db_read_only: bool,
    pub executor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocator: Option<String>,
    pub loglevel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sshexec: Option<SshExecConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeexec: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub injectexec: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mockexec: Option<crate::executor::mock::MockConfig>,
    pub brick_max_size_gb: u64,
    pub brick_min_size_gb: u64,
    pub max_bricks_per_volume: u64,
    pub average_file_size_kb: u64,
    pub pre_request_volume_options: String,
    pub post_request_volume_options: String,
    pub zone_checking: String,
    pub max_volumes_per_cluster: i64,
    pub auto_create_block_hosting_volume: bool,
    pub block_hosting_volume_size: u64,
    pub block_hosting_volume_options: String,
    pub disable_monitor_gluster_nodes: bool,
    pub refresh_time_monitor_gluster_nodes: u64,
    pub start_time_monitor_gluster_nodes: u64,
    pub max_inflight_operations: u64,
    pub disable_background_cleaner: bool,
    pub refresh_time_background_cleaner: u64,
    pub start_time_background_cleaner: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_retry_limits: Option<serde_json::Value>,
    /// Hekate: how long a finished operation stays readable at `/queue/{id}` (default 3600 s).
    pub queue_retention_seconds: u64,
    /// Hekate: at most this many finished operations are kept, the oldest forgotten first
    /// (default 10,000), so that retention is bounded by count as well as by time.
    pub queue_retention_max_operations: u64,
    /// Hekate: how long a poll of a pending operation at `/queue/{id}` waits for it to end
    /// before answering "pending" (default 500 ms; 0 answers at once, as Heketi does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_poll_hold_ms: Option<u64>,
}

/// Heketi's `sshexec` object (spec section 3.3) plus `known_hosts`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SshExecConfig {
    pub keyfile: String,
    pub user: String,
    pub port: String,
    pub sudo: bool,
    pub fstab: String,
    pub mountopts: String,
    pub snapshot_limit: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebalance_on_expansion: Option<bool>,
    pub backup_lvm_metadata: bool,
    pub gluster_cli_timeout: u32,
    pub pv_data_alignment: String,
    pub vg_physicalextentsize: String,
    pub lv_chunksize: String,
    pub xfs_sw: i64,
    pub xfs_su: i64,
    pub debug_umount_failures: bool,
    pub block_prealloc: String,
    pub lvm_wrapper: String,
    pub known_hosts: String,
    /// Hekate: open a new SSH connection for every executor step instead of keeping one
    /// per node (only to measure what reuse buys; default false).
    pub connection_per_step: bool,
    /// Hekate: a node whose sshd does not run `hekate-guard`: `require` (default, refuse to
    /// run anything there) or `warn` (run with a loud error; migration only).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node_guard: String,
}

/// Hekate's own section: this replica's identity, storage, peers and timing. Its `Debug`
/// output leaves the secret out.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftConfig {
    pub id: u64,
    #[serde(default)]
    pub data_dir: String,
    /// The cluster secret peers present on every RPC (or `secret_file`, or env `HEKATE_RAFT_SECRET`).
    #[serde(default)]
    pub secret: String,
    #[serde(default)]
    pub secret_file: String,
    /// Where the API listens (default `0.0.0.0:<port>`).
    #[serde(default)]
    pub api_listen: String,
    /// Where peer RPCs are served when this replica's peer address differs from its API
    /// address (default `0.0.0.0:<peer port>`).
    #[serde(default)]
    pub peer_listen: String,
    /// A joining replica never bootstraps a cluster; the leader adds it.
    #[serde(default)]
    pub join: bool,
    pub peers: Vec<PeerConfig>,
    #[serde(default)]
    pub timeouts: RaftSettings,
    /// How long a follower waits for a leader when forwarding, before answering 503.
    #[serde(default = "default_forward_timeout")]
    pub forward_timeout_ms: u64,
    /// Mutual TLS between replicas (peer RPCs and forwarding). Without it peers authenticate
    /// with the cluster secret only, in clear (a startup warning says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<PeerTlsConfig>,
    /// Connection and request limits of this replica's listeners.
    #[serde(default)]
    pub limits: Limits,
    /// RocksDB's memory: memtables of all column families plus the shared block cache, MiB
    /// (docs/footprint.md).
    #[serde(default = "default_memory_budget")]
    pub memory_budget_mib: u64,
    /// Drills only: allow arming the runner's failpoints (`/internal/failpoints`).
    #[serde(default)]
    pub failpoints: bool,
}

/// `raft.tls`: the cluster CA and this replica's certificate (PEM files).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerTlsConfig {
    /// The cluster CA: peers must present a certificate it signed.
    pub ca_file: String,
    /// This replica's certificate (chain), signed by the cluster CA; its SANs must name the
    /// host of this replica's peer address.
    pub cert_file: String,
    pub key_file: String,
}

/// `raft.limits`: what one replica accepts at once and how long it waits for a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// A connection must send a complete request header (and finish its TLS handshake)
    /// within this time, or it is closed. Also bounds idle keep-alive connections.
    pub header_read_timeout_ms: u64,
    /// A request (body included) must be answered within this time, or 503.
    pub request_timeout_ms: u64,
    /// Open connections per listener; beyond it new connections are closed at once.
    pub max_connections: usize,
    /// Requests being handled at once on the API; beyond it 503 with `Retry-After`.
    pub max_inflight_requests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout_ms: 10_000,
            request_timeout_ms: 300_000,
            max_connections: 4096,
            max_inflight_requests: 512,
        }
    }
}

impl std::fmt::Debug for RaftConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftConfig")
            .field("id", &self.id)
            .field("data_dir", &self.data_dir)
            .field("secret", &redacted(&self.secret))
            .field("secret_file", &self.secret_file)
            .field("api_listen", &self.api_listen)
            .field("peer_listen", &self.peer_listen)
            .field("join", &self.join)
            .field("peers", &self.peers)
            .field("timeouts", &self.timeouts)
            .field("forward_timeout_ms", &self.forward_timeout_ms)
            .field("memory_budget_mib", &self.memory_budget_mib)
            .finish_non_exhaustive()
    }
}

fn default_forward_timeout() -> u64 {
    5_000
}

fn default_memory_budget() -> u64 {
    hekate_raft::db::DEFAULT_MEMORY_BUDGET_MIB
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub id: u64,
    /// `host:port` of the member's client API.
    pub api: String,
    /// `host:port` of the member's peer RPC listener (defaults to `api`).
    #[serde(default)]
    pub peer: String,
}

/// A configuration error: which key, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        message: message.into(),
    }
}

/// What the server runs with after validation: the file's values with defaults and
/// environment overrides applied. Its `Debug` output shows no key or secret.
#[derive(Clone)]
pub struct Settings {
    pub file: Config,
    pub api_listen: String,
    pub peer_listen: Option<String>,
    pub data_dir: PathBuf,
    pub secret: String,
    pub admin_key: String,
    pub user_key: String,
    pub iat_leeway_secs: u64,
    pub executor: String,
    /// HEKETI_MOCK_DEVICE_SIZE_GB (0: the mock's default, 500).
    pub mock_device_size_gb: u64,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("file", &self.file)
            .field("api_listen", &self.api_listen)
            .field("peer_listen", &self.peer_listen)
            .field("data_dir", &self.data_dir)
            .field("secret", &redacted(&self.secret))
            .field("admin_key", &redacted(&self.admin_key))
            .field("user_key", &redacted(&self.user_key))
            .field("iat_leeway_secs", &self.iat_leeway_secs)
            .field("executor", &self.executor)
            .finish_non_exhaustive()
    }
}

/// Reads, parses and validates a config file. `env` looks up environment variables (the
/// caller passes `std::env::var`; tests pass a map).
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err("config", format!("cannot read {}: {e}", path.display())))?;
    parse(&text, env)
}

pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
    let mut value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| err("config", format!("not valid JSON: {e}")))?;
    strip_comments(&mut value);
    let mut cfg: Config = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        err(if path == "." { "config" } else { &path }, inner)
    })?;
    apply_env(&mut cfg, env);
    validate(cfg, env)
}

/// Keys starting with `_` are comments (Heketi's shipped configs use `_port_comment` etc.).
fn strip_comments(v: &mut serde_json::Value) {
    if let serde_json::Value::Object(map) = v {
        map.retain(|k, _| !k.starts_with('_'));
        for (_, child) in map.iter_mut() {
            strip_comments(child);
        }
    } else if let serde_json::Value::Array(items) = v {
        items.iter_mut().for_each(strip_comments);
    }
}

fn apply_env(cfg: &mut Config, env: &dyn Fn(&str) -> Option<String>) {
    let set = |target: &mut String, name: &str| {
        if let Some(v) = env(name).filter(|v| !v.is_empty()) {
            *target = v;
        }
    };
    set(&mut cfg.port, "HEKETI_HTTP_PORT");
    set(&mut cfg.jwt.admin.key, "HEKETI_ADMIN_KEY");
    set(&mut cfg.jwt.user.key, "HEKETI_USER_KEY");
    set(&mut cfg.default_state, "HEKETI_DEFAULT_STATE");
    set(&mut cfg.glusterfs.executor, "HEKETI_EXECUTOR");
    set(&mut cfg.glusterfs.db, "HEKETI_DB_PATH");
    set(&mut cfg.glusterfs.loglevel, "HEKETI_GLUSTERAPP_LOGLEVEL");
    set(&mut cfg.glusterfs.zone_checking, "HEKETI_ZONE_CHECKING");
    set(&mut cfg.raft.secret, "HEKATE_RAFT_SECRET");
    set(&mut cfg.raft.data_dir, "HEKATE_DATA_DIR");
    if cfg.glusterfs.executor.is_empty() || cfg.glusterfs.executor == "ssh" {
        let ssh = cfg.glusterfs.sshexec.get_or_insert_with(Default::default);
        set(&mut ssh.keyfile, "HEKETI_SSH_KEYFILE");
        set(&mut ssh.user, "HEKETI_SSH_USER");
        set(&mut ssh.port, "HEKETI_SSH_PORT");
        set(&mut ssh.fstab, "HEKETI_FSTAB");
        set(&mut ssh.mountopts, "HEKETI_MOUNT_OPTS");
        set(&mut ssh.lvm_wrapper, "HEKETI_LVM_WRAPPER");
        set(&mut ssh.known_hosts, "SSH_KNOWN_HOSTS");
    }
    if let Some(n) = env("HEKETI_MAX_INFLIGHT_OPERATIONS").and_then(|v| v.parse().ok()) {
        cfg.glusterfs.max_inflight_operations = n;
    }
    if env("HEKETI_DISABLE_BACKGROUND_CLEANER").as_deref() == Some("true") {
        cfg.glusterfs.disable_background_cleaner = true;
    }
    if env("HEKETI_DISABLE_HEALTH_MONITOR").as_deref() == Some("true") {
        cfg.glusterfs.disable_monitor_gluster_nodes = true;
    }
    // Go's ParseBool, as Heketi reads it.
    match env("HEKETI_AUTO_CREATE_BLOCK_HOSTING_VOLUME").as_deref() {
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => {
            cfg.glusterfs.auto_create_block_hosting_volume = true
        }
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => {
            cfg.glusterfs.auto_create_block_hosting_volume = false
        }
        _ => {}
    }
    if let Some(n) = env("HEKETI_BLOCK_HOSTING_VOLUME_SIZE").and_then(|v| v.parse().ok()) {
        cfg.glusterfs.block_hosting_volume_size = n;
    }
    set(
        &mut cfg.glusterfs.block_hosting_volume_options,
        "HEKETI_BLOCK_HOSTING_VOLUME_OPTIONS",
    );
    if let Some(ssh) = cfg.glusterfs.sshexec.as_mut() {
        set(&mut ssh.block_prealloc, "HEKETI_BLOCK_VOLUME_DEFAULT_PREALLOC");
    }
}

fn validate(cfg: Config, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
    let port = check_port(&cfg.port)?;
    let r = &cfg.raft;
    let me = check_peers(r)?;
    check_tls(&cfg)?;
    check_limits(&r.limits)?;
    let secret = resolve_secret(r)?;
    if secret.len() < 16 {
        return Err(err("raft.secret", "must be at least 16 characters"));
    }
    check_store(r)?;
    let data_dir = match (r.data_dir.as_str(), cfg.glusterfs.db.as_str()) {
        ("", "") => {
            return Err(err(
                "raft.data_dir",
                "missing (or set glusterfs.db / HEKATE_DATA_DIR)",
            ))
        }
        ("", db) => PathBuf::from(db),
        (d, _) => PathBuf::from(d),
    };
    let (api_listen, peer_listen) = listen_addrs(r, me, port)?;
    let executor = check_executor(&cfg.glusterfs)?;
    check_level_names(&cfg)?;
    let iat_leeway_secs = match env("HEKETI_JWT_IAT_LEEWAY_SECONDS") {
        Some(v) => v
            .parse()
            .map_err(|_| err("HEKETI_JWT_IAT_LEEWAY_SECONDS", "not a number of seconds"))?,
        None => 120,
    };
    let mock_device_size_gb = env("HEKETI_MOCK_DEVICE_SIZE_GB")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(Settings {
        mock_device_size_gb,
        admin_key: cfg.jwt.admin.key.clone(),
        user_key: cfg.jwt.user.key.clone(),
        api_listen,
        peer_listen,
        data_dir,
        secret,
        iat_leeway_secs,
        executor,
        file: cfg,
    })
}

/// `port`: Heketi's string, a TCP port.
fn check_port(port: &str) -> Result<u16, ConfigError> {
    match port {
        "" => Err(err("port", "missing (Heketi's default configs use \"8080\")")),
        p => p
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| err("port", format!("{p:?} is not a TCP port"))),
    }
}

/// `raft.id` and `raft.peers`: positive, distinct ids and API addresses, valid addresses, and
/// this replica among them (returned).
fn check_peers(r: &RaftConfig) -> Result<&PeerConfig, ConfigError> {
    if r.id == 0 {
        return Err(err("raft.id", "must be a positive integer"));
    }
    if r.peers.is_empty() {
        return Err(err("raft.peers", "must list at least this replica"));
    }
    let mut ids = BTreeSet::new();
    let mut addrs = BTreeSet::new();
    for (i, p) in r.peers.iter().enumerate() {
        if p.id == 0 {
            return Err(err(&format!("raft.peers[{i}].id"), "must be a positive integer"));
        }
        if !ids.insert(p.id) {
            return Err(err(
                &format!("raft.peers[{i}].id"),
                format!("duplicate id {}", p.id),
            ));
        }
        check_addr(&format!("raft.peers[{i}].api"), &p.api)?;
        if !p.peer.is_empty() {
            check_addr(&format!("raft.peers[{i}].peer"), &p.peer)?;
        }
        if !addrs.insert(p.api.clone()) {
            return Err(err(
                &format!("raft.peers[{i}].api"),
                format!("duplicate address {}", p.api),
            ));
        }
    }
    r.peers.iter().find(|p| p.id == r.id).ok_or_else(|| {
        err(
            "raft.peers",
            format!("does not list this replica (raft.id = {})", r.id),
        )
    })
}

/// `raft.limits`: timeouts and bounds above zero.
fn check_limits(l: &Limits) -> Result<(), ConfigError> {
    if l.header_read_timeout_ms == 0 || l.request_timeout_ms == 0 {
        return Err(err("raft.limits", "timeouts must be > 0 ms"));
    }
    if l.max_connections == 0 || l.max_inflight_requests == 0 {
        return Err(err(
            "raft.limits",
            "max_connections and max_inflight_requests must be > 0",
        ));
    }
    Ok(())
}

/// `raft.memory_budget_mib` and `raft.timeouts` (as openraft checks them).
fn check_store(r: &RaftConfig) -> Result<(), ConfigError> {
    if r.memory_budget_mib < hekate_raft::db::MIN_MEMORY_BUDGET_MIB {
        return Err(err(
            "raft.memory_budget_mib",
            format!(
                "must be at least {} (MiB)",
                hekate_raft::db::MIN_MEMORY_BUDGET_MIB
            ),
        ));
    }
    r.timeouts
        .to_openraft("hekate")
        .map_err(|m| err("raft.timeouts", m))?;
    Ok(())
}

/// Where the API listens (`raft.api_listen`, else every address on `port`) and the peer
/// listener, when this replica's peer address is not its API address.
fn listen_addrs(r: &RaftConfig, me: &PeerConfig, port: u16) -> Result<(String, Option<String>), ConfigError> {
    let api_listen = if r.api_listen.is_empty() {
        format!("0.0.0.0:{port}")
    } else {
        r.api_listen.clone()
    };
    check_addr("raft.api_listen", &api_listen)?;
    let peer_addr = if me.peer.is_empty() { &me.api } else { &me.peer };
    let peer_listen = if peer_addr == &me.api {
        None
    } else if r.peer_listen.is_empty() {
        Some(format!(
            "0.0.0.0:{}",
            peer_addr.rsplit_once(':').map(|x| x.1).unwrap_or_default()
        ))
    } else {
        check_addr("raft.peer_listen", &r.peer_listen)?;
        Some(r.peer_listen.clone())
    };
    Ok((api_listen, peer_listen))
}

/// `glusterfs.executor` (Heketi's default: ssh) and, for ssh, its `sshexec` section.
fn check_executor(g: &GlusterfsConfig) -> Result<String, ConfigError> {
    let executor = match g.executor.as_str() {
        "" | "ssh" => "ssh".to_string(),
        "mock" => "mock".to_string(),
        other => {
            return Err(err(
                "glusterfs.executor",
                format!("{other:?} is not supported (use \"mock\" or \"ssh\")"),
            ))
        }
    };
    if executor == "ssh" {
        check_sshexec(g.sshexec.as_ref())?;
    }
    Ok(executor)
}

/// `glusterfs.loglevel` and `default_state`: one of Heketi's names.
fn check_level_names(cfg: &Config) -> Result<(), ConfigError> {
    match cfg.glusterfs.loglevel.as_str() {
        "" | "none" | "critical" | "error" | "warning" | "info" | "debug" => {}
        other => return Err(err("glusterfs.loglevel", format!("{other:?} is not a log level"))),
    }
    match cfg.default_state.as_str() {
        "" | "normal" | "read-only" | "local-client" => {}
        other => return Err(err("default_state", format!("unknown admin state name: {other}"))),
    }
    Ok(())
}

/// `enable_tls` needs `cert_file` and `key_file` (as Heketi); `raft.tls` needs its three files
/// and a peer address distinct from the API address for every member (peers speak mutual TLS
/// on their own listener, clients never reach it).
fn check_tls(cfg: &Config) -> Result<(), ConfigError> {
    if cfg.enable_tls {
        for (key, v) in [("cert_file", &cfg.cert_file), ("key_file", &cfg.key_file)] {
            if v.is_empty() {
                return Err(err(key, "missing: enable_tls needs cert_file and key_file"));
            }
            if !Path::new(v).is_file() {
                return Err(err(key, format!("cannot read {v}")));
            }
        }
    }
    let Some(t) = &cfg.raft.tls else {
        return Ok(());
    };
    for (key, v) in [
        ("raft.tls.ca_file", &t.ca_file),
        ("raft.tls.cert_file", &t.cert_file),
        ("raft.tls.key_file", &t.key_file),
    ] {
        if v.is_empty() {
            return Err(err(key, "missing"));
        }
        if !Path::new(v).is_file() {
            return Err(err(key, format!("cannot read {v}")));
        }
    }
    for (i, p) in cfg.raft.peers.iter().enumerate() {
        if p.peer.is_empty() || p.peer == p.api {
            return Err(err(
                &format!("raft.peers[{i}].peer"),
                "raft.tls needs a peer address distinct from the API address for every member",
            ));
        }
    }
    Ok(())
}

/// The SSH executor needs a private key and a known_hosts file (host keys are always checked).
fn check_sshexec(s: Option<&SshExecConfig>) -> Result<(), ConfigError> {
    let Some(s) = s else {
        return Err(err(
            "glusterfs.sshexec",
            "missing (the ssh executor needs keyfile and known_hosts)",
        ));
    };
    if s.keyfile.is_empty() {
        return Err(err(
            "glusterfs.sshexec.keyfile",
            "Missing ssh private key file in configuration",
        ));
    }
    if !Path::new(&s.keyfile).is_file() {
        return Err(err(
            "glusterfs.sshexec.keyfile",
            format!("Unable to read private key file {}", s.keyfile),
        ));
    }
    if s.known_hosts.is_empty() {
        return Err(err(
            "glusterfs.sshexec.known_hosts",
            "missing: host keys are verified against this file",
        ));
    }
    // Read now, not at the first connection: an unreadable file would otherwise refuse every
    // node at run time, long after start.
    if let Err(e) = std::fs::read(&s.known_hosts) {
        return Err(err(
            "glusterfs.sshexec.known_hosts",
            format!(
                "cannot read {}: {e} (host keys are verified against this file)",
                s.known_hosts
            ),
        ));
    }
    if !["", "require", "warn"].contains(&s.node_guard.as_str()) {
        return Err(err(
            "glusterfs.sshexec.node_guard",
            format!("{:?} is neither \"require\" nor \"warn\"", s.node_guard),
        ));
    }
    if !s.port.is_empty() && s.port.parse::<u16>().ok().filter(|p| *p > 0).is_none() {
        return Err(err(
            "glusterfs.sshexec.port",
            format!("{:?} is not a TCP port", s.port),
        ));
    }
    if !s.user.is_empty()
        && !s
            .user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        return Err(err(
            "glusterfs.sshexec.user",
            format!("{:?} is not a user name", s.user),
        ));
    }
    Ok(())
}

fn resolve_secret(r: &RaftConfig) -> Result<String, ConfigError> {
    if !r.secret.is_empty() {
        return Ok(r.secret.clone());
    }
    if !r.secret_file.is_empty() {
        return std::fs::read_to_string(&r.secret_file)
            .map(|s| s.trim().to_string())
            .map_err(|e| err("raft.secret_file", format!("cannot read {}: {e}", r.secret_file)));
    }
    Err(err(
        "raft.secret",
        "missing (set raft.secret, raft.secret_file or HEKATE_RAFT_SECRET)",
    ))
}

/// `host:port` with a non-empty host of hostname/IP characters and a non-zero port.
pub fn check_addr(key: &str, addr: &str) -> Result<(), ConfigError> {
    let bad = || err(key, format!("{addr:?} is not a host:port address"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_[]:".contains(c));
    if port == 0 || !host_ok {
        return Err(bad());
    }
    Ok(())
}

impl Settings {
    /// The configured members, as the replicated core wants them.
    pub fn members(&self) -> std::collections::BTreeMap<u64, hekate_raft::Member> {
        self.file
            .raft
            .peers
            .iter()
            .map(|p| {
                let peer = if p.peer.is_empty() {
                    p.api.clone()
                } else {
                    p.peer.clone()
                };
                (
                    p.id,
                    hekate_raft::Member {
                        api_addr: p.api.clone(),
                        peer_addr: peer,
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    const GOOD: &str = r#"{
        "_port_comment": "Heketi Server Port Number",
        "port": "8080",
        "use_auth": true,
        "jwt": {"_admin": "Admin has access to all APIs", "admin": {"key": "adminkey"}, "user": {"key": "userkey"}},
        "glusterfs": {"executor": "mock", "db": "/tmp/x", "loglevel": "info"},
        "raft": {"id": 1, "secret": "0123456789abcdef0123",
                 "peers": [{"id": 1, "api": "127.0.0.1:8080"}, {"id": 2, "api": "127.0.0.1:8081"}]}
    }"#;

    fn with(patch: &str, value: serde_json::Value) -> String {
        let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        *v.pointer_mut(patch).unwrap() = value;
        v.to_string()
    }

    #[test]
    fn tls_keys_are_checked_at_load() {
        let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        v["enable_tls"] = serde_json::json!(true);
        let e = parse(&v.to_string(), &no_env).unwrap_err();
        assert_eq!(e.key, "cert_file");
        v["cert_file"] = serde_json::json!("/nonexistent/cert.pem");
        v["key_file"] = serde_json::json!("/nonexistent/key.pem");
        let e = parse(&v.to_string(), &no_env).unwrap_err();
        assert!(e.key == "cert_file" && e.message.contains("cannot read"), "{e}");

        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x.pem");
        std::fs::write(&f, "x").unwrap();
        let f = f.display().to_string();
        let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        v["raft"]["tls"] = serde_json::json!({"ca_file": f, "cert_file": f, "key_file": ""});
        let e = parse(&v.to_string(), &no_env).unwrap_err();
        assert_eq!(e.key, "raft.tls.key_file");
        v["raft"]["tls"]["key_file"] = serde_json::json!(f);
        // Peers share the API address: refused, mutual TLS needs its own listener.
        let e = parse(&v.to_string(), &no_env).unwrap_err();
        assert_eq!(e.key, "raft.peers[0].peer");
        v["raft"]["peers"][0]["peer"] = serde_json::json!("127.0.0.1:9080");
        v["raft"]["peers"][1]["peer"] = serde_json::json!("127.0.0.1:9081");
        let s = parse(&v.to_string(), &no_env).unwrap();
        assert_eq!(s.peer_listen.as_deref(), Some("0.0.0.0:9080"));
        v["raft"]["limits"] = serde_json::json!({"max_connections": 0});
        assert_eq!(parse(&v.to_string(), &no_env).unwrap_err().key, "raft.limits");
    }

    #[test]
    fn heketi_style_config_with_comments_loads() {
        let s = parse(GOOD, &no_env).unwrap();
        assert_eq!(s.api_listen, "0.0.0.0:8080");
        assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(s.members().len(), 2);
        assert_eq!(s.peer_listen, None);
    }

    #[test]
    fn unknown_key_is_named() {
        let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        v["glusterfs"]["exeuctor"] = "ssh".into();
        let e = parse(&v.to_string(), &no_env).unwrap_err();
        assert_eq!(e.key, "glusterfs.exeuctor");
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn type_mismatch_is_named() {
        let e = parse(&with("/raft/id", "one".into()), &no_env).unwrap_err();
        assert_eq!(e.key, "raft.id", "{e}");
    }

    #[test]
    fn missing_secret_is_named() {
        let e = parse(&with("/raft/secret", "".into()), &no_env).unwrap_err();
        assert_eq!(e.key, "raft.secret");
        let ok = parse(&with("/raft/secret", "".into()), &|k| {
            (k == "HEKATE_RAFT_SECRET").then(|| "from-the-environment-1234".to_string())
        });
        assert_eq!(ok.unwrap().secret, "from-the-environment-1234");
    }

    #[test]
    fn duplicate_ids_and_bad_addresses_are_named() {
        let dup = serde_json::json!([{"id": 1, "api": "127.0.0.1:8080"}, {"id": 1, "api": "127.0.0.1:8081"}]);
        assert_eq!(
            parse(&with("/raft/peers", dup), &no_env).unwrap_err().key,
            "raft.peers[1].id"
        );
        let bad = serde_json::json!([{"id": 1, "api": "127.0.0.1:8080"}, {"id": 2, "api": "nohost"}]);
        assert_eq!(
            parse(&with("/raft/peers", bad), &no_env).unwrap_err().key,
            "raft.peers[1].api"
        );
        let bad_port = serde_json::json!([{"id": 1, "api": "127.0.0.1:99999"}]);
        assert_eq!(
            parse(&with("/raft/peers", bad_port), &no_env).unwrap_err().key,
            "raft.peers[0].api"
        );
        let shell = serde_json::json!([{"id": 1, "api": "a;rm -rf /:80"}]);
        assert_eq!(
            parse(&with("/raft/peers", shell), &no_env).unwrap_err().key,
            "raft.peers[0].api"
        );
    }

    #[test]
    fn memory_budget_defaults_and_is_checked() {
        let s = parse(GOOD, &no_env).unwrap();
        assert_eq!(
            s.file.raft.memory_budget_mib,
            hekate_raft::db::DEFAULT_MEMORY_BUDGET_MIB
        );
        let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        v["raft"]["memory_budget_mib"] = 4.into();
        let e = parse(&v.to_string(), &no_env).unwrap_err();
        assert_eq!(e.key, "raft.memory_budget_mib", "{e}");
        v["raft"]["memory_budget_mib"] = 256.into();
        assert_eq!(
            parse(&v.to_string(), &no_env)
                .unwrap()
                .file
                .raft
                .memory_budget_mib,
            256
        );
    }

    #[test]
    fn self_must_be_a_peer() {
        let e = parse(&with("/raft/id", 7.into()), &no_env).unwrap_err();
        assert_eq!(e.key, "raft.peers");
    }

    #[test]
    fn env_overrides_apply() {
        let s = parse(GOOD, &|k| match k {
            "HEKETI_HTTP_PORT" => Some("9090".into()),
            "HEKETI_ADMIN_KEY" => Some("envadmin".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.api_listen, "0.0.0.0:9090");
        assert_eq!(s.admin_key, "envadmin");
    }

    #[test]
    fn ssh_executor_needs_a_key_and_known_hosts() {
        let e = parse(&with("/glusterfs/executor", "ssh".into()), &no_env).unwrap_err();
        assert_eq!(e.key, "glusterfs.sshexec.keyfile", "{e}");
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id");
        std::fs::write(&key, "k").unwrap();
        let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        v["glusterfs"]["executor"] = "ssh".into();
        v["glusterfs"]["sshexec"] = serde_json::json!({"keyfile": key, "user": "root"});
        assert_eq!(
            parse(&v.to_string(), &no_env).unwrap_err().key,
            "glusterfs.sshexec.known_hosts"
        );
        let missing = dir.path().join("no_known_hosts");
        v["glusterfs"]["sshexec"]["known_hosts"] = missing.display().to_string().into();
        let e = parse(&v.to_string(), &no_env).unwrap_err();
        assert_eq!(e.key, "glusterfs.sshexec.known_hosts", "{e}");
        assert!(e.message.contains("cannot read"), "{e}");
        // A directory is not a readable known_hosts file either.
        v["glusterfs"]["sshexec"]["known_hosts"] = dir.path().display().to_string().into();
        assert!(parse(&v.to_string(), &no_env).is_err());
        let kh = dir.path().join("known_hosts");
        std::fs::write(&kh, "").unwrap();
        v["glusterfs"]["sshexec"]["known_hosts"] = kh.display().to_string().into();
        assert!(parse(&v.to_string(), &no_env).is_ok());
        v["glusterfs"]["sshexec"]["user"] = "root; rm -rf /".into();
        assert_eq!(
            parse(&v.to_string(), &no_env).unwrap_err().key,
            "glusterfs.sshexec.user"
        );
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        v["jwt"] = serde_json::json!({"admin": {"key": "ADMINSECRET1"}, "user": {"key": "USERSECRET22"}});
        v["raft"]["secret"] = "RAFTSECRET-0123456789".into();
        let s = parse(&v.to_string(), &no_env).unwrap();
        let shown = format!("{s:?} {s:#?} {:?}", s.file);
        for secret in ["ADMINSECRET1", "USERSECRET22", "RAFTSECRET-0123456789"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn bad_executor_and_timeouts_are_named() {
        assert_eq!(
            parse(&with("/glusterfs/executor", "kube".into()), &no_env)
                .unwrap_err()
                .key,
            "glusterfs.executor"
        );
        let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        v["raft"]["timeouts"] = serde_json::json!({"heartbeat_ms": 500, "election_timeout_min_ms": 400});
        assert_eq!(parse(&v.to_string(), &no_env).unwrap_err().key, "raft.timeouts");
    }
}
