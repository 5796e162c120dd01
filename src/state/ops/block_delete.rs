//! Block volume delete (`DELETE /blockvolumes/{id}`): the block volume is hidden while
//! gluster-block deletes it; then forgotten, its size given back to its block-hosting volume.
//! A failed delete shows it again. The BHV itself stays (Heketi's rule).

use hekate_raft::{StoreError, Txn};

use super::super::command::Outcome;
use super::super::{get_blockvolume, keys, put};
use super::{block_create, IN_USE, R};

pub fn begin(block: &str, op: &str, txn: &mut Txn<'_>) -> R {
    let Some(mut b) = get_blockvolume(txn, block)? else {
        return Ok(Outcome::NotFound);
    };
    if b.hidden {
        return Ok(Outcome::NotFound);
    }
    if b.pending.is_some() {
        return Ok(Outcome::Failed(format!(
            "Failed to set up block volume delete: {IN_USE}"
        )));
    }
    b.pending = Some(op.to_string());
    b.hidden = true;
    put(txn, keys::blockvolume(block), &b)?;
    Ok(Outcome::Done)
}

pub fn finish(block: &str, txn: &mut Txn<'_>) -> Result<Option<String>, StoreError> {
    if let Some(b) = get_blockvolume(txn, block)? {
        block_create::forget(&b, txn)?;
    }
    Ok(None)
}

pub fn fail(block: &str, txn: &mut Txn<'_>) -> R {
    if let Some(mut b) = get_blockvolume(txn, block)? {
        b.pending = None;
        b.hidden = false;
        put(txn, keys::blockvolume(block), &b)?;
    }
    Ok(Outcome::Done)
}
