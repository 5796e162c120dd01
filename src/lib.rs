//! Hekate: a highly available, drop-in successor to Heketi.
//!
//! # Layout
//! - [`config`]: `heketi.json` (Heketi's keys, env overrides) plus the `raft` section.
//! - [`auth`]: Heketi's JWT rules, verification and signing.
//! - [`api`]: the HTTP edge: auth layer, leader forwarding, handlers, errors -> HTTP.
//! - [`state`]: the replicated state: command catalogue, records, deterministic `apply`.
//! - [`server`]: `hekate serve`, the boot of one replica.
//! - [`dev`]: `hekate dev`, a local multi-process cluster.
//! - [`client`]: a small HTTP client for Hekate's admin commands, with JWT signing.
//! - [`ids`]: Heketi-style ids.
//!
//! Dependencies between these modules point down the layer table of docs/ARCHITECTURE.md
//! ("Module layers"); a unit test (`layers`) fails on an upward `crate::` path.
//!
//! # Data flow
//! ```text
//! client -HTTP-> api::auth_layer (JWT) -> api::forward (follower? proxy to leader)
//!   leader: handler -> Replica::propose(Command) -> openraft commit
//!           -> state::apply on every replica (one synced RocksDB WriteBatch) -> response
//!   reads:  handler -> Replica::linearizable_read -> consistent view of RocksDB
//! ```
//! The replicated core (Raft, RocksDB, peer network) is the `hekate-raft` crate.

pub mod allocator;
pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod dev;
pub mod dump;
pub mod executor;
pub mod gojson;
#[cfg(test)]
mod golden;
pub mod heap;
pub mod ids;
#[cfg(test)]
mod layers;
pub mod listen;
pub mod logging;
pub mod ops;
pub mod reconcile;
pub mod server;
pub mod state;
pub mod tls;
pub mod validate;
pub mod views;
