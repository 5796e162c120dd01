//! Device state (`POST /devices/{id}/state` to online, offline, or failed without bricks):
//! the transition is checked by the step (Heketi's table) and recorded when it passed.

use hekate_raft::{StoreError, Txn};

use super::super::model::EntryState;
use super::super::{get_device, keys, put};
use super::shared::exists;
use super::R;

pub fn begin(device: &str, txn: &mut Txn<'_>) -> R {
    Ok(exists(get_device(txn, device)?.is_some()))
}

pub fn finish(device: &str, state: &str, txn: &mut Txn<'_>) -> Result<Option<String>, StoreError> {
    if let Some(mut d) = get_device(txn, device)? {
        d.state = EntryState::parse(state);
        put(txn, keys::device(device), &d)?;
    }
    Ok(None)
}
