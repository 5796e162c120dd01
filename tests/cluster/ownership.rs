//! Ownership before destruction (issue 10, point 1, on the mock): a Gluster volume and an LV
//! that Hekate did not make survive a user's create, an admin's create and a clone that name
//! them, and a reconcile repair; each request ends 409 naming the conflict, and the nodes'
//! command record shows nothing but reads against them.

use hekate::executor::mock::MockVolume;
use hekate_testkit::{load_topology, run_async, ClusterSpec, ProcCluster};
use reqwest::Method;
use serde_json::{json, Value};

use crate::{serial, BIN, T};

const FOREIGN: &str = "heketidbstorage";

fn topology() -> Value {
    let nodes: Vec<Value> = (1..=3)
        .map(|i| {
            json!({
                "node": {"hostnames": {"manage": [format!("node{i}")], "storage": [format!("10.9.0.{i}")]}, "zone": i},
                "devices": [{"name": "/dev/vdb", "destroydata": false}]
            })
        })
        .collect();
    json!({"clusters": [{"nodes": nodes}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_volume_and_lv_survive_creates_clone_and_repair() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ClusterSpec::new(BIN, 3);
    spec.glusterfs = json!({"disable_background_cleaner": true});
    let mut c = ProcCluster::create(dir.path(), spec).unwrap();
    c.start_all().unwrap();
    c.wait_ready(&[1, 2, 3], T).await.unwrap();
    load_topology(&c.client(2), &topology()).await.unwrap();
    let mock = c.mock_nodes().unwrap();
    let admin = c.client(1);
    let user = hekate::client::Client::new(vec![c.url(2)], "user", &c.user_key);
    let replica3 = json!({"durability": {"type": "replicate", "replicate": {"replica": 3}}});
    let mut body = replica3.clone();
    body["size"] = json!(1);
    body["name"] = json!("origin");
    let origin = run_async(&admin, Method::POST, "/volumes", Some(&body))
        .await
        .unwrap()
        .unwrap();

    // Behind Hekate's back, as an old Heketi or an operator would: a volume named
    // heketidbstorage (no user.heketi.id) on an LV of its own, inside one of Hekate's VGs and
    // under its mount root, with its fstab line.
    let topo = c.call_ok(1, Method::GET, "/topology", None).await.unwrap();
    let dev = topo["clusters"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["hostnames"]["manage"][0] == "node1")
        .unwrap()["devices"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let vg = format!("vg_{dev}");
    let mount = format!("/var/lib/heketi/mounts/{vg}/{FOREIGN}");
    mock.plant(|s| {
        let h = s.hosts.get_mut("node1").unwrap();
        let v = h.vgs.get_mut(&vg).unwrap();
        v.pools.insert(format!("tp_{FOREIGN}"), 8192);
        v.lvs.insert(FOREIGN.into(), format!("tp_{FOREIGN}"));
        h.mounts.insert(mount.clone());
        h.fstab.insert(mount.clone());
        s.volumes.insert(
            FOREIGN.into(),
            MockVolume {
                id: "0e1f".into(),
                bricks: vec![format!("10.9.0.1:{mount}/brick")],
                started: true,
                options: [("nfs.disable".to_string(), "on".to_string())].into(),
                blocks: Default::default(),
            },
        );
    })
    .await
    .unwrap();
    let before = mock.snapshot().await.unwrap();
    let log_start = mock.command_log().await.unwrap().len();

    // A user's create, an admin's create and a clone that name it: each ends 409 (on the
    // queue: the conflict is found by a read the runner makes before changing anything).
    let mut named = replica3.clone();
    named["size"] = json!(1);
    named["name"] = json!(FOREIGN);
    let clone_path = format!("{origin}/clone");
    let clone_body = json!({ "name": FOREIGN });
    let attempts: [(&str, &hekate::client::Client, &str, &Value); 3] = [
        ("user create", &user, "/volumes", &named),
        ("admin create", &admin, "/volumes", &named),
        ("clone", &admin, &clone_path, &clone_body),
    ];
    for (what, client, path, body) in attempts {
        let err = run_async(client, Method::POST, path, Some(body))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("operation ended 409")
                && err.contains(FOREIGN)
                && err.contains("not created by Hekate"),
            "{what}: {err}"
        );
    }
    // Nothing of the refused requests stays in the state.
    let vols = c.call_ok(3, Method::GET, "/volumes", None).await.unwrap();
    assert_eq!(vols["volumes"].as_array().unwrap().len(), 1, "{vols}");

    // Reconcile reports the foreign volume and LV, and its repair leaves them alone.
    let r = c
        .call_ok(3, Method::POST, "/reconcile", Some(&json!({"repair": true})))
        .await
        .unwrap();
    let findings = r["findings"].as_array().unwrap();
    let has = |kind: &str, obj: &str| {
        findings.iter().any(|f| {
            f["kind"] == kind && f["object"].as_str().unwrap().contains(obj) && f.get("repair").is_none()
        })
    };
    assert!(has("foreign_volume", FOREIGN), "{r:#}");
    assert!(has("foreign_brick", &format!("LV {vg}/{FOREIGN}")), "{r:#}");
    assert!(has("foreign_brick", &format!("mount {mount}")), "{r:#}");
    assert!(
        findings
            .iter()
            .all(|f| f["kind"].as_str().unwrap().starts_with("foreign_")),
        "only the foreign objects are found: {r:#}"
    );
    assert!(r["repairs"].as_array().unwrap().is_empty(), "{r:#}");

    // The nodes: the foreign volume, LV, pool, mount and fstab line are as planted, and the
    // only commands that named them were reads.
    let after = mock.snapshot().await.unwrap();
    assert_eq!(after.volumes[FOREIGN], before.volumes[FOREIGN]);
    let (h0, h1) = (&before.hosts["node1"], &after.hosts["node1"]);
    assert_eq!(h1.vgs[&vg].lvs.get(FOREIGN), h0.vgs[&vg].lvs.get(FOREIGN));
    assert_eq!(h1.vgs[&vg].pools.get(&format!("tp_{FOREIGN}")), Some(&8192));
    assert!(h1.mounts.contains(&mount) && h1.fstab.contains(&mount));
    let log = mock.command_log().await.unwrap();
    let against: Vec<_> = log[log_start..]
        .iter()
        .filter(|r| r.object.contains(FOREIGN))
        .collect();
    assert!(!against.is_empty(), "the creates read the name first");
    assert!(
        against.iter().all(|r| r.verb == "volume_info"),
        "only reads named the foreign objects: {against:?}"
    );

    // Hekate's own volume is still Hekate's to delete.
    run_async(&admin, Method::DELETE, &origin, None).await.unwrap();
    assert!(mock.snapshot().await.unwrap().volumes.contains_key(FOREIGN));
}
