//! Device delete (`DELETE /devices/{id}`): a failed device without bricks is marked pending,
//! torn down on its node, then forgotten.

use hekate_raft::{StoreError, Txn};

use super::super::command::Outcome;
use super::super::model::EntryState;
use super::super::{get_device, get_node, keys, put};
use super::shared::IN_USE;
use super::R;

pub fn begin(device: &str, op: &str, txn: &mut Txn<'_>) -> R {
    let Some(mut d) = get_device(txn, device)? else {
        return Ok(Outcome::NotFound);
    };
    if d.state != EntryState::Failed {
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

pub fn finish(device: &str, txn: &mut Txn<'_>) -> Result<Option<String>, StoreError> {
    if let Some(d) = get_device(txn, device)? {
        if let Some(mut n) = get_node(txn, &d.node)? {
            n.devices.remove(device);
            put(txn, keys::node(&n.id), &n)?;
        }
        txn.delete(keys::device(device));
    }
    Ok(None)
}

pub fn fail(device: &str, txn: &mut Txn<'_>) -> R {
    if let Some(mut d) = get_device(txn, device)? {
        d.pending = None;
        put(txn, keys::device(device), &d)?;
    }
    Ok(Outcome::Done)
}
