//! Roll forward where rolling back is impossible (mock executor, three replicas): a delete
//! past `volume delete` whose brick destroys keep failing, an expand whose `add-brick`
//! sequence stops half-way, an eviction whose old brick will not go after `replace-brick`.
//! Each ends with the state matching the (mock) nodes: the volume's bricks equal Gluster's,
//! and every device's used size equals what its VG's thin pools take.

use std::collections::BTreeMap;

use hekate::executor::mock::{Fault, MockExecutor, MockState};
use hekate_testkit::{load_topology, run_async, set_state, wait_queue, ClusterSpec, ProcCluster};
use reqwest::Method;
use serde_json::{json, Value};

use crate::{serial, BIN, T};

fn topology() -> Value {
    let nodes: Vec<Value> = (1..=3)
        .map(|i| {
            json!({
                "node": {"hostnames": {"manage": [format!("node{i}")], "storage": [format!("10.9.0.{i}")]}, "zone": i},
                "devices": [{"name": "/dev/vdb", "destroydata": false}, {"name": "/dev/vdc", "destroydata": false}]
            })
        })
        .collect();
    json!({"clusters": [{"nodes": nodes}]})
}

/// Bricks of at most 1 GiB, so that an expand by n GiB adds n sets.
async fn start() -> (tempfile::TempDir, ProcCluster, MockExecutor) {
    start_with(json!({})).await
}

async fn start_with(mockexec: Value) -> (tempfile::TempDir, ProcCluster, MockExecutor) {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ClusterSpec::new(BIN, 3);
    spec.mockexec = mockexec;
    spec.glusterfs = json!({"disable_background_cleaner": true, "brick_max_size_gb": 1});
    let mut c = ProcCluster::create(dir.path(), spec).unwrap();
    c.start_all().unwrap();
    c.wait_ready(&[1, 2, 3], T).await.unwrap();
    load_topology(&c.client(2), &topology()).await.unwrap();
    let mock = c.mock_nodes().unwrap();
    (dir, c, mock)
}

async fn create(c: &ProcCluster, name: &str) -> String {
    let body =
        json!({"size": 1, "name": name, "durability": {"type": "replicate", "replicate": {"replica": 3}}});
    run_async(&c.client(1), Method::POST, "/volumes", Some(&body))
        .await
        .unwrap()
        .unwrap()
}

async fn nodes(mock: &MockExecutor) -> MockState {
    mock.snapshot().await.unwrap()
}

/// (device id, manage host) of every device in the state.
async fn devices(c: &ProcCluster) -> Vec<(Value, String)> {
    let topo = c.call_ok(1, Method::GET, "/topology", None).await.unwrap();
    let mut out = Vec::new();
    for n in topo["clusters"][0]["nodes"].as_array().unwrap() {
        let host = n["hostnames"]["manage"][0].as_str().unwrap().to_string();
        for d in n["devices"].as_array().unwrap() {
            out.push((d.clone(), host.clone()));
        }
    }
    out
}

/// Devices whose used size in the state differs from what their VG's thin pools take on the
/// (mock) node, on the hosts in `hosts` (all when empty): (device, state KiB, LVM KiB).
async fn usage_drift(c: &ProcCluster, mock: &MockExecutor, hosts: &[&str]) -> Vec<(String, u64, u64)> {
    let seen = nodes(mock).await;
    let mut out = Vec::new();
    for (d, host) in devices(c).await {
        if !hosts.is_empty() && !hosts.contains(&host.as_str()) {
            continue;
        }
        let id = d["id"].as_str().unwrap();
        let ours = d["storage"]["used"].as_u64().unwrap();
        let lvm: u64 = seen.hosts[&host].vgs[&format!("vg_{id}")].pools.values().sum();
        if ours != lvm {
            out.push((id.to_string(), ours, lvm));
        }
    }
    out
}

/// The volume's brick paths in the state and in Gluster (mock), both sorted.
async fn bricks_both(c: &ProcCluster, mock: &MockExecutor, vol: &str) -> (Vec<String>, Vec<String>) {
    let v = c.call_ok(1, Method::GET, vol, None).await.unwrap();
    let mut ours: Vec<String> = v["bricks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["path"].as_str().unwrap().to_string())
        .collect();
    let mut theirs: Vec<String> = nodes(mock).await.volumes[v["name"].as_str().unwrap()]
        .bricks
        .iter()
        .map(|b| b.split_once(':').unwrap().1.to_string())
        .collect();
    ours.sort();
    theirs.sort();
    (ours, theirs)
}

/// Every brick Gluster lists for `name` is still mounted, with its LV, on some node.
async fn gluster_bricks_intact(mock: &MockExecutor, name: &str) {
    let s = nodes(mock).await;
    for b in &s.volumes[name].bricks {
        let dir = b.split_once(':').unwrap().1.strip_suffix("/brick").unwrap();
        let lv = dir.rsplit('/').next().unwrap();
        assert!(
            s.hosts
                .values()
                .any(|h| h.mounts.contains(dir) && h.vgs.values().any(|vg| vg.lvs.contains_key(lv))),
            "brick {b} of {name} was destroyed although Gluster uses it"
        );
    }
}

async fn findings(c: &ProcCluster) -> Vec<Value> {
    let r = c.call_ok(3, Method::GET, "/reconcile", None).await.unwrap();
    r["findings"].as_array().unwrap().clone()
}

async fn fired(mock: &MockExecutor) -> Vec<u32> {
    nodes(mock).await.faults.iter().map(|f| f.fired).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_past_volume_delete_never_shows_the_volume_again() {
    let _g = serial();
    let (_d, c, mock) = start().await;
    let vol = create(&c, "rf").await;
    let id = vol.rsplit('/').next().unwrap().to_string();
    // Every brick destroy on node2 cannot reach it three times running (more than the
    // operation's 3 attempts); glusterd there answers, so the node is alive.
    mock.add_fault(Fault {
        verb: "brick_destroy".into(),
        host: "node2".into(),
        times: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    let api = c.client(1);
    let r = api.call(Method::DELETE, &vol, None).await.unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let loc = r.location();
    let mut polls = 0;
    let done = loop {
        let q = api.call(Method::GET, &loc, None).await.unwrap();
        // Every replica, every poll: the volume is not listed and not found.
        for i in 1..=3 {
            let list = c.call_ok(i, Method::GET, "/volumes", None).await.unwrap();
            assert!(
                !list["volumes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v == &json!(id)),
                "poll {polls}: replica {i} lists the volume being deleted: {list}"
            );
            let one = c.call(i, Method::GET, &vol, None).await.unwrap();
            assert_eq!(one.status, 404, "poll {polls}: replica {i}: {}", one.body);
        }
        polls += 1;
        if !(q.status == 200 && q.headers.contains_key("x-pending")) {
            break q;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(done.status, 204, "the delete ends done: {}", done.body);
    assert_eq!(fired(&mock).await, vec![3], "the fault fired three times");
    mock.clear_faults().await.unwrap();
    // Ended once: still done, nothing failed, nothing pending.
    let again = wait_queue(&api, &loc, T).await.unwrap();
    assert_eq!(again.status, 204);
    let ops = c.call_ok(2, Method::GET, "/operations", None).await.unwrap();
    assert_eq!(ops["total"], 0, "{ops}");
    assert!(ops.get("recent_failures").is_none(), "{ops}");
    assert!(!nodes(&mock).await.volumes.contains_key("rf"));
    assert_eq!(usage_drift(&c, &mock, &[]).await, vec![]);
    assert_eq!(findings(&c).await, Vec::<Value>::new());
    eprintln!("{polls} polls while the delete rolled forward");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_whose_node_never_comes_back_leaves_its_brick_for_reconcile() {
    let _g = serial();
    let (_d, c, mock) = start().await;
    let vol = create(&c, "gone").await;
    // node3 unreachable for good: its brick cannot be destroyed, its glusterd does not answer.
    mock.add_fault(Fault {
        verb: "*".into(),
        host: "node3".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    run_async(&c.client(1), Method::DELETE, &vol, None).await.unwrap();
    let r = c.call(1, Method::GET, &vol, None).await.unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(!nodes(&mock).await.volumes.contains_key("gone"));
    // On the nodes that answer, the state equals LVM; node3 still holds the brick.
    assert_eq!(usage_drift(&c, &mock, &["node1", "node2"]).await, vec![]);
    let left = usage_drift(&c, &mock, &["node3"]).await;
    assert_eq!(left.len(), 1, "{left:?}");
    // node3 is back: reconcile names what was left there and repairs it.
    mock.clear_faults().await.unwrap();
    let found = findings(&c).await;
    let kinds: BTreeMap<String, usize> = found.iter().fold(BTreeMap::new(), |mut m, f| {
        *m.entry(f["kind"].as_str().unwrap().to_string()).or_default() += 1;
        m
    });
    // One 1 GiB brick: within reconcile's free-space tolerance (1% of a 500 GiB device), so
    // the orphan alone is reported; its repair gives LVM the state's figure again.
    assert_eq!(
        kinds,
        BTreeMap::from([("orphan_brick".to_string(), 1)]),
        "{found:#?}"
    );
    c.call_ok(3, Method::POST, "/reconcile", Some(&json!({"repair": true})))
        .await
        .unwrap();
    hekate_testkit::wait_for(T, "the repairs", || async {
        findings(&c).await.is_empty().then_some(())
    })
    .await
    .unwrap();
    assert_eq!(usage_drift(&c, &mock, &[]).await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expand_stopped_half_way_keeps_exactly_what_gluster_holds() {
    let _g = serial();
    let (_d, c, mock) = start().await;
    let vol = create(&c, "half").await;
    let api = c.client(1);
    // 6 GiB in 1 GiB bricks: 6 sets of 3, added by two `add-brick`s (5 sets, then 1); the
    // second is refused.
    mock.add_fault(Fault {
        verb: "add_brick".into(),
        skip: 1,
        message: "injected: add-brick refused".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let out = run_async(
        &api,
        Method::POST,
        &format!("{vol}/expand"),
        Some(&json!({"expand_size": 6})),
    )
    .await;
    assert_eq!(fired(&mock).await, vec![1], "the second add-brick was refused");
    mock.clear_faults().await.unwrap();
    let err = out.unwrap_err().to_string();
    assert!(
        err.contains("add-brick refused") && err.contains("kept 15 of the 18"),
        "{err}"
    );
    let (ours, theirs) = bricks_both(&c, &mock, &vol).await;
    assert_eq!(ours.len(), 18, "3 + 15 bricks");
    assert_eq!(ours, theirs, "the state's bricks are Gluster's");
    gluster_bricks_intact(&mock, "half").await;
    let v = c.call_ok(1, Method::GET, &vol, None).await.unwrap();
    assert_eq!(v["size"], 6, "1 GiB + 15/18 of 6 GiB: {v}");
    assert_eq!(usage_drift(&c, &mock, &[]).await, vec![]);
    assert_eq!(findings(&c).await, Vec::<Value>::new());

    // The answer of an add-brick lost after Gluster did it: read back, the expand is done.
    mock.add_fault(Fault {
        verb: "add_brick".into(),
        times: 1,
        after: true,
        message: "injected: connection reset after add-brick".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    run_async(
        &api,
        Method::POST,
        &format!("{vol}/expand"),
        Some(&json!({"expand_size": 3})),
    )
    .await
    .unwrap();
    assert_eq!(fired(&mock).await, vec![1]);
    mock.clear_faults().await.unwrap();
    let (ours, theirs) = bricks_both(&c, &mock, &vol).await;
    assert_eq!((ours.len(), &ours), (27, &theirs));
    gluster_bricks_intact(&mock, "half").await;
    let v = c.call_ok(1, Method::GET, &vol, None).await.unwrap();
    assert_eq!(v["size"], 9, "{v}");
    assert_eq!(usage_drift(&c, &mock, &[]).await, vec![]);
    assert_eq!(findings(&c).await, Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_past_replace_brick_rolls_forward() {
    let _g = serial();
    let (_d, c, mock) = start().await;
    let vol = create(&c, "ev").await;
    let api = c.client(1);
    let v = c.call_ok(1, Method::GET, &vol, None).await.unwrap();
    let dev = v["bricks"][0]["device"].as_str().unwrap().to_string();
    let host = devices(&c)
        .await
        .into_iter()
        .find(|(d, _)| d["id"] == json!(dev))
        .unwrap()
        .1;
    set_state(&api, "devices", &dev, "offline").await.unwrap();
    // The old brick will not go twice (its node alive: glusterd answers).
    mock.add_fault(Fault {
        verb: "brick_destroy".into(),
        host: host.clone(),
        times: 2,
        message: "injected: umount: target is busy".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    set_state(&api, "devices", &dev, "failed").await.unwrap();
    assert_eq!(fired(&mock).await, vec![2]);
    mock.clear_faults().await.unwrap();
    let d = c
        .call_ok(1, Method::GET, &format!("/devices/{dev}"), None)
        .await
        .unwrap();
    assert_eq!(d["state"], "failed", "{d}");
    assert_eq!(d["bricks"].as_array().unwrap().len(), 0, "{d}");
    let (ours, theirs) = bricks_both(&c, &mock, &vol).await;
    assert_eq!(ours, theirs);
    gluster_bricks_intact(&mock, "ev").await;
    let s = nodes(&mock).await;
    assert!(
        s.hosts[&host].vgs[&format!("vg_{dev}")].pools.is_empty(),
        "the old brick is gone from LVM"
    );
    assert_eq!(usage_drift(&c, &mock, &[]).await, vec![]);
    assert_eq!(findings(&c).await, Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_resumes_a_delete_from_its_point_of_no_return() {
    let _g = serial();
    let (_d, mut c, mock) = start().await;
    let vol = create(&c, "resumed").await;
    let id = vol.rsplit('/').next().unwrap().to_string();
    // node2 refuses the brick destroy until the fault is cleared (glusterd answers: alive).
    mock.add_fault(Fault {
        verb: "brick_destroy".into(),
        host: "node2".into(),
        message: "injected: umount: target is busy".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    let r = c.call(leader, Method::DELETE, &vol, None).await.unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let loc = r.location();
    // A second round of brick destroys: the volume step and its mark are behind.
    hekate_testkit::wait_for(T, "a second round of brick destroys", || async {
        (fired(&mock).await[0] >= 2).then_some(())
    })
    .await
    .unwrap();
    let before = mock.command_log().await.unwrap().len();
    c.kill(leader).unwrap();
    mock.clear_faults().await.unwrap();
    let rest: Vec<u64> = [1, 2, 3].into_iter().filter(|i| *i != leader).collect();
    let api = c.client(rest[0]);
    let started = std::time::Instant::now();
    let done = loop {
        for &i in &rest {
            // Transport errors and 503 while the election runs are polled through.
            if let Ok(list) = c.call(i, Method::GET, "/volumes", None).await {
                if list.status == 200 {
                    let list = list.json().unwrap();
                    assert!(
                        !list["volumes"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|v| v == &json!(id)),
                        "replica {i} lists the volume being deleted: {list}"
                    );
                }
            }
            if let Ok(one) = c.call(i, Method::GET, &vol, None).await {
                assert!(
                    [404, 503].contains(&one.status),
                    "replica {i}: {} {}",
                    one.status,
                    one.body
                );
            }
        }
        if let Ok(q) = api.call(Method::GET, &loc, None).await {
            if q.status != 503 && !(q.status == 200 && q.headers.contains_key("x-pending")) {
                break q;
            }
        }
        assert!(
            started.elapsed() < T,
            "the delete did not end after the leader's death"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(done.status, 204, "{}", done.body);
    c.start(leader).unwrap();
    c.wait_ready(&[leader], T).await.unwrap();
    // The new leader went straight to the bricks: no volume verb after the kill.
    let after: Vec<_> = mock.command_log().await.unwrap()[before..]
        .iter()
        .filter(|r| r.object == "resumed")
        .map(|r| r.verb.clone())
        .collect();
    assert_eq!(
        after,
        Vec::<String>::new(),
        "volume verbs after the leader's death"
    );
    assert!(
        mock.command_log().await.unwrap()[before..]
            .iter()
            .any(|r| r.verb == "brick_destroy" && r.host == "node2"),
        "the new leader destroyed the bricks"
    );
    assert!(!nodes(&mock).await.volumes.contains_key("resumed"));
    assert_eq!(usage_drift(&c, &mock, &[]).await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_resumes_an_expand_stopped_between_two_add_bricks() {
    let _g = serial();
    // Each `add-brick` takes 1.5 s on the (mock) node before it acts.
    let (_d, mut c, mock) = start_with(json!({"latency_ms": {"add_brick": 1500}})).await;
    let vol = create(&c, "grow").await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    // 6 sets: two `add-brick`s (15 bricks, then 3).
    let r = c
        .call(
            leader,
            Method::POST,
            &format!("{vol}/expand"),
            Some(&json!({"expand_size": 6})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let loc = r.location();
    // The first `add-brick` is done (18 bricks), the second sleeps its 1.5 s before it acts:
    // the leader dies with Gluster half-way.
    let in_gluster = || async { nodes(&mock).await.volumes["grow"].bricks.len() };
    hekate_testkit::wait_for(T, "the first add-brick", || async {
        (in_gluster().await >= 3 + 15).then_some(())
    })
    .await
    .unwrap();
    let before = mock.command_log().await.unwrap().len();
    c.kill(leader).unwrap();
    assert_eq!(in_gluster().await, 3 + 15);
    let rest: Vec<u64> = [1, 2, 3].into_iter().filter(|i| *i != leader).collect();
    let done = wait_queue(&c.client(rest[0]), &loc, T).await.unwrap();
    assert_eq!(done.status, 303, "{}", done.body);
    c.start(leader).unwrap();
    c.wait_ready(&[leader], T).await.unwrap();
    let destroyed: Vec<_> = mock.command_log().await.unwrap()[before..]
        .iter()
        .filter(|r| r.verb == "brick_destroy")
        .map(|r| r.object.clone())
        .collect();
    assert_eq!(destroyed, Vec::<String>::new(), "nothing undone");
    let (ours, theirs) = bricks_both(&c, &mock, &vol).await;
    assert_eq!((ours.len(), &ours), (21, &theirs));
    gluster_bricks_intact(&mock, "grow").await;
    let v = c.call_ok(1, Method::GET, &vol, None).await.unwrap();
    assert_eq!(v["size"], 7, "{v}");
    assert_eq!(usage_drift(&c, &mock, &[]).await, vec![]);
    assert_eq!(findings(&c).await, Vec::<Value>::new());
}
