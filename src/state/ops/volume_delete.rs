//! Volume delete (`DELETE /volumes/{id}`): the volume is hidden while Gluster's volume goes;
//! that is its point of no return (`OpStep 0`), after which it only rolls forward: the
//! volume is forgotten and its bricks' space given back, even if the operation fails.

use hekate_raft::{StateReader, StoreError, Txn};

use super::super::command::Outcome;
use super::super::model::Operation;
use super::super::{get_volume, keys, put};
use super::shared::{drop_volume, IN_USE};
use super::R;

pub fn begin(volume: &str, op: &str, txn: &mut Txn<'_>) -> R {
    let Some(mut v) = get_volume(txn, volume)? else {
        return Ok(Outcome::NotFound);
    };
    if v.hidden {
        return Ok(Outcome::NotFound);
    }
    if v.name == "heketidbstorage" {
        return Ok(Outcome::Conflict(
            "Cannot delete volume containing the Heketi database".into(),
        ));
    }
    if v.block && !super::super::bhv_block_ids(txn, volume)?.is_empty() {
        return Ok(Outcome::Conflict(
            "Cannot delete a block hosting volume containing block volumes".into(),
        ));
    }
    if v.pending.is_some() {
        return Ok(Outcome::Failed(format!(
            "Failed to set up volume delete: {IN_USE}"
        )));
    }
    v.pending = Some(op.to_string());
    v.hidden = true;
    put(txn, keys::volume(volume), &v)?;
    Ok(Outcome::Done)
}

pub fn finish(volume: &str, txn: &mut Txn<'_>) -> Result<Option<String>, StoreError> {
    drop_volume(volume, txn)?;
    Ok(None)
}

/// The volume (by name), its bricks and their devices.
pub fn holds(h: &mut super::Holds, r: &impl StateReader, volume: &str) -> Result<(), StoreError> {
    if let Some(v) = get_volume(r, volume)? {
        h.volumes.insert(v.name.clone());
        for b in &v.bricks {
            h.bricks.insert(b.clone());
            h.device_of(r, b)?;
        }
    }
    Ok(())
}

pub fn fail(volume: &str, op: &Operation, txn: &mut Txn<'_>) -> R {
    if op.progress > 0 {
        // Past the point of no return the Gluster volume is gone: the volume never shows
        // again (the runner never fails such a delete; this is the guarantee in `apply`).
        drop_volume(volume, txn)?;
    } else if let Some(mut v) = get_volume(txn, volume)? {
        v.pending = None;
        v.hidden = false;
        put(txn, keys::volume(volume), &v)?;
    }
    Ok(Outcome::Done)
}
