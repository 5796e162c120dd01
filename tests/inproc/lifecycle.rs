//! The happy paths: cluster, nodes and devices added through the queue; a volume created
//! (202, queue polled, 303, GET), expanded, deleted (204), with the mock nodes and the
//! devices' accounting checked after each step; the teardown back to nothing; and the
//! metrics page counting what the state holds.

use std::time::Instant;

use hekate_testkit::InProc;
use reqwest::Method;
use serde_json::json;

use crate::{replica3, three_nodes, used, T};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_create_expand_delete_through_the_queue() {
    let t0 = Instant::now();
    let h = InProc::start().await.unwrap();
    let started = t0.elapsed();
    let (cid, _nodes, devices) = three_nodes(&h).await;
    let topo = h.call_ok(Method::GET, "/topology", None).await.unwrap();
    assert_eq!(topo["clusters"][0]["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(used(&h, &devices).await, vec![0, 0, 0]);

    // Create: 202 with a queue location, pending while the runner works, then 303.
    let r = h
        .call(Method::POST, "/volumes", Some(&replica3(1)))
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let loc = r.location();
    assert!(loc.starts_with("/queue/"), "{loc}");
    let done = h.wait_queue(&loc, T).await.unwrap();
    assert_eq!(done.status, 303, "{}", done.body);
    let vol_path = done.location();
    let vid = vol_path.trim_start_matches("/volumes/").to_string();
    let v = h.call_ok(Method::GET, &vol_path, None).await.unwrap();
    assert_eq!(v["size"], 1);
    assert_eq!(v["cluster"], cid.as_str());
    assert_eq!(v["durability"]["replicate"]["replica"], 3);
    assert_eq!(v["bricks"].as_array().unwrap().len(), 3);
    let name = v["name"].as_str().unwrap().to_string();
    assert_eq!(name, format!("vol_{vid}"));
    // Unlike Heketi (first read only), the finished entry stays readable (retention).
    assert_eq!(h.call(Method::GET, &loc, None).await.unwrap().status, 303);
    // The nodes hold it, marked as Hekate's, and each device accounts for one brick.
    let nodes = h.mock.snapshot().await.unwrap();
    let gv = &nodes.volumes[&name];
    assert!(gv.started);
    assert_eq!(gv.bricks.len(), 3);
    assert_eq!(
        gv.options.get("user.heketi.id").map(String::as_str),
        Some(vid.as_str())
    );
    let after_create = used(&h, &devices).await;
    assert!(after_create.iter().all(|u| *u > 0), "{after_create:?}");
    let list = h.call_ok(Method::GET, "/volumes", None).await.unwrap();
    assert_eq!(list["volumes"], json!([vid]));

    // Expand by 1 GiB: a second replica set.
    let body = json!({"expand_size": 1});
    let loc = h
        .run_async(Method::POST, &format!("/volumes/{vid}/expand"), Some(&body))
        .await
        .unwrap();
    assert_eq!(loc.as_deref(), Some(vol_path.as_str()));
    let v = h.call_ok(Method::GET, &vol_path, None).await.unwrap();
    assert_eq!(v["size"], 2);
    assert_eq!(v["bricks"].as_array().unwrap().len(), 6);
    let nodes = h.mock.snapshot().await.unwrap();
    assert_eq!(nodes.volumes[&name].bricks.len(), 6);
    let after_expand = used(&h, &devices).await;
    assert!(
        after_expand.iter().zip(&after_create).all(|(a, c)| a > c),
        "{after_expand:?}"
    );

    // Heketi's consistency check agrees with the state.
    let check = h.call_ok(Method::GET, "/db/check", None).await.unwrap();
    assert_eq!(check["totalinconsistencies"], 0, "{check}");
    assert_eq!(check["bricks"]["total"], 6, "{check}");
    assert_eq!(check["devices"]["ok"], 3, "{check}");

    // Delete: 204 at the end of the queue, the volume gone everywhere.
    let gone = h.run_async(Method::DELETE, &vol_path, None).await.unwrap();
    assert_eq!(gone, None);
    assert_eq!(h.call(Method::GET, &vol_path, None).await.unwrap().status, 404);
    let nodes = h.mock.snapshot().await.unwrap();
    assert!(nodes.volumes.is_empty(), "{:?}", nodes.volumes.keys());
    assert!(nodes
        .hosts
        .values()
        .all(|n| n.vgs.values().all(|vg| vg.lvs.is_empty())));
    assert_eq!(used(&h, &devices).await, vec![0, 0, 0]);
    eprintln!(
        "in-process replica ready in {started:?}; lifecycle in {:?}",
        t0.elapsed()
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_is_torn_down_the_heketi_way() {
    let h = InProc::start().await.unwrap();
    let (cid, nodes, devices) = three_nodes(&h).await;
    for d in &devices {
        for state in ["offline", "failed"] {
            let body = json!({ "state": state });
            h.run_async(Method::POST, &format!("/devices/{d}/state"), Some(&body))
                .await
                .unwrap();
        }
        h.run_async(Method::DELETE, &format!("/devices/{d}"), None)
            .await
            .unwrap();
    }
    for n in &nodes {
        let body = json!({"state": "offline"});
        h.run_async(Method::POST, &format!("/nodes/{n}/state"), Some(&body))
            .await
            .unwrap();
        h.run_async(Method::DELETE, &format!("/nodes/{n}"), None)
            .await
            .unwrap();
    }
    let r = h
        .call(Method::DELETE, &format!("/clusters/{cid}"), None)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let list = h.call_ok(Method::GET, "/clusters", None).await.unwrap();
    assert_eq!(list["clusters"], json!([]));
    // No VG left on any node.
    let state = h.mock.snapshot().await.unwrap();
    assert!(state.hosts.values().all(|n| n.vgs.is_empty() && n.pvs.is_empty()));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_token_creates_and_reads_volumes_but_not_nodes() {
    let h = InProc::start().await.unwrap();
    three_nodes(&h).await;
    let user = |m: Method, p: &'static str, b: Option<serde_json::Value>| {
        let h = &h;
        async move {
            h.call_as("user", hekate_testkit::inproc::USER_KEY, m, p, b.as_ref())
                .await
                .unwrap()
        }
    };
    let r = user(Method::POST, "/volumes", Some(crate::replica3(1))).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let loc = r.location();
    let done = crate::wait_user_queue(&h, &loc).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(user(Method::GET, "/volumes", None).await.status, 200);
    assert_eq!(
        user(Method::GET, "/nodes/0123456789abcdef0123456789abcdef", None)
            .await
            .status,
        401
    );
    assert_eq!(user(Method::GET, "/clusters", None).await.status, 401);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_the_state_holds() {
    let h = InProc::start().await.unwrap();
    let (cid, _nodes, devices) = three_nodes(&h).await;
    h.run_async(Method::POST, "/volumes", Some(&replica3(1)))
        .await
        .unwrap();
    // Outside auth, as in Heketi.
    let r = h
        .call_as("nobody", "none", Method::GET, "/metrics", None)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let line = |name: &str| {
        r.body
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in\n{}", r.body))
            .to_string()
    };
    assert_eq!(line("heketi_cluster_count "), "heketi_cluster_count 1");
    assert_eq!(
        line("heketi_nodes_count{"),
        format!("heketi_nodes_count{{cluster=\"{cid}\"}} 3")
    );
    assert_eq!(
        line("heketi_volumes_count{"),
        format!("heketi_volumes_count{{cluster=\"{cid}\"}} 1")
    );
    assert_eq!(
        line("heketi_operations_inFlight_count "),
        "heketi_operations_inFlight_count 0"
    );
    for d in &devices {
        let bricks = r
            .body
            .lines()
            .find(|l| l.starts_with("heketi_device_brick_count{") && l.contains(d.as_str()))
            .unwrap();
        assert!(bricks.ends_with(" 1"), "{bricks}");
        assert!(r
            .body
            .lines()
            .any(|l| l.starts_with("heketi_device_size_bytes{") && l.contains(d.as_str())));
    }
    for name in [
        "hekate_footprint_raft_log_entries ",
        "hekate_footprint_pending_operations 0",
        "hekate_rocksdb_memtable_bytes ",
        "hekate_heap_allocated_bytes ",
        "hekate_raft_term ",
    ] {
        line(name);
    }
    h.shutdown().await;
}
