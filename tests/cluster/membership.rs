//! A fourth replica joins online, another is removed, leadership moves; the cluster keeps
//! serving writes throughout.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use hekate_testkit::{create_cluster, wait_for};
use reqwest::Method;
use serde_json::json;

use crate::{cluster, local_clusters, serial, T};

fn voters(st: &serde_json::Value) -> Vec<u64> {
    let mut v: Vec<u64> = st["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["voter"] == true)
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fourth_replica_joins_and_another_is_removed_while_serving() {
    let _g = serial();
    let (_d, mut c) = cluster(3, json!({})).await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    let removed = c.ids().into_iter().find(|i| *i != leader).unwrap();
    let entry = c.ids().into_iter().find(|i| *i != removed).unwrap();

    // Continuous writes through a replica that stays, counting failures.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let writer = {
        let (client, stop, ok, failed) = (c.client(entry), stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match create_cluster(&client).await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("write failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        })
    };

    // Join replica 4: started with join=true, then added through the API.
    c.add_replica(4).unwrap();
    c.start(4).unwrap();
    let body = json!({"id": 4, "api": c.api_addr(4)});
    let r = c
        .call_ok(entry, Method::POST, "/raft/members", Some(&body))
        .await
        .unwrap();
    assert!(
        r["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == 4 && m["voter"] == true),
        "{r}"
    );

    // Remove a follower.
    let r = c
        .call_ok(entry, Method::DELETE, &format!("/raft/members/{removed}"), None)
        .await
        .unwrap();
    let mut expected: Vec<u64> = [1, 2, 3, 4].into_iter().filter(|i| *i != removed).collect();
    expected.sort();
    assert_eq!(voters(&json!({"members": r["members"]})), expected);
    c.stop(removed).unwrap();

    // Adding an existing id is refused.
    let dup = c
        .call(
            entry,
            Method::POST,
            "/raft/members",
            Some(&json!({"id": 4, "api": c.api_addr(4)})),
        )
        .await
        .unwrap();
    assert_eq!(dup.status, 409, "{}", dup.body);

    let before = ok.load(Ordering::Relaxed);
    wait_for(T, "more writes after the membership change", || async {
        (ok.load(Ordering::Relaxed) >= before + 20).then_some(())
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "writes failed during membership changes"
    );

    // Replica 4 holds everything.
    let l = c.wait_leader(&expected, T).await.unwrap();
    let want = local_clusters(&c, l).await;
    wait_for(T, "replica 4 to catch up", || async {
        (local_clusters(&c, 4).await == want).then_some(())
    })
    .await
    .unwrap();
    for id in &expected {
        assert_eq!(voters(&c.status(*id).await.unwrap()), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_transfers_to_the_chosen_replica() {
    let _g = serial();
    let (_d, c) = cluster(3, json!({})).await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    let target = c.ids().into_iter().find(|i| *i != leader).unwrap();
    create_cluster(&c.client(leader)).await.unwrap();
    let r = c
        .call_ok(leader, Method::POST, "/raft/leader", Some(&json!({"id": target})))
        .await
        .unwrap();
    assert_eq!(r["leader"], target);
    assert_eq!(c.wait_leader(&[1, 2, 3], T).await.unwrap(), target);
    create_cluster(&c.client(leader)).await.unwrap();
}
