//! The openraft type configuration: what a log entry carries and how a member is addressed.
//!
//! Application commands travel as opaque bytes ([`AppRequest`]) so that openraft's generic
//! machinery is instantiated once, here, while the application keeps its own typed enum
//! (see [`crate::app::Application`]).

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// A replica's id. Never reuse the id of a removed replica.
pub type NodeId = u64;

/// How to reach a member: its client API address and its peer (Raft RPC) address, both
/// `host:port`. They may be equal, in which case one listener serves both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub api_addr: String,
    pub peer_addr: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "api={} peer={}", self.api_addr, self.peer_addr)
    }
}

/// An encoded application command, as stored in the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRequest(pub Vec<u8>);

/// An encoded application response. Empty for blank and membership entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppResponse(pub Vec<u8>);

openraft::declare_raft_types!(
    /// Hekate's Raft type configuration.
    pub TypeConfig:
        D = AppRequest,
        R = AppResponse,
        NodeId = NodeId,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Member>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Member>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
