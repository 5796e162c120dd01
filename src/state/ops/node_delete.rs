//! Node delete (`DELETE /nodes/{id}`): a node without devices is forgotten (hostnames,
//! cluster membership) once it was detached from its peers.

use hekate_raft::{StoreError, Txn};

use super::super::command::Outcome;
use super::super::get_node;
use super::shared::remove_node;
use super::R;

pub fn begin(node: &str, txn: &mut Txn<'_>) -> R {
    Ok(match get_node(txn, node)? {
        None => Outcome::NotFound,
        Some(n) if !n.devices.is_empty() => Outcome::Conflict(format!(
            "Unable to delete node [{}] because it contains devices",
            n.id
        )),
        Some(_) => Outcome::Done,
    })
}

pub fn finish(node: &str, txn: &mut Txn<'_>) -> Result<Option<String>, StoreError> {
    remove_node(node, txn)?;
    Ok(None)
}
