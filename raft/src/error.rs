//! Errors of the replicated core, typed so the application maps them to HTTP once.

use crate::types::{Member, NodeId};

/// A storage failure: the disk, RocksDB, or bytes that do not decode. Fatal for the replica.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Db(#[from] rocksdb::Error),
    #[error(transparent)]
    Codec(#[from] crate::codec::CodecError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Why a proposal or a linearizable read did not happen here.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// This replica is not the leader; `leader` is the one it knows, if any.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<(NodeId, Member)> },
    /// No quorum answered in time (a partition, or most replicas down).
    #[error("no quorum: {0}")]
    Unavailable(String),
    /// A membership change was refused (in progress, unknown node, would lose quorum...).
    #[error("membership change refused: {0}")]
    Membership(String),
    /// The replica is shutting down or hit a fatal storage error.
    #[error("replica stopped: {0}")]
    Fatal(String),
    #[error(transparent)]
    Codec(#[from] crate::codec::CodecError),
    #[error(transparent)]
    Store(#[from] StoreError),
}
