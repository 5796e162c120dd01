//! Refusals, answered at once and changing nothing: 404 for what does not exist, 409 for
//! what is in use or taken (a name taken by another request; the same request again gets the
//! original operation), 400 for bad requests, Heketi's 500 for an allocation without room,
//! 401 without a valid token, and 429 beyond the in-flight limit.

use hekate_testkit::{InProc, InProcSpec};
use reqwest::Method;
use serde_json::json;

use crate::{replica3, three_nodes};

const STRANGER: &str = "0123456789abcdef0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_conflict_and_bad_request() {
    let h = InProc::start().await.unwrap();
    let (cid, nodes, devices) = three_nodes(&h).await;
    let status = |m: Method, p: String, b: Option<serde_json::Value>| {
        let h = &h;
        async move {
            let r = h.call(m, &p, b.as_ref()).await.unwrap();
            (r.status, r.body)
        }
    };
    // 404: unknown ids, unknown paths.
    for p in [
        format!("/volumes/{STRANGER}"),
        format!("/nodes/{STRANGER}"),
        format!("/devices/{STRANGER}"),
        format!("/clusters/{STRANGER}"),
        format!("/queue/{STRANGER}"),
        "/nothing/here".to_string(),
    ] {
        assert_eq!(status(Method::GET, p.clone(), None).await.0, 404, "{p}");
    }
    assert_eq!(
        status(Method::DELETE, format!("/volumes/{STRANGER}"), None)
            .await
            .0,
        404
    );
    let orphan =
        json!({"cluster": STRANGER, "zone": 1, "hostnames": {"manage": ["x"], "storage": ["10.9.0.1"]}});
    assert_eq!(status(Method::POST, "/nodes".into(), Some(orphan)).await.0, 404);

    // 409: in use, or taken.
    let (s, body) = status(Method::DELETE, format!("/clusters/{cid}"), None).await;
    assert_eq!(s, 409, "{body}");
    let (s, body) = status(Method::DELETE, format!("/nodes/{}", nodes[0]), None).await;
    assert_eq!(s, 409, "{body}");
    let dup = json!({"cluster": cid, "zone": 1, "hostnames": {"manage": ["node1.example"], "storage": ["10.9.0.9"]}});
    let (s, body) = status(Method::POST, "/nodes".into(), Some(dup)).await;
    assert_eq!(s, 409, "{body}");
    assert!(
        body.starts_with("Hostname node1.example already used by node with id "),
        "{body}"
    );
    let dev = json!({"node": nodes[0], "name": "/dev/sdb"});
    let (s, body) = status(Method::POST, "/devices".into(), Some(dev)).await;
    assert_eq!(s, 409, "{body}");
    // A device that is online cannot be deleted (Heketi: 400 until it is failed).
    let (s, _) = status(Method::DELETE, format!("/devices/{}", devices[0]), None).await;
    assert_eq!(s, 400);

    // 400: bad bodies and values.
    for (what, body) in [
        ("size 0", json!({"size": 0})),
        (
            "replica 4",
            json!({"size": 1, "durability": {"type": "replicate", "replicate": {"replica": 4}}}),
        ),
        ("durability", json!({"size": 1, "durability": {"type": "mirror"}})),
        ("name", json!({"size": 1, "name": "a b"})),
        ("cluster id", json!({"size": 1, "clusters": ["not-an-id"]})),
    ] {
        let (s, b) = status(Method::POST, "/volumes".into(), Some(body)).await;
        assert_eq!(s, 400, "{what}: {b}");
    }
    let (s, b) = status(
        Method::POST,
        format!("/volumes/{STRANGER}/expand"),
        Some(json!({"expand_size": 1})),
    )
    .await;
    assert_eq!(s, 404, "expand of an unknown volume: {b}");

    // A name in use: the same request again (a client retrying) gets the original
    // operation; another request with the name gets 409 (Heketi: 500).
    let named =
        json!({"size": 1, "name": "taken", "durability": {"type": "replicate", "replicate": {"replica": 3}}});
    let first = h.call(Method::POST, "/volumes", Some(&named)).await.unwrap();
    let vol = h
        .wait_queue(&first.location(), crate::T)
        .await
        .unwrap()
        .location();
    let again = h.call(Method::POST, "/volumes", Some(&named)).await.unwrap();
    assert_eq!((again.status, again.location()), (202, first.location()));
    let mut other = named.clone();
    other["size"] = json!(2);
    let (s, body) = status(Method::POST, "/volumes".into(), Some(other)).await;
    let vid = vol.trim_start_matches("/volumes/");
    let want =
        format!("Volume name 'taken' already in use by volume {vid} (created with a different request)");
    assert_eq!((s, body.trim_end()), (409, want.as_str()));
    // Heketi's 500: no room.
    let (s, body) = status(Method::POST, "/volumes".into(), Some(replica3(100_000))).await;
    assert_eq!(s, 500, "{body}");
    assert!(body.contains("No space"), "{body}");

    // Nothing of the refusals committed: one volume, three nodes, three devices.
    let list = h.call_ok(Method::GET, "/volumes", None).await.unwrap();
    assert_eq!(list["volumes"].as_array().unwrap().len(), 1);
    let topo = h.call_ok(Method::GET, "/topology", None).await.unwrap();
    assert_eq!(topo["clusters"].as_array().unwrap().len(), 1);
    assert_eq!(topo["clusters"][0]["nodes"].as_array().unwrap().len(), 3);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_token_get_401() {
    let h = InProc::start().await.unwrap();
    let r = h
        .call_as("admin", "wrong-key", Method::GET, "/clusters", None)
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let r = h
        .call_as("mallory", "any", Method::GET, "/clusters", None)
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let r = h
        .call_as(
            "user",
            hekate_testkit::inproc::USER_KEY,
            Method::POST,
            "/clusters",
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        h.call_ok(Method::GET, "/clusters", None).await.unwrap()["clusters"],
        json!([])
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_operations_beyond_the_inflight_limit_get_429() {
    // Slow bricks keep the first creates in flight while the third is refused.
    let mut spec = InProcSpec::default();
    spec.policy.max_inflight = 2;
    spec.mock.latency_ms.insert("brick_create".into(), 5_000);
    let h = InProc::with(spec).await.unwrap();
    three_nodes(&h).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            h.call(Method::POST, "/volumes", Some(&replica3(1)))
                .await
                .unwrap()
                .status,
        );
    }
    assert_eq!(statuses, vec![202, 202, 429]);
    let ops = h.call_ok(Method::GET, "/operations", None).await.unwrap();
    assert_eq!(ops["in_flight"], 2, "{ops}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_runner_an_accepted_operation_stays_pending() {
    let h = InProc::with(InProcSpec {
        runner: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let c = h
        .call_ok(
            Method::POST,
            "/clusters",
            Some(&json!({"file": true, "block": true})),
        )
        .await
        .unwrap();
    let node =
        json!({"cluster": c["id"], "zone": 1, "hostnames": {"manage": ["n1"], "storage": ["10.1.0.1"]}});
    let r = h.call(Method::POST, "/nodes", Some(&node)).await.unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let poll = h.call(Method::GET, &r.location(), None).await.unwrap();
    assert_eq!(poll.status, 200);
    assert!(poll.headers.contains_key("x-pending"));
    h.shutdown().await;
}
