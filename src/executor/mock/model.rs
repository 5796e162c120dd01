//! The mock's nodes: what simulated Gluster nodes hold (PVs, VGs, thin pools and LVs, mounts,
//! peers, the node guard's term record, Gluster volumes), what each verb does to them, and
//! the rules real nodes enforce (no space, missing VG, device in use, brick missing). One
//! [`Nodes`] runs every verb, whether it lives inside a replica (memory) or inside the
//! `hekate mock-nodes` process the replicas of a local cluster share: the verb logic exists
//! once. Every verb costs O(log n) in the number of volumes (the brick-in-use check reads an
//! index), except the whole-pool reads that reconcile asks for (`volumes`).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::super::{
    BlockSpec, BlockTarget, DeviceInfo, ExecError, ExecResult, FenceToken, GlusterVolume, HealBrick,
    NodeInventory, VgInventory, VolumeOwner, GUARD_REFUSED_PREFIX, OWNER_OPTION,
};

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
    /// gluster-block's block volumes in this (block-hosting) volume, by name: files inside
    /// the volume, so they go with it.
    #[serde(default)]
    pub blocks: BTreeMap<String, MockBlock>,
}

/// One gluster-block block volume.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MockBlock {
    pub gbid: String,
    pub size_gib: u64,
    pub hosts: Vec<String>,
    pub password: String,
}

impl MockBlock {
    fn target(&self) -> BlockTarget {
        BlockTarget {
            iqn: format!("iqn.2016-12.org.gluster-block:{}", self.gbid),
            username: if self.password.is_empty() {
                String::new()
            } else {
                self.gbid.clone()
            },
            password: self.password.clone(),
            hosts: self.hosts.clone(),
            size_gib: self.size_gib,
            usable_gib: self.size_gib,
        }
    }
}

impl MockVolume {
    fn owner(&self) -> VolumeOwner {
        VolumeOwner::from_mark(self.options.get(OWNER_OPTION).map(String::as_str))
    }
}

/// The whole simulated world (also the format of `hekate mock-nodes --state FILE`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct MockState {
    pub hosts: BTreeMap<String, MockHost>,
    pub volumes: BTreeMap<String, MockVolume>,
    /// Armed faults (not part of the nodes; kept here so every replica sees them).
    pub faults: Vec<Fault>,
}

/// One verb as the (mock) node saw it start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// The failure an injection or a fault stands for: the node's error, or (empty message) an
/// unreachable host.
pub fn injected(verb: &str, host: &str, message: &str) -> ExecError {
    if message.is_empty() {
        ExecError::Unreachable {
            host: host.into(),
            msg: format!("injected failure of {verb}"),
        }
    } else {
        fail(message)
    }
}

pub(super) fn fail(msg: impl Into<String>) -> ExecError {
    ExecError::Failed(msg.into())
}

/// One verb sent to a (mock) node, with everything it depends on: the same request runs in
/// memory or in the shared `hekate mock-nodes` process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub host: String,
    /// The fencing token the verb runs under (none: refused unless `operator`).
    pub token: Option<FenceToken>,
    /// Sent by the node's operator, past Hekate's guard ([`super::MockExecutor::as_operator`]).
    pub operator: bool,
    /// A static injection of the sender's configuration matched: after the guard, fail with
    /// this message (empty: the host is unreachable) instead of running the verb.
    pub inject: Option<String>,
    pub verb: Verb,
}

/// The verbs of [`super::super::Executor`] as a node runs them (a trait call may send more
/// than one: a destroy reads the volume's owner first, an expand sends one `add_brick` per
/// chunk).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "snake_case")]
pub enum Verb {
    Claim,
    GlusterdCheck,
    PeerProbe {
        peer: String,
    },
    PeerDetach {
        peer: String,
    },
    DeviceSetup {
        device: String,
        vg: String,
        size_kib: u64,
    },
    DeviceTeardown {
        device: String,
        vg: String,
    },
    DeviceInfo {
        vg: String,
    },
    BrickCreate {
        vg: String,
        lv: String,
        tp: String,
        mount_dir: String,
        need: u64,
    },
    BrickDestroy {
        vg: String,
        lv: String,
        tp: String,
        mount_dir: String,
        path: String,
    },
    VolumeCreate {
        name: String,
        id: String,
        bricks: Vec<String>,
        options: Vec<String>,
    },
    /// The read before an expand: owner and new bricks checked; returns the missing ones.
    VolumeExpand {
        name: String,
        id: String,
        new_bricks: Vec<String>,
    },
    AddBrick {
        name: String,
        bricks: Vec<String>,
    },
    VolumeDestroy {
        name: String,
        id: String,
    },
    VolumeOwner {
        name: String,
    },
    ReplaceBrick {
        volume: String,
        old: String,
        new: String,
    },
    VolumeClone {
        volume: String,
        clone: String,
        clone_id: String,
    },
    VolumeBricks {
        volume: String,
    },
    HealInfo {
        volume: String,
    },
    Inventory,
    Volumes,
    BlockCreate {
        spec: BlockSpec,
    },
    BlockInfo {
        bhv: String,
        name: String,
    },
    BlockModify {
        bhv: String,
        name: String,
        size_gib: u64,
    },
    BlockDelete {
        bhv: String,
        name: String,
    },
    BlockList {
        bhv: String,
    },
}

impl Verb {
    /// The name faults, injections, latencies and the command record use.
    /// Whether the verb only reads the model (its answer is all it does).
    pub fn reads_only(&self) -> bool {
        matches!(
            self,
            Verb::Claim
                | Verb::GlusterdCheck
                | Verb::DeviceInfo { .. }
                | Verb::VolumeOwner { .. }
                | Verb::VolumeBricks { .. }
                | Verb::Volumes
                | Verb::HealInfo { .. }
                | Verb::Inventory
                | Verb::BlockInfo { .. }
                | Verb::BlockList { .. }
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            Verb::Claim => "claim",
            Verb::GlusterdCheck => "glusterd_check",
            Verb::PeerProbe { .. } => "peer_probe",
            Verb::PeerDetach { .. } => "peer_detach",
            Verb::DeviceSetup { .. } => "device_setup",
            Verb::DeviceTeardown { .. } => "device_teardown",
            Verb::DeviceInfo { .. } => "device_info",
            Verb::BrickCreate { .. } => "brick_create",
            Verb::BrickDestroy { .. } => "brick_destroy",
            Verb::VolumeCreate { .. } => "volume_create",
            Verb::VolumeExpand { .. } => "volume_expand",
            Verb::AddBrick { .. } => "add_brick",
            Verb::VolumeDestroy { .. } => "volume_destroy",
            Verb::VolumeOwner { .. } | Verb::VolumeBricks { .. } | Verb::Volumes => "volume_info",
            Verb::ReplaceBrick { .. } => "replace_brick",
            Verb::VolumeClone { .. } => "volume_clone",
            Verb::HealInfo { .. } => "heal_info",
            Verb::Inventory => "inventory",
            Verb::BlockCreate { .. } => "block_create",
            Verb::BlockInfo { .. } | Verb::BlockList { .. } => "block_info",
            Verb::BlockModify { .. } => "block_modify",
            Verb::BlockDelete { .. } => "block_delete",
        }
    }

    /// The object the command record names: the volume, or `vg/lv`.
    pub fn object(&self) -> String {
        match self {
            Verb::BrickCreate { vg, lv, .. } | Verb::BrickDestroy { vg, lv, .. } => format!("{vg}/{lv}"),
            Verb::VolumeCreate { name, .. }
            | Verb::VolumeExpand { name, .. }
            | Verb::AddBrick { name, .. }
            | Verb::VolumeDestroy { name, .. }
            | Verb::VolumeOwner { name } => name.clone(),
            Verb::ReplaceBrick { volume, .. } => volume.clone(),
            Verb::VolumeClone { clone, .. } => clone.clone(),
            Verb::BlockCreate { spec } => format!("{}/{}", spec.bhv, spec.name),
            Verb::BlockInfo { bhv, name }
            | Verb::BlockModify { bhv, name, .. }
            | Verb::BlockDelete { bhv, name } => format!("{bhv}/{name}"),
            Verb::BlockList { bhv } => bhv.clone(),
            _ => String::new(),
        }
    }

    /// The Gluster volume whose brick list this verb may change (kept in the brick index).
    fn changes_volume(&self) -> Option<&str> {
        match self {
            Verb::VolumeCreate { name, .. }
            | Verb::AddBrick { name, .. }
            | Verb::VolumeDestroy { name, .. } => Some(name),
            Verb::ReplaceBrick { volume, .. } => Some(volume),
            Verb::VolumeClone { clone, .. } => Some(clone),
            _ => None,
        }
    }
}

/// Which volumes use a brick path (the part after `storagehost:`): the brick-in-use check
/// without a scan of every volume.
#[derive(Debug, Default)]
struct BrickUsers(HashMap<String, BTreeSet<String>>);

fn brick_path(brick: &str) -> &str {
    brick.split_once(':').map_or(brick, |x| x.1)
}

impl BrickUsers {
    fn build(volumes: &BTreeMap<String, MockVolume>) -> BrickUsers {
        let mut users = BrickUsers::default();
        for (name, v) in volumes {
            users.update(name, &[], &v.bricks);
        }
        users
    }

    fn update(&mut self, volume: &str, before: &[String], after: &[String]) {
        for b in before {
            if let Some(set) = self.0.get_mut(brick_path(b)) {
                set.remove(volume);
                if set.is_empty() {
                    self.0.remove(brick_path(b));
                }
            }
        }
        for b in after {
            self.0
                .entry(brick_path(b).to_string())
                .or_default()
                .insert(volume.to_string());
        }
    }

    fn user(&self, path: &str) -> Option<&String> {
        self.0.get(path).and_then(|s| s.iter().next())
    }
}

/// Where brick directories were mounted, by the verbs that mounted them: a hint checked on
/// use, so that [`check_bricks_mounted`] looks at one host instead of every host (336 at
/// 100,000 volumes, where that look was a third of `hekate mock-nodes`' CPU during
/// creates). A missing or stale hint costs the look at every host, never a wrong answer;
/// a brick destroyed takes its hint along, and a stale one found on use is dropped.
#[derive(Default)]
struct MountHints(HashMap<String, String>);

impl MountHints {
    fn mounted(&mut self, dir: &str, host: &str) {
        self.0.insert(dir.to_string(), host.to_string());
    }

    fn unmounted(&mut self, dir: &str) {
        self.0.remove(dir);
    }

    /// Whether some host has `dir` mounted: the hinted host first, then every host.
    fn is_mounted(&mut self, s: &MockState, dir: &str) -> bool {
        if let Some(host) = self.0.get(dir) {
            if s.hosts.get(host).is_some_and(|h| h.mounts.contains(dir)) {
                return true;
            }
            self.0.remove(dir);
        }
        match s.hosts.iter().find(|(_, h)| h.mounts.contains(dir)) {
            Some((host, _)) => {
                self.mounted(dir, host);
                true
            }
            None => false,
        }
    }
}

/// The nodes with their command record, behind one lock. Each verb holds it for its
/// in-memory effect only (microseconds, no I/O, no latency sleep), so the guard's decision,
/// the record and the effect are one step, as under a real node's lock.
pub struct Nodes {
    inner: Mutex<Inner>,
    command_log_max: usize,
}

struct Inner {
    state: MockState,
    users: BrickUsers,
    mounts: MountHints,
    log: VecDeque<CmdRecord>,
    /// Bumped by every change (verbs that change the model, faults, plants): what the
    /// persister and [`Nodes::replace`] compare. A read that changed nothing leaves it: the
    /// hourly reconcile's reads would otherwise have the whole model copied and written
    /// (150 MB at 100,000 volumes) every few seconds while they run.
    generation: u64,
}

impl Nodes {
    pub fn new(state: MockState, command_log_max: usize) -> Nodes {
        Nodes {
            inner: Mutex::new(Inner {
                users: BrickUsers::build(&state.volumes),
                mounts: MountHints::default(),
                state,
                log: VecDeque::new(),
                generation: 0,
            }),
            command_log_max: command_log_max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One verb: the node's guard first (checked, recorded and the term raised before
    /// anything else happens there), then a static injection or a runtime [`Fault`], then
    /// the verb's effect on the model. Returns the verb's answer as JSON.
    pub fn run(&self, req: &Request) -> ExecResult<Value> {
        let mut g = self.lock();
        let inner = &mut *g;
        // Faults count the verbs they match, and a read may make a host's record (an
        // unknown host) or raise its guard's term: only a read that did none of these
        // changed nothing.
        let (hosts, faults) = (inner.state.hosts.len(), !inner.state.faults.is_empty());
        let (out, raised) = self.run_locked(inner, req);
        if !req.verb.reads_only() || faults || raised || inner.state.hosts.len() != hosts {
            inner.generation += 1;
        }
        out
    }

    /// [`Nodes::run`] under the lock; and whether the guard raised a term.
    fn run_locked(&self, inner: &mut Inner, req: &Request) -> (ExecResult<Value>, bool) {
        let name = req.verb.name();
        let host = req.host.as_str();
        let verdict = guard(&mut inner.state, name, host, req.token.as_ref(), req.operator);
        let raised = matches!(verdict, Ok(true));
        let rec = CmdRecord {
            at_ns: now_ns(),
            term: req.token.as_ref().map_or(0, |t| t.term),
            refused: verdict.is_err(),
            verb: name.to_string(),
            host: host.to_string(),
            object: req.verb.object(),
        };
        if inner.log.len() >= self.command_log_max {
            inner.log.pop_front();
        }
        inner.log.push_back(rec);
        if let Err(e) = verdict {
            return (Err(e), raised);
        }
        if let Some(msg) = &req.inject {
            return (Err(injected(name, host, msg)), raised);
        }
        let after = match inner.state.faults.iter_mut().find_map(|f| f.fire(name, host)) {
            Some((err, false)) => return (Err(err), raised),
            Some((err, true)) => Some(err),
            None => None,
        };
        let volume = req.verb.changes_volume();
        let before = volume
            .and_then(|v| inner.state.volumes.get(v))
            .map(|v| v.bricks.clone())
            .unwrap_or_default();
        let out = apply(&mut inner.state, &inner.users, &mut inner.mounts, host, &req.verb);
        if let Some(v) = volume {
            let now = inner
                .state
                .volumes
                .get(v)
                .map(|v| v.bricks.as_slice())
                .unwrap_or(&[]);
            if before != now {
                let now = now.to_vec();
                inner.users.update(v, &before, &now);
            }
        }
        let out = match after {
            // The node did the work; its answer was lost.
            Some(err) if out.is_ok() => Err(err),
            _ => out,
        };
        (out, raised)
    }

    /// A copy of the model and its generation.
    pub fn snapshot(&self) -> (MockState, u64) {
        let g = self.lock();
        (g.state.clone(), g.generation)
    }

    /// A copy of the model if it changed since `generation` (the persister's question).
    pub fn changed_since(&self, generation: u64) -> Option<(MockState, u64)> {
        let g = self.lock();
        (g.generation != generation).then(|| (g.state.clone(), g.generation))
    }

    /// Replaces the model (an operator's or a test's plant) if nothing changed since
    /// `generation` was read; returns whether it did.
    pub fn replace(&self, state: MockState, generation: u64) -> bool {
        let mut g = self.lock();
        if g.generation != generation {
            return false;
        }
        g.users = BrickUsers::build(&state.volumes);
        g.mounts = MountHints::default();
        g.state = state;
        g.generation += 1;
        true
    }

    /// Changes the model with `f` under the lock (in-process plants, faults, glusterd).
    pub fn change<T>(&self, f: impl FnOnce(&mut MockState) -> T) -> T {
        let mut g = self.lock();
        let out = f(&mut g.state);
        g.users = BrickUsers::build(&g.state.volumes);
        g.mounts = MountHints::default();
        g.generation += 1;
        out
    }

    pub fn add_fault(&self, fault: Fault) {
        let mut g = self.lock();
        g.state.faults.push(fault);
        g.generation += 1;
    }

    /// Disarms every fault; returns how many had fired at least once.
    pub fn clear_faults(&self) -> usize {
        let mut g = self.lock();
        let fired = g.state.faults.iter().filter(|f| f.fired > 0).count();
        g.state.faults.clear();
        g.generation += 1;
        fired
    }

    /// Stops or starts a (mock) node's glusterd: its bricks go offline, its verbs fail.
    pub fn set_glusterd_down(&self, host: &str, down: bool) {
        let mut g = self.lock();
        host_mut(&mut g.state, host).glusterd_down = down;
        g.generation += 1;
    }

    /// The command record, oldest first (the newest `command_log_max`).
    pub fn command_log(&self) -> Vec<CmdRecord> {
        self.lock().log.iter().cloned().collect()
    }
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The node-side guard (the mock's model of `deploy/node/hekate-guard`): a verb without a
/// fencing token (unless its operator sent it), or with a term older than the highest this
/// host has seen for its cluster, is refused and changes nothing; a newer term is recorded.
fn guard(
    s: &mut MockState,
    verb: &str,
    host: &str,
    token: Option<&FenceToken>,
    operator: bool,
) -> ExecResult<bool> {
    let Some(t) = token else {
        if operator {
            return Ok(false);
        }
        return Err(super::super::unfenced(verb, host));
    };
    let highest = host_mut(s, host).guard.entry(t.cluster.clone()).or_insert(0);
    if t.term < *highest {
        return Err(ExecError::Fenced(format!(
            "{GUARD_REFUSED_PREFIX}term {} of cluster {} is older than term {} seen on {host}: {verb} not executed",
            t.term, t.cluster, *highest
        )));
    }
    let raised = t.term > *highest;
    *highest = t.term;
    Ok(raised)
}

fn host_mut<'a>(s: &'a mut MockState, host: &str) -> &'a mut MockHost {
    s.hosts.entry(host.to_string()).or_default()
}

fn reply<T: Serialize>(v: T) -> ExecResult<Value> {
    serde_json::to_value(v).map_err(|e| fail(format!("mock nodes: cannot encode a reply: {e}")))
}

/// What `verb` does on `host` (past the guard and faults).
fn apply(
    s: &mut MockState,
    users: &BrickUsers,
    mounts: &mut MountHints,
    host: &str,
    verb: &Verb,
) -> ExecResult<Value> {
    match verb {
        Verb::Claim => reply(()),
        Verb::GlusterdCheck => {
            if host_mut(s, host).glusterd_down {
                return Err(fail(format!("glusterd is not running on {host}")));
            }
            reply(())
        }
        Verb::PeerProbe { peer } => {
            host_mut(s, host).peers.insert(peer.clone());
            reply(())
        }
        Verb::PeerDetach { peer } => {
            host_mut(s, host).peers.remove(peer);
            reply(())
        }
        Verb::DeviceSetup { device, vg, size_kib } => reply(device_setup(s, host, device, vg, *size_kib)?),
        Verb::DeviceTeardown { device, vg } => reply(device_teardown(s, host, device, vg)?),
        Verb::DeviceInfo { vg } => reply(
            host_mut(s, host)
                .vgs
                .get(vg)
                .map(info)
                .ok_or_else(|| fail(format!("Volume group \"{vg}\" not found")))?,
        ),
        Verb::BrickCreate {
            vg,
            lv,
            tp,
            mount_dir,
            need,
        } => {
            brick_create(s, host, vg, lv, tp, mount_dir, *need)?;
            mounts.mounted(mount_dir, host);
            reply(())
        }
        Verb::BrickDestroy {
            vg,
            lv,
            tp,
            mount_dir,
            path,
        } => {
            if let Some(name) = users.user(path) {
                return Err(fail(format!("brick {path} is in use by volume {name}")));
            }
            let pool_gone = brick_destroy(s, host, vg, lv, tp, mount_dir);
            mounts.unmounted(mount_dir);
            reply(pool_gone)
        }
        Verb::VolumeCreate {
            name,
            id,
            bricks,
            options,
        } => reply(volume_create(s, mounts, name, id, bricks, options)?),
        Verb::VolumeExpand { name, id, new_bricks } => reply(volume_expand(s, mounts, name, id, new_bricks)?),
        Verb::AddBrick { name, bricks } => reply(add_brick(s, name, bricks)?),
        Verb::VolumeDestroy { name, id } => {
            if let Some(v) = s.volumes.get(name) {
                v.owner().check(name, id)?;
            }
            s.volumes.remove(name);
            reply(())
        }
        Verb::VolumeOwner { name } => {
            reply(s.volumes.get(name).map_or(VolumeOwner::Absent, MockVolume::owner))
        }
        Verb::ReplaceBrick { volume, old, new } => reply(replace_brick(s, mounts, volume, old, new)?),
        Verb::VolumeClone {
            volume,
            clone,
            clone_id,
        } => reply(volume_clone(s, volume, clone, clone_id)?),
        Verb::VolumeBricks { volume } => reply(
            s.volumes
                .get(volume)
                .map(|v| v.bricks.clone())
                .ok_or_else(|| fail(format!("Volume {volume} does not exist")))?,
        ),
        Verb::HealInfo { volume } => reply(heal_info(s, volume)?),
        Verb::Inventory => reply(inventory(s, host)?),
        Verb::Volumes => reply(pool_volumes(s, host)),
        Verb::BlockCreate { spec } => reply(block_create(s, spec)?),
        Verb::BlockInfo { bhv, name } => {
            reply(started_volume(s, bhv)?.blocks.get(name).map(MockBlock::target))
        }
        Verb::BlockModify { bhv, name, size_gib } => {
            let b = started_volume(s, bhv)?
                .blocks
                .get_mut(name)
                .ok_or_else(|| fail(format!("block {name} doesn't exist")))?;
            if *size_gib < b.size_gib {
                return Err(fail(format!(
                    "new size {size_gib}GiB is smaller than {}GiB",
                    b.size_gib
                )));
            }
            b.size_gib = *size_gib;
            reply(())
        }
        Verb::BlockDelete { bhv, name } => {
            // gluster-block's answers for a missing BHV or block volume; the executor counts
            // both as deleted.
            let v = s
                .volumes
                .get_mut(bhv)
                .ok_or_else(|| fail(format!("volume {bhv} does not exist")))?;
            v.blocks
                .remove(name)
                .ok_or_else(|| fail(format!("block {name} doesn't exist")))?;
            reply(())
        }
        Verb::BlockList { bhv } => reply(started_volume(s, bhv)?.blocks.keys().cloned().collect::<Vec<_>>()),
    }
}

/// The block-hosting volume a gluster-block command names: it must exist and be started.
fn started_volume<'a>(s: &'a mut MockState, bhv: &str) -> ExecResult<&'a mut MockVolume> {
    match s.volumes.get_mut(bhv) {
        Some(v) if v.started => Ok(v),
        Some(_) => Err(fail(format!("volume {bhv} is not started"))),
        None => Err(fail(format!("volume {bhv} does not exist"))),
    }
}

fn block_create(s: &mut MockState, spec: &BlockSpec) -> ExecResult<BlockTarget> {
    let v = started_volume(s, &spec.bhv)?;
    if v.blocks.contains_key(&spec.name) {
        return Err(fail(format!("BLOCK with name: '{}' already EXIST", spec.name)));
    }
    let gbid = crate::ids::new_id();
    let b = MockBlock {
        gbid: format!(
            "{}-{}-{}-{}-{}",
            &gbid[..8],
            &gbid[8..12],
            &gbid[12..16],
            &gbid[16..20],
            &gbid[20..]
        ),
        size_gib: spec.size_gib,
        hosts: spec.hosts.iter().take(spec.ha.max(1)).cloned().collect(),
        password: if spec.auth {
            crate::ids::new_id()
        } else {
            String::new()
        },
    };
    let target = b.target();
    v.blocks.insert(spec.name.clone(), b);
    Ok(target)
}

fn device_teardown(s: &mut MockState, host: &str, device: &str, vg: &str) -> ExecResult<()> {
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
}

/// A thin pool of `need` KiB with its LV (unless the LV exists: a re-run), mounted and in
/// fstab.
fn brick_create(
    s: &mut MockState,
    host: &str,
    vg: &str,
    lv: &str,
    tp: &str,
    mount_dir: &str,
    need: u64,
) -> ExecResult<()> {
    let h = host_mut(s, host);
    let v = h
        .vgs
        .get_mut(vg)
        .ok_or_else(|| fail(format!("Volume group \"{vg}\" not found")))?;
    if !v.lvs.contains_key(lv) {
        if !v.pools.contains_key(tp) && v.free() < need {
            return Err(fail(format!(
                "Insufficient free space: {} extents needed, but only {} available",
                need / v.extent.max(1),
                v.free() / v.extent.max(1)
            )));
        }
        v.pools.insert(tp.to_string(), need);
        v.lvs.insert(lv.to_string(), tp.to_string());
    }
    h.mounts.insert(mount_dir.to_string());
    h.fstab.insert(mount_dir.to_string());
    Ok(())
}

/// Unmounts the brick, drops its fstab line and LV, and its pool unless a clone's LV still
/// uses it; whether the pool went.
fn brick_destroy(s: &mut MockState, host: &str, vg: &str, lv: &str, tp: &str, mount_dir: &str) -> bool {
    let h = host_mut(s, host);
    h.mounts.remove(mount_dir);
    h.fstab.remove(mount_dir);
    let mut pool_gone = true;
    if let Some(v) = h.vgs.get_mut(vg) {
        v.lvs.remove(lv);
        // A thin pool shared with a clone's LV stays until its last LV goes.
        if v.lvs.values().any(|p| p == tp) {
            pool_gone = false;
        } else {
            v.pools.remove(tp);
        }
    }
    pool_gone
}

/// A started volume on mounted bricks, its options set; a re-run with the same bricks is
/// done, another volume of the name refused (naming its owner when it is not Hekate's).
fn volume_create(
    s: &mut MockState,
    mounts: &mut MountHints,
    name: &str,
    id: &str,
    bricks: &[String],
    options: &[String],
) -> ExecResult<()> {
    if let Some(existing) = s.volumes.get(name) {
        existing.owner().check(name, id)?;
        if existing.bricks == *bricks {
            return Ok(()); // idempotent re-run
        }
        return Err(fail(format!(
            "volume create: {name}: failed: Volume {name} already exists"
        )));
    }
    check_bricks_mounted(s, mounts, bricks)?;
    s.volumes.insert(
        name.to_string(),
        MockVolume {
            id: id.to_string(),
            bricks: bricks.to_vec(),
            started: true,
            options: options
                .iter()
                .filter_map(|o| {
                    let (k, val) = o.split_once(char::is_whitespace)?;
                    Some((k.to_string(), val.trim().to_string()))
                })
                .collect(),
            blocks: BTreeMap::new(),
        },
    );
    Ok(())
}

/// The read before an expand: the volume is Hekate's and the new bricks are mounted; the new
/// bricks it does not have yet.
fn volume_expand(
    s: &MockState,
    mounts: &mut MountHints,
    name: &str,
    id: &str,
    new_bricks: &[String],
) -> ExecResult<Vec<String>> {
    check_bricks_mounted(s, mounts, new_bricks)?;
    let vol = s
        .volumes
        .get(name)
        .ok_or_else(|| fail(format!("Volume {name} does not exist")))?;
    vol.owner().check(name, id)?;
    Ok(new_bricks
        .iter()
        .filter(|b| !vol.bricks.contains(b))
        .cloned()
        .collect())
}

/// Appends the bricks the volume does not have yet.
fn add_brick(s: &mut MockState, name: &str, bricks: &[String]) -> ExecResult<()> {
    let vol = s
        .volumes
        .get_mut(name)
        .ok_or_else(|| fail(format!("Volume {name} does not exist")))?;
    for b in bricks {
        if !vol.bricks.contains(b) {
            vol.bricks.push(b.clone());
        }
    }
    Ok(())
}

/// Puts mounted brick `new` in `old`'s place (done already: nothing to do).
fn replace_brick(
    s: &mut MockState,
    mounts: &mut MountHints,
    volume: &str,
    old: &str,
    new: &str,
) -> ExecResult<()> {
    check_bricks_mounted(s, mounts, &[new.to_string()])?;
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
}

/// Every volume as `gluster volume info` reports it: bricks and mark.
/// `gluster volume info` on `host`: the volumes of its trusted pool, as a real node answers.
/// The model holds every cluster's nodes, and answering each cluster's question with every
/// volume cost a dev cluster at 100,000 volumes minutes of CPU and gigabytes each hour.
///
/// The model names hosts by manage name and bricks by storage name, so a pool is what
/// connects hosts: a volume's bricks (each storage name is the host that holds the brick's
/// mount, or the host of that name) and peer probes (the prober and the probed). A volume
/// with a brick on no known host is in every answer: an answer may hold more than the pool
/// (the leader keeps its cluster's), never less.
fn pool_volumes(s: &MockState, host: &str) -> BTreeMap<String, GlusterVolume> {
    let mut hosts = HostNames::new(s);
    // Every storage name's host first: a brick that is no mount (a volume made outside
    // Hekate) is placed by its storage name, whichever volume names it first.
    for b in s.volumes.values().flat_map(|v| &v.bricks) {
        if let Some((st, path)) = b.split_once(':') {
            hosts.of(st, Some(path));
        }
    }
    let mut pools = UnionFind::new(hosts.names.len());
    let mut first = Vec::with_capacity(s.volumes.len());
    for v in s.volumes.values() {
        let on: Option<Vec<usize>> = v
            .bricks
            .iter()
            .map(|b| b.split_once(':').and_then(|(st, _)| hosts.of(st, None)))
            .collect();
        first.push(on.as_ref().and_then(|h| {
            h.windows(2).for_each(|w| pools.union(w[0], w[1]));
            h.first().copied()
        }));
    }
    for (i, h) in s.hosts.values().enumerate() {
        for p in &h.peers {
            if let Some(j) = hosts.of(p, None) {
                pools.union(i, j);
            }
        }
    }
    let mine = hosts.index.get(host).map(|&i| pools.find(i));
    s.volumes
        .iter()
        .zip(first)
        .filter(|(_, at)| match at {
            Some(at) => Some(pools.find(*at)) == mine,
            None => true,
        })
        .map(|((n, v), _)| {
            let g = GlusterVolume {
                bricks: v.bricks.clone(),
                mark: v.options.get(OWNER_OPTION).cloned(),
            };
            (n.clone(), g)
        })
        .collect()
}

/// The model's hosts by index, and which host a storage name is.
struct HostNames<'s> {
    s: &'s MockState,
    names: Vec<&'s str>,
    index: HashMap<&'s str, usize>,
    /// Storage names found by a brick's mount.
    known: HashMap<&'s str, usize>,
}

impl<'s> HostNames<'s> {
    fn new(s: &'s MockState) -> HostNames<'s> {
        let names: Vec<&str> = s.hosts.keys().map(String::as_str).collect();
        let index = names.iter().enumerate().map(|(i, h)| (*h, i)).collect();
        HostNames {
            s,
            names,
            index,
            known: HashMap::new(),
        }
    }

    /// The host named `storage`, or the one holding the mount of brick `path` on it.
    fn of(&mut self, storage: &'s str, path: Option<&str>) -> Option<usize> {
        if let Some(&i) = self.index.get(storage).or_else(|| self.known.get(storage)) {
            return Some(i);
        }
        let dir = path?.strip_suffix("/brick")?;
        let i = self
            .names
            .iter()
            .position(|h| self.s.hosts[*h].mounts.contains(dir))?;
        self.known.insert(storage, i);
        Some(i)
    }
}

/// Disjoint sets of hosts by index (the trusted pools of [`pool_volumes`]).
struct UnionFind(Vec<usize>);

impl UnionFind {
    fn new(n: usize) -> UnionFind {
        UnionFind((0..n).collect())
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }

    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        self.0[a] = b;
    }
}

fn device_setup(s: &mut MockState, host: &str, device: &str, vg: &str, size: u64) -> ExecResult<DeviceInfo> {
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
}

fn volume_clone(
    s: &mut MockState,
    volume: &str,
    clone: &str,
    clone_id: &str,
) -> ExecResult<Vec<(String, String)>> {
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
            blocks: BTreeMap::new(),
        },
    );
    Ok(bricks)
}

fn heal_info(s: &MockState, volume: &str) -> ExecResult<Vec<HealBrick>> {
    let v = s
        .volumes
        .get(volume)
        .ok_or_else(|| fail(format!("Volume {volume} does not exist")))?;
    // No heal state in the model: a brick is connected when its node's glusterd is.
    Ok(v.bricks
        .iter()
        .map(|b| {
            let dir = brick_path(b);
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
}

fn inventory(s: &mut MockState, host: &str) -> ExecResult<NodeInventory> {
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
fn check_bricks_mounted(s: &MockState, mounts: &mut MountHints, bricks: &[String]) -> ExecResult<()> {
    for b in bricks {
        let path = brick_path(b);
        let dir = path.strip_suffix("/brick").unwrap_or(path);
        if !mounts.is_mounted(s, dir) {
            return Err(fail(format!("volume create: failed: brick {b} does not exist")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host holding the mounts of `bricks` (`storage:dir/brick`) and probing `peers`.
    fn host(bricks: &[&str], peers: &[&str]) -> MockHost {
        MockHost {
            mounts: bricks
                .iter()
                .map(|b| brick_path(b).strip_suffix("/brick").unwrap().to_string())
                .collect(),
            peers: peers.iter().map(|p| p.to_string()).collect(),
            ..MockHost::default()
        }
    }

    fn volume(bricks: &[&str]) -> MockVolume {
        MockVolume {
            bricks: bricks.iter().map(|b| b.to_string()).collect(),
            ..MockVolume::default()
        }
    }

    /// Two pools: a1-a4 (a4 holds no brick of a shared volume, only a peer probe joins it)
    /// and b1-b2. Each host answers its pool's volumes, and a volume on an unknown host.
    #[test]
    fn volume_info_answers_the_asking_hosts_trusted_pool() {
        let m = |s: &str, n: u32| format!("{s}:/var/lib/heketi/mounts/vg_{s}/brick_{n}/brick");
        let (a1, a2, a3, a4) = (m("sa1", 1), m("sa2", 1), m("sa3", 1), m("sa4", 1));
        let (b1, b2) = (m("sb1", 1), m("sb2", 1));
        let mut s = MockState::default();
        s.hosts.insert("a1".into(), host(&[&a1], &["sa2", "sa4"]));
        s.hosts.insert("a2".into(), host(&[&a2], &["sa3"]));
        s.hosts.insert("a3".into(), host(&[&a3], &[]));
        s.hosts.insert("a4".into(), host(&[&a4], &[]));
        s.hosts.insert("b1".into(), host(&[&b1], &["sb2"]));
        s.hosts.insert("b2".into(), host(&[&b2], &[]));
        s.volumes.insert("va".into(), volume(&[&a1, &a2, &a3]));
        s.volumes.insert("v4".into(), volume(&[&a4]));
        s.volumes.insert("vb".into(), volume(&[&b1, &b2]));
        // Not a mount, on a storage name known from another brick: in its host's pool.
        s.volumes.insert("foreign".into(), volume(&["sb2:/srv/foreign"]));
        s.volumes.insert("unknown".into(), volume(&["10.9.9.9:/srv/x"]));
        let names = |s: &MockState, host: &str| pool_volumes(s, host).into_keys().collect::<Vec<_>>();
        assert_eq!(names(&s, "a3"), ["unknown", "v4", "va"]);
        assert_eq!(names(&s, "a4"), ["unknown", "v4", "va"]);
        assert_eq!(names(&s, "b1"), ["foreign", "unknown", "vb"]);
        assert_eq!(names(&s, "nobody"), ["unknown"]);
        // Without the probe that joined a4, it is a pool of its own.
        s.hosts.get_mut("a1").unwrap().peers.remove("sa4");
        assert_eq!(names(&s, "a4"), ["unknown", "v4"]);
        assert_eq!(names(&s, "a1"), ["unknown", "va"]);
    }

    /// What the persister writes follows the model: a read leaves the generation unless it
    /// raised a guard's term or made a host's record; a change always moves it.
    #[test]
    fn only_changes_move_the_generation() {
        let mut state = MockState::default();
        state.hosts.insert("h".into(), host(&[], &[]));
        let nodes = Nodes::new(state, 10);
        let run = |host: &str, term: u64, verb: Verb| {
            let req = Request {
                host: host.into(),
                token: Some(FenceToken {
                    cluster: "c".into(),
                    term,
                }),
                operator: false,
                inject: None,
                verb,
            };
            let _ = nodes.run(&req);
            nodes.snapshot().1
        };
        let g0 = nodes.snapshot().1;
        let g1 = run("h", 1, Verb::Inventory);
        assert_eq!(g1, g0 + 1, "the first term seen on h is recorded");
        assert_eq!(run("h", 1, Verb::Inventory), g1, "a read under the same term");
        assert_eq!(run("h", 1, Verb::Volumes), g1);
        let g2 = run("h", 1, Verb::PeerProbe { peer: "x".into() });
        assert_eq!(g2, g1 + 1, "a probe changes the peers");
        assert_eq!(run("h", 2, Verb::Volumes), g2 + 1, "a higher term raised");
        assert_eq!(run("new", 2, Verb::Volumes), g2 + 2, "a new host's record");
        assert_eq!(run("h", 1, Verb::Inventory), g2 + 2, "a stale read refused");
    }

    /// A volume's bricks must be mounted somewhere, whatever the hints say: a brick mounted
    /// by a verb, one mounted only by a plant (no hint), one moved to another host by a
    /// plant (a stale hint), and one unmounted by a plant or by a verb.
    #[test]
    fn a_volume_needs_its_bricks_mounted_whatever_the_hints() {
        let mut state = MockState::default();
        let vg = MockVg {
            size: 1 << 30,
            extent: 4096,
            ..MockVg::default()
        };
        for h in ["a", "b"] {
            let mut host = host(&[], &[]);
            host.vgs.insert("vg_1".into(), vg.clone());
            state.hosts.insert(h.into(), host);
        }
        let nodes = Nodes::new(state, 100);
        let run = |host: &str, verb: Verb| {
            nodes.run(&Request {
                host: host.into(),
                token: None,
                operator: true,
                inject: None,
                verb,
            })
        };
        let dir = |n: u32| format!("/var/lib/heketi/mounts/vg_1/brick_{n}");
        let brick = |n: u32| format!("10.0.0.1:{}/brick", dir(n));
        let create = |n: u32| Verb::BrickCreate {
            vg: "vg_1".into(),
            lv: format!("brick_{n}"),
            tp: format!("tp_{n}"),
            mount_dir: dir(n),
            need: 1024,
        };
        let volume = |name: &str, n: u32| Verb::VolumeCreate {
            name: name.into(),
            id: format!("id_{name}"),
            bricks: vec![brick(n)],
            options: Vec::new(),
        };
        run("a", create(1)).unwrap();
        run("a", volume("v1", 1)).unwrap();
        // Mounted by a plant only: no hint, found on its host.
        nodes.change(|s| s.hosts.get_mut("b").unwrap().mounts.insert(dir(2)));
        run("a", volume("v2", 2)).unwrap();
        // Hinted on a, moved to b by a plant: found on b.
        run("a", create(3)).unwrap();
        nodes.change(|s| {
            s.hosts.get_mut("a").unwrap().mounts.remove(&dir(3));
            s.hosts.get_mut("b").unwrap().mounts.insert(dir(3))
        });
        run("a", volume("v3", 3)).unwrap();
        // Hinted on a, unmounted by a plant: refused.
        run("a", create(4)).unwrap();
        nodes.change(|s| s.hosts.get_mut("a").unwrap().mounts.remove(&dir(4)));
        let e = run("a", volume("v4", 4)).unwrap_err();
        assert!(format!("{e:?}").contains("does not exist"), "{e:?}");
        // Unmounted by its destroy: refused.
        run("b", create(5)).unwrap();
        run(
            "b",
            Verb::BrickDestroy {
                vg: "vg_1".into(),
                lv: "brick_5".into(),
                tp: "tp_5".into(),
                mount_dir: dir(5),
                path: brick(5),
            },
        )
        .unwrap();
        let e = run("a", volume("v5", 5)).unwrap_err();
        assert!(format!("{e:?}").contains("does not exist"), "{e:?}");
        let (s, _) = nodes.snapshot();
        assert_eq!(s.volumes.keys().collect::<Vec<_>>(), ["v1", "v2", "v3"]);
    }
}
