//! Three in-process replicas on loopback ports: a follower forwards writes to the leader and
//! its queue polls reach the operation's end; every replica's own state converges; with the
//! leader stopped the other two elect a leader and take writes through either of them.

use std::time::Duration;

use hekate_testkit::{wait_for, InProcReplicas};
use reqwest::Method;
use serde_json::json;

use crate::T;

/// An async request sent to replica `via`, its queue polled there too: the final reply.
async fn run_via(
    r: &InProcReplicas,
    via: u64,
    method: Method,
    path: &str,
    body: serde_json::Value,
) -> hekate::client::Reply {
    let first = r.call(via, method, path, Some(&body)).await.unwrap();
    assert_eq!(first.status, 202, "{}", first.body);
    let loc = first.location();
    wait_for(T, "the operation's end", || async {
        let p = r.call(via, Method::GET, &loc, None).await.ok()?;
        (!(p.status == 200 && p.headers.contains_key("x-pending"))).then_some(p)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_forward_and_a_new_leader_takes_over() {
    let mut r = InProcReplicas::start(3).await.unwrap();
    let leader = r.wait_leader(T).await.unwrap();
    let follower = r.ids().into_iter().find(|i| *i != leader).unwrap();

    // A write through a follower reaches the leader; every replica applies it.
    let c = r
        .call(
            follower,
            Method::POST,
            "/clusters",
            Some(&json!({"file": true, "block": true})),
        )
        .await
        .unwrap();
    assert_eq!(c.status, 201, "{}", c.body);
    let cid = c.json().unwrap()["id"].as_str().unwrap().to_string();
    let node =
        json!({"cluster": cid, "zone": 1, "hostnames": {"manage": ["n1.example"], "storage": ["10.2.0.1"]}});
    let done = run_via(&r, follower, Method::POST, "/nodes", node).await;
    assert_eq!(done.status, 303, "{}", done.body);
    for id in r.ids() {
        wait_for(T, "the node on every replica", || async {
            let v = r.local_get(id, &format!("/clusters/{cid}")).await.ok()?;
            (v["nodes"].as_array()?.len() == 1).then_some(())
        })
        .await
        .unwrap();
    }

    // The leader stops: the other two elect one of them, and take writes through either.
    r.stop(leader).await.unwrap();
    let next = r.wait_leader(Duration::from_secs(30)).await.unwrap();
    assert_ne!(next, leader);
    for id in r.ids() {
        let c = wait_for(T, "a write after the election", || async {
            let c = r
                .call(
                    id,
                    Method::POST,
                    "/clusters",
                    Some(&json!({"file": true, "block": true})),
                )
                .await
                .ok()?;
            (c.status == 201).then_some(c)
        })
        .await
        .unwrap();
        assert_eq!(c.status, 201);
    }
    let list = r.local_get(next, "/clusters").await.unwrap();
    assert_eq!(list["clusters"].as_array().unwrap().len(), 3, "{list}");
    r.shutdown().await;
}
