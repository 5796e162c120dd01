//! Hekate's replicated state: the command catalogue, the stored records and the
//! deterministic `apply` that the replicated core runs on every replica.
//!
//! `apply` reads no clock, randomness or environment: ids and times come inside the command.
//! A business refusal (unknown id, not empty) is an [`Outcome`], never an error; an error
//! means the store failed. See docs/design/raft-state.md.

pub mod command;
pub mod keys;
pub mod model;
pub mod record;

use hekate_raft::{Application, StateReader, StoreError, Txn};

pub use command::{Command, Outcome};
pub use model::ClusterEntry;

/// The application plugged into the replicated core.
pub struct HekateApp;

impl Application for HekateApp {
    type Command = Command;
    type Response = Outcome;

    fn apply(&self, cmd: Command, txn: &mut Txn<'_>) -> Result<Outcome, StoreError> {
        command::apply(cmd, txn)
    }
}

/// One cluster, if it exists.
pub fn get_cluster(r: &impl StateReader, id: &str) -> Result<Option<ClusterEntry>, StoreError> {
    r.get(&keys::cluster(id))?.map(|b| record::decode(&b)).transpose()
}

/// All cluster ids, sorted (key order is id order).
pub fn cluster_ids(r: &impl StateReader) -> Result<Vec<String>, StoreError> {
    Ok(r.scan_prefix(keys::CLUSTER_PREFIX)?
        .into_iter()
        .map(|(k, _)| String::from_utf8_lossy(&k[keys::CLUSTER_PREFIX.len()..]).into_owned())
        .collect())
}
