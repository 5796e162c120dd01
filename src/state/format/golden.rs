//! Golden fixtures of the log format: one encoded entry of every command variant (and of
//! every operation plan inside `OpBegin`, and of every stored record) per format, checked in
//! under `src/state/testdata/`. Every later build must decode each fixture to the same value:
//! that is what lets an older build's log, and an older leader's entries during a rolling
//! upgrade, stay readable. Fixtures are never rewritten; `HEKATE_BLESS=1` only appends the
//! lines a new variant needs to the current format's file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{decode, encode_as, needs, CURRENT};
use crate::state::command::{Command, ImportSet};
use crate::state::model::*;
use crate::state::record;

/// Every command variant's name: no wildcard, so a new variant does not compile until it is
/// named here (and then fails [`every_variant_has_a_fixture`] until blessed).
fn variant(cmd: &Command) -> String {
    let plain = match cmd {
        Command::ClusterCreate { .. } => "ClusterCreate",
        Command::ClusterSetFlags { .. } => "ClusterSetFlags",
        Command::ClusterDelete { .. } => "ClusterDelete",
        Command::OpBegin { op } => return format!("OpBegin/{}", plan_name(&op.plan)),
        Command::OpFinish { .. } => "OpFinish",
        Command::OpFail { .. } => "OpFail",
        Command::OpGc { .. } => "OpGc",
        Command::SetTags { .. } => "SetTags",
        Command::SetAdminState { .. } => "SetAdminState",
        Command::Import { .. } => "Import",
        Command::OpStep { .. } => "OpStep",
        Command::OpBeginLimited { .. } => "OpBeginLimited",
        Command::OpGcBounded { .. } => "OpGcBounded",
        Command::SetIdentity { .. } => "SetIdentity",
        Command::OpFailKept { .. } => "OpFailKept",
        Command::SetLogFormat { .. } => "SetLogFormat",
        Command::SetNodeHealth { .. } => "SetNodeHealth",
        Command::OpFinishBlock { .. } => "OpFinishBlock",
        Command::ImportWithBlock { .. } => "ImportWithBlock",
    };
    plain.to_string()
}

fn plan_name(plan: &OpPlan) -> &'static str {
    match plan {
        OpPlan::NodeAdd { .. } => "NodeAdd",
        OpPlan::NodeDelete { .. } => "NodeDelete",
        OpPlan::NodeState { .. } => "NodeState",
        OpPlan::DeviceAdd { .. } => "DeviceAdd",
        OpPlan::DeviceDelete { .. } => "DeviceDelete",
        OpPlan::DeviceState { .. } => "DeviceState",
        OpPlan::DeviceResync { .. } => "DeviceResync",
        OpPlan::VolumeCreate { .. } => "VolumeCreate",
        OpPlan::VolumeDelete { .. } => "VolumeDelete",
        OpPlan::VolumeExpand { .. } => "VolumeExpand",
        OpPlan::Evict { .. } => "Evict",
        OpPlan::VolumeClone { .. } => "VolumeClone",
        OpPlan::VolumeRestriction { .. } => "VolumeRestriction",
        OpPlan::Cleanup => "Cleanup",
        OpPlan::NodeHealth { .. } => "NodeHealth",
        OpPlan::BlockVolumeCreate { .. } => "BlockVolumeCreate",
        OpPlan::BlockVolumeDelete { .. } => "BlockVolumeDelete",
        OpPlan::BlockVolumeExpand { .. } => "BlockVolumeExpand",
    }
}

const ID: &str = "0123456789abcdef0123456789abcdef";

fn tags() -> Tags {
    Tags::from([("zone-rack".to_string(), "r1".to_string())])
}

fn node() -> NodeEntry {
    NodeEntry {
        id: ID.into(),
        cluster: "c1".into(),
        zone: 2,
        manage: vec!["node1.example".into()],
        storage: vec!["10.0.0.1".into()],
        tags: tags(),
        state: "online".into(),
        devices: ["d1".to_string()].into(),
        pending: Some("op1".into()),
    }
}

fn device() -> DeviceEntry {
    DeviceEntry {
        id: "d1".into(),
        name: "/dev/vdb".into(),
        node: ID.into(),
        tags: tags(),
        state: "online".into(),
        total: 1 << 30,
        free: 1 << 29,
        used: 1 << 29,
        extent_size: 4096,
        pv_uuid: "pv-uuid".into(),
        paths: vec!["/dev/disk/by-id/x".into()],
        brick_count: 3,
        pending: None,
    }
}

fn brick(n: u8) -> BrickEntry {
    BrickEntry {
        id: format!("b{n}"),
        path: format!("/var/lib/heketi/mounts/vg_d1/brick_b{n}/brick"),
        device: "d1".into(),
        node: ID.into(),
        volume: "v1".into(),
        size: 1 << 20,
        tp_size: 1 << 20,
        pool_metadata_size: 8192,
        subtype: SUBTYPE_ARBITER,
        pending: Some("op1".into()),
        lvm_thin_pool: Some("tp_b1".into()),
        lvm_lv: None,
        pool_shared: true,
    }
}

fn volume() -> VolumeEntry {
    VolumeEntry {
        id: "v1".into(),
        name: "vol_v1".into(),
        cluster: "c1".into(),
        size: 10,
        durability: Durability {
            kind: "disperse".into(),
            replica: None,
            data: Some(4),
            redundancy: Some(2),
        },
        gid: 2001,
        options: vec!["performance.rda-cache-limit 10MB".into()],
        block: true,
        snapshot_enable: true,
        snapshot_factor: 1.5,
        arbiter: false,
        bricks: ["b1".to_string(), "b2".to_string()].into(),
        pending: None,
        hidden: false,
        block_free: 7,
        block_reserved: 1,
        block_restriction: "locked".into(),
        request_clusters: vec!["c1".into()],
        brick_sets: vec![vec!["b1".into(), "b2".into()]],
    }
}

fn blockvolume() -> BlockVolumeEntry {
    BlockVolumeEntry {
        id: "bv1".into(),
        name: "blockvol_bv1".into(),
        cluster: "c1".into(),
        bhv: "v1".into(),
        size: 3,
        usable_size: 2,
        hacount: 2,
        auth: true,
        hosts: vec!["10.0.0.1".into(), "10.0.0.2".into()],
        iqn: "iqn.2016-12.org.gluster-block:gbid".into(),
        username: "gbid".into(),
        password: "secret".into(),
        pending: Some("op1".into()),
        hidden: true,
    }
}

fn op(plan: OpPlan) -> Command {
    Command::OpBegin {
        op: Box::new(Operation {
            id: "op1".into(),
            kind: OpKind::VolumeCreate,
            created: 1_700_000_000,
            finished: Some(1_700_000_001),
            status: OpStatus::Pending,
            by_user: true,
            plan,
            location: Some("/volumes/v1".into()),
            error: Some("no space".into()),
            progress: 2,
        }),
    }
}

fn plans() -> Vec<OpPlan> {
    vec![
        OpPlan::NodeAdd {
            node: node(),
            probe_from: Some("10.0.0.2".into()),
        },
        OpPlan::NodeDelete {
            node: ID.into(),
            detach_from: Some("10.0.0.2".into()),
        },
        OpPlan::NodeState {
            node: ID.into(),
            state: "offline".into(),
        },
        OpPlan::DeviceAdd {
            device: device(),
            host: "node1.example".into(),
            destroydata: true,
        },
        OpPlan::DeviceDelete {
            device: "d1".into(),
            host: "node1.example".into(),
            forget: true,
        },
        OpPlan::DeviceState {
            device: "d1".into(),
            state: "failed".into(),
        },
        OpPlan::DeviceResync {
            device: "d1".into(),
            host: "node1.example".into(),
        },
        OpPlan::VolumeCreate {
            volume: volume(),
            bricks: vec![brick(1), brick(2)],
        },
        OpPlan::VolumeDelete { volume: "v1".into() },
        OpPlan::VolumeExpand {
            volume: "v1".into(),
            bricks: vec![brick(3)],
            delta: 5,
        },
        OpPlan::Evict {
            node: Some(ID.into()),
            devices: vec!["d1".into()],
            evictions: vec![Eviction {
                volume: "v1".into(),
                old: "b1".into(),
                new: brick(4),
            }],
            healcheck: true,
        },
        OpPlan::VolumeClone {
            source: "v1".into(),
            clone: volume(),
        },
        OpPlan::VolumeRestriction {
            volume: "v1".into(),
            restriction: "locked".into(),
        },
        OpPlan::Cleanup,
        OpPlan::NodeHealth { node: ID.into() },
        OpPlan::BlockVolumeCreate {
            block: Box::new(blockvolume()),
            new_bhv: Some(Box::new(volume())),
            bricks: vec![brick(1), brick(2)],
            prealloc: true,
        },
        OpPlan::BlockVolumeDelete { block: "bv1".into() },
        OpPlan::BlockVolumeExpand {
            block: "bv1".into(),
            new_size: 9,
        },
    ]
}

/// One value of every variant, every field set away from its default.
fn samples() -> Vec<Command> {
    let mut out: Vec<Command> = plans().into_iter().map(op).collect();
    out.extend([
        Command::ClusterCreate {
            id: "c1".into(),
            file: true,
            block: false,
        },
        Command::ClusterSetFlags {
            id: "c1".into(),
            file: false,
            block: true,
        },
        Command::ClusterDelete { id: "c1".into() },
        Command::OpFinish {
            id: "op1".into(),
            report: ExecReport {
                device_total: Some(100),
                device_extent: Some(4),
                device_used: Some(3),
                pv_uuid: Some("pv".into()),
                paths: vec!["/dev/vdb".into()],
                clones: vec![("b1".into(), "b9".into(), "/p".into())],
            },
            now: 1_700_000_002,
        },
        Command::OpFail {
            id: "op1".into(),
            error: "failed".into(),
            now: 3,
        },
        Command::OpGc { before: 4 },
        Command::SetTags {
            node: Some(ID.into()),
            device: Some("d1".into()),
            tags: tags(),
        },
        Command::SetAdminState {
            state: "read-only".into(),
        },
        Command::Import {
            set: Box::new(ImportSet {
                clusters: vec![(ClusterEntry::new("c1".into(), true, true), vec!["v1".into()])],
                nodes: vec![node()],
                devices: vec![(device(), vec!["b1".into()])],
                bricks: vec![brick(1)],
                volumes: vec![volume()],
            }),
        },
        Command::OpStep {
            id: "op1".into(),
            index: 3,
        },
        Command::OpBeginLimited {
            op: match op(OpPlan::VolumeDelete { volume: "v1".into() }) {
                Command::OpBegin { op } => op,
                _ => unreachable!(),
            },
            max_inflight: 16,
        },
        Command::OpGcBounded { before: 5, keep: 6 },
        Command::SetIdentity { id: ID.into() },
        Command::OpFailKept {
            id: "op1".into(),
            kept: vec!["b1".into()],
            error: "e".into(),
            now: 7,
        },
        Command::SetLogFormat { format: 1 },
        Command::SetNodeHealth {
            node: ID.into(),
            up: false,
            now: 1_700_000_003,
        },
        Command::OpFinishBlock {
            id: "op1".into(),
            export: BlockExport {
                hosts: vec!["10.0.0.1".into()],
                iqn: "iqn.2016-12.org.gluster-block:gbid".into(),
                username: "gbid".into(),
                password: "secret".into(),
                usable_size: 3,
            },
            now: 1_700_000_004,
        },
        Command::ImportWithBlock {
            set: Box::new(ImportSet {
                clusters: vec![(ClusterEntry::new("c1".into(), false, true), vec!["v1".into()])],
                nodes: vec![node()],
                devices: vec![(device(), vec!["b1".into()])],
                bricks: vec![brick(1)],
                volumes: vec![volume()],
            }),
            blockvolumes: vec![blockvolume()],
        },
    ]);
    out
}

/// Stored records (the snapshot carries them between builds too), by name, with the log
/// format they first appear in.
fn records() -> Vec<(&'static str, u16, Vec<u8>)> {
    let mut c = ClusterEntry::new("c1".into(), true, false);
    c.nodes.insert(ID.into());
    c.volume_count = 1;
    let mut o = match op(OpPlan::VolumeDelete { volume: "v1".into() }) {
        Command::OpBegin { op } => *op,
        _ => unreachable!(),
    };
    o.status = OpStatus::Done;
    let pending = PendingOps {
        ids: ["op1".to_string()].into(),
    };
    vec![
        ("record/Cluster", 0, record::encode(&c).unwrap()),
        ("record/Node", 0, record::encode(&node()).unwrap()),
        ("record/Device", 0, record::encode(&device()).unwrap()),
        ("record/Brick", 0, record::encode(&brick(1)).unwrap()),
        ("record/Volume", 0, record::encode(&volume()).unwrap()),
        ("record/Operation", 0, record::encode(&o).unwrap()),
        ("record/PendingOps", 0, record::encode(&pending).unwrap()),
        ("record/BlockVolume", 3, record::encode(&blockvolume()).unwrap()),
        (
            "record/NodeHealth",
            2,
            record::encode(&NodeHealth {
                up: false,
                checked: 9,
            })
            .unwrap(),
        ),
    ]
}

fn decode_record(name: &str, bytes: &[u8]) -> Vec<u8> {
    // Decoded and encoded again by this build: equal bytes mean equal values.
    fn again<T: record::Record>(b: &[u8]) -> Vec<u8> {
        record::encode(&record::decode::<T>(b).unwrap()).unwrap()
    }
    match name {
        "record/Cluster" => again::<ClusterEntry>(bytes),
        "record/Node" => again::<NodeEntry>(bytes),
        "record/Device" => again::<DeviceEntry>(bytes),
        "record/Brick" => again::<BrickEntry>(bytes),
        "record/Volume" => again::<VolumeEntry>(bytes),
        "record/Operation" => again::<Operation>(bytes),
        "record/PendingOps" => again::<PendingOps>(bytes),
        "record/NodeHealth" => again::<NodeHealth>(bytes),
        "record/BlockVolume" => again::<BlockVolumeEntry>(bytes),
        other => panic!("unknown record fixture {other}"),
    }
}

fn file(format: u16) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("src/state/testdata/log-v{format}.txt"))
}

/// `name hex` lines; `#` starts a comment.
fn read(format: u16) -> BTreeMap<String, Vec<u8>> {
    let text = std::fs::read_to_string(file(format)).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, hex) = l.split_once(' ').expect("fixture line: name hex");
            (name.to_string(), hex::decode(hex.trim()).expect("fixture hex"))
        })
        .collect()
}

/// What this build writes for each fixture name in `format`.
fn expected(format: u16) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = samples()
        .iter()
        .filter(|c| needs(c) <= format)
        .map(|c| (variant(c), encode_as(c, format).unwrap()))
        .collect();
    out.extend(
        records()
            .into_iter()
            .filter(|(_, since, _)| *since <= format)
            .map(|(n, _, b)| (n.to_string(), b)),
    );
    out
}

#[test]
fn every_fixture_of_every_format_decodes_to_the_same_value() {
    for format in 0..=CURRENT {
        let by_name: BTreeMap<String, Command> = samples().into_iter().map(|c| (variant(&c), c)).collect();
        let fixtures = read(format);
        assert!(!fixtures.is_empty(), "no fixtures for log format {format}");
        for (name, bytes) in fixtures {
            if name.starts_with("record/") {
                assert_eq!(
                    decode_record(&name, &bytes),
                    bytes,
                    "stored record {name} changed"
                );
                continue;
            }
            let got = decode(&bytes).unwrap_or_else(|e| panic!("log-v{format} {name}: {e}"));
            assert_eq!(
                Some(&got),
                by_name.get(&name),
                "log-v{format} {name} decodes differently"
            );
        }
    }
}

#[test]
fn every_variant_has_a_fixture_and_this_build_writes_it_byte_for_byte() {
    for format in 0..=CURRENT {
        let have = read(format);
        let want = expected(format);
        let missing: Vec<&String> = want.keys().filter(|n| !have.contains_key(*n)).collect();
        let blessable = format == CURRENT || !file(format).exists();
        if !missing.is_empty() && blessable && std::env::var("HEKATE_BLESS").is_ok() {
            let mut text = std::fs::read_to_string(file(format)).unwrap_or_else(|_| {
                format!("# Golden log entries of format {format}: `name hex`. Never edit a line.\n")
            });
            for n in &missing {
                text.push_str(&format!("{n} {}\n", hex::encode(&want[*n])));
            }
            std::fs::write(file(format), text).unwrap();
            continue;
        }
        assert!(
            missing.is_empty(),
            "log-v{format} lacks fixtures for {missing:?} (HEKATE_BLESS=1 adds them to the current format)"
        );
        for (name, bytes) in &have {
            assert_eq!(
                Some(bytes),
                want.get(name),
                "this build writes {name} differently in format {format}"
            );
        }
    }
}
