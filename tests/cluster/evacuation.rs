//! Brick eviction and the removal of devices and nodes that hold bricks: every brick moves to
//! a device that keeps its set on distinct nodes (and zones), the volume stays whole on the
//! nodes, capacity is conserved, and nothing is left behind.

use std::collections::BTreeSet;

use hekate_testkit::{load_topology, run_async, set_state, wait_queue, ProcCluster};
use reqwest::Method;
use serde_json::{json, Value};

use crate::{cluster, serial, T};

fn topology(nodes: usize) -> Value {
    topology_with(nodes, &["/dev/vdb", "/dev/vdc"])
}

fn topology_with(nodes: usize, devices: &[&str]) -> Value {
    let devices: Vec<Value> = devices.iter().map(|d| json!({"name": d})).collect();
    let nodes: Vec<Value> = (1..=nodes)
        .map(|i| json!({"node": {"hostnames": {"manage": [format!("n{i}")], "storage": [format!("10.7.0.{i}")]}, "zone": i},
                        "devices": devices}))
        .collect();
    json!({"clusters": [{"nodes": nodes}]})
}

async fn volume(c: &ProcCluster, id: &str) -> Value {
    c.call_ok(1, Method::GET, &format!("/volumes/{id}"), None)
        .await
        .unwrap()
}

/// Bricks of a volume are on distinct nodes; the mock's Gluster volume lists exactly them.
async fn check_volume(c: &ProcCluster, vid: &str) {
    let v = volume(c, vid).await;
    let bricks = v["bricks"].as_array().unwrap();
    let nodes: BTreeSet<&str> = bricks.iter().map(|b| b["node"].as_str().unwrap()).collect();
    assert_eq!(nodes.len(), bricks.len(), "bricks of {vid} share a node");
    let mock = c.mock_nodes().unwrap().snapshot().await.unwrap();
    let gv = &mock.volumes[v["name"].as_str().unwrap()];
    let mut ours: Vec<String> = bricks
        .iter()
        .map(|b| b["path"].as_str().unwrap().to_string())
        .collect();
    let mut theirs: Vec<String> = gv
        .bricks
        .iter()
        .map(|b| b.split_once(':').unwrap().1.to_string())
        .collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs, "Gluster's bricks differ from Hekate's for {vid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_and_node_removal_move_every_brick() {
    let _g = serial();
    let (_d, c) = cluster(3, json!({})).await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    let client = c.client(leader);
    load_topology(&client, &topology(4)).await.unwrap();
    let rep = run_async(
        &client,
        Method::POST,
        "/volumes",
        Some(&json!({"size": 2, "durability": {"type": "replicate", "replicate": {"replica": 3}}})),
    )
    .await
    .unwrap()
    .unwrap();
    let rep = rep.trim_start_matches("/volumes/").to_string();
    check_volume(&c, &rep).await;

    // Remove a device holding a brick of the replica-3 volume.
    let v = volume(&c, &rep).await;
    let dev = v["bricks"][0]["device"].as_str().unwrap().to_string();
    // Online -> failed is refused (must be offline first), asynchronously as in Heketi.
    let r = c
        .call(
            1,
            Method::POST,
            &format!("/devices/{dev}/state"),
            Some(&json!({"state": "failed"})),
        )
        .await
        .unwrap();
    let done = wait_queue(&client, r.headers["location"].to_str().unwrap(), T)
        .await
        .unwrap();
    assert_eq!(done.status, 500);
    assert!(done.body.contains("must be offline"), "{}", done.body);
    set_state(&client, "devices", &dev, "offline").await.unwrap();
    set_state(&client, "devices", &dev, "failed").await.unwrap();
    let d = c
        .call_ok(1, Method::GET, &format!("/devices/{dev}"), None)
        .await
        .unwrap();
    assert_eq!(d["state"], "failed");
    assert_eq!(d["bricks"], json!([]));
    assert_eq!(d["storage"]["used"], 0);
    check_volume(&c, &rep).await;
    // A failed, empty device can now be deleted.
    run_async(&client, Method::DELETE, &format!("/devices/{dev}"), None)
        .await
        .unwrap();

    // Evict one brick directly.
    let brick = volume(&c, &rep).await["bricks"][1]["id"]
        .as_str()
        .unwrap()
        .to_string();
    run_async(&client, Method::POST, &format!("/bricks/to-evict/{brick}"), None)
        .await
        .unwrap();
    let v = volume(&c, &rep).await;
    assert!(v["bricks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["id"] != brick.as_str()));
    check_volume(&c, &rep).await;

    // Remove a whole node (offline, then failed).
    let node = volume(&c, &rep).await["bricks"][0]["node"]
        .as_str()
        .unwrap()
        .to_string();
    set_state(&client, "nodes", &node, "offline").await.unwrap();
    set_state(&client, "nodes", &node, "failed").await.unwrap();
    let n = c
        .call_ok(1, Method::GET, &format!("/nodes/{node}"), None)
        .await
        .unwrap();
    assert_eq!(n["state"], "failed");
    assert!(n["devices"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["state"] == "failed" && d["bricks"] == json!([])));
    check_volume(&c, &rep).await;
    let check = c.call_ok(1, Method::GET, "/db/check", None).await.unwrap();
    assert_eq!(check["totalinconsistencies"], 0, "{check}");

    // Delete: the nodes end clean.
    run_async(&client, Method::DELETE, &format!("/volumes/{rep}"), None)
        .await
        .unwrap();
    let mock = c.mock_nodes().unwrap().snapshot().await.unwrap();
    assert!(mock.volumes.is_empty());
    assert!(mock
        .hosts
        .values()
        .all(|h| h.mounts.is_empty() && h.vgs.values().all(|vg| vg.lvs.is_empty())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribute_bricks_need_the_heal_check_disabled() {
    let _g = serial();
    let (_d, c) = cluster(1, json!({})).await;
    let client = c.client(1);
    load_topology(&client, &topology(3)).await.unwrap();
    let vol = run_async(&client, Method::POST, "/volumes", Some(&json!({"size": 1})))
        .await
        .unwrap()
        .unwrap();
    let brick = c.call_ok(1, Method::GET, &vol, None).await.unwrap()["bricks"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let err = run_async(&client, Method::POST, &format!("/bricks/to-evict/{brick}"), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "Cannot replace brick {brick} as only 0 of 1 required peer bricks are online"
        )),
        "{err}"
    );
    // Nothing changed, and the reservation for the replacement was given back.
    let check = c.call_ok(1, Method::GET, "/db/check", None).await.unwrap();
    assert_eq!(check["totalinconsistencies"], 0, "{check}");
    run_async(
        &client,
        Method::POST,
        &format!("/bricks/to-evict/{brick}"),
        Some(&json!({"healcheck": "disable"})),
    )
    .await
    .unwrap();
    let v = c.call_ok(1, Method::GET, &vol, None).await.unwrap();
    assert_ne!(v["bricks"][0]["id"], brick.as_str());
    let r = client
        .call(Method::POST, &format!("/bricks/to-evict/{brick}"), None)
        .await
        .unwrap();
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_without_a_place_to_go_is_refused_at_once() {
    let _g = serial();
    let (_d, c) = cluster(1, json!({})).await;
    let client = c.client(1);
    // Three nodes with one device each, and a replica-3 volume on all of them.
    load_topology(&client, &topology_with(3, &["/dev/vdb"]))
        .await
        .unwrap();
    let vol = run_async(
        &client,
        Method::POST,
        "/volumes",
        Some(&json!({"size": 1, "durability": {"type": "replicate", "replicate": {"replica": 3}}})),
    )
    .await
    .unwrap()
    .unwrap();
    let brick = c.call_ok(1, Method::GET, &vol, None).await.unwrap()["bricks"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = client
        .call(Method::POST, &format!("/bricks/to-evict/{brick}"), None)
        .await
        .unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(
        r.body,
        "Failed to set up brick eviction: No Replacement was found for resource requested to be removed\n"
    );
    let ops = c.call_ok(1, Method::GET, "/operations", None).await.unwrap();
    assert_eq!(ops["total"], 0, "nothing was started");
}

/// The heal check reads Gluster's state: with a peer brick's node down, replacing a brick of a
/// replica-3 set (which needs both other bricks up) is refused and changes nothing; with the
/// node back it goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_needs_the_other_bricks_of_the_set_up() {
    let _g = serial();
    let (_d, c) = cluster(1, json!({})).await;
    let client = c.client(1);
    load_topology(&client, &topology(3)).await.unwrap();
    let body = json!({"size": 1, "durability": {"type": "replicate", "replicate": {"replica": 3}}});
    let vol = run_async(&client, Method::POST, "/volumes", Some(&body))
        .await
        .unwrap()
        .unwrap();
    let v = c.call_ok(1, Method::GET, &vol, None).await.unwrap();
    let bricks = v["bricks"].as_array().unwrap().clone();
    let brick = bricks[0]["id"].as_str().unwrap().to_string();
    // The node of another brick of the set goes down.
    let topo = c.call_ok(1, Method::GET, "/topology", None).await.unwrap();
    let other_node = bricks[1]["node"].as_str().unwrap();
    let host = topo["clusters"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == other_node)
        .unwrap()["hostnames"]["manage"][0]
        .as_str()
        .unwrap()
        .to_string();
    let mock = c.mock_nodes().unwrap();
    mock.set_glusterd_down(&host, true).await.unwrap();
    let err = run_async(&client, Method::POST, &format!("/bricks/to-evict/{brick}"), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "Cannot replace brick {brick} as only 1 of 2 required peer bricks are online"
        )),
        "{err}"
    );
    let after = c.call_ok(1, Method::GET, &vol, None).await.unwrap();
    assert_eq!(
        after["bricks"], v["bricks"],
        "a refused eviction changed the volume"
    );
    let check = c.call_ok(1, Method::GET, "/db/check", None).await.unwrap();
    assert_eq!(check["totalinconsistencies"], 0, "{check}");
    mock.set_glusterd_down(&host, false).await.unwrap();
    run_async(&client, Method::POST, &format!("/bricks/to-evict/{brick}"), None)
        .await
        .unwrap();
    check_volume(&c, vol.trim_start_matches("/volumes/")).await;
}
