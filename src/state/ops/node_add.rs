//! Node add (`POST /nodes`): the node is recorded, pending, with its hostnames registered;
//! it joins its cluster once the peer probe succeeded, and is forgotten if it failed.

use hekate_raft::{StateReader, StoreError, Txn};

use super::super::command::Outcome;
use super::super::model::NodeEntry;
use super::super::{get_cluster, get_node, keys, put};
use super::shared::remove_node;
use super::R;

pub fn begin(node: &NodeEntry, op: &str, txn: &mut Txn<'_>) -> R {
    if get_cluster(txn, &node.cluster)?.is_none() {
        return Ok(Outcome::NotFound);
    }
    let regs = node
        .manage
        .iter()
        .map(|h| keys::manage_host(h))
        .chain(node.storage.iter().map(|h| keys::storage_host(h)));
    let hosts = node.manage.iter().chain(node.storage.iter());
    for (key, host) in regs.zip(hosts) {
        if let Some(owner) = txn.get(&key)? {
            let owner = String::from_utf8_lossy(&owner).into_owned();
            // A registration pointing to a node that no longer exists is stale.
            if get_node(txn, &owner)?.is_some() && owner != node.id {
                return Ok(Outcome::Conflict(format!(
                    "Hostname {host} already used by node with id {owner}\n"
                )));
            }
        }
        txn.put(key, node.id.as_bytes().to_vec());
    }
    let mut n = node.clone();
    n.pending = Some(op.to_string());
    put(txn, keys::node(&n.id), &n)?;
    Ok(Outcome::Done)
}

pub fn finish(node: &NodeEntry, txn: &mut Txn<'_>) -> Result<Option<String>, StoreError> {
    if let Some(mut n) = get_node(txn, &node.id)? {
        n.pending = None;
        put(txn, keys::node(&n.id), &n)?;
        if let Some(mut c) = get_cluster(txn, &n.cluster)? {
            c.nodes.insert(n.id.clone());
            put(txn, keys::cluster(&c.id), &c)?;
        }
    }
    Ok(Some(format!("/nodes/{}", node.id)))
}

pub fn fail(node: &NodeEntry, txn: &mut Txn<'_>) -> R {
    remove_node(&node.id, txn)?;
    Ok(Outcome::Done)
}
