//! `hekate-raft`: Hekate's replicated core.
//!
//! This crate turns a set of processes into one replicated state machine. It owns the
//! openraft type configuration, a RocksDB log store and state machine, the HTTP peer network
//! and the wiring of a replica. It knows nothing of Gluster: the application supplies a
//! command type and an `apply` function through [`Application`], and reads its state through
//! [`StateReader`].
//!
//! # Layout
//! - [`types`]: the openraft type configuration and the member record (API + peer address).
//! - [`codec`]: the one place bytes are encoded (bincode 2, bounded).
//! - [`db`]: opening RocksDB with the column families both stores share.
//! - [`log_store`]: the Raft log, vote and purge marker, every write synced before it is acknowledged.
//! - [`state_machine`]: applies committed entries through the application in one synced WriteBatch.
//! - [`snapshot`]: the snapshot file format, built from a consistent RocksDB view.
//! - [`network`] / [`service`]: the peer RPC client and server (bincode over HTTP, shared secret).
//! - [`quorum`]: check quorum: a leader without a quorum says so and steps down.
//! - [`replica`]: a running replica: propose, linearizable read, leadership, membership, status.
//!
//! openraft stays behind this crate's API so an upgrade (0.9 -> 0.10) stays local.

// openraft's `StorageError` (224 bytes) and axum's `Response` are the error types the traits
// and handlers must return; boxing them would only add allocations on every call.
#![allow(clippy::result_large_err)]

pub mod app;
pub mod assist;
pub mod codec;
pub mod db;
pub mod error;
pub mod log_store;
pub mod network;
pub mod quorum;
pub mod replica;
pub mod service;
pub mod settings;
pub mod snapshot;
pub mod state_machine;
pub mod types;

pub use app::{Application, Savepoint, StateReader, Txn};
pub use error::{ReplicaError, StoreError};
pub use replica::{MemberStatus, Replica, ReplicaStatus, Role};
pub use settings::RaftSettings;
pub use types::{Member, NodeId};
