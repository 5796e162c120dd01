//! Golden tests of [`super::compare`] and [`super::stable`]: one small world (a cluster of
//! three nodes, one device each, a replica-3 volume) whose nodes report exactly what the state
//! says, then one change per scenario, on the nodes' side or the state's. Each scenario's
//! findings are compared with `src/reconcile/testdata/compare/<scenario>.json`
//! (`HEKATE_BLESS=1` rewrites them). Every finding kind is produced by some scenario, and each
//! way an operation in flight makes things busy is shown to silence what it touches.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::executor::VgInventory;
use crate::state::model::OpPlan;
use crate::state::model::{Durability, Eviction, OpKind, OpStatus};

/// A 32-hex id: `prefix` (a hex digit naming the kind) then `n`.
fn id(prefix: char, n: u32) -> String {
    format!("{prefix}{n:031x}")
}

fn cluster_id() -> String {
    id('c', 1)
}
fn node_id(i: u32) -> String {
    id('a', i)
}
fn device_id(i: u32) -> String {
    id('d', i)
}
fn brick_id(i: u32) -> String {
    id('b', i)
}
fn volume_id(i: u32) -> String {
    id('e', i)
}
fn storage(i: u32) -> String {
    format!("10.0.0.{i}")
}

const GIB_KIB: u64 = 1024 * 1024;

fn node(i: u32) -> NodeEntry {
    NodeEntry {
        id: node_id(i),
        cluster: cluster_id(),
        zone: i as i64,
        manage: vec![format!("node{i}.example")],
        storage: vec![storage(i)],
        tags: Default::default(),
        state: "online".into(),
        devices: [device_id(i)].into(),
        pending: None,
    }
}

fn device(i: u32, used: u64) -> DeviceEntry {
    DeviceEntry {
        id: device_id(i),
        name: "/dev/sdb".into(),
        node: node_id(i),
        tags: Default::default(),
        state: "online".into(),
        total: 100 * GIB_KIB,
        free: 100 * GIB_KIB - used,
        used,
        extent_size: 4096,
        pv_uuid: format!("pv-{i}"),
        paths: vec!["/dev/sdb".into()],
        brick_count: 1,
        pending: None,
    }
}

/// Brick `b` of volume `v` on device/node `i`.
fn brick(b: u32, v: u32, i: u32) -> BrickEntry {
    let mut br = BrickEntry {
        id: brick_id(b),
        path: String::new(),
        device: device_id(i),
        node: node_id(i),
        volume: volume_id(v),
        size: GIB_KIB,
        tp_size: GIB_KIB,
        pool_metadata_size: 8192,
        subtype: crate::state::model::SUBTYPE_NORMAL,
        pending: None,
        lvm_thin_pool: None,
        lvm_lv: None,
        pool_shared: false,
    };
    br.path = format!("{}/brick", br.mount_dir());
    br
}

fn volume(v: u32, name: &str, bricks: &[u32]) -> VolumeEntry {
    VolumeEntry {
        id: volume_id(v),
        name: name.into(),
        cluster: cluster_id(),
        size: 1,
        durability: Durability {
            kind: "replicate".into(),
            replica: Some(3),
            ..Default::default()
        },
        gid: 0,
        options: Vec::new(),
        block: false,
        snapshot_enable: false,
        snapshot_factor: 1.0,
        arbiter: false,
        bricks: bricks.iter().map(|b| brick_id(*b)).collect(),
        pending: None,
        hidden: false,
        block_free: 0,
        block_reserved: 0,
        block_restriction: String::new(),
        request_clusters: Vec::new(),
        brick_sets: Vec::new(),
    }
}

/// The state: cluster c1, nodes 1..3 with device i each, volume `vol1` (bricks 1..3).
fn world() -> Expected {
    let mut e = Expected::default();
    let mut c = ClusterEntry::new(cluster_id(), true, false);
    for i in 1..=3 {
        c.nodes.insert(node_id(i));
        e.nodes.insert(node_id(i), node(i));
        let b = brick(i, 1, i);
        e.devices.insert(device_id(i), device(i, b.allocation()));
        e.bricks.insert(b.id.clone(), b);
    }
    e.clusters.insert(c.id.clone(), c);
    e.volumes.insert(volume_id(1), volume(1, "vol1", &[1, 2, 3]));
    e
}

/// What the nodes report when they hold exactly what `e` says.
fn mirror(e: &Expected) -> Observed {
    let mut seen = Observed::default();
    for n in e.nodes.values() {
        let mut inv = NodeInventory::default();
        for d in e.devices.values().filter(|d| d.node == n.id) {
            let mut vg = VgInventory {
                total_kib: d.total,
                used_kib: d.used,
                lvs: BTreeMap::new(),
            };
            for b in e.bricks.values().filter(|b| b.device == d.id) {
                let lv = b.lvm_lv.clone().unwrap_or_else(|| format!("brick_{}", b.id));
                vg.lvs.insert(lv, b.thin_pool());
                vg.lvs.insert(b.thin_pool(), String::new());
                let dir = b.path.strip_suffix("/brick").unwrap_or(&b.path).to_string();
                if dir.starts_with(BRICK_ROOT) {
                    inv.fstab.insert(dir.clone());
                }
                inv.mounts.insert(dir);
            }
            inv.vgs.insert(d.vg(), vg);
        }
        inv.peers = e
            .nodes
            .values()
            .filter(|m| m.id != n.id && m.cluster == n.cluster)
            .map(|m| m.storage_host().to_string())
            .collect();
        seen.nodes.insert(n.id.clone(), Ok(inv));
    }
    for c in e.clusters.values() {
        let vols = e
            .volumes
            .values()
            .filter(|v| v.cluster == c.id && !v.hidden)
            .map(|v| {
                let gv = GlusterVolume {
                    bricks: v
                        .bricks
                        .iter()
                        .filter_map(|b| e.bricks.get(b))
                        .map(|b| e.brick_name(b))
                        .collect(),
                    mark: Some(v.id.clone()),
                };
                (v.name.clone(), gv)
            })
            .collect();
        seen.volumes.insert(c.id.clone(), Ok(vols));
    }
    seen
}

fn inv(seen: &mut Observed, i: u32) -> &mut NodeInventory {
    seen.nodes
        .get_mut(&node_id(i))
        .and_then(|r| r.as_mut().ok())
        .expect("node read")
}

fn gluster(seen: &mut Observed) -> &mut BTreeMap<String, GlusterVolume> {
    seen.volumes
        .get_mut(&cluster_id())
        .and_then(|r| r.as_mut().ok())
        .expect("volumes read")
}

fn op(kind: OpKind, plan: OpPlan) -> Operation {
    Operation {
        id: id('f', 1),
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

/// Puts the LV, pool, mount and fstab line of brick `b` (on node/device `i`) on the node only.
fn plant_brick(seen: &mut Observed, i: u32, b: u32) {
    let br = brick(b, 9, i);
    let n = inv(seen, i);
    let vg = n.vgs.get_mut(&format!("vg_{}", device_id(i))).expect("vg");
    vg.lvs.insert(format!("brick_{}", br.id), br.thin_pool());
    vg.lvs.insert(br.thin_pool(), String::new());
    n.mounts.insert(br.mount_dir());
    n.fstab.insert(br.mount_dir());
}

/// One scenario: its name (the golden file's), the state and what the nodes report.
type Scenario = (&'static str, Expected, Observed);

fn run(name: &'static str, e: &Expected, seen: &Observed) -> Scenario {
    (name, e.clone(), seen.clone())
}

fn scenarios() -> Vec<Scenario> {
    let e = world();
    let mut out = vec![run("clean", &e, &mirror(&e))];
    out.extend(unreadable());
    out.extend(gluster_volumes());
    out.extend(bricks_and_vgs());
    out.extend(clones());
    out.extend(peers());
    out.extend(busy_operations());
    out.extend(busy_moves());
    out.extend(busy_records());
    out.extend(block_volumes());
    out
}

fn blockvolume(n: u32, name: &str, pending: bool) -> BlockVolumeEntry {
    BlockVolumeEntry {
        id: id('7', n),
        name: name.into(),
        cluster: cluster_id(),
        bhv: volume_id(1),
        size: 1,
        usable_size: 1,
        hacount: 3,
        auth: false,
        hosts: Vec::new(),
        iqn: String::new(),
        username: String::new(),
        password: String::new(),
        pending: pending.then(|| id('f', 9)),
        hidden: pending,
    }
}

/// vol1 as a block-hosting volume holding `blocks`, and gluster-block listing them (as read
/// on node 1).
fn block_world(blocks: &[(u32, &str, bool)]) -> (Expected, Observed) {
    let mut e = world();
    e.volumes.get_mut(&volume_id(1)).expect("vol1").block = true;
    for (n, name, pending) in blocks {
        let b = blockvolume(*n, name, *pending);
        e.blockvolumes.insert(b.id.clone(), b);
    }
    let mut seen = mirror(&e);
    let listed = blocks.iter().map(|(_, name, _)| name.to_string()).collect();
    seen.blocks
        .insert(volume_id(1), Ok(("node1.example".into(), listed)));
    (e, seen)
}

/// Block volumes in a block-hosting volume: orphans (repaired with `gluster-block delete`),
/// missing ones (reported), one being created or deleted (skipped), an unreadable list.
fn block_volumes() -> Vec<Scenario> {
    let mut out = Vec::new();
    let (e, seen) = block_world(&[(1, "lun1", false), (2, "lun2", false)]);
    out.push(run("block_volumes_listed_is_clean", &e, &seen));
    let (e, mut seen) = block_world(&[(1, "lun1", false)]);
    if let Some(Ok((_, l))) = seen.blocks.get_mut(&volume_id(1)) {
        l.push("lost-lun".into());
    }
    out.push(run("orphan_block_volume", &e, &seen));
    let (e, mut seen) = block_world(&[(1, "lun1", false), (2, "lun2", false)]);
    if let Some(Ok((_, l))) = seen.blocks.get_mut(&volume_id(1)) {
        l.retain(|n| n != "lun2");
    }
    out.push(run("missing_block_volume", &e, &seen));
    let (e, mut seen) = block_world(&[(1, "lun1", false), (2, "lun2", true)]);
    if let Some(Ok((_, l))) = seen.blocks.get_mut(&volume_id(1)) {
        l.retain(|n| n != "lun2");
    }
    out.push(run("block_volume_being_created_is_not_missing", &e, &seen));
    let (e, mut seen) = block_world(&[(1, "lun1", false)]);
    seen.blocks
        .insert(volume_id(1), Err("gluster-block: connection refused".into()));
    out.push(run("block_list_unreadable_is_not_judged", &e, &seen));
    // The Gluster volume of the BHV's name lost its mark (made anew outside Hekate): what it
    // holds is not judged, so nothing in it is ever repaired away.
    let (e, mut seen) = block_world(&[(1, "lun1", false)]);
    if let Some(Ok((_, l))) = seen.blocks.get_mut(&volume_id(1)) {
        l.push("someone-elses".into());
    }
    if let Some(v) = gluster(&mut seen).get_mut("vol1") {
        v.mark = None;
    }
    out.push(run(
        "block_volumes_of_an_unmarked_bhv_are_not_judged_as_blocks",
        &e,
        &seen,
    ));
    out
}

/// Nodes or volume lists that could not be read.
fn unreadable() -> Vec<Scenario> {
    let mut out = Vec::new();
    let e = world();
    let mut seen = mirror(&e);
    seen.nodes
        .insert(node_id(2), Err("ssh: connect to node2.example: refused".into()));
    gluster(&mut seen).remove("vol1");
    out.push(run("unreachable_node", &e, &seen));
    let mut seen = mirror(&e);
    seen.nodes.remove(&node_id(3));
    inv(&mut seen, 1).peers.clear();
    out.push(run("node_not_read_is_not_judged", &e, &seen));
    out
}

/// Gluster's volumes against the state's.
fn gluster_volumes() -> Vec<Scenario> {
    let mut out = Vec::new();
    let e = world();
    let mut seen = mirror(&e);
    gluster(&mut seen).remove("vol1");
    out.push(run("missing_volume", &e, &seen));
    let mut seen = mirror(&e);
    let old = GlusterVolume {
        bricks: vec![format!(
            "{}:{BRICK_ROOT}vg_{}/brick_{}/brick",
            storage(1),
            device_id(1),
            brick_id(7)
        )],
        mark: Some(volume_id(7)),
    };
    gluster(&mut seen).insert("old".into(), old.clone());
    out.push(run("orphan_volume", &e, &seen));
    let mut seen = mirror(&e);
    seen.volumes
        .insert(cluster_id(), Err("gluster volume info: timeout".into()));
    out.push(run("volumes_unreadable_are_not_judged", &e, &seen));
    let mut seen = mirror(&e);
    gluster(&mut seen).insert(
        "heketidbstorage".into(),
        GlusterVolume {
            bricks: vec![format!("{}:/data/heketidb", storage(1))],
            mark: None,
        },
    );
    gluster(&mut seen).insert(
        "copy".into(),
        GlusterVolume {
            bricks: old.bricks.clone(),
            mark: Some(volume_id(1)),
        },
    );
    gluster(&mut seen).insert(
        "notours".into(),
        GlusterVolume {
            bricks: vec![format!("{}:/srv/notours", storage(2))],
            mark: Some(volume_id(8)),
        },
    );
    out.push(run("foreign_volumes", &e, &seen));
    let mut seen = mirror(&e);
    gluster(&mut seen).get_mut("vol1").expect("vol1").mark = Some(volume_id(5));
    out.push(run("foreign_volume_with_a_state_volume_name", &e, &seen));
    // Marked with the id of a volume of another cluster (not loaded with this one): foreign.
    let mut elsewhere = e.clone();
    elsewhere.elsewhere.insert(volume_id(7));
    out.push(run(
        "volume_marked_with_another_clusters_volume_is_foreign",
        &elsewhere,
        &with_old(&e, &old),
    ));
    let mut seen = mirror(&e);
    gluster(&mut seen).get_mut("vol1").expect("vol1").bricks[2] =
        format!("{}:/var/lib/heketi/mounts/vg_x/brick_y/brick", storage(3));
    out.push(run("bricks_differ", &e, &seen));
    let mut seen = mirror(&e);
    gluster(&mut seen).insert(
        "elsewhere".into(),
        GlusterVolume {
            bricks: vec![format!("10.9.9.9:{BRICK_ROOT}vg_1/brick_2/brick")],
            mark: Some(volume_id(6)),
        },
    );
    out.push(run("volume_on_another_clusters_hosts_is_ignored", &e, &seen));
    out
}

/// The nodes of `e` holding what it says, and the orphan-looking volume `old`.
fn with_old(e: &Expected, old: &GlusterVolume) -> Observed {
    let mut seen = mirror(e);
    gluster(&mut seen).insert("old".into(), old.clone());
    seen
}

/// LVs, pools, mounts, fstab lines and VGs on a node.
fn bricks_and_vgs() -> Vec<Scenario> {
    let mut out = Vec::new();
    let e = world();
    let mut seen = mirror(&e);
    plant_brick(&mut seen, 1, 7);
    out.push(run("orphan_brick", &e, &seen));
    let mut seen = mirror(&e);
    let vg = inv(&mut seen, 1)
        .vgs
        .get_mut(&format!("vg_{}", device_id(1)))
        .expect("vg");
    vg.lvs.insert(format!("tp_{}", brick_id(7)), String::new());
    out.push(run("orphan_thin_pool_alone", &e, &seen));
    let mut seen = mirror(&e);
    inv(&mut seen, 2).fstab.insert(brick(7, 9, 2).mount_dir());
    out.push(run("orphan_fstab_line_alone", &e, &seen));
    let mut seen = mirror(&e);
    let n = inv(&mut seen, 1);
    n.vgs
        .get_mut(&format!("vg_{}", device_id(1)))
        .expect("vg")
        .lvs
        .remove(&format!("brick_{}", brick_id(1)));
    n.mounts.clear();
    n.fstab.clear();
    out.push(run("missing_brick", &e, &seen));
    let mut seen = mirror(&e);
    let vg = format!("vg_{}", device_id(1));
    let n = inv(&mut seen, 1);
    n.vgs
        .insert(format!("vg_{}", device_id(9)), VgInventory::default());
    n.vgs.insert("vg_data".into(), VgInventory::default());
    n.vgs.remove(&vg);
    out.push(run("orphan_vg_and_missing_vg", &e, &seen));
    let mut seen = mirror(&e);
    inv(&mut seen, 1)
        .vgs
        .get_mut(&format!("vg_{}", device_id(1)))
        .expect("vg")
        .used_kib += 5 * GIB_KIB;
    // Within the tolerance (1% of the device): not reported.
    inv(&mut seen, 2)
        .vgs
        .get_mut(&format!("vg_{}", device_id(2)))
        .expect("vg")
        .used_kib += 1024;
    out.push(run("free_space_drift", &e, &seen));
    let mut seen = mirror(&e);
    let n = inv(&mut seen, 3);
    let vg = format!("vg_{}", device_id(3));
    let lvs = &mut n.vgs.get_mut(&vg).expect("vg").lvs;
    lvs.insert("data".into(), format!("tp_{}", brick_id(3)));
    lvs.insert("mypool".into(), String::new());
    n.mounts.insert(format!("{BRICK_ROOT}{vg}/data"));
    n.fstab.insert(format!("{BRICK_ROOT}a/b/c"));
    // Outside the mount root: not Hekate's business at all.
    n.mounts.insert("/srv/data".into());
    out.push(run("foreign_bricks", &e, &seen));
    out
}

/// Clone bricks: the LV named by Gluster, the mount under Gluster's snapshot root, no fstab.
fn clones() -> Vec<Scenario> {
    let mut out = Vec::new();
    let mut ec = world();
    let mut cb = brick(4, 2, 1);
    cb.lvm_lv = Some(format!("{}_0", brick_id(4)));
    cb.lvm_thin_pool = Some(format!("tp_{}", brick_id(1)));
    cb.path = format!("/run/gluster/snaps/{}/brick1/brick", brick_id(4));
    cb.pool_shared = true;
    ec.bricks.insert(cb.id.clone(), cb);
    ec.volumes.insert(volume_id(2), volume(2, "clone1", &[4]));
    out.push(run("clone_brick_without_fstab_is_clean", &ec, &mirror(&ec)));
    let mut seen = mirror(&ec);
    inv(&mut seen, 1)
        .mounts
        .remove(&format!("/run/gluster/snaps/{}/brick1", brick_id(4)));
    out.push(run("clone_brick_missing_its_mount", &ec, &seen));
    out
}

/// The trusted pool.
fn peers() -> Vec<Scenario> {
    let mut out = Vec::new();
    let e = world();
    let mut seen = mirror(&e);
    inv(&mut seen, 3).peers.clear();
    inv(&mut seen, 1).peers.remove(&storage(3));
    inv(&mut seen, 2).peers.remove(&storage(3));
    out.push(run("peer_missing", &e, &seen));
    let mut seen = mirror(&e);
    inv(&mut seen, 1).peers.insert("10.0.0.9".into());
    out.push(run("peer_unknown", &e, &seen));
    let mut seen = mirror(&e);
    // Gluster's own name for a peer, in a pool no larger than the cluster: not a stranger.
    let p = &mut inv(&mut seen, 1).peers;
    p.remove(&storage(2));
    p.insert("gluster-2.local".into());
    out.push(run("peer_known_by_another_name", &e, &seen));
    out
}

/// Creates and deletes in flight: what they touch is never reported.
fn busy_operations() -> Vec<Scenario> {
    let mut out = Vec::new();
    let mut eb = world();
    let new_vol = volume(3, "vol3", &[5]);
    let new_brick = brick(5, 3, 1);
    let r = reader(&eb);
    eb.mark_busy(
        &r,
        &op(
            OpKind::VolumeCreate,
            OpPlan::VolumeCreate {
                volume: new_vol.clone(),
                bricks: vec![new_brick.clone()],
            },
        ),
    )
    .unwrap();
    let mut seen = mirror(&eb);
    gluster(&mut seen).insert(
        "vol3".into(),
        GlusterVolume {
            bricks: vec![eb.brick_name(&new_brick)],
            mark: Some(new_vol.id.clone()),
        },
    );
    plant_brick(&mut seen, 1, 5);
    inv(&mut seen, 1)
        .vgs
        .get_mut(&format!("vg_{}", device_id(1)))
        .expect("vg")
        .used_kib += 5 * GIB_KIB;
    out.push(run("busy_create", &eb, &seen));

    let mut eb = world();
    let r = reader(&eb);
    eb.mark_busy(
        &r,
        &op(
            OpKind::VolumeDelete,
            OpPlan::VolumeDelete { volume: volume_id(1) },
        ),
    )
    .unwrap();
    let mut seen = mirror(&eb);
    gluster(&mut seen).remove("vol1");
    inv(&mut seen, 2).mounts.clear();
    out.push(run("busy_delete", &eb, &seen));
    out
}

/// Evictions, clones and device operations in flight.
fn busy_moves() -> Vec<Scenario> {
    let mut out = Vec::new();
    let mut eb = world();
    let mut moved = brick(6, 1, 1);
    moved.pending = Some(id('f', 1));
    let r = reader(&eb);
    eb.mark_busy(
        &r,
        &op(
            OpKind::BrickEvict,
            OpPlan::Evict {
                node: None,
                devices: vec![device_id(2)],
                evictions: vec![Eviction {
                    volume: volume_id(1),
                    old: brick_id(2),
                    new: moved.clone(),
                }],
                healcheck: true,
            },
        ),
    )
    .unwrap();
    let mut seen = mirror(&eb);
    plant_brick(&mut seen, 1, 6);
    gluster(&mut seen).get_mut("vol1").expect("vol1").bricks[1] = eb.brick_name(&moved);
    inv(&mut seen, 2).vgs.clear();
    out.push(run("busy_evict", &eb, &seen));

    let mut eb = world();
    let r = reader(&eb);
    eb.mark_busy(
        &r,
        &op(
            OpKind::VolumeClone,
            OpPlan::VolumeClone {
                source: volume_id(1),
                clone: volume(4, "clone4", &[]),
            },
        ),
    )
    .unwrap();
    let mut seen = mirror(&eb);
    gluster(&mut seen).insert(
        "clone4".into(),
        GlusterVolume {
            bricks: vec![format!("{}:/run/gluster/snaps/x/brick1/brick", storage(1))],
            mark: Some(volume_id(4)),
        },
    );
    inv(&mut seen, 3)
        .vgs
        .get_mut(&format!("vg_{}", device_id(3)))
        .expect("vg")
        .used_kib += 5 * GIB_KIB;
    out.push(run("busy_clone", &eb, &seen));

    let mut eb = world();
    let mut d9 = device(9, 0);
    d9.node = node_id(1);
    let r = reader(&eb);
    eb.mark_busy(
        &r,
        &op(
            OpKind::DeviceAdd,
            OpPlan::DeviceAdd {
                device: d9,
                host: "node1.example".into(),
                destroydata: false,
            },
        ),
    )
    .unwrap();
    let r = reader(&eb);
    eb.mark_busy(
        &r,
        &op(
            OpKind::DeviceResync,
            OpPlan::DeviceResync {
                device: device_id(2),
                host: "node2.example".into(),
            },
        ),
    )
    .unwrap();
    let mut seen = mirror(&eb);
    inv(&mut seen, 1)
        .vgs
        .insert(format!("vg_{}", device_id(9)), VgInventory::default());
    inv(&mut seen, 2).vgs.clear();
    out.push(run("busy_devices", &eb, &seen));
    out
}

/// Records an operation holds (`pending` set) and hidden volumes are busy too.
fn busy_records() -> Vec<Scenario> {
    let mut out = Vec::new();
    let mut eb = world();
    eb.nodes.get_mut(&node_id(3)).expect("node").pending = Some(id('f', 2));
    eb.mark_pending_records();
    let mut seen = mirror(&eb);
    inv(&mut seen, 3).peers.clear();
    inv(&mut seen, 1).peers.remove(&storage(3));
    inv(&mut seen, 2).peers.remove(&storage(3));
    out.push(run("busy_node_skips_peers", &eb, &seen));

    let mut eb = world();
    eb.volumes.get_mut(&volume_id(1)).expect("vol1").pending = Some(id('f', 3));
    eb.mark_pending_records();
    let mut seen = mirror(&eb);
    gluster(&mut seen).remove("vol1");
    inv(&mut seen, 1).mounts.clear();
    out.push(run("busy_pending_volume", &eb, &seen));

    let mut eb = world();
    eb.volumes.get_mut(&volume_id(1)).expect("vol1").hidden = true;
    eb.mark_pending_records();
    let seen = mirror(&eb);
    out.push(run("hidden_volume_is_not_missing", &eb, &seen));
    out
}

/// The golden file of a scenario.
fn golden_path(name: &str) -> String {
    format!("src/reconcile/testdata/compare/{name}.json")
}

#[test]
fn compare_matches_the_golden_reports() {
    let all = scenarios();
    let names: BTreeSet<&str> = all.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(names.len(), all.len(), "two scenarios share a name");
    for (name, e, seen) in &all {
        crate::golden::check(&golden_path(name), &crate::golden::json(&compare(e, seen)));
    }
}

/// Each kind's name as serialized; the match fails to compile when a kind is added, so the
/// list (and a scenario producing it) must follow.
fn every_kind() -> Vec<Kind> {
    let all = [
        Kind::Unreachable,
        Kind::OrphanVolume,
        Kind::MissingVolume,
        Kind::BricksDiffer,
        Kind::OrphanBrick,
        Kind::MissingBrick,
        Kind::OrphanVg,
        Kind::MissingVg,
        Kind::FreeSpace,
        Kind::PeerMissing,
        Kind::PeerUnknown,
        Kind::ForeignVolume,
        Kind::ForeignBrick,
        Kind::OrphanBlockVolume,
        Kind::MissingBlockVolume,
    ];
    for k in all {
        match k {
            Kind::Unreachable
            | Kind::OrphanVolume
            | Kind::MissingVolume
            | Kind::BricksDiffer
            | Kind::OrphanBrick
            | Kind::MissingBrick
            | Kind::OrphanVg
            | Kind::MissingVg
            | Kind::FreeSpace
            | Kind::PeerMissing
            | Kind::PeerUnknown
            | Kind::ForeignVolume
            | Kind::ForeignBrick
            | Kind::OrphanBlockVolume
            | Kind::MissingBlockVolume => {}
        }
    }
    all.to_vec()
}

#[test]
fn every_finding_kind_is_produced_by_a_scenario() {
    let seen: BTreeSet<Kind> = scenarios()
        .into_iter()
        .flat_map(|(_, e, seen)| compare(&e, &seen).into_iter().map(|f| f.kind))
        .collect();
    let missing: Vec<Kind> = every_kind().into_iter().filter(|k| !seen.contains(k)).collect();
    assert!(missing.is_empty(), "no scenario produces {missing:?}");
}

#[test]
fn clean_and_busy_scenarios_report_nothing_and_busy_is_what_silences_them() {
    for (name, e, seen) in scenarios() {
        let findings = compare(&e, &seen);
        if name.starts_with("busy_") {
            // Not vacuous: without the busy marks the same scenario has findings.
            let idle = Expected {
                busy: Busy::default(),
                ..e.clone()
            };
            assert_ne!(compare(&idle, &seen), Vec::new(), "{name} without busy marks");
        }
        let quiet = name == "clean"
            || name.starts_with("busy_")
            || name.ends_with("_is_clean")
            || name.ends_with("_is_ignored")
            || name.ends_with("_are_not_judged")
            || name.ends_with("_is_not_missing")
            || name == "peer_known_by_another_name";
        if quiet {
            assert_eq!(findings, Vec::<Finding>::new(), "{name}");
        }
    }
}

#[test]
fn stable_keeps_only_what_holds_before_and_after_the_read() {
    // vol1 deleted while the nodes were read (gone from Gluster and from the state after);
    // vol2 created meanwhile (in Gluster, in the state only after); an orphan brick all along.
    let before = world();
    let mut after = world();
    after.volumes.remove(&volume_id(1));
    after.volumes.insert(volume_id(2), volume(2, "vol2", &[]));
    let mut seen = mirror(&before);
    gluster(&mut seen).remove("vol1");
    gluster(&mut seen).insert(
        "vol2".into(),
        GlusterVolume {
            bricks: vec![format!(
                "{}:{BRICK_ROOT}vg_{}/brick_{}/brick",
                storage(1),
                device_id(1),
                brick_id(8)
            )],
            mark: Some(volume_id(2)),
        },
    );
    plant_brick(&mut seen, 2, 7);
    let kinds = |f: &[Finding]| f.iter().map(|f| (f.kind, f.object.clone())).collect::<Vec<_>>();
    assert_eq!(
        kinds(&compare(&before, &seen)),
        vec![
            (Kind::OrphanVolume, "vol2".to_string()),
            (Kind::MissingVolume, "vol1".to_string()),
            (Kind::OrphanBrick, brick_id(7)),
        ]
    );
    // Busy in either view counts for both: an operation that ended during the read still
    // silences what it touched.
    let mut busy_before = before.clone();
    busy_before.busy.bricks.insert(brick_id(7));
    crate::golden::check(
        &golden_path("stable"),
        &crate::golden::json(&(
            stable(before.clone(), after.clone(), &seen),
            stable(busy_before.clone(), after.clone(), &seen),
        )),
    );
    assert_eq!(
        kinds(&stable(before.clone(), after.clone(), &seen)),
        vec![(Kind::OrphanBrick, brick_id(7))]
    );
    assert_eq!(stable(busy_before, after, &seen), Vec::new());
}

/// The world's records as a state reader: what `state::ops::holds` reads of an operation's
/// volume, bricks and devices.
struct Mem(BTreeMap<Vec<u8>, Vec<u8>>);

impl hekate_raft::StateReader for Mem {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.get(key).cloned())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<hekate_raft::app::Pairs, StoreError> {
        Ok(self
            .0
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

fn reader(e: &Expected) -> Mem {
    use crate::state::{keys, record};
    let mut m = BTreeMap::new();
    for v in e.volumes.values() {
        m.insert(keys::volume(&v.id), record::encode(v).unwrap());
    }
    for b in e.bricks.values() {
        m.insert(keys::brick(&b.id), record::encode(b).unwrap());
        m.insert(keys::device_brick(&b.device, &b.id), Vec::new());
    }
    for d in e.devices.values() {
        m.insert(keys::device(&d.id), record::encode(d).unwrap());
    }
    for n in e.nodes.values() {
        m.insert(keys::node(&n.id), record::encode(n).unwrap());
    }
    for c in e.clusters.values() {
        m.insert(keys::cluster(&c.id), record::encode(c).unwrap());
    }
    Mem(m)
}

/// A store holding Heketi's recorded dump (a cluster with a block-hosting volume and its
/// block volumes) and a second cluster with a finished volume, a volume being created
/// (hidden, its brick pending) and a node being added (not yet in the cluster's list).
async fn two_cluster_store(dir: &std::path::Path) -> crate::state::ops::testing::Sm {
    use crate::state::ops::testing::{brick, device, finish, id, node, op, volume, Sm};
    use crate::state::{Command, Outcome};
    let mut sm = Sm::new(dir);
    let import = crate::dump::tests::plan_all(&crate::dump::tests::block_dump()).unwrap();
    assert_eq!(sm.apply(import.command()).await, Outcome::Done);
    let steps = [
        Command::ClusterCreate {
            id: id(1),
            file: true,
            block: false,
        },
        op(
            100,
            OpKind::NodeAdd,
            OpPlan::NodeAdd {
                node: node(2, 1, "n1"),
                probe_from: None,
            },
        ),
        finish(100),
        op(
            101,
            OpKind::DeviceAdd,
            OpPlan::DeviceAdd {
                device: device(3, 2, "/dev/vdb"),
                host: "n1".into(),
                destroydata: false,
            },
        ),
        finish(101),
        op(
            102,
            OpKind::VolumeCreate,
            OpPlan::VolumeCreate {
                volume: volume(4, "vol", 1),
                bricks: vec![brick(5, &id(4))],
            },
        ),
        finish(102),
        op(
            103,
            OpKind::VolumeCreate,
            OpPlan::VolumeCreate {
                volume: volume(6, "creating", 1),
                bricks: vec![brick(7, &id(6))],
            },
        ),
        op(
            104,
            OpKind::NodeAdd,
            OpPlan::NodeAdd {
                node: node(8, 1, "n2"),
                probe_from: None,
            },
        ),
    ];
    for cmd in steps {
        assert_eq!(sm.apply(cmd).await, Outcome::Done);
    }
    sm
}

/// Reconcile loads one cluster at a time: each cluster's part holds exactly the volumes,
/// bricks and block volumes the whole state holds of that cluster (hidden and pending ones
/// too), every cluster, node and device, and the whole state's busy marks.
#[tokio::test]
async fn each_clusters_part_is_what_the_whole_state_holds_of_it() {
    use crate::state::ops::testing::{id, view};
    let dir = tempfile::tempdir().unwrap();
    let sm = two_cluster_store(dir.path()).await;
    let whole = Expected::load(&view(&sm)).unwrap();
    let clusters = crate::state::cluster_ids(&view(&sm)).unwrap();
    assert_eq!(clusters.len(), 2, "{clusters:?}");
    let keys = |m: &BTreeMap<String, _>| m.keys().cloned().collect::<Vec<String>>();
    fn ids<T>(m: &BTreeMap<String, T>) -> BTreeSet<String> {
        m.keys().cloned().collect()
    }
    let (mut volumes, mut bricks, mut blocks) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for c in &clusters {
        let part = Expected::load_cluster(&view(&sm), c, &BTreeSet::new()).unwrap();
        assert_eq!(ids(&part.clusters), ids(&whole.clusters));
        assert_eq!(ids(&part.nodes), ids(&whole.nodes));
        assert_eq!(ids(&part.devices), ids(&whole.devices));
        assert_eq!(part.busy.volumes, whole.busy.volumes, "cluster {c}");
        assert_eq!(part.busy.bricks, whole.busy.bricks, "cluster {c}");
        assert_eq!(part.busy.nodes, whole.busy.nodes, "cluster {c}");
        assert_eq!(part.busy.pending_ops, whole.busy.pending_ops);
        assert!(part.volumes.values().all(|v| &v.cluster == c), "cluster {c}");
        assert!(
            part.bricks.values().all(|b| &whole.nodes[&b.node].cluster == c),
            "cluster {c}"
        );
        assert!(part.blockvolumes.values().all(|b| &b.cluster == c), "cluster {c}");
        assert!(part.elsewhere.is_empty());
        volumes.extend(ids(&part.volumes));
        bricks.extend(ids(&part.bricks));
        blocks.extend(ids(&part.blockvolumes));
    }
    assert_eq!(volumes, ids(&whole.volumes));
    assert_eq!(bricks, ids(&whole.bricks));
    assert_eq!(blocks, ids(&whole.blockvolumes));
    assert!(
        !whole.blockvolumes.is_empty(),
        "the dump's block volumes are loaded"
    );
    assert!(
        volumes.contains(&id(6)) && bricks.contains(&id(7)),
        "the volume being created"
    );
    assert!(whole.busy.volumes.contains("creating") && whole.busy.nodes.contains(&id(8)));
    assert_eq!(keys(&whole.clusters).len(), 2);

    // Marks: a volume of the other cluster is elsewhere; this cluster's own and an unknown
    // id are not.
    let other = clusters.iter().find(|c| **c != id(1)).unwrap();
    let theirs = whole
        .volumes
        .values()
        .find(|v| &v.cluster == other)
        .unwrap()
        .id
        .clone();
    let marks: BTreeSet<String> = [theirs.clone(), id(4), id(99)].into();
    let part = Expected::load_cluster(&view(&sm), &id(1), &marks).unwrap();
    assert_eq!(part.elsewhere, BTreeSet::from([theirs]));
}
