//! Operations as replicated state: the queue survives a leader kill, the throttle answers
//! 429, capacity is conserved through creates, expands and deletes, and nothing is left on
//! the (mock) nodes after everything is deleted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hekate::allocator::space_needed;
use hekate_testkit::{load_topology, run_async, wait_for, ClusterSpec, ProcCluster};
use reqwest::Method;
use serde_json::{json, Value};

use crate::{serial, BIN, T};

fn topology(nodes: usize, devices: usize) -> Value {
    let nodes: Vec<Value> = (1..=nodes)
        .map(|i| {
            json!({
                "node": {"hostnames": {"manage": [format!("node{i}")], "storage": [format!("10.9.0.{i}")]}, "zone": i},
                "devices": (0..devices).map(|d| json!({"name": format!("/dev/vd{}", (b'b' + d as u8) as char), "destroydata": false})).collect::<Vec<_>>()
            })
        })
        .collect();
    json!({"clusters": [{"nodes": nodes}]})
}

async fn start(mockexec: Value, glusterfs: Value) -> (tempfile::TempDir, ProcCluster) {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ClusterSpec::new(BIN, 3);
    spec.mockexec = mockexec;
    spec.glusterfs = glusterfs;
    let mut c = ProcCluster::create(dir.path(), spec).unwrap();
    c.start_all().unwrap();
    c.wait_ready(&[1, 2, 3], T).await.unwrap();
    (dir, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_survives_leader_kill_mid_create() {
    let _g = serial();
    // Every brick takes 1.5 s on the (mock) nodes: the create is mid-flight when we kill.
    let (_d, mut c) = start(json!({"latency_ms": {"brick_create": 1500}}), json!({})).await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    let others: Vec<u64> = c.ids().into_iter().filter(|i| *i != leader).collect();
    load_topology(&c.client(others[0]), &topology(3, 2))
        .await
        .unwrap();

    let r = c
        .call(
            others[0],
            Method::POST,
            "/volumes",
            Some(&json!({"size": 2, "durability": {"type": "replicate", "replicate": {"replica": 3}}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let loc = r.headers["location"].to_str().unwrap().to_string();
    c.kill(leader).unwrap();

    // Poll another instance until 303 or 500: never a 404.
    let poller = c.client(others[1]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut pending, mut unavailable) = (0, 0);
    let done = loop {
        let r = poller.call(Method::GET, &loc, None).await.unwrap();
        match r.status {
            200 => pending += 1,
            503 => unavailable += 1, // during the election: retry
            303 | 500 => break r,
            s => panic!("queue answered {s} during failover: {}", r.body),
        }
        assert!(Instant::now() < deadline, "operation never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "after {pending} pending and {unavailable} unavailable answers: {}",
        done.status
    );
    assert_eq!(done.status, 303, "{}", done.body);
    let vol = c
        .call_ok(
            others[1],
            Method::GET,
            done.headers["location"].to_str().unwrap(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(vol["bricks"].as_array().unwrap().len(), 3);
    // The nodes hold exactly the volume's bricks: nothing done twice, nothing orphaned.
    let mock = c.mock_nodes().unwrap().snapshot().await.unwrap();
    let lvs: usize = mock
        .hosts
        .values()
        .flat_map(|h| h.vgs.values())
        .map(|vg| vg.lvs.len())
        .sum();
    assert_eq!(lvs, 3);
    assert_eq!(mock.volumes.len(), 1);
    // The result is readable on the restarted old leader too.
    c.start(leader).unwrap();
    c.wait_ready(&[leader], T).await.unwrap();
    assert_eq!(c.call(leader, Method::GET, &loc, None).await.unwrap().status, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_operations_in_flight_answers_429() {
    let _g = serial();
    let (_d, c) = start(
        json!({"latency_ms": {"volume_create": 2000}}),
        json!({"max_inflight_operations": 2}),
    )
    .await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    load_topology(&c.client(leader), &topology(3, 1)).await.unwrap();
    let client = c.client(leader);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = client
            .call(Method::POST, "/volumes", Some(&json!({"size": 1})))
            .await
            .unwrap();
        statuses.push(r.status);
        if r.status == 429 {
            assert_eq!(r.body, "Server busy. Retry operation later.\n");
            assert_eq!(r.headers.get("retry-after").unwrap(), "1");
        }
    }
    assert_eq!(statuses, vec![202, 202, 429]);
    let ops = c.call_ok(leader, Method::GET, "/operations", None).await.unwrap();
    assert_eq!(ops["in_flight"], 2);
}

/// The limit is checked in apply, atomically with the reservation: 12 creates sent at once
/// through all replicas (so the pre-check in the handler sees 0 pending for most of them)
/// get exactly `max_inflight_operations` 202s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_cannot_both_pass_the_inflight_limit() {
    let _g = serial();
    let (_d, c) = start(
        json!({"latency_ms": {"volume_create": 5000}}),
        json!({"max_inflight_operations": 2}),
    )
    .await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    load_topology(&c.client(leader), &topology(3, 1)).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12u64 {
        let client = c.client(1 + i % 3);
        tasks.spawn(async move {
            client
                .call(Method::POST, "/volumes", Some(&json!({"size": 1})))
                .await
                .unwrap()
                .status
        });
    }
    let mut statuses = Vec::new();
    while let Some(s) = tasks.join_next().await {
        statuses.push(s.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [vec![202; 2], vec![429; 10]].concat());
    let ops = c.call_ok(leader, Method::GET, "/operations", None).await.unwrap();
    assert_eq!(ops["in_flight"], 2);
}

/// Per device: used == sum of its bricks' thin pool + metadata, and total == free + used.
async fn check_capacity(c: &ProcCluster, id: u64) {
    let topo = c.call_ok(id, Method::GET, "/topology", None).await.unwrap();
    let mut factor: BTreeMap<String, f64> = BTreeMap::new();
    for v in topo["clusters"][0]["volumes"].as_array().unwrap() {
        factor.insert(
            v["id"].as_str().unwrap().into(),
            v["snapshot"]["factor"].as_f64().unwrap(),
        );
    }
    for n in topo["clusters"][0]["nodes"].as_array().unwrap() {
        for d in n["devices"].as_array().unwrap() {
            let s = &d["storage"];
            let (total, free, used) = (
                s["total"].as_u64().unwrap(),
                s["free"].as_u64().unwrap(),
                s["used"].as_u64().unwrap(),
            );
            assert_eq!(total, free + used, "device {}", d["id"]);
            let expect: u64 = d["bricks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    let f = factor.get(b["volume"].as_str().unwrap()).copied().unwrap_or(1.0);
                    let (tp, meta) = space_needed(b["size"].as_u64().unwrap(), f, 4096);
                    tp + meta
                })
                .sum();
            assert_eq!(used, expect, "device {} used vs its bricks", d["id"]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_is_conserved_and_nodes_end_clean() {
    let _g = serial();
    let (_d, c) = start(json!({}), json!({})).await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    let client = c.client(leader);
    load_topology(&client, &topology(4, 2)).await.unwrap();
    let mut vols = Vec::new();
    let bodies = [
        json!({"size": 5, "durability": {"type": "replicate", "replicate": {"replica": 3}}}),
        json!({"size": 3, "snapshot": {"enable": true, "factor": 1.5}}),
        json!({"size": 4, "durability": {"type": "disperse", "disperse": {"data": 2, "redundancy": 1}}}),
        json!({"size": 2, "durability": {"type": "replicate", "replicate": {"replica": 3}}, "glustervolumeoptions": ["user.heketi.arbiter true"]}),
    ];
    for b in &bodies {
        vols.push(
            run_async(&client, Method::POST, "/volumes", Some(b))
                .await
                .unwrap()
                .unwrap(),
        );
        check_capacity(&c, leader).await;
    }
    run_async(
        &client,
        Method::POST,
        &format!("{}/expand", vols[0]),
        Some(&json!({"expand_size": 7})),
    )
    .await
    .unwrap();
    check_capacity(&c, leader).await;
    // An expansion the cluster cannot hold is refused at once and changes nothing.
    let r = client
        .call(
            Method::POST,
            &format!("{}/expand", vols[1]),
            Some(&json!({"expand_size": 100000})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(
        r.body.starts_with("Failed to allocate volume expansion:"),
        "{}",
        r.body
    );
    check_capacity(&c, leader).await;
    for v in &vols {
        run_async(&client, Method::DELETE, v, None).await.unwrap();
        check_capacity(&c, leader).await;
    }
    // Every device is whole again, and the nodes hold no LV, mount or volume.
    let topo = c.call_ok(leader, Method::GET, "/topology", None).await.unwrap();
    for n in topo["clusters"][0]["nodes"].as_array().unwrap() {
        for d in n["devices"].as_array().unwrap() {
            assert_eq!(d["storage"]["used"], 0);
        }
    }
    let mock = wait_for(T, "mock state", || async {
        c.mock_nodes().ok()?.snapshot().await.ok()
    })
    .await
    .unwrap();
    assert!(mock.volumes.is_empty());
    for (host, h) in &mock.hosts {
        assert!(h.mounts.is_empty() && h.fstab.is_empty(), "{host}");
        assert!(
            h.vgs.values().all(|vg| vg.lvs.is_empty() && vg.pools.is_empty()),
            "{host}"
        );
    }
}

/// A retried create (same name, same request) gets the original operation, while it is
/// pending and after it finished, and never a second volume; the same name with a different
/// request is a 409 that changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_create_is_idempotent_by_name() {
    let _g = serial();
    let (_d, c) = start(json!({"latency_ms": {"brick_create": 300}}), json!({})).await;
    let api = c.client(2);
    load_topology(&api, &topology(3, 1)).await.unwrap();
    let body =
        json!({"size": 1, "name": "same", "durability": {"type": "replicate", "replicate": {"replica": 3}}});
    let first = api.call(Method::POST, "/volumes", Some(&body)).await.unwrap();
    assert_eq!(first.status, 202, "{}", first.body);
    let loc = first.headers["location"].to_str().unwrap().to_string();
    // While pending, through another instance.
    let again = c.call(3, Method::POST, "/volumes", Some(&body)).await.unwrap();
    assert_eq!(again.status, 202, "{}", again.body);
    assert_eq!(again.headers["location"].to_str().unwrap(), loc);
    let vol = hekate_testkit::wait_queue(&api, &loc, T).await.unwrap();
    assert_eq!(vol.status, 303, "{}", vol.body);
    // After it finished: the same queue entry, which leads to the same volume.
    let late = c.call(1, Method::POST, "/volumes", Some(&body)).await.unwrap();
    assert_eq!(late.status, 202, "{}", late.body);
    assert_eq!(late.headers["location"].to_str().unwrap(), loc);
    // A different request under the same name.
    let mut other = body.clone();
    other["size"] = json!(2);
    let r = api.call(Method::POST, "/volumes", Some(&other)).await.unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("different request"), "{}", r.body);
    let vols = c.call_ok(1, Method::GET, "/volumes", None).await.unwrap();
    assert_eq!(vols["volumes"].as_array().unwrap().len(), 1, "{vols}");
    let mock = c.mock_nodes().unwrap().snapshot().await.unwrap();
    assert_eq!(mock.volumes.len(), 1);
}

/// A finished operation is final: a replica that applied its end answers `/queue/{id}` itself
/// (no leader, no quorum needed), while an unknown id still needs the leader (503 here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_operation_is_answered_by_a_replica_without_quorum() {
    let _g = serial();
    let (_d, mut c) = start(json!({}), json!({})).await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    load_topology(&c.client(leader), &topology(3, 1)).await.unwrap();
    let r = c
        .call(
            leader,
            Method::POST,
            "/volumes",
            Some(&json!({"size": 1, "durability": {"type": "replicate", "replicate": {"replica": 3}}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let loc = r.headers["location"].to_str().unwrap().to_string();
    let done = hekate_testkit::wait_queue(&c.client(leader), &loc, T)
        .await
        .unwrap();
    assert_eq!(done.status, 303, "{}", done.body);

    // Leave one follower alone, once it has applied the end of the operation.
    let kept = c.ids().into_iter().find(|i| *i != leader).unwrap();
    let applied = |st: Option<Value>| st.and_then(|s| s["last_applied"].as_u64()).unwrap_or(0);
    let target = applied(c.status(leader).await);
    wait_for(T, "the follower to apply the operation's end", || async {
        (applied(c.status(kept).await) >= target).then_some(())
    })
    .await
    .unwrap();
    for id in c.ids().into_iter().filter(|i| *i != kept) {
        c.kill(id).unwrap();
    }
    let r = c.call(kept, Method::GET, &loc, None).await.unwrap();
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.headers["location"], done.headers["location"]);
    let unknown = c
        .call(kept, Method::GET, "/queue/0123456789abcdef0123456789abcdef", None)
        .await
        .unwrap();
    assert_eq!(unknown.status, 503, "{}", unknown.body);
}

/// A poll of a pending operation is held until the operation ends (within
/// `queue_poll_hold_ms`), on a follower as on the leader: the first poll after the 202 is the
/// final answer. With a hold shorter than the operation, it answers Heketi's "pending".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_poll_is_held_until_its_operation_ends_within_the_hold() {
    let _g = serial();
    let (_d, c) = start(
        json!({"latency_ms": {"volume_create": 300}}),
        json!({"queue_poll_hold_ms": 10_000}),
    )
    .await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    load_topology(&c.client(leader), &topology(3, 1)).await.unwrap();
    for id in c.ids() {
        let client = c.client(id);
        let r = client
            .call(Method::POST, "/volumes", Some(&json!({"size": 1})))
            .await
            .unwrap();
        assert_eq!(r.status, 202);
        let first = client.call(Method::GET, &r.location(), None).await.unwrap();
        assert_eq!(
            first.status, 303,
            "replica {id} (leader {leader}): {:?}",
            first.headers
        );
        assert!(first.location().starts_with("/volumes/"), "{}", first.location());
    }
    drop(c);

    let (_d, c) = start(
        json!({"latency_ms": {"volume_create": 3000}}),
        json!({"queue_poll_hold_ms": 100}),
    )
    .await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    load_topology(&c.client(leader), &topology(3, 1)).await.unwrap();
    let via = c.ids().into_iter().find(|i| *i != leader).unwrap();
    for id in [leader, via] {
        let client = c.client(id);
        let r = client
            .call(Method::POST, "/volumes", Some(&json!({"size": 1})))
            .await
            .unwrap();
        let first = client.call(Method::GET, &r.location(), None).await.unwrap();
        assert_eq!(first.status, 200, "replica {id}");
        assert_eq!(first.headers.get("x-pending").unwrap(), "true");
        assert_eq!(first.body, "");
        let done = hekate_testkit::wait_queue(&client, &r.location(), T)
            .await
            .unwrap();
        assert_eq!(done.status, 303);
    }
}
