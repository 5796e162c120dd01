//! Migration from Heketi: a dump recorded from Heketi v10.4.1 (`/db/dump`) imports into an
//! empty Hekate cluster through `hekate db import`; `hekate db export` then yields the same
//! entries, the topology is the same as Heketi's, and `/db/check` finds nothing.

use std::process::Command;

use reqwest::Method;
use serde_json::{json, Value};

use crate::{cluster, serial, BIN, T};

fn fixture(name: &str) -> Value {
    let p = format!(
        "{}/tests/fixtures/heketi-samples/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn cli(c: &hekate_testkit::ProcCluster, id: u64, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("db")
        .args(args)
        .env("HEKETI_CLI_SERVER", c.url(id))
        .env("HEKETI_CLI_USER", "admin")
        .env("HEKETI_CLI_KEY", &c.admin_key)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heketi_dump_imports_and_exports_unchanged() {
    let _g = serial();
    let (d, c) = cluster(3, json!({})).await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    let via = c.ids().into_iter().find(|i| *i != leader).unwrap();
    let heketi = fixture("db-dump.json")["response"]["body"].clone();
    let file = d.path().join("heketi-dump.json");
    std::fs::write(&file, serde_json::to_string_pretty(&heketi).unwrap()).unwrap();

    let out = cli(&c, via, &["import", "--jsonfile", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A second import is refused: the cluster is no longer empty.
    let again = cli(&c, via, &["import", "--jsonfile", file.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("import needs an empty cluster"));

    let exported = d.path().join("hekate-dump.json");
    let out = cli(&c, via, &["export", "--jsonfile", exported.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ours: Value = serde_json::from_str(&std::fs::read_to_string(&exported).unwrap()).unwrap();
    for key in [
        "clusterentries",
        "volumeentries",
        "brickentries",
        "nodeentries",
        "deviceentries",
        "blockvolumeentries",
        "pendingoperations",
    ] {
        assert_eq!(
            ours[key].to_string(),
            heketi[key].to_string(),
            "{key} differs after import + export"
        );
    }
    // Exporting over an existing file is refused, as in Heketi.
    assert!(
        !cli(&c, via, &["export", "--jsonfile", exported.to_str().unwrap()])
            .status
            .success()
    );

    // The topology holds Heketi's objects, and the state is consistent.
    let topo = c.call_ok(via, Method::GET, "/topology", None).await.unwrap();
    let cl = &topo["clusters"][0];
    let ids = |v: &Value| -> Vec<String> {
        let mut v: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let keys = |k: &str| -> Vec<String> { heketi[k].as_object().unwrap().keys().cloned().collect() };
    assert_eq!(ids(&cl["volumes"]), keys("volumeentries"));
    assert_eq!(ids(&cl["nodes"]), keys("nodeentries"));
    // A second Hekate cluster fed with our export shows the very same topology.
    let (_d2, c2) = cluster(1, json!({})).await;
    let out = cli(&c2, 1, &["import", "--jsonfile", exported.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let topo2 = c2.call_ok(1, Method::GET, "/topology", None).await.unwrap();
    assert_eq!(topo2.to_string(), topo.to_string());
    let check = c.call_ok(via, Method::GET, "/db/check", None).await.unwrap();
    assert_eq!(check["totalinconsistencies"], 0, "{check}");
    assert_eq!(check["volumes"]["total"], 7);
    // Hostnames are registered (Heketi's import forgot them): a duplicate node is refused.
    let dup = json!({"cluster": "3fd4d01e9e67a66335011ff5cb1cbdaa", "zone": 1, "hostnames": {"manage": ["node1.heketi.test"], "storage": ["127.9.9.9"]}});
    let r = c.call(via, Method::POST, "/nodes", Some(&dup)).await.unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inconsistent_dumps_are_refused_and_change_nothing() {
    let _g = serial();
    let (_d, c) = cluster(1, json!({})).await;
    let mut dump = fixture("db-dump.json")["response"]["body"].clone();
    let brick = dump["brickentries"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    dump["brickentries"][&brick]["Info"]["device"] = json!("0123456789abcdef0123456789abcdef");
    let r = c.call(1, Method::POST, "/db/import", Some(&dump)).await.unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("unknown device"), "{}", r.body);
    let mut pending = fixture("db-dump.json")["response"]["body"].clone();
    pending["pendingoperations"] = json!({"0123456789abcdef0123456789abcdef": {"Id": "x"}});
    let r = c
        .call(1, Method::POST, "/db/import", Some(&pending))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.body.contains("pending operations"), "{}", r.body);
    let clusters = c.call_ok(1, Method::GET, "/clusters", None).await.unwrap();
    assert_eq!(clusters["clusters"], json!([]));
}

/// Issue 10, point 4: a dump whose `LvmLv`, brick path, volume name, option, host or size
/// would reach a node's command line unchecked (or overflow) is refused with a 400 naming
/// the field, and nothing is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_dumps_are_refused_and_change_nothing() {
    let _g = serial();
    let (_d, c) = cluster(1, json!({})).await;
    let base = fixture("db-dump.json")["response"]["body"].clone();
    let first = |kind: &str| base[kind].as_object().unwrap().keys().next().unwrap().clone();
    let (brick, volume, node) = (
        first("brickentries"),
        first("volumeentries"),
        first("nodeentries"),
    );
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "sed script in LvmLv",
            Box::new(move |d: &mut Value| {
                d["brickentries"][&brick]["LvmLv"] = json!("x/e touch /tmp/pwned;/")
            }),
            "LvmLv",
        ),
        (
            "brick path outside the mount root",
            {
                let b = first("brickentries");
                Box::new(move |d: &mut Value| d["brickentries"][&b]["Info"]["path"] = json!("/etc/brick"))
            },
            "is not a brick path",
        ),
        (
            "brick path with a shell substitution",
            {
                let b = first("brickentries");
                Box::new(move |d: &mut Value| {
                    d["brickentries"][&b]["Info"]["path"] = json!("/var/lib/heketi/mounts/$(reboot)/brick")
                })
            },
            "is not a brick path",
        ),
        (
            "thin pool name",
            {
                let b = first("brickentries");
                Box::new(move |d: &mut Value| d["brickentries"][&b]["LvmThinPool"] = json!("tp;rm -rf /"))
            },
            "LvmThinPool",
        ),
        (
            "volume name",
            {
                let v = volume.clone();
                Box::new(move |d: &mut Value| d["volumeentries"][&v]["Info"]["name"] = json!("a b;reboot"))
            },
            "not a valid volume name",
        ),
        (
            "volume option",
            {
                let v = volume.clone();
                Box::new(move |d: &mut Value| {
                    d["volumeentries"][&v]["GlusterVolumeOptions"] = json!(["a $(reboot)"])
                })
            },
            "not a valid volume option",
        ),
        (
            "volume size overflowing u64 in KiB",
            {
                let v = volume.clone();
                Box::new(move |d: &mut Value| d["volumeentries"][&v]["Info"]["size"] = json!(u64::MAX / 1024))
            },
            "beyond the maximum",
        ),
        (
            "hostname",
            Box::new(move |d: &mut Value| {
                d["nodeentries"][&node]["Info"]["hostnames"]["manage"] = json!(["n;reboot"])
            }),
            "not a valid hostname",
        ),
    ];
    for (what, edit, want) in cases {
        let mut dump = base.clone();
        edit(&mut dump);
        let r = c.call(1, Method::POST, "/db/import", Some(&dump)).await.unwrap();
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert!(r.body.contains(want), "{what}: {}", r.body);
        let clusters = c.call_ok(1, Method::GET, "/clusters", None).await.unwrap();
        assert_eq!(clusters["clusters"], json!([]), "{what}: nothing committed");
    }
    // The unaltered dump still imports.
    let r = c.call(1, Method::POST, "/db/import", Some(&base)).await.unwrap();
    assert!(r.status < 300, "{}", r.body);
}

/// Heketi's dump with two block volumes on its block-hosting volume (as in
/// `src/dump/tests.rs`): imported with `ImportWithBlock`, served by `/blockvolumes`, counted
/// and found consistent by `/db/check`, and exported again unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_with_block_volumes_imports_checks_and_exports_unchanged() {
    let _g = serial();
    let (_d, c) = cluster(3, json!({})).await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    let via = c.ids().into_iter().find(|i| *i != leader).unwrap();
    let (bhv, bv1, bv2) = (
        "d9aa4c544f119e2903270784854eca13",
        "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1",
        "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2",
    );
    let mut dump = fixture("db-dump.json")["response"]["body"].clone();
    let cluster_id = "3fd4d01e9e67a66335011ff5cb1cbdaa";
    let hosts = json!(["127.0.1.1", "127.0.1.3", "127.0.1.5"]);
    let entry = |id: &str, size: u64, name: &str, auth: bool| {
        let mut info = json!({"size": size, "name": name, "hacount": 3, "id": id,
            "blockvolume": {"hosts": hosts, "iqn": format!("iqn.2016-12.org.gluster-block:{id}"),
                            "lun": 0, "username": if auth { id } else { "" },
                            "password": if auth { "f00d" } else { "" }},
            "cluster": cluster_id, "blockhostingvolume": bhv, "usablesize": size});
        if auth {
            // Heketi's stored info keeps the request's `auth`, after `hacount`.
            let m = info.as_object_mut().unwrap();
            let rest: Vec<(String, Value)> = m.clone().into_iter().skip(3).collect();
            for (k, _) in &rest {
                m.shift_remove(k);
            }
            m.insert("auth".into(), json!(true));
            m.extend(rest);
        }
        json!({"Info": info, "Pending": {"Id": ""}})
    };
    dump["blockvolumeentries"] = json!({
        bv1: entry(bv1, 2, &format!("blockvol_{bv1}"), false),
        bv2: entry(bv2, 1, "pgdata", true),
    });
    dump["volumeentries"][bhv]["Info"]["blockinfo"] =
        json!({"freesize": 6, "reservedsize": 1, "blockvolume": [bv1, bv2]});
    dump["clusterentries"][cluster_id]["Info"]["blockvolumes"] = json!([bv1, bv2]);

    // Right after the election: the handler runs the log-format agreement ImportWithBlock needs.
    let r = c
        .call(via, Method::POST, "/db/import", Some(&dump))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let counts: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(counts["blockvolumes"], 2, "{counts}");

    let list = c.call_ok(via, Method::GET, "/blockvolumes", None).await.unwrap();
    assert_eq!(list, json!({"blockvolumes": [bv1, bv2]}));
    let info = c
        .call_ok(via, Method::GET, &format!("/blockvolumes/{bv2}"), None)
        .await
        .unwrap();
    assert_eq!(
        info,
        json!({"size": 1, "name": "pgdata", "hacount": 3, "id": bv2,
               "blockvolume": {"hosts": hosts, "iqn": format!("iqn.2016-12.org.gluster-block:{bv2}"),
                               "lun": 0, "username": bv2, "password": "f00d"},
               "cluster": cluster_id, "blockhostingvolume": bhv, "usablesize": 1})
    );
    let v = c
        .call_ok(via, Method::GET, &format!("/volumes/{bhv}"), None)
        .await
        .unwrap();
    assert_eq!(
        v["blockinfo"],
        json!({"freesize": 6, "reservedsize": 1, "blockvolume": [bv1, bv2]})
    );
    let check = c.call_ok(via, Method::GET, "/db/check", None).await.unwrap();
    assert_eq!(check["totalinconsistencies"], 0, "{check}");
    assert_eq!(check["blockvolumes"]["total"], 2, "{check}");
    assert_eq!(check["blockvolumes"]["ok"], 2, "{check}");

    let ours = c.call_ok(via, Method::GET, "/db/dump", None).await.unwrap();
    for key in ["blockvolumeentries", "volumeentries", "clusterentries"] {
        assert_eq!(
            ours[key].to_string(),
            dump[key].to_string(),
            "{key} differs after import + export"
        );
    }
}
