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

/// `GET /topology` through a follower is built there after a read index barrier (the
/// response names the index it waited for), sees every write acknowledged before it, and is
/// the leader's document; so are `/db/dump` and `/db/check`. With no quorum the follower does not answer it from its own
/// state: no read index, and the forwarded read finds no leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_answers_topology_after_a_read_index() {
    let mut r = InProcReplicas::start(3).await.unwrap();
    let leader = r.wait_leader(T).await.unwrap();
    let followers: Vec<u64> = r.ids().into_iter().filter(|i| *i != leader).collect();
    let mut index = 0;
    for n in 0..6 {
        let c = r
            .call(
                leader,
                Method::POST,
                "/clusters",
                Some(&json!({"file": true, "block": n % 2 == 0})),
            )
            .await
            .unwrap();
        assert_eq!(c.status, 201, "{}", c.body);
        let id = c.json().unwrap()["id"].as_str().unwrap().to_string();
        // At once, through either follower: the cluster is there.
        let t = r
            .call(followers[n % 2], Method::GET, "/topology", None)
            .await
            .unwrap();
        assert_eq!(t.status, 200, "{}", t.body);
        let at: u64 = t.headers[hekate::api::forward::READ_INDEX_HEADER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(at > index, "read index {at} after {index}");
        index = at;
        let clusters = t.json().unwrap()["clusters"].as_array().unwrap().clone();
        assert!(
            clusters.iter().any(|c| c["id"] == id.as_str()),
            "{id} in {clusters:?}"
        );
    }
    let on_leader = r.call(leader, Method::GET, "/topology", None).await.unwrap();
    assert!(!on_leader
        .headers
        .contains_key(hekate::api::forward::READ_INDEX_HEADER));
    let on_follower = r
        .call(followers[0], Method::GET, "/topology", None)
        .await
        .unwrap();
    assert_eq!(on_follower.body, on_leader.body);
    // Heketi's dump and check of the whole state too.
    for path in ["/db/dump", "/db/check"] {
        let (f, l) = (
            r.call(followers[1], Method::GET, path, None).await.unwrap(),
            r.call(leader, Method::GET, path, None).await.unwrap(),
        );
        assert_eq!(f.status, 200, "{path}: {}", f.body);
        assert!(f.headers.contains_key(hekate::api::forward::READ_INDEX_HEADER));
        assert_eq!(f.body, l.body, "{path}");
    }

    // The leader and the other follower stop: the last replica holds every cluster, but
    // without a quorum it answers none of them.
    r.stop(leader).await.unwrap();
    r.stop(followers[1]).await.unwrap();
    let alone = r
        .call(followers[0], Method::GET, "/topology", None)
        .await
        .unwrap();
    assert_eq!(alone.status, 503, "{}", alone.body);
    assert!(!alone
        .headers
        .contains_key(hekate::api::forward::READ_INDEX_HEADER));
    r.shutdown().await;
}
