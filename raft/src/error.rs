//! Errors of the replicated core, typed so the application maps them to HTTP once.

use crate::types::{Member, NodeId};

fn leader_text(leader: &Option<(NodeId, Member)>) -> String {
    match leader {
        Some((id, m)) => format!(" (the leader is replica {id} at {})", m.api_addr),
        None => " (no leader known)".into(),
    }
}

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
    /// This replica is not the leader; `leader` is the one it knows, if any. A proposal that
    /// ends so was not appended, or was truncated away: it never commits.
    #[error("not the leader{}", leader_text(leader))]
    NotLeader { leader: Option<(NodeId, Member)> },
    /// The leader refused the proposal before appending it (it has heard from no quorum):
    /// it never commits, and retrying is safe.
    #[error("not accepted: {0}")]
    NotAccepted(String),
    /// The proposal was handed to the leader but not committed in time: it may still commit.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
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
