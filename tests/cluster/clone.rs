//! Volume clones (through Gluster snapshots, sharing thin pools), block restrictions, and the
//! pending-operations cleanup endpoint.

use hekate_testkit::{load_topology, run_async};
use reqwest::Method;
use serde_json::{json, Value};

use crate::{cluster, serial, T};

fn used(topo: &Value) -> u64 {
    topo["clusters"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| n["devices"].as_array().unwrap().iter())
        .map(|d| d["storage"]["used"].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_share_thin_pools_and_outlive_their_origin() {
    let _g = serial();
    let (_d, c) = cluster(3, json!({})).await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    let client = c.client(leader);
    let topo = json!({"clusters": [{"nodes": (1..=3).map(|i| json!({
        "node": {"hostnames": {"manage": [format!("c{i}")], "storage": [format!("10.6.0.{i}")]}, "zone": i},
        "devices": [{"name": "/dev/vdb"}]})).collect::<Vec<_>>()}]});
    load_topology(&client, &topo).await.unwrap();
    let origin = run_async(
        &client,
        Method::POST,
        "/volumes",
        Some(&json!({"size": 2, "durability": {"type": "replicate", "replicate": {"replica": 3}}})),
    )
    .await
    .unwrap()
    .unwrap();
    let before = used(&c.call_ok(leader, Method::GET, "/topology", None).await.unwrap());

    let clone = run_async(
        &client,
        Method::POST,
        &format!("{origin}/clone"),
        Some(&json!({"name": "myclone"})),
    )
    .await
    .unwrap()
    .unwrap();
    let cv = c.call_ok(leader, Method::GET, &clone, None).await.unwrap();
    let ov = c.call_ok(leader, Method::GET, &origin, None).await.unwrap();
    assert_eq!(cv["name"], "myclone");
    assert_eq!(
        (cv["size"].clone(), cv["durability"].clone()),
        (ov["size"].clone(), ov["durability"].clone())
    );
    assert_eq!(cv["bricks"].as_array().unwrap().len(), 3);
    assert!(cv["bricks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["path"].as_str().unwrap().starts_with("/run/gluster/snaps/")));
    assert_eq!(
        used(&c.call_ok(leader, Method::GET, "/topology", None).await.unwrap()),
        before,
        "a clone takes no space"
    );
    let mock = c.mock_nodes().unwrap().snapshot().await.unwrap();
    assert_eq!(mock.volumes.len(), 2);

    // The origin goes; its thin pools stay with the clone, and so does their space.
    run_async(&client, Method::DELETE, &origin, None).await.unwrap();
    assert_eq!(
        used(&c.call_ok(leader, Method::GET, "/topology", None).await.unwrap()),
        before
    );
    let check = c.call_ok(leader, Method::GET, "/db/check", None).await.unwrap();
    assert_eq!(check["totalinconsistencies"], 0, "{check}");
    let mock = c.mock_nodes().unwrap().snapshot().await.unwrap();
    let pools: usize = mock
        .hosts
        .values()
        .flat_map(|h| h.vgs.values())
        .map(|vg| vg.pools.len())
        .sum();
    assert_eq!(pools, 3, "the clone keeps the origin's thin pools");

    run_async(&client, Method::DELETE, &clone, None).await.unwrap();
    assert_eq!(
        used(&c.call_ok(leader, Method::GET, "/topology", None).await.unwrap()),
        0
    );
    let mock = c.mock_nodes().unwrap().snapshot().await.unwrap();
    assert!(mock.volumes.is_empty());
    assert!(mock
        .hosts
        .values()
        .all(|h| h.mounts.is_empty() && h.vgs.values().all(|vg| vg.lvs.is_empty() && vg.pools.is_empty())));

    // Block-hosting volumes: restrictions apply, clones are refused.
    let bhv = run_async(
        &client,
        Method::POST,
        "/volumes",
        Some(&json!({"size": 10, "block": true})),
    )
    .await
    .unwrap()
    .unwrap();
    let v = c.call_ok(leader, Method::GET, &bhv, None).await.unwrap();
    assert_eq!(v["blockinfo"], json!({"freesize": 9, "reservedsize": 1}));
    let r = client
        .call(Method::POST, &format!("{bhv}/clone"), None)
        .await
        .unwrap();
    assert_eq!(r.status, 500);
    assert!(
        r.body
            .ends_with("Cloning of block hosting volumes is not supported\n"),
        "{}",
        r.body
    );
    run_async(
        &client,
        Method::POST,
        &format!("{bhv}/block-restriction"),
        Some(&json!({"restriction": "locked"})),
    )
    .await
    .unwrap();
    assert_eq!(
        c.call_ok(leader, Method::GET, &bhv, None).await.unwrap()["blockinfo"]["restriction"],
        "locked"
    );
    let r = client
        .call(
            Method::POST,
            &format!("{bhv}/block-restriction"),
            Some(&json!({"restriction": "none"})),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "validation failed: restriction: must be a valid value.\n")
    );
    let file = run_async(&client, Method::POST, "/volumes", Some(&json!({"size": 1})))
        .await
        .unwrap()
        .unwrap();
    let r = client
        .call(
            Method::POST,
            &format!("{file}/block-restriction"),
            Some(&json!({"restriction": "locked"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(
        r.body,
        "Failed to set block restriction: Block restrictions can only be set on block hosting volumes\n"
    );

    // Nothing is stale in Hekate: cleanup is accepted and ends at once.
    assert_eq!(
        run_async(
            &client,
            Method::POST,
            "/operations/pending/cleanup",
            Some(&json!({}))
        )
        .await
        .unwrap(),
        None
    );
    let r = client
        .call(
            Method::POST,
            "/operations/pending/cleanup",
            Some(&json!({"operations": ["nothex"]})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
}
