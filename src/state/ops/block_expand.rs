//! Block volume expand (`POST /blockvolumes/{id}/expand`): the growth (new size minus the
//! current one) is taken from the block-hosting volume's free space at once; the new size
//! shows once gluster-block resized it, and the growth is given back if it failed.

use hekate_raft::{StoreError, Txn};

use super::super::command::Outcome;
use super::super::{get_blockvolume, get_volume, keys, put};
use super::{IN_USE, R};

pub fn begin(block: &str, new_size: u64, op: &str, txn: &mut Txn<'_>) -> R {
    let Some(mut b) = get_blockvolume(txn, block)? else {
        return Ok(Outcome::NotFound);
    };
    if b.hidden {
        return Ok(Outcome::NotFound);
    }
    if new_size > crate::validate::MAX_VOLUME_GIB {
        return Ok(Outcome::Invalid(super::shared::too_big()));
    }
    let fail = |m: String| {
        Ok(Outcome::Failed(format!(
            "Failed to allocate block volume expansion: {m}"
        )))
    };
    let Some(mut bhv) = get_volume(txn, &b.bhv)? else {
        return fail(IN_USE.into());
    };
    if b.pending.is_some() || bhv.pending.is_some() {
        return fail(IN_USE.into());
    }
    // Heketi allows a re-run of the same size after a resize that failed on some host.
    if new_size == b.size && b.usable_size == b.size {
        return fail(format!(
            "Requested new-size {new_size} is same as current block volume size {}, nothing to be done.",
            b.size
        ));
    }
    if new_size < b.size {
        return fail(format!(
            "Requested new-size {new_size} is less than current block volume size {}, shrinking is not allowed.",
            b.size
        ));
    }
    let delta = new_size - b.size;
    if bhv.block_free < delta {
        return fail("No space".into());
    }
    bhv.block_free -= delta;
    put(txn, keys::volume(&bhv.id), &bhv)?;
    b.pending = Some(op.to_string());
    put(txn, keys::blockvolume(block), &b)?;
    Ok(Outcome::Done)
}

pub fn finish(block: &str, new_size: u64, txn: &mut Txn<'_>) -> Result<Option<String>, StoreError> {
    if let Some(mut b) = get_blockvolume(txn, block)? {
        b.size = new_size;
        b.usable_size = new_size;
        b.pending = None;
        put(txn, keys::blockvolume(block), &b)?;
    }
    Ok(Some(format!("/blockvolumes/{block}")))
}

pub fn fail(block: &str, new_size: u64, txn: &mut Txn<'_>) -> R {
    if let Some(mut b) = get_blockvolume(txn, block)? {
        let delta = new_size.saturating_sub(b.size);
        if let Some(mut bhv) = get_volume(txn, &b.bhv)? {
            bhv.block_free = bhv.block_free.saturating_add(delta);
            put(txn, keys::volume(&bhv.id), &bhv)?;
        }
        b.pending = None;
        put(txn, keys::blockvolume(block), &b)?;
    }
    Ok(Outcome::Done)
}
