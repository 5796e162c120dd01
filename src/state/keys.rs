//! The replicated keyspace. Every key is `<kind>/<id>`; ids are 32 lowercase hex characters,
//! so RocksDB's key order within a kind is id order, which is the order Heketi lists in.
//!
//! | prefix | record |
//! |---|---|
//! | `c/` | [`crate::state::model::ClusterEntry`] |

pub const CLUSTER_PREFIX: &[u8] = b"c/";

pub fn cluster(id: &str) -> Vec<u8> {
    [CLUSTER_PREFIX, id.as_bytes()].concat()
}
