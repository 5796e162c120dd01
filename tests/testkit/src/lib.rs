//! `hekate-testkit`: what the process-level tests (`tests/cluster/`, `tests/e2e.rs`,
//! `tests/ssh.rs`...), the in-process tier (`tests/inproc/`) and the benchmarks and drill
//! (`bench/`) share to build and drive local Hekate clusters. A dev-only crate: it is not
//! part of the `hekate` library nor of its binaries, and reaches Hekate only through its
//! public API.
//!
//! # Layout
//! - [`spec`]: how a process cluster is laid out ([`ClusterSpec`]).
//! - [`cluster`]: the cluster of `hekate serve` processes ([`ProcCluster`]): addresses,
//!   clients, shared mock nodes; `config` writes each replica's `heketi.json`, `process`
//!   starts, signals and reaps them, `probe` asks them how they are.
//! - [`inproc`]: one replica inside the test process ([`InProc`]: single-node Raft in a
//!   tempdir, the router through `oneshot`, the runner, the in-memory mock); [`replicas`]:
//!   several of them on loopback ports ([`InProcReplicas`]), forwarding to their leader.
//! - [`netns`]: network namespaces for partitions ([`Netns`], root only).
//! - [`workflow`]: the Heketi API exchanges tests repeat (async requests through the queue,
//!   topology load/unload).
//! - [`wait`]: polling a condition instead of sleeping.
//! - [`node_logs`]: the testbed nodes' command records and the order of their terms.
//! - [`ports`]: free loopback ports.

pub mod cluster;
mod config;
pub mod inproc;
pub mod netns;
pub mod node_logs;
pub mod ports;
mod probe;
mod process;
pub mod replicas;
pub mod spec;
pub mod wait;
pub mod workflow;

pub use cluster::ProcCluster;
pub use hekate::dev::TestbedEnv;
pub use inproc::{InProc, InProcSpec};
pub use netns::Netns;
pub use node_logs::{term_order, GuardRecord, NodeLogs, TermOrder};
pub use ports::free_ports;
pub use replicas::InProcReplicas;
pub use spec::ClusterSpec;
pub use wait::wait_for;
pub use workflow::{
    create_cluster, load_topology, run_async, run_async_every, set_state, unload_topology, wait_queue,
    wait_queue_every,
};
