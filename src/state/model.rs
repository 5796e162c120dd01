//! The stored records of the replicated state. Field names follow Heketi's DB entries so
//! export/import stays a mapping, not a translation. Sizes: devices and bricks in KiB,
//! volumes in GiB (Heketi's units).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::record::Record;

pub type Tags = BTreeMap<String, String>;

/// A Gluster cluster: which node and volume ids it holds and what volumes it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterEntry {
    pub id: String,
    pub file: bool,
    pub block: bool,
    pub nodes: BTreeSet<String>,
    /// Number of (visible) volumes; the ids are index keys `cv/<cluster>/<volume>`, so adding
    /// a volume does not rewrite a record that grows with the cluster.
    pub volume_count: u64,
    pub blockvolumes: BTreeSet<String>,
}

impl Record for ClusterEntry {
    const KIND: &'static str = "cluster";
    const VERSION: u16 = 1;
}

impl ClusterEntry {
    pub fn new(id: String, file: bool, block: bool) -> ClusterEntry {
        ClusterEntry {
            id,
            file,
            block,
            nodes: BTreeSet::new(),
            volume_count: 0,
            blockvolumes: BTreeSet::new(),
        }
    }
}

/// A node's or a device's state (Heketi's `EntryState`). Stored, compared and shown as its
/// string, exactly as the `String` field it replaced (bincode and JSON alike: serialized with
/// `serialize_str`); a string Hekate does not know (an imported dump) is kept as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntryState {
    Online,
    Offline,
    Failed,
    Unknown(String),
}

impl EntryState {
    pub fn parse(s: &str) -> EntryState {
        match s {
            "online" => EntryState::Online,
            "offline" => EntryState::Offline,
            "failed" => EntryState::Failed,
            other => EntryState::Unknown(other.to_string()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            EntryState::Online => "online",
            EntryState::Offline => "offline",
            EntryState::Failed => "failed",
            EntryState::Unknown(s) => s,
        }
    }
    pub fn is_online(&self) -> bool {
        *self == EntryState::Online
    }
}

impl std::fmt::Display for EntryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for EntryState {
    fn from(s: &str) -> EntryState {
        EntryState::parse(s)
    }
}

impl From<String> for EntryState {
    fn from(s: String) -> EntryState {
        EntryState::parse(&s)
    }
}

impl From<&EntryState> for String {
    fn from(s: &EntryState) -> String {
        s.as_str().to_string()
    }
}

impl PartialEq<&str> for EntryState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for EntryState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EntryState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<EntryState, D::Error> {
        String::deserialize(d).map(EntryState::from)
    }
}

/// A Gluster node. `manage[0]` is the SSH target, `storage[0]` the peer/brick/mount host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    pub id: String,
    pub cluster: String,
    pub zone: i64,
    pub manage: Vec<String>,
    pub storage: Vec<String>,
    pub tags: Tags,
    pub state: EntryState,
    pub devices: BTreeSet<String>,
    /// Set while the node-add or node-delete operation with this id runs.
    pub pending: Option<String>,
}

impl Record for NodeEntry {
    const KIND: &'static str = "node";
    const VERSION: u16 = 1;
}

impl NodeEntry {
    pub fn manage_host(&self) -> &str {
        self.manage.first().map(String::as_str).unwrap_or_default()
    }
    pub fn storage_host(&self) -> &str {
        self.storage.first().map(String::as_str).unwrap_or_default()
    }
}

/// A block device given to Hekate: one LVM PV and one VG `vg_<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEntry {
    pub id: String,
    pub name: String,
    pub node: String,
    pub tags: Tags,
    pub state: EntryState,
    pub total: u64,
    pub free: u64,
    pub used: u64,
    pub extent_size: u64,
    pub pv_uuid: String,
    pub paths: Vec<String>,
    /// Number of bricks; the ids are index keys `db/<device>/<brick>` (a device may hold
    /// thousands, and its record is rewritten on every brick change).
    pub brick_count: u64,
    pub pending: Option<String>,
}

impl Record for DeviceEntry {
    const KIND: &'static str = "device";
    const VERSION: u16 = 1;
}

impl DeviceEntry {
    pub fn vg(&self) -> String {
        format!("vg_{}", self.id)
    }
}

/// Brick roles.
pub const SUBTYPE_NORMAL: u8 = 1;
pub const SUBTYPE_ARBITER: u8 = 2;

/// One brick: a thin pool `tp_<id>` with a thin LV `brick_<id>` on its device's VG, mounted
/// at `/var/lib/heketi/mounts/vg_<device>/brick_<id>`, path = mount + `/brick`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrickEntry {
    pub id: String,
    pub path: String,
    pub device: String,
    pub node: String,
    pub volume: String,
    /// Virtual (thin LV) size, KiB.
    pub size: u64,
    /// Thin pool size, KiB.
    pub tp_size: u64,
    pub pool_metadata_size: u64,
    pub subtype: u8,
    pub pending: Option<String>,
    /// The thin pool's LV name when it is not `tp_<id>` (bricks imported from Heketi, clones).
    pub lvm_thin_pool: Option<String>,
    /// The LV's name when it is not `brick_<id>` (clone bricks, named by Gluster).
    pub lvm_lv: Option<String>,
    /// The thin pool is shared with a clone's brick (or a clone's origin).
    pub pool_shared: bool,
}

impl Record for BrickEntry {
    const KIND: &'static str = "brick";
    const VERSION: u16 = 1;
}

impl BrickEntry {
    pub fn thin_pool(&self) -> String {
        self.lvm_thin_pool
            .clone()
            .unwrap_or_else(|| format!("tp_{}", self.id))
    }

    /// What the brick takes from its device (Heketi: thin pool + its metadata).
    pub fn allocation(&self) -> u64 {
        self.tp_size.saturating_add(self.pool_metadata_size)
    }
    pub fn mount_dir(&self) -> String {
        format!("/var/lib/heketi/mounts/vg_{}/brick_{}", self.device, self.id)
    }
}

/// What a durability means, from its `kind` as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurabilityKind {
    /// `none` (or anything not below): one brick per set.
    Distribute,
    Replicate,
    Disperse,
}

/// The durability as the client asked for it, echoed as given (Heketi's quirk) plus what it means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Durability {
    /// `none`, `replicate` or `disperse`.
    pub kind: String,
    pub replica: Option<i64>,
    pub data: Option<i64>,
    pub redundancy: Option<i64>,
}

impl Durability {
    pub fn kind(&self) -> DurabilityKind {
        match self.kind.as_str() {
            "replicate" => DurabilityKind::Replicate,
            "disperse" => DurabilityKind::Disperse,
            _ => DurabilityKind::Distribute,
        }
    }

    /// Bricks per set.
    pub fn set_size(&self) -> usize {
        match self.kind() {
            DurabilityKind::Replicate => self.effective_replica() as usize,
            DurabilityKind::Disperse => self
                .data
                .unwrap_or(0)
                .saturating_add(self.redundancy.unwrap_or(0))
                .max(0) as usize,
            DurabilityKind::Distribute => 1,
        }
    }
    /// Replica 0 or absent means 2 (Heketi).
    pub fn effective_replica(&self) -> i64 {
        match self.replica {
            None | Some(0) => 2,
            Some(r) => r,
        }
    }
    /// Other bricks of a set that must be up before one of them is replaced (Heketi's rule:
    /// distribute 1, replica r < 3: 1, else r/2 + 1; disperse: `data`).
    pub fn replace_quorum(&self) -> usize {
        match self.kind() {
            DurabilityKind::Replicate if self.effective_replica() >= 3 => {
                (self.effective_replica() / 2 + 1) as usize
            }
            DurabilityKind::Disperse => self.data.unwrap_or(1).max(1) as usize,
            _ => 1,
        }
    }
    /// Bricks of a set that hold data (disperse: `data`; else 1, each brick holds a full copy).
    pub fn data_bricks(&self) -> u64 {
        if self.kind() == DurabilityKind::Disperse {
            self.data.unwrap_or(1).max(1) as u64
        } else {
            1
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeEntry {
    pub id: String,
    pub name: String,
    pub cluster: String,
    /// GiB.
    pub size: u64,
    pub durability: Durability,
    pub gid: i64,
    /// As reported by the API (pre-request, request, post-request options; may hold "").
    pub options: Vec<String>,
    pub block: bool,
    pub snapshot_enable: bool,
    pub snapshot_factor: f32,
    pub arbiter: bool,
    pub bricks: BTreeSet<String>,
    /// The operation working on this volume (create, delete or expand).
    pub pending: Option<String>,
    /// Hidden from lists and info while it is being created or deleted (Heketi's rule).
    pub hidden: bool,
    /// Block-hosting volumes: free and reserved GiB, and the restriction (`""`, `locked`...).
    pub block_free: u64,
    pub block_reserved: u64,
    pub block_restriction: String,
    /// The `clusters` list of the create request (kept for Heketi's dump format).
    pub request_clusters: Vec<String>,
    /// Brick ids in Gluster's order, set by set (empty for volumes imported from Heketi,
    /// whose order is read from Gluster when needed).
    pub brick_sets: Vec<Vec<String>>,
}

impl Record for VolumeEntry {
    const KIND: &'static str = "volume";
    const VERSION: u16 = 1;
}

/// The kinds of asynchronous operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpKind {
    NodeAdd,
    NodeDelete,
    NodeState,
    DeviceAdd,
    DeviceDelete,
    DeviceState,
    DeviceResync,
    VolumeCreate,
    VolumeDelete,
    VolumeExpand,
    BrickEvict,
    DeviceRemove,
    NodeRemove,
    VolumeClone,
    VolumeRestriction,
    Cleanup,
    NodeHealth,
    BlockVolumeCreate,
    BlockVolumeDelete,
    BlockVolumeExpand,
}

impl OpKind {
    /// Heketi's `type_name` in `/operations/pending`.
    pub fn type_name(self) -> &'static str {
        match self {
            OpKind::VolumeCreate => "create-volume",
            OpKind::VolumeDelete => "delete-volume",
            OpKind::VolumeExpand => "expand-volume",
            OpKind::BrickEvict => "evict-brick",
            OpKind::DeviceRemove | OpKind::NodeRemove => "remove-device",
            OpKind::VolumeClone => "clone-volume",
            OpKind::BlockVolumeCreate => "create-block-volume",
            OpKind::BlockVolumeDelete => "delete-block-volume",
            OpKind::BlockVolumeExpand => "expand-block-volume",
            _ => "unknown",
        }
    }
}

/// An operation: the replicated queue entry and the complete intent of the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub id: String,
    pub kind: OpKind,
    /// Unix seconds, from the proposer.
    pub created: u64,
    pub finished: Option<u64>,
    pub status: OpStatus,
    /// The role that started it (a user token may poll its own operations).
    pub by_user: bool,
    pub plan: OpPlan,
    /// Where `/queue/{id}` redirects on success (None: 204).
    pub location: Option<String>,
    pub error: Option<String>,
    /// Steps already committed (evictions done), so a new leader resumes after them.
    pub progress: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpStatus {
    Pending,
    Done,
    Failed,
}

impl Record for Operation {
    const KIND: &'static str = "operation";
    const VERSION: u16 = 1;
}

/// Everything the runner needs to execute an operation, decided when it was accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OpPlan {
    NodeAdd {
        node: NodeEntry,
        probe_from: Option<String>,
    },
    NodeDelete {
        node: String,
        detach_from: Option<String>,
    },
    NodeState {
        node: String,
        state: String,
    },
    DeviceAdd {
        device: DeviceEntry,
        host: String,
        destroydata: bool,
    },
    DeviceDelete {
        device: String,
        host: String,
        forget: bool,
    },
    DeviceState {
        device: String,
        state: String,
    },
    DeviceResync {
        device: String,
        host: String,
    },
    VolumeCreate {
        volume: VolumeEntry,
        bricks: Vec<BrickEntry>,
    },
    VolumeDelete {
        volume: String,
    },
    VolumeExpand {
        volume: String,
        bricks: Vec<BrickEntry>,
        delta: u64,
    },
    /// Replace bricks by new ones elsewhere; then mark the device(s) (and node) failed.
    Evict {
        node: Option<String>,
        devices: Vec<String>,
        evictions: Vec<Eviction>,
        healcheck: bool,
    },
    /// Clone `source` (through a Gluster snapshot) as `clone`.
    VolumeClone {
        source: String,
        clone: VolumeEntry,
    },
    /// Lock or unlock a block-hosting volume.
    VolumeRestriction {
        volume: String,
        restriction: String,
    },
    /// `POST /operations/pending/cleanup`: nothing is ever stale in Hekate.
    Cleanup,
    /// Probe a node's glusterd once and record its health (`POST /health/nodes/{id}`); log
    /// format 2.
    NodeHealth {
        node: String,
    },
    /// `POST /blockvolumes`: a block volume in the block-hosting volume `block.bhv`, which is
    /// `new_bhv` (with its `bricks`) when one is created for it; log format 3.
    BlockVolumeCreate {
        block: Box<BlockVolumeEntry>,
        new_bhv: Option<Box<VolumeEntry>>,
        bricks: Vec<BrickEntry>,
        /// `prealloc full` (true) or `no` (`block_prealloc`).
        prealloc: bool,
    },
    /// `DELETE /blockvolumes/{id}`; log format 3.
    BlockVolumeDelete {
        block: String,
    },
    /// `POST /blockvolumes/{id}/expand` to `new_size` GiB; log format 3.
    BlockVolumeExpand {
        block: String,
        new_size: u64,
    },
}

/// A block volume (gluster-block): a file in a block-hosting volume (BHV), exported as an
/// iSCSI target by `hosts`. Sizes in GiB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockVolumeEntry {
    pub id: String,
    /// Unique within its BHV.
    pub name: String,
    pub cluster: String,
    /// The block-hosting volume's id.
    pub bhv: String,
    pub size: u64,
    /// What a client can use (less than `size` after a resize that failed on some host).
    pub usable_size: u64,
    /// As requested until created; then the number of hosts exporting it.
    pub hacount: i64,
    pub auth: bool,
    /// Storage hostnames exporting the target (from gluster-block).
    pub hosts: Vec<String>,
    pub iqn: String,
    pub username: String,
    pub password: String,
    /// The operation working on it (create, delete, expand).
    pub pending: Option<String>,
    /// Hidden from lists and info while it is being created or deleted (Heketi's rule).
    pub hidden: bool,
}

impl BlockVolumeEntry {
    /// What a client can use: the recorded usable size, or the size when none is recorded.
    pub fn usable(&self) -> u64 {
        if self.usable_size == 0 {
            self.size
        } else {
            self.usable_size
        }
    }
}

impl Record for BlockVolumeEntry {
    const KIND: &'static str = "block volume";
    const VERSION: u16 = 1;
}

/// What gluster-block made of a created block volume: the hosts exporting it and its iSCSI
/// identity ([`super::command::Command::OpFinishBlock`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BlockExport {
    pub hosts: Vec<String>,
    pub iqn: String,
    pub username: String,
    pub password: String,
    pub usable_size: u64,
}

/// One brick moved: `old` is replaced in its volume by `new`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Eviction {
    pub volume: String,
    pub old: String,
    pub new: BrickEntry,
}

/// What the runner reports back when the remote steps succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ExecReport {
    /// Device add / resync: sizes read from LVM.
    pub device_total: Option<u64>,
    pub device_extent: Option<u64>,
    pub device_used: Option<u64>,
    pub pv_uuid: Option<String>,
    pub paths: Vec<String>,
    /// Volume clone: each new brick (source brick id, `path`, LV name), in Gluster's order.
    pub clones: Vec<(String, String, String)>,
}

/// The ids of the operations not yet finished.
/// What the leader's health monitor last saw of a node's glusterd (`ops::health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeHealth {
    pub up: bool,
    /// When it was seen so (Unix seconds).
    pub checked: u64,
}

impl Record for NodeHealth {
    const KIND: &'static str = "node health";
    const VERSION: u16 = 1;
}

impl NodeHealth {
    /// How long an observation counts (Heketi's: 2 hours).
    pub const EXPIRES_SECS: u64 = 2 * 3600;

    /// Seen down, and not so long ago that the observation expired: placement and
    /// single-host commands skip the node.
    pub fn down_at(&self, now: u64) -> bool {
        !self.up && now.saturating_sub(self.checked) < Self::EXPIRES_SECS
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOps {
    pub ids: BTreeSet<String>,
}

impl Record for PendingOps {
    const KIND: &'static str = "pending operations";
    const VERSION: u16 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use hekate_raft::codec;

    /// The `String` field `EntryState` replaced, as earlier builds wrote it.
    #[derive(Serialize, Deserialize)]
    struct NodeBefore {
        id: String,
        cluster: String,
        zone: i64,
        manage: Vec<String>,
        storage: Vec<String>,
        tags: Tags,
        state: String,
        devices: BTreeSet<String>,
        pending: Option<String>,
    }

    #[test]
    fn entry_state_encodes_exactly_as_the_string_it_replaced() {
        for s in ["online", "offline", "failed", "", "something else"] {
            let before = NodeBefore {
                id: "n".into(),
                cluster: "c".into(),
                zone: 1,
                manage: vec!["m".into()],
                storage: vec!["s".into()],
                tags: Default::default(),
                state: s.into(),
                devices: Default::default(),
                pending: None,
            };
            let bytes = codec::encode(&before).unwrap();
            let now: NodeEntry = codec::decode(&bytes).unwrap();
            assert_eq!(now.state.as_str(), s);
            assert_eq!(codec::encode(&now).unwrap(), bytes, "bincode of {s:?}");
            assert_eq!(
                serde_json::to_string(&now).unwrap(),
                serde_json::to_string(&before).unwrap(),
                "JSON of {s:?}"
            );
        }
        assert_eq!(EntryState::parse("failed"), EntryState::Failed);
        assert!(EntryState::Online == "online" && EntryState::Online.is_online());
    }

    #[test]
    fn durability_kinds() {
        let d = |k: &str| Durability {
            kind: k.into(),
            ..Default::default()
        };
        assert_eq!(d("replicate").kind(), DurabilityKind::Replicate);
        assert_eq!(d("disperse").kind(), DurabilityKind::Disperse);
        assert_eq!(d("none").kind(), DurabilityKind::Distribute);
        assert_eq!(d("").kind(), DurabilityKind::Distribute);
        assert_eq!(d("replicate").set_size(), 2);
    }
}
