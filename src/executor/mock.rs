//! The mock executor: a model of Gluster nodes (PVs, VGs, thin pools and LVs, mounts, peers,
//! volumes) that enforces the rules real nodes do (no space, missing VG, device in use, brick
//! missing), with per-verb latency and failure injection by verb and host.
//!
//! The model lives in memory, or in a JSON file shared by every replica of a local cluster
//! (`state_file`, locked with flock for each verb), so that, as with real nodes, a new leader
//! sees what the old one did. Never the only executor tested: it serves dev clusters and the
//! control-plane tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{
    BrickSpec, DeviceInfo, ExecError, ExecResult, Executor, GlusterVolume, HealBrick, NodeInventory,
    VgInventory, VolumeOwner, VolumeSpec, OWNER_OPTION,
};

/// `glusterfs.mockexec` in heketi.json.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MockConfig {
    /// Size of every device, GiB (env HEKETI_MOCK_DEVICE_SIZE_GB; default 500).
    pub device_size_gb: u64,
    /// Share the node model between processes through this file.
    pub state_file: String,
    /// Milliseconds each verb takes (`brick_create`, `volume_create`, ... or `*`).
    pub latency_ms: BTreeMap<String, u64>,
    /// Injected failures.
    pub fail: Vec<Injection>,
    /// The command log keeps about this many records (0: 100,000): the newest in memory, or
    /// the current file plus one rotated predecessor (`<state_file>.cmdlog.1`).
    pub command_log_max: usize,
}

const DEFAULT_COMMAND_LOG_MAX: usize = 100_000;
/// Bytes per record the file rotation assumes (`<ns> <term> <verb> <host>` is ~45).
const CMDLOG_RECORD_BYTES: u64 = 64;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Injection {
    /// Verb name, or `*`.
    pub verb: String,
    /// Host, or empty for every host.
    pub host: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MockVg {
    pub device: String,
    pub size: u64,
    pub extent: u64,
    /// thin pool name -> pool + metadata KiB
    pub pools: BTreeMap<String, u64>,
    /// lv name -> thin pool
    pub lvs: BTreeMap<String, String>,
}

impl MockVg {
    fn free(&self) -> u64 {
        self.size - self.pools.values().sum::<u64>()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MockHost {
    pub pvs: BTreeSet<String>,
    pub vgs: BTreeMap<String, MockVg>,
    pub mounts: BTreeSet<String>,
    pub fstab: BTreeSet<String>,
    pub peers: BTreeSet<String>,
    pub glusterd_down: bool,
    /// The node-side guard's record: the highest term seen per cluster identity.
    #[serde(default)]
    pub guard: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MockVolume {
    /// Gluster's own volume id (clone LV names derive from it), not Hekate's mark.
    pub id: String,
    pub bricks: Vec<String>,
    pub started: bool,
    /// `volume set` options; `user.heketi.id` marks the volume as Hekate's. A volume
    /// planted without it models one made outside Hekate.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl MockVolume {
    fn owner(&self) -> VolumeOwner {
        VolumeOwner::from_mark(self.options.get(OWNER_OPTION).map(String::as_str))
    }
}

/// The whole simulated world.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct MockState {
    pub hosts: BTreeMap<String, MockHost>,
    pub volumes: BTreeMap<String, MockVolume>,
    /// Armed faults (not part of the nodes; kept here so every process sees them).
    pub faults: Vec<Fault>,
}

pub struct MockExecutor {
    cfg: MockConfig,
    memory: Mutex<MockState>,
    log: Mutex<std::collections::VecDeque<CmdRecord>>,
}

/// One verb as the (mock) node saw it start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdRecord {
    pub at_ns: u128,
    pub term: u64,
    /// The node's guard refused it: not executed.
    pub refused: bool,
    pub verb: String,
    pub host: String,
    /// The volume, or `vg/lv`, the verb names (empty for node-wide verbs).
    pub object: String,
}

/// A fault armed at run time (tests, drills): fails matching verbs after letting `skip` of
/// them through, `times` times (0: every time). `after`: the verb takes effect on the node
/// and only its answer is lost, as when a connection drops after the command ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Fault {
    /// Verb name, or `*`.
    pub verb: String,
    /// Host, or empty for every host.
    pub host: String,
    pub skip: u32,
    pub times: u32,
    pub after: bool,
    /// The node's error; empty: the host is unreachable.
    pub message: String,
    /// Matching verbs seen so far, and how many were failed.
    pub seen: u32,
    pub fired: u32,
}

impl Fault {
    fn fire(&mut self, verb: &str, host: &str) -> Option<(ExecError, bool)> {
        if !(self.verb == verb || self.verb == "*") || !(self.host.is_empty() || self.host == host) {
            return None;
        }
        self.seen += 1;
        if self.seen <= self.skip || (self.times > 0 && self.fired >= self.times) {
            return None;
        }
        self.fired += 1;
        Some((injected(verb, host, &self.message), self.after))
    }
}

fn injected(verb: &str, host: &str, message: &str) -> ExecError {
    if message.is_empty() {
        ExecError::Unreachable {
            host: host.into(),
            msg: format!("injected failure of {verb}"),
        }
    } else {
        fail(message)
    }
}

fn fail(msg: impl Into<String>) -> ExecError {
    ExecError::Failed(msg.into())
}

impl MockExecutor {
    pub fn new(mut cfg: MockConfig) -> MockExecutor {
        if cfg.device_size_gb == 0 {
            cfg.device_size_gb = 500;
        }
        if cfg.command_log_max == 0 {
            cfg.command_log_max = DEFAULT_COMMAND_LOG_MAX;
        }
        MockExecutor {
            cfg,
            memory: Mutex::new(MockState::default()),
            log: Mutex::new(Default::default()),
        }
    }

    /// A copy of the model (tests and drills inspect it for orphans).
    pub fn snapshot(&self) -> ExecResult<MockState> {
        self.with_state(|s| Ok(s.clone()))
    }

    /// Reads a shared model file (for tests that run the replicas as processes).
    pub fn read_state_file(path: &str) -> ExecResult<MockState> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.trim().is_empty() {
            return Ok(MockState::default());
        }
        serde_json::from_str(&text).map_err(|e| fail(format!("mock state {path}: {e}")))
    }

    /// One verb: recorded in the command log, delayed by its latency, failed by a static
    /// injection or a runtime [`Fault`], then applied to the model under the lock.
    async fn verb<T>(
        &self,
        verb: &str,
        host: &str,
        f: impl FnOnce(&mut MockState) -> ExecResult<T>,
    ) -> ExecResult<T> {
        self.verb_on(verb, host, "", f).await
    }

    /// [`Self::verb`] for a verb that names a volume or LV (`object`, in the command log).
    async fn verb_on<T>(
        &self,
        verb: &str,
        host: &str,
        object: &str,
        f: impl FnOnce(&mut MockState) -> ExecResult<T>,
    ) -> ExecResult<T> {
        let token = super::current_fence();
        let ms = self
            .cfg
            .latency_ms
            .get(verb)
            .or_else(|| self.cfg.latency_ms.get("*"))
            .copied()
            .unwrap_or(0);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let (out, after) = self.with_state(|s| {
            // The node's guard first, as on a real node: checked, recorded and the term
            // raised under the node's lock, before anything else happens there.
            let verdict = guard(s, verb, host, token.as_ref());
            self.record(verb, host, object, token.as_ref(), verdict.is_err());
            if let Err(e) = verdict {
                return Ok((Err(e), None));
            }
            for inj in &self.cfg.fail {
                if (inj.verb == verb || inj.verb == "*") && (inj.host.is_empty() || inj.host == host) {
                    return Ok((Err(injected(verb, host, &inj.message)), None));
                }
            }
            let fired = s.faults.iter_mut().find_map(|fault| fault.fire(verb, host));
            match fired {
                Some((err, false)) => Ok((Err(err), None)),
                Some((err, true)) => Ok((f(s), Some(err))),
                None => Ok((f(s), None)),
            }
        })?;
        match after {
            // The node did the work; its answer was lost.
            Some(err) if out.is_ok() => Err(err),
            _ => out,
        }
    }

    /// Appends `<unix ns> <term> <ok|refused> <verb> <host> [object]` to the command log
    /// (the node-side record a fencing drill reads): a file beside the shared state, or memory.
    fn record(&self, verb: &str, host: &str, object: &str, token: Option<&super::FenceToken>, refused: bool) {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let rec = CmdRecord {
            at_ns: at,
            term: token.map(|t| t.term).unwrap_or(0),
            refused,
            verb: verb.to_string(),
            host: host.to_string(),
            object: object.to_string(),
        };
        if self.cfg.state_file.is_empty() {
            let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            if log.len() >= self.cfg.command_log_max {
                log.pop_front();
            }
            log.push_back(rec);
            return;
        }
        use std::io::Write;
        let line = format!(
            "{} {} {} {} {} {}\n",
            rec.at_ns,
            rec.term,
            if rec.refused { "refused" } else { "ok" },
            rec.verb,
            rec.host,
            rec.object
        );
        let path = format!("{}.cmdlog", self.cfg.state_file);
        // One O_APPEND write per record: concurrent writers never interleave within a line.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| {
                f.write_all(line.as_bytes())?;
                f.metadata()
            });
        match written {
            // Past the bound, the file becomes `.cmdlog.1` (replacing the previous one) and a
            // new one starts: the record spans between one and two files' worth.
            Ok(m) if m.len() > self.cfg.command_log_max as u64 * CMDLOG_RECORD_BYTES / 2 => {
                if let Err(e) = std::fs::rename(&path, format!("{path}.1")) {
                    tracing::warn!("mock command log {path}: rotation: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("mock command log {path}: {e}"),
        }
    }

    /// The command log, oldest first.
    pub fn command_log(&self) -> Vec<CmdRecord> {
        if self.cfg.state_file.is_empty() {
            return self
                .log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned()
                .collect();
        }
        Self::read_command_log(&self.cfg.state_file)
    }

    /// Reads the command log beside a shared state file.
    pub fn read_command_log(state_file: &str) -> Vec<CmdRecord> {
        let rotated = std::fs::read_to_string(format!("{state_file}.cmdlog.1")).unwrap_or_default();
        let current = std::fs::read_to_string(format!("{state_file}.cmdlog")).unwrap_or_default();
        let text = rotated + &current;
        text.lines()
            .filter_map(|l| {
                let mut it = l.splitn(6, ' ');
                Some(CmdRecord {
                    at_ns: it.next()?.parse().ok()?,
                    term: it.next()?.parse().ok()?,
                    refused: it.next()? == "refused",
                    verb: it.next()?.to_string(),
                    host: it.next()?.to_string(),
                    object: it.next().unwrap_or_default().trim().to_string(),
                })
            })
            .collect()
    }

    /// Arms a fault (shared with every process using the same state file).
    pub fn add_fault(&self, fault: Fault) -> ExecResult<()> {
        self.with_state(|s| {
            s.faults.push(fault);
            Ok(())
        })
    }

    /// Puts things on the nodes that Hekate did not make (tests of ownership): whatever `f`
    /// adds to the model, as an operator or another tool would.
    pub fn plant(&self, f: impl FnOnce(&mut MockState)) -> ExecResult<()> {
        self.with_state(|s| {
            f(s);
            Ok(())
        })
    }

    /// Stops or starts a (mock) node's glusterd: its bricks go offline, its verbs fail.
    pub fn set_glusterd_down(&self, host: &str, down: bool) -> ExecResult<()> {
        self.with_state(|s| {
            host_mut(s, host).glusterd_down = down;
            Ok(())
        })
    }

    /// Disarms every fault; returns how many had fired at least once.
    pub fn clear_faults(&self) -> ExecResult<usize> {
        self.with_state(|s| {
            let fired = s.faults.iter().filter(|f| f.fired > 0).count();
            s.faults.clear();
            Ok(fired)
        })
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut MockState) -> ExecResult<T>) -> ExecResult<T> {
        if self.cfg.state_file.is_empty() {
            let mut g = self.memory.lock().unwrap_or_else(|e| e.into_inner());
            return f(&mut g);
        }
        // The lock is a separate file; the state is replaced by rename, so a process killed
        // in the middle of a write leaves the previous state, never a truncated one (as a
        // real node's LVM metadata would survive its manager's death).
        let path = PathBuf::from(&self.cfg.state_file);
        let lock_path = PathBuf::from(format!("{}.lock", self.cfg.state_file));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| fail(format!("mock state {}: {e}", lock_path.display())))?;
        // Another process may hold the lock for long (one paused with SIGSTOP by a drill):
        // wait for it off the async worker threads, or the whole replica (Raft included)
        // stalls behind it. Found by the drill: a paused ex-leader froze the new leader.
        let lock = || {
            nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
                .map_err(|(_, e)| fail(format!("mock state lock: {e}")))
        };
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let _lock = if multi_thread {
            tokio::task::block_in_place(lock)?
        } else {
            lock()?
        };
        let mut state = Self::read_state_file(&self.cfg.state_file)?;
        let before = state.clone();
        let out = f(&mut state);
        if state != before {
            let body = serde_json::to_vec(&state).map_err(|e| fail(e.to_string()))?;
            let tmp = PathBuf::from(format!("{}.{}.tmp", self.cfg.state_file, std::process::id()));
            // No fsync: the file stands in for remote nodes, and a killed process's writes
            // survive in the page cache.
            std::fs::write(&tmp, body).map_err(|e| fail(e.to_string()))?;
            std::fs::rename(&tmp, &path).map_err(|e| fail(e.to_string()))?;
        }
        out
    }
}

tokio::task_local! {
    /// Set by [`MockExecutor::as_operator`]: verbs run as an operator logged in on his own
    /// account would run them, past Hekate's guard (tests that plant orphans and drift).
    static OPERATOR: ();
}

impl MockExecutor {
    /// Runs `f`'s verbs as a node's operator (not Hekate): the guard does not apply, and
    /// the command record shows them with term 0.
    pub async fn as_operator<F: std::future::Future>(f: F) -> F::Output {
        OPERATOR.scope((), f).await
    }
}

/// The node-side guard (the mock's model of `deploy/node/hekate-guard`): a verb without a
/// fencing token, or with a term older than the highest this host has seen for its cluster,
/// is refused and changes nothing; a newer term is recorded.
fn guard(s: &mut MockState, verb: &str, host: &str, token: Option<&super::FenceToken>) -> ExecResult<()> {
    let Some(t) = token else {
        if OPERATOR.try_with(|_| ()).is_ok() {
            return Ok(());
        }
        return Err(super::unfenced(verb, host));
    };
    let highest = host_mut(s, host).guard.entry(t.cluster.clone()).or_insert(0);
    if t.term < *highest {
        return Err(ExecError::Fenced(format!(
            "{}term {} of cluster {} is older than term {} seen on {host}: {verb} not executed",
            super::GUARD_REFUSED_PREFIX,
            t.term,
            t.cluster,
            *highest
        )));
    }
    *highest = t.term;
    Ok(())
}

fn host_mut<'a>(s: &'a mut MockState, host: &str) -> &'a mut MockHost {
    s.hosts.entry(host.to_string()).or_default()
}

#[async_trait]
impl Executor for MockExecutor {
    async fn claim(&self, host: &str) -> ExecResult<()> {
        self.verb("claim", host, |_| Ok(())).await
    }

    async fn glusterd_check(&self, host: &str) -> ExecResult<()> {
        self.verb("glusterd_check", host, |s| {
            if host_mut(s, host).glusterd_down {
                return Err(fail(format!("glusterd is not running on {host}")));
            }
            Ok(())
        })
        .await
    }

    async fn peer_probe(&self, host: &str, new_peer: &str) -> ExecResult<()> {
        self.verb("peer_probe", host, |s| {
            host_mut(s, host).peers.insert(new_peer.to_string());
            Ok(())
        })
        .await
    }

    async fn peer_detach(&self, host: &str, peer: &str) -> ExecResult<()> {
        self.verb("peer_detach", host, |s| {
            host_mut(s, host).peers.remove(peer);
            Ok(())
        })
        .await
    }

    async fn device_setup(
        &self,
        host: &str,
        device: &str,
        vg: &str,
        _destroydata: bool,
    ) -> ExecResult<DeviceInfo> {
        let size = self.cfg.device_size_gb * 1024 * 1024;
        self.verb("device_setup", host, |s| {
            let h = host_mut(s, host);
            if let Some(existing) = h.vgs.get(vg) {
                if existing.device == device {
                    return Ok(info(existing)); // idempotent re-run
                }
            }
            if h.pvs.contains(device) {
                return Err(fail(format!(
                    "Initializing device {device} failed (already initialized or contains data?): \
                     Can't initialize physical volume \"{device}\" of volume group already in use"
                )));
            }
            h.pvs.insert(device.to_string());
            let v = MockVg {
                device: device.into(),
                size,
                extent: 4096,
                ..Default::default()
            };
            let out = info(&v);
            h.vgs.insert(vg.to_string(), v);
            Ok(out)
        })
        .await
    }

    async fn device_teardown(&self, host: &str, device: &str, vg: &str) -> ExecResult<()> {
        self.verb("device_teardown", host, |s| {
            let h = host_mut(s, host);
            if let Some(v) = h.vgs.get(vg) {
                if !v.lvs.is_empty() || !v.pools.is_empty() {
                    return Err(fail(format!(
                        "Unable to delete device {device}: volume group {vg} still has logical volumes"
                    )));
                }
            }
            h.vgs.remove(vg);
            h.pvs.remove(device);
            Ok(())
        })
        .await
    }

    async fn device_info(&self, host: &str, vg: &str) -> ExecResult<DeviceInfo> {
        self.verb("device_info", host, |s| {
            host_mut(s, host)
                .vgs
                .get(vg)
                .map(info)
                .ok_or_else(|| fail(format!("Volume group \"{vg}\" not found")))
        })
        .await
    }

    async fn brick_create(&self, host: &str, b: &BrickSpec) -> ExecResult<()> {
        b.check_ours()?;
        let object = format!("{}/{}", b.vg, b.lv());
        self.verb_on("brick_create", host, &object, |s| {
            let h = host_mut(s, host);
            let vg = h
                .vgs
                .get_mut(&b.vg)
                .ok_or_else(|| fail(format!("Volume group \"{}\" not found", b.vg)))?;
            if !vg.lvs.contains_key(&b.lv()) {
                let need = b.tp_size + b.meta_size;
                if !vg.pools.contains_key(&b.tp()) && vg.free() < need {
                    return Err(fail(format!(
                        "Insufficient free space: {} extents needed, but only {} available",
                        need / vg.extent.max(1),
                        vg.free() / vg.extent.max(1)
                    )));
                }
                vg.pools.insert(b.tp(), need);
                vg.lvs.insert(b.lv(), b.tp());
            }
            h.mounts.insert(b.mount_dir());
            h.fstab.insert(b.mount_dir());
            Ok(())
        })
        .await
    }

    async fn brick_destroy(&self, host: &str, b: &BrickSpec) -> ExecResult<bool> {
        b.check_ours()?;
        let object = format!("{}/{}", b.vg, b.lv());
        self.verb_on("brick_destroy", host, &object, |s| {
            let in_use = s
                .volumes
                .iter()
                .find(|(_, v)| v.bricks.iter().any(|p| p.ends_with(&format!(":{}", b.path()))));
            if let Some((name, _)) = in_use {
                return Err(fail(format!("brick {} is in use by volume {name}", b.path())));
            }
            let h = host_mut(s, host);
            h.mounts.remove(&b.mount_dir());
            h.fstab.remove(&b.mount_dir());
            let mut pool_gone = true;
            if let Some(vg) = h.vgs.get_mut(&b.vg) {
                vg.lvs.remove(&b.lv());
                // A thin pool shared with a clone's LV stays until its last LV goes.
                if vg.lvs.values().any(|p| *p == b.tp()) {
                    pool_gone = false;
                } else {
                    vg.pools.remove(&b.tp());
                }
            }
            Ok(pool_gone)
        })
        .await
    }

    async fn volume_create(&self, host: &str, v: &VolumeSpec) -> ExecResult<()> {
        self.verb_on("volume_create", host, &v.name, |s| {
            if let Some(existing) = s.volumes.get(&v.name) {
                existing.owner().check(&v.name, &v.id)?;
                if existing.bricks == v.bricks {
                    return Ok(()); // idempotent re-run
                }
                return Err(fail(format!(
                    "volume create: {}: failed: Volume {} already exists",
                    v.name, v.name
                )));
            }
            check_bricks_mounted(s, &v.bricks)?;
            s.volumes.insert(
                v.name.clone(),
                MockVolume {
                    id: v.id.clone(),
                    bricks: v.bricks.clone(),
                    started: true,
                    options: v
                        .options
                        .iter()
                        .filter_map(|o| {
                            let (k, val) = o.split_once(char::is_whitespace)?;
                            Some((k.to_string(), val.trim().to_string()))
                        })
                        .collect(),
                },
            );
            Ok(())
        })
        .await
    }

    /// As the SSH executor: a read (`volume_expand`: owner, bricks mounted, which are
    /// missing), then one `add_brick` verb per `add-brick` command, split as Gluster's CLI
    /// is driven (`commands::add_brick_chunks`), so a fault can stop the sequence half-way.
    async fn volume_expand(&self, host: &str, v: &VolumeSpec, new_bricks: &[String]) -> ExecResult<()> {
        let missing = self
            .verb_on("volume_expand", host, &v.name, |s| {
                check_bricks_mounted(s, new_bricks)?;
                let vol = s
                    .volumes
                    .get(&v.name)
                    .ok_or_else(|| fail(format!("Volume {} does not exist", v.name)))?;
                vol.owner().check(&v.name, &v.id)?;
                Ok(new_bricks
                    .iter()
                    .filter(|b| !vol.bricks.contains(b))
                    .cloned()
                    .collect::<Vec<_>>())
            })
            .await?;
        for chunk in super::commands::add_brick_chunks(v, &missing) {
            self.verb_on("add_brick", host, &v.name, |s| {
                let vol = s
                    .volumes
                    .get_mut(&v.name)
                    .ok_or_else(|| fail(format!("Volume {} does not exist", v.name)))?;
                for b in chunk {
                    if !vol.bricks.contains(b) {
                        vol.bricks.push(b.clone());
                    }
                }
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    async fn volume_destroy(&self, host: &str, name: &str, id: &str) -> ExecResult<()> {
        // The real executor reads `volume info` first: a read, then the destroy.
        self.volume_owner(host, name).await?.check(name, id)?;
        self.verb_on("volume_destroy", host, name, |s| {
            if let Some(v) = s.volumes.get(name) {
                v.owner().check(name, id)?;
            }
            s.volumes.remove(name);
            Ok(())
        })
        .await
    }

    async fn volume_owner(&self, host: &str, name: &str) -> ExecResult<VolumeOwner> {
        self.verb_on("volume_info", host, name, |s| {
            Ok(s.volumes.get(name).map_or(VolumeOwner::Absent, MockVolume::owner))
        })
        .await
    }

    async fn replace_brick(&self, host: &str, volume: &str, old: &str, new: &str) -> ExecResult<()> {
        self.verb_on("replace_brick", host, volume, |s| {
            check_bricks_mounted(s, &[new.to_string()])?;
            let v = s
                .volumes
                .get_mut(volume)
                .ok_or_else(|| fail(format!("Volume {volume} does not exist")))?;
            if v.bricks.iter().any(|b| b == new) {
                return Ok(()); // already replaced
            }
            let slot = v.bricks.iter_mut().find(|b| *b == old).ok_or_else(|| {
                fail(format!(
                    "volume replace-brick: failed: brick: {old} does not exist in volume: {volume}"
                ))
            })?;
            *slot = new.to_string();
            Ok(())
        })
        .await
    }

    async fn volume_clone(
        &self,
        host: &str,
        volume: &str,
        clone: &str,
        clone_id: &str,
    ) -> ExecResult<Vec<(String, String)>> {
        self.verb_on("volume_clone", host, clone, |s| {
            if let Some(existing) = s.volumes.get(clone) {
                existing.owner().check(clone, clone_id)?;
                // Idempotent: report the clone as it is.
                let id = existing.id.clone();
                return Ok(existing
                    .bricks
                    .iter()
                    .enumerate()
                    .map(|(i, b)| (b.clone(), format!("{id}_{i}")))
                    .collect());
            }
            let src = s
                .volumes
                .get(volume)
                .cloned()
                .ok_or_else(|| fail(format!("Volume {volume} does not exist")))?;
            let uuid = hex::encode(rand::random::<[u8; 16]>());
            let mut bricks = Vec::new();
            for (i, b) in src.bricks.iter().enumerate() {
                let (storage, path) = b.split_once(':').ok_or_else(|| fail(format!("bad brick {b}")))?;
                let dir = path.strip_suffix("/brick").unwrap_or(path).to_string();
                let lv_of_origin = dir.rsplit('/').next().unwrap_or_default().to_string();
                let host = s
                    .hosts
                    .values_mut()
                    .find(|h| h.mounts.contains(&dir))
                    .ok_or_else(|| fail(format!("brick {b} is not mounted")))?;
                let vg = host
                    .vgs
                    .values_mut()
                    .find(|vg| vg.lvs.contains_key(&lv_of_origin))
                    .ok_or_else(|| fail(format!("no LV for {b}")))?;
                let pool = vg.lvs[&lv_of_origin].clone();
                let lv = format!("{uuid}_{i}");
                vg.lvs.insert(lv.clone(), pool);
                let mount = format!("/run/gluster/snaps/{uuid}/brick{}", i + 1);
                host.mounts.insert(mount.clone());
                bricks.push((format!("{storage}:{mount}/brick"), lv));
            }
            // Gluster copies the origin's options; Hekate marks the clone as its own.
            let mut options = src.options.clone();
            options.insert(OWNER_OPTION.to_string(), clone_id.to_string());
            s.volumes.insert(
                clone.to_string(),
                MockVolume {
                    id: uuid,
                    bricks: bricks.iter().map(|b| b.0.clone()).collect(),
                    started: true,
                    options,
                },
            );
            Ok(bricks)
        })
        .await
    }

    async fn volume_bricks(&self, host: &str, volume: &str) -> ExecResult<Vec<String>> {
        self.verb("volume_info", host, |s| {
            s.volumes
                .get(volume)
                .map(|v| v.bricks.clone())
                .ok_or_else(|| fail(format!("Volume {volume} does not exist")))
        })
        .await
    }

    async fn heal_info(&self, host: &str, volume: &str) -> ExecResult<Vec<HealBrick>> {
        self.verb("heal_info", host, |s| {
            let v = s
                .volumes
                .get(volume)
                .ok_or_else(|| fail(format!("Volume {volume} does not exist")))?;
            // No heal state in the model: a brick is connected when its node's glusterd is.
            Ok(v.bricks
                .iter()
                .map(|b| {
                    let dir = b.split_once(':').map(|x| x.1).unwrap_or(b);
                    let dir = dir.strip_suffix("/brick").unwrap_or(dir);
                    let connected = s
                        .hosts
                        .values()
                        .any(|h| h.mounts.contains(dir) && !h.glusterd_down);
                    HealBrick {
                        name: b.clone(),
                        connected,
                        entries: if connected { "0" } else { "-" }.into(),
                    }
                })
                .collect())
        })
        .await
    }

    async fn inventory(&self, host: &str) -> ExecResult<NodeInventory> {
        self.verb("inventory", host, |s| {
            let h = host_mut(s, host);
            if h.glusterd_down {
                return Err(fail(format!("glusterd is not running on {host}")));
            }
            let vgs = h
                .vgs
                .iter()
                .map(|(name, vg)| {
                    let mut lvs: BTreeMap<String, String> =
                        vg.pools.keys().map(|p| (p.clone(), String::new())).collect();
                    lvs.extend(vg.lvs.iter().map(|(lv, pool)| (lv.clone(), pool.clone())));
                    let i = info(vg);
                    (
                        name.clone(),
                        VgInventory {
                            total_kib: i.total_kib,
                            used_kib: i.used_kib,
                            lvs,
                        },
                    )
                })
                .collect();
            Ok(NodeInventory {
                vgs,
                mounts: h.mounts.clone(),
                fstab: h.fstab.clone(),
                peers: h.peers.clone(),
            })
        })
        .await
    }

    async fn volumes(&self, host: &str) -> ExecResult<BTreeMap<String, GlusterVolume>> {
        self.verb("volume_info", host, |s| {
            Ok(s.volumes
                .iter()
                .map(|(n, v)| {
                    let g = GlusterVolume {
                        bricks: v.bricks.clone(),
                        mark: v.options.get(OWNER_OPTION).cloned(),
                    };
                    (n.clone(), g)
                })
                .collect())
        })
        .await
    }
}

fn info(v: &MockVg) -> DeviceInfo {
    DeviceInfo {
        total_kib: v.size,
        extent_kib: v.extent,
        used_kib: v.pools.values().sum(),
        pv_uuid: String::new(),
        paths: Vec::new(),
    }
}

/// Every `storagehost:path` must be a mounted brick on some host (the mock keys hosts by
/// manage name, so a brick is found by its mount directory).
fn check_bricks_mounted(s: &MockState, bricks: &[String]) -> ExecResult<()> {
    for b in bricks {
        let path = b.split_once(':').map(|x| x.1).unwrap_or(b);
        let dir = path.strip_suffix("/brick").unwrap_or(path);
        if !s.hosts.values().any(|h| h.mounts.contains(dir)) {
            return Err(fail(format!("volume create: failed: brick {b} does not exist")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VG: &str = "vg_0123456789abcdef0123456789abcdef";

    /// Runs `f` as the fence would: every verb carries a fencing token.
    async fn fenced<T>(f: impl std::future::Future<Output = T>) -> T {
        super::super::FENCE
            .scope(
                super::super::FenceToken {
                    cluster: "c".into(),
                    term: 1,
                },
                f,
            )
            .await
    }

    fn brick(id: &str) -> BrickSpec {
        BrickSpec {
            id: id.into(),
            vg: VG.into(),
            thin_pool: format!("tp_{id}"),
            lv_name: None,
            mount: None,
            tp_size: 1 << 20,
            meta_size: 8192,
            size: 1 << 20,
            gid: 0,
            arbiter: false,
        }
    }

    #[tokio::test]
    async fn the_guard_refuses_stale_terms_and_unfenced_verbs() {
        use super::super::{FenceToken, FENCE};
        let m = MockExecutor::new(MockConfig::default());
        let tok = |cluster: &str, term| FenceToken {
            cluster: cluster.into(),
            term,
        };
        FENCE.scope(tok("c", 5), m.glusterd_check("h")).await.unwrap();
        let err = FENCE
            .scope(tok("c", 4), m.peer_probe("h", "x"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ExecError::Fenced(m) if m.contains("older than term 5")),
            "{err}"
        );
        let err = m.peer_probe("h", "x").await.unwrap_err();
        assert!(
            matches!(&err, ExecError::Fenced(m) if m.contains("no fencing token")),
            "{err}"
        );
        assert!(
            m.snapshot().unwrap().hosts["h"].peers.is_empty(),
            "refused verbs changed nothing"
        );
        // Another cluster's identity has its own record.
        FENCE.scope(tok("d", 1), m.peer_probe("h", "y")).await.unwrap();
        FENCE.scope(tok("c", 6), m.peer_probe("h", "z")).await.unwrap();
        let h = &m.snapshot().unwrap().hosts["h"];
        assert_eq!(h.guard, [("c".to_string(), 6), ("d".to_string(), 1)].into());
        let refused: Vec<_> = m.command_log().into_iter().filter(|r| r.refused).collect();
        assert_eq!(refused.len(), 2, "{refused:?}");
    }

    #[tokio::test]
    async fn command_log_is_bounded_in_memory_and_on_disk() {
        fenced(async {
            let m = MockExecutor::new(MockConfig {
                command_log_max: 10,
                ..Default::default()
            });
            for i in 0..25 {
                m.glusterd_check(&format!("h{i}")).await.unwrap();
            }
            let log = m.command_log();
            assert_eq!(log.len(), 10);
            assert_eq!(
                (log[0].host.as_str(), log[9].host.as_str()),
                ("h15", "h24"),
                "the newest are kept, oldest first"
            );

            let dir = tempfile::tempdir().unwrap();
            let state = dir.path().join("nodes.json").display().to_string();
            let f = MockExecutor::new(MockConfig {
                command_log_max: 10,
                state_file: state.clone(),
                ..Default::default()
            });
            for i in 0..200 {
                f.glusterd_check(&format!("h{i}")).await.unwrap();
            }
            let log = f.command_log();
            assert!((5..=20).contains(&log.len()), "{} records", log.len());
            assert_eq!(log.last().unwrap().host, "h199");
            assert!(
                log.windows(2).all(|w| w[0].at_ns <= w[1].at_ns),
                "oldest first across rotation"
            );
        })
        .await
    }

    #[tokio::test]
    async fn enforces_node_rules_and_is_idempotent() {
        fenced(async {
            let m = MockExecutor::new(MockConfig {
                device_size_gb: 2,
                ..Default::default()
            });
            assert!(m.brick_create("h", &brick("b1")).await.is_err(), "no VG yet");
            let d = m.device_setup("h", "/dev/sdb", VG, false).await.unwrap();
            assert_eq!(d.total_kib, 2 << 20);
            assert!(
                m.device_setup("h", "/dev/sdb", VG, false).await.is_ok(),
                "idempotent"
            );
            assert!(
                m.device_setup("h", "/dev/sdb", "vg_d2", false).await.is_err(),
                "PV in use"
            );
            m.brick_create("h", &brick("b1")).await.unwrap();
            m.brick_create("h", &brick("b1")).await.unwrap();
            let err = m.brick_create("h", &brick("b2")).await.unwrap_err();
            assert!(err.to_string().contains("Insufficient free space"), "{err}");
            let vol = VolumeSpec {
                id: "v".into(),
                name: "vol".into(),
                bricks: vec![format!("s:{}", brick("b1").path())],
                replica: None,
                arbiter: false,
                disperse: None,
                options: vec![format!("{OWNER_OPTION} v")],
            };
            m.volume_create("h", &vol).await.unwrap();
            assert_eq!(
                m.volume_owner("h", "vol").await.unwrap(),
                VolumeOwner::Marked("v".into())
            );
            let other = m.volume_destroy("h", "vol", "w").await.unwrap_err();
            assert!(matches!(other, ExecError::Foreign(_)), "{other}");
            assert!(m.brick_destroy("h", &brick("b1")).await.is_err(), "brick in use");
            assert!(
                m.device_teardown("h", "/dev/sdb", VG).await.is_err(),
                "VG not empty"
            );
            m.volume_destroy("h", "vol", "v").await.unwrap();
            m.volume_destroy("h", "vol", "v").await.unwrap();
            assert!(m.brick_destroy("h", &brick("b1")).await.unwrap());
            assert!(
                m.brick_destroy("h", &brick("b1")).await.unwrap(),
                "already gone is fine"
            );
            m.device_teardown("h", "/dev/sdb", VG).await.unwrap();
            let left = MockHost {
                guard: Default::default(),
                ..m.snapshot().unwrap().hosts["h"].clone()
            };
            assert_eq!(left, MockHost::default());
        })
        .await
    }

    #[tokio::test]
    async fn injected_failures_and_shared_file() {
        fenced(async {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("mock.json").display().to_string();
            let cfg = MockConfig {
                state_file: file.clone(),
                fail: vec![Injection {
                    verb: "peer_probe".into(),
                    host: "bad".into(),
                    message: "boom".into(),
                }],
                ..Default::default()
            };
            let a = MockExecutor::new(cfg.clone());
            let b = MockExecutor::new(cfg);
            assert_eq!(
                a.peer_probe("bad", "x").await.unwrap_err(),
                ExecError::Failed("boom".into())
            );
            a.device_setup("h", "/dev/sdb", VG, false).await.unwrap();
            // Another process (executor) sees the same nodes.
            assert!(b.device_setup("h", "/dev/sdb", "vg_d9", false).await.is_err());
            assert!(MockExecutor::read_state_file(&file).unwrap().hosts["h"]
                .vgs
                .contains_key(VG));
        })
        .await
    }

    #[tokio::test]
    async fn foreign_volumes_and_bricks_are_left_alone() {
        fenced(async {
            let m = MockExecutor::new(MockConfig::default());
            m.device_setup("h", "/dev/sdb", VG, false).await.unwrap();
            m.plant(|s| {
                s.volumes.insert(
                    "heketidbstorage".into(),
                    MockVolume {
                        id: "g".into(),
                        bricks: vec!["h:/srv/db/brick".into()],
                        started: true,
                        options: Default::default(),
                    },
                );
            })
            .unwrap();
            assert_eq!(
                m.volume_owner("h", "heketidbstorage").await.unwrap(),
                VolumeOwner::Unmarked
            );
            assert_eq!(m.volume_owner("h", "nope").await.unwrap(), VolumeOwner::Absent);
            let e = m.volume_destroy("h", "heketidbstorage", "v").await.unwrap_err();
            assert!(e.to_string().starts_with(super::super::CONFLICT_PREFIX), "{e}");
            let vol = VolumeSpec {
                id: "v".into(),
                name: "heketidbstorage".into(),
                bricks: vec!["h:/srv/db/brick".into()],
                replica: None,
                arbiter: false,
                disperse: None,
                options: vec![],
            };
            assert!(matches!(
                m.volume_create("h", &vol).await,
                Err(ExecError::Foreign(_))
            ));
            assert!(matches!(
                m.volume_clone("h", "x", "heketidbstorage", "v").await,
                Err(ExecError::Foreign(_))
            ));
            // A brick outside Hekate's names is refused before the model is touched.
            let mut b = brick("b1");
            b.mount = Some("/srv/db".into());
            assert!(matches!(
                m.brick_destroy("h", &b).await,
                Err(ExecError::Foreign(_))
            ));
            let mut b = brick("b1");
            b.lv_name = Some("x;rm".into());
            assert!(matches!(
                m.brick_create("h", &b).await,
                Err(ExecError::Foreign(_))
            ));
            assert!(m.snapshot().unwrap().volumes.contains_key("heketidbstorage"));
            let log = m.command_log();
            // The refused create and clone reached the (mock) node, which refused them; the
            // destroy never did: its ownership read came first.
            assert!(
                !log.iter()
                    .any(|r| r.object == "heketidbstorage" && r.verb == "volume_destroy"),
                "{log:?}"
            );
        })
        .await
    }
}
