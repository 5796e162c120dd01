//! Hekate's replicated state: the command catalogue, the stored records and the
//! deterministic `apply` that the replicated core runs on every replica.
//!
//! `apply` reads no clock, randomness or environment: ids and times come inside the command.
//! A business refusal (unknown id, no space) is an [`Outcome`], never an error; an error
//! means the store failed. See docs/design/raft-state.md.

pub mod command;
pub mod format;
pub mod keys;
pub mod model;
pub mod ops;
pub mod record;

use hekate_raft::app::View;
use hekate_raft::codec::CodecError;
use hekate_raft::{Application, Replica, StateReader, StoreError, Txn};

pub use command::{Command, ImportSet, Outcome};
pub use model::{BlockVolumeEntry, BrickEntry, ClusterEntry, DeviceEntry, NodeEntry, Operation, VolumeEntry};
use record::Record;

/// The application plugged into the replicated core.
pub struct HekateApp;

/// A replica of the replicated core running Hekate's application: what the API, the
/// operation runner and reconcile propose to and read from.
pub type HekateReplica = Replica<HekateApp>;

impl Application for HekateApp {
    type Command = Command;
    type Response = Outcome;

    fn apply(&self, cmd: Command, txn: &mut Txn<'_>) -> Result<Outcome, StoreError> {
        command::apply(cmd, txn)
    }

    const LOG_FORMAT: u16 = format::CURRENT;

    fn encode_command(&self, cmd: &Command, state: &View<'_>) -> Result<Vec<u8>, String> {
        let agreed = format::agreed(state).map_err(|e| e.to_string())?;
        format::encode(cmd, agreed)
    }

    fn decode_command(&self, bytes: &[u8]) -> Result<Command, CodecError> {
        format::decode(bytes)
    }

    fn agreed_format(&self, state: &View<'_>) -> Result<u16, StoreError> {
        format::agreed(state)
    }
}

/// The health monitor's last observation of a node, if any.
pub fn node_health(r: &impl StateReader, node: &str) -> Result<Option<model::NodeHealth>, StoreError> {
    get(r, &keys::health(node))
}

/// One record by key.
pub fn get<T: Record>(r: &impl StateReader, key: &[u8]) -> Result<Option<T>, StoreError> {
    r.get(key)?.map(|b| record::decode(&b)).transpose()
}

pub fn put<T: Record>(txn: &mut Txn<'_>, key: Vec<u8>, v: &T) -> Result<(), StoreError> {
    txn.put(key, record::encode(v)?);
    Ok(())
}

/// Every record under a prefix, in id order.
pub fn all<T: Record>(r: &impl StateReader, prefix: &[u8]) -> Result<Vec<T>, StoreError> {
    r.scan_prefix(prefix)?
        .into_iter()
        .map(|(_, v)| record::decode(&v))
        .collect()
}

/// Ids under a prefix, sorted (key order is id order).
pub fn ids(r: &impl StateReader, prefix: &[u8]) -> Result<Vec<String>, StoreError> {
    Ok(r.scan_prefix(prefix)?
        .into_iter()
        .map(|(k, _)| keys::id_of(prefix, &k))
        .collect())
}

pub fn get_cluster(r: &impl StateReader, id: &str) -> Result<Option<ClusterEntry>, StoreError> {
    get(r, &keys::cluster(id))
}
pub fn get_node(r: &impl StateReader, id: &str) -> Result<Option<NodeEntry>, StoreError> {
    get(r, &keys::node(id))
}
pub fn get_device(r: &impl StateReader, id: &str) -> Result<Option<DeviceEntry>, StoreError> {
    get(r, &keys::device(id))
}
pub fn get_brick(r: &impl StateReader, id: &str) -> Result<Option<BrickEntry>, StoreError> {
    get(r, &keys::brick(id))
}
pub fn get_volume(r: &impl StateReader, id: &str) -> Result<Option<VolumeEntry>, StoreError> {
    get(r, &keys::volume(id))
}
pub fn get_op(r: &impl StateReader, id: &str) -> Result<Option<Operation>, StoreError> {
    get(r, &keys::op(id))
}
pub fn get_blockvolume(r: &impl StateReader, id: &str) -> Result<Option<BlockVolumeEntry>, StoreError> {
    get(r, &keys::blockvolume(id))
}

/// The ids of the block volumes a block-hosting volume holds (pending ones too), sorted.
pub fn bhv_block_ids(r: &impl StateReader, bhv: &str) -> Result<Vec<String>, StoreError> {
    ids(r, &keys::bhv_block_prefix(bhv))
}

/// The block volumes of a block-hosting volume that lists show (not being created or
/// deleted), sorted.
pub fn visible_bhv_blocks(r: &impl StateReader, bhv: &str) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for id in bhv_block_ids(r, bhv)? {
        if get_blockvolume(r, &id)?.is_some_and(|b| !b.hidden) {
            out.push(id);
        }
    }
    Ok(out)
}

/// A cluster's visible volume ids, sorted.
pub fn cluster_volume_ids(r: &impl StateReader, cluster: &str) -> Result<Vec<String>, StoreError> {
    ids(r, &keys::cluster_volume_prefix(cluster))
}

/// Every volume id of a cluster, hidden ones (being created, cloned or deleted) too, from its
/// name index; in name order.
pub fn cluster_all_volume_ids(r: &impl StateReader, cluster: &str) -> Result<Vec<String>, StoreError> {
    Ok(r.scan_prefix(&keys::volume_name_prefix(cluster))?
        .into_iter()
        .map(|(_, id)| String::from_utf8_lossy(&id).into_owned())
        .collect())
}

/// The volumes pending deletes work on: hidden from lists as from info (Heketi's rule), though
/// their index keys stay until the delete finishes. One read per pending operation.
pub fn deleting_volume_ids(r: &impl StateReader) -> Result<std::collections::BTreeSet<String>, StoreError> {
    let mut out = std::collections::BTreeSet::new();
    for id in pending_op_ids(r)? {
        if let Some(op) = get_op(r, &id)? {
            if let model::OpPlan::VolumeDelete { volume } = op.plan {
                out.insert(volume);
            }
        }
    }
    Ok(out)
}

/// A cluster's volume ids as lists show them: without the volumes being deleted.
pub fn visible_volume_ids(r: &impl StateReader, cluster: &str) -> Result<Vec<String>, StoreError> {
    let mut ids = cluster_volume_ids(r, cluster)?;
    let deleting = deleting_volume_ids(r)?;
    if !deleting.is_empty() {
        ids.retain(|v| !deleting.contains(v));
    }
    Ok(ids)
}

/// A device's brick ids, sorted.
pub fn device_brick_ids(r: &impl StateReader, device: &str) -> Result<Vec<String>, StoreError> {
    ids(r, &keys::device_brick_prefix(device))
}

/// The Raft group's identity, once its first leader has set it (`Command::SetIdentity`).
pub fn identity(r: &impl StateReader) -> Result<Option<String>, StoreError> {
    Ok(r.get(keys::IDENTITY)?
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}

/// Every node's manage host, sorted and without repeats (the runner claims them all).
pub fn manage_hosts(r: &impl StateReader) -> Result<Vec<String>, StoreError> {
    let nodes: Vec<NodeEntry> = all(r, keys::NODE_PREFIX)?;
    let hosts: std::collections::BTreeSet<String> =
        nodes.iter().map(|n| n.manage_host().to_string()).collect();
    Ok(hosts.into_iter().collect())
}

/// All cluster ids, sorted.
pub fn cluster_ids(r: &impl StateReader) -> Result<Vec<String>, StoreError> {
    ids(r, keys::CLUSTER_PREFIX)
}

/// Operations not yet finished (the runner's work list; its length is the throttle count).
pub fn pending_op_ids(r: &impl StateReader) -> Result<Vec<String>, StoreError> {
    let p: Option<model::PendingOps> = get(r, keys::PENDING_OPS)?;
    Ok(p.map(|p| p.ids.into_iter().collect()).unwrap_or_default())
}
