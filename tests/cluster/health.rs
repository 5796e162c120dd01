//! The node health monitor (issue 14): with a 1 s period, a node whose glusterd stops is
//! marked down within a few periods and no new brick lands on it; back up, it is used again;
//! the health survives a leader kill (it is replicated) and the new leader keeps checking.

use std::collections::BTreeSet;

use hekate_testkit::{load_topology, run_async, wait_for, ClusterSpec, ProcCluster};
use reqwest::Method;
use serde_json::{json, Value};

use crate::{serial, BIN, T};

fn topology() -> Value {
    let nodes: Vec<Value> = (1..=4)
        .map(|i| json!({"node": {"hostnames": {"manage": [format!("h{i}")], "storage": [format!("10.8.0.{i}")]}, "zone": i},
                        "devices": [{"name": "/dev/vdb"}]}))
        .collect();
    json!({"clusters": [{"nodes": nodes}]})
}

/// `node id -> health` as replica `id` reports it.
async fn health(c: &ProcCluster, id: u64) -> Vec<(String, String)> {
    let v = c.call_ok(id, Method::GET, "/health/nodes", None).await.unwrap();
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["manage"].as_str().unwrap().to_string(),
                n["health"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn wait_health(c: &ProcCluster, id: u64, host: &str, want: &str) {
    wait_for(T, &format!("{host} {want}"), || async {
        health(c, id)
            .await
            .iter()
            .any(|(h, s)| h == host && s == want)
            .then_some(())
    })
    .await
    .unwrap();
}

/// Creates a replica-3 volume and returns the manage hosts of its bricks.
async fn create(c: &ProcCluster, id: u64) -> BTreeSet<String> {
    let body = json!({"size": 1, "durability": {"type": "replicate", "replicate": {"replica": 3}}});
    let loc = run_async(&c.client(id), Method::POST, "/volumes", Some(&body))
        .await
        .unwrap()
        .unwrap();
    let v = c.call_ok(id, Method::GET, &loc, None).await.unwrap();
    let topo = c.call_ok(id, Method::GET, "/topology", None).await.unwrap();
    let host_of = |node: &str| -> String {
        topo["clusters"][0]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == node)
            .unwrap()["hostnames"]["manage"][0]
            .as_str()
            .unwrap()
            .to_string()
    };
    v["bricks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| host_of(b["node"].as_str().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_seen_down_gets_no_brick_until_it_is_back_also_after_a_failover() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ClusterSpec::new(BIN, 3);
    spec.glusterfs = json!({"start_time_monitor_gluster_nodes": 1, "refresh_time_monitor_gluster_nodes": 1});
    let mut c = ProcCluster::create(dir.path(), spec).unwrap();
    c.start_all().unwrap();
    c.wait_ready(&c.ids(), T).await.unwrap();
    let leader = c.wait_leader(&c.ids(), T).await.unwrap();
    load_topology(&c.client(leader), &topology()).await.unwrap();
    for h in ["h1", "h2", "h3", "h4"] {
        wait_health(&c, leader, h, "up").await;
    }
    let nodes = c.mock_nodes().unwrap();

    // Down: marked within a few periods, and placement avoids it.
    nodes.set_glusterd_down("h4", true).await.unwrap();
    wait_health(&c, leader, "h4", "down").await;
    for _ in 0..4 {
        let hosts = create(&c, leader).await;
        assert!(
            !hosts.contains("h4"),
            "a brick landed on the node seen down: {hosts:?}"
        );
    }

    // Back up: used again (a replica-3 volume over four nodes misses a given one with
    // probability 1/4, so 12 volumes all missing it would be 6e-8).
    nodes.set_glusterd_down("h4", false).await.unwrap();
    wait_health(&c, leader, "h4", "up").await;
    let mut used = false;
    for _ in 0..12 {
        if create(&c, leader).await.contains("h4") {
            used = true;
            break;
        }
    }
    assert!(used, "the node back up never got a brick");

    // Failover: the replicated health is the new leader's at once, and it keeps checking.
    nodes.set_glusterd_down("h3", true).await.unwrap();
    wait_health(&c, leader, "h3", "down").await;
    c.kill(leader).unwrap();
    let others: Vec<u64> = c.ids().into_iter().filter(|i| *i != leader).collect();
    let new = c.wait_leader(&others, T).await.unwrap();
    assert!(health(&c, new)
        .await
        .contains(&("h3".to_string(), "down".to_string())));
    for _ in 0..3 {
        let hosts = create(&c, new).await;
        assert!(
            !hosts.contains("h3"),
            "after the failover a brick landed on h3: {hosts:?}"
        );
    }
    nodes.set_glusterd_down("h3", false).await.unwrap();
    wait_health(&c, new, "h3", "up").await;
    let m = c.call(new, Method::GET, "/metrics", None).await.unwrap();
    assert!(m.body.contains("hekate_node_health{"), "{}", m.body);
}

/// The same check on demand (`POST /health/nodes/{id}`, an operation of its own) with the
/// monitor off: a failed check records the node down (the queue answers 500 with the node's
/// error) and placement skips it; a check once it is back records it up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_check_on_demand_records_the_node_down_then_up() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ClusterSpec::new(BIN, 3);
    spec.glusterfs = json!({"disable_monitor_gluster_nodes": true});
    let mut c = ProcCluster::create(dir.path(), spec).unwrap();
    c.start_all().unwrap();
    c.wait_ready(&c.ids(), T).await.unwrap();
    let leader = c.wait_leader(&c.ids(), T).await.unwrap();
    let via = c.ids().into_iter().find(|i| *i != leader).unwrap();
    load_topology(&c.client(via), &topology()).await.unwrap();
    // The check is a log-format-2 operation: proposed once the replicas agreed on it.
    wait_for(T, "log format 2 agreed", || async {
        let st = c.status(via).await?;
        (st["log_format"]["agreed"].as_u64() >= Some(2)).then_some(())
    })
    .await
    .unwrap();
    let topo = c.call_ok(via, Method::GET, "/topology", None).await.unwrap();
    let h4 = topo["clusters"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["hostnames"]["manage"][0] == "h4")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        health(&c, via).await.iter().all(|(_, s)| s == "unknown"),
        "the monitor is off"
    );

    c.mock_nodes()
        .unwrap()
        .set_glusterd_down("h4", true)
        .await
        .unwrap();
    let err = run_async(&c.client(via), Method::POST, &format!("/health/nodes/{h4}"), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("operation ended 500"), "{err}");
    assert!(health(&c, via)
        .await
        .contains(&("h4".to_string(), "down".to_string())));
    for _ in 0..3 {
        assert!(
            !create(&c, via).await.contains("h4"),
            "a brick landed on the node checked down"
        );
    }
    c.mock_nodes()
        .unwrap()
        .set_glusterd_down("h4", false)
        .await
        .unwrap();
    let done = run_async(&c.client(via), Method::POST, &format!("/health/nodes/{h4}"), None)
        .await
        .unwrap();
    assert_eq!(done, None, "a check that passed ends 204");
    assert!(health(&c, via)
        .await
        .contains(&("h4".to_string(), "up".to_string())));
    let r = c
        .call(
            via,
            Method::POST,
            "/health/nodes/0123456789abcdef0123456789abcdef",
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
}
