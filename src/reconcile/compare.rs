//! The comparison at the heart of reconcile, pure: what the replicated state says the nodes
//! hold ([`Expected`], built from one consistent view) against what they report
//! ([`NodeInventory`], gluster's volume lists). Anything an operation in flight is changing
//! is skipped ("busy"): reconcile never races the runner.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hekate_raft::{StateReader, StoreError};
use serde::Serialize;

use crate::executor::{GlusterVolume, NodeInventory};
use crate::state::model::{
    BlockVolumeEntry, BrickEntry, ClusterEntry, DeviceEntry, NodeEntry, Operation, VolumeEntry,
};
use crate::state::{self, keys};

pub use crate::executor::BRICK_ROOT;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A node could not be examined.
    Unreachable,
    /// A Gluster volume on Hekate's bricks that the state does not know.
    OrphanVolume,
    /// A volume of the state that Gluster does not have.
    MissingVolume,
    /// A volume whose bricks differ between the state and Gluster.
    BricksDiffer,
    /// LVs, a thin pool, a mount or an fstab line of a brick the state does not know.
    OrphanBrick,
    /// A brick of the state without its LV, mount or fstab line.
    MissingBrick,
    /// A VG named like Hekate's that no device of the state owns.
    OrphanVg,
    /// A device of the state whose VG is gone.
    MissingVg,
    /// A device's used space differs from LVM's.
    FreeSpace,
    /// A node of a cluster is not in the trusted pool.
    PeerMissing,
    /// The trusted pool holds a host no node of the cluster has.
    PeerUnknown,
    /// A Gluster volume on the cluster's nodes that Hekate did not make (no `user.heketi.id`,
    /// or one that is not the state's volume of that name). Reported, never repaired.
    ForeignVolume,
    /// An LV, thin pool, mount or fstab line in Hekate's VGs or under its mount root that is
    /// not named as Hekate names bricks. Reported, never repaired.
    ForeignBrick,
    /// A gluster-block block volume in one of Hekate's block-hosting volumes that the state
    /// does not know (a create whose undo could not run).
    OrphanBlockVolume,
    /// A block volume of the state that gluster-block does not list.
    MissingBlockVolume,
}

/// What a repair does, decided with the finding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Repair {
    /// `gluster volume stop/delete` on `host`, if the volume still carries `user.heketi.id
    /// <id>` when the repair runs.
    DestroyVolume { host: String, name: String, id: String },
    /// Unmount, drop the fstab line, remove the LV and its pool (the brick destroy verb).
    DestroyBrick {
        host: String,
        vg: String,
        id: String,
        lv: String,
        pool: String,
        mount: String,
    },
    /// Read the device's sizes from LVM and commit them (a device resync operation).
    Resync { device: String, host: String },
    /// `gluster-block delete <bhv>/<name>` on `host`, if the Gluster volume `bhv` still
    /// carries `user.heketi.id <bhv_id>` when the repair runs.
    DestroyBlockVolume {
        host: String,
        bhv: String,
        bhv_id: String,
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    pub kind: Kind,
    /// The node's management host, or the cluster id.
    pub place: String,
    /// Volume name, brick id, VG, device id or peer host.
    pub object: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair: Option<Repair>,
}

impl Finding {
    /// The finding's identity across two comparisons (details may differ).
    fn key(&self) -> (Kind, String, String) {
        (self.kind, self.place.clone(), self.object.clone())
    }
}

/// The nodes as the state describes them.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    pub clusters: BTreeMap<String, ClusterEntry>,
    pub nodes: BTreeMap<String, NodeEntry>,
    pub devices: BTreeMap<String, DeviceEntry>,
    pub bricks: BTreeMap<String, BrickEntry>,
    pub volumes: BTreeMap<String, VolumeEntry>,
    pub blockvolumes: BTreeMap<String, BlockVolumeEntry>,
    pub busy: Busy,
    /// Volume ids of the state outside the loaded cluster that its Gluster volumes carry as
    /// marks (a volume marked with the id of a volume elsewhere is foreign, not an orphan).
    pub elsewhere: BTreeSet<String>,
}

/// What operations in flight are changing.
#[derive(Debug, Clone, Default)]
pub struct Busy {
    pub volumes: BTreeSet<String>,
    pub bricks: BTreeSet<String>,
    pub devices: BTreeSet<String>,
    pub nodes: BTreeSet<String>,
    pub pending_ops: usize,
}

impl Busy {
    pub fn merge(&mut self, o: &Busy) {
        self.volumes.extend(o.volumes.iter().cloned());
        self.bricks.extend(o.bricks.iter().cloned());
        self.devices.extend(o.devices.iter().cloned());
        self.nodes.extend(o.nodes.iter().cloned());
        self.pending_ops = self.pending_ops.max(o.pending_ops);
    }
}

impl Expected {
    /// The whole state: the reference [`Expected::load_cluster`]'s parts are tested against.
    #[cfg(test)]
    pub fn load(r: &impl StateReader) -> Result<Expected, StoreError> {
        let mut e = Expected {
            bricks: by_id(state::all::<BrickEntry>(r, keys::BRICK_PREFIX)?, |b| &b.id),
            volumes: by_id(state::all::<VolumeEntry>(r, keys::VOLUME_PREFIX)?, |v| &v.id),
            blockvolumes: by_id(
                state::all::<BlockVolumeEntry>(r, keys::BLOCKVOLUME_PREFIX)?,
                |b| &b.id,
            ),
            ..Expected::topology(r)?
        };
        e.mark_all_busy(r)?;
        Ok(e)
    }

    /// Every cluster, node and device, and nothing else yet.
    fn topology(r: &impl StateReader) -> Result<Expected, StoreError> {
        Ok(Expected {
            clusters: by_id(state::all::<ClusterEntry>(r, keys::CLUSTER_PREFIX)?, |c| &c.id),
            nodes: by_id(state::all::<NodeEntry>(r, keys::NODE_PREFIX)?, |n| &n.id),
            devices: by_id(state::all::<DeviceEntry>(r, keys::DEVICE_PREFIX)?, |d| &d.id),
            ..Expected::default()
        })
    }

    /// What reconcile compares for one cluster, so that a comparison holds one cluster's
    /// volumes and bricks, not the whole state's (hundreds of MB at 100,000 volumes): every
    /// cluster, node and device (a few thousand small records), and this cluster's volumes
    /// (hidden ones too, by its name index), the bricks on its nodes' devices (by the
    /// devices' brick index) and the block volumes of its block-hosting volumes. What every
    /// pending operation holds is busy, as in the whole state. `marks`: volume ids the
    /// cluster's Gluster volumes carry; those that are volumes of another cluster go to
    /// [`Expected::elsewhere`].
    pub fn load_cluster(
        r: &impl StateReader,
        cluster: &str,
        marks: &BTreeSet<String>,
    ) -> Result<Expected, StoreError> {
        let mut e = Expected::topology(r)?;
        let mine = |node: &str| e.nodes.get(node).is_some_and(|n| n.cluster == cluster);
        let devices: Vec<&str> = e
            .devices
            .values()
            .filter(|d| mine(&d.node))
            .map(|d| d.id.as_str())
            .collect();
        let mut bricks = BTreeMap::new();
        for d in devices {
            for id in state::device_brick_ids(r, d)? {
                if let Some(b) = state::get_brick(r, &id)? {
                    bricks.insert(id, b);
                }
            }
        }
        e.bricks = bricks;
        for id in state::cluster_all_volume_ids(r, cluster)? {
            if let Some(v) = state::get_volume(r, &id)? {
                if v.block {
                    for b in state::bhv_block_ids(r, &v.id)? {
                        if let Some(bv) = state::get_blockvolume(r, &b)? {
                            e.blockvolumes.insert(b, bv);
                        }
                    }
                }
                e.volumes.insert(id, v);
            }
        }
        for id in marks {
            if !e.volumes.contains_key(id) && state::get_volume(r, id)?.is_some() {
                e.elsewhere.insert(id.clone());
            }
        }
        e.mark_all_busy(r)?;
        Ok(e)
    }

    /// Marks busy what every pending operation holds, and the records one holds.
    fn mark_all_busy(&mut self, r: &impl StateReader) -> Result<(), StoreError> {
        for id in state::pending_op_ids(r)? {
            if let Some(op) = state::get_op(r, &id)? {
                self.mark_busy(r, &op)?;
            }
        }
        self.mark_pending_records();
        Ok(())
    }

    /// Marks busy the records an operation holds (`pending` set) and hidden volumes.
    fn mark_pending_records(&mut self) {
        let b = &mut self.busy;
        for v in self.volumes.values() {
            if v.pending.is_some() || v.hidden {
                b.volumes.insert(v.name.clone());
                b.bricks.extend(v.bricks.iter().cloned());
            }
        }
        for br in self.bricks.values() {
            if br.pending.is_some() {
                b.bricks.insert(br.id.clone());
            }
        }
        for d in self.devices.values() {
            if d.pending.is_some() {
                b.devices.insert(d.id.clone());
            }
        }
        for n in self.nodes.values() {
            if n.pending.is_some() {
                b.nodes.insert(n.id.clone());
            }
        }
    }

    fn mark_busy(&mut self, r: &impl StateReader, op: &Operation) -> Result<(), StoreError> {
        let h = state::ops::holds(r, op)?;
        let b = &mut self.busy;
        b.pending_ops += 1;
        b.volumes.extend(h.volumes);
        b.bricks.extend(h.bricks);
        b.devices.extend(h.devices);
        b.nodes.extend(h.nodes);
        Ok(())
    }

    /// The storage hostnames of cluster `c`'s nodes: where its volumes' bricks are.
    pub fn cluster_hosts(&self, c: &ClusterEntry) -> BTreeSet<String> {
        c.nodes.iter().map(|n| self.storage_of(n)).collect()
    }

    fn storage_of(&self, node: &str) -> String {
        self.nodes
            .get(node)
            .map(|n| n.storage_host().to_string())
            .unwrap_or_default()
    }

    /// `storagehost:path` of a brick, as Gluster names it.
    fn brick_name(&self, b: &BrickEntry) -> String {
        format!("{}:{}", self.storage_of(&b.node), b.path)
    }
}

fn by_id<T>(items: Vec<T>, id: impl Fn(&T) -> &String) -> BTreeMap<String, T> {
    items.into_iter().map(|x| (id(&x).clone(), x)).collect()
}

/// What was read from the nodes: per node id, its inventory or why it could not be read; per
/// cluster id, Gluster's volumes (name -> bricks) or why not.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub nodes: BTreeMap<String, Result<NodeInventory, String>>,
    pub volumes: BTreeMap<String, Result<BTreeMap<String, GlusterVolume>, String>>,
    /// Per block-hosting volume id: (the host asked, the block volume names gluster-block
    /// lists) or why it could not be read.
    pub blocks: BTreeMap<String, Result<(String, Vec<String>), String>>,
}

/// How far a device's used space may stray from LVM's before it is reported: LVM's own
/// overhead (pool metadata spare) is not in Heketi's accounting.
fn free_space_tolerance(d: &DeviceEntry) -> u64 {
    (d.total / 100).max(4 * d.extent_size.max(4096))
}

/// Brick id from an LV, pool or mount directory name Hekate gives (`brick_<id>`, `tp_<id>`,
/// or Gluster's `<id>_<n>` for a clone's snapshot LV); None for any other name (not ours).
fn brick_id_of(name: &str) -> Option<&str> {
    let id = name
        .strip_prefix("brick_")
        .or_else(|| name.strip_prefix("tp_"))
        .or_else(|| {
            name.split_once('_')
                .filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .map(|(id, _)| id)
        })?;
    crate::validate::is_uuid(id).then_some(id)
}

/// The state's devices and bricks by node and volumes by cluster, each list in id order,
/// grouped once per comparison: filtering the whole state for each node and each cluster
/// cost O(nodes x bricks), a leader's core for minutes at 100,000 volumes on 336 nodes.
#[derive(Default)]
struct ByPlace<'e> {
    devices: HashMap<&'e str, Vec<&'e DeviceEntry>>,
    bricks: HashMap<&'e str, Vec<&'e BrickEntry>>,
    volumes: HashMap<&'e str, Vec<&'e VolumeEntry>>,
}

impl<'e> ByPlace<'e> {
    fn of(e: &'e Expected) -> ByPlace<'e> {
        let mut by = ByPlace::default();
        for d in e.devices.values() {
            by.devices.entry(d.node.as_str()).or_default().push(d);
        }
        for b in e.bricks.values() {
            by.bricks.entry(b.node.as_str()).or_default().push(b);
        }
        for v in e.volumes.values() {
            by.volumes.entry(v.cluster.as_str()).or_default().push(v);
        }
        by
    }
}

/// The list under `key`, or none.
fn under<'m, T>(map: &'m HashMap<&str, Vec<T>>, key: &str) -> &'m [T] {
    map.get(key).map(Vec::as_slice).unwrap_or_default()
}

pub fn compare(e: &Expected, seen: &Observed) -> Vec<Finding> {
    let mut out = Vec::new();
    let by = ByPlace::of(e);
    for n in e.nodes.values() {
        let host = n.manage_host().to_string();
        match seen.nodes.get(&n.id) {
            None => {}
            Some(Err(msg)) => out.push(Finding {
                kind: Kind::Unreachable,
                place: host.clone(),
                object: n.id.clone(),
                detail: msg.clone(),
                repair: None,
            }),
            Some(Ok(inv)) => compare_node(e, n, &by, inv, &mut out),
        }
    }
    for c in e.clusters.values() {
        compare_volumes(e, c, under(&by.volumes, &c.id), seen, &mut out);
        compare_peers(e, c, seen, &mut out);
    }
    block::compare_blocks(e, seen, &mut out);
    out.sort();
    out.dedup_by(|a, b| a.key() == b.key());
    out
}

/// One node: its VGs against the state's devices, LVs, pools, mounts and fstab lines
/// against the state's bricks (orphans, foreign objects, missing pieces).
fn compare_node(e: &Expected, n: &NodeEntry, by: &ByPlace<'_>, inv: &NodeInventory, out: &mut Vec<Finding>) {
    let host = n.manage_host().to_string();
    let devices = under(&by.devices, &n.id);
    let bricks = under(&by.bricks, &n.id);
    let want = Wanted::of(bricks);
    compare_vgs(e, &host, devices, inv, out);
    let mut found = Unexplained::default();
    scan_lvs(e, n, devices, &want, inv, &mut found, out);
    scan_mounts(e, &want, inv, &mut found);
    found.report(&host, out);
    missing_bricks(e, &host, bricks, inv, out);
}

/// What a node's VGs and mount root should hold, from the state's bricks on it.
struct Wanted {
    /// Per VG: LV and thin pool names.
    lvs: BTreeMap<String, BTreeSet<String>>,
    /// Brick mount directories.
    mounts: BTreeSet<String>,
}

impl Wanted {
    fn of(bricks: &[&BrickEntry]) -> Wanted {
        let mut w = Wanted {
            lvs: BTreeMap::new(),
            mounts: BTreeSet::new(),
        };
        for b in bricks {
            let vg = format!("vg_{}", b.device);
            let lv = b.lvm_lv.clone().unwrap_or_else(|| format!("brick_{}", b.id));
            let set = w.lvs.entry(vg).or_default();
            set.insert(lv);
            set.insert(b.thin_pool());
            w.mounts
                .insert(b.path.strip_suffix("/brick").unwrap_or(&b.path).to_string());
        }
        w
    }
}

/// Each (idle) device's VG: missing, or its used space beyond the tolerance of the state's.
fn compare_vgs(
    e: &Expected,
    host: &str,
    devices: &[&DeviceEntry],
    inv: &NodeInventory,
    out: &mut Vec<Finding>,
) {
    for d in devices {
        let vg = d.vg();
        if e.busy.devices.contains(&d.id) {
            continue;
        }
        match inv.vgs.get(&vg) {
            None => out.push(Finding {
                kind: Kind::MissingVg,
                place: host.to_string(),
                object: d.id.clone(),
                detail: format!("device {} ({}): volume group {vg} not found", d.id, d.name),
                repair: None,
            }),
            Some(v) => {
                let diff = v.used_kib.abs_diff(d.used);
                if diff > free_space_tolerance(d) {
                    out.push(Finding {
                        kind: Kind::FreeSpace,
                        place: host.to_string(),
                        object: d.id.clone(),
                        detail: format!(
                            "device {} ({}): state has {} KiB used, LVM {} KiB",
                            d.id, d.name, d.used, v.used_kib
                        ),
                        repair: Some(Repair::Resync {
                            device: d.id.clone(),
                            host: host.to_string(),
                        }),
                    });
                }
            }
        }
    }
}

/// One orphan brick's pieces, gathered so that one repair removes LV, pool, mount and fstab
/// line.
#[derive(Default)]
struct Orphan {
    vg: String,
    lv: Option<String>,
    pool: Option<String>,
    mount: Option<String>,
    what: Vec<String>,
}

/// What a node holds that the state does not explain: orphans of Hekate's naming, per brick
/// id, and foreign objects (described) in its VGs or under its mount root.
#[derive(Default)]
struct Unexplained {
    orphans: BTreeMap<String, Orphan>,
    foreign: Vec<String>,
}

impl Unexplained {
    /// Foreign objects (reported, never repaired), then orphan bricks (with their repair).
    fn report(self, host: &str, out: &mut Vec<Finding>) {
        for what in self.foreign {
            out.push(Finding {
                kind: Kind::ForeignBrick,
                place: host.to_string(),
                object: what.clone(),
                detail: format!("{what} is not named as Hekate names bricks; left alone"),
                repair: None,
            });
        }
        for (id, o) in self.orphans {
            let lv = o.lv.clone().unwrap_or_else(|| format!("brick_{id}"));
            let pool = o.pool.clone().unwrap_or_else(|| format!("tp_{id}"));
            let mount = o
                .mount
                .clone()
                .unwrap_or_else(|| format!("{BRICK_ROOT}{}/{lv}", o.vg));
            out.push(Finding {
                kind: Kind::OrphanBrick,
                place: host.to_string(),
                object: id.clone(),
                detail: o.what.join(", "),
                repair: Some(Repair::DestroyBrick {
                    host: host.to_string(),
                    vg: o.vg,
                    id,
                    lv,
                    pool,
                    mount,
                }),
            });
        }
    }
}

/// The node's VGs named like Hekate's: one no device owns is an orphan VG; in a device's
/// (idle) VG, LVs and pools the state does not want are orphans (Hekate's names) or foreign.
fn scan_lvs(
    e: &Expected,
    n: &NodeEntry,
    devices: &[&DeviceEntry],
    want: &Wanted,
    inv: &NodeInventory,
    found: &mut Unexplained,
    out: &mut Vec<Finding>,
) {
    let known_vgs: BTreeSet<String> = devices.iter().map(|d| d.vg()).collect();
    for (vg, v) in &inv.vgs {
        let Some(dev) = vg.strip_prefix("vg_") else {
            continue;
        };
        if !known_vgs.contains(vg) {
            // A VG named like ours: a device the state does not have (or one being added).
            if e.busy.devices.contains(dev) || !crate::ids::is_route_id(dev) {
                continue;
            }
            out.push(Finding {
                kind: Kind::OrphanVg,
                place: n.manage_host().to_string(),
                object: vg.clone(),
                detail: format!("volume group {vg} belongs to no device of node {}", n.id),
                repair: None,
            });
            continue;
        }
        if e.busy.devices.contains(dev) {
            continue;
        }
        let want = want.lvs.get(vg).cloned().unwrap_or_default();
        for (lv, pool) in &v.lvs {
            if want.contains(lv) {
                continue;
            }
            let Some(id) = brick_id_of(lv).map(String::from) else {
                let what = if pool.is_empty() { "thin pool" } else { "LV" };
                found.foreign.push(format!("{what} {vg}/{lv}"));
                continue;
            };
            if e.busy.bricks.contains(&id) {
                continue;
            }
            let o = found.orphans.entry(id).or_default();
            o.vg = vg.clone();
            if pool.is_empty() {
                o.pool = Some(lv.clone());
                o.what.push(format!("thin pool {vg}/{lv}"));
            } else {
                o.lv = Some(lv.clone());
                if !want.contains(pool) {
                    o.pool = Some(pool.clone());
                }
                o.what.push(format!("LV {vg}/{lv}"));
            }
        }
    }
}

/// Mounts and fstab lines under the mount root that no brick of the state explains: an
/// orphan brick's (Hekate's naming, in `vg_<device>/`) or foreign.
fn scan_mounts(e: &Expected, want: &Wanted, inv: &NodeInventory, found: &mut Unexplained) {
    let ours = |m: &String| m.starts_with(BRICK_ROOT);
    for (set, what) in [(&inv.mounts, "mount"), (&inv.fstab, "fstab line")] {
        for m in set.iter().filter(|m| ours(m) && !want.mounts.contains(*m)) {
            let rest = &m[BRICK_ROOT.len()..];
            let (vg, id) = match rest.split_once('/') {
                Some((vg, dir)) if !dir.contains('/') => match brick_id_of(dir) {
                    Some(id) => (vg, id.to_string()),
                    None => {
                        found.foreign.push(format!("{what} {m}"));
                        continue;
                    }
                },
                _ => {
                    found.foreign.push(format!("{what} {m}"));
                    continue;
                }
            };
            if e.busy.bricks.contains(&id) || e.busy.devices.contains(vg.trim_start_matches("vg_")) {
                continue;
            }
            let o = found.orphans.entry(id).or_default();
            if o.vg.is_empty() {
                o.vg = vg.to_string();
            }
            o.mount = Some(m.clone());
            o.what.push(format!("{what} {m}"));
        }
    }
}

/// Bricks of the state (idle) without their LV, mount or fstab line.
fn missing_bricks(
    e: &Expected,
    host: &str,
    bricks: &[&BrickEntry],
    inv: &NodeInventory,
    out: &mut Vec<Finding>,
) {
    for b in bricks {
        if e.busy.bricks.contains(&b.id) || e.busy.devices.contains(&b.device) {
            continue;
        }
        let vg = format!("vg_{}", b.device);
        let lv = b.lvm_lv.clone().unwrap_or_else(|| format!("brick_{}", b.id));
        let dir = b.path.strip_suffix("/brick").unwrap_or(&b.path).to_string();
        let mut missing = Vec::new();
        if !inv.vgs.get(&vg).is_some_and(|v| v.lvs.contains_key(&lv)) {
            missing.push(format!("LV {vg}/{lv}"));
        }
        if !inv.mounts.contains(&dir) {
            missing.push(format!("mount {dir}"));
        }
        // Clone bricks live under Gluster's snapshot mounts, outside fstab.
        if dir.starts_with(BRICK_ROOT) && !inv.fstab.contains(&dir) {
            missing.push(format!("fstab line for {dir}"));
        }
        if !missing.is_empty() {
            out.push(Finding {
                kind: Kind::MissingBrick,
                place: host.to_string(),
                object: b.id.clone(),
                detail: format!(
                    "brick {} of volume {}: no {}",
                    b.id,
                    b.volume,
                    missing.join(", no ")
                ),
                repair: None,
            });
        }
    }
}

/// Whether a Gluster volume has a brick on one of `hosts` (storage names). Only such volumes
/// are a cluster's: a pool's answer may hold more (the simulated nodes answer a volume on
/// a host they cannot place to every pool).
pub fn on_hosts(v: &GlusterVolume, hosts: &BTreeSet<String>) -> bool {
    v.bricks
        .iter()
        .any(|b| b.split_once(':').is_some_and(|(h, _)| hosts.contains(h)))
}

/// One cluster's Gluster volumes against the state's: orphans, foreign volumes, bricks that
/// differ, and volumes Gluster does not have.
fn compare_volumes(
    e: &Expected,
    c: &ClusterEntry,
    vols: &[&VolumeEntry],
    seen: &Observed,
    out: &mut Vec<Finding>,
) {
    let Some(Ok(gluster)) = seen.volumes.get(&c.id) else {
        return;
    };
    let hosts = e.cluster_hosts(c);
    // Where a repair runs: the first node of the cluster that could be read.
    let host = c
        .nodes
        .iter()
        .filter_map(|n| e.nodes.get(n))
        .find(|n| matches!(seen.nodes.get(&n.id), Some(Ok(_))))
        .map(|n| n.manage_host().to_string());
    let state_vols: BTreeMap<&str, &VolumeEntry> = vols.iter().map(|v| (v.name.as_str(), *v)).collect();
    for (name, gv) in gluster {
        if !on_hosts(gv, &hosts) || e.busy.volumes.contains(name) {
            continue;
        }
        let finding = match state_vols.get(name.as_str()) {
            None => unknown_volume(e, c, name, gv, host.as_deref()),
            Some(v) => known_volume(e, c, name, gv, v),
        };
        out.extend(finding);
    }
    for (name, v) in state_vols {
        if e.busy.volumes.contains(name) || v.hidden || gluster.contains_key(name) {
            continue;
        }
        out.push(Finding {
            kind: Kind::MissingVolume,
            place: c.id.clone(),
            object: name.to_string(),
            detail: format!("volume {} ({name}) is not in Gluster", v.id),
            repair: None,
        });
    }
}

/// A foreign volume finding: `why` it is not Hekate's.
fn foreign_volume(c: &ClusterEntry, name: &str, why: String) -> Finding {
    Finding {
        kind: Kind::ForeignVolume,
        place: c.id.clone(),
        object: name.to_string(),
        detail: format!("Gluster volume {name} {why}; left alone"),
        repair: None,
    }
}

/// A Gluster volume whose name the state does not have in this cluster. An orphan is a
/// volume Hekate made (marked with an id of its own making, on bricks under its mount root)
/// that the state no longer has: a volume marked with the id of another volume of the state
/// is not one. Anything else is foreign.
fn unknown_volume(
    e: &Expected,
    c: &ClusterEntry,
    name: &str,
    gv: &GlusterVolume,
    host: Option<&str>,
) -> Option<Finding> {
    let on_our_bricks = gv.bricks.iter().any(|b| b.contains(BRICK_ROOT));
    let owner = crate::executor::OWNER_OPTION;
    Some(match gv.mark.as_deref() {
        Some(id)
            if crate::validate::is_uuid(id)
                && on_our_bricks
                && !e.volumes.contains_key(id)
                && !e.elsewhere.contains(id) =>
        {
            Finding {
                kind: Kind::OrphanVolume,
                place: c.id.clone(),
                object: name.to_string(),
                detail: format!(
                    "Gluster volume {name} ({} bricks, {owner} {id}) is not in the state",
                    gv.bricks.len()
                ),
                repair: host.map(|h| Repair::DestroyVolume {
                    host: h.to_string(),
                    name: name.to_string(),
                    id: id.to_string(),
                }),
            }
        }
        Some(id) => foreign_volume(
            c,
            name,
            format!("carries {owner} {id} but is not a volume Hekate knows by that name"),
        ),
        None => foreign_volume(c, name, format!("was not created by Hekate (no {owner})")),
    })
}

/// A Gluster volume with the name of state volume `v`: foreign without `v`'s mark; else its
/// bricks must be `v`'s.
fn known_volume(
    e: &Expected,
    c: &ClusterEntry,
    name: &str,
    gv: &GlusterVolume,
    v: &VolumeEntry,
) -> Option<Finding> {
    if gv.mark.as_deref() != Some(v.id.as_str()) {
        return Some(foreign_volume(
            c,
            name,
            format!(
                "has the name of volume {} but not its mark ({} {})",
                v.id,
                crate::executor::OWNER_OPTION,
                gv.mark.as_deref().unwrap_or("unset")
            ),
        ));
    }
    let want: BTreeSet<String> = v
        .bricks
        .iter()
        .filter_map(|b| e.bricks.get(b))
        .map(|b| e.brick_name(b))
        .collect();
    let have: BTreeSet<String> = gv.bricks.iter().cloned().collect();
    (want != have).then(|| Finding {
        kind: Kind::BricksDiffer,
        place: c.id.clone(),
        object: name.to_string(),
        detail: format!(
            "volume {name}: only in the state {:?}, only in Gluster {:?}",
            want.difference(&have).collect::<Vec<_>>(),
            have.difference(&want).collect::<Vec<_>>()
        ),
        repair: None,
    })
}

fn compare_peers(e: &Expected, c: &ClusterEntry, seen: &Observed, out: &mut Vec<Finding>) {
    let nodes: Vec<&NodeEntry> = c.nodes.iter().filter_map(|n| e.nodes.get(n)).collect();
    if nodes.len() < 2 || nodes.iter().any(|n| e.busy.nodes.contains(&n.id)) {
        return;
    }
    let mut invs = Vec::new();
    for n in &nodes {
        match seen.nodes.get(&n.id) {
            Some(Ok(inv)) => invs.push((*n, inv)),
            _ => return, // membership needs every node's view
        }
    }
    let all_names: BTreeSet<&str> = nodes
        .iter()
        .flat_map(|n| n.storage.iter().chain(n.manage.iter()).map(String::as_str))
        .collect();
    for (n, inv) in &invs {
        let names: BTreeSet<&str> = n.storage.iter().map(String::as_str).collect();
        let seen_by_others = invs
            .iter()
            .filter(|(m, _)| m.id != n.id)
            .any(|(_, i)| i.peers.iter().any(|p| names.contains(p.as_str())));
        let sees_others = invs
            .iter()
            .any(|(m, _)| m.id != n.id && m.storage.iter().any(|s| inv.peers.contains(s)));
        if !seen_by_others && !sees_others {
            out.push(Finding {
                kind: Kind::PeerMissing,
                place: c.id.clone(),
                object: n.storage_host().to_string(),
                detail: format!("node {} ({}) is not in the trusted pool", n.id, n.storage_host()),
                repair: None,
            });
        }
        // Gluster may know a peer by another name than Hekate's (the one it resolved when
        // probed): only a pool larger than the cluster has a peer too many.
        if inv.peers.len() < nodes.len() {
            continue;
        }
        for p in &inv.peers {
            if !all_names.contains(p.as_str()) {
                out.push(Finding {
                    kind: Kind::PeerUnknown,
                    place: c.id.clone(),
                    object: p.clone(),
                    detail: format!(
                        "{} has peer {p}, which is no node of cluster {}",
                        n.storage_host(),
                        c.id
                    ),
                    repair: None,
                });
            }
        }
    }
}

/// Findings that hold against both views of the state (taken before and after the nodes
/// were read), each view skipping what was busy in either: a change committed while the
/// nodes were read is never reported. Takes both views: at 100,000 volumes each is hundreds
/// of MB, and cloning them to set the merged busy set held four copies at once (a leader
/// at 1.8 GB during the periodic reconcile).
///
/// The volumes found elsewhere are read with the second view (they are the marks the nodes
/// answered with, not known before the read): both views judge marks by them.
pub fn stable(mut before: Expected, mut after: Expected, seen: &Observed) -> Vec<Finding> {
    before.busy.merge(&after.busy);
    after.busy = before.busy.clone();
    before.elsewhere.clone_from(&after.elsewhere);
    let in_after: BTreeSet<_> = compare(&after, seen).iter().map(Finding::key).collect();
    drop(after);
    let mut out: Vec<Finding> = compare(&before, seen)
        .into_iter()
        .filter(|f| in_after.contains(&f.key()))
        .collect();
    out.dedup();
    out
}

mod block;
pub use block::bhvs as block_bhvs;
#[cfg(test)]
mod tests;
