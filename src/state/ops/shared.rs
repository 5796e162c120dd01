//! What several kinds' state effects share: reserving and releasing a brick's space on its
//! device, forgetting a volume or a node, and closing an operation record. Kept apart from
//! the kinds so that each kind's module reads as that kind's begin/finish/fail alone.

use hekate_raft::{StateReader, StoreError, Txn};

use super::super::command::Outcome;
use super::super::model::{BrickEntry, OpStatus, Operation, PendingOps};
use super::super::{get_brick, get_cluster, get_device, get_node, get_volume, keys, put};
use super::R;

pub(super) fn exists(found: bool) -> Outcome {
    if found {
        Outcome::Done
    } else {
        Outcome::NotFound
    }
}

pub const IN_USE: &str = "The target exists, contains other items, or is in use.";

/// Takes a brick's allocation from its device (re-checked: two plans made from the same view
/// cannot overcommit a device) and records the brick.
pub(super) fn reserve(brick: &BrickEntry, txn: &mut Txn<'_>) -> Result<bool, StoreError> {
    let Some(mut d) = get_device(txn, &brick.device)? else {
        return Ok(false);
    };
    let node_online = get_node(txn, &d.node)?.is_some_and(|n| n.state.is_online());
    let need = brick.allocation();
    if !d.state.is_online() || !node_online || d.pending.is_some() || d.free <= need {
        return Ok(false);
    }
    d.free -= need;
    d.used = d.used.saturating_add(need);
    d.brick_count = d.brick_count.saturating_add(1);
    put(txn, keys::device(&d.id), &d)?;
    txn.put(keys::device_brick(&d.id, &brick.id), Vec::new());
    put(txn, keys::brick(&brick.id), brick)?;
    Ok(true)
}

/// Gives a brick's allocation back to its device and forgets the brick. A thin pool shared
/// with another brick (a clone's, or its origin's) outlives this brick: its allocation moves to
/// that brick instead of returning to the device.
pub(super) fn release(brick_id: &str, txn: &mut Txn<'_>) -> Result<(), StoreError> {
    let Some(b) = get_brick(txn, brick_id)? else {
        return Ok(());
    };
    let shared = if b.pool_shared {
        super::super::device_brick_ids(txn, &b.device)?
    } else {
        Vec::new()
    };
    for other in shared {
        if other == b.id {
            continue;
        }
        let Some(mut ob) = get_brick(txn, &other)? else {
            continue;
        };
        if ob.thin_pool() == b.thin_pool() {
            ob.tp_size = ob.tp_size.saturating_add(b.tp_size);
            ob.pool_metadata_size = ob.pool_metadata_size.saturating_add(b.pool_metadata_size);
            put(txn, keys::brick(&other), &ob)?;
            if let Some(mut d) = get_device(txn, &b.device)? {
                d.brick_count = d.brick_count.saturating_sub(1);
                put(txn, keys::device(&d.id), &d)?;
                txn.delete(keys::device_brick(&d.id, brick_id));
            }
            txn.delete(keys::brick(brick_id));
            return Ok(());
        }
    }
    if let Some(mut d) = get_device(txn, &b.device)? {
        let a = b.allocation();
        d.free = d.free.saturating_add(a).min(d.total);
        d.used = d.used.saturating_sub(a);
        d.brick_count = d.brick_count.saturating_sub(1);
        put(txn, keys::device(&d.id), &d)?;
        txn.delete(keys::device_brick(&d.id, brick_id));
    }
    txn.delete(keys::brick(brick_id));
    Ok(())
}

/// The refusal of a size beyond the maximum (the API refuses it first; `apply` checks again
/// so that no proposal can make its arithmetic overflow).
pub(super) fn too_big() -> String {
    format!(
        "volume size beyond the maximum supported size ({} GB)",
        crate::validate::MAX_VOLUME_GIB
    )
}

/// Forgets a deleted volume: its bricks' space goes back to their devices, its name is free.
pub(super) fn drop_volume(volume: &str, txn: &mut Txn<'_>) -> Result<(), StoreError> {
    let Some(v) = get_volume(txn, volume)? else {
        return Ok(());
    };
    for b in &v.bricks {
        release(b, txn)?;
    }
    txn.delete(keys::volume_name(&v.cluster, &v.name));
    txn.delete(keys::volume(volume));
    if let Some(mut c) = get_cluster(txn, &v.cluster)? {
        c.volume_count = c.volume_count.saturating_sub(1);
        put(txn, keys::cluster(&c.id), &c)?;
        txn.delete(keys::cluster_volume(&c.id, volume));
    }
    Ok(())
}

pub(super) fn clear_brick_pending(id: &str, txn: &mut Txn<'_>) -> Result<(), StoreError> {
    if let Some(mut b) = get_brick(txn, id)? {
        b.pending = None;
        put(txn, keys::brick(id), &b)?;
    }
    Ok(())
}

pub(super) fn remove_node(node: &str, txn: &mut Txn<'_>) -> Result<(), StoreError> {
    let Some(n) = get_node(txn, node)? else {
        return Ok(());
    };
    for h in &n.manage {
        if txn.get(&keys::manage_host(h))?.as_deref() == Some(node.as_bytes()) {
            txn.delete(keys::manage_host(h));
        }
    }
    for h in &n.storage {
        if txn.get(&keys::storage_host(h))?.as_deref() == Some(node.as_bytes()) {
            txn.delete(keys::storage_host(h));
        }
    }
    if let Some(mut c) = get_cluster(txn, &n.cluster)? {
        c.nodes.remove(node);
        put(txn, keys::cluster(&c.id), &c)?;
    }
    txn.delete(keys::node(node));
    // The health monitor's observation goes with the node. (Builds before log format 2 do not
    // delete it, and need not: the key exists only once every member reads format 2.)
    txn.delete(keys::health(node));
    Ok(())
}

pub(super) fn close(
    mut op: Operation,
    status: OpStatus,
    error: Option<String>,
    now: u64,
    txn: &mut Txn<'_>,
) -> R {
    op.status = status;
    op.error = error;
    op.finished = Some(now);
    set_pending(txn, &op.id, false)?;
    put(txn, keys::op(&op.id), &op)?;
    txn.put(keys::op_done(now, &op.id), Vec::new());
    Ok(Outcome::Done)
}

pub(super) fn set_pending(txn: &mut Txn<'_>, id: &str, pending: bool) -> Result<(), StoreError> {
    let mut p: PendingOps = super::super::get(txn, keys::PENDING_OPS)?.unwrap_or_default();
    if pending {
        p.ids.insert(id.to_string());
    } else {
        p.ids.remove(id);
    }
    put(txn, keys::PENDING_OPS.to_vec(), &p)
}
