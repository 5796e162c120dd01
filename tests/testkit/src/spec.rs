//! How a process cluster is laid out ([`ClusterSpec`]): replicas, binary, executor mock,
//! extra config keys, namespaces and TLS. Read by [`crate::ProcCluster`] when it writes the
//! replicas' configs.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::Netns;

/// How to lay out a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub replicas: u64,
    /// Extra `raft.timeouts` keys (snapshot thresholds, election timeouts...).
    pub timeouts: Value,
    /// Path of the `hekate` binary.
    pub binary: PathBuf,
    pub loglevel: String,
    /// `glusterfs.mockexec` (latency, failures); `nodes_url` is set to the cluster's own.
    pub mockexec: Value,
    /// Extra `glusterfs` keys (limits such as `max_inflight_operations`).
    pub glusterfs: Value,
    /// Extra `raft` keys (`forward_timeout_ms`...).
    pub raft: Value,
    /// Share the mock's nodes between replicas through a `hekate mock-nodes` process (as
    /// real nodes are shared), as `hekate dev` does. Off: each replica models its own nodes
    /// in memory (no failover).
    pub shared_mock: bool,
    /// Run each replica in its own network namespace (see [`Netns`]); empty: all on loopback.
    pub netns: Option<Netns>,
    /// The production transport: HTTPS on the API (`enable_tls`) and mutual TLS between
    /// replicas on their own peer ports, with a CA and certificates generated under the
    /// cluster's directory (`tls/`).
    pub tls: bool,
    /// `raft.limits` keys (timeouts, connection bounds).
    pub limits: Value,
}

impl ClusterSpec {
    pub fn new(binary: impl Into<PathBuf>, replicas: u64) -> ClusterSpec {
        ClusterSpec {
            replicas,
            timeouts: json!({}),
            binary: binary.into(),
            loglevel: "info".into(),
            mockexec: json!({}),
            glusterfs: json!({}),
            raft: json!({}),
            shared_mock: true,
            netns: None,
            tls: false,
            limits: json!({}),
        }
    }
}
