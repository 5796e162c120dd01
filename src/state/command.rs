//! The command catalogue: the only way replicated state changes. Each variant is one
//! committed log entry. Variants are append-only: never reorder or remove one (bincode
//! encodes the variant index), add new ones at the end, and give a new one the log format it
//! first appears in (`state::format::needs`): the leader proposes it only once every member
//! reads that format. The encoding of every variant is frozen by golden fixtures
//! (`state/testdata/log-v*`).

use hekate_raft::{StateReader, StoreError, Txn};
use serde::{Deserialize, Serialize};

use super::model::{
    BlockExport, BlockVolumeEntry, BrickEntry, ClusterEntry, DeviceEntry, ExecReport, NodeEntry, Operation,
    Tags, VolumeEntry,
};
use super::{keys, ops, record};

/// The records an import writes ([`Command::Import`]), converted from a Heketi dump and
/// checked for consistency by `dump::plan_import` before it is proposed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ImportSet {
    pub clusters: Vec<(ClusterEntry, Vec<String>)>,
    pub nodes: Vec<NodeEntry>,
    pub devices: Vec<(DeviceEntry, Vec<String>)>,
    pub bricks: Vec<BrickEntry>,
    pub volumes: Vec<VolumeEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Create an empty cluster with a proposer-made id.
    ClusterCreate { id: String, file: bool, block: bool },
    /// Set both flags of a cluster.
    ClusterSetFlags { id: String, file: bool, block: bool },
    /// Delete a cluster that holds no nodes and no volumes.
    ClusterDelete { id: String },
    /// Accept an operation: check it against the state, reserve what it needs (capacity,
    /// names, hostnames), record it as pending. See `state::ops`.
    OpBegin { op: Box<Operation> },
    /// The runner's remote steps succeeded: make the result visible.
    OpFinish {
        id: String,
        report: ExecReport,
        now: u64,
    },
    /// The runner gave up (after cleaning up on the nodes): undo the reservation.
    OpFail { id: String, error: String, now: u64 },
    /// Forget finished operations older than `before` (Unix seconds).
    OpGc { before: u64 },
    /// Replace a node's or device's tags.
    SetTags {
        node: Option<String>,
        device: Option<String>,
        tags: Tags,
    },
    /// Set the cluster-wide admin state (`normal`, `read-only`, `local-client`).
    SetAdminState { state: String },
    /// Load a converted Heketi dump into an empty state.
    Import { set: Box<ImportSet> },
    /// One step of a multi-step operation succeeded on the nodes (an eviction), or an
    /// operation passed its point of no return (index 0 of a volume delete or expand, see
    /// `state::ops::step`): commit it, so that a new leader resumes after it.
    OpStep { id: String, index: usize },
    /// `OpBegin` refused with [`Outcome::Busy`] when `max_inflight` operations are already
    /// pending: the check and the reservation happen in one apply, so two concurrent
    /// requests cannot both pass the limit.
    OpBeginLimited { op: Box<Operation>, max_inflight: u64 },
    /// Forget finished operations older than `before` (Unix seconds) and all but the newest
    /// `keep` finished ones: retention by time and by count (docs/footprint.md).
    OpGcBounded { before: u64, keep: u64 },
    /// Set the Raft group's identity (the cluster part of every fencing token) if it has
    /// none: proposed by the first leader with a fresh id, never changed after.
    SetIdentity { id: String },
    /// An expand failed after `add-brick` took effect for some of its bricks: `kept` (read
    /// back from Gluster) join the volume, the others are released (`state::ops::fail_kept`).
    OpFailKept {
        id: String,
        kept: Vec<String>,
        error: String,
        now: u64,
    },
    /// Raise the log format new entries are written in (`state::format`): proposed by the
    /// leader once every member reported that its build reads `format`. Never lowers it.
    /// Log format 1.
    SetLogFormat { format: u16 },
    /// Record what the health monitor saw of a node's glusterd at `now` (Unix seconds).
    /// Proposed by the leader's monitor when it changes (or to refresh an old observation).
    /// Log format 2.
    SetNodeHealth { node: String, up: bool, now: u64 },
    /// A block volume create's remote steps succeeded: the block volume shows with what
    /// gluster-block made of it (hosts, IQN, credentials). Log format 3.
    OpFinishBlock {
        id: String,
        export: BlockExport,
        now: u64,
    },
    /// Load a converted Heketi dump that holds block volumes into an empty state: the
    /// records of [`Command::Import`] and the block volumes. Log format 3.
    ImportWithBlock {
        set: Box<ImportSet>,
        blockvolumes: Vec<BlockVolumeEntry>,
    },
}

/// What applying a command did. Refusals are values: every replica refuses identically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Done,
    NotFound,
    Conflict(String),
    /// Bad request (400) found against the state.
    Invalid(String),
    /// The request cannot be satisfied (500 in Heketi's terms, e.g. `No space`).
    Failed(String),
    /// Too many operations in flight (Heketi's 429).
    Busy,
}

pub fn apply(cmd: Command, txn: &mut Txn<'_>) -> Result<Outcome, StoreError> {
    match cmd {
        Command::ClusterCreate { id, file, block } => {
            if txn.get(&keys::cluster(&id))?.is_some() {
                return Ok(Outcome::Conflict(format!("cluster {id} already exists")));
            }
            let c = ClusterEntry::new(id, file, block);
            txn.put(keys::cluster(&c.id), record::encode(&c)?);
            Ok(Outcome::Done)
        }
        Command::ClusterSetFlags { id, file, block } => {
            let Some(mut c) = super::get_cluster(txn, &id)? else {
                return Ok(Outcome::NotFound);
            };
            c.file = file;
            c.block = block;
            txn.put(keys::cluster(&id), record::encode(&c)?);
            Ok(Outcome::Done)
        }
        Command::ClusterDelete { id } => {
            let Some(c) = super::get_cluster(txn, &id)? else {
                return Ok(Outcome::NotFound);
            };
            if !c.nodes.is_empty() || c.volume_count > 0 {
                return Ok(Outcome::Conflict(format!(
                    "Unable to delete cluster [{id}] because it contains volumes and/or nodes"
                )));
            }
            txn.delete(keys::cluster(&id));
            Ok(Outcome::Done)
        }
        Command::OpBegin { op } => ops::begin(*op, txn),
        Command::OpBeginLimited { op, max_inflight } => {
            if super::pending_op_ids(txn)?.len() as u64 >= max_inflight {
                return Ok(Outcome::Busy);
            }
            ops::begin(*op, txn)
        }
        Command::OpFinish { id, report, now } => ops::finish(&id, &report, now, txn),
        Command::OpFail { id, error, now } => ops::fail(&id, &error, now, txn),
        Command::OpGc { before } => ops::gc(before, txn),
        Command::OpGcBounded { before, keep } => ops::gc_bounded(before, keep, txn),
        Command::SetTags { node, device, tags } => ops::set_tags(node, device, tags, txn),
        Command::Import { set } => import(*set, txn),
        Command::ImportWithBlock { set, blockvolumes } => {
            let out = import(*set, txn)?;
            if out != Outcome::Done {
                return Ok(out);
            }
            import_blockvolumes(&blockvolumes, txn)
        }
        Command::OpFinishBlock { id, export, now } => ops::finish_block(&id, &export, now, txn),
        Command::OpStep { id, index } => ops::step(&id, index, txn),
        Command::OpFailKept { id, kept, error, now } => ops::fail_kept(&id, &kept, &error, now, txn),
        Command::SetAdminState { state } => {
            txn.put(keys::ADMIN_STATE.to_vec(), state.into_bytes());
            Ok(Outcome::Done)
        }
        Command::SetLogFormat { format } => super::format::raise(format, txn),
        Command::SetNodeHealth { node, up, now } => {
            if super::get_node(txn, &node)?.is_none() {
                return Ok(Outcome::NotFound);
            }
            let health = super::model::NodeHealth { up, checked: now };
            txn.put(keys::health(&node), record::encode(&health)?);
            Ok(Outcome::Done)
        }
        Command::SetIdentity { id } => match super::identity(txn)? {
            Some(have) if have == id => Ok(Outcome::Done),
            Some(have) => Ok(Outcome::Conflict(format!(
                "the cluster's identity is already {have}"
            ))),
            None if !crate::validate::is_uuid(&id) => {
                Ok(Outcome::Invalid(format!("identity {id:?} is not a 32-hex id")))
            }
            None => {
                txn.put(keys::IDENTITY.to_vec(), id.into_bytes());
                Ok(Outcome::Done)
            }
        },
    }
}

fn import(set: ImportSet, txn: &mut Txn<'_>) -> Result<Outcome, StoreError> {
    if !txn.scan_prefix(keys::CLUSTER_PREFIX)?.is_empty() {
        return Ok(Outcome::Conflict(
            "Hekate already holds clusters; import needs an empty cluster".into(),
        ));
    }
    for (c, volumes) in &set.clusters {
        txn.put(keys::cluster(&c.id), record::encode(c)?);
        for v in volumes {
            txn.put(keys::cluster_volume(&c.id, v), Vec::new());
        }
    }
    for n in &set.nodes {
        txn.put(keys::node(&n.id), record::encode(n)?);
        for h in &n.manage {
            txn.put(keys::manage_host(h), n.id.as_bytes().to_vec());
        }
        for h in &n.storage {
            txn.put(keys::storage_host(h), n.id.as_bytes().to_vec());
        }
    }
    for (d, bricks) in &set.devices {
        txn.put(keys::device(&d.id), record::encode(d)?);
        for b in bricks {
            txn.put(keys::device_brick(&d.id, b), Vec::new());
        }
    }
    for b in &set.bricks {
        txn.put(keys::brick(&b.id), record::encode(b)?);
    }
    for v in &set.volumes {
        txn.put(keys::volume(&v.id), record::encode(v)?);
        txn.put(keys::volume_name(&v.cluster, &v.name), v.id.as_bytes().to_vec());
    }
    Ok(Outcome::Done)
}

/// The block volumes of an import (after its volumes): each with its name and its place in
/// its block-hosting volume, listed in its cluster.
fn import_blockvolumes(blocks: &[BlockVolumeEntry], txn: &mut Txn<'_>) -> Result<Outcome, StoreError> {
    for b in blocks {
        txn.put(keys::blockvolume(&b.id), record::encode(b)?);
        txn.put(keys::blockvolume_name(&b.bhv, &b.name), b.id.as_bytes().to_vec());
        txn.put(keys::bhv_block(&b.bhv, &b.id), Vec::new());
        if let Some(mut c) = super::get_cluster(txn, &b.cluster)? {
            c.blockvolumes.insert(b.id.clone());
            txn.put(keys::cluster(&c.id), record::encode(&c)?);
        }
    }
    Ok(Outcome::Done)
}
