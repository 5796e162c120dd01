//! Node state (`POST /nodes/{id}/state` to online, offline, or failed without devices): the
//! transition is checked by the step (Heketi's table) and recorded when it passed.

use hekate_raft::{StoreError, Txn};

use super::super::model::EntryState;
use super::super::{get_node, keys, put};
use super::shared::exists;
use super::R;

pub fn begin(node: &str, txn: &mut Txn<'_>) -> R {
    Ok(exists(get_node(txn, node)?.is_some()))
}

pub fn finish(node: &str, state: &str, txn: &mut Txn<'_>) -> Result<Option<String>, StoreError> {
    if let Some(mut n) = get_node(txn, node)? {
        n.state = EntryState::parse(state);
        put(txn, keys::node(node), &n)?;
    }
    Ok(None)
}
