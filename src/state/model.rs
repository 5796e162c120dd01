//! The stored records of the replicated state. Field names follow Heketi's DB entries so
//! export/import stays a mapping, not a translation.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::record::Record;

/// A Gluster cluster: which node and volume ids it holds and what volumes it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterEntry {
    pub id: String,
    pub file: bool,
    pub block: bool,
    pub nodes: BTreeSet<String>,
    pub volumes: BTreeSet<String>,
    pub blockvolumes: BTreeSet<String>,
}

impl Record for ClusterEntry {
    const KIND: &'static str = "cluster";
    const VERSION: u16 = 1;
}

impl ClusterEntry {
    pub fn new(id: String, file: bool, block: bool) -> ClusterEntry {
        ClusterEntry {
            id,
            file,
            block,
            nodes: BTreeSet::new(),
            volumes: BTreeSet::new(),
            blockvolumes: BTreeSet::new(),
        }
    }
}
