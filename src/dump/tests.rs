//! Golden tests of [`super::plan_import`]: Heketi's real dump (`tests/fixtures/heketi-samples/
//! db-dump.json`, recorded from Heketi 10) becomes the import set in
//! `src/dump/testdata/db-dump.import.json`; a clone's brick shares its origin's pool; and each
//! way a dump can be wrong (block volumes, pending operations, ids, references that do not
//! resolve, duplicate names or hostnames, values that would reach a node's command line) is refused with
//! the exact message in `src/dump/testdata/refused.txt`. `HEKATE_BLESS=1` rewrites both.

use serde_json::{json, Value};

use super::*;

/// The body of Heketi's recorded `heketi db dump`.
fn heketi_dump() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/heketi-samples/db-dump.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap();
    v["response"]["body"].clone()
}

fn plan(v: &Value) -> Result<ImportSet, String> {
    let d: Dump = serde_json::from_value(v.clone()).expect("a dump Hekate parses");
    plan_import(&d)
}

/// The first id (in sorted order) of an entry kind.
fn first(d: &Value, kind: &str) -> String {
    d[kind].as_object().unwrap().keys().next().unwrap().clone()
}

/// An id no entry has.
const STRANGER: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn heketis_dump_becomes_the_golden_import_set() {
    let set = plan(&heketi_dump()).expect("Heketi's dump imports");
    assert_eq!(
        (
            set.clusters.len(),
            set.nodes.len(),
            set.devices.len(),
            set.bricks.len(),
            set.volumes.len()
        ),
        (1, 6, 18, 19, 7)
    );
    crate::golden::check(
        "src/dump/testdata/db-dump.import.json",
        &crate::golden::json(&set),
    );
}

#[test]
fn a_clones_brick_shares_its_origins_thin_pool() {
    let mut d = heketi_dump();
    let origin = first(&d, "brickentries");
    let clone_id = STRANGER.to_string();
    let mut clone = d["brickentries"][&origin].clone();
    let pool = clone["LvmThinPool"].clone();
    clone["Info"]["id"] = json!(clone_id);
    clone["Info"]["path"] = json!(format!("/run/gluster/snaps/{clone_id}/brick1/brick"));
    clone["LvmLv"] = json!(format!("{clone_id}_0"));
    d["brickentries"][&clone_id] = clone;
    let set = plan(&d).expect("a dump with a clone imports");
    let pick = |id: &str| set.bricks.iter().find(|b| b.id == id).cloned().unwrap();
    let (o, c) = (pick(&origin), pick(&clone_id));
    assert!(
        o.pool_shared && c.pool_shared,
        "both keep the pool until the last goes"
    );
    assert_eq!(o.thin_pool(), pool.as_str().unwrap());
    assert_eq!(c.thin_pool(), o.thin_pool());
    assert_eq!(c.lvm_lv.as_deref(), Some(format!("{clone_id}_0").as_str()));
    // The origin's pool is Heketi's default name: not stored.
    assert_eq!(o.lvm_thin_pool, None);
}

/// The entries the bad dumps change: the first (sorted) of each kind.
struct Ids {
    b: String,
    v: String,
    n: String,
    dv: String,
    c: String,
}

type Edit = fn(&mut Value, &Ids);

/// Each bad dump: a name, and the edit that makes Heketi's dump bad. Order matters only
/// for the golden file's.
fn bad_dumps() -> Vec<(&'static str, Edit)> {
    [
        whole(),
        references(),
        duplicates(),
        pending_work(),
        hostile_values(),
    ]
    .concat()
}

/// Refused as a whole.
fn whole() -> Vec<(&'static str, Edit)> {
    vec![
        ("block volumes", |d, _| {
            d["blockvolumeentries"] = json!({STRANGER: {}, "x": {}})
        }),
        ("pending operations", |d, _| {
            d["pendingoperations"] = json!({STRANGER: {"Id": "x"}})
        }),
        ("an id that is not 32 hex digits", |d, i| {
            let e = d["clusterentries"][&i.c].clone();
            d["clusterentries"]["not-an-id"] = e;
        }),
    ]
}

/// References that do not resolve.
fn references() -> Vec<(&'static str, Edit)> {
    vec![
        ("a cluster listing an unknown node", |d, i| {
            d["clusterentries"][&i.c]["Info"]["nodes"]
                .as_array_mut()
                .unwrap()
                .push(json!(STRANGER))
        }),
        ("a cluster listing an unknown volume", |d, i| {
            d["clusterentries"][&i.c]["Info"]["volumes"]
                .as_array_mut()
                .unwrap()
                .push(json!(STRANGER))
        }),
        ("a node of an unknown cluster", |d, i| {
            d["nodeentries"][&i.n]["Info"]["cluster"] = json!(STRANGER)
        }),
        ("a device of an unknown node", |d, i| {
            d["deviceentries"][&i.dv]["NodeId"] = json!(STRANGER)
        }),
        ("a brick on an unknown device", |d, i| {
            d["brickentries"][&i.b]["Info"]["device"] = json!(STRANGER)
        }),
        ("a brick of an unknown volume", |d, i| {
            d["brickentries"][&i.b]["Info"]["volume"] = json!(STRANGER)
        }),
        ("a brick on an unknown node", |d, i| {
            d["brickentries"][&i.b]["Info"]["node"] = json!(STRANGER)
        }),
        ("a volume of an unknown cluster", |d, i| {
            d["volumeentries"][&i.v]["Info"]["cluster"] = json!(STRANGER)
        }),
        ("a node listing an unknown device", |d, i| {
            d["nodeentries"][&i.n]["Devices"]
                .as_array_mut()
                .unwrap()
                .push(json!(STRANGER))
        }),
        ("a device listing an unknown brick", |d, i| {
            d["deviceentries"][&i.dv]["Bricks"]
                .as_array_mut()
                .unwrap()
                .push(json!(STRANGER))
        }),
        ("a volume listing an unknown brick", |d, i| {
            d["volumeentries"][&i.v]["Bricks"]
                .as_array_mut()
                .unwrap()
                .push(json!(STRANGER))
        }),
    ]
}

/// Duplicates of what the API keeps unique.
fn duplicates() -> Vec<(&'static str, Edit)> {
    vec![
        ("two volumes of a cluster with one name", |d, i| {
            let name = d["volumeentries"][&i.v]["Info"]["name"].clone();
            let other = d["volumeentries"]
                .as_object()
                .unwrap()
                .keys()
                .nth(1)
                .unwrap()
                .clone();
            d["volumeentries"][&other]["Info"]["name"] = name;
        }),
        ("two nodes with one management hostname", |d, i| {
            let h = d["nodeentries"][&i.n]["Info"]["hostnames"]["manage"].clone();
            let other = d["nodeentries"]
                .as_object()
                .unwrap()
                .keys()
                .nth(1)
                .unwrap()
                .clone();
            d["nodeentries"][&other]["Info"]["hostnames"]["manage"] = h;
        }),
        ("two nodes with one storage hostname", |d, i| {
            let h = d["nodeentries"][&i.n]["Info"]["hostnames"]["storage"].clone();
            let other = d["nodeentries"]
                .as_object()
                .unwrap()
                .keys()
                .nth(1)
                .unwrap()
                .clone();
            d["nodeentries"][&other]["Info"]["hostnames"]["storage"] = h;
        }),
        ("two devices of a node with one name", |d, i| {
            let node = d["deviceentries"][&i.dv]["NodeId"].clone();
            let name = d["deviceentries"][&i.dv]["Info"]["name"].clone();
            let other = d["deviceentries"]
                .as_object()
                .unwrap()
                .iter()
                .find(|(k, e)| **k != i.dv && e["NodeId"] == node)
                .map(|(k, _)| k.clone())
                .unwrap();
            d["deviceentries"][&other]["Info"]["name"] = name;
        }),
    ]
}

/// Pending work.
fn pending_work() -> Vec<(&'static str, Edit)> {
    vec![
        ("a brick of a pending operation", |d, i| {
            d["brickentries"][&i.b]["Pending"]["Id"] = json!("op1")
        }),
        ("a volume of a pending operation", |d, i| {
            d["volumeentries"][&i.v]["Pending"]["Id"] = json!("op2")
        }),
    ]
}

/// Values that would reach a node's command line, or overflow.
fn hostile_values() -> Vec<(&'static str, Edit)> {
    vec![
        ("a hostname with a shell separator", |d, i| {
            d["nodeentries"][&i.n]["Info"]["hostnames"]["manage"] = json!(["n;reboot"])
        }),
        ("a device path that is not one", |d, i| {
            d["deviceentries"][&i.dv]["Info"]["name"] = json!("/dev/../etc/passwd")
        }),
        ("device sizes beyond the maximum", |d, i| {
            d["deviceentries"][&i.dv]["Info"]["storage"]["total"] = json!(u64::MAX)
        }),
        ("a brick path outside the mount root", |d, i| {
            d["brickentries"][&i.b]["Info"]["path"] = json!("/etc/brick")
        }),
        ("a brick path with a shell substitution", |d, i| {
            d["brickentries"][&i.b]["Info"]["path"] = json!("/var/lib/heketi/mounts/$(reboot)/brick")
        }),
        ("a sed script in LvmLv", |d, i| {
            d["brickentries"][&i.b]["LvmLv"] = json!("x/e touch /tmp/pwned;/")
        }),
        ("a thin pool name with a command", |d, i| {
            d["brickentries"][&i.b]["LvmThinPool"] = json!("tp;rm -rf /")
        }),
        ("brick sizes beyond the maximum", |d, i| {
            d["brickentries"][&i.b]["TpSize"] = json!(u64::MAX)
        }),
        ("a volume without a name", |d, i| {
            d["volumeentries"][&i.v]["Info"]
                .as_object_mut()
                .unwrap()
                .remove("name");
        }),
        ("a volume without a size", |d, i| {
            d["volumeentries"][&i.v]["Info"]
                .as_object_mut()
                .unwrap()
                .remove("size");
        }),
        ("an unknown durability", |d, i| {
            d["volumeentries"][&i.v]["Info"]["durability"]["type"] = json!("mirror")
        }),
        ("a replica count beyond 64", |d, i| {
            d["volumeentries"][&i.v]["Info"]["durability"] =
                json!({"type": "replicate", "replicate": {"replica": 65}})
        }),
        ("a volume name with a command", |d, i| {
            d["volumeentries"][&i.v]["Info"]["name"] = json!("a b;reboot")
        }),
        ("a volume size overflowing u64 in KiB", |d, i| {
            d["volumeentries"][&i.v]["Info"]["size"] = json!(u64::MAX / 1024)
        }),
        ("a volume option with a command", |d, i| {
            d["volumeentries"][&i.v]["GlusterVolumeOptions"] = json!(["a $(reboot)"])
        }),
    ]
}

fn refusals() -> Vec<(&'static str, Result<ImportSet, String>)> {
    let base = heketi_dump();
    let ids = Ids {
        b: first(&base, "brickentries"),
        v: first(&base, "volumeentries"),
        n: first(&base, "nodeentries"),
        dv: first(&base, "deviceentries"),
        c: first(&base, "clusterentries"),
    };
    bad_dumps()
        .into_iter()
        .map(|(name, edit)| {
            let mut d = base.clone();
            edit(&mut d, &ids);
            (name, plan(&d))
        })
        .collect()
}

#[test]
fn bad_dumps_are_refused_with_the_golden_messages() {
    let mut text = String::new();
    for (name, outcome) in refusals() {
        match outcome {
            Ok(_) => panic!("{name}: imported"),
            Err(e) => text.push_str(&format!("{name}\n    {e}\n")),
        }
    }
    crate::golden::check("src/dump/testdata/refused.txt", &text);
}
