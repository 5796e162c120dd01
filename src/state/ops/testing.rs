//! The fixture of the state-effect tests: a real state machine on a temporary RocksDB store
//! (commands go through the same `apply` the replicas run), and a small world to act on.

use std::sync::Arc;

use hekate_raft::db::Store;
use hekate_raft::state_machine::StateMachine;
use hekate_raft::types::{AppRequest, Entry, LogId};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload};

use super::super::model::{
    BrickEntry, DeviceEntry, Durability, ExecReport, NodeEntry, OpKind, OpPlan, OpStatus, Operation,
    VolumeEntry,
};
use super::super::{get_device, Command, HekateApp, Outcome};

pub(crate) struct Sm {
    sm: StateMachine<HekateApp>,
    pub(crate) store: Store,
    next: u64,
}

impl Sm {
    pub(crate) fn new(dir: &std::path::Path) -> Sm {
        let store = Store::open(dir).unwrap();
        Sm {
            sm: StateMachine::new(store.clone(), Arc::new(HekateApp)),
            store,
            next: 0,
        }
    }

    /// Applies one command as a committed entry and returns what `apply` answered.
    pub(crate) async fn apply(&mut self, cmd: Command) -> Outcome {
        self.next += 1;
        let e = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), self.next),
            payload: EntryPayload::Normal(AppRequest(hekate_raft::codec::encode(&cmd).unwrap())),
        };
        let out = self.sm.apply(vec![e]).await.unwrap();
        hekate_raft::codec::decode(&out[0].0).unwrap()
    }
}

pub(crate) const GIB: u64 = 1 << 20;

pub(crate) fn id(n: u32) -> String {
    format!("{n:032x}")
}

pub(crate) fn op(n: u32, kind: OpKind, plan: OpPlan) -> Command {
    Command::OpBegin {
        op: Box::new(Operation {
            id: id(n),
            kind,
            created: 1,
            finished: None,
            status: OpStatus::Pending,
            by_user: false,
            plan,
            location: None,
            error: None,
            progress: 0,
        }),
    }
}

pub(crate) fn finish(n: u32) -> Command {
    Command::OpFinish {
        id: id(n),
        report: ExecReport {
            device_total: Some(100 * GIB),
            device_used: Some(0),
            ..Default::default()
        },
        now: 2,
    }
}

pub(crate) fn brick(n: u32, volume: &str) -> BrickEntry {
    BrickEntry {
        id: id(n),
        path: format!("/var/lib/heketi/mounts/vg_{}/brick_{}/brick", id(3), id(n)),
        device: id(3),
        node: id(2),
        volume: volume.into(),
        size: GIB,
        tp_size: GIB,
        pool_metadata_size: 8192,
        subtype: 1,
        pending: None,
        lvm_thin_pool: None,
        lvm_lv: None,
        pool_shared: false,
    }
}

pub(crate) fn node(n: u32, cluster: u32, host: &str) -> NodeEntry {
    NodeEntry {
        id: id(n),
        cluster: id(cluster),
        zone: 1,
        manage: vec![host.into()],
        storage: vec![format!("{host}.storage")],
        tags: Default::default(),
        state: "online".into(),
        devices: Default::default(),
        pending: None,
    }
}

pub(crate) fn device(n: u32, node: u32, name: &str) -> DeviceEntry {
    DeviceEntry {
        id: id(n),
        name: name.into(),
        node: id(node),
        tags: Default::default(),
        state: "online".into(),
        total: 0,
        free: 0,
        used: 0,
        extent_size: 4096,
        pv_uuid: String::new(),
        paths: vec![],
        brick_count: 0,
        pending: None,
    }
}

pub(crate) fn volume(n: u32, name: &str, cluster: u32) -> VolumeEntry {
    VolumeEntry {
        id: id(n),
        name: name.into(),
        cluster: id(cluster),
        size: 1,
        durability: Durability {
            kind: "none".into(),
            ..Default::default()
        },
        gid: 0,
        options: vec![],
        block: false,
        snapshot_enable: false,
        snapshot_factor: 1.0,
        arbiter: false,
        bricks: Default::default(),
        pending: None,
        hidden: false,
        block_free: 0,
        block_reserved: 0,
        block_restriction: String::new(),
        request_clusters: vec![],
        brick_sets: vec![],
    }
}

/// A cluster (1) with a node (2), a device (3) and a 1 GiB distribute volume (4) on brick 5.
pub(crate) async fn world(dir: &std::path::Path) -> Sm {
    let mut sm = Sm::new(dir);
    sm.apply(Command::ClusterCreate {
        id: id(1),
        file: true,
        block: false,
    })
    .await;
    let node = node(2, 1, "n1");
    sm.apply(op(
        100,
        OpKind::NodeAdd,
        OpPlan::NodeAdd {
            node,
            probe_from: None,
        },
    ))
    .await;
    sm.apply(finish(100)).await;
    let device = device(3, 2, "/dev/vdb");
    sm.apply(op(
        101,
        OpKind::DeviceAdd,
        OpPlan::DeviceAdd {
            device,
            host: "n1".into(),
            destroydata: false,
        },
    ))
    .await;
    sm.apply(finish(101)).await;
    let volume = volume(4, "vol", 1);
    sm.apply(op(
        102,
        OpKind::VolumeCreate,
        OpPlan::VolumeCreate {
            volume,
            bricks: vec![brick(5, &id(4))],
        },
    ))
    .await;
    sm.apply(finish(102)).await;
    sm
}

pub(crate) fn view(sm: &Sm) -> hekate_raft::app::View<'_> {
    hekate_raft::app::View::new(&sm.store)
}

pub(crate) fn used(sm: &Sm) -> u64 {
    get_device(&view(sm), &id(3)).unwrap().unwrap().used
}
