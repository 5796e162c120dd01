//! Table tests of the operations' state effects, through the same `apply` the replicas run,
//! on a temporary RocksDB store: every kind's begin (accepted and refused), finish and fail.
//! A refused begin writes nothing; a failed operation gives back all it reserved.

use std::collections::BTreeMap;

use hekate_raft::StateReader;

use super::super::model::{
    BrickEntry, Eviction, ExecReport, NodeHealth, OpKind, OpPlan, OpStatus, VolumeEntry,
};
use super::super::{get_cluster, get_device, get_node, get_op, get_volume, keys, Command, Outcome};
use super::testing::{brick, device, finish, id, node, op, used, view, volume, world, Sm, GIB};

/// A fresh world: cluster 1, online node 2 (`n1`), 100 GiB device 3, volume 4 ("vol") on brick 5.
async fn fresh() -> (tempfile::TempDir, Sm) {
    let dir = tempfile::tempdir().unwrap();
    let sm = world(dir.path()).await;
    (dir, sm)
}

fn big_brick(n: u32, volume: &str) -> BrickEntry {
    BrickEntry {
        tp_size: 200 * GIB,
        size: 200 * GIB,
        ..brick(n, volume)
    }
}

fn evict(new: u32) -> OpPlan {
    OpPlan::Evict {
        node: None,
        devices: vec![],
        evictions: vec![Eviction {
            volume: id(4),
            old: id(5),
            new: brick(new, &id(4)),
        }],
        healcheck: false,
    }
}

/// Everything but the queue's own records (operations, their index, the pending set).
fn records(sm: &Sm) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let queue = |k: &[u8]| {
        k.starts_with(keys::OP_PREFIX)
            || k.starts_with(keys::OP_DONE_PREFIX)
            || k == keys::PENDING_OPS
            || k == keys::OP_INDEX_MARK
    };
    view(sm)
        .scan_prefix(b"")
        .unwrap()
        .into_iter()
        .filter(|(k, _)| !queue(k))
        .collect()
}

fn pending(sm: &Sm) -> Vec<String> {
    super::super::pending_op_ids(&view(sm)).unwrap()
}

fn kind_of(plan: &OpPlan) -> OpKind {
    match plan {
        OpPlan::NodeAdd { .. } => OpKind::NodeAdd,
        OpPlan::NodeDelete { .. } => OpKind::NodeDelete,
        OpPlan::NodeState { .. } => OpKind::NodeState,
        OpPlan::DeviceAdd { .. } => OpKind::DeviceAdd,
        OpPlan::DeviceDelete { .. } => OpKind::DeviceDelete,
        OpPlan::DeviceState { .. } => OpKind::DeviceState,
        OpPlan::DeviceResync { .. } => OpKind::DeviceResync,
        OpPlan::VolumeCreate { .. } => OpKind::VolumeCreate,
        OpPlan::VolumeDelete { .. } => OpKind::VolumeDelete,
        OpPlan::VolumeExpand { .. } => OpKind::VolumeExpand,
        OpPlan::Evict { .. } => OpKind::BrickEvict,
        OpPlan::VolumeClone { .. } => OpKind::VolumeClone,
        OpPlan::VolumeRestriction { .. } => OpKind::VolumeRestriction,
        OpPlan::Cleanup => OpKind::Cleanup,
        OpPlan::NodeHealth { .. } => OpKind::NodeHealth,
        OpPlan::BlockVolumeCreate { .. } => OpKind::BlockVolumeCreate,
        OpPlan::BlockVolumeDelete { .. } => OpKind::BlockVolumeDelete,
        OpPlan::BlockVolumeExpand { .. } => OpKind::BlockVolumeExpand,
    }
}

fn begin(n: u32, plan: OpPlan) -> Command {
    op(n, kind_of(&plan), plan)
}

fn conflict(s: &str) -> Outcome {
    Outcome::Conflict(s.into())
}
fn failed(s: &str) -> Outcome {
    Outcome::Failed(s.into())
}
fn invalid(s: &str) -> Outcome {
    Outcome::Invalid(s.into())
}

/// Each kind's begin: accepted, and refused for each of its checks (Heketi's messages).
fn begin_cases() -> Vec<(&'static str, OpPlan, Outcome)> {
    let vdb = "Device /dev/vdb is already used by device";
    vec![
        ("node add", OpPlan::NodeAdd { node: node(6, 1, "n2"), probe_from: None }, Outcome::Done),
        ("node add, no cluster", OpPlan::NodeAdd { node: node(6, 9, "n2"), probe_from: None }, Outcome::NotFound),
        (
            "node add, host taken",
            OpPlan::NodeAdd { node: node(6, 1, "n1"), probe_from: None },
            conflict(&format!("Hostname n1 already used by node with id {}\n", id(2))),
        ),
        ("node delete, unknown", OpPlan::NodeDelete { node: id(9), detach_from: None }, Outcome::NotFound),
        (
            "node delete, with devices",
            OpPlan::NodeDelete { node: id(2), detach_from: None },
            conflict(&format!("Unable to delete node [{}] because it contains devices", id(2))),
        ),
        ("node state", OpPlan::NodeState { node: id(2), state: "offline".into() }, Outcome::Done),
        ("node state, unknown", OpPlan::NodeState { node: id(9), state: "offline".into() }, Outcome::NotFound),
        (
            "device add",
            OpPlan::DeviceAdd { device: device(7, 2, "/dev/vdc"), host: "n1".into(), destroydata: false },
            Outcome::Done,
        ),
        (
            "device add, no node",
            OpPlan::DeviceAdd { device: device(7, 9, "/dev/vdc"), host: "n1".into(), destroydata: false },
            Outcome::NotFound,
        ),
        (
            "device add, name taken",
            OpPlan::DeviceAdd { device: device(7, 2, "/dev/vdb"), host: "n1".into(), destroydata: false },
            conflict(&format!("{vdb} {} on node {}", id(3), id(2))),
        ),
        (
            "device delete, not failed",
            OpPlan::DeviceDelete { device: id(3), host: "n1".into(), forget: false },
            invalid(&format!("device: {} is not in failed state", id(3))),
        ),
        (
            "device delete, unknown",
            OpPlan::DeviceDelete { device: id(9), host: "n1".into(), forget: false },
            Outcome::NotFound,
        ),
        ("device state", OpPlan::DeviceState { device: id(3), state: "offline".into() }, Outcome::Done),
        ("device state, unknown", OpPlan::DeviceState { device: id(9), state: "offline".into() }, Outcome::NotFound),
        ("device resync", OpPlan::DeviceResync { device: id(3), host: "n1".into() }, Outcome::Done),
        ("device resync, unknown", OpPlan::DeviceResync { device: id(9), host: "n1".into() }, Outcome::NotFound),
        (
            "volume create",
            OpPlan::VolumeCreate { volume: volume(8, "v2", 1), bricks: vec![brick(6, &id(8))] },
            Outcome::Done,
        ),
        (
            "volume create, name taken",
            OpPlan::VolumeCreate { volume: volume(8, "vol", 1), bricks: vec![brick(6, &id(8))] },
            failed("Volume name 'vol' already in use"),
        ),
        (
            "volume create, no cluster",
            OpPlan::VolumeCreate { volume: volume(8, "v2", 9), bricks: vec![brick(6, &id(8))] },
            invalid(&format!("Cluster id {} not found", id(9))),
        ),
        (
            "volume create, no space",
            OpPlan::VolumeCreate { volume: volume(8, "v2", 1), bricks: vec![big_brick(6, &id(8))] },
            failed("No space"),
        ),
        (
            "volume create, beyond the maximum",
            OpPlan::VolumeCreate {
                volume: VolumeEntry { size: u64::MAX, ..volume(8, "v2", 1) },
                bricks: vec![brick(6, &id(8))],
            },
            invalid(&super::shared::too_big()),
        ),
        ("volume delete", OpPlan::VolumeDelete { volume: id(4) }, Outcome::Done),
        ("volume delete, unknown", OpPlan::VolumeDelete { volume: id(9) }, Outcome::NotFound),
        (
            "volume expand",
            OpPlan::VolumeExpand { volume: id(4), bricks: vec![brick(6, &id(4))], delta: 1 },
            Outcome::Done,
        ),
        (
            "volume expand, no space",
            OpPlan::VolumeExpand { volume: id(4), bricks: vec![big_brick(6, &id(4))], delta: 1 },
            failed("Failed to allocate volume expansion: No space"),
        ),
        (
            "volume expand, beyond the maximum",
            OpPlan::VolumeExpand { volume: id(4), bricks: vec![], delta: u64::MAX },
            invalid(&super::shared::too_big()),
        ),
        (
            "volume expand, unknown",
            OpPlan::VolumeExpand { volume: id(9), bricks: vec![], delta: 1 },
            Outcome::NotFound,
        ),
        ("evict", evict(6), Outcome::Done),
        (
            "evict, unknown device",
            OpPlan::Evict { node: None, devices: vec![id(9)], evictions: vec![], healcheck: false },
            Outcome::NotFound,
        ),
        ("volume clone", OpPlan::VolumeClone { source: id(4), clone: volume(8, "c", 1) }, Outcome::Done),
        (
            "volume clone, name taken",
            OpPlan::VolumeClone { source: id(4), clone: volume(8, "vol", 1) },
            failed(&format!("Failed clone volume {}: Volume name 'vol' already in use", id(4))),
        ),
        ("volume clone, unknown", OpPlan::VolumeClone { source: id(9), clone: volume(8, "c", 1) }, Outcome::NotFound),
        (
            "restriction, not block hosting",
            OpPlan::VolumeRestriction { volume: id(4), restriction: "locked".into() },
            failed("Failed to set block restriction: Block restrictions can only be set on block hosting volumes"),
        ),
        ("cleanup", OpPlan::Cleanup, Outcome::Done),
    ]
}

/// Every kind's begin against the world, accepted or refused with Heketi's message. A
/// refusal writes nothing: no record changes, no operation, nothing pending.
#[tokio::test]
async fn begin_accepts_or_refuses_each_kind_and_a_refusal_writes_nothing() {
    for (name, plan, want) in begin_cases() {
        let (_dir, mut sm) = fresh().await;
        let before = records(&sm);
        assert_eq!(sm.apply(begin(200, plan)).await, want, "{name}");
        let op = get_op(&view(&sm), &id(200)).unwrap();
        if want == Outcome::Done {
            assert_eq!(op.map(|o| o.status), Some(OpStatus::Pending), "{name}");
            assert_eq!(pending(&sm), vec![id(200)], "{name}");
        } else {
            assert!(op.is_none(), "{name}: a refused operation is not recorded");
            assert!(pending(&sm).is_empty(), "{name}");
            assert!(records(&sm) == before, "{name}: a refusal writes nothing");
        }
    }
}

#[tokio::test]
async fn an_operation_id_is_accepted_once() {
    let (_dir, mut sm) = fresh().await;
    assert_eq!(sm.apply(begin(200, OpPlan::Cleanup)).await, Outcome::Done);
    assert_eq!(
        sm.apply(begin(200, OpPlan::Cleanup)).await,
        conflict(&format!("operation {} already exists", id(200)))
    );
}

/// A begin of each kind that succeeds in the world.
fn reserving_cases() -> Vec<(&'static str, OpPlan)> {
    vec![
        (
            "node add",
            OpPlan::NodeAdd {
                node: node(6, 1, "n2"),
                probe_from: None,
            },
        ),
        (
            "node state",
            OpPlan::NodeState {
                node: id(2),
                state: "offline".into(),
            },
        ),
        (
            "device add",
            OpPlan::DeviceAdd {
                device: device(7, 2, "/dev/vdc"),
                host: "n1".into(),
                destroydata: false,
            },
        ),
        (
            "device state",
            OpPlan::DeviceState {
                device: id(3),
                state: "offline".into(),
            },
        ),
        (
            "device resync",
            OpPlan::DeviceResync {
                device: id(3),
                host: "n1".into(),
            },
        ),
        (
            "volume create",
            OpPlan::VolumeCreate {
                volume: volume(8, "v2", 1),
                bricks: vec![brick(6, &id(8))],
            },
        ),
        ("volume delete", OpPlan::VolumeDelete { volume: id(4) }),
        (
            "volume expand",
            OpPlan::VolumeExpand {
                volume: id(4),
                bricks: vec![brick(6, &id(4))],
                delta: 1,
            },
        ),
        ("evict", evict(6)),
        (
            "volume clone",
            OpPlan::VolumeClone {
                source: id(4),
                clone: volume(8, "c", 1),
            },
        ),
        ("cleanup", OpPlan::Cleanup),
    ]
}

/// Every kind that reserves something gives all of it back when it fails before any point
/// of no return: the records are as before the operation began.
#[tokio::test]
async fn a_failed_operation_gives_back_all_it_reserved() {
    for (name, plan) in reserving_cases() {
        let (_dir, mut sm) = fresh().await;
        let before = records(&sm);
        assert_eq!(sm.apply(begin(200, plan)).await, Outcome::Done, "{name}");
        let fail = Command::OpFail {
            id: id(200),
            error: "boom".into(),
            now: 5,
        };
        assert_eq!(sm.apply(fail.clone()).await, Outcome::Done, "{name}");
        let o = get_op(&view(&sm), &id(200)).unwrap().unwrap();
        assert_eq!(
            (o.status, o.error.as_deref(), o.finished),
            (OpStatus::Failed, Some("boom"), Some(5)),
            "{name}"
        );
        assert!(pending(&sm).is_empty(), "{name}");
        assert!(records(&sm) == before, "{name}: everything given back");
        // A late duplicate changes nothing.
        assert_eq!(sm.apply(fail).await, Outcome::Done, "{name}");
        assert_eq!(sm.apply(finish(200)).await, Outcome::Done, "{name}");
        assert_eq!(
            get_op(&view(&sm), &id(200)).unwrap().unwrap().status,
            OpStatus::Failed
        );
    }
}

/// A sequence of operations, each finished: (plan, what the steps report, location).
fn finish_steps() -> Vec<(OpPlan, ExecReport, Option<String>)> {
    vec![
        (
            OpPlan::NodeAdd {
                node: node(6, 1, "n2"),
                probe_from: None,
            },
            ExecReport::default(),
            Some(format!("/nodes/{}", id(6))),
        ),
        (
            OpPlan::NodeState {
                node: id(6),
                state: "offline".into(),
            },
            ExecReport::default(),
            None,
        ),
        (
            OpPlan::DeviceAdd {
                device: device(7, 6, "/dev/vdc"),
                host: "n2".into(),
                destroydata: false,
            },
            ExecReport {
                device_total: Some(10 * GIB),
                device_used: Some(GIB),
                pv_uuid: Some("pv".into()),
                ..Default::default()
            },
            None,
        ),
        (
            OpPlan::DeviceResync {
                device: id(7),
                host: "n2".into(),
            },
            ExecReport {
                device_total: Some(20 * GIB),
                device_used: Some(GIB),
                ..Default::default()
            },
            None,
        ),
        (
            OpPlan::DeviceState {
                device: id(7),
                state: "failed".into(),
            },
            ExecReport::default(),
            None,
        ),
        (
            OpPlan::VolumeCreate {
                volume: volume(8, "v2", 1),
                bricks: vec![brick(9, &id(8))],
            },
            ExecReport::default(),
            Some(format!("/volumes/{}", id(8))),
        ),
        (
            OpPlan::VolumeExpand {
                volume: id(8),
                bricks: vec![brick(10, &id(8))],
                delta: 1,
            },
            ExecReport::default(),
            Some(format!("/volumes/{}", id(8))),
        ),
        (
            OpPlan::VolumeClone {
                source: id(4),
                clone: volume(11, "c", 1),
            },
            ExecReport {
                clones: vec![(id(5), "/run/gluster/snaps/x/brick".into(), "lv_x".into())],
                ..Default::default()
            },
            Some(format!("/volumes/{}", id(11))),
        ),
        (
            OpPlan::DeviceDelete {
                device: id(7),
                host: "n2".into(),
                forget: false,
            },
            ExecReport::default(),
            None,
        ),
        (
            OpPlan::NodeDelete {
                node: id(6),
                detach_from: None,
            },
            ExecReport::default(),
            None,
        ),
        (
            OpPlan::VolumeDelete { volume: id(8) },
            ExecReport::default(),
            None,
        ),
        (OpPlan::Cleanup, ExecReport::default(), None),
    ]
}

/// What finishing kind `what` made visible in the world of `finish_makes_each_kind_s_result_visible`.
fn check_finished(sm: &Sm, what: &str) {
    let v = view(sm);
    match what {
        "NodeAdd" => {
            assert!(get_cluster(&v, &id(1)).unwrap().unwrap().nodes.contains(&id(6)));
            assert!(get_node(&v, &id(6)).unwrap().unwrap().pending.is_none());
        }
        "NodeState" => assert_eq!(get_node(&v, &id(6)).unwrap().unwrap().state, "offline"),
        "DeviceAdd" => {
            let d = get_device(&v, &id(7)).unwrap().unwrap();
            assert_eq!(
                (d.total, d.used, d.free, d.pv_uuid.as_str()),
                (10 * GIB, GIB, 9 * GIB, "pv")
            );
            assert!(get_node(&v, &id(6)).unwrap().unwrap().devices.contains(&id(7)));
        }
        "DeviceResync" => assert_eq!(get_device(&v, &id(7)).unwrap().unwrap().free, 19 * GIB),
        "DeviceState" => assert_eq!(get_device(&v, &id(7)).unwrap().unwrap().state, "failed"),
        "VolumeCreate" => {
            let vol = get_volume(&v, &id(8)).unwrap().unwrap();
            assert!(!vol.hidden && vol.pending.is_none());
            assert_eq!(get_cluster(&v, &id(1)).unwrap().unwrap().volume_count, 2);
        }
        "VolumeExpand" => {
            let vol = get_volume(&v, &id(8)).unwrap().unwrap();
            assert_eq!((vol.size, vol.bricks.len()), (2, 2));
        }
        "VolumeClone" => {
            let c = get_volume(&v, &id(11)).unwrap().unwrap();
            assert!(!c.hidden && c.bricks.len() == 1);
            assert!(get_volume(&v, &id(4)).unwrap().unwrap().pending.is_none());
        }
        "DeviceDelete" => assert!(get_device(&v, &id(7)).unwrap().is_none()),
        "NodeDelete" => {
            assert!(get_node(&v, &id(6)).unwrap().is_none());
            assert!(v.get(&keys::manage_host("n2")).unwrap().is_none());
        }
        "VolumeDelete" => {
            assert!(get_volume(&v, &id(8)).unwrap().is_none());
            assert!(v.get(&keys::volume_name(&id(1), "v2")).unwrap().is_none());
        }
        _ => {}
    }
}

/// Finishing each kind makes its result visible, with the location `/queue` redirects to.
#[tokio::test]
async fn finish_makes_each_kind_s_result_visible() {
    let (_dir, mut sm) = fresh().await;
    let mut n = 200;
    let mut run = |plan: OpPlan, report: ExecReport| {
        n += 1;
        let at = n;
        (
            begin(at, plan),
            Command::OpFinish {
                id: id(at),
                report,
                now: 9,
            },
            at,
        )
    };
    let location = |sm: &Sm, at: u32| get_op(&view(sm), &id(at)).unwrap().unwrap().location;
    for (plan, report, want) in finish_steps() {
        let what = format!("{:?}", kind_of(&plan));
        let (b, f, at) = run(plan, report);
        assert_eq!(sm.apply(b).await, Outcome::Done, "{what}");
        assert_eq!(sm.apply(f).await, Outcome::Done, "{what}");
        assert_eq!(location(&sm, at), want, "{what}");
        check_finished(&sm, &what);
    }
    assert!(pending(&sm).is_empty());
}

/// An eviction commits move by move; finished, its devices are failed.
#[tokio::test]
async fn an_eviction_commits_each_move_then_fails_its_devices() {
    let (_dir, mut sm) = fresh().await;
    let vdc = OpPlan::DeviceAdd {
        device: device(7, 2, "/dev/vdc"),
        host: "n1".into(),
        destroydata: false,
    };
    assert_eq!(sm.apply(begin(199, vdc)).await, Outcome::Done);
    assert_eq!(sm.apply(finish(199)).await, Outcome::Done);
    let new = BrickEntry {
        device: id(7),
        ..brick(6, &id(4))
    };
    let plan = OpPlan::Evict {
        node: Some(id(2)),
        devices: vec![id(3)],
        evictions: vec![Eviction {
            volume: id(4),
            old: id(5),
            new: new.clone(),
        }],
        healcheck: false,
    };
    assert_eq!(sm.apply(begin(200, plan)).await, Outcome::Done);
    let step = |index| Command::OpStep { id: id(200), index };
    assert_eq!(
        sm.apply(step(1)).await,
        Outcome::Done,
        "a step out of order is ignored"
    );
    assert_eq!(get_op(&view(&sm), &id(200)).unwrap().unwrap().progress, 0);
    assert_eq!(sm.apply(step(0)).await, Outcome::Done);
    let v = get_volume(&view(&sm), &id(4)).unwrap().unwrap();
    assert_eq!(v.bricks.iter().cloned().collect::<Vec<_>>(), vec![id(6)]);
    assert_eq!(sm.apply(step(1)).await, invalid("no such step"));
    assert_eq!(sm.apply(finish(200)).await, Outcome::Done);
    assert_eq!(get_device(&view(&sm), &id(3)).unwrap().unwrap().state, "failed");
    assert_eq!(get_node(&view(&sm), &id(2)).unwrap().unwrap().state, "failed");
    assert_eq!(used(&sm), 0, "the old brick's space is back");
    let vdc = get_device(&view(&sm), &id(7)).unwrap().unwrap();
    assert_eq!((vdc.used, vdc.brick_count), (new.allocation(), 1));
}

/// Steps and kept bricks only for the kinds that have them.
#[tokio::test]
async fn steps_and_kept_bricks_are_refused_to_other_kinds() {
    let (_dir, mut sm) = fresh().await;
    assert_eq!(sm.apply(begin(200, OpPlan::Cleanup)).await, Outcome::Done);
    let step = Command::OpStep {
        id: id(200),
        index: 0,
    };
    assert_eq!(sm.apply(step).await, invalid("not a multi-step operation"));
    let kept = Command::OpFailKept {
        id: id(200),
        kept: vec![],
        error: "x".into(),
        now: 3,
    };
    assert_eq!(
        sm.apply(kept).await,
        invalid(&format!("operation {} does not add bricks to a volume", id(200)))
    );
    let unknown = Command::OpFinish {
        id: id(999),
        report: ExecReport::default(),
        now: 1,
    };
    assert_eq!(sm.apply(unknown).await, Outcome::NotFound);
}

/// What a pending operation holds (reconcile leaves it alone) and Heketi's `changes`.
#[tokio::test]
async fn holds_and_changes_name_what_an_operation_works_on() {
    let (_dir, mut sm) = fresh().await;
    assert_eq!(sm.apply(begin(200, evict(6))).await, Outcome::Done);
    let o = get_op(&view(&sm), &id(200)).unwrap().unwrap();
    let h = super::holds(&view(&sm), &o).unwrap();
    assert_eq!(h.volumes.into_iter().collect::<Vec<_>>(), vec!["vol".to_string()]);
    assert_eq!(h.bricks.into_iter().collect::<Vec<_>>(), vec![id(5), id(6)]);
    assert_eq!(h.devices.into_iter().collect::<Vec<_>>(), vec![id(3)]);
    assert!(super::changes(&o).is_empty());
    let create = OpPlan::VolumeCreate {
        volume: volume(8, "v2", 1),
        bricks: vec![brick(6, &id(8))],
    };
    assert_eq!(sm.apply(begin(201, create)).await, Outcome::Done);
    let o = get_op(&view(&sm), &id(201)).unwrap().unwrap();
    assert_eq!(
        super::changes(&o),
        vec![(id(8), "Add volume"), (id(6), "Add brick")]
    );
}

#[tokio::test]
async fn a_node_health_check_records_the_node_up_or_down_and_leaves_its_state() {
    let (_dir, mut sm) = fresh().await;
    let check = |n| begin(n, OpPlan::NodeHealth { node: id(2) });
    let health = |sm: &Sm| crate::state::node_health(&view(sm), &id(2)).unwrap();
    assert_eq!(sm.apply(check(200)).await, Outcome::Done);
    let fail = Command::OpFail {
        id: id(200),
        error: "glusterd is not running".into(),
        now: 3,
    };
    assert_eq!(sm.apply(fail).await, Outcome::Done);
    assert_eq!(
        health(&sm),
        Some(NodeHealth {
            up: false,
            checked: 3
        })
    );
    assert_eq!(get_node(&view(&sm), &id(2)).unwrap().unwrap().state, "online");
    assert_eq!(sm.apply(check(201)).await, Outcome::Done);
    assert_eq!(sm.apply(finish(201)).await, Outcome::Done);
    assert!(health(&sm).unwrap().up);
    let unknown = begin(202, OpPlan::NodeHealth { node: id(9) });
    assert_eq!(sm.apply(unknown).await, Outcome::NotFound);
}
