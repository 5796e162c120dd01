//! Applying operations. Each kind's effects on the state sit in one module (`volume_create`,
//! `evict`, ...): `begin` checks an accepted operation against the state and reserves what it
//! needs, `finish` makes its result visible, `fail` undoes the reservation, and the kinds
//! with a point of no return or steps have `step`. The functions here dispatch, one line per
//! kind, and keep what every kind shares: the operation record, the pending set, a refusal
//! rolled back to where the command started. Every function is deterministic and
//! all-or-nothing (`apply` runs it on every replica).
//!
//! Adding a kind: a module here with its effects, and one line in each dispatch below
//! (and in `ops::kinds` for its steps on the nodes).

mod block_create;
mod block_delete;
mod block_expand;
mod device_add;
mod device_delete;
mod device_resync;
mod device_state;
mod evict;
mod gc;
mod node_add;
mod node_delete;
mod node_health;
mod node_state;
mod shared;
mod volume_clone;
mod volume_create;
mod volume_delete;
mod volume_expand;
mod volume_restriction;

#[cfg(test)]
mod apply_tests;
#[cfg(test)]
mod block_tests;
#[cfg(test)]
mod rollforward_tests;
#[cfg(test)]
pub(crate) mod testing;

use std::collections::BTreeSet;

use hekate_raft::{StateReader, StoreError, Txn};

use super::command::Outcome;
use super::model::{BlockExport, BrickEntry, ExecReport, OpPlan, OpStatus, Operation, Tags};
use super::{get_brick, get_device, get_node, get_op, get_volume, keys, put};
use shared::{close, set_pending};

pub use gc::{gc, gc_bounded};
pub use shared::IN_USE;

type R = Result<Outcome, StoreError>;

pub fn begin(op: Operation, txn: &mut Txn<'_>) -> R {
    if get_op(txn, &op.id)?.is_some() {
        return Ok(Outcome::Conflict(format!("operation {} already exists", op.id)));
    }
    let sp = txn.savepoint();
    let id = op.id.as_str();
    let out = match &op.plan {
        OpPlan::NodeAdd { node, .. } => node_add::begin(node, id, txn)?,
        OpPlan::NodeDelete { node, .. } => node_delete::begin(node, txn)?,
        OpPlan::NodeState { node, .. } => node_state::begin(node, txn)?,
        OpPlan::DeviceAdd { device, .. } => device_add::begin(device, id, txn)?,
        OpPlan::DeviceDelete { device, .. } => device_delete::begin(device, id, txn)?,
        OpPlan::DeviceState { device, .. } => device_state::begin(device, txn)?,
        OpPlan::DeviceResync { device, .. } => device_resync::begin(device, txn)?,
        OpPlan::VolumeCreate { volume, bricks } => volume_create::begin(volume, bricks, id, txn)?,
        OpPlan::VolumeDelete { volume } => volume_delete::begin(volume, id, txn)?,
        OpPlan::VolumeExpand {
            volume,
            bricks,
            delta,
        } => volume_expand::begin(volume, bricks, *delta, id, txn)?,
        OpPlan::Evict {
            devices, evictions, ..
        } => evict::begin(devices, evictions, id, txn)?,
        OpPlan::VolumeClone { source, clone } => volume_clone::begin(source, clone, id, txn)?,
        OpPlan::VolumeRestriction { volume, restriction } => {
            volume_restriction::begin(volume, restriction, txn)?
        }
        OpPlan::Cleanup => Outcome::Done,
        OpPlan::NodeHealth { node } => node_health::begin(node, txn)?,
        OpPlan::BlockVolumeCreate {
            block,
            new_bhv,
            bricks,
            ..
        } => block_create::begin(block, new_bhv.as_deref(), bricks, id, txn)?,
        OpPlan::BlockVolumeDelete { block } => block_delete::begin(block, id, txn)?,
        OpPlan::BlockVolumeExpand { block, new_size } => block_expand::begin(block, *new_size, id, txn)?,
    };
    if out != Outcome::Done {
        txn.rollback(sp);
        return Ok(out);
    }
    put(txn, keys::op(&op.id), &op)?;
    set_pending(txn, &op.id, true)?;
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
        OpPlan::NodeAdd { node, .. } => node_add::finish(node, txn)?,
        OpPlan::NodeDelete { node, .. } => node_delete::finish(node, txn)?,
        OpPlan::NodeState { node, state } => node_state::finish(node, state, txn)?,
        OpPlan::DeviceAdd { device, .. } => device_add::finish(device, report, txn)?,
        OpPlan::DeviceDelete { device, .. } => device_delete::finish(device, txn)?,
        OpPlan::DeviceState { device, state } => device_state::finish(device, state, txn)?,
        OpPlan::DeviceResync { device, .. } => device_resync::finish(device, report, txn)?,
        OpPlan::VolumeCreate { volume, bricks } => volume_create::finish(volume, bricks, txn)?,
        OpPlan::VolumeDelete { volume } => volume_delete::finish(volume, txn)?,
        OpPlan::VolumeExpand {
            volume,
            bricks,
            delta,
        } => volume_expand::finish(volume, bricks, *delta, txn)?,
        OpPlan::Evict { node, devices, .. } => evict::finish(node.as_deref(), devices, txn)?,
        OpPlan::VolumeClone { source, clone } => volume_clone::finish(source, clone, report, txn)?,
        OpPlan::VolumeRestriction { volume, restriction } => {
            volume_restriction::finish(volume, restriction, txn)?
        }
        OpPlan::Cleanup => None,
        OpPlan::NodeHealth { node } => node_health::finish(node, now, txn)?,
        OpPlan::BlockVolumeCreate { .. } => {
            return Ok(Outcome::Invalid(format!(
                "operation {id} creates a block volume: it ends with what gluster-block made (OpFinishBlock)"
            )))
        }
        OpPlan::BlockVolumeDelete { block } => block_delete::finish(block, txn)?,
        OpPlan::BlockVolumeExpand { block, new_size } => block_expand::finish(block, *new_size, txn)?,
    };
    close(op, OpStatus::Done, None, now, txn)
}

/// A block volume create whose remote steps succeeded: the block volume shows with what
/// gluster-block made of it; refused for any other kind.
pub fn finish_block(id: &str, export: &BlockExport, now: u64, txn: &mut Txn<'_>) -> R {
    let Some(mut op) = get_op(txn, id)? else {
        return Ok(Outcome::NotFound);
    };
    if op.status != OpStatus::Pending {
        return Ok(Outcome::Done);
    }
    op.location = match &op.plan {
        OpPlan::BlockVolumeCreate {
            block,
            new_bhv,
            bricks,
            ..
        } => block_create::finish(block, new_bhv.as_deref(), bricks, export, txn)?,
        _ => {
            return Ok(Outcome::Invalid(format!(
                "operation {id} does not create a block volume"
            )))
        }
    };
    close(op, OpStatus::Done, None, now, txn)
}

pub fn fail(id: &str, error: &str, now: u64, txn: &mut Txn<'_>) -> R {
    let Some(op) = get_op(txn, id)? else {
        return Ok(Outcome::NotFound);
    };
    if op.status != OpStatus::Pending {
        return Ok(Outcome::Done);
    }
    let out = match &op.plan {
        OpPlan::NodeAdd { node, .. } => node_add::fail(node, txn)?,
        OpPlan::DeviceAdd { device, .. } => device_add::fail(device, txn)?,
        OpPlan::DeviceDelete { device, .. } => device_delete::fail(device, txn)?,
        OpPlan::VolumeCreate { volume, bricks } => volume_create::fail(volume, bricks, txn)?,
        OpPlan::VolumeDelete { volume } => volume_delete::fail(volume, &op, txn)?,
        OpPlan::VolumeExpand { volume, bricks, .. } => volume_expand::fail(volume, bricks, &op, txn)?,
        OpPlan::Evict {
            devices, evictions, ..
        } => evict::fail(devices, evictions, op.progress, txn)?,
        OpPlan::VolumeClone { source, clone } => volume_clone::fail(source, clone, txn)?,
        OpPlan::NodeHealth { node } => node_health::fail(node, now, txn)?,
        OpPlan::BlockVolumeCreate {
            block,
            new_bhv,
            bricks,
            ..
        } => block_create::fail(block, new_bhv.as_deref(), bricks, txn)?,
        OpPlan::BlockVolumeDelete { block } => block_delete::fail(block, txn)?,
        OpPlan::BlockVolumeExpand { block, new_size } => block_expand::fail(block, *new_size, txn)?,
        // Nothing reserved: nothing to give back.
        OpPlan::NodeDelete { .. }
        | OpPlan::NodeState { .. }
        | OpPlan::DeviceState { .. }
        | OpPlan::DeviceResync { .. }
        | OpPlan::VolumeRestriction { .. }
        | OpPlan::Cleanup => Outcome::Done,
    };
    if out != Outcome::Done {
        return Ok(out);
    }
    close(op, OpStatus::Failed, Some(error.to_string()), now, txn)
}

/// Commits step `index` of an operation: an eviction, or the point of no return (index 0)
/// of a volume delete (the Gluster volume is gone) or expand (`add-brick` is about to be
/// sent), from where the operation rolls forward.
pub fn step(id: &str, index: usize, txn: &mut Txn<'_>) -> R {
    let Some(mut op) = get_op(txn, id)? else {
        return Ok(Outcome::NotFound);
    };
    if op.status != OpStatus::Pending || op.progress != index {
        return Ok(Outcome::Done); // duplicate or stale step
    }
    let out = match &op.plan {
        OpPlan::Evict { evictions, .. } => evict::step(evictions, index, txn)?,
        OpPlan::VolumeDelete { .. } | OpPlan::VolumeExpand { .. } if index == 0 => Outcome::Done,
        _ => Outcome::Invalid("not a multi-step operation".into()),
    };
    if out != Outcome::Done {
        return Ok(out);
    }
    op.progress = index + 1;
    put(txn, keys::op(id), &op)?;
    Ok(Outcome::Done)
}

/// An expand that failed past its point of no return, keeping the new bricks Gluster holds
/// (`volume_expand::fail_kept`); refused for any other kind.
pub fn fail_kept(id: &str, kept: &[String], error: &str, now: u64, txn: &mut Txn<'_>) -> R {
    let Some(op) = get_op(txn, id)? else {
        return Ok(Outcome::NotFound);
    };
    if op.status != OpStatus::Pending {
        return Ok(Outcome::Done);
    }
    let out = match &op.plan {
        OpPlan::VolumeExpand {
            volume,
            bricks,
            delta,
        } => volume_expand::fail_kept((volume, bricks, *delta), kept, id, txn)?,
        _ => Outcome::Invalid(format!("operation {id} does not add bricks to a volume")),
    };
    if out != Outcome::Done {
        return Ok(out);
    }
    close(op, OpStatus::Failed, Some(error.to_string()), now, txn)
}

/// What an operation in flight holds: reconcile leaves these alone (volumes by name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holds {
    pub volumes: BTreeSet<String>,
    pub bricks: BTreeSet<String>,
    pub devices: BTreeSet<String>,
    pub nodes: BTreeSet<String>,
}

impl Holds {
    fn node(&mut self, id: &str) {
        self.nodes.insert(id.to_string());
    }
    fn device(&mut self, id: &str) {
        self.devices.insert(id.to_string());
    }
    /// A brick and its device.
    fn brick(&mut self, b: &BrickEntry) {
        self.bricks.insert(b.id.clone());
        self.devices.insert(b.device.clone());
    }
    /// The device of a brick known by id (if it still exists).
    fn device_of(&mut self, r: &impl StateReader, brick: &str) -> Result<(), StoreError> {
        self.devices.extend(get_brick(r, brick)?.map(|b| b.device));
        Ok(())
    }
    /// The name of a volume known by id (if it still exists).
    fn volume(&mut self, r: &impl StateReader, volume: &str) -> Result<(), StoreError> {
        self.volumes.extend(get_volume(r, volume)?.map(|v| v.name));
        Ok(())
    }
}

/// What `op` holds, read from the state it runs against.
pub fn holds(r: &impl StateReader, op: &Operation) -> Result<Holds, StoreError> {
    let mut h = Holds::default();
    match &op.plan {
        OpPlan::NodeAdd { node, .. } => h.node(&node.id),
        OpPlan::NodeDelete { node, .. } => h.node(node),
        OpPlan::NodeState { node, .. } => h.node(node),
        OpPlan::DeviceAdd { device, .. } => h.device(&device.id),
        OpPlan::DeviceDelete { device, .. } => h.device(device),
        OpPlan::DeviceState { device, .. } => h.device(device),
        OpPlan::DeviceResync { device, .. } => h.device(device),
        OpPlan::NodeHealth { node } => h.node(node),
        OpPlan::VolumeCreate { volume, bricks } => volume_create::holds(&mut h, volume, bricks),
        OpPlan::VolumeDelete { volume } => volume_delete::holds(&mut h, r, volume)?,
        OpPlan::VolumeExpand { volume, bricks, .. } => volume_expand::holds(&mut h, r, volume, bricks)?,
        OpPlan::Evict {
            devices, evictions, ..
        } => evict::holds(&mut h, r, devices, evictions)?,
        OpPlan::VolumeClone { source, clone } => volume_clone::holds(&mut h, r, source, clone)?,
        OpPlan::BlockVolumeCreate { new_bhv, bricks, .. } => {
            block_create::holds(&mut h, new_bhv.as_deref(), bricks)
        }
        OpPlan::VolumeRestriction { .. }
        | OpPlan::Cleanup
        | OpPlan::BlockVolumeDelete { .. }
        | OpPlan::BlockVolumeExpand { .. } => {}
    }
    Ok(h)
}

/// Heketi's `changes` of a pending operation (`GET /operations/pending/{id}`): (id, what).
pub fn changes(op: &Operation) -> Vec<(String, &'static str)> {
    match &op.plan {
        OpPlan::VolumeCreate { volume, bricks } => volume_create::changes(volume, bricks),
        OpPlan::VolumeDelete { volume } => vec![(volume.clone(), "Delete volume")],
        OpPlan::VolumeExpand { volume, bricks, .. } => volume_expand::changes(volume, bricks),
        OpPlan::BlockVolumeCreate {
            block,
            new_bhv,
            bricks,
            ..
        } => block_create::changes(block, new_bhv.as_deref(), bricks),
        OpPlan::BlockVolumeDelete { block } => vec![(block.clone(), "Delete block volume")],
        OpPlan::BlockVolumeExpand { block, .. } => vec![(block.clone(), "Expand block volume")],
        // Heketi lists none for the other kinds.
        _ => Vec::new(),
    }
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
