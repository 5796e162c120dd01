//! Writes through followers, leader kill -9, restart and catch-up.

use hekate_testkit::{create_cluster, wait_for};
use reqwest::Method;
use serde_json::json;

use crate::{cluster, local_clusters, serial, T};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_follower_then_leader_kill_then_rejoin() {
    let _g = serial();
    let (_d, mut c) = cluster(3, json!({})).await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    let followers: Vec<u64> = c.ids().into_iter().filter(|i| *i != leader).collect();

    // A write through a follower is forwarded to the leader and succeeds.
    let first = create_cluster(&c.client(followers[0])).await.unwrap();

    // kill -9 the leader; a write through a survivor succeeds once a new leader is elected.
    c.kill(leader).unwrap();
    let second = create_cluster(&c.client(followers[1])).await.unwrap();
    let new_leader = c.wait_leader(&followers, T).await.unwrap();
    assert_ne!(new_leader, leader);

    // Restart the old leader: it catches up, and every replica's own state is identical.
    c.start(leader).unwrap();
    c.wait_ready(&[leader], T).await.unwrap();
    let expected = {
        let mut v = vec![first, second];
        v.sort();
        v
    };
    for id in c.ids() {
        let got = wait_for(T, "replica to apply both writes", || async {
            let l = local_clusters(&c, id).await;
            (l == expected).then_some(l)
        })
        .await
        .unwrap();
        assert_eq!(got, expected, "replica {id}");
    }
    // And the linearizable read agrees from every replica.
    for id in c.ids() {
        let v = c.call_ok(id, Method::GET, "/clusters", None).await.unwrap();
        assert_eq!(v["clusters"], json!(expected));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_quorum_answers_503_with_retry_after_and_nothing_is_committed() {
    let _g = serial();
    let (_d, mut c) = cluster(3, json!({})).await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    let followers: Vec<u64> = c.ids().into_iter().filter(|i| *i != leader).collect();
    c.kill(followers[0]).unwrap();
    c.kill(followers[1]).unwrap();
    let before = c.status(leader).await.unwrap()["last_applied"].clone();
    // The leader cannot commit without a quorum: the client gets 503 + Retry-After, not a hang.
    let r = c.call(leader, Method::GET, "/clusters", None).await.unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(
        r.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_eq!(c.status(leader).await.unwrap()["last_applied"], before);
}

/// SIGTERM on the leader (systemd stop, pod deletion, rolling upgrade): it hands leadership to
/// a follower before it exits, in one election, and says so; writes go on through the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_the_leader_hands_leadership_over_before_exit() {
    let _g = serial();
    let (_d, mut c) = cluster(3, json!({})).await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    create_cluster(&c.client(leader)).await.unwrap();
    let term = c.status(leader).await.unwrap()["term"].as_u64().unwrap();
    let others: Vec<u64> = c.ids().into_iter().filter(|i| *i != leader).collect();

    c.stop(leader).unwrap(); // SIGTERM, then waits for the exit
    let log = c.log_tail(leader);
    let handed = others
        .iter()
        .find(|o| log.contains(&format!("leadership handed to replica {o}")))
        .copied();
    let Some(successor) = handed else {
        panic!("the stopping leader did not hand over:\n{log}");
    };
    assert_eq!(c.wait_leader(&others, T).await.unwrap(), successor);
    let st = c.status(successor).await.unwrap();
    assert_eq!(
        st["term"].as_u64().unwrap(),
        term + 1,
        "more than one election: {st}"
    );
    create_cluster(&c.client(others[0])).await.unwrap();
    create_cluster(&c.client(others[1])).await.unwrap();
}
