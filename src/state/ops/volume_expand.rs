//! Volume expand (`POST /volumes/{id}/expand`): the new bricks' space is reserved; `OpStep 0`
//! marks the point of no return before the first `add-brick`. Done, the bricks join the
//! volume set by set; failed before the mark, they are released; failed after it, only the
//! runner (having read Gluster back) can say which stay (`OpFailKept`).

use hekate_raft::{StateReader, StoreError, Txn};

use super::super::command::Outcome;
use super::super::model::{BrickEntry, Operation};
use super::super::{get_volume, keys, put};
use super::shared::{clear_brick_pending, release, reserve, too_big, IN_USE};
use super::R;

pub fn begin(volume: &str, bricks: &[BrickEntry], delta: u64, op: &str, txn: &mut Txn<'_>) -> R {
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

pub fn finish(
    volume: &str,
    bricks: &[BrickEntry],
    delta: u64,
    txn: &mut Txn<'_>,
) -> Result<Option<String>, StoreError> {
    if let Some(mut v) = get_volume(txn, volume)? {
        v.size = v.size.saturating_add(delta);
        if v.block {
            // A block-hosting volume's new space: 98 % for block volumes, 2 % reserved.
            let free = delta * 98 / 100;
            v.block_free = v.block_free.saturating_add(free);
            v.block_reserved = v.block_reserved.saturating_add(delta - free);
        }
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
    Ok(Some(format!("/volumes/{volume}")))
}

pub fn holds(
    h: &mut super::Holds,
    r: &impl StateReader,
    volume: &str,
    bricks: &[BrickEntry],
) -> Result<(), StoreError> {
    h.volume(r, volume)?;
    bricks.iter().for_each(|b| h.brick(b));
    Ok(())
}

pub fn changes(volume: &str, bricks: &[BrickEntry]) -> Vec<(String, &'static str)> {
    std::iter::once((volume.to_string(), "Expand volume"))
        .chain(bricks.iter().map(|b| (b.id.clone(), "Add brick")))
        .collect()
}

pub fn fail(volume: &str, bricks: &[BrickEntry], op: &Operation, txn: &mut Txn<'_>) -> R {
    // `add-brick` may have run: only the runner, having read Gluster's bricks back, can
    // say which new bricks stay (`OpFailKept`). A plain failure would release bricks
    // Gluster may use: refused, nothing changes.
    if op.progress > 0 {
        return Ok(Outcome::Conflict(format!(
            "operation {} is past its point of no return: its failure must name the bricks Gluster kept",
            op.id
        )));
    }
    for b in bricks {
        release(&b.id, txn)?;
    }
    if let Some(mut v) = get_volume(txn, volume)? {
        v.pending = None;
        put(txn, keys::volume(volume), &v)?;
    }
    Ok(Outcome::Done)
}

/// An expand that failed after `add-brick` ran for some of its sets: `kept` are the new
/// bricks Gluster holds (read back by the runner). They join the volume, in plan order and
/// set by set, and the size grows by their share of the delta (rounded down to GiB); the
/// other new bricks are released. The caller ends the operation failed.
pub fn fail_kept(
    (volume, bricks, delta): (&str, &[BrickEntry], u64),
    kept: &[String],
    op: &str,
    txn: &mut Txn<'_>,
) -> R {
    if let Some(bad) = kept.iter().find(|k| !bricks.iter().any(|b| &b.id == *k)) {
        return Ok(Outcome::Invalid(format!(
            "brick {bad} is not one of operation {op}'s new bricks"
        )));
    }
    if let Some(mut v) = get_volume(txn, volume)? {
        let is_kept = |b: &BrickEntry| kept.contains(&b.id);
        let n = bricks.iter().filter(|b| is_kept(b)).count() as u128;
        let grown = (u128::from(delta) * n / (bricks.len().max(1) as u128)) as u64;
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
    Ok(Outcome::Done)
}
