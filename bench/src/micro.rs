//! Microbenchmarks, in process: brick placement over 10 / 100 / 1,000 devices in 1 / 3 / 10
//! zones, and the state machine's apply throughput per command kind (RocksDB, synced batches
//! as in production).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use hekate::allocator::{self, DeviceView, Request, GIB_KIB};
use hekate::state::model::{
    BrickEntry, DeviceEntry, Durability, ExecReport, NodeEntry, OpKind, OpPlan, OpStatus, Operation,
    VolumeEntry,
};
use hekate::state::{Command, HekateApp};
use hekate_raft::db::Store;
use hekate_raft::state_machine::StateMachine;
use hekate_raft::types::{AppRequest, Entry, LogId};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload};
use serde::Serialize;

use crate::stats::{summarize, Summary};

#[derive(Debug, Serialize)]
pub struct PlacePoint {
    pub devices: usize,
    pub zones: usize,
    pub place_us: Summary,
}

#[derive(Debug, Serialize)]
pub struct ApplyPoint {
    pub command: String,
    pub batch: usize,
    pub commands_per_s: f64,
}

#[derive(Debug, Serialize)]
pub struct MicroResults {
    pub placement: Vec<PlacePoint>,
    pub apply: Vec<ApplyPoint>,
}

fn devices(n: usize, zones: usize) -> Vec<DeviceView> {
    // Four devices per node, nodes spread over the zones; free space varies.
    (0..n)
        .map(|i| DeviceView {
            id: format!("{i:032x}"),
            node: format!("{:032x}", i / 4),
            zone: ((i / 4) % zones) as i64 + 1,
            free: (500 + (i as u64 * 37) % 500) * GIB_KIB,
            extent: 4096,
            tags: Default::default(),
        })
        .collect()
}

fn place_points() -> Vec<PlacePoint> {
    let mut out = Vec::new();
    for &n in &[10usize, 100, 1000] {
        for &zones in &[1usize, 3, 10] {
            let devs = devices(n, zones);
            let mut samples = Vec::new();
            for seed in 0..200u64 {
                let req = Request {
                    size_gib: 100,
                    set_size: 3,
                    data_bricks: 1,
                    snapshot_factor: 1.0,
                    brick_min_kib: GIB_KIB,
                    brick_max_kib: 4096 * GIB_KIB,
                    max_bricks: 32,
                    existing_bricks: 0,
                    zone_strict: false,
                    tag_rule: None,
                    arbiter: false,
                    average_file_kib: 64,
                    seed,
                };
                let t = Instant::now();
                let p = allocator::place(&devs, &req);
                samples.push(t.elapsed().as_secs_f64() * 1e6);
                assert!(p.is_ok());
            }
            out.push(PlacePoint {
                devices: n,
                zones,
                place_us: summarize(&samples),
            });
        }
    }
    out
}

fn entry(index: u64, cmd: &Command) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(AppRequest(hekate_raft::codec::encode(cmd).unwrap_or_default())),
    }
}

fn op(id: String, kind: OpKind, plan: OpPlan) -> Operation {
    Operation {
        id,
        kind,
        created: 0,
        finished: None,
        status: OpStatus::Pending,
        by_user: false,
        plan,
        location: None,
        error: None,
        progress: 0,
    }
}

/// A 32-hex-digit id, unique per (`i`, `tag`), spread over the keyspace as the random ids
/// of a real cluster are (a splitmix64 of both leads; `GET /topology` reads the bricks'
/// keyspace in shares cut by the first hex digit).
fn hex(i: u64, tag: u8) -> String {
    let mut z = i
        .wrapping_add(u64::from(tag) << 56)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    format!("{z:016x}{i:014x}{tag:02x}")
}

/// Applies `cmds` in batches of `batch`, returns commands per second.
async fn apply_rate(
    sm: &mut StateMachine<HekateApp>,
    next: &mut u64,
    cmds: Vec<Command>,
    batch: usize,
) -> f64 {
    let n = cmds.len();
    let t = Instant::now();
    for chunk in cmds.chunks(batch) {
        let entries: Vec<Entry> = chunk
            .iter()
            .map(|c| {
                *next += 1;
                entry(*next, c)
            })
            .collect();
        sm.apply(entries).await.expect("apply");
    }
    n as f64 / t.elapsed().as_secs_f64()
}

async fn apply_points() -> anyhow::Result<Vec<ApplyPoint>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let mut sm = StateMachine::new(store, Arc::new(HekateApp));
    let mut next = 0u64;
    let mut out = Vec::new();
    // Topology: one cluster, 3 nodes with 4 devices of 100 TiB each.
    let (cluster, setup, devs) = cluster_setup(1);
    apply_rate(&mut sm, &mut next, setup, 64).await;

    for &batch in &[1usize, 64] {
        let cmds: Vec<Command> = (0..2000u64)
            .map(|i| Command::ClusterCreate {
                id: hex(i + batch as u64 * 100_000, 0xcc),
                file: true,
                block: false,
            })
            .collect();
        out.push(ApplyPoint {
            command: "ClusterCreate".into(),
            batch,
            commands_per_s: apply_rate(&mut sm, &mut next, cmds, batch).await,
        });

        // A replica-3 volume create: OpBegin (with 3 bricks) then OpFinish.
        let (begins, finishes): (Vec<_>, Vec<_>) = (0..1000u64)
            .map(|i| volume_create(i + batch as u64 * 100_000, &cluster, &devs))
            .unzip();
        out.push(ApplyPoint {
            command: "OpBegin(VolumeCreate)".into(),
            batch,
            commands_per_s: apply_rate(&mut sm, &mut next, begins, batch).await,
        });
        out.push(ApplyPoint {
            command: "OpFinish(VolumeCreate)".into(),
            batch,
            commands_per_s: apply_rate(&mut sm, &mut next, finishes, batch).await,
        });
    }
    Ok(out)
}

pub async fn run() -> anyhow::Result<MicroResults> {
    eprintln!("placement over 10/100/1000 devices");
    let placement = place_points();
    eprintln!("apply throughput");
    let apply = apply_points().await?;
    Ok(MicroResults { placement, apply })
}

/// `GET /topology` at scale, in process (issue 13: <= 1 s at 100,000 volumes): a store filled
/// through `apply` with `volumes` replica-3 volumes over clusters of 3 nodes with 4 devices
/// (900 volumes each, as `dev-creates`), then the document built and written as the handler
/// does, timed. The same store's snapshot is then built, opened as a leader does to send it,
/// and installed into an empty replica's store, each phase timed once (issue 13: a new
/// replica caught up by snapshot in <= 10 s).
#[derive(Debug, Serialize)]
pub struct TopologyPoint {
    pub volumes: usize,
    pub clusters: usize,
    pub fill_s: f64,
    pub bytes: usize,
    pub build_ms: Summary,
    /// The CPU time (user and system, all threads) each document took: what the wall time
    /// above is made of on 2 busy cores, and steadier than it on a shared machine.
    pub build_cpu_ms: Summary,
    /// A brick's record read by its key, 20,000 bricks spread over the store (what
    /// reconcile and the writes' checks do): microseconds per read.
    pub brick_get_us: f64,
    pub snapshot_bytes: usize,
    pub snapshot_build_ms: f64,
    pub snapshot_open_ms: f64,
    pub snapshot_install_ms: f64,
}

/// The setup commands of cluster `k` (3 nodes, 4 devices of 100 TiB each) and its devices.
fn cluster_setup(k: u64) -> (String, Vec<Command>, Vec<(String, String)>) {
    let cluster = hex(k, 0xc1);
    let mut cmds = vec![Command::ClusterCreate {
        id: cluster.clone(),
        file: true,
        block: true,
    }];
    let mut devs = Vec::new();
    for n in 0..3u64 {
        let nid = hex(k * 3 + n, 0xa0);
        let node = NodeEntry {
            id: nid.clone(),
            cluster: cluster.clone(),
            zone: n as i64 + 1,
            manage: vec![format!("c{k}node{n}")],
            storage: vec![format!("10.{k}.0.{n}")],
            tags: Default::default(),
            state: "online".into(),
            devices: Default::default(),
            pending: None,
        };
        let oid = hex(k * 3 + n, 0x01);
        let plan = OpPlan::NodeAdd {
            node,
            probe_from: None,
        };
        cmds.push(Command::OpBegin {
            op: Box::new(op(oid.clone(), OpKind::NodeAdd, plan)),
        });
        cmds.push(Command::OpFinish {
            id: oid,
            report: ExecReport::default(),
            now: 0,
        });
        for d in 0..4u64 {
            let i = (k * 3 + n) * 4 + d;
            let did = hex(i, 0xd0);
            let device = DeviceEntry {
                id: did.clone(),
                name: format!("/dev/vd{}", (b'b' + d as u8) as char),
                node: nid.clone(),
                tags: Default::default(),
                state: "online".into(),
                total: 0,
                free: 0,
                used: 0,
                extent_size: 4096,
                pv_uuid: String::new(),
                paths: Vec::new(),
                brick_count: 0,
                pending: None,
            };
            let oid = hex(i, 0x02);
            let plan = OpPlan::DeviceAdd {
                device,
                host: format!("c{k}node{n}"),
                destroydata: false,
            };
            cmds.push(Command::OpBegin {
                op: Box::new(op(oid.clone(), OpKind::DeviceAdd, plan)),
            });
            let report = ExecReport {
                device_total: Some(100 * 1024 * GIB_KIB),
                device_extent: Some(4096),
                device_used: Some(0),
                ..Default::default()
            };
            cmds.push(Command::OpFinish {
                id: oid,
                report,
                now: 0,
            });
            devs.push((did, nid.clone()));
        }
    }
    (cluster, cmds, devs)
}

/// A replica-3 volume create of volume `i` in `cluster`: its OpBegin and OpFinish.
fn volume_create(i: u64, cluster: &str, devs: &[(String, String)]) -> (Command, Command) {
    let vid = hex(i, 0x70);
    let opid = hex(i, 0x0f);
    let bricks: Vec<BrickEntry> = (0..3u64)
        .map(|k| {
            // One device of each node, rotating over its four.
            let (did, nid) = devs[(k as usize) * 4 + (i as usize % 4)].clone();
            let bid = hex(i * 3 + k, 0xb0);
            BrickEntry {
                path: format!("/var/lib/heketi/mounts/vg_{did}/brick_{bid}/brick"),
                id: bid,
                device: did,
                node: nid,
                volume: vid.clone(),
                size: GIB_KIB,
                tp_size: GIB_KIB,
                pool_metadata_size: 8192,
                subtype: 1,
                pending: Some(opid.clone()),
                lvm_thin_pool: None,
                lvm_lv: None,
                pool_shared: false,
            }
        })
        .collect();
    let volume = VolumeEntry {
        id: vid.clone(),
        name: format!("vol_{vid}"),
        cluster: cluster.to_string(),
        size: 1,
        durability: Durability {
            kind: "replicate".into(),
            replica: Some(3),
            data: None,
            redundancy: None,
        },
        gid: 0,
        options: vec![String::new(), String::new()],
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
        request_clusters: Vec::new(),
        brick_sets: Vec::new(),
    };
    let begin = Command::OpBegin {
        op: Box::new(op(
            opid.clone(),
            OpKind::VolumeCreate,
            OpPlan::VolumeCreate { volume, bricks },
        )),
    };
    let finish = Command::OpFinish {
        id: opid,
        report: ExecReport::default(),
        now: 0,
    };
    (begin, finish)
}

/// Microseconds per point read of a brick's record, over 20,000 bricks of the `made`
/// volumes' taken in a stride across the keyspace (the ids are hashes: no two in a block).
fn brick_gets(store: &Store, made: usize) -> f64 {
    use hekate_raft::StateReader;
    let view = hekate_raft::app::View::new(store);
    let n = 20_000usize;
    let t = Instant::now();
    let mut found = 0;
    for k in 0..n {
        let i = (k * 7919) % made.max(1);
        let key = hekate::state::keys::brick(&hex(i as u64 * 3, 0xb0));
        found += usize::from(view.get(&key).ok().flatten().is_some());
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    assert_eq!(found, n, "every brick read is there");
    us
}

/// Applies `volumes` replica-3 volume creates over clusters of `per_cluster` (each with its
/// nodes and devices first); how many were made.
async fn fill(sm: &mut StateMachine<HekateApp>, volumes: usize, per_cluster: usize) -> usize {
    let mut next = 0u64;
    let mut made = 0usize;
    for k in 0..volumes.div_ceil(per_cluster).max(1) as u64 {
        let (cluster, setup, devs) = cluster_setup(k);
        apply_rate(sm, &mut next, setup, 64).await;
        let n = per_cluster.min(volumes - made);
        let (begins, finishes): (Vec<_>, Vec<_>) = (0..n as u64)
            .map(|j| volume_create(made as u64 + j, &cluster, &devs))
            .unzip();
        apply_rate(sm, &mut next, begins, 64).await;
        apply_rate(sm, &mut next, finishes, 64).await;
        made += n;
    }
    made
}

/// This process's CPU time so far (every thread's), ms.
fn process_cpu_ms() -> anyhow::Result<f64> {
    crate::procfs::cpu_ms("self").context("/proc/self/stat unreadable")
}

pub async fn topology(
    volumes: usize,
    rounds: usize,
    keep: Option<std::path::PathBuf>,
) -> anyhow::Result<TopologyPoint> {
    const PER_CLUSTER: usize = 900;
    let temp = tempfile::tempdir()?;
    let dir = keep.clone().unwrap_or_else(|| temp.path().to_path_buf());
    // A kept store records how many volumes it was filled with once the fill is over.
    let filled = dir.join("hekate-bench-filled");
    let reuse = std::fs::read_to_string(&filled)
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok());
    if let Some(n) = reuse.filter(|&n| n != volumes) {
        anyhow::bail!("{} holds {n} volumes, not {volumes}", dir.display());
    }
    let store = Store::open(&dir)?;
    let mut sm = StateMachine::new(store.clone(), Arc::new(HekateApp));
    let clusters = volumes.div_ceil(PER_CLUSTER).max(1);
    let t = Instant::now();
    let made = match reuse {
        Some(n) => n,
        None => {
            let made = fill(&mut sm, volumes, PER_CLUSTER).await;
            eprintln!(
                "{made} volumes in {clusters} clusters applied in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            if keep.is_some() {
                std::fs::write(&filled, made.to_string())?;
            }
            made
        }
    };
    let fill_s = t.elapsed().as_secs_f64();
    let mut ms = Vec::new();
    let mut cpu_ms = Vec::new();
    let mut bytes = 0;
    for _ in 0..rounds {
        let cpu = process_cpu_ms()?;
        let t = Instant::now();
        let view = hekate_raft::app::View::new(&store);
        // The chunks are dropped as a socket would take them; + 1: the handler's newline.
        bytes = 1;
        hekate::views::topology_chunks(&view, &mut |chunk| {
            bytes += chunk.len();
            true
        })?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        cpu_ms.push(process_cpu_ms()? - cpu);
    }
    let build_ms = summarize(&ms);
    let build_cpu_ms = summarize(&cpu_ms);
    eprintln!(
        "topology: {bytes} bytes, p50 {:.0} ms, CPU p50 {:.0} ms",
        build_ms.p50_ms, build_cpu_ms.p50_ms
    );
    let brick_get_us = brick_gets(&store, made);
    eprintln!("brick point reads: {brick_get_us:.1} us each");
    let ms_since = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let built = sm.get_snapshot_builder().await.build_snapshot().await?;
    let snapshot_build_ms = ms_since(t);
    let snapshot_bytes = built.snapshot.get_ref().len();
    drop(built);
    let t = Instant::now();
    let current = sm
        .get_current_snapshot()
        .await?
        .context("no snapshot after a build")?;
    let snapshot_open_ms = ms_since(t);
    let empty = tempfile::tempdir()?;
    let mut new = StateMachine::new(Store::open(empty.path())?, Arc::new(HekateApp));
    let t = Instant::now();
    new.install_snapshot(&current.meta, current.snapshot).await?;
    let snapshot_install_ms = ms_since(t);
    eprintln!(
        "snapshot: {snapshot_bytes} bytes, built in {snapshot_build_ms:.0} ms, opened in \
         {snapshot_open_ms:.0} ms, installed in {snapshot_install_ms:.0} ms"
    );
    Ok(TopologyPoint {
        build_cpu_ms,
        brick_get_us,
        volumes: made,
        clusters,
        fill_s,
        bytes,
        build_ms,
        snapshot_bytes,
        snapshot_build_ms,
        snapshot_open_ms,
        snapshot_install_ms,
    })
}
