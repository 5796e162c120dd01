//! Quorum loss: a leader without a quorum stops calling itself ready and steps down (check
//! quorum), every write is answered within the bound with its outcome class, and after the
//! quorum returns only writes answered "outcome unknown" may have been committed.

use std::time::{Duration, Instant};

use hekate::client::Reply;
use hekate_testkit::{create_cluster, wait_for, ProcCluster};
use reqwest::Method;
use serde_json::json;

use crate::{cluster, local_clusters, serial, T};

/// `raft.timeouts` of these tests: a short write bound keeps them quick.
const WRITE_TIMEOUT_MS: u64 = 1500;
/// The default `raft.forward_timeout_ms`.
const FORWARD_TIMEOUT_MS: u64 = 5000;

#[derive(Debug, Default)]
struct Classes {
    committed: usize,
    not_accepted: usize,
    unknown: usize,
    longest: Duration,
}

/// Sends one `POST /clusters` to replica `id` and classifies its answer; panics on an
/// answer outside the contract (docs/api.md, "Outcome of a write") or past the bound.
async fn write_and_classify(c: &ProcCluster, id: u64) -> (Reply, Duration) {
    let t0 = Instant::now();
    let r = c
        .call(
            id,
            Method::POST,
            "/clusters",
            Some(&json!({"file": true, "block": false})),
        )
        .await
        .expect("an answer, not a transport error");
    let took = t0.elapsed();
    let bound = Duration::from_millis(FORWARD_TIMEOUT_MS + WRITE_TIMEOUT_MS + 2000);
    assert!(
        took < bound,
        "write answered after {took:?} (bound {bound:?}): {r:?}"
    );
    (r, took)
}

fn classify(classes: &mut Classes, r: &Reply, took: Duration) {
    classes.longest = classes.longest.max(took);
    let outcome = r.headers.get("x-hekate-outcome").and_then(|v| v.to_str().ok());
    match (r.status, outcome) {
        (201, _) => classes.committed += 1,
        (503, Some("not-accepted")) => classes.not_accepted += 1,
        (504, Some("unknown")) => classes.unknown += 1,
        _ => panic!("answer outside the outcome contract: {r:?}"),
    }
    assert!(
        !r.body.contains("Member") && !r.body.contains('{'),
        "error text shows internal structures: {}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_without_quorum_steps_down_and_answers_every_write_with_its_outcome() {
    let _g = serial();
    let (_d, mut c) = cluster(3, json!({"write_timeout_ms": WRITE_TIMEOUT_MS})).await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    let followers: Vec<u64> = c.ids().into_iter().filter(|i| *i != leader).collect();
    let before = local_clusters(&c, leader).await.len();

    c.kill(followers[0]).unwrap();
    c.kill(followers[1]).unwrap();
    let t0 = Instant::now();
    // Writes sent at once reach the leader before it notices: appended, never committed.
    let (early, unready) = tokio::join!(
        futures::future::join_all((0..3).map(|_| write_and_classify(&c, leader))),
        wait_for(T, "/readyz 503 on the old leader", || async {
            (!c.is_ready(leader).await).then(|| t0.elapsed())
        })
    );
    let unready = unready.unwrap();
    eprintln!("quorum: /readyz on the old leader answered 503 {unready:?} after the kills");
    let mut classes = Classes::default();
    for (r, took) in &early {
        classify(&mut classes, r, *took);
    }

    // It stepped down, and says why in /raft/status.
    let st = wait_for(T, "the old leader to step down", || async {
        c.status(leader)
            .await
            .filter(|s| s["state"] != "Leader" && s["check_quorum"]["step_downs"].as_u64() >= Some(1))
    })
    .await
    .unwrap();
    eprintln!("quorum: status after the step-down: {}", st["check_quorum"]);
    let ready = reqwest::get(format!("{}/readyz", c.url(leader))).await.unwrap();
    assert_eq!(ready.status(), 503);
    let why = ready.text().await.unwrap();
    assert!(why.starts_with("not ready: "), "{why}");

    // Writes after the step-down: refused without a leader, never written.
    for _ in 0..3 {
        let (r, took) = write_and_classify(&c, leader).await;
        classify(&mut classes, &r, took);
        assert_eq!(r.status, 503, "{r:?}");
    }
    // A read without a quorum: 503 in words.
    let r = c.call(leader, Method::GET, "/clusters", None).await.unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(!r.body.contains("Member") && !r.body.contains('{'), "{}", r.body);
    eprintln!("quorum: outcomes without a quorum: {classes:?}");
    assert_eq!(classes.committed, 0, "{classes:?}");

    // The quorum returns: at most the "unknown" writes appear, never a "not accepted" one.
    c.start(followers[0]).unwrap();
    c.start(followers[1]).unwrap();
    c.wait_leader(&c.ids(), T).await.unwrap();
    create_cluster(&c.client(leader)).await.unwrap();
    let after = local_clusters(&c, leader).await.len();
    let appeared = after - before - 1;
    eprintln!(
        "quorum: {appeared} of {} unknown writes were committed",
        classes.unknown
    );
    assert!(appeared <= classes.unknown, "{appeared} appeared, {classes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_replicas_write_on_with_two_down_and_answer_within_the_bound_with_three_down() {
    let _g = serial();
    let (_d, mut c) = cluster(5, json!({"write_timeout_ms": WRITE_TIMEOUT_MS})).await;
    let leader = c.wait_leader(&c.ids(), T).await.unwrap();
    let others: Vec<u64> = c.ids().into_iter().filter(|i| *i != leader).collect();

    // Two down, the leader among them: the other three elect and keep writing.
    c.kill(leader).unwrap();
    c.kill(others[0]).unwrap();
    let alive = others[1..].to_vec();
    let mut acknowledged = vec![];
    for id in &alive {
        acknowledged.push(create_cluster(&c.client(*id)).await.unwrap());
    }

    // Three down: every write to the last two is answered within the bound, none committed.
    c.kill(alive[0]).unwrap();
    let mut classes = Classes::default();
    for id in [alive[1], alive[2], alive[1]] {
        let (r, took) = write_and_classify(&c, id).await;
        classify(&mut classes, &r, took);
    }
    eprintln!("quorum: five replicas, three down: {classes:?}");
    assert_eq!(classes.committed, 0, "{classes:?}");

    // All back: the replicas agree, and hold every acknowledged write.
    for id in [leader, others[0], alive[0]] {
        c.start(id).unwrap();
    }
    c.wait_leader(&c.ids(), T).await.unwrap();
    let last = create_cluster(&c.client(leader)).await.unwrap();
    let reference = wait_for(T, "every replica to apply the last write", || async {
        let l = local_clusters(&c, leader).await;
        l.contains(&last).then_some(l)
    })
    .await
    .unwrap();
    for id in c.ids() {
        let got = wait_for(T, "replicas to agree", || async {
            let l = local_clusters(&c, id).await;
            (l == reference).then_some(l)
        })
        .await
        .unwrap();
        assert_eq!(got, reference, "replica {id}");
    }
    for a in &acknowledged {
        assert!(reference.contains(a), "acknowledged cluster {a} lost");
    }
    assert!(reference.len() <= acknowledged.len() + 1 + classes.unknown);
}
