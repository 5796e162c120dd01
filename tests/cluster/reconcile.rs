//! Reconcile and fault injection (mock executor, three replicas): reconcile reports orphans
//! and drift and repairs what it can; a fault at every step of create, delete, expand and
//! device remove ends with the operation resumed or rolled back, and reconcile finding
//! nothing; an operation that cannot finish is marked failed (at once when a node refuses,
//! after 3 attempts when a node cannot be reached), cleaned up, and listed with its reason
//! by `GET /operations`.

use hekate::executor::mock::{Fault, MockExecutor};
use hekate::executor::{BrickSpec, Executor, VolumeSpec};
use hekate_testkit::{load_topology, run_async, set_state, wait_for, ClusterSpec, ProcCluster};
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

async fn start() -> (tempfile::TempDir, ProcCluster, MockExecutor) {
    start_with(&topology()).await
}

/// Three replicas with reconcile on demand only, `topology` loaded.
async fn start_with(topology: &Value) -> (tempfile::TempDir, ProcCluster, MockExecutor) {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ClusterSpec::new(BIN, 3);
    // Reconcile runs on demand only, so that armed faults hit the operation under test.
    spec.glusterfs = json!({"disable_background_cleaner": true});
    let mut c = ProcCluster::create(dir.path(), spec).unwrap();
    c.start_all().unwrap();
    c.wait_ready(&[1, 2, 3], T).await.unwrap();
    load_topology(&c.client(2), topology).await.unwrap();
    let mock = c.mock_nodes().unwrap();
    (dir, c, mock)
}

/// A brick of `size_kib` with its pool on device `dev`, named as Hekate names brick `id`.
fn brick_spec(dev: &str, id: &str, size_kib: u64, meta_kib: u64) -> BrickSpec {
    BrickSpec {
        id: id.into(),
        vg: format!("vg_{dev}"),
        thin_pool: format!("tp_{id}"),
        lv_name: None,
        mount: None,
        tp_size: size_kib,
        meta_size: meta_kib,
        size: size_kib,
        gid: 0,
        arbiter: false,
    }
}

async fn reconcile(c: &ProcCluster, repair: bool) -> Value {
    let r = if repair {
        c.call_ok(3, Method::POST, "/reconcile", Some(&json!({"repair": true})))
            .await
    } else {
        c.call_ok(3, Method::GET, "/reconcile", None).await
    };
    r.unwrap()
}

fn kinds(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["object"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn assert_clean(c: &ProcCluster, what: &str) {
    let r = reconcile(c, false).await;
    assert_eq!(r["nodes_examined"], 3, "{what}: {r}");
    assert!(kinds(&r).is_empty(), "{what}: reconcile found {r:#}");
}

async fn create(c: &ProcCluster, name: &str) -> Result<String, String> {
    let body =
        json!({"size": 1, "name": name, "durability": {"type": "replicate", "replicate": {"replica": 3}}});
    run_async(&c.client(1), Method::POST, "/volumes", Some(&body))
        .await
        .map(|l| l.unwrap_or_default())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_reports_orphans_and_drift_and_repairs_them() {
    let _g = serial();
    let (_d, c, mock) = start().await;
    assert_clean(&c, "after topology load").await;
    let kept = create(&c, "kept").await.unwrap();
    let lost = create(&c, "lost").await.unwrap();
    assert_clean(&c, "after two creates").await;

    // Behind Hekate's back: an orphan brick (10 GiB pool: device sizes drift too), an orphan
    // volume on it, and a volume of the state destroyed on the nodes.
    let topo = c.call_ok(1, Method::GET, "/topology", None).await.unwrap();
    let node1 = topo["clusters"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["hostnames"]["manage"][0] == "node1")
        .unwrap()
        .clone();
    let dev = node1["devices"][0]["id"].as_str().unwrap().to_string();
    let orphan_id = "0123456789abcdef0123456789abcdef".to_string();
    let spec = brick_spec(&dev, &orphan_id, 10 << 20, 65536);
    // Behind Hekate's back (an operator's own login, past the guard).
    MockExecutor::as_operator(mock.brick_create("node1", &spec))
        .await
        .unwrap();
    // An orphan volume carries Hekate's mark with an id the state does not have (a volume
    // Hekate made and lost track of); an unmarked one would be foreign, never repaired.
    let orphan_vol_id = "fedcba9876543210fedcba9876543210";
    let orphan_vol = VolumeSpec {
        id: orphan_vol_id.into(),
        name: "orphanvol".into(),
        bricks: vec![format!("10.9.0.1:{}", spec.path())],
        replica: None,
        arbiter: false,
        disperse: None,
        options: vec![format!("user.heketi.id {orphan_vol_id}")],
    };
    MockExecutor::as_operator(mock.volume_create("node1", &orphan_vol))
        .await
        .unwrap();
    let lost_id = lost.rsplit('/').next().unwrap();
    MockExecutor::as_operator(mock.volume_destroy("node1", "lost", lost_id))
        .await
        .unwrap();

    let r = reconcile(&c, false).await;
    let found = kinds(&r);
    for want in [
        ("orphan_volume", "orphanvol".to_string()),
        ("orphan_brick", orphan_id.clone()),
        ("free_space", dev.clone()),
        ("missing_volume", "lost".to_string()),
    ] {
        assert!(
            found.iter().any(|(k, o)| k == want.0 && *o == want.1),
            "{want:?} not in {r:#}"
        );
    }
    assert_eq!(found.len(), 4, "{r:#}");
    // The report is the same through Heketi's examiner path and the CLI.
    let ex = c
        .call_ok(2, Method::GET, "/internal/state/examine/gluster", None)
        .await
        .unwrap();
    assert_eq!(ex["findings"].as_array().unwrap().len(), 4, "{ex}");
    assert!(ex["heketidb"]["clusterentries"].is_object(), "{ex}");

    // Repair: the orphans go, the device's size is re-read; the missing volume stays reported
    // (its data is gone: that is for the administrator).
    let r = reconcile(&c, true).await;
    let repairs = r["repairs"].as_array().unwrap();
    assert_eq!(repairs.len(), 3, "{r:#}");
    assert!(repairs.iter().all(|x| x["ok"] == true), "{r:#}");
    let left = wait_for(T, "repairs to settle", || async {
        let k = kinds(&reconcile(&c, false).await);
        (k.len() == 1).then_some(k)
    })
    .await
    .unwrap();
    assert_eq!(left, vec![("missing_volume".to_string(), "lost".to_string())]);
    let nodes = c.mock_nodes().unwrap().snapshot().await.unwrap();
    assert!(!nodes.volumes.contains_key("orphanvol"));
    assert!(nodes.hosts["node1"].vgs[&format!("vg_{dev}")]
        .pools
        .keys()
        .all(|p| !p.contains(&orphan_id)));

    // Deleting the lost volume converges ("does not exist" is done), and all is clean.
    run_async(&c.client(1), Method::DELETE, &lost, None)
        .await
        .unwrap();
    assert_clean(&c, "after deleting the lost volume").await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hekate-cli"))
        .args([
            "--server",
            &c.url(1),
            "--user",
            "admin",
            "--secret",
            &c.admin_key,
            "reconcile",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("3 nodes examined") && text.contains(" 0 findings"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run_async(&c.client(1), Method::DELETE, &kept, None)
        .await
        .unwrap();
    assert_clean(&c, "at the end").await;
}

/// Two clusters of three nodes (node1-3 on 10.9.0.x, node4-6 on 10.9.1.x).
fn two_clusters() -> Value {
    let cluster = |first: usize, net: u8| {
        let nodes: Vec<Value> = (first..first + 3)
            .map(|i| {
                json!({
                    "node": {"hostnames": {"manage": [format!("node{i}")], "storage": [format!("10.9.{net}.{i}")]}, "zone": i},
                    "devices": [{"name": "/dev/vdb", "destroydata": false}]
                })
            })
            .collect();
        json!({"nodes": nodes})
    };
    json!({"clusters": [cluster(1, 0), cluster(4, 1)]})
}

/// An operator's brick on `host`'s first device (`dev`), and a Gluster volume `name` on it
/// marked with `mark`: made behind Hekate's back.
async fn plant_volume(
    mock: &MockExecutor,
    host: &str,
    storage: &str,
    dev: &str,
    id: &str,
    name: &str,
    mark: &str,
) {
    let spec = brick_spec(dev, id, 1 << 20, 8192);
    MockExecutor::as_operator(mock.brick_create(host, &spec))
        .await
        .unwrap();
    let v = VolumeSpec {
        id: "00000000000000000000000000000abc".into(),
        name: name.into(),
        bricks: vec![format!("{storage}:{}", spec.path())],
        replica: None,
        arbiter: false,
        disperse: None,
        options: vec![format!("user.heketi.id {mark}")],
    };
    MockExecutor::as_operator(mock.volume_create(host, &v))
        .await
        .unwrap();
}

/// Reconcile reads one cluster at a time: each cluster's findings come from its own nodes,
/// and a Gluster volume marked with the id of a volume of another cluster is foreign (left
/// alone), not an orphan to destroy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cluster_is_judged_by_its_own_nodes() {
    let _g = serial();
    let (_d, c, mock) = start_with(&two_clusters()).await;
    let topo = c.call_ok(1, Method::GET, "/topology", None).await.unwrap();
    let clusters = topo["clusters"].as_array().unwrap();
    let of = |host: &str| {
        clusters
            .iter()
            .find_map(|cl| {
                let n = cl["nodes"]
                    .as_array()?
                    .iter()
                    .find(|n| n["hostnames"]["manage"][0] == host)?;
                Some((
                    cl["id"].as_str()?.to_string(),
                    n["devices"][0]["id"].as_str()?.to_string(),
                ))
            })
            .unwrap()
    };
    let ((first, dev1), (second, dev4)) = (of("node1"), of("node4"));
    let body = |name: &str, cluster: &str| {
        json!({"size": 1, "name": name, "clusters": [cluster],
               "durability": {"type": "replicate", "replicate": {"replica": 3}}})
    };
    run_async(&c.client(1), Method::POST, "/volumes", Some(&body("a", &first)))
        .await
        .unwrap();
    let b = run_async(&c.client(1), Method::POST, "/volumes", Some(&body("b", &second)))
        .await
        .unwrap()
        .unwrap();
    let r = reconcile(&c, false).await;
    assert_eq!(r["nodes_examined"], 6, "{r}");
    assert!(kinds(&r).is_empty(), "{r:#}");

    // In the first cluster, a volume marked with the second cluster's volume b; in the
    // second, one marked with an id the state never had.
    let b_id = b.rsplit('/').next().unwrap();
    let (brick1, brick4) = (
        "1111111111111111111111111111111a",
        "4444444444444444444444444444444a",
    );
    plant_volume(&mock, "node1", "10.9.0.1", &dev1, brick1, "copy", b_id).await;
    plant_volume(
        &mock,
        "node4",
        "10.9.1.4",
        &dev4,
        brick4,
        "lost",
        "0123456789abcdef0123456789abcdef",
    )
    .await;
    let r = reconcile(&c, false).await;
    let found: Vec<(String, String, String)> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap().to_string();
            (s("kind"), s("place"), s("object"))
        })
        .collect();
    let has = |kind: &str, place: &str, object: &str| {
        found
            .iter()
            .any(|(k, p, o)| k == kind && p == place && o == object)
    };
    assert!(has("foreign_volume", &first, "copy"), "{r:#}");
    assert!(has("orphan_volume", &second, "lost"), "{r:#}");
    assert!(!has("orphan_volume", &first, "copy"), "{r:#}");
    assert!(
        !found.iter().any(|(_, _, o)| o == "a" || o == "b"),
        "the state's volumes are where they are: {r:#}"
    );
}

/// The verbs (verb, host) the nodes saw while `f` ran.
async fn verbs_of<F, Fut>(mock: &MockExecutor, f: F) -> Vec<(String, String)>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let before = mock.command_log().await.unwrap().len();
    f().await;
    mock.command_log().await.unwrap()[before..]
        .iter()
        .map(|r| (r.verb.clone(), r.host.clone()))
        .collect()
}

/// The faults tried at step `k` of an operation whose clean run issued `steps`: lost before
/// it reached the node, lost after the node did it, and (when `permanent`) the step's verb
/// failing for good on that host: refused by the node, or the node gone.
fn faults(steps: &[(String, String)], k: usize, permanent: bool) -> Vec<(&'static str, Fault)> {
    let transient = |after| Fault {
        verb: "*".into(),
        skip: k as u32,
        times: 1,
        after,
        ..Default::default()
    };
    let mut out = vec![("lost-before", transient(false)), ("lost-after", transient(true))];
    if permanent {
        // Brick verbs on that host (every volume has a brick on each node); volume verbs on
        // any host (Gluster commands go to the first brick's node, which placement varies).
        let (verb, mut host) = steps[k].clone();
        if !verb.starts_with("brick_") {
            host.clear();
        }
        let same = |s: &&(String, String)| s.0 == verb && (host.is_empty() || s.1 == host);
        let skip = steps[..k].iter().filter(same).count() as u32;
        let lasting = |message: &str| Fault {
            verb: verb.clone(),
            host: host.clone(),
            skip,
            times: 0,
            message: message.into(),
            ..Default::default()
        };
        out.push(("refuses", lasting("injected: node refuses")));
        out.push(("gone", lasting("")));
    }
    out
}

/// Deletes a removed (failed, empty) device and adds its disk again, as an administrator
/// would after replacing it.
async fn give_back(c: &ProcCluster, dev: &str) {
    let topo = c.call_ok(1, Method::GET, "/topology", None).await.unwrap();
    let (node, name) = topo["clusters"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|n| {
            let d = n["devices"].as_array()?.iter().find(|d| d["id"] == dev)?;
            Some((n["id"].as_str()?.to_string(), d["name"].as_str()?.to_string()))
        })
        .unwrap();
    let api = c.client(1);
    run_async(&api, Method::DELETE, &format!("/devices/{dev}"), None)
        .await
        .unwrap();
    run_async(
        &api,
        Method::POST,
        "/devices",
        Some(&json!({"node": node, "name": name})),
    )
    .await
    .unwrap();
}

async fn volume_device(c: &ProcCluster, vol: &str) -> String {
    let v = c.call_ok(1, Method::GET, vol, None).await.unwrap();
    v["bricks"][0]["device"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_at_every_step_ends_resumed_or_rolled_back() {
    let _g = serial();
    let (_d, c, mock) = start().await;
    let api = c.client(1);
    let mut tried = 0;

    // Create: every step, three kinds of fault.
    let mut vol = String::new();
    let steps = verbs_of(&mock, || async { vol = create(&c, "probe").await.unwrap() }).await;
    assert!(steps.len() >= 4, "{steps:?}");
    run_async(&api, Method::DELETE, &vol, None).await.unwrap();
    for k in 0..steps.len() {
        for (kind, fault) in faults(&steps, k, true) {
            let what = format!("create, {kind} fault at step {k} ({:?})", steps[k]);
            mock.add_fault(fault).await.unwrap();
            let out = create(&c, &format!("c{k}{}", &kind[..4])).await;
            assert_eq!(
                mock.clear_faults().await.unwrap(),
                1,
                "{what}: the fault never fired"
            );
            match (kind, out) {
                ("refuses", Err(e)) => {
                    // A command that ran and failed is reported at once, not retried.
                    assert!(
                        e.contains("injected: node refuses") && !e.contains("attempts"),
                        "{what}: {e}"
                    );
                }
                ("gone", Err(e)) => {
                    // A node that cannot be reached is tried again, then given up on.
                    assert!(
                        e.contains("injected failure") && e.contains("gave up after 3 attempts"),
                        "{what}: {e}"
                    );
                    let ops = c.call_ok(2, Method::GET, "/operations", None).await.unwrap();
                    let f = &ops["recent_failures"][0];
                    assert_eq!(f["type_name"], "create-volume", "{what}: {ops}");
                    assert!(f["error"].as_str().unwrap().contains("injected"), "{ops}");
                }
                ("refuses" | "gone", Ok(v)) => panic!("{what}: created {v}"),
                (_, Ok(v)) => {
                    run_async(&api, Method::DELETE, &v, None).await.unwrap();
                }
                (_, Err(e)) => panic!("{what}: not resumed: {e}"),
            }
            assert_clean(&c, &what).await;
            tried += 1;
        }
    }

    // Expand and delete: a volume per fault.
    let v = create(&c, "probe2").await.unwrap();
    let steps_d = verbs_of(&mock, || async {
        run_async(&api, Method::DELETE, &v, None).await.unwrap();
    })
    .await;
    let v = create(&c, "probe3").await.unwrap();
    let expand = json!({"expand_size": 1});
    let steps_x = verbs_of(&mock, || async {
        run_async(&api, Method::POST, &format!("{v}/expand"), Some(&expand))
            .await
            .unwrap();
    })
    .await;
    run_async(&api, Method::DELETE, &v, None).await.unwrap();
    for k in 0..steps_x.len() {
        for (kind, fault) in faults(&steps_x, k, true) {
            let what = format!("expand, {kind} fault at step {k} ({:?})", steps_x[k]);
            let v = create(&c, &format!("x{k}{}", &kind[..4])).await.unwrap();
            mock.add_fault(fault).await.unwrap();
            let out = run_async(&api, Method::POST, &format!("{v}/expand"), Some(&expand)).await;
            assert_eq!(
                mock.clear_faults().await.unwrap(),
                1,
                "{what}: the fault never fired"
            );
            let size = c.call_ok(1, Method::GET, &v, None).await.unwrap()["size"].clone();
            match kind {
                "refuses" | "gone" => assert!(out.is_err() && size == 1, "{what}: {out:?} size {size}"),
                _ => assert!(out.is_ok() && size == 2, "{what}: {out:?} size {size}"),
            }
            assert_clean(&c, &what).await;
            run_async(&api, Method::DELETE, &v, None).await.unwrap();
            tried += 1;
        }
    }
    for k in 0..steps_d.len() {
        for (kind, fault) in faults(&steps_d, k, false) {
            let what = format!("delete, {kind} fault at step {k} ({:?})", steps_d[k]);
            let v = create(&c, &format!("d{k}{}", &kind[..4])).await.unwrap();
            mock.add_fault(fault).await.unwrap();
            let out = run_async(&api, Method::DELETE, &v, None).await;
            assert_eq!(
                mock.clear_faults().await.unwrap(),
                1,
                "{what}: the fault never fired"
            );
            assert!(out.is_ok(), "{what}: not resumed: {out:?}");
            assert_clean(&c, &what).await;
            tried += 1;
        }
    }

    // Device remove (its brick moves to the node's other device): offline, then failed.
    let v = create(&c, "probe4").await.unwrap();
    let dev = volume_device(&c, &v).await;
    set_state(&api, "devices", &dev, "offline").await.unwrap();
    let steps_r = verbs_of(&mock, || async {
        set_state(&api, "devices", &dev, "failed").await.unwrap();
    })
    .await;
    run_async(&api, Method::DELETE, &v, None).await.unwrap();
    give_back(&c, &dev).await;
    assert!(steps_r.len() >= 3, "{steps_r:?}");
    for k in 0..steps_r.len() {
        for (kind, fault) in faults(&steps_r, k, false) {
            let what = format!("device remove, {kind} fault at step {k} ({:?})", steps_r[k]);
            let v = create(&c, &format!("r{k}{}", &kind[..4])).await.unwrap();
            let dev = volume_device(&c, &v).await;
            set_state(&api, "devices", &dev, "offline").await.unwrap();
            mock.add_fault(fault).await.unwrap();
            let out = set_state(&api, "devices", &dev, "failed").await;
            assert_eq!(
                mock.clear_faults().await.unwrap(),
                1,
                "{what}: the fault never fired"
            );
            assert!(out.is_ok(), "{what}: not resumed: {out:?}");
            let d = c
                .call_ok(1, Method::GET, &format!("/devices/{dev}"), None)
                .await
                .unwrap();
            assert_eq!(d["bricks"].as_array().unwrap().len(), 0, "{what}: {d}");
            assert_eq!(d["state"], "failed", "{what}: {d}");
            assert_clean(&c, &what).await;
            run_async(&api, Method::DELETE, &v, None).await.unwrap();
            give_back(&c, &dev).await;
            tried += 1;
        }
    }
    eprintln!(
        "{tried} faults: create {} steps, expand {}, delete {}, device remove {}",
        steps.len(),
        steps_x.len(),
        steps_d.len(),
        steps_r.len()
    );
}
