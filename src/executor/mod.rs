//! The executor: what Hekate asks of Gluster nodes, as domain verbs. Operations call these
//! verbs; implementations turn them into work on nodes: [`mock::MockExecutor`] (a model of
//! nodes, in memory or in a `hekate mock-nodes` process shared by a local cluster's replicas,
//! for dev clusters and control-plane tests) and the SSH
//! executor ([`sshexec::SshExecutor`], Heketi's command lines over [`ssh`]). Every verb is
//! idempotent: re-running it after a partial success converges, and every destroy tolerates
//! "already gone".

pub mod commands;
pub mod mock;
pub mod parse;
pub mod ssh;
pub mod sshexec;

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What every command Hekate sends to a node carries: the Raft group's identity and the
/// leader's term (the fencing token). The node-side guard (`deploy/node/hekate-guard`, or the
/// mock's model of it) keeps the highest term it has seen per cluster and refuses older ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceToken {
    /// The Raft group's identity (`state::identity`), so that several Hekate clusters can
    /// share nodes and a cluster rebuilt from scratch starts a fresh term record.
    pub cluster: String,
    pub term: u64,
}

tokio::task_local! {
    /// The token a verb runs under, set only by the fence (`ops::fence::Fenced`) around every
    /// verb it lets through. Executors refuse to send anything without one, so an executor
    /// call that bypasses the fence fails instead of reaching a node unfenced.
    pub(crate) static FENCE: FenceToken;
}

/// The fencing token of the verb running in this task, if any.
pub fn current_fence() -> Option<FenceToken> {
    FENCE.try_with(|t| t.clone()).ok()
}

/// The term of the verb running in this task (see [`FENCE`]), if any.
pub fn current_term() -> Option<u64> {
    FENCE.try_with(|t| t.term).ok()
}

/// Exit status of a command the node-side guard refused (fencing), with stderr starting
/// with [`GUARD_REFUSED_PREFIX`]. Both must match: a command's own status 86 is not a refusal.
pub const GUARD_REFUSED_STATUS: u32 = 86;
pub const GUARD_REFUSED_PREFIX: &str = "hekate-guard: refused: ";

/// The refusal a verb gets when it has no fencing token: a call that bypassed the fence.
pub fn unfenced(verb: &str, host: &str) -> ExecError {
    ExecError::Fenced(format!(
        "{verb} on {host} has no fencing token (cluster identity and term): not sent. \
         Every executor call must go through ops::fence::Fenced"
    ))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ExecError {
    /// The command ran and failed; the message is what the node said.
    #[error("{0}")]
    Failed(String),
    /// The host could not be reached.
    #[error("Unable to reach host {host}: {msg}")]
    Unreachable { host: String, msg: String },
    /// The object on the node is not Hekate's (no or another `user.heketi.id`, a name outside
    /// Hekate's LV names or mount root): nothing was done to it.
    #[error("{CONFLICT_PREFIX}{0}")]
    Foreign(String),
    /// Not executed: the node's guard refused the command's term (a newer leader has acted
    /// there), or the command had no fencing token. The runner stops and commits nothing;
    /// the current leader resumes the operation.
    #[error("fenced: {0}")]
    Fenced(String),
}

/// How an operation's error starts when it failed because a name on the nodes belongs to
/// something Hekate does not own; `/queue/{id}` answers such a failure with 409.
pub const CONFLICT_PREFIX: &str = "Conflict on the nodes: ";

/// The Gluster volume option that marks a volume as Hekate's (Heketi's mark, spec 6.6).
pub const OWNER_OPTION: &str = "user.heketi.id";

/// Where Heketi (and Hekate) mount bricks; mounts elsewhere are not ours.
pub const BRICK_ROOT: &str = "/var/lib/heketi/mounts/";

/// Where Gluster mounts snapshot (clone) bricks.
pub const SNAP_ROOTS: [&str; 2] = ["/run/gluster/snaps/", "/var/run/gluster/snaps/"];

/// Who owns a Gluster volume of a given name, as its options say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeOwner {
    /// No volume of that name.
    Absent,
    /// The volume carries `user.heketi.id <id>`.
    Marked(String),
    /// The volume exists without the mark: not Hekate's.
    Unmarked,
}

impl VolumeOwner {
    pub fn from_mark(mark: Option<&str>) -> VolumeOwner {
        match mark {
            Some(id) if !id.is_empty() => VolumeOwner::Marked(id.to_string()),
            _ => VolumeOwner::Unmarked,
        }
    }

    /// Whether the volume may be changed or destroyed as Hekate's volume `id`: it is absent,
    /// or carries exactly that mark. Otherwise the refusal names the conflict.
    pub fn check(&self, name: &str, id: &str) -> ExecResult<()> {
        match self {
            VolumeOwner::Absent => Ok(()),
            VolumeOwner::Marked(m) if m == id => Ok(()),
            VolumeOwner::Marked(m) => Err(ExecError::Foreign(format!(
                "Gluster volume {name} exists with {OWNER_OPTION} {m}, not {id}; Hekate leaves it alone"
            ))),
            VolumeOwner::Unmarked => Err(ExecError::Foreign(format!(
                "Gluster volume {name} exists and was not created by Hekate (no {OWNER_OPTION}); Hekate leaves it alone"
            ))),
        }
    }
}

/// One Gluster volume as `volume info` reports it (reconcile).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GlusterVolume {
    /// `storagehost:path`, in order.
    pub bricks: Vec<String>,
    /// The value of its `user.heketi.id` option, if set.
    pub mark: Option<String>,
}

pub type ExecResult<T> = Result<T, ExecError>;

/// A device as LVM reports it after setup.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub total_kib: u64,
    pub extent_kib: u64,
    pub used_kib: u64,
    pub pv_uuid: String,
    pub paths: Vec<String>,
}

/// One volume group as LVM reports it, with its logical volumes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VgInventory {
    pub total_kib: u64,
    pub used_kib: u64,
    /// LV name -> its thin pool (empty for a thin pool itself, or a plain LV).
    pub lvs: BTreeMap<String, String>,
}

/// What one node holds, read for reconcile (`lvs`/`vgdisplay`, mounts, fstab, peers).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeInventory {
    pub vgs: BTreeMap<String, VgInventory>,
    /// Every mount point on the node.
    pub mounts: BTreeSet<String>,
    /// Every mount point listed in the node's fstab.
    pub fstab: BTreeSet<String>,
    /// The trusted pool's other members as this node names them.
    pub peers: BTreeSet<String>,
}

/// One brick as `gluster volume heal <vol> info` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HealBrick {
    /// `storagehost:path` (Gluster 10 names unreachable bricks too).
    pub name: String,
    /// Its brick process answered (`Connected`).
    pub connected: bool,
    /// Entries waiting to be healed from this brick: a number, or `-` when unknown.
    pub entries: String,
}

/// One brick's LVM and mount layout (Heketi's naming).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrickSpec {
    pub id: String,
    pub vg: String,
    /// Thin pool LV name: `tp_<brick id>` for Hekate's bricks; imported Heketi bricks keep theirs.
    pub thin_pool: String,
    /// LV name and mount directory when they are not Heketi's defaults (clone bricks).
    pub lv_name: Option<String>,
    pub mount: Option<String>,
    pub tp_size: u64,
    pub meta_size: u64,
    pub size: u64,
    pub gid: i64,
    pub arbiter: bool,
}

impl BrickSpec {
    /// Refuses a brick whose names are not Hekate's: its VG `vg_<id>`, LV and thin pool plain
    /// LVM names, its mount under Hekate's mount root (or Gluster's snapshot mounts, for
    /// clones). Checked before any command touches a brick.
    pub fn check_ours(&self) -> ExecResult<()> {
        let lv_ok = |n: &str| crate::validate::is_lv_name(n);
        let vg_ok = self.vg.strip_prefix("vg_").is_some_and(crate::validate::is_uuid);
        let mount = self.mount_dir();
        let mount_ok = crate::validate::is_brick_path(&format!("{mount}/brick"))
            && (mount.starts_with(&format!("{BRICK_ROOT}{}/", self.vg))
                || SNAP_ROOTS.iter().any(|r| mount.starts_with(r)));
        if vg_ok && lv_ok(&self.lv()) && lv_ok(&self.tp()) && mount_ok {
            return Ok(());
        }
        Err(ExecError::Foreign(format!(
            "brick {}: {}/{} mounted at {mount} is not named as Hekate names bricks; Hekate leaves it alone",
            self.id,
            self.vg,
            self.lv()
        )))
    }

    pub fn tp(&self) -> String {
        self.thin_pool.clone()
    }
    pub fn lv(&self) -> String {
        self.lv_name
            .clone()
            .unwrap_or_else(|| format!("brick_{}", self.id))
    }
    pub fn mount_dir(&self) -> String {
        self.mount
            .clone()
            .unwrap_or_else(|| format!("/var/lib/heketi/mounts/{}/brick_{}", self.vg, self.id))
    }
    pub fn path(&self) -> String {
        format!("{}/brick", self.mount_dir())
    }
}

/// A Gluster volume to create or grow.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeSpec {
    pub id: String,
    pub name: String,
    /// `storagehost:path`, in set order.
    pub bricks: Vec<String>,
    pub replica: Option<i64>,
    pub arbiter: bool,
    pub disperse: Option<(i64, i64)>,
    /// `key value` pairs to `volume set` (empty entries skipped).
    pub options: Vec<String>,
}

/// A block volume to create inside a block-hosting volume (`gluster-block create`, spec
/// 6.8). Names (both `validate::is_volume_name`) are checked before
/// they reach a command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockSpec {
    /// The block-hosting volume's Gluster name.
    pub bhv: String,
    pub name: String,
    /// How many of `hosts` export the target (`ha <n>`).
    pub ha: usize,
    pub auth: bool,
    /// `prealloc full` (true) or `prealloc no`.
    pub prealloc: bool,
    /// Storage hostnames that export the target, in order.
    pub hosts: Vec<String>,
    pub size_gib: u64,
}

/// A block volume as gluster-block reports it (`create` or `info`, spec 6.8).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BlockTarget {
    /// `iqn.2016-12.org.gluster-block:<gbid>`.
    pub iqn: String,
    /// Empty unless auth is on (then the GBID).
    pub username: String,
    pub password: String,
    /// The hosts exporting it (`PORTAL(S)` hosts on create, `EXPORTED ON` on info).
    pub hosts: Vec<String>,
    /// GiB; on `info`, the size Gluster reports.
    pub size_gib: u64,
    /// GiB a client can use: the size, or the smallest size on a host where a resize failed.
    pub usable_gib: u64,
}

#[async_trait]
pub trait Executor: Send + Sync + 'static {
    /// Records the fence's term on the node's guard: from then on the node refuses every
    /// command of an older term of this cluster, and the claim itself waits until commands
    /// of older terms still running there have ended. Idempotent; cheap once done in a term.
    async fn claim(&self, host: &str) -> ExecResult<()>;
    async fn glusterd_check(&self, host: &str) -> ExecResult<()>;
    async fn peer_probe(&self, host: &str, new_peer: &str) -> ExecResult<()>;
    async fn peer_detach(&self, host: &str, peer: &str) -> ExecResult<()>;
    async fn device_setup(
        &self,
        host: &str,
        device: &str,
        vg: &str,
        destroydata: bool,
    ) -> ExecResult<DeviceInfo>;
    async fn device_teardown(&self, host: &str, device: &str, vg: &str) -> ExecResult<()>;
    async fn device_info(&self, host: &str, vg: &str) -> ExecResult<DeviceInfo>;
    async fn brick_create(&self, host: &str, brick: &BrickSpec) -> ExecResult<()>;
    /// Returns whether the thin pool is gone (so its space is free again).
    async fn brick_destroy(&self, host: &str, brick: &BrickSpec) -> ExecResult<bool>;
    /// `brick_create` of each `(host, brick)` at once, the results in the same order. Over
    /// SSH each runs on its own node's connection, all together (this default); the
    /// simulated nodes take the whole round in one request. Either way every brick is one
    /// verb to its node, with its own guard check, fault and command record.
    async fn brick_create_all(&self, bricks: &[(String, BrickSpec)]) -> Vec<ExecResult<()>> {
        futures::future::join_all(bricks.iter().map(|(host, b)| self.brick_create(host, b))).await
    }
    /// `brick_destroy` of each `(host, brick)` at once, as [`Executor::brick_create_all`].
    async fn brick_destroy_all(&self, bricks: &[(String, BrickSpec)]) -> Vec<ExecResult<bool>> {
        futures::future::join_all(bricks.iter().map(|(host, b)| self.brick_destroy(host, b))).await
    }
    async fn volume_create(&self, host: &str, vol: &VolumeSpec) -> ExecResult<()>;
    async fn volume_expand(&self, host: &str, vol: &VolumeSpec, new_bricks: &[String]) -> ExecResult<()>;
    /// Stops and deletes the volume `name` if it is absent or Hekate's volume `id` (its
    /// `user.heketi.id`); any other volume of that name is refused with [`ExecError::Foreign`].
    async fn volume_destroy(&self, host: &str, name: &str, id: &str) -> ExecResult<()>;
    /// Whose the volume `name` is (read-only): the check before a create or clone.
    async fn volume_owner(&self, host: &str, name: &str) -> ExecResult<VolumeOwner>;
    /// `gluster volume replace-brick <vol> <old> <new> commit force`; done if `new` is
    /// already in place of `old`.
    async fn replace_brick(&self, host: &str, volume: &str, old: &str, new: &str) -> ExecResult<()>;
    /// The volume's bricks (`storagehost:path`) in Gluster's order (sets are consecutive).
    async fn volume_bricks(&self, host: &str, volume: &str) -> ExecResult<Vec<String>>;
    /// Snapshot `volume`, clone the snapshot as `clone`, mark the clone with `clone_id`
    /// (`user.heketi.id`; Gluster copies the origin's), start it, drop the snapshot (spec
    /// 6.7). Returns the clone's bricks in order: (`storagehost:path`, LV name). Idempotent
    /// for a clone marked `clone_id`; any other volume named `clone` is refused.
    async fn volume_clone(
        &self,
        host: &str,
        volume: &str,
        clone: &str,
        clone_id: &str,
    ) -> ExecResult<Vec<(String, String)>>;
    /// The volume's heal state, brick by brick (the safety check before `replace-brick`).
    async fn heal_info(&self, host: &str, volume: &str) -> ExecResult<Vec<HealBrick>>;
    /// What the node holds (reconcile). Read-only.
    async fn inventory(&self, host: &str) -> ExecResult<NodeInventory>;
    /// Every Gluster volume of the trusted pool `host` belongs to, by name.
    async fn volumes(&self, host: &str) -> ExecResult<BTreeMap<String, GlusterVolume>>;
    /// `gluster-block create`: the block volume and its iSCSI target, exported on
    /// `spec.hosts`. A block volume of that name already in the BHV is a failure (the caller
    /// asks [`Executor::block_info`] first on a resumed attempt).
    async fn block_create(&self, host: &str, spec: &BlockSpec) -> ExecResult<BlockTarget>;
    /// `gluster-block info`: the block volume `name` in `bhv`, or None when there is none.
    async fn block_info(&self, host: &str, bhv: &str, name: &str) -> ExecResult<Option<BlockTarget>>;
    /// `gluster-block modify ... size`: grows the block volume to `size_gib`.
    async fn block_modify(&self, host: &str, bhv: &str, name: &str, size_gib: u64) -> ExecResult<()>;
    /// `gluster-block delete`; a block volume (or BHV) that does not exist counts as deleted.
    async fn block_delete(&self, host: &str, bhv: &str, name: &str) -> ExecResult<()>;
    /// `gluster-block list`: the names of the block volumes in `bhv` (reconcile).
    async fn block_list(&self, host: &str, bhv: &str) -> ExecResult<Vec<String>>;
}
