//! The in-process tier: Heketi's API end to end with the operation runner running, in this
//! process, in milliseconds. Each test starts its own [`InProc`] (a single-node Raft on
//! RocksDB in a tempdir, the router driven through `tower::ServiceExt::oneshot`, the runner,
//! the in-memory mock nodes) and runs in parallel with the others; `replicas.rs` starts three
//! replicas on loopback ports (`hekate_testkit::InProcReplicas`) for forwarding and a new
//! leader. What needs processes (SIGKILL and SIGSTOP, partitions, durability across
//! restarts, TLS, the CLI, membership changes) stays in `tests/cluster/`.
//! docs/testing.md ("In-process tier") has the tier's scope and timing.

mod errors;
mod lifecycle;
mod replicas;
mod rollback;

use std::time::Duration;

use hekate_testkit::InProc;
use reqwest::Method;
use serde_json::{json, Value};

/// How long an operation may take here (the mock answers at once; the runner is woken by
/// each commit).
pub const T: Duration = Duration::from_secs(30);

/// A cluster of three nodes in zones 1..3, each with one device: (cluster, node ids, device
/// ids).
pub async fn three_nodes(h: &InProc) -> (String, Vec<String>, Vec<String>) {
    let c = h
        .call_ok(
            Method::POST,
            "/clusters",
            Some(&json!({"file": true, "block": true})),
        )
        .await
        .unwrap();
    let cid = c["id"].as_str().unwrap_or_else(|| panic!("{c}")).to_string();
    let (mut nodes, mut devices) = (Vec::new(), Vec::new());
    for i in 1..=3 {
        let node = json!({
            "cluster": cid, "zone": i,
            "hostnames": {"manage": [format!("node{i}.example")], "storage": [format!("10.0.0.{i}")]},
        });
        let loc = h
            .run_async(Method::POST, "/nodes", Some(&node))
            .await
            .unwrap()
            .unwrap();
        let nid = loc.trim_start_matches("/nodes/").to_string();
        let dev = json!({"node": nid, "name": "/dev/sdb"});
        // Heketi ends a device add with 204: the id is read from the node.
        let none = h.run_async(Method::POST, "/devices", Some(&dev)).await.unwrap();
        assert_eq!(none, None);
        let info = h.call_ok(Method::GET, &loc, None).await.unwrap();
        devices.push(info["devices"][0]["id"].as_str().unwrap().to_string());
        nodes.push(nid);
    }
    (cid, nodes, devices)
}

/// A replica-3 volume create body of `size` GiB.
pub fn replica3(size: u64) -> Value {
    json!({"size": size, "durability": {"type": "replicate", "replicate": {"replica": 3}}})
}

/// Used KiB of each device, in order.
pub async fn used(h: &InProc, devices: &[String]) -> Vec<u64> {
    let mut out = Vec::new();
    for d in devices {
        let info = h
            .call_ok(Method::GET, &format!("/devices/{d}"), None)
            .await
            .unwrap();
        out.push(info["storage"]["used"].as_u64().unwrap());
    }
    out
}

/// Polls a queue location as the user (who may poll the operations a user token started).
pub async fn wait_user_queue(h: &InProc, loc: &str) -> hekate::client::Reply {
    let deadline = std::time::Instant::now() + T;
    loop {
        let r = h
            .call_as("user", hekate_testkit::inproc::USER_KEY, Method::GET, loc, None)
            .await
            .unwrap();
        if !(r.status == 200 && r.headers.contains_key("x-pending")) || std::time::Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
