//! Brick eviction, and device or node removal with bricks (`POST /bricks/to-evict/{id}`,
//! state `failed`): every replacement brick is reserved up front and every old brick marked;
//! each move the runner finishes is committed as a step (`OpStep i`): the new brick takes
//! the old one's place and the old one's space goes back. Done, the devices (and node) are
//! failed; failed, the moves not yet committed are undone.

use hekate_raft::{StateReader, StoreError, Txn};

use super::super::command::Outcome;
use super::super::model::{EntryState, Eviction};
use super::super::{get_brick, get_device, get_node, get_volume, keys, put};
use super::shared::{clear_brick_pending, release, reserve, IN_USE};
use super::R;

pub fn begin(devices: &[String], evictions: &[Eviction], op: &str, txn: &mut Txn<'_>) -> R {
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

/// Commits eviction `index`: the new brick takes the old one's place in its volume (and
/// set), the old brick's space goes back to its device.
pub fn step(evictions: &[Eviction], index: usize, txn: &mut Txn<'_>) -> R {
    let Some(e) = evictions.get(index) else {
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
    Ok(Outcome::Done)
}

/// The devices leaving, each move's volume (by name), both bricks and their devices.
pub fn holds(
    h: &mut super::Holds,
    r: &impl StateReader,
    devices: &[String],
    evictions: &[Eviction],
) -> Result<(), StoreError> {
    h.devices.extend(devices.iter().cloned());
    for e in evictions {
        h.volume(r, &e.volume)?;
        h.bricks.insert(e.old.clone());
        h.brick(&e.new);
        h.device_of(r, &e.old)?;
    }
    Ok(())
}

pub fn finish(
    node: Option<&str>,
    devices: &[String],
    txn: &mut Txn<'_>,
) -> Result<Option<String>, StoreError> {
    for d in devices {
        if let Some(mut dev) = get_device(txn, d)? {
            dev.pending = None;
            dev.state = EntryState::Failed;
            put(txn, keys::device(d), &dev)?;
        }
    }
    if let Some(n) = node {
        if let Some(mut nd) = get_node(txn, n)? {
            nd.state = EntryState::Failed;
            put(txn, keys::node(n), &nd)?;
        }
    }
    Ok(None)
}

/// Evictions already committed (`progress` of them) stay done; the others are undone.
pub fn fail(devices: &[String], evictions: &[Eviction], progress: usize, txn: &mut Txn<'_>) -> R {
    for e in evictions.iter().skip(progress) {
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
    Ok(Outcome::Done)
}
