//! Peer RPCs without the cluster secret are refused and change nothing.

use hekate_testkit::create_cluster;
use openraft::raft::VoteRequest;
use openraft::Vote;
use serde_json::json;

use crate::{cluster, serial, T};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_rpc_without_secret_is_refused_and_the_cluster_is_unaffected() {
    let _g = serial();
    let (_d, c) = cluster(3, json!({})).await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    let term = c.status(leader).await.unwrap()["term"].as_u64().unwrap();

    // A well-formed vote request for a much higher term: honoured, it would depose the leader.
    let req: VoteRequest<u64> = VoteRequest {
        vote: Vote::new(term + 100, 99),
        last_log_id: None,
    };
    let body = hekate_raft::codec::encode(&req).unwrap();
    let http = reqwest::Client::new();
    for secret in [None, Some("wrong-secret-wrong-secret")] {
        let mut r = http
            .post(format!("{}/raft/rpc/vote", c.url(leader)))
            .body(body.clone());
        if let Some(s) = secret {
            r = r.header("x-hekate-secret", s);
        }
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        assert!(resp.text().await.unwrap().contains("cluster secret"));
    }
    let st = c.status(leader).await.unwrap();
    assert_eq!(st["term"].as_u64().unwrap(), term);
    assert_eq!(st["leader"].as_u64().unwrap(), leader);
    create_cluster(&c.client(leader)).await.unwrap();
    let log = std::fs::read_to_string(c.dir.join(format!("replica-{leader}/hekate.log"))).unwrap();
    assert!(log.contains("peer RPC refused"), "refusal is logged");
}
