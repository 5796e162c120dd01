//! A node health check on demand (`POST /health/nodes/{id}`): the operation probes the node's
//! glusterd once, through the fence, and records what it saw as the health monitor does
//! (`ops::health`): up when it answered, down when the check failed, at the operation's end.
//! An operator who repaired a node need not wait for the monitor's next round. Log format 2.
//! (Also issue 12's example of a kind added as one module here, one in `ops::kinds`, and one
//! line per dispatch.)

use hekate_raft::{StoreError, Txn};

use super::super::command::Outcome;
use super::super::model::NodeHealth;
use super::super::{get_node, keys, put};
use super::shared::exists;
use super::R;

pub fn begin(node: &str, txn: &mut Txn<'_>) -> R {
    Ok(exists(get_node(txn, node)?.is_some()))
}

fn record(node: &str, up: bool, now: u64, txn: &mut Txn<'_>) -> Result<(), StoreError> {
    if get_node(txn, node)?.is_some() {
        put(txn, keys::health(node), &NodeHealth { up, checked: now })?;
    }
    Ok(())
}

pub fn finish(node: &str, now: u64, txn: &mut Txn<'_>) -> Result<Option<String>, StoreError> {
    record(node, true, now, txn)?;
    Ok(None)
}

pub fn fail(node: &str, now: u64, txn: &mut Txn<'_>) -> R {
    record(node, false, now, txn)?;
    Ok(Outcome::Done)
}
