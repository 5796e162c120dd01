//! Process-level tests: real `hekate serve` processes on loopback, killed with SIGKILL,
//! restarted, partitioned from their peers' view. One binary; tests run one at a time (a
//! 3-replica cluster per test on a 2-core machine is load enough).

// Each test owns its runtime and holds the serializing lock for its whole run, across awaits
// by design: the lock orders whole tests between the harness's threads, not tasks.
#![allow(clippy::await_holding_lock)]

mod bad_input;
mod block;
mod cli;
mod clone;
mod contract;
mod durability;
mod evacuation;
mod failover;
mod health;
mod membership;
mod migration;
mod operations;
mod ownership;
mod quorum;
mod reconcile;
mod rollforward;
mod security;
mod sizes;
mod snapshot;
mod tls;

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hekate_testkit::{ClusterSpec, ProcCluster};

static SERIAL: Mutex<()> = Mutex::new(());

/// Serializes the process tests (a poisoned lock from a failed test is still usable).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub const BIN: &str = env!("CARGO_BIN_EXE_hekate");
pub const T: Duration = Duration::from_secs(30);

/// Starts `n` replicas and waits until all are ready. Keep the TempDir alive with the cluster.
pub async fn cluster(n: u64, timeouts: serde_json::Value) -> (tempfile::TempDir, ProcCluster) {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ClusterSpec::new(BIN, n);
    spec.timeouts = timeouts;
    let mut c = ProcCluster::create(dir.path(), spec).unwrap();
    c.start_all().unwrap();
    let ids = c.ids();
    c.wait_ready(&ids, T)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(1)));
    (dir, c)
}

/// The cluster list as one replica's own applied state has it.
pub async fn local_clusters(c: &ProcCluster, id: u64) -> Vec<String> {
    let v = c.local_get(id, "/clusters").await.unwrap();
    v["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}
