//! Failures injected in the mock nodes: a create refused by a node ends 500 on the queue with
//! the node's words and is rolled back (no brick left on any node, the devices' space back,
//! the name free again), an expand refused keeps the volume as it was, and a delete whose
//! node is briefly unreachable is retried to its end. Operations that ended are listed with
//! their reason.

use hekate::executor::mock::Fault;
use hekate_testkit::InProc;
use reqwest::Method;
use serde_json::json;

use crate::{replica3, three_nodes, used, T};

fn refuse(verb: &str, host: &str, message: &str) -> Fault {
    Fault {
        verb: verb.into(),
        host: host.into(),
        times: 1,
        message: message.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_refused_by_a_node_is_rolled_back() {
    let h = InProc::start().await.unwrap();
    let (_cid, _nodes, devices) = three_nodes(&h).await;
    let msg = "volume create: vol_x: failed: Staging failed on 10.0.0.2";
    h.mock.add_fault(refuse("volume_create", "", msg)).await.unwrap();
    let body = json!({"size": 1, "name": "doomed", "durability": {"type": "replicate", "replicate": {"replica": 3}}});
    let r = h.call(Method::POST, "/volumes", Some(&body)).await.unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let done = h.wait_queue(&r.location(), T).await.unwrap();
    assert_eq!(done.status, 500, "{}", done.body);
    assert!(done.body.contains("Staging failed on 10.0.0.2"), "{}", done.body);
    // Nothing left: no volume in the state nor on the nodes, no LV, the space back.
    let list = h.call_ok(Method::GET, "/volumes", None).await.unwrap();
    assert_eq!(list["volumes"], json!([]));
    let state = h.mock.snapshot().await.unwrap();
    assert!(state.volumes.is_empty());
    assert!(state
        .hosts
        .values()
        .all(|n| n.vgs.values().all(|vg| vg.lvs.is_empty() && vg.pools.is_empty())));
    assert!(state
        .hosts
        .values()
        .all(|n| n.mounts.iter().all(|m| !m.contains("brick_"))));
    assert_eq!(used(&h, &devices).await, vec![0, 0, 0]);
    // The failure is listed with its reason.
    let ops = h.call_ok(Method::GET, "/operations", None).await.unwrap();
    let text = ops.to_string();
    assert!(text.contains("Staging failed on 10.0.0.2"), "{text}");
    // The name is free again: the same create now succeeds.
    let loc = h
        .run_async(Method::POST, "/volumes", Some(&body))
        .await
        .unwrap()
        .unwrap();
    let v = h.call_ok(Method::GET, &loc, None).await.unwrap();
    assert_eq!(v["name"], "doomed");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brick_the_node_cannot_make_fails_the_create_and_the_others_are_destroyed() {
    let h = InProc::start().await.unwrap();
    let (_cid, _nodes, devices) = three_nodes(&h).await;
    h.mock
        .add_fault(refuse(
            "brick_create",
            "node3.example",
            "lvcreate: Volume group full",
        ))
        .await
        .unwrap();
    let r = h
        .call(Method::POST, "/volumes", Some(&replica3(1)))
        .await
        .unwrap();
    let done = h.wait_queue(&r.location(), T).await.unwrap();
    assert_eq!(done.status, 500, "{}", done.body);
    assert!(done.body.contains("Volume group full"), "{}", done.body);
    let state = h.mock.snapshot().await.unwrap();
    assert!(state
        .hosts
        .values()
        .all(|n| n.vgs.values().all(|vg| vg.lvs.is_empty())));
    assert_eq!(used(&h, &devices).await, vec![0, 0, 0]);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expand_refused_keeps_the_volume_as_it_was() {
    let h = InProc::start().await.unwrap();
    let (_cid, _nodes, devices) = three_nodes(&h).await;
    let loc = h
        .run_async(Method::POST, "/volumes", Some(&replica3(1)))
        .await
        .unwrap()
        .unwrap();
    let before = h.call_ok(Method::GET, &loc, None).await.unwrap();
    let used_before = used(&h, &devices).await;
    h.mock
        .add_fault(refuse(
            "brick_create",
            "node2.example",
            "lvcreate: out of extents",
        ))
        .await
        .unwrap();
    let r = h
        .call(
            Method::POST,
            &format!("{loc}/expand"),
            Some(&json!({"expand_size": 1})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let done = h.wait_queue(&r.location(), T).await.unwrap();
    assert_eq!(done.status, 500, "{}", done.body);
    assert!(done.body.contains("out of extents"), "{}", done.body);
    let after = h.call_ok(Method::GET, &loc, None).await.unwrap();
    assert_eq!(after["size"], before["size"]);
    assert_eq!(after["bricks"], before["bricks"]);
    assert_eq!(used(&h, &devices).await, used_before);
    let name = before["name"].as_str().unwrap();
    assert_eq!(h.mock.snapshot().await.unwrap().volumes[name].bricks.len(), 3);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_whose_node_is_briefly_unreachable_is_retried_to_its_end() {
    let h = InProc::start().await.unwrap();
    let (_cid, _nodes, devices) = three_nodes(&h).await;
    let loc = h
        .run_async(Method::POST, "/volumes", Some(&replica3(1)))
        .await
        .unwrap()
        .unwrap();
    // An empty message: the host does not answer (once).
    h.mock
        .add_fault(refuse("brick_destroy", "node1.example", ""))
        .await
        .unwrap();
    assert_eq!(h.run_async(Method::DELETE, &loc, None).await.unwrap(), None);
    assert_eq!(h.call(Method::GET, &loc, None).await.unwrap().status, 404);
    let state = h.mock.snapshot().await.unwrap();
    assert!(state.volumes.is_empty());
    assert!(state
        .hosts
        .values()
        .all(|n| n.vgs.values().all(|vg| vg.lvs.is_empty())));
    assert_eq!(used(&h, &devices).await, vec![0, 0, 0]);
    h.shutdown().await;
}
