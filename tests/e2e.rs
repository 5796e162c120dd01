//! End to end against real gluster nodes: three `hekate serve` processes with the SSH
//! executor, driving the testbed of `tests/testbed/testbed.sh` (network namespaces each
//! with its own sshd, glusterd 10.x, loop disks, real lvm2 metadata, XFS and mounts; thin
//! LVs emulated by `lvm-shim`). Every effect is checked on the nodes themselves, not only
//! through the API: the gluster volume, the brick LVs, fstab, mounts, the data written
//! through a FUSE mount on every brick, and that nothing is left after the deletes.
//!
//! The testbed is brought up by `deploy/test.sh` (`.ci/run`), which sets
//! `HEKATE_REQUIRE_TESTBED=1`: then a missing testbed fails the run. Run by hand without
//! the testbed, these tests say so and pass without checking anything.

#![allow(clippy::await_holding_lock)]

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use hekate_testkit::{run_async, wait_for, ClusterSpec, NodeLogs, ProcCluster, TestbedEnv};
use reqwest::Method;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_hekate");
static SERIAL: Mutex<()> = Mutex::new(());

struct Testbed {
    env: TestbedEnv,
    script: String,
    glusterfs: serde_json::Value,
    nodes: Vec<(String, String, Vec<String>)>, // name, ip, disks
}

impl Testbed {
    /// The running testbed; None (test skipped) unless required.
    fn find() -> Option<Testbed> {
        let env = match TestbedEnv::read() {
            Ok(e) => e,
            Err(e) => {
                if std::env::var("HEKATE_REQUIRE_TESTBED").as_deref() == Ok("1") {
                    panic!("HEKATE_REQUIRE_TESTBED=1 but {e:#}");
                }
                eprintln!("{e:#}: these tests check nothing");
                return None;
            }
        };
        Some(Testbed {
            script: concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testbed/testbed.sh").to_string(),
            glusterfs: env.glusterfs_config(),
            nodes: env.nodes.clone(),
            env,
        })
    }

    /// Runs `cmd` inside node `i` (0-based); stdout, and panics with stderr on failure
    /// unless `ok_fail`.
    fn exec(&self, i: usize, cmd: &str) -> (bool, String) {
        let out = Command::new("bash")
            .args([&self.script, "exec", &self.nodes[i].0, "bash", "-c", cmd])
            .output()
            .expect("run testbed.sh exec");
        let mut s = String::from_utf8_lossy(&out.stdout).to_string();
        s.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), s)
    }

    fn must(&self, i: usize, cmd: &str) -> String {
        let (ok, s) = self.exec(i, cmd);
        assert!(ok, "on {}: `{cmd}` failed: {s}", self.nodes[i].0);
        s
    }

    /// Starts three Hekate replicas whose executor logs in to the nodes as root.
    async fn hekate(&self, dir: &std::path::Path) -> ProcCluster {
        self.hekate_with(dir, json!({})).await
    }

    /// [`Testbed::hekate`] with `extra` keys in the `glusterfs` section.
    async fn hekate_with(&self, dir: &std::path::Path, extra: serde_json::Value) -> ProcCluster {
        let mut spec = ClusterSpec::new(BIN, 3);
        spec.shared_mock = false;
        spec.glusterfs = self.glusterfs.clone();
        for (k, v) in extra.as_object().into_iter().flatten() {
            spec.glusterfs[k] = v.clone();
        }
        let mut c = ProcCluster::create(dir, spec).unwrap();
        c.start_all().unwrap();
        c.wait_ready(&c.ids(), Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(1)));
        c
    }

    /// Waits until every node's glusterd sees every peer connected. A node booted again
    /// answers the health check as soon as its glusterd runs, but the other peers reconnect
    /// to it a moment later, and until then Gluster refuses a volume with a brick there
    /// ("Host ... not connected").
    async fn wait_pool_connected(&self) {
        let n = self.nodes.len();
        wait_for(
            Duration::from_secs(60),
            "every gluster peer connected",
            || async {
                (0..n)
                    .all(|i| {
                        let (ok, pool) = self.exec(i, "gluster --mode=script pool list");
                        ok && pool.matches("Connected").count() == n
                    })
                    .then_some(())
            },
        )
        .await
        .unwrap();
    }

    /// Nothing of Hekate's left on any node.
    fn assert_clean(&self) {
        for i in 0..self.nodes.len() {
            assert_eq!(
                self.leftovers(i),
                "lvs=[] fstab=0 mounts=0",
                "{}",
                self.nodes[i].0
            );
        }
    }

    /// Everything Hekate may have left on node `i`: brick LVs, pools, fstab lines, mounts.
    fn leftovers(&self, i: usize) -> String {
        let (_, lvs) = self.exec(i, "lvm lvs --noheadings -o lv_name 2>/dev/null");
        let (_, fstab) = self.exec(i, "grep -c heketi /etc/fstab || true");
        let (_, mounts) = self.exec(i, "grep -c /var/lib/heketi/mounts /proc/mounts || true");
        format!(
            "lvs=[{}] fstab={} mounts={}",
            lvs.split_whitespace().collect::<Vec<_>>().join(","),
            fstab.trim(),
            mounts.trim()
        )
    }
}

/// Reconcile, run by the leader over SSH against the real nodes, finds nothing.
async fn assert_reconciled(c: &ProcCluster, what: &str) {
    let r = wait_for(Duration::from_secs(30), "a reconcile report", || async {
        c.call_ok(1, Method::GET, "/reconcile", None).await.ok()
    })
    .await
    .unwrap();
    assert_eq!(r["nodes_examined"], 3, "{what}: {r}");
    assert_eq!(r["findings"], json!([]), "{what}: reconcile found {r:#}");
}

/// Cluster, 3 nodes (peer probe over SSH), one real device each (pvcreate/vgcreate).
async fn topology(tb: &Testbed, c: &ProcCluster) -> (String, Vec<String>, Vec<String>) {
    let api = c.client(1);
    let cid = hekate_testkit::create_cluster(&api).await.unwrap();
    let (mut nodes, mut devices) = (Vec::new(), Vec::new());
    for (i, (_, ip, disks)) in tb.nodes.iter().enumerate() {
        let body = json!({"cluster": cid, "zone": i + 1,
                          "hostnames": {"manage": [ip], "storage": [ip]}});
        let loc = run_async(&api, Method::POST, "/nodes", Some(&body))
            .await
            .unwrap_or_else(|e| panic!("node add {ip}: {e}\n{}", c.log_tail(1)))
            .unwrap();
        let nid = loc.trim_start_matches("/nodes/").to_string();
        // Device add answers 204 (as Heketi): the id is read from the node.
        let body = json!({"node": nid, "name": disks[0]});
        run_async(&api, Method::POST, "/devices", Some(&body))
            .await
            .unwrap_or_else(|e| panic!("device add {}: {e}\n{}", disks[0], c.log_tail(1)));
        let node = c.call_ok(1, Method::GET, &loc, None).await.unwrap();
        devices.push(node["devices"][0]["id"].as_str().unwrap().to_string());
        nodes.push(nid);
    }
    (cid, nodes, devices)
}

async fn teardown(tb: &Testbed, c: &ProcCluster, cid: &str, nodes: &[String], devs: &[String]) {
    teardown_with(tb, &c.client(2), cid, nodes, devs).await;
}

/// Deletes the cluster the Heketi way through `api`, and checks no PV or peer is left.
async fn teardown_with(
    tb: &Testbed,
    api: &hekate::client::Client,
    cid: &str,
    nodes: &[String],
    devs: &[String],
) {
    // Heketi's order: offline, failed (evacuates; nothing to move here), delete.
    for d in devs {
        for state in ["offline", "failed"] {
            let p = format!("/devices/{d}/state");
            let r = api
                .call(Method::POST, &p, Some(&json!({"state": state})))
                .await
                .unwrap();
            if r.status == 202 {
                let loc = r.headers["location"].to_str().unwrap().to_string();
                let done = hekate_testkit::wait_queue(api, &loc, Duration::from_secs(60))
                    .await
                    .unwrap();
                assert!(done.status < 300, "{p} {state}: {}", done.body);
            } else {
                assert!(r.status < 300, "{p} {state}: {} {}", r.status, r.body);
            }
        }
        run_async(api, Method::DELETE, &format!("/devices/{d}"), None)
            .await
            .unwrap_or_else(|e| panic!("device delete: {e}"));
    }
    for n in nodes {
        let p = format!("/nodes/{n}/state");
        let _ = api
            .call(Method::POST, &p, Some(&json!({"state": "offline"})))
            .await;
        run_async(api, Method::DELETE, &format!("/nodes/{n}"), None)
            .await
            .unwrap_or_else(|e| panic!("node delete: {e}"));
    }
    let r = api
        .call(Method::DELETE, &format!("/clusters/{cid}"), None)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "cluster delete: {}", r.body);
    for i in 0..tb.nodes.len() {
        let (_, pvs) = tb.exec(i, "lvm pvs --noheadings -o pv_name,vg_name");
        assert!(pvs.trim().is_empty(), "{}: PVs left: {pvs}", tb.nodes[i].0);
    }
    let (_, peers) = tb.exec(0, "gluster --mode=script pool list");
    assert_eq!(peers.lines().count(), 2, "peers left: {peers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica3_volume_lifecycle_on_real_nodes() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(tb) = Testbed::find() else { return };
    let dir = tempfile::tempdir().unwrap();
    let c = tb.hekate(dir.path()).await;
    let (cid, nodes, devs) = topology(&tb, &c).await;

    // The trusted pool is real: every peer connected.
    let pool = tb.must(0, "gluster --mode=script pool list");
    assert_eq!(pool.matches("Connected").count(), 3, "{pool}");
    // The device is a real PV in a real VG of Heketi's name.
    let vgs = tb.must(1, "lvm vgs --noheadings -o vg_name");
    assert!(vgs.contains(&format!("vg_{}", devs[1])), "{vgs}");

    // Create through a follower; the leader's runner does the SSH steps.
    let api = c.client(3);
    let body = json!({"size": 1, "durability": {"type": "replicate", "replicate": {"replica": 3}}});
    let loc = run_async(&api, Method::POST, "/volumes", Some(&body))
        .await
        .unwrap_or_else(|e| panic!("volume create: {e}\n{}", c.log_tail(1)))
        .unwrap();
    let vol = c.call_ok(2, Method::GET, &loc, None).await.unwrap();
    let name = vol["name"].as_str().unwrap().to_string();
    let vid = vol["id"].as_str().unwrap().to_string();

    // Gluster has it, started, 1 x 3 on the bricks Hekate reports.
    let info = tb.must(0, &format!("gluster --mode=script volume info {name}"));
    assert!(info.contains("Status: Started"), "{info}");
    assert!(info.contains("Number of Bricks: 1 x 3 = 3"), "{info}");
    for b in vol["bricks"].as_array().unwrap() {
        let path = b["path"].as_str().unwrap();
        assert!(info.contains(path), "brick {path} not in\n{info}");
    }
    for i in 0..3 {
        let lv = tb.leftovers(i);
        assert!(
            lv.contains("brick_") && lv.contains("fstab=1") && lv.contains("mounts=1"),
            "{lv}"
        );
    }

    // Data written through a FUSE mount lands on all three bricks.
    let mnt = dir.path().join("fuse");
    std::fs::create_dir_all(&mnt).unwrap();
    let src = format!("{}:/{name}", tb.nodes[0].1);
    let st = Command::new("mount")
        .args(["-t", "glusterfs", &src, mnt.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success(), "mount -t glusterfs {src}");
    let data: Vec<u8> = (0..4 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
    let wrote = std::fs::write(mnt.join("probe.bin"), &data);
    let _ = Command::new("umount").arg(&mnt).status();
    wrote.unwrap();
    let local = dir.path().join("probe.bin");
    std::fs::write(&local, &data).unwrap();
    let out = Command::new("md5sum").arg(&local).output().unwrap();
    let want = String::from_utf8_lossy(&out.stdout)[..32].to_string();
    for b in vol["bricks"].as_array().unwrap() {
        let node = nodes
            .iter()
            .position(|n| Some(n.as_str()) == b["node"].as_str())
            .unwrap();
        let sum = tb.must(node, &format!("md5sum {}/probe.bin", b["path"].as_str().unwrap()));
        assert!(sum.starts_with(&want), "brick on {node}: {sum} != {want}");
    }

    // Expand: a second replica set, gluster reports 2 x 3.
    let loc = run_async(
        &api,
        Method::POST,
        &format!("/volumes/{vid}/expand"),
        Some(&json!({"expand_size": 1})),
    )
    .await
    .unwrap_or_else(|e| panic!("expand: {e}\n{}", c.log_tail(1)));
    assert!(loc.is_some());
    let info = tb.must(1, &format!("gluster --mode=script volume info {name}"));
    assert!(info.contains("Number of Bricks: 2 x 3 = 6"), "{info}");
    assert_reconciled(&c, "after expand").await;

    // Delete: the volume, its LVs, fstab lines and mounts are gone from every node.
    run_async(&api, Method::DELETE, &format!("/volumes/{vid}"), None)
        .await
        .unwrap_or_else(|e| panic!("delete: {e}\n{}", c.log_tail(1)));
    let (ok, out) = tb.exec(2, &format!("gluster --mode=script volume info {name}"));
    assert!(!ok, "volume still exists: {out}");
    tb.assert_clean();
    assert_reconciled(&c, "after delete").await;
    teardown(&tb, &c, &cid, &nodes, &devs).await;
}

/// Block volumes through the API on real nodes (gluster-block is the testbed's shim, its
/// state in the block-hosting volume through FUSE; tests/testbed/gluster-block): the first
/// create makes a small block-hosting volume (auto-create on, 4 GiB), a block volume with
/// auth and one without, gluster-block on a node reports what the API says (GBID, size
/// after an expand), reconcile (gluster-block list) finds nothing amiss, the deletes leave
/// the BHV empty, and the BHV goes like any volume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_volume_lifecycle_on_real_nodes() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(tb) = Testbed::find() else { return };
    let dir = tempfile::tempdir().unwrap();
    let auto_bhv = json!({"auto_create_block_hosting_volume": true, "block_hosting_volume_size": 4});
    let c = tb.hekate_with(dir.path(), auto_bhv).await;
    let (cid, nodes, devs) = topology(&tb, &c).await;
    let api = c.client(2);

    let body = json!({"size": 1, "hacount": 3, "auth": true});
    let loc = run_async(&api, Method::POST, "/blockvolumes", Some(&body))
        .await
        .unwrap_or_else(|e| panic!("block volume create: {e}\n{}", c.log_tail(1)))
        .unwrap();
    let b1 = c.call_ok(1, Method::GET, &loc, None).await.unwrap();
    let exp = &b1["blockvolume"];
    let iqn = exp["iqn"].as_str().unwrap();
    let gbid1 = iqn
        .strip_prefix("iqn.2016-12.org.gluster-block:")
        .unwrap_or_else(|| panic!("{b1}"));
    assert_eq!(exp["username"], gbid1, "{b1}");
    assert_eq!(exp["password"].as_str().unwrap().len(), 36, "{b1}");
    assert_eq!(exp["hosts"].as_array().unwrap().len(), 3, "{b1}");
    let bhv_id = b1["blockhostingvolume"].as_str().unwrap().to_string();
    let bhv = c
        .call_ok(1, Method::GET, &format!("/volumes/{bhv_id}"), None)
        .await
        .unwrap();
    let bhv_name = bhv["name"].as_str().unwrap().to_string();
    assert_eq!(bhv["block"], true, "{bhv}");
    let info = tb.must(0, &format!("gluster --mode=script volume info {bhv_name}"));
    assert!(info.contains("features.shard: on"), "group gluster-block: {info}");
    let b1_name = b1["name"].as_str().unwrap().to_string();
    // The BHV refuses deletion while it holds a block volume.
    let r = api
        .call(Method::DELETE, &format!("/volumes/{bhv_id}"), None)
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            409,
            "Cannot delete a block hosting volume containing block volumes\n"
        )
    );
    let gb = tb.must(2, &format!("gluster-block info {bhv_name}/{b1_name} --json"));
    assert!(
        gb.contains(&format!("\"GBID\": \"{gbid1}\"")) && gb.contains("\"SIZE\": \"1.0 GiB\""),
        "{gb}"
    );

    // A second one in the same BHV, without auth; then grown to 2 GiB.
    let loc = run_async(&api, Method::POST, "/blockvolumes", Some(&json!({"size": 1})))
        .await
        .unwrap_or_else(|e| panic!("block volume create: {e}\n{}", c.log_tail(1)))
        .unwrap();
    let b2 = c.call_ok(1, Method::GET, &loc, None).await.unwrap();
    assert_eq!(b2["blockhostingvolume"], bhv_id.as_str(), "{b2}");
    assert!(b2["blockvolume"].get("password").is_none_or(|p| p == ""), "{b2}");
    let b2_id = b2["id"].as_str().unwrap().to_string();
    let b2_name = b2["name"].as_str().unwrap().to_string();
    run_async(
        &api,
        Method::POST,
        &format!("/blockvolumes/{b2_id}/expand"),
        Some(&json!({"new_size": 2})),
    )
    .await
    .unwrap_or_else(|e| panic!("block volume expand: {e}\n{}", c.log_tail(1)));
    let b2 = c.call_ok(3, Method::GET, &loc, None).await.unwrap();
    assert_eq!(b2["size"], 2, "{b2}");
    let gb = tb.must(1, &format!("gluster-block info {bhv_name}/{b2_name} --json"));
    assert!(gb.contains("\"SIZE\": \"2.0 GiB\""), "{gb}");
    let list = tb.must(0, &format!("gluster-block list {bhv_name} --json"));
    assert!(list.contains(&b1_name) && list.contains(&b2_name), "{list}");
    // The backing files, as a client of the BHV sees them through a FUSE mount: 1 GiB
    // (preallocated) and 2 GiB.
    let gbid2 = b2["blockvolume"]["iqn"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let sizes = tb.must(
        1,
        &format!(
            "d=$(mktemp -d) && mount -t glusterfs localhost:/{bhv_name} $d && \
             stat -c '%n %s' $d/block-store/{gbid1} $d/block-store/{gbid2}; s=$?; umount $d; rmdir $d; exit $s"
        ),
    );
    let gib = 1u64 << 30;
    assert!(
        sizes.contains(&format!("{gbid1} {gib}")) && sizes.contains(&format!("{gbid2} {}", 2 * gib)),
        "{sizes}"
    );
    // Reconcile lists every BHV's block volumes with gluster-block: nothing to report.
    assert_reconciled(&c, "with two block volumes").await;

    for id in [b1["id"].as_str().unwrap(), &b2_id] {
        run_async(&api, Method::DELETE, &format!("/blockvolumes/{id}"), None)
            .await
            .unwrap_or_else(|e| panic!("block volume delete: {e}\n{}", c.log_tail(1)));
    }
    let list = tb.must(0, &format!("gluster-block list {bhv_name} --json"));
    assert!(list.contains("\"blocks\": [ ]"), "{list}");
    run_async(&api, Method::DELETE, &format!("/volumes/{bhv_id}"), None)
        .await
        .unwrap_or_else(|e| panic!("BHV delete: {e}\n{}", c.log_tail(1)));
    tb.assert_clean();
    teardown(&tb, &c, &cid, &nodes, &devs).await;
}

/// A leader killed in the middle of a block volume create, on real nodes: once while the
/// block-hosting volume made for it is being built, once while `gluster-block create` runs.
/// Each ends in exactly one block volume (on the nodes and in the API) or none, and nothing
/// is left on the nodes after the deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_mid_block_volume_create_ends_in_one_or_none() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(tb) = Testbed::find() else { return };
    let dir = tempfile::tempdir().unwrap();
    let auto_bhv = json!({"auto_create_block_hosting_volume": true, "block_hosting_volume_size": 4});
    let mut c = tb.hekate_with(dir.path(), auto_bhv).await;
    let (cid, nodes, devs) = topology(&tb, &c).await;
    let mut outcomes = Vec::new();
    for (round, moment) in ["a brick of the new BHV", "gluster-block create"]
        .into_iter()
        .enumerate()
    {
        let name = format!("killed{round}");
        let leader = c.wait_leader(&c.ids(), Duration::from_secs(30)).await.unwrap();
        let other = c.ids().into_iter().find(|i| *i != leader).unwrap();
        let api = c.client(other);
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let r = api
            .call(
                Method::POST,
                "/blockvolumes",
                Some(&json!({"size": 1, "name": name})),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 202, "{}", r.body);
        let loc = r.headers["location"].to_str().unwrap().to_string();
        wait_for(Duration::from_secs(90), moment, || async {
            let seen = if round == 0 {
                (0..3).any(|i| tb.leftovers(i).contains("brick_"))
            } else {
                tb.nodes.iter().any(|n| {
                    tb.env
                        .command_log(&n.0)
                        .iter()
                        .any(|r| r.0 >= since && r.2.contains("gluster-block create") && r.2.contains(&name))
                })
            };
            seen.then_some(())
        })
        .await
        .unwrap();
        c.kill(leader).unwrap();
        let done = hekate_testkit::wait_queue(&api, &loc, Duration::from_secs(180))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(other)));
        outcomes.push(format!("{moment}: {}", done.status));
        let listed = c
            .call_ok(other, Method::GET, "/blockvolumes", None)
            .await
            .unwrap();
        let mut on_nodes = 0;
        for v in c.call_ok(other, Method::GET, "/volumes", None).await.unwrap()["volumes"]
            .as_array()
            .unwrap()
        {
            let vol = c
                .call_ok(
                    other,
                    Method::GET,
                    &format!("/volumes/{}", v.as_str().unwrap()),
                    None,
                )
                .await
                .unwrap();
            let list = tb.must(
                0,
                &format!("gluster-block list {} --json", vol["name"].as_str().unwrap()),
            );
            on_nodes += list.matches(&format!("\"{name}\"")).count();
        }
        if done.status == 303 {
            assert_eq!(on_nodes, 1, "{moment}: one block volume on the nodes");
            let b = c
                .call_ok(other, Method::GET, &done.location(), None)
                .await
                .unwrap();
            assert_eq!(b["name"], name.as_str());
            assert!(
                listed["blockvolumes"].as_array().unwrap().contains(&b["id"]),
                "{listed}"
            );
        } else {
            assert_eq!(
                on_nodes, 0,
                "{moment}: rolled back ({}) but on the nodes",
                done.body
            );
            for id in listed["blockvolumes"].as_array().unwrap() {
                let b = c
                    .call_ok(
                        other,
                        Method::GET,
                        &format!("/blockvolumes/{}", id.as_str().unwrap()),
                        None,
                    )
                    .await
                    .unwrap();
                assert_ne!(b["name"], name.as_str(), "rolled back but listed");
            }
        }
        c.start(leader).unwrap();
        c.wait_ready(&[leader], Duration::from_secs(30)).await.unwrap();
    }
    eprintln!("block volume creates with a leader kill: {outcomes:?}");
    assert_reconciled(&c, "after the kills").await;
    // Deletes: every block volume, then every block-hosting volume; nothing left.
    let api = c.client(1);
    for id in c.call_ok(1, Method::GET, "/blockvolumes", None).await.unwrap()["blockvolumes"]
        .as_array()
        .unwrap()
    {
        run_async(
            &api,
            Method::DELETE,
            &format!("/blockvolumes/{}", id.as_str().unwrap()),
            None,
        )
        .await
        .unwrap();
    }
    for id in c.call_ok(1, Method::GET, "/volumes", None).await.unwrap()["volumes"]
        .as_array()
        .unwrap()
    {
        run_async(
            &api,
            Method::DELETE,
            &format!("/volumes/{}", id.as_str().unwrap()),
            None,
        )
        .await
        .unwrap();
    }
    tb.assert_clean();
    teardown(&tb, &c, &cid, &nodes, &devs).await;
}

/// Bad input that only the node can judge (a device that is not there) is refused with
/// the node's own message and changes nothing, on the nodes or in the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_device_is_refused_with_the_nodes_message() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(tb) = Testbed::find() else { return };
    let dir = tempfile::tempdir().unwrap();
    let c = tb.hekate(dir.path()).await;
    let api = c.client(1);
    let cid = hekate_testkit::create_cluster(&api).await.unwrap();
    let ip = &tb.nodes[0].1;
    let body = json!({"cluster": cid, "zone": 1, "hostnames": {"manage": [ip], "storage": [ip]}});
    let nid = run_async(&api, Method::POST, "/nodes", Some(&body))
        .await
        .unwrap()
        .unwrap()
        .trim_start_matches("/nodes/")
        .to_string();
    let err = run_async(
        &api,
        Method::POST,
        "/devices",
        Some(&json!({"node": nid, "name": "/dev/hekate-no-such-disk"})),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("/dev/hekate-no-such-disk"), "{err}");
    let node = c
        .call_ok(2, Method::GET, &format!("/nodes/{nid}"), None)
        .await
        .unwrap();
    assert_eq!(node["devices"], json!([]), "{node}");
    let (_, pvs) = tb.exec(0, "lvm pvs --noheadings");
    assert!(pvs.trim().is_empty(), "{pvs}");

    // An unreachable node (wrong address on the testbed bridge) is a clear error too.
    let body = json!({"cluster": cid, "zone": 2,
                      "hostnames": {"manage": ["10.78.0.250"], "storage": ["10.78.0.250"]}});
    let r = api.call(Method::POST, "/nodes", Some(&body)).await.unwrap();
    let outcome = if r.status == 202 {
        let loc = r.headers["location"].to_str().unwrap().to_string();
        hekate_testkit::wait_queue(&api, &loc, Duration::from_secs(90))
            .await
            .unwrap()
    } else {
        r
    };
    assert!(outcome.status >= 400, "{} {}", outcome.status, outcome.body);
    // Heketi's contract: the executor's error (gluster's own words) in a 500.
    assert_eq!(outcome.status, 500, "{}", outcome.body);
    assert!(outcome.body.contains("peer probe"), "{}", outcome.body);
    let nodes = wait_for(Duration::from_secs(10), "node list", || async {
        let cl = c
            .call_ok(3, Method::GET, &format!("/clusters/{cid}"), None)
            .await
            .ok()?;
        Some(cl["nodes"].as_array()?.len())
    })
    .await
    .unwrap();
    assert_eq!(nodes, 1);
    run_async(&api, Method::DELETE, &format!("/nodes/{nid}"), None)
        .await
        .unwrap_or_else(|e| panic!("node delete: {e}"));
}

/// The leader dies in the middle of real volume creates and deletes, again and again
/// (`HEKATE_E2E_KILLS`, default 10 kills: one mid-create and one mid-delete per round). After
/// every operation gluster, LVM, fstab and the API agree; after every delete nothing is left
/// on any node; a killed leader restarts with its old vote and, fenced, does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_mid_create_and_delete_leaves_nothing_half_done() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(tb) = Testbed::find() else { return };
    let kills: usize = std::env::var("HEKATE_E2E_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut c = tb.hekate(dir.path()).await;
    let (cid, nodes, devs) = topology(&tb, &c).await;
    let mut outcomes = Vec::new();
    for round in 0..kills.div_ceil(2) {
        let name = format!("drill{round}");
        // Create; kill the leader once the first brick LV exists on a node.
        let leader = c.wait_leader(&c.ids(), Duration::from_secs(30)).await.unwrap();
        let other = c.ids().into_iter().find(|i| *i != leader).unwrap();
        let api = c.client(other);
        let body = json!({"size": 1, "name": name,
                          "durability": {"type": "replicate", "replicate": {"replica": 3}}});
        let r = api.call(Method::POST, "/volumes", Some(&body)).await.unwrap();
        assert_eq!(r.status, 202, "{}", r.body);
        let loc = r.headers["location"].to_str().unwrap().to_string();
        wait_for(Duration::from_secs(60), "a brick LV on some node", || async {
            (0..3).any(|i| tb.leftovers(i).contains("brick_")).then_some(())
        })
        .await
        .unwrap();
        c.kill(leader).unwrap();
        let done = hekate_testkit::wait_queue(&api, &loc, Duration::from_secs(180))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(other)));
        outcomes.push(format!("create:{}", done.status));
        let (exists, info) = tb.exec(0, &format!("gluster --mode=script volume info {name}"));
        let vols = c.call_ok(other, Method::GET, "/volumes", None).await.unwrap();
        let listed = vols["volumes"].as_array().unwrap().len();
        c.start(leader).unwrap();
        c.wait_ready(&[leader], Duration::from_secs(30)).await.unwrap();
        if done.status != 303 {
            assert!(!exists, "rolled back but gluster has it: {info}");
            assert_eq!(listed, 0, "{vols}");
            tb.assert_clean();
            continue;
        }
        assert!(exists && info.contains("Status: Started"), "{info}");
        assert_eq!(listed, 1);
        for i in 0..3 {
            let l = tb.leftovers(i);
            assert!(l.contains("fstab=1") && l.contains("mounts=1"), "{l}");
        }
        // Delete; kill the leader as soon as the request is accepted.
        let vloc = done.headers["location"].to_str().unwrap().to_string();
        let leader = c.wait_leader(&c.ids(), Duration::from_secs(30)).await.unwrap();
        let other = c.ids().into_iter().find(|i| *i != leader).unwrap();
        let api = c.client(other);
        let r = api.call(Method::DELETE, &vloc, None).await.unwrap();
        assert_eq!(r.status, 202, "{}", r.body);
        let qloc = r.headers["location"].to_str().unwrap().to_string();
        c.kill(leader).unwrap();
        let done = hekate_testkit::wait_queue(&api, &qloc, Duration::from_secs(180))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(other)));
        outcomes.push(format!("delete:{}", done.status));
        assert_eq!(done.status, 204, "delete after failover: {}", done.body);
        let (exists, info) = tb.exec(1, &format!("gluster --mode=script volume info {name}"));
        assert!(!exists, "deleted but gluster has it: {info}");
        tb.assert_clean();
        // The killed replica comes back (believing its old vote) and must not act.
        c.start(leader).unwrap();
        c.wait_ready(&[leader], Duration::from_secs(30)).await.unwrap();
        tb.assert_clean();
        assert_reconciled(&c, &format!("round {round}")).await;
    }
    // The nodes' own record (sshd ForceCommand, stamped with the term Hekate sent): no
    // command of an old term started after a newer term's first.
    let records: Vec<(u128, u64, String)> = tb
        .nodes
        .iter()
        .flat_map(|n| tb.env.command_log(&n.0))
        .filter(|r| r.0 >= started)
        .collect();
    let order = hekate_testkit::term_order(&records);
    eprintln!(
        "node-side record: {} commands in {} terms; handover gaps (ms) {:?}",
        order.commands, order.terms, order.handover_gaps_ms
    );
    assert!(order.commands > 0 && order.terms > kills / 2, "{order:?}");
    assert!(order.violations.is_empty(), "{:#?}", order.violations);
    eprintln!(
        "drill on real nodes: {} leader kills; outcomes {outcomes:?}",
        outcomes.len()
    );
    let vols = c.call_ok(1, Method::GET, "/volumes", None).await.unwrap();
    assert_eq!(vols["volumes"], json!([]), "{vols}");
    teardown(&tb, &c, &cid, &nodes, &devs).await;
}

/// Arbiter and disperse volumes; a device holding a brick of a FUSE-mounted volume is
/// evacuated and the volume keeps serving its data and heals; a node powered off in the
/// middle of a create makes the operation fail, naming the node, and roll back on the
/// others; once the node is back, reconcile finds what the create left there and repairs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbiter_disperse_evacuation_and_a_node_lost_mid_create() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(tb) = Testbed::find() else { return };
    let dir = tempfile::tempdir().unwrap();
    let c = tb.hekate(dir.path()).await;
    let (cid, nodes, mut devs) = topology(&tb, &c).await;
    let api = c.client(2);
    for (i, nid) in nodes.iter().enumerate() {
        let body = json!({"node": nid, "name": tb.nodes[i].2[1]});
        run_async(&api, Method::POST, "/devices", Some(&body))
            .await
            .unwrap_or_else(|e| panic!("second device: {e}"));
        let node = c
            .call_ok(1, Method::GET, &format!("/nodes/{nid}"), None)
            .await
            .unwrap();
        for d in node["devices"].as_array().unwrap() {
            let id = d["id"].as_str().unwrap().to_string();
            if !devs.contains(&id) {
                devs.push(id);
            }
        }
    }
    let create = |body: serde_json::Value| {
        let api = api.clone();
        async move {
            let loc = run_async(&api, Method::POST, "/volumes", Some(&body))
                .await
                .unwrap_or_else(|e| panic!("create {body}: {e}"))
                .unwrap();
            loc.trim_start_matches("/volumes/").to_string()
        }
    };
    let info = |name: &str| tb.must(0, &format!("gluster --mode=script volume info {name}"));

    // Arbiter: replica 3 arbiter 1; disperse 2 + 1.
    let arb = create(json!({"size": 1, "name": "arb",
        "durability": {"type": "replicate", "replicate": {"replica": 3}},
        "glustervolumeoptions": ["user.heketi.arbiter true"]}))
    .await;
    let i = info("arb");
    assert!(i.contains("Number of Bricks: 1 x (2 + 1) = 3"), "{i}");
    let disp = create(json!({"size": 2, "name": "disp",
        "durability": {"type": "disperse", "disperse": {"data": 2, "redundancy": 1}}}))
    .await;
    let i = info("disp");
    assert!(
        i.contains("Type: Disperse") && i.contains("1 x (2 + 1) = 3"),
        "{i}"
    );
    assert_reconciled(&c, "arbiter and disperse").await;

    // Evacuation under a mounted volume.
    let evac = create(json!({"size": 1, "name": "evac",
        "durability": {"type": "replicate", "replicate": {"replica": 3}}}))
    .await;
    let mnt = dir.path().join("fuse");
    std::fs::create_dir_all(&mnt).unwrap();
    let src = format!("{}:/evac", tb.nodes[0].1);
    let st = Command::new("mount")
        .args(["-t", "glusterfs", &src, mnt.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success(), "mount -t glusterfs {src}");
    let data: Vec<u8> = (0..2 << 20).map(|i: u32| (i * 13 % 251) as u8).collect();
    std::fs::write(mnt.join("before.bin"), &data).unwrap();
    let vol = c
        .call_ok(1, Method::GET, &format!("/volumes/{evac}"), None)
        .await
        .unwrap();
    let old = vol["bricks"][0].clone();
    let dev = old["device"].as_str().unwrap().to_string();
    let set_state = |state: &'static str| hekate_testkit::set_state(&api, "devices", &dev, state);
    // Gluster keeps the write's heal markers for a moment: until they clear, the heal check
    // rightly refuses to replace a brick that is a source of data to heal.
    let healed = || async {
        wait_for(
            Duration::from_secs(120),
            "evac healed, every brick connected",
            || async {
                let _ = tb.exec(0, "gluster --mode=script volume heal evac");
                let (ok, heal) = tb.exec(0, "gluster --mode=script volume heal evac info --xml");
                let connected = heal.matches("<status>Connected</status>").count();
                let clean = heal.matches("<numberOfEntries>0</numberOfEntries>").count();
                (ok && connected == 3 && clean == 3).then_some(())
            },
        )
        .await
        .unwrap()
    };
    healed().await;
    set_state("offline").await.unwrap();
    // With the node of another brick of the set powered off, the heal check (Gluster's own
    // view) refuses the move, and nothing changes.
    let down = (1..3)
        .find(|i| Some(nodes[*i].as_str()) != old["node"].as_str())
        .unwrap();
    let power = |what: &str, i: usize| {
        let st = Command::new("bash")
            .args([&tb.script, what, &tb.nodes[i].0])
            .status()
            .unwrap();
        assert!(st.success(), "{what} {}", tb.nodes[i].0);
    };
    power("poweroff", down);
    // Refused either way the heal check can see it: the peer is not connected, or (once the
    // surviving bricks recorded changes the down one lacks) the brick is a heal source.
    let err = set_state("failed").await.unwrap_err().to_string();
    assert!(
        err.contains("required peer bricks are online") || err.contains("source brick for data to be healed"),
        "{err}"
    );
    assert!(info("evac").contains(old["path"].as_str().unwrap()));
    power("boot", down);
    healed().await;
    // The health monitor's first round (10 s after the leader starts, then hourly) may have
    // fallen while the node was off, and placement then skips it for two hours: check it
    // now, as an operator does with a node back, so the creates below may use it.
    run_async(
        &api,
        Method::POST,
        &format!("/health/nodes/{}", nodes[down]),
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("health check of the booted node: {e}\n{}", c.log_tail(1)));
    // Heal info can read clean while the self-heal daemon still marks the brick a source for
    // a moment: the check then rightly refuses; the move goes through once Gluster agrees.
    wait_for(
        Duration::from_secs(120),
        "the move once Gluster sees the set healed",
        || async {
            match set_state("failed").await {
                Ok(_) => Some(Ok(())),
                Err(e) if e.to_string().contains("source brick for data to be healed") => None,
                Err(e) => Some(Err(e)),
            }
        },
    )
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("device failed: {e}\n{}", c.log_tail(1)));
    let i = info("evac");
    assert!(
        !i.contains(old["path"].as_str().unwrap()),
        "old brick still in\n{i}"
    );
    let vol = c
        .call_ok(1, Method::GET, &format!("/volumes/{evac}"), None)
        .await
        .unwrap();
    let moved = vol["bricks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["node"] == old["node"])
        .unwrap()
        .clone();
    assert_ne!(moved["device"], old["device"]);
    assert!(i.contains(moved["path"].as_str().unwrap()), "{i}");
    // The volume keeps serving: old data reads back, new data writes, self-heal fills the
    // new brick.
    assert_eq!(std::fs::read(mnt.join("before.bin")).unwrap(), data);
    std::fs::write(mnt.join("after.bin"), &data).unwrap();
    // The new brick's process comes up (it may still be starting right after replace-brick).
    wait_for(Duration::from_secs(30), "every brick of evac online", || async {
        let (ok, status) = tb.exec(0, "gluster --mode=script volume status evac --xml");
        let bricks: Vec<&str> = status
            .split("<node>")
            .skip(1)
            .filter(|n| n.contains("<path>/"))
            .collect();
        (ok && bricks.len() == 3 && bricks.iter().all(|b| b.contains("<status>1</status>"))).then_some(())
    })
    .await
    .unwrap();
    let node = nodes
        .iter()
        .position(|n| Some(n.as_str()) == moved["node"].as_str())
        .unwrap();
    let path = format!("{}/before.bin", moved["path"].as_str().unwrap());
    wait_for(Duration::from_secs(120), "self-heal of the new brick", || async {
        let _ = tb.exec(0, "gluster --mode=script volume heal evac");
        let (ok, size) = tb.exec(node, &format!("stat -c %s {path}"));
        (ok && size.trim() == data.len().to_string()).then_some(())
    })
    .await
    .unwrap();
    let _ = Command::new("umount").arg(&mnt).status();
    assert_reconciled(&c, "after evacuation").await;
    for v in [&arb, &disp, &evac] {
        run_async(&api, Method::DELETE, &format!("/volumes/{v}"), None)
            .await
            .unwrap_or_else(|e| panic!("delete: {e}"));
    }
    tb.assert_clean();

    // A node lost in the middle of a create.
    let lost_node = &tb.nodes[2];
    let r = api
        .call(
            Method::POST,
            "/volumes",
            Some(&json!({"size": 1, "name": "lost",
            "durability": {"type": "replicate", "replicate": {"replica": 3}}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    // Power off once its brick LV exists (mkfs running): the create dies half-way there.
    wait_for(Duration::from_secs(60), "a brick LV on the node", || async {
        tb.leftovers(2).contains("brick_").then_some(())
    })
    .await
    .unwrap();
    let st = Command::new("bash")
        .args([&tb.script, "poweroff", &lost_node.0])
        .status()
        .unwrap();
    assert!(st.success());
    let loc = r.headers["location"].to_str().unwrap().to_string();
    let done = hekate_testkit::wait_queue(&api, &loc, Duration::from_secs(180))
        .await
        .unwrap();
    assert_eq!(done.status, 500, "{}", done.body);
    assert!(
        done.body.contains(&lost_node.1) && done.body.contains("gave up after 3 attempts"),
        "{}",
        done.body
    );
    for i in 0..2 {
        assert_eq!(tb.leftovers(i), "lvs=[] fstab=0 mounts=0", "{}", tb.nodes[i].0);
    }
    let vols = c.call_ok(1, Method::GET, "/volumes", None).await.unwrap();
    assert_eq!(vols["volumes"], json!([]), "{vols}");
    let st = Command::new("bash")
        .args([&tb.script, "boot", &lost_node.0])
        .status()
        .unwrap();
    assert!(st.success());
    // Whatever the create did on the node before it died is found and repaired.
    let r = wait_for(
        Duration::from_secs(60),
        "reconcile with the node back",
        || async {
            let r = c
                .call_ok(1, Method::POST, "/reconcile", Some(&json!({"repair": true})))
                .await
                .ok()?;
            (r["nodes_examined"] == 3).then_some(r)
        },
    )
    .await
    .unwrap();
    eprintln!("reconcile after the node came back: {r:#}");
    assert!(!r["findings"].as_array().unwrap().is_empty(), "{r:#}");
    assert!(
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| (f["kind"] == "orphan_brick" || f["kind"] == "free_space")
                && f["place"] == lost_node.1.as_str()),
        "{r:#}"
    );
    assert!(
        r["repairs"].as_array().unwrap().iter().all(|x| x["ok"] == true),
        "{r:#}"
    );
    assert_reconciled(&c, "after repair").await;
    tb.assert_clean();
    teardown(&tb, &c, &cid, &nodes, &devs).await;
}

/// `hekate dev --testbed`, the newcomer's way to watch real volumes appear: a local dev
/// cluster drives the testbed's nodes; hekate-cli loads the topology, creates a volume
/// Gluster serves, reconciles, deletes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_cluster_drives_the_testbed() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(tb) = Testbed::find() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Three consecutive free ports.
    let base = loop {
        let p = hekate_testkit::free_ports(1).unwrap()[0];
        if p < 65000 && (1..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", p + i)).is_ok()) {
            break p;
        }
    };
    let out_path = dir.path().join("dev.out");
    let mut dev = DevChild(Some(
        Command::new(BIN)
            .args(["dev", "--testbed", "--base-port", &base.to_string(), "--data-dir"])
            .arg(dir.path().join("cluster"))
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    ));
    let key = wait_for(Duration::from_secs(60), "the dev cluster's banner", || async {
        let text = std::fs::read_to_string(&out_path).ok()?;
        let key = text
            .split("HEKETI_CLI_KEY=")
            .nth(1)?
            .split_whitespace()
            .next()?
            .to_string();
        text.contains("ssh executor").then_some(key)
    })
    .await
    .unwrap();
    let server = format!("http://127.0.0.1:{base}");
    let cli = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_hekate-cli"))
            .args(args)
            .env("HEKETI_CLI_SERVER", &server)
            .env("HEKETI_CLI_USER", "admin")
            .env("HEKETI_CLI_KEY", &key)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            o.status.success(),
            "hekate-cli {args:?}: {text}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        text
    };
    let nodes: Vec<serde_json::Value> = tb
        .nodes
        .iter()
        .enumerate()
        .map(|(i, (_, ip, disks))| {
            json!({"node": {"hostnames": {"manage": [ip], "storage": [ip]}, "zone": i + 1},
                                          "devices": [{"name": disks[0], "destroydata": false}]})
        })
        .collect();
    let topo = dir.path().join("topology.json");
    std::fs::write(&topo, json!({"clusters": [{"nodes": nodes}]}).to_string()).unwrap();
    cli(&["topology", "load", &format!("--json={}", topo.display())]);
    let created = cli(&["volume", "create", "--size=1", "--replica=3", "--name=devvol"]);
    let vid = created
        .lines()
        .find_map(|l| l.strip_prefix("Volume Id: "))
        .unwrap()
        .trim()
        .to_string();
    let info = tb.must(1, "gluster --mode=script volume info devvol");
    assert!(
        info.contains("Status: Started") && info.contains("1 x 3 = 3"),
        "{info}"
    );
    let rec = cli(&["reconcile"]);
    assert!(
        rec.contains("3 nodes examined") && rec.contains(" 0 findings"),
        "{rec}"
    );
    cli(&["volume", "delete", &vid]);
    tb.assert_clean();
    // Take the topology down through the API, as the other tests do.
    let api = hekate::client::Client::new(vec![server.clone()], "admin", &key);
    let t = api
        .call(Method::GET, "/topology", None)
        .await
        .unwrap()
        .json()
        .unwrap();
    let cl = &t["clusters"][0];
    let cid = cl["id"].as_str().unwrap().to_string();
    let node_ids: Vec<String> = cl["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    let dev_ids: Vec<String> = cl["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| {
            n["devices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_str().unwrap().to_string())
        })
        .collect();
    teardown_with(&tb, &api, &cid, &node_ids, &dev_ids).await;
    let status = dev.stop().expect("hekate dev was running");
    assert!(status.success(), "hekate dev exited {status}");
}

/// `hekate dev` as the test's child, stopped (Ctrl-C, which stops its replicas) however the
/// test ends: a test that panicked before its own stop left the dev cluster running after it.
struct DevChild(Option<std::process::Child>);

impl DevChild {
    /// Ctrl-C, then its exit awaited for 20 s (its replicas stop within seconds); past that
    /// the dev process is killed. None: already stopped.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        use nix::sys::signal::{kill, Signal};
        let mut child = self.0.take()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGINT);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(status) => status.ok(),
            Err(_) => {
                let _ = kill(pid, Signal::SIGKILL);
                rx.recv_timeout(Duration::from_secs(5)).ok().and_then(Result::ok)
            }
        }
    }
}

impl Drop for DevChild {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Issue 10, point 1, on real nodes: a Gluster volume and an LV Hekate did not make survive
/// a user's create, an admin's create and a clone that name them, and a reconcile repair;
/// each request ends 409 naming the conflict, and the nodes' own command record shows no
/// command naming them but `volume info` reads. One round (the testbed is slow).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_volume_and_lv_survive_on_real_nodes() {
    const FOREIGN: &str = "heketidbstorage";
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(tb) = Testbed::find() else { return };
    let dir = tempfile::tempdir().unwrap();
    let c = tb.hekate(dir.path()).await;
    let (cid, nodes, devs) = topology(&tb, &c).await;
    let admin = c.client(1);
    let user = hekate::client::Client::new(vec![c.url(2)], "user", &c.user_key);
    let body = json!({"size": 1, "name": "origin", "durability": {"type": "replicate", "replicate": {"replica": 3}}});
    let origin = run_async(&admin, Method::POST, "/volumes", Some(&body))
        .await
        .unwrap_or_else(|e| panic!("origin create: {e}\n{}", c.log_tail(1)))
        .unwrap();

    // Outside Hekate: a volume named heketidbstorage on a plain directory, and an LV of that
    // name (with its thin pool) inside Hekate's VG on the same node.
    let vg = format!("vg_{}", devs[0]);
    let ip0 = tb.nodes[0].1.clone();
    tb.must(
        0,
        &format!(
            "mkdir -p /srv/{FOREIGN}/brick && gluster --mode=script volume create {FOREIGN} {ip0}:/srv/{FOREIGN}/brick force \
             && gluster --mode=script volume start {FOREIGN} \
             && lvm lvcreate -qq --size 65536K --thin {vg}/tp_{FOREIGN} --virtualsize 65536K --name {FOREIGN}"
        ),
    );
    // Each node's record, separately: a node's new lines must not be sliced by another's count.
    let logs = |tb: &Testbed| -> Vec<Vec<String>> {
        tb.nodes
            .iter()
            .map(|n| tb.env.command_log(&n.0).into_iter().map(|r| r.2).collect())
            .collect()
    };
    let seen_before: Vec<usize> = logs(&tb).iter().map(|l| l.len()).collect();

    let named =
        json!({"size": 1, "name": FOREIGN, "durability": {"type": "replicate", "replicate": {"replica": 3}}});
    let clone_path = format!("{origin}/clone");
    let clone_body = json!({ "name": FOREIGN });
    let attempts: [(&str, &hekate::client::Client, &str, &serde_json::Value); 3] = [
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
    let r = c
        .call_ok(1, Method::POST, "/reconcile", Some(&json!({"repair": true})))
        .await
        .unwrap();
    let findings = r["findings"].as_array().unwrap();
    let has = |kind: &str, obj: &str| {
        findings
            .iter()
            .any(|f| f["kind"] == kind && f["object"].as_str().unwrap().contains(obj))
    };
    assert!(has("foreign_volume", FOREIGN), "{r:#}");
    assert!(has("foreign_brick", &format!("LV {vg}/{FOREIGN}")), "{r:#}");
    assert!(r["repairs"].as_array().unwrap().is_empty(), "{r:#}");

    // On the nodes: both still there, and only reads named them.
    let info = tb.must(0, &format!("gluster --mode=script volume info {FOREIGN}"));
    assert!(info.contains("Status: Started"), "{info}");
    tb.must(0, &format!("lvm lvs {vg}/{FOREIGN} {vg}/tp_{FOREIGN}"));
    let against: Vec<String> = logs(&tb)
        .into_iter()
        .zip(&seen_before)
        .flat_map(|(node, before)| node.into_iter().skip(*before))
        .filter(|l| l.contains(FOREIGN))
        .collect();
    assert!(!against.is_empty(), "the creates read the name first");
    assert!(
        against.iter().all(|l| l.contains("volume info")),
        "commands against the foreign objects: {against:#?}"
    );

    // Hekate's own volume is still Hekate's to delete; then the plants are removed by hand.
    run_async(&admin, Method::DELETE, &origin, None)
        .await
        .unwrap_or_else(|e| panic!("origin delete: {e}\n{}", c.log_tail(1)));
    tb.must(
        0,
        &format!(
            "gluster --mode=script volume stop {FOREIGN} force; gluster --mode=script volume delete {FOREIGN} \
             && lvm lvremove -f {vg}/{FOREIGN} && lvm lvremove -f {vg}/tp_{FOREIGN} && rm -rf /srv/{FOREIGN}"
        ),
    );
    tb.assert_clean();
    teardown(&tb, &c, &cid, &nodes, &devs).await;
}

/// `manage host -> health` as replica `id` reports it (`GET /health/nodes`).
async fn node_health(c: &ProcCluster, id: u64, host: &str) -> String {
    let v = c.call_ok(id, Method::GET, "/health/nodes", None).await.unwrap();
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["manage"] == host)
        .map(|n| n["health"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn wait_node_health(c: &ProcCluster, id: u64, host: &str, want: &str) {
    wait_for(Duration::from_secs(60), &format!("{host} {want}"), || async {
        (node_health(c, id, host).await == want).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(id)));
}

/// A replica-2 volume through replica `id`: its path and the node ids of its bricks.
async fn replica2(c: &ProcCluster, id: u64) -> (String, Vec<String>) {
    let body = json!({"size": 1, "durability": {"type": "replicate", "replicate": {"replica": 2}}});
    let loc = run_async(&c.client(id), Method::POST, "/volumes", Some(&body))
        .await
        .unwrap_or_else(|e| panic!("create: {e}\n{}", c.log_tail(id)))
        .unwrap();
    let v = c.call_ok(id, Method::GET, &loc, None).await.unwrap();
    let nodes = v["bricks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["node"].as_str().unwrap().to_string())
        .collect();
    (loc, nodes)
}

/// Issue 14, health: the monitor (2 s period) marks a powered-off node down and no brick
/// lands on it; booted again it is marked up and used again; after a leader kill the new
/// leader knows the node is down at once (the health is replicated) and keeps checking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_monitor_skips_a_powered_off_node_also_after_a_failover() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(tb) = Testbed::find() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ClusterSpec::new(BIN, 3);
    spec.shared_mock = false;
    spec.glusterfs = tb.glusterfs.clone();
    spec.glusterfs["start_time_monitor_gluster_nodes"] = json!(1);
    spec.glusterfs["refresh_time_monitor_gluster_nodes"] = json!(2);
    let mut c = ProcCluster::create(dir.path(), spec).unwrap();
    c.start_all().unwrap();
    c.wait_ready(&c.ids(), Duration::from_secs(30)).await.unwrap();
    let (cid, nodes, devs) = topology(&tb, &c).await;
    let power = |what: &str| {
        let st = Command::new("bash")
            .args([&tb.script, what, &tb.nodes[2].0])
            .status()
            .unwrap();
        assert!(st.success(), "{what} {}", tb.nodes[2].0);
    };
    let (dead_host, dead_node) = (tb.nodes[2].1.clone(), nodes[2].clone());
    let leader = c.wait_leader(&c.ids(), Duration::from_secs(30)).await.unwrap();
    wait_node_health(&c, leader, &dead_host, "up").await;
    let mut volumes = Vec::new();

    power("poweroff");
    wait_node_health(&c, leader, &dead_host, "down").await;
    for _ in 0..2 {
        let (loc, on) = replica2(&c, leader).await;
        assert!(!on.contains(&dead_node), "a brick landed on the powered-off node");
        volumes.push(loc);
    }
    power("boot");
    wait_node_health(&c, leader, &dead_host, "up").await;
    tb.wait_pool_connected().await;
    // A replica-2 volume over three nodes misses a given one with probability 1/3.
    let mut used = false;
    for _ in 0..10 {
        let (loc, on) = replica2(&c, leader).await;
        volumes.push(loc);
        if on.contains(&dead_node) {
            used = true;
            break;
        }
    }
    assert!(used, "the node booted again never got a brick");

    power("poweroff");
    wait_node_health(&c, leader, &dead_host, "down").await;
    c.kill(leader).unwrap();
    let others: Vec<u64> = c.ids().into_iter().filter(|i| *i != leader).collect();
    let new = c.wait_leader(&others, Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        node_health(&c, new, &dead_host).await,
        "down",
        "the new leader forgot"
    );
    let (loc, on) = replica2(&c, new).await;
    assert!(
        !on.contains(&dead_node),
        "after the failover a brick landed on the dead node"
    );
    volumes.push(loc);
    power("boot");
    wait_node_health(&c, new, &dead_host, "up").await;
    tb.wait_pool_connected().await;

    for v in &volumes {
        run_async(&c.client(new), Method::DELETE, v, None)
            .await
            .unwrap_or_else(|e| panic!("delete {v}: {e}"));
    }
    teardown_with(&tb, &c.client(new), &cid, &nodes, &devs).await;
    tb.assert_clean();
}
