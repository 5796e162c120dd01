//! Block volumes on three replicas sharing mock nodes (issue 14): an automatically created
//! block-hosting volume (BHV) and its space accounting, expand, the BHV's refusal to be
//! deleted while it holds block volumes, a gluster-block failure rolled back with the BHV it
//! made, and a leader killed after gluster-block made a block volume but before the result
//! was committed: the new leader adopts it (exactly one block volume, not two, not none).

use hekate::executor::mock::{Fault, MockExecutor};
use hekate_testkit::{load_topology, run_async, wait_for, wait_queue, ClusterSpec, ProcCluster};
use reqwest::Method;
use serde_json::{json, Value};

use crate::{serial, BIN, T};

fn topology() -> Value {
    let nodes: Vec<Value> = (1..=3)
        .map(|i| {
            json!({
                "node": {"hostnames": {"manage": [format!("node{i}")], "storage": [format!("10.7.0.{i}")]}, "zone": i},
                "devices": [{"name": "/dev/vdb", "destroydata": false}]
            })
        })
        .collect();
    json!({"clusters": [{"nodes": nodes}]})
}

async fn start(glusterfs: Value) -> (tempfile::TempDir, ProcCluster, MockExecutor) {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ClusterSpec::new(BIN, 3);
    spec.glusterfs = glusterfs;
    let mut c = ProcCluster::create(dir.path(), spec).unwrap();
    c.start_all().unwrap();
    c.wait_ready(&[1, 2, 3], T).await.unwrap();
    load_topology(&c.client(2), &topology()).await.unwrap();
    let mock = c.mock_nodes().unwrap();
    (dir, c, mock)
}

fn auto_bhv() -> Value {
    json!({"auto_create_block_hosting_volume": true, "block_hosting_volume_size": 10,
           "disable_background_cleaner": true})
}

async fn get(c: &ProcCluster, path: &str) -> Value {
    get_via(c, 1, path).await
}

async fn get_via(c: &ProcCluster, id: u64, path: &str) -> Value {
    c.call_ok(id, Method::GET, path, None)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(id)))
}

/// The block volumes the (mock) nodes hold in the Gluster volume `bhv`: name -> (GiB, IQN).
async fn on_nodes(mock: &MockExecutor, bhv: &str) -> Vec<(String, u64, String)> {
    let s = mock.snapshot().await.unwrap();
    s.volumes
        .get(bhv)
        .map(|v| {
            v.blocks
                .iter()
                .map(|(n, b)| {
                    (
                        n.clone(),
                        b.size_gib,
                        format!("iqn.2016-12.org.gluster-block:{}", b.gbid),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_volumes_on_an_automatic_bhv_expand_delete_and_guard_their_bhv() {
    let _g = serial();
    let (_d, c, mock) = start(auto_bhv()).await;
    let client = c.client(2);
    let loc = run_async(&client, Method::POST, "/blockvolumes", Some(&json!({"size": 2})))
        .await
        .unwrap()
        .unwrap();
    let b1 = get(&c, &loc).await;
    assert_eq!(b1["size"], 2);
    assert!(b1["name"].as_str().unwrap().starts_with("blockvol_"));
    assert_eq!(b1["hacount"], 3, "no hacount asked: every host of the BHV");
    assert_eq!(b1["blockvolume"]["hosts"].as_array().unwrap().len(), 3);
    assert_eq!(b1["usablesize"], 2);
    let bhv_id = b1["blockhostingvolume"].as_str().unwrap().to_string();
    let bhv = get(&c, &format!("/volumes/{bhv_id}")).await;
    assert_eq!(bhv["block"], true);
    assert_eq!(bhv["size"], 10);
    assert_eq!(bhv["durability"]["replicate"]["replica"], 3);
    assert!(bhv["glustervolumeoptions"]
        .as_array()
        .unwrap()
        .contains(&json!("group gluster-block")));
    // 98 % of 10 GiB is 9, less the 2 GiB block volume.
    assert_eq!(
        bhv["blockinfo"],
        json!({"freesize": 7, "reservedsize": 1, "blockvolume": [b1["id"]]})
    );
    let bhv_name = bhv["name"].as_str().unwrap().to_string();
    let nodes = on_nodes(&mock, &bhv_name).await;
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].2, b1["blockvolume"]["iqn"].as_str().unwrap());

    // A named one with auth on two hosts lands in the same BHV.
    let req = json!({"size": 3, "name": "db-lun", "hacount": 2, "auth": true});
    let loc2 = run_async(&client, Method::POST, "/blockvolumes", Some(&req))
        .await
        .unwrap()
        .unwrap();
    let b2 = get(&c, &loc2).await;
    assert_eq!(
        (b2["name"].as_str(), b2["hacount"].as_i64()),
        (Some("db-lun"), Some(2))
    );
    assert_eq!(b2["blockvolume"]["hosts"].as_array().unwrap().len(), 2);
    assert_ne!(b2["blockvolume"]["password"], "");
    assert_eq!(
        b2["blockvolume"]["username"].as_str().unwrap(),
        b2["blockvolume"]["iqn"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
    );
    assert_eq!(b2["blockhostingvolume"], bhv_id.as_str());
    let list = get(&c, "/blockvolumes").await;
    let mut want = vec![b1["id"].clone(), b2["id"].clone()];
    want.sort_by_key(|v| v.as_str().unwrap().to_string());
    assert_eq!(list, json!({"blockvolumes": want}));
    let cl = get(&c, &format!("/clusters/{}", b1["cluster"].as_str().unwrap())).await;
    assert_eq!(cl["blockvolumes"].as_array().unwrap().len(), 2);

    // Expand: the growth comes from the BHV; refusals in Heketi's words, changing nothing.
    let r = c
        .call(
            1,
            Method::POST,
            &format!("{loc}/expand"),
            Some(&json!({"new_size": 1})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(
        r.body,
        "Failed to allocate block volume expansion: Requested new-size 1 is less than current block volume size 2, shrinking is not allowed.\n"
    );
    let r = c
        .call(
            1,
            Method::POST,
            &format!("{loc}/expand"),
            Some(&json!({"new_size": 40})),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.body.as_str()),
        (500, "Failed to allocate block volume expansion: No space\n")
    );
    let done = run_async(
        &client,
        Method::POST,
        &format!("{loc}/expand"),
        Some(&json!({"new_size": 4})),
    )
    .await
    .unwrap();
    assert_eq!(done.as_deref(), Some(loc.as_str()));
    assert_eq!(get(&c, &loc).await["size"], 4);
    assert_eq!(
        get(&c, &format!("/volumes/{bhv_id}")).await["blockinfo"]["freesize"],
        2
    );
    let sizes: Vec<u64> = on_nodes(&mock, &bhv_name).await.iter().map(|b| b.1).collect();
    assert!(sizes.contains(&4) && sizes.contains(&3), "{sizes:?}");

    // Reconcile: clean; then a block volume planted in the BHV (a create whose undo could
    // not run) is an orphan, removed by the repair, and the state's own are left alone.
    let report = c.call_ok(1, Method::GET, "/reconcile", None).await.unwrap();
    assert_eq!(report["findings"], json!([]), "{report}");
    let planted = bhv_name.clone();
    mock.plant(move |s| {
        let v = s.volumes.get_mut(&planted).unwrap();
        let mut lost = v.blocks.values().next().unwrap().clone();
        lost.gbid = "lost".into();
        v.blocks.insert("lost-lun".into(), lost);
    })
    .await
    .unwrap();
    let report = c.call_ok(1, Method::GET, "/reconcile", None).await.unwrap();
    let kinds: Vec<(&str, &str)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["kind"].as_str().unwrap(), f["object"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![("orphan_block_volume", format!("{bhv_name}/lost-lun").as_str())]
    );
    let repaired = c
        .call_ok(1, Method::POST, "/reconcile", Some(&json!({"repair": true})))
        .await
        .unwrap();
    assert_eq!(repaired["repairs"][0]["ok"], true, "{repaired}");
    assert_eq!(on_nodes(&mock, &bhv_name).await.len(), 2);

    // The BHV refuses deletion while it holds block volumes.
    let r = c
        .call(1, Method::DELETE, &format!("/volumes/{bhv_id}"), None)
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            409,
            "Cannot delete a block hosting volume containing block volumes\n"
        )
    );

    for l in [&loc, &loc2] {
        assert_eq!(run_async(&client, Method::DELETE, l, None).await.unwrap(), None);
        assert_eq!(c.call(1, Method::GET, l, None).await.unwrap().status, 404);
    }
    assert!(on_nodes(&mock, &bhv_name).await.is_empty());
    assert_eq!(get(&c, "/blockvolumes").await, json!({"blockvolumes": []}));
    let bhv = get(&c, &format!("/volumes/{bhv_id}")).await;
    assert_eq!(bhv["blockinfo"], json!({"freesize": 9, "reservedsize": 1}));
    assert_eq!(
        run_async(&client, Method::DELETE, &format!("/volumes/{bhv_id}"), None)
            .await
            .unwrap(),
        None
    );
    assert!(mock.snapshot().await.unwrap().volumes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_volume_refusals_change_nothing() {
    let _g = serial();
    let (_d, c, mock) = start(json!({"disable_background_cleaner": true})).await;
    let post = |body: Value| {
        let c = &c;
        async move {
            c.call(1, Method::POST, "/blockvolumes", Some(&body))
                .await
                .unwrap()
        }
    };
    let r = post(json!({"size": 1})).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (500, "Failed to allocate new block volume: Block Hosting Volume Creation is disabled. Create a Block hosting volume and try again.\n")
    );
    for (body, want) in [
        (json!({}), "validation failed: size: cannot be blank.\n"),
        (
            json!({"size": -1}),
            "validation failed: size: must be no less than 1.\n",
        ),
        (
            json!({"size": 1, "name": "a b"}),
            "validation failed: name: must be in a valid format.\n",
        ),
        (
            json!({"size": 1, "hacount": -2}),
            "validation failed: hacount: must be no less than 1.\n",
        ),
        (
            json!({"size": 1, "clusters": ["0123456789abcdef0123456789abcdef"]}),
            "Cluster id 0123456789abcdef0123456789abcdef not found\n",
        ),
    ] {
        let r = post(body.clone()).await;
        assert_eq!((r.status, r.body.as_str()), (400, want), "{body}");
    }
    let r = c
        .call(
            1,
            Method::GET,
            "/blockvolumes/0123456789abcdef0123456789abcdef",
            None,
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_str()), (404, "Id not found\n"));
    // A BHV made by hand takes block volumes; one too small refuses with Heketi's text.
    let bhv = run_async(&c.client(1), Method::POST, "/volumes", Some(&json!({"size": 2, "block": true, "durability": {"type": "replicate", "replicate": {"replica": 3}}})))
        .await
        .unwrap()
        .unwrap();
    let r = post(json!({"size": 5})).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (500, "Failed to allocate new block volume: Block Hosting Volume Creation is disabled. Create a Block hosting volume and try again.\n")
    );
    let loc = run_async(
        &c.client(1),
        Method::POST,
        "/blockvolumes",
        Some(&json!({"size": 1})),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        get(&c, &loc).await["blockhostingvolume"].as_str(),
        bhv.strip_prefix("/volumes/")
    );
    // Locked, it takes no more.
    let r = c
        .call(
            1,
            Method::POST,
            &format!("{bhv}/block-restriction"),
            Some(&json!({"restriction": "locked"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    wait_queue(&c.client(1), &r.location(), T).await.unwrap();
    let r = post(json!({"size": 1})).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(
        get(&c, "/blockvolumes").await["blockvolumes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let _ = mock;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_gluster_block_create_rolls_back_the_bhv_it_made() {
    let _g = serial();
    let (_d, c, mock) = start(auto_bhv()).await;
    mock.add_fault(Fault {
        verb: "block_create".into(),
        message: "{\"RESULT\":\"FAIL\",\"errCode\":255,\"errMsg\":\"target create failed\"}".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let r = c
        .call(1, Method::POST, "/blockvolumes", Some(&json!({"size": 1})))
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let done = wait_queue(&c.client(1), &r.location(), T).await.unwrap();
    assert_eq!(done.status, 500);
    assert!(done.body.contains("target create failed"), "{}", done.body);
    // Nothing left: no block volume, no BHV, nothing on the nodes.
    assert_eq!(get(&c, "/blockvolumes").await, json!({"blockvolumes": []}));
    assert_eq!(get(&c, "/volumes").await, json!({"volumes": []}));
    let s = mock.snapshot().await.unwrap();
    assert!(s.volumes.is_empty(), "{:?}", s.volumes.keys());
    for h in s.hosts.values() {
        assert!(
            h.vgs.values().all(|vg| vg.lvs.is_empty() && vg.pools.is_empty()),
            "bricks left"
        );
    }
    let topo = get(&c, "/topology").await;
    for n in topo["clusters"][0]["nodes"].as_array().unwrap() {
        for d in n["devices"].as_array().unwrap() {
            assert_eq!(d["storage"]["used"], 0, "space not given back");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_after_gluster_block_made_it_ends_in_exactly_one_block_volume() {
    let _g = serial();
    let mut g = auto_bhv();
    g["operation_retry_limits"] = json!({"volume_create": 20});
    let (_d, mut c, mock) = start(g).await;
    // gluster-block makes the block volume but its answer is lost, and every later `info`
    // fails: the leader keeps retrying, with the block volume on the nodes and nothing
    // committed, until it is killed.
    for f in [
        Fault {
            verb: "block_create".into(),
            times: 1,
            after: true,
            ..Default::default()
        },
        Fault {
            verb: "block_info".into(),
            skip: 1,
            ..Default::default()
        },
    ] {
        mock.add_fault(f).await.unwrap();
    }
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    let via = c.ids().into_iter().find(|i| *i != leader).unwrap();
    let r = c
        .call(via, Method::POST, "/blockvolumes", Some(&json!({"size": 2})))
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    wait_for(T, "gluster-block create ran", || async {
        let log = mock.command_log().await.unwrap();
        log.iter()
            .any(|l| l.verb == "block_create" && !l.refused)
            .then_some(())
    })
    .await
    .unwrap();
    c.kill(leader).unwrap();
    mock.clear_faults().await.unwrap();
    let done = wait_queue(&c.client(via), &r.location(), T).await.unwrap();
    assert_eq!(done.status, 303, "{}", done.body);
    let b = get_via(&c, via, &done.location()).await;
    let list = get_via(&c, via, "/blockvolumes").await;
    assert_eq!(list["blockvolumes"].as_array().unwrap().len(), 1);
    let bhv = get_via(
        &c,
        via,
        &format!("/volumes/{}", b["blockhostingvolume"].as_str().unwrap()),
    )
    .await;
    let nodes = on_nodes(&mock, bhv["name"].as_str().unwrap()).await;
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(
        nodes[0].2,
        b["blockvolume"]["iqn"].as_str().unwrap(),
        "adopted, not made again"
    );
    let creates = mock
        .command_log()
        .await
        .unwrap()
        .iter()
        .filter(|l| l.verb == "block_create" && !l.refused)
        .count();
    assert_eq!(creates, 1);
}
