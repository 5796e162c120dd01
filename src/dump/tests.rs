//! Golden tests of [`super::plan_import`]: Heketi's real dump (`tests/fixtures/heketi-samples/
//! db-dump.json`, recorded from Heketi 10) becomes the import set in
//! `src/dump/testdata/db-dump.import.json`; a clone's brick shares its origin's pool; and each
//! way a dump can be wrong (pending operations, ids, references that do not
//! resolve, duplicate names or hostnames, values that would reach a node's command line) is refused with
//! the exact message in `src/dump/testdata/refused.txt`. Block volumes: Heketi's dump with two
//! block volumes added to its block-hosting volume (`block_dump`) becomes
//! `db-dump-block.import.json` and goes through `ImportWithBlock` and back out of `export`
//! unchanged; its bad variants are refused with the messages in `refused-block.txt`.
//! `HEKATE_BLESS=1` rewrites the goldens.

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
    plan_all(v).map(|p| {
        assert!(p.blockvolumes.is_empty(), "no block volumes in this dump");
        p.set
    })
}

pub(crate) fn plan_all(v: &Value) -> Result<ImportPlan, String> {
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
    let device = clone["Info"]["device"].as_str().unwrap().to_string();
    d["brickentries"][&clone_id] = clone;
    // Heketi lists a clone's brick on its device, as the origin's.
    d["deviceentries"][&device]["Bricks"]
        .as_array_mut()
        .unwrap()
        .push(json!(clone_id));
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
        ("a device listing a brick on another device", |d, i| {
            let on = d["brickentries"][&i.b]["Info"]["device"].clone();
            let other = d["deviceentries"]
                .as_object()
                .unwrap()
                .keys()
                .find(|k| json!(k) != on)
                .unwrap()
                .clone();
            d["deviceentries"][&other]["Bricks"]
                .as_array_mut()
                .unwrap()
                .push(json!(i.b))
        }),
        ("a brick its device does not list", |d, i| {
            let on = d["brickentries"][&i.b]["Info"]["device"]
                .as_str()
                .unwrap()
                .to_string();
            d["deviceentries"][&on]["Bricks"]
                .as_array_mut()
                .unwrap()
                .retain(|x| *x != json!(i.b))
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

/// Heketi's block-hosting volume in the recorded dump (10 GiB: 9 free, 1 reserved).
pub(crate) const BHV: &str = "d9aa4c544f119e2903270784854eca13";
/// Two block volumes added to it, as Heketi stores them.
pub(crate) const BV1: &str = "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1";
const BV2: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";

/// Heketi's dump with two block volumes (2 and 1 GiB, the second with `auth`) on its
/// block-hosting volume: the volume's free size and list and the cluster's list follow.
pub(crate) fn block_dump() -> Value {
    let mut d = heketi_dump();
    let cluster = first(&d, "clusterentries");
    assert_eq!(d["volumeentries"][BHV]["Info"]["block"], true);
    assert_eq!(
        d["volumeentries"][BHV]["Info"]["blockinfo"],
        json!({"freesize": 9, "reservedsize": 1})
    );
    let hosts = json!(["127.0.1.1", "127.0.1.3", "127.0.1.5"]);
    d["blockvolumeentries"] = json!({
        BV1: {"Info": {"size": 2, "name": format!("blockvol_{BV1}"), "hacount": 3, "id": BV1,
                       "blockvolume": {"hosts": hosts, "iqn": format!("iqn.2016-12.org.gluster-block:{BV1}"),
                                       "lun": 0, "username": "", "password": ""},
                       "cluster": cluster, "blockhostingvolume": BHV, "usablesize": 2},
              "Pending": {"Id": ""}},
        BV2: {"Info": {"size": 1, "name": "pgdata", "hacount": 3, "auth": true, "id": BV2,
                       "blockvolume": {"hosts": hosts, "iqn": format!("iqn.2016-12.org.gluster-block:{BV2}"),
                                       "lun": 0, "username": BV2, "password": "f00d"},
                       "cluster": cluster, "blockhostingvolume": BHV, "usablesize": 1},
              "Pending": {"Id": ""}},
    });
    d["volumeentries"][BHV]["Info"]["blockinfo"] =
        json!({"freesize": 6, "reservedsize": 1, "blockvolume": [BV1, BV2]});
    d["clusterentries"][&cluster]["Info"]["blockvolumes"] = json!([BV1, BV2]);
    d
}

#[test]
fn a_dump_with_block_volumes_becomes_the_golden_import_with_block() {
    let p = plan_all(&block_dump()).expect("a dump with block volumes imports");
    assert_eq!(p.blockvolumes.len(), 2);
    let bhv = p.set.volumes.iter().find(|v| v.id == BHV).unwrap();
    assert_eq!((bhv.block_free, bhv.block_reserved), (6, 1));
    crate::golden::check(
        "src/dump/testdata/db-dump-block.import.json",
        &crate::golden::json(&p.blockvolumes),
    );
    assert!(matches!(p.command(), Command::ImportWithBlock { .. }));
    // Without block volumes the command stays `Import`, which replicas of older builds apply.
    let plain = plan_all(&heketi_dump()).unwrap();
    assert!(matches!(plain.command(), Command::Import { .. }));
}

/// Imported through `apply`, then exported: the block volumes, the block-hosting volume's
/// sizes and list and the cluster's list come back as they went in.
#[tokio::test]
async fn block_volumes_go_through_import_and_export_unchanged() {
    use crate::state::ops::testing::{view, Sm};
    let dir = tempfile::tempdir().unwrap();
    let mut sm = Sm::new(dir.path());
    let input = block_dump();
    let cmd = plan_all(&input).unwrap().command();
    assert_eq!(sm.apply(cmd).await, crate::state::Outcome::Done);
    let out = serde_json::to_value(export(&view(&sm)).unwrap()).unwrap();
    assert_eq!(out["blockvolumeentries"], input["blockvolumeentries"]);
    assert_eq!(
        out["volumeentries"][BHV]["Info"]["blockinfo"],
        input["volumeentries"][BHV]["Info"]["blockinfo"]
    );
    let cluster = first(&input, "clusterentries");
    assert_eq!(
        out["clusterentries"][&cluster]["Info"]["blockvolumes"],
        json!([BV1, BV2])
    );
    // And the export imports again.
    let again = plan_all(&out).expect("an export imports");
    assert_eq!(again.blockvolumes.len(), 2);
}

type BlockEdit = fn(&mut Value);

/// Each way a dump's block volumes can be wrong, on [`block_dump`].
fn bad_block_dumps() -> Vec<(&'static str, BlockEdit)> {
    vec![
        ("a block volume of a pending operation", |d| {
            d["blockvolumeentries"][BV1]["Pending"]["Id"] = json!("op3")
        }),
        ("a block volume id that is not 32 hex digits", |d| {
            let e = d["blockvolumeentries"][BV1].clone();
            d["blockvolumeentries"]["bv-1"] = e;
        }),
        ("a block volume of an unknown cluster", |d| {
            d["blockvolumeentries"][BV1]["Info"]["cluster"] = json!(STRANGER)
        }),
        ("a block volume on an unknown block-hosting volume", |d| {
            d["blockvolumeentries"][BV1]["Info"]["blockhostingvolume"] = json!(STRANGER)
        }),
        ("a block volume on a volume that is not block-hosting", |d| {
            let file = d["volumeentries"]
                .as_object()
                .unwrap()
                .iter()
                .find(|(_, v)| v["Info"]["block"] != true)
                .map(|(k, _)| k.clone())
                .unwrap();
            d["blockvolumeentries"][BV1]["Info"]["blockhostingvolume"] = json!(file)
        }),
        ("a block volume name with a command", |d| {
            d["blockvolumeentries"][BV1]["Info"]["name"] = json!("b;reboot")
        }),
        ("a block volume of size 0", |d| {
            d["blockvolumeentries"][BV1]["Info"]["size"] = json!(0)
        }),
        ("a block volume usable size beyond its size", |d| {
            d["blockvolumeentries"][BV1]["Info"]["usablesize"] = json!(3)
        }),
        ("a block volume host with a shell separator", |d| {
            d["blockvolumeentries"][BV1]["Info"]["blockvolume"]["hosts"] = json!(["h;reboot"])
        }),
        ("a negative hacount", |d| {
            d["blockvolumeentries"][BV1]["Info"]["hacount"] = json!(-1)
        }),
        ("a block-hosting volume listing an unknown block volume", |d| {
            d["volumeentries"][BHV]["Info"]["blockinfo"]["blockvolume"] = json!([BV1, BV2, STRANGER])
        }),
        (
            "a block-hosting volume not listing one of its block volumes",
            |d| d["volumeentries"][BHV]["Info"]["blockinfo"]["blockvolume"] = json!([BV1]),
        ),
        ("a cluster listing an unknown block volume", |d| {
            let c = first(d, "clusterentries");
            d["clusterentries"][&c]["Info"]["blockvolumes"] = json!([BV1, BV2, STRANGER])
        }),
        ("a cluster not listing one of its block volumes", |d| {
            let c = first(d, "clusterentries");
            d["clusterentries"][&c]["Info"]["blockvolumes"] = json!([BV2])
        }),
        ("a block-hosting volume whose sizes do not add up", |d| {
            d["volumeentries"][BHV]["Info"]["blockinfo"]["freesize"] = json!(7)
        }),
        ("two block volumes of a block-hosting volume with one name", |d| {
            d["blockvolumeentries"][BV2]["Info"]["name"] = json!(format!("blockvol_{BV1}"))
        }),
    ]
}

#[test]
fn bad_block_dumps_are_refused_with_the_golden_messages() {
    let base = block_dump();
    let mut text = String::new();
    for (name, edit) in bad_block_dumps() {
        let mut d = base.clone();
        edit(&mut d);
        match plan_all(&d) {
            Ok(_) => panic!("{name}: imported"),
            Err(e) => text.push_str(&format!("{name}\n    {e}\n")),
        }
    }
    crate::golden::check("src/dump/testdata/refused-block.txt", &text);
}

/// `GET /topology` streamed one cluster at a time (`views::topology_chunks`, bricks and
/// volumes read in one pass each) is byte for byte the document built whole from point
/// reads (`views::topology`), on Heketi's recorded dump with a block-hosting volume.
#[tokio::test]
async fn streamed_topology_is_the_whole_document() {
    use crate::state::ops::testing::{view, Sm};
    let dir = tempfile::tempdir().unwrap();
    let mut sm = Sm::new(dir.path());
    let cmd = plan_all(&block_dump()).unwrap().command();
    assert_eq!(sm.apply(cmd).await, crate::state::Outcome::Done);
    // Four more (empty) clusters, five in all: the chunks are built on two threads and
    // joined in the whole document's order.
    for c in ["c", "d", "e", "f"] {
        let more = crate::state::Command::ClusterCreate {
            id: c.repeat(32),
            file: true,
            block: false,
        };
        assert_eq!(sm.apply(more).await, crate::state::Outcome::Done);
    }
    let whole = crate::gojson::to_string(&crate::views::topology(&view(&sm)).unwrap());
    let mut streamed = Vec::new();
    crate::views::topology_chunks(&view(&sm), &mut |chunk| {
        streamed.extend(chunk);
        true
    })
    .unwrap();
    let doc: Value = serde_json::from_str(&whole).unwrap();
    assert_eq!(doc["clusters"].as_array().unwrap().len(), 5, "{doc}");
    assert!(
        whole.contains("\"blockvolume\":[\""),
        "a BHV lists its block volumes"
    );
    assert_eq!(String::from_utf8(streamed).unwrap(), whole);
    // A client that leaves after the second cluster stops the walk there (both threads).
    let mut taken = 0;
    crate::views::topology_chunks(&view(&sm), &mut |_| {
        taken += 1;
        taken < 4
    })
    .unwrap();
    assert_eq!(taken, 4, "the opening, two clusters and a comma, then nothing");
}
