//! Applying operations: `begin` checks an accepted operation against the state and reserves
//! what it needs, `finish` makes its result visible, `fail` undoes the reservation. Every
//! function is deterministic and all-or-nothing: a refusal rolls back the transaction's
//! writes to where the command started.

use hekate_raft::{StateReader, StoreError, Txn};

use super::command::Outcome;
use super::model::{BrickEntry, ExecReport, OpPlan, OpStatus, Operation, PendingOps, Tags};
use super::{get_brick, get_cluster, get_device, get_node, get_op, get_volume, keys, put};

type R = Result<Outcome, StoreError>;

pub fn begin(op: Operation, txn: &mut Txn<'_>) -> R {
    if get_op(txn, &op.id)?.is_some() {
        return Ok(Outcome::Conflict(format!("operation {} already exists", op.id)));
    }
    let sp = txn.savepoint();
    let out = match &op.plan {
        OpPlan::NodeAdd { node, .. } => begin_node_add(node, &op.id, txn)?,
        OpPlan::NodeDelete { node, .. } => match get_node(txn, node)? {
            None => Outcome::NotFound,
            Some(n) if !n.devices.is_empty() => Outcome::Conflict(format!(
                "Unable to delete node [{}] because it contains devices",
                n.id
            )),
            Some(_) => Outcome::Done,
        },
        OpPlan::NodeState { node, .. } => exists(get_node(txn, node)?.is_some()),
        OpPlan::DeviceAdd { device, .. } => begin_device_add(device, &op.id, txn)?,
        OpPlan::DeviceDelete { device, .. } => begin_device_delete(device, &op.id, txn)?,
        OpPlan::DeviceState { device, .. } | OpPlan::DeviceResync { device, .. } => {
            exists(get_device(txn, device)?.is_some())
        }
        OpPlan::VolumeCreate { volume, bricks } => begin_volume_create(volume, bricks, &op.id, txn)?,
        OpPlan::VolumeDelete { volume } => begin_volume_delete(volume, &op.id, txn)?,
        OpPlan::VolumeExpand {
            volume,
            bricks,
            delta,
        } => begin_volume_expand(volume, bricks, *delta, &op.id, txn)?,
        OpPlan::Evict {
            devices, evictions, ..
        } => begin_evict(devices, evictions, &op.id, txn)?,
        OpPlan::VolumeClone { source, clone } => begin_clone(source, clone, &op.id, txn)?,
        OpPlan::VolumeRestriction { volume, restriction } => begin_restriction(volume, restriction, txn)?,
        OpPlan::Cleanup => Outcome::Done,
    };
    if out != Outcome::Done {
        txn.rollback(sp);
        return Ok(out);
    }
    put(txn, keys::op(&op.id), &op)?;
    set_pending(txn, &op.id, true)?;
    Ok(Outcome::Done)
}

fn exists(found: bool) -> Outcome {
    if found {
        Outcome::Done
    } else {
        Outcome::NotFound
    }
}

fn begin_node_add(node: &super::NodeEntry, op: &str, txn: &mut Txn<'_>) -> R {
    if get_cluster(txn, &node.cluster)?.is_none() {
        return Ok(Outcome::NotFound);
    }
    let regs = node
        .manage
        .iter()
        .map(|h| keys::manage_host(h))
        .chain(node.storage.iter().map(|h| keys::storage_host(h)));
    let hosts = node.manage.iter().chain(node.storage.iter());
    for (key, host) in regs.zip(hosts) {
        if let Some(owner) = txn.get(&key)? {
            let owner = String::from_utf8_lossy(&owner).into_owned();
            // A registration pointing to a node that no longer exists is stale.
            if get_node(txn, &owner)?.is_some() && owner != node.id {
                return Ok(Outcome::Conflict(format!(
                    "Hostname {host} already used by node with id {owner}\n"
                )));
            }
        }
        txn.put(key, node.id.as_bytes().to_vec());
    }
    let mut n = node.clone();
    n.pending = Some(op.to_string());
    put(txn, keys::node(&n.id), &n)?;
    Ok(Outcome::Done)
}

fn begin_device_add(device: &super::DeviceEntry, op: &str, txn: &mut Txn<'_>) -> R {
    let Some(node) = get_node(txn, &device.node)? else {
        return Ok(Outcome::NotFound);
    };
    for id in &node.devices {
        if let Some(d) = get_device(txn, id)? {
            if d.name == device.name {
                return Ok(Outcome::Conflict(format!(
                    "Device {} is already used by device {} on node {}",
                    d.name, d.id, node.id
                )));
            }
        }
    }
    let mut d = device.clone();
    d.pending = Some(op.to_string());
    put(txn, keys::device(&d.id), &d)?;
    Ok(Outcome::Done)
}

fn begin_device_delete(device: &str, op: &str, txn: &mut Txn<'_>) -> R {
    let Some(mut d) = get_device(txn, device)? else {
        return Ok(Outcome::NotFound);
    };
    if d.state != "failed" {
        return Ok(Outcome::Invalid(format!(
            "device: {device} is not in failed state"
        )));
    }
    if d.brick_count > 0 {
        return Ok(Outcome::Conflict(format!(
            "Unable to delete device [{device}] because it contains bricks"
        )));
    }
    if d.pending.is_some() {
        return Ok(Outcome::Conflict(IN_USE.into()));
    }
    d.pending = Some(op.to_string());
    put(txn, keys::device(device), &d)?;
    Ok(Outcome::Done)
}

pub const IN_USE: &str = "The target exists, contains other items, or is in use.";

/// Takes a brick's allocation from its device (re-checked: two plans made from the same view
/// cannot overcommit a device) and records the brick.
fn reserve(brick: &BrickEntry, txn: &mut Txn<'_>) -> Result<bool, StoreError> {
    let Some(mut d) = get_device(txn, &brick.device)? else {
        return Ok(false);
    };
    let node_online = get_node(txn, &d.node)?.is_some_and(|n| n.state == "online");
    let need = brick.allocation();
    if d.state != "online" || !node_online || d.pending.is_some() || d.free <= need {
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
fn release(brick_id: &str, txn: &mut Txn<'_>) -> Result<(), StoreError> {
    let Some(b) = get_brick(txn, brick_id)? else {
        return Ok(());
    };
    let shared = if b.pool_shared {
        super::device_brick_ids(txn, &b.device)?
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
fn too_big() -> String {
    format!(
        "volume size beyond the maximum supported size ({} GB)",
        crate::validate::MAX_VOLUME_GIB
    )
}

fn begin_volume_create(v: &super::VolumeEntry, bricks: &[BrickEntry], op: &str, txn: &mut Txn<'_>) -> R {
    if v.size > crate::validate::MAX_VOLUME_GIB
        || bricks
            .iter()
            .any(|b| b.allocation() > crate::validate::MAX_KIB || b.size > crate::validate::MAX_KIB)
    {
        return Ok(Outcome::Invalid(too_big()));
    }
    if get_cluster(txn, &v.cluster)?.is_none() {
        return Ok(Outcome::Invalid(format!("Cluster id {} not found", v.cluster)));
    }
    let name_key = keys::volume_name(&v.cluster, &v.name);
    if txn.get(&name_key)?.is_some() {
        return Ok(Outcome::Failed(format!(
            "Volume name '{}' already in use",
            v.name
        )));
    }
    for b in bricks {
        if !reserve(b, txn)? {
            return Ok(Outcome::Failed("No space".into()));
        }
    }
    let mut vol = v.clone();
    vol.pending = Some(op.to_string());
    vol.hidden = true;
    vol.bricks = bricks.iter().map(|b| b.id.clone()).collect();
    let set = v.durability.set_size().max(1);
    vol.brick_sets = bricks
        .chunks(set)
        .map(|c| c.iter().map(|b| b.id.clone()).collect())
        .collect();
    put(txn, keys::volume(&vol.id), &vol)?;
    txn.put(name_key, vol.id.as_bytes().to_vec());
    Ok(Outcome::Done)
}

fn begin_volume_delete(volume: &str, op: &str, txn: &mut Txn<'_>) -> R {
    let Some(mut v) = get_volume(txn, volume)? else {
        return Ok(Outcome::NotFound);
    };
    if v.hidden {
        return Ok(Outcome::NotFound);
    }
    if v.pending.is_some() {
        return Ok(Outcome::Failed(format!(
            "Failed to set up volume delete: {IN_USE}"
        )));
    }
    if v.name == "heketidbstorage" {
        return Ok(Outcome::Conflict(
            "Cannot delete volume containing the Heketi database".into(),
        ));
    }
    v.pending = Some(op.to_string());
    v.hidden = true;
    put(txn, keys::volume(volume), &v)?;
    Ok(Outcome::Done)
}

fn begin_volume_expand(volume: &str, bricks: &[BrickEntry], delta: u64, op: &str, txn: &mut Txn<'_>) -> R {
    let Some(mut v) = get_volume(txn, volume)? else {
        return Ok(Outcome::NotFound);
    };
    if v.size
        .checked_add(delta)
        .is_none_or(|t| t > crate::validate::MAX_VOLUME_GIB)
    {
        return Ok(Outcome::Invalid(too_big()));
    }
    if v.hidden {
        return Ok(Outcome::NotFound);
    }
    if v.pending.is_some() {
        return Ok(Outcome::Failed(format!(
            "Failed to allocate volume expansion: {IN_USE}"
        )));
    }
    for b in bricks {
        if !reserve(b, txn)? {
            return Ok(Outcome::Failed(
                "Failed to allocate volume expansion: No space".into(),
            ));
        }
    }
    v.pending = Some(op.to_string());
    put(txn, keys::volume(volume), &v)?;
    Ok(Outcome::Done)
}

pub fn finish(id: &str, report: &ExecReport, now: u64, txn: &mut Txn<'_>) -> R {
    let Some(mut op) = get_op(txn, id)? else {
        return Ok(Outcome::NotFound);
    };
    if op.status != OpStatus::Pending {
        return Ok(Outcome::Done); // a duplicate finish (e.g. from a deposed leader) changes nothing
    }
    op.location = match &op.plan {
        OpPlan::NodeAdd { node, .. } => {
            if let Some(mut n) = get_node(txn, &node.id)? {
                n.pending = None;
                put(txn, keys::node(&n.id), &n)?;
                if let Some(mut c) = get_cluster(txn, &n.cluster)? {
                    c.nodes.insert(n.id.clone());
                    put(txn, keys::cluster(&c.id), &c)?;
                }
            }
            Some(format!("/nodes/{}", node.id))
        }
        OpPlan::NodeDelete { node, .. } => {
            remove_node(node, txn)?;
            None
        }
        OpPlan::NodeState { node, state } => {
            if let Some(mut n) = get_node(txn, node)? {
                n.state = state.clone();
                put(txn, keys::node(node), &n)?;
            }
            None
        }
        OpPlan::DeviceAdd { device, .. } => {
            if let Some(mut d) = get_device(txn, &device.id)? {
                d.total = report.device_total.unwrap_or(d.total);
                d.used = report.device_used.unwrap_or(0);
                d.free = d.total.saturating_sub(d.used);
                d.extent_size = report.device_extent.unwrap_or(d.extent_size);
                d.pv_uuid = report.pv_uuid.clone().unwrap_or_default();
                d.paths = report.paths.clone();
                d.pending = None;
                put(txn, keys::device(&d.id), &d)?;
                if let Some(mut n) = get_node(txn, &d.node)? {
                    n.devices.insert(d.id.clone());
                    put(txn, keys::node(&n.id), &n)?;
                }
            }
            None
        }
        OpPlan::DeviceDelete { device, .. } => {
            if let Some(d) = get_device(txn, device)? {
                if let Some(mut n) = get_node(txn, &d.node)? {
                    n.devices.remove(device);
                    put(txn, keys::node(&n.id), &n)?;
                }
                txn.delete(keys::device(device));
            }
            None
        }
        OpPlan::DeviceState { device, state } => {
            if let Some(mut d) = get_device(txn, device)? {
                d.state = state.clone();
                put(txn, keys::device(device), &d)?;
            }
            None
        }
        OpPlan::DeviceResync { device, .. } => {
            if let Some(mut d) = get_device(txn, device)? {
                d.total = report.device_total.unwrap_or(d.total);
                d.used = report.device_used.unwrap_or(d.used);
                d.free = d.total.saturating_sub(d.used);
                put(txn, keys::device(device), &d)?;
            }
            None
        }
        OpPlan::VolumeCreate { volume, bricks } => {
            if let Some(mut v) = get_volume(txn, &volume.id)? {
                v.pending = None;
                v.hidden = false;
                put(txn, keys::volume(&v.id), &v)?;
                for b in bricks {
                    clear_brick_pending(&b.id, txn)?;
                }
                if let Some(mut c) = get_cluster(txn, &v.cluster)? {
                    c.volume_count = c.volume_count.saturating_add(1);
                    put(txn, keys::cluster(&c.id), &c)?;
                    txn.put(keys::cluster_volume(&c.id, &v.id), Vec::new());
                }
            }
            Some(format!("/volumes/{}", volume.id))
        }
        OpPlan::VolumeDelete { volume } => {
            drop_volume(volume, txn)?;
            None
        }
        OpPlan::VolumeExpand {
            volume,
            bricks,
            delta,
        } => {
            if let Some(mut v) = get_volume(txn, volume)? {
                v.size = v.size.saturating_add(*delta);
                v.pending = None;
                for b in bricks {
                    clear_brick_pending(&b.id, txn)?;
                    v.bricks.insert(b.id.clone());
                }
                if !v.brick_sets.is_empty() {
                    let set = v.durability.set_size().max(1);
                    v.brick_sets.extend(
                        bricks
                            .chunks(set)
                            .map(|c| c.iter().map(|b| b.id.clone()).collect()),
                    );
                }
                put(txn, keys::volume(volume), &v)?;
            }
            Some(format!("/volumes/{volume}"))
        }
        OpPlan::Evict { node, devices, .. } => {
            for d in devices {
                if let Some(mut dev) = get_device(txn, d)? {
                    dev.pending = None;
                    dev.state = "failed".into();
                    put(txn, keys::device(d), &dev)?;
                }
            }
            if let Some(n) = node {
                if let Some(mut nd) = get_node(txn, n)? {
                    nd.state = "failed".into();
                    put(txn, keys::node(n), &nd)?;
                }
            }
            None
        }
        OpPlan::VolumeClone { source, clone } => {
            finish_clone(source, clone, report, txn)?;
            Some(format!("/volumes/{}", clone.id))
        }
        OpPlan::VolumeRestriction { volume, restriction } => {
            if let Some(mut v) = get_volume(txn, volume)? {
                if v.block_restriction == "locked-by-update"
                    && restriction.is_empty()
                    && v.block_reserved == 0
                {
                    let reserve = v.size.div_ceil(50);
                    v.block_free = v.block_free.saturating_sub(reserve);
                    v.block_reserved = reserve;
                }
                v.block_restriction = restriction.clone();
                put(txn, keys::volume(volume), &v)?;
            }
            Some(format!("/volumes/{volume}"))
        }
        OpPlan::Cleanup => None,
    };
    close(op, OpStatus::Done, None, now, txn)
}

/// Forgets a deleted volume: its bricks' space goes back to their devices, its name is free.
fn drop_volume(volume: &str, txn: &mut Txn<'_>) -> Result<(), StoreError> {
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

fn clear_brick_pending(id: &str, txn: &mut Txn<'_>) -> Result<(), StoreError> {
    if let Some(mut b) = get_brick(txn, id)? {
        b.pending = None;
        put(txn, keys::brick(id), &b)?;
    }
    Ok(())
}

fn remove_node(node: &str, txn: &mut Txn<'_>) -> Result<(), StoreError> {
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
    Ok(())
}

pub fn fail(id: &str, error: &str, now: u64, txn: &mut Txn<'_>) -> R {
    let Some(op) = get_op(txn, id)? else {
        return Ok(Outcome::NotFound);
    };
    if op.status != OpStatus::Pending {
        return Ok(Outcome::Done);
    }
    match &op.plan {
        OpPlan::NodeAdd { node, .. } => remove_node(&node.id, txn)?,
        OpPlan::DeviceAdd { device, .. } => txn.delete(keys::device(&device.id)),
        OpPlan::DeviceDelete { device, .. } => {
            if let Some(mut d) = get_device(txn, device)? {
                d.pending = None;
                put(txn, keys::device(device), &d)?;
            }
        }
        OpPlan::VolumeCreate { volume, bricks } => {
            for b in bricks {
                release(&b.id, txn)?;
            }
            txn.delete(keys::volume_name(&volume.cluster, &volume.name));
            txn.delete(keys::volume(&volume.id));
        }
        // Past the point of no return the Gluster volume is gone: the volume never shows
        // again (the runner never fails such a delete; this is the guarantee in `apply`).
        OpPlan::VolumeDelete { volume } if op.progress > 0 => drop_volume(volume, txn)?,
        OpPlan::VolumeDelete { volume } => {
            if let Some(mut v) = get_volume(txn, volume)? {
                v.pending = None;
                v.hidden = false;
                put(txn, keys::volume(volume), &v)?;
            }
        }
        // `add-brick` may have run: only the runner, having read Gluster's bricks back, can
        // say which new bricks stay (`OpFailKept`). A plain failure would release bricks
        // Gluster may use: refused, nothing changes.
        OpPlan::VolumeExpand { .. } if op.progress > 0 => {
            return Ok(Outcome::Conflict(format!(
                "operation {id} is past its point of no return: its failure must name the bricks Gluster kept"
            )));
        }
        OpPlan::VolumeExpand { volume, bricks, .. } => {
            for b in bricks {
                release(&b.id, txn)?;
            }
            if let Some(mut v) = get_volume(txn, volume)? {
                v.pending = None;
                put(txn, keys::volume(volume), &v)?;
            }
        }
        OpPlan::Evict {
            devices, evictions, ..
        } => {
            // Evictions already committed stay done; the others are undone.
            for e in evictions.iter().skip(op.progress) {
                release(&e.new.id, txn)?;
                if let Some(mut b) = get_brick(txn, &e.old)? {
                    b.pending = None;
                    put(txn, keys::brick(&e.old), &b)?;
                }
            }
            for d in devices {
                if let Some(mut dev) = get_device(txn, d)? {
                    dev.pending = None;
                    put(txn, keys::device(d), &dev)?;
                }
            }
        }
        OpPlan::VolumeClone { source, clone } => {
            txn.delete(keys::volume_name(&clone.cluster, &clone.name));
            txn.delete(keys::volume(&clone.id));
            if let Some(mut v) = get_volume(txn, source)? {
                v.pending = None;
                put(txn, keys::volume(source), &v)?;
            }
        }
        OpPlan::VolumeRestriction { .. } | OpPlan::Cleanup => {}
        OpPlan::NodeDelete { .. }
        | OpPlan::NodeState { .. }
        | OpPlan::DeviceState { .. }
        | OpPlan::DeviceResync { .. } => {}
    }
    close(op, OpStatus::Failed, Some(error.to_string()), now, txn)
}

fn close(mut op: Operation, status: OpStatus, error: Option<String>, now: u64, txn: &mut Txn<'_>) -> R {
    op.status = status;
    op.error = error;
    op.finished = Some(now);
    set_pending(txn, &op.id, false)?;
    put(txn, keys::op(&op.id), &op)?;
    txn.put(keys::op_done(now, &op.id), Vec::new());
    Ok(Outcome::Done)
}

/// Forgets finished operations that ended before `before` (the command of earlier builds:
/// reads every operation record; kept so that their logs apply identically).
pub fn gc(before: u64, txn: &mut Txn<'_>) -> R {
    for (k, v) in txn.scan_prefix(keys::OP_PREFIX)? {
        let op: Operation = super::record::decode(&v)?;
        if op.status != OpStatus::Pending && op.finished.is_some_and(|f| f < before) {
            txn.delete(k);
            if let Some(f) = op.finished {
                txn.delete(keys::op_done(f, &op.id));
            }
        }
    }
    Ok(Outcome::Done)
}

/// Forgets finished operations that ended before `before`, and the oldest beyond the newest
/// `keep`, oldest first (by finish time, then id). Reads only the `od/` index keys, not the
/// records; the first run on a store written by an earlier build indexes its finished
/// operations once.
pub fn gc_bounded(before: u64, keep: u64, txn: &mut Txn<'_>) -> R {
    if txn.get(keys::OP_INDEX_MARK)?.is_none() {
        for (_, v) in txn.scan_prefix(keys::OP_PREFIX)? {
            let op: Operation = super::record::decode(&v)?;
            if let (true, Some(f)) = (op.status != OpStatus::Pending, op.finished) {
                txn.put(keys::op_done(f, &op.id), Vec::new());
            }
        }
        txn.put(keys::OP_INDEX_MARK.to_vec(), Vec::new());
    }
    let index = txn.scan_prefix(keys::OP_DONE_PREFIX)?;
    let total = index.len() as u64;
    for (i, (k, _)) in index.into_iter().enumerate() {
        let Some((finished, id)) = keys::parse_op_done(&k) else {
            txn.delete(k);
            continue;
        };
        let over_count = total - i as u64 > keep;
        if !(over_count || finished < before) {
            // Sorted by age: every later entry is newer and within the count.
            break;
        }
        txn.delete(keys::op(&id));
        txn.delete(k);
    }
    Ok(Outcome::Done)
}

pub fn set_tags(node: Option<String>, device: Option<String>, tags: Tags, txn: &mut Txn<'_>) -> R {
    if let Some(id) = node {
        let Some(mut n) = get_node(txn, &id)? else {
            return Ok(Outcome::NotFound);
        };
        n.tags = tags;
        put(txn, keys::node(&id), &n)?;
    } else if let Some(id) = device {
        let Some(mut d) = get_device(txn, &id)? else {
            return Ok(Outcome::NotFound);
        };
        d.tags = tags;
        put(txn, keys::device(&id), &d)?;
    }
    Ok(Outcome::Done)
}

fn set_pending(txn: &mut Txn<'_>, id: &str, pending: bool) -> Result<(), StoreError> {
    let mut p: PendingOps = super::get(txn, keys::PENDING_OPS)?.unwrap_or_default();
    if pending {
        p.ids.insert(id.to_string());
    } else {
        p.ids.remove(id);
    }
    put(txn, keys::PENDING_OPS.to_vec(), &p)
}

fn begin_evict(devices: &[String], evictions: &[super::model::Eviction], op: &str, txn: &mut Txn<'_>) -> R {
    for d in devices {
        let Some(mut dev) = get_device(txn, d)? else {
            return Ok(Outcome::NotFound);
        };
        if dev.pending.is_some() {
            return Ok(Outcome::Failed(IN_USE.into()));
        }
        dev.pending = Some(op.to_string());
        put(txn, keys::device(d), &dev)?;
    }
    for e in evictions {
        let Some(mut old) = get_brick(txn, &e.old)? else {
            return Ok(Outcome::NotFound);
        };
        if old.pending.is_some() {
            return Ok(Outcome::Failed(format!(
                "Can not evict brick {}: brick is pending",
                e.old
            )));
        }
        if get_volume(txn, &e.volume)?.is_none_or(|v| v.pending.is_some()) {
            return Ok(Outcome::Failed(format!(
                "Can not evict brick {} from volume {}: volume has pending bricks",
                e.old, e.volume
            )));
        }
        old.pending = Some(op.to_string());
        put(txn, keys::brick(&e.old), &old)?;
        if !reserve(&e.new, txn)? {
            return Ok(Outcome::Failed(
                "No Replacement was found for resource requested to be removed".into(),
            ));
        }
    }
    Ok(Outcome::Done)
}

/// Commits eviction `index` of an operation: the new brick takes the old one's place in its
/// volume (and set), the old brick's space goes back to its device.
pub fn step(id: &str, index: usize, txn: &mut Txn<'_>) -> R {
    let Some(mut op) = get_op(txn, id)? else {
        return Ok(Outcome::NotFound);
    };
    if op.status != OpStatus::Pending || op.progress != index {
        return Ok(Outcome::Done); // duplicate or stale step
    }
    let evictions = match &op.plan {
        OpPlan::Evict { evictions, .. } => evictions,
        // The point of no return of a delete (the Gluster volume is gone) or an expand
        // (`add-brick` is about to be sent): from here the operation rolls forward.
        OpPlan::VolumeDelete { .. } | OpPlan::VolumeExpand { .. } if index == 0 => {
            op.progress = 1;
            put(txn, keys::op(id), &op)?;
            return Ok(Outcome::Done);
        }
        _ => return Ok(Outcome::Invalid("not a multi-step operation".into())),
    };
    let Some(e) = evictions.get(index).cloned() else {
        return Ok(Outcome::Invalid("no such step".into()));
    };
    if let Some(mut v) = get_volume(txn, &e.volume)? {
        v.bricks.remove(&e.old);
        v.bricks.insert(e.new.id.clone());
        for set in v.brick_sets.iter_mut() {
            for b in set.iter_mut() {
                if *b == e.old {
                    *b = e.new.id.clone();
                }
            }
        }
        put(txn, keys::volume(&e.volume), &v)?;
    }
    clear_brick_pending(&e.new.id, txn)?;
    release(&e.old, txn)?;
    op.progress = index + 1;
    put(txn, keys::op(id), &op)?;
    Ok(Outcome::Done)
}

/// An expand that failed after `add-brick` ran for some of its sets: `kept` are the new
/// bricks Gluster holds (read back by the runner). They join the volume, in plan order and
/// set by set, and the size grows by their share of the delta (rounded down to GiB); the
/// other new bricks are released. The operation ends failed with `error`.
pub fn fail_kept(id: &str, kept: &[String], error: &str, now: u64, txn: &mut Txn<'_>) -> R {
    let Some(op) = get_op(txn, id)? else {
        return Ok(Outcome::NotFound);
    };
    if op.status != OpStatus::Pending {
        return Ok(Outcome::Done);
    }
    let OpPlan::VolumeExpand {
        volume,
        bricks,
        delta,
    } = &op.plan
    else {
        return Ok(Outcome::Invalid(format!(
            "operation {id} does not add bricks to a volume"
        )));
    };
    if let Some(bad) = kept.iter().find(|k| !bricks.iter().any(|b| &b.id == *k)) {
        return Ok(Outcome::Invalid(format!(
            "brick {bad} is not one of operation {id}'s new bricks"
        )));
    }
    if let Some(mut v) = get_volume(txn, volume)? {
        let is_kept = |b: &BrickEntry| kept.contains(&b.id);
        let n = bricks.iter().filter(|b| is_kept(b)).count() as u128;
        let grown = (u128::from(*delta) * n / (bricks.len().max(1) as u128)) as u64;
        v.size = v.size.saturating_add(grown);
        v.pending = None;
        let set = v.durability.set_size().max(1);
        for chunk in bricks.chunks(set) {
            let ids: Vec<String> = chunk
                .iter()
                .filter(|b| is_kept(b))
                .map(|b| b.id.clone())
                .collect();
            if !ids.is_empty() && !v.brick_sets.is_empty() {
                v.brick_sets.push(ids);
            }
        }
        for b in bricks {
            if is_kept(b) {
                clear_brick_pending(&b.id, txn)?;
                v.bricks.insert(b.id.clone());
            } else {
                release(&b.id, txn)?;
            }
        }
        put(txn, keys::volume(volume), &v)?;
    } else {
        for b in bricks {
            release(&b.id, txn)?;
        }
    }
    close(op, OpStatus::Failed, Some(error.to_string()), now, txn)
}

fn begin_clone(source: &str, clone: &super::VolumeEntry, op: &str, txn: &mut Txn<'_>) -> R {
    let Some(mut v) = get_volume(txn, source)? else {
        return Ok(Outcome::NotFound);
    };
    if v.hidden {
        return Ok(Outcome::NotFound);
    }
    if v.pending.is_some() {
        return Ok(Outcome::Failed(format!("Failed clone volume {source}: {IN_USE}")));
    }
    if v.block {
        return Ok(Outcome::Failed(format!(
            "Failed clone volume {source}: Cloning of block hosting volumes is not supported"
        )));
    }
    let name_key = keys::volume_name(&clone.cluster, &clone.name);
    if txn.get(&name_key)?.is_some() {
        return Ok(Outcome::Failed(format!(
            "Failed clone volume {source}: Volume name '{}' already in use",
            clone.name
        )));
    }
    v.pending = Some(op.to_string());
    put(txn, keys::volume(source), &v)?;
    let mut c = clone.clone();
    c.pending = Some(op.to_string());
    c.hidden = true;
    put(txn, keys::volume(&c.id), &c)?;
    txn.put(name_key, c.id.as_bytes().to_vec());
    Ok(Outcome::Done)
}

/// The clone's bricks share their source bricks' thin pools: they take no device space.
fn finish_clone(
    source: &str,
    clone: &super::VolumeEntry,
    report: &ExecReport,
    txn: &mut Txn<'_>,
) -> Result<(), StoreError> {
    let Some(mut c) = get_volume(txn, &clone.id)? else {
        return Ok(());
    };
    let mut order = Vec::new();
    for (i, (src, path, lv)) in report.clones.iter().enumerate() {
        let Some(sb) = get_brick(txn, src)? else { continue };
        let id = derived_id(&clone.id, i);
        let b = BrickEntry {
            id: id.clone(),
            path: path.clone(),
            device: sb.device.clone(),
            node: sb.node.clone(),
            volume: clone.id.clone(),
            size: sb.size,
            tp_size: 0,
            pool_metadata_size: 0,
            subtype: sb.subtype,
            pending: None,
            lvm_thin_pool: Some(sb.thin_pool()),
            lvm_lv: Some(lv.clone()),
            pool_shared: true,
        };
        if !sb.pool_shared {
            let mut sb = sb.clone();
            sb.pool_shared = true;
            put(txn, keys::brick(&sb.id), &sb)?;
        }
        put(txn, keys::brick(&id), &b)?;
        if let Some(mut d) = get_device(txn, &b.device)? {
            d.brick_count = d.brick_count.saturating_add(1);
            put(txn, keys::device(&d.id), &d)?;
            txn.put(keys::device_brick(&d.id, &id), Vec::new());
        }
        c.bricks.insert(id.clone());
        order.push(id);
    }
    let set = c.durability.set_size().max(1);
    c.brick_sets = order.chunks(set).map(|x| x.to_vec()).collect();
    c.pending = None;
    c.hidden = false;
    put(txn, keys::volume(&c.id), &c)?;
    if let Some(mut cl) = get_cluster(txn, &c.cluster)? {
        cl.volume_count = cl.volume_count.saturating_add(1);
        put(txn, keys::cluster(&cl.id), &cl)?;
        txn.put(keys::cluster_volume(&cl.id, &c.id), Vec::new());
    }
    if let Some(mut v) = get_volume(txn, source)? {
        v.pending = None;
        put(txn, keys::volume(source), &v)?;
    }
    Ok(())
}

/// A deterministic 32-hex id for the i-th brick of a clone (`apply` may not draw random ids).
fn derived_id(volume: &str, i: usize) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(format!("{volume}/brick/{i}").as_bytes())[..16])
}

fn begin_restriction(volume: &str, restriction: &str, txn: &mut Txn<'_>) -> R {
    let Some(v) = get_volume(txn, volume)? else {
        return Ok(Outcome::NotFound);
    };
    if !v.block {
        return Ok(Outcome::Failed(
            "Failed to set block restriction: Block restrictions can only be set on block hosting volumes"
                .into(),
        ));
    }
    if v.block_restriction == "locked-by-update" && restriction.is_empty() && v.block_reserved == 0 {
        let need = v.size.div_ceil(50);
        if v.block_free < need {
            return Ok(Outcome::Failed(format!(
                "Can not unlock volume. {need}GiB free space is required, but found {}GiB",
                v.block_free
            )));
        }
    }
    Ok(Outcome::Done)
}

#[cfg(test)]
mod gc_tests {
    use std::sync::Arc;

    use hekate_raft::db::{Store, CF_SM_DATA};
    use hekate_raft::state_machine::StateMachine;
    use hekate_raft::types::{AppRequest, Entry, LogId};
    use openraft::storage::RaftStateMachine;
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::super::model::{ExecReport, OpKind, OpPlan, OpStatus, Operation};
    use super::super::{keys, Command, HekateApp};
    use hekate_raft::StateReader;

    pub(super) struct Sm {
        sm: StateMachine<HekateApp>,
        pub(super) store: Store,
        next: u64,
    }

    impl Sm {
        pub(super) fn new(dir: &std::path::Path) -> Sm {
            let store = Store::open(dir).unwrap();
            Sm {
                sm: StateMachine::new(store.clone(), Arc::new(HekateApp)),
                store,
                next: 0,
            }
        }

        pub(super) async fn apply(&mut self, cmd: Command) {
            self.next += 1;
            let e = Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), self.next),
                payload: EntryPayload::Normal(AppRequest(hekate_raft::codec::encode(&cmd).unwrap())),
            };
            self.sm.apply(vec![e]).await.unwrap();
        }

        /// Begins and finishes operation `i` at time `t`.
        async fn finished_op(&mut self, i: u32, t: u64) {
            let id = format!("{i:032x}");
            let op = Operation {
                id: id.clone(),
                kind: OpKind::NodeAdd,
                created: t,
                finished: None,
                status: OpStatus::Pending,
                by_user: false,
                plan: OpPlan::Cleanup,
                location: None,
                error: None,
                progress: 0,
            };
            self.apply(Command::OpBegin { op: Box::new(op) }).await;
            self.apply(Command::OpFinish {
                id,
                report: ExecReport::default(),
                now: t,
            })
            .await;
        }

        fn op_ids(&self) -> Vec<u32> {
            let view = hekate_raft::app::View::new(&self.store);
            view.scan_prefix(keys::OP_PREFIX)
                .unwrap()
                .iter()
                .map(|(k, _)| u32::from_str_radix(&keys::id_of(keys::OP_PREFIX, k), 16).unwrap())
                .collect()
        }
    }

    #[tokio::test]
    async fn bounded_gc_keeps_the_newest_by_count_and_drops_the_old_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = Sm::new(dir.path());
        for i in 0..10 {
            // Finish times out of id order: 9, 8, ..., 0 seconds after 100.
            sm.finished_op(i, 109 - u64::from(i)).await;
        }
        sm.apply(Command::OpGcBounded { before: 0, keep: 4 }).await;
        let mut left = sm.op_ids();
        left.sort();
        assert_eq!(
            left,
            vec![0, 1, 2, 3],
            "the four finished last (ids 0..3) are kept"
        );
        sm.apply(Command::OpGcBounded {
            before: 108,
            keep: 100,
        })
        .await;
        assert_eq!(
            sm.op_ids(),
            vec![0, 1],
            "finished at 109 and 108: the only ones not before 108"
        );
        sm.apply(Command::OpGcBounded { before: 0, keep: 0 }).await;
        assert!(sm.op_ids().is_empty());
    }

    #[tokio::test]
    async fn a_store_without_the_index_is_indexed_once_and_pending_ops_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = Sm::new(dir.path());
        for i in 0..6 {
            sm.finished_op(i, 100 + u64::from(i)).await;
        }
        // One pending operation, never collected.
        let pending = Operation {
            id: format!("{:032x}", 99),
            kind: OpKind::NodeAdd,
            created: 1,
            finished: None,
            status: OpStatus::Pending,
            by_user: false,
            plan: OpPlan::Cleanup,
            location: None,
            error: None,
            progress: 0,
        };
        sm.apply(Command::OpBegin {
            op: Box::new(pending),
        })
        .await;
        // An earlier build's store: records without `od/` keys.
        let cf = sm.store.cf(CF_SM_DATA);
        for i in 0..6u64 {
            sm.store
                .db
                .delete_cf(cf, keys::op_done(100 + i, &format!("{i:032x}")))
                .unwrap();
        }
        sm.apply(Command::OpGcBounded { before: 0, keep: 2 }).await;
        let mut left = sm.op_ids();
        left.sort();
        assert_eq!(left, vec![4, 5, 99]);
        // The earlier command still works and also drops the index entries.
        sm.apply(Command::OpGc { before: 1000 }).await;
        assert_eq!(sm.op_ids(), vec![99]);
        let view = hekate_raft::app::View::new(&sm.store);
        assert!(view.scan_prefix(keys::OP_DONE_PREFIX).unwrap().is_empty());
    }
}

/// Roll forward: once a delete or an expand passed its point of no return (`OpStep 0`), a
/// failure never brings back a volume Gluster no longer has, nor releases a brick it uses.
#[cfg(test)]
mod rollforward_tests {
    use super::super::model::{
        BrickEntry, DeviceEntry, Durability, ExecReport, NodeEntry, OpKind, OpPlan, OpStatus, Operation,
        VolumeEntry,
    };
    use super::super::{get_device, get_op, get_volume, Command};
    use super::gc_tests::Sm;

    const GIB: u64 = 1 << 20;

    fn id(n: u32) -> String {
        format!("{n:032x}")
    }

    fn op(n: u32, kind: OpKind, plan: OpPlan) -> Command {
        Command::OpBegin {
            op: Box::new(Operation {
                id: id(n),
                kind,
                created: 1,
                finished: None,
                status: OpStatus::Pending,
                by_user: false,
                plan,
                location: None,
                error: None,
                progress: 0,
            }),
        }
    }

    fn finish(n: u32) -> Command {
        Command::OpFinish {
            id: id(n),
            report: ExecReport {
                device_total: Some(100 * GIB),
                device_used: Some(0),
                ..Default::default()
            },
            now: 2,
        }
    }

    fn brick(n: u32, volume: &str) -> BrickEntry {
        BrickEntry {
            id: id(n),
            path: format!("/var/lib/heketi/mounts/vg_{}/brick_{}/brick", id(3), id(n)),
            device: id(3),
            node: id(2),
            volume: volume.into(),
            size: GIB,
            tp_size: GIB,
            pool_metadata_size: 8192,
            subtype: 1,
            pending: None,
            lvm_thin_pool: None,
            lvm_lv: None,
            pool_shared: false,
        }
    }

    /// A cluster (1) with a node (2), a device (3) and a 1 GiB distribute volume (4) on brick 5.
    async fn world(dir: &std::path::Path) -> Sm {
        let mut sm = Sm::new(dir);
        sm.apply(Command::ClusterCreate {
            id: id(1),
            file: true,
            block: false,
        })
        .await;
        let node = NodeEntry {
            id: id(2),
            cluster: id(1),
            zone: 1,
            manage: vec!["n1".into()],
            storage: vec!["10.0.0.1".into()],
            tags: Default::default(),
            state: "online".into(),
            devices: Default::default(),
            pending: None,
        };
        sm.apply(op(
            100,
            OpKind::NodeAdd,
            OpPlan::NodeAdd {
                node,
                probe_from: None,
            },
        ))
        .await;
        sm.apply(finish(100)).await;
        let device = DeviceEntry {
            id: id(3),
            name: "/dev/vdb".into(),
            node: id(2),
            tags: Default::default(),
            state: "online".into(),
            total: 0,
            free: 0,
            used: 0,
            extent_size: 4096,
            pv_uuid: String::new(),
            paths: vec![],
            brick_count: 0,
            pending: None,
        };
        sm.apply(op(
            101,
            OpKind::DeviceAdd,
            OpPlan::DeviceAdd {
                device,
                host: "n1".into(),
                destroydata: false,
            },
        ))
        .await;
        sm.apply(finish(101)).await;
        let volume = VolumeEntry {
            id: id(4),
            name: "vol".into(),
            cluster: id(1),
            size: 1,
            durability: Durability {
                kind: "none".into(),
                ..Default::default()
            },
            gid: 0,
            options: vec![],
            block: false,
            snapshot_enable: false,
            snapshot_factor: 1.0,
            arbiter: false,
            bricks: Default::default(),
            pending: None,
            hidden: false,
            block_free: 0,
            block_reserved: 0,
            block_restriction: String::new(),
            request_clusters: vec![],
            brick_sets: vec![],
        };
        sm.apply(op(
            102,
            OpKind::VolumeCreate,
            OpPlan::VolumeCreate {
                volume,
                bricks: vec![brick(5, &id(4))],
            },
        ))
        .await;
        sm.apply(finish(102)).await;
        sm
    }

    fn view(sm: &Sm) -> hekate_raft::app::View<'_> {
        hekate_raft::app::View::new(&sm.store)
    }

    fn used(sm: &Sm) -> u64 {
        get_device(&view(sm), &id(3)).unwrap().unwrap().used
    }

    #[tokio::test]
    async fn a_delete_failed_before_its_mark_shows_the_volume_again_after_it_never() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = world(dir.path()).await;
        let delete = |n| op(n, OpKind::VolumeDelete, OpPlan::VolumeDelete { volume: id(4) });
        let fail = |n| Command::OpFail {
            id: id(n),
            error: "boom".into(),
            now: 3,
        };
        sm.apply(delete(200)).await;
        assert!(get_volume(&view(&sm), &id(4)).unwrap().unwrap().hidden);
        sm.apply(fail(200)).await;
        let v = get_volume(&view(&sm), &id(4)).unwrap().unwrap();
        assert!(
            !v.hidden && v.pending.is_none(),
            "before the mark: back as it was"
        );

        sm.apply(delete(201)).await;
        sm.apply(Command::OpStep {
            id: id(201),
            index: 0,
        })
        .await;
        assert_eq!(get_op(&view(&sm), &id(201)).unwrap().unwrap().progress, 1);
        sm.apply(fail(201)).await;
        assert!(
            get_volume(&view(&sm), &id(4)).unwrap().is_none(),
            "past the mark the volume is gone for good"
        );
        assert_eq!(used(&sm), 0, "its brick's space is back");
        let o = get_op(&view(&sm), &id(201)).unwrap().unwrap();
        assert_eq!(o.status, OpStatus::Failed);
    }

    #[tokio::test]
    async fn an_expand_past_its_mark_keeps_exactly_the_bricks_gluster_holds() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = world(dir.path()).await;
        let before = used(&sm);
        let (b6, b7) = (brick(6, &id(4)), brick(7, &id(4)));
        let alloc = b6.allocation();
        sm.apply(op(
            300,
            OpKind::VolumeExpand,
            OpPlan::VolumeExpand {
                volume: id(4),
                bricks: vec![b6.clone(), b7.clone()],
                delta: 2,
            },
        ))
        .await;
        assert_eq!(used(&sm), before + 2 * alloc);
        sm.apply(Command::OpStep {
            id: id(300),
            index: 0,
        })
        .await;
        // A plain failure past the mark is refused: nothing changes.
        sm.apply(Command::OpFail {
            id: id(300),
            error: "boom".into(),
            now: 3,
        })
        .await;
        assert_eq!(
            get_op(&view(&sm), &id(300)).unwrap().unwrap().status,
            OpStatus::Pending
        );
        assert_eq!(used(&sm), before + 2 * alloc);
        // A brick not of this operation is refused too.
        sm.apply(Command::OpFailKept {
            id: id(300),
            kept: vec![id(5)],
            error: "boom".into(),
            now: 3,
        })
        .await;
        assert_eq!(
            get_op(&view(&sm), &id(300)).unwrap().unwrap().status,
            OpStatus::Pending
        );

        sm.apply(Command::OpFailKept {
            id: id(300),
            kept: vec![id(6)],
            error: "add-brick refused".into(),
            now: 3,
        })
        .await;
        let o = get_op(&view(&sm), &id(300)).unwrap().unwrap();
        assert_eq!(
            (o.status, o.error.as_deref()),
            (OpStatus::Failed, Some("add-brick refused"))
        );
        let v = get_volume(&view(&sm), &id(4)).unwrap().unwrap();
        assert_eq!(v.bricks.iter().cloned().collect::<Vec<_>>(), vec![id(5), id(6)]);
        assert_eq!(v.size, 2, "one of two new bricks: half of the 2 GiB");
        assert!(v.pending.is_none());
        assert_eq!(
            used(&sm),
            before + alloc,
            "the brick Gluster does not have is released"
        );
        assert!(super::get_brick(&view(&sm), &id(7)).unwrap().is_none());
        assert!(super::get_brick(&view(&sm), &id(6))
            .unwrap()
            .unwrap()
            .pending
            .is_none());
    }

    #[tokio::test]
    async fn an_expand_failed_before_its_mark_releases_every_new_brick() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = world(dir.path()).await;
        let before = used(&sm);
        sm.apply(op(
            400,
            OpKind::VolumeExpand,
            OpPlan::VolumeExpand {
                volume: id(4),
                bricks: vec![brick(6, &id(4))],
                delta: 1,
            },
        ))
        .await;
        sm.apply(Command::OpFail {
            id: id(400),
            error: "boom".into(),
            now: 3,
        })
        .await;
        assert_eq!(
            get_op(&view(&sm), &id(400)).unwrap().unwrap().status,
            OpStatus::Failed
        );
        assert_eq!(used(&sm), before);
        assert_eq!(get_volume(&view(&sm), &id(4)).unwrap().unwrap().size, 1);
    }
}
