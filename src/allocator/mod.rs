//! Brick placement: a pure, deterministic function from an immutable view of the cluster's
//! devices and a request to a set of bricks (spec section 5). No store access, no clock, no
//! randomness: the same view and request always give the same placement. `apply` re-checks
//! capacity, so two plans made from the same view cannot overcommit a device.
//!
//! Rules (each set of `set_size` bricks): never two bricks of a set on one node; never two in
//! one zone when the cluster has at least `set_size` zones (Heketi only guaranteed that with
//! strict zone checking), and with strict zone checking refuse when it has fewer; optional
//! tag matching; a device takes a brick only if its free space is strictly greater than the
//! brick's thin pool plus metadata. Zones are interleaved in the device order, so with fewer
//! zones than bricks a set still spreads as widely as it can.

pub mod sizing;

use std::collections::{BTreeMap, BTreeSet};

use crate::state::model::Tags;
pub use sizing::{space_needed, GIB_KIB};

/// A device as the allocator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceView {
    pub id: String,
    pub node: String,
    pub zone: i64,
    /// Free KiB.
    pub free: u64,
    /// LVM extent size, KiB.
    pub extent: u64,
    /// Node tags overlaid with device tags (device wins).
    pub tags: Tags,
}

/// `key=value` or `key!=value` (Heketi's `user.heketi.device-tag-match`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRule {
    pub key: String,
    pub value: String,
    pub negate: bool,
}

impl TagRule {
    pub fn parse(rule: &str) -> Result<TagRule, String> {
        let bad = || format!("Invalid tag matching rule: Invalid tag match rule: {rule}");
        let (k, v, negate) = if let Some((k, v)) = rule.split_once("!=") {
            (k, v, true)
        } else if let Some((k, v)) = rule.split_once('=') {
            (k, v, false)
        } else {
            return Err(bad());
        };
        let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !ok(k) || !ok(v) {
            return Err(bad());
        }
        Ok(TagRule {
            key: k.into(),
            value: v.into(),
            negate,
        })
    }

    fn matches(&self, tags: &Tags) -> bool {
        let eq = tags.get(&self.key).map(|v| v == &self.value).unwrap_or(false);
        eq != self.negate
    }
}

/// What to place.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// GiB to place (the volume size, or the expansion delta).
    pub size_gib: u64,
    /// Bricks per set (1 distribute, r replicate, d+r disperse).
    pub set_size: usize,
    /// Data bricks per set (disperse `d`, else 1): brick size = size / sets / data.
    pub data_bricks: u64,
    pub snapshot_factor: f64,
    pub brick_min_kib: u64,
    pub brick_max_kib: u64,
    pub max_bricks: usize,
    pub existing_bricks: usize,
    pub zone_strict: bool,
    pub tag_rule: Option<TagRule>,
    /// Brick 2 of each set is an arbiter (replica 3 arbiter volumes).
    pub arbiter: bool,
    pub average_file_kib: u64,
    /// Rotates the device order so that volumes do not all start on the same device.
    pub seed: u64,
}

/// One brick to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub device: String,
    pub node: String,
    pub size: u64,
    pub tp_size: u64,
    pub meta_size: u64,
    pub arbiter: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("No space")]
    NoSpace,
    #[error("Maximum number of bricks reached.")]
    MaxBricks,
    #[error("Minimum brick size limit reached.  Out of space.")]
    MinBrickSize,
    #[error("No online storage devices in cluster")]
    NoDevices,
    #[error("Average file size ({0}) is greater than Brick size ({1})")]
    AverageFileSize(u64, u64),
}

/// Places `req` on `devices`. Tries 1, 2, 3, ... sets (smaller bricks) until every set fits.
pub fn place(devices: &[DeviceView], req: &Request) -> Result<Vec<Vec<Planned>>, AllocError> {
    if devices.is_empty() {
        return Err(AllocError::NoDevices);
    }
    // Sizes are bounded at the API and on import; beyond `u64` there is no place anyway.
    let total_kib = req.size_gib.checked_mul(GIB_KIB).ok_or(AllocError::NoSpace)?;
    let mut sets = 1u64;
    loop {
        let brick = total_kib.div_ceil(sets * req.data_bricks.max(1));
        if brick < req.brick_min_kib {
            return Err(AllocError::MinBrickSize);
        }
        if sets as usize * req.set_size + req.existing_bricks > req.max_bricks {
            return Err(AllocError::MaxBricks);
        }
        if brick <= req.brick_max_kib {
            if let Some(p) = try_place(devices, req, sets as usize, brick)? {
                return Ok(p);
            }
        }
        sets += 1;
    }
}

/// Smallest arbiter brick. Heketi's is 16 MiB, which `mkfs.xfs` refuses since xfsprogs 5.19
/// ("Filesystem must be larger than 300MB"): found on the testbed (Debian 12).
pub const ARBITER_MIN_KIB: u64 = 320 * 1024;

/// Places `sets` sets of bricks of `brick` KiB, or returns None if some set does not fit.
fn try_place(
    devices: &[DeviceView],
    req: &Request,
    sets: usize,
    brick: u64,
) -> Result<Option<Vec<Vec<Planned>>>, AllocError> {
    let arbiter_size = if req.arbiter {
        let avg = req.average_file_kib.max(1);
        if brick < avg {
            return Err(AllocError::AverageFileSize(avg, brick));
        }
        (brick / avg).max(ARBITER_MIN_KIB)
    } else {
        0
    };
    let mut free: BTreeMap<&str, u64> = devices.iter().map(|d| (d.id.as_str(), d.free)).collect();
    let ring = balanced_ring(devices);
    let zone_count = devices.iter().map(|d| d.zone).collect::<BTreeSet<_>>().len();
    let distinct_zones = req.zone_strict || zone_count >= req.set_size;
    let mut out = Vec::with_capacity(sets);
    for s in 0..sets {
        let rot = (req.seed as usize).wrapping_add(s) % ring.len();
        let order: Vec<&DeviceView> = ring[rot..].iter().chain(ring[..rot].iter()).copied().collect();
        match place_set(&order, req, distinct_zones, brick, arbiter_size, &mut free) {
            Some(set) => out.push(set),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// Fills one set, arbiter brick (index 2) first when the volume has one.
fn place_set<'a>(
    order: &[&'a DeviceView],
    req: &Request,
    distinct_zones: bool,
    brick: u64,
    arbiter_size: u64,
    free: &mut BTreeMap<&'a str, u64>,
) -> Option<Vec<Planned>> {
    let mut slots: Vec<Option<Planned>> = vec![None; req.set_size];
    let mut indexes: Vec<usize> = (0..req.set_size).collect();
    if req.arbiter && req.set_size >= 3 {
        indexes = std::iter::once(2)
            .chain((0..req.set_size).filter(|i| *i != 2))
            .collect();
    }
    let mut nodes: BTreeSet<&'a str> = BTreeSet::new();
    let mut zones: BTreeSet<i64> = BTreeSet::new();
    for idx in indexes {
        let is_arbiter = req.arbiter && idx == 2;
        let size = if is_arbiter { arbiter_size } else { brick };
        let factor = if is_arbiter { 1.0 } else { req.snapshot_factor };
        // Arbiter bricks prefer `arbiter=required` devices, data bricks `arbiter=disabled` ones.
        let preferred = if is_arbiter { "required" } else { "disabled" };
        let mut candidates: Vec<&'a DeviceView> = order.to_vec();
        if req.arbiter {
            candidates.sort_by_key(|d| d.tags.get("arbiter").map(String::as_str) != Some(preferred));
        }
        let found = candidates.into_iter().find_map(|d| {
            let (tp, meta) = space_needed(size, factor, d.extent);
            let room = free.get(d.id.as_str()).copied().unwrap_or(0);
            let node_taken = nodes.contains(d.node.as_str());
            let zone_taken = distinct_zones && zones.contains(&d.zone);
            let ok = !node_taken
                && !zone_taken
                && req.tag_rule.as_ref().is_none_or(|r| r.matches(&d.tags))
                && arbiter_role_ok(req.arbiter, is_arbiter, &d.tags)
                && room > tp + meta;
            ok.then_some((d, tp, meta))
        });
        let (d, tp, meta) = found?;
        nodes.insert(&d.node);
        zones.insert(d.zone);
        if let Some(f) = free.get_mut(d.id.as_str()) {
            *f -= tp + meta;
        }
        slots[idx] = Some(Planned {
            device: d.id.clone(),
            node: d.node.clone(),
            size,
            tp_size: tp,
            meta_size: meta,
            arbiter: is_arbiter,
        });
    }
    slots.into_iter().collect()
}

/// Heketi's `arbiter` tag: `required` devices take only arbiter bricks, `disabled` only data
/// bricks, anything else both.
fn arbiter_role_ok(volume_arbiter: bool, is_arbiter: bool, tags: &Tags) -> bool {
    if !volume_arbiter {
        return tags.get("arbiter").map(String::as_str) != Some("required");
    }
    match tags.get("arbiter").map(String::as_str) {
        Some("required") => is_arbiter,
        Some("disabled") => !is_arbiter,
        _ => true,
    }
}

/// Devices interleaved zone by zone and, within a zone, node by node (one device per visit,
/// most free first), so consecutive devices are on different nodes and zones.
fn balanced_ring(devices: &[DeviceView]) -> Vec<&DeviceView> {
    let mut by_zone: BTreeMap<i64, BTreeMap<&str, Vec<&DeviceView>>> = BTreeMap::new();
    for d in devices {
        by_zone
            .entry(d.zone)
            .or_default()
            .entry(&d.node)
            .or_default()
            .push(d);
    }
    for nodes in by_zone.values_mut() {
        for devs in nodes.values_mut() {
            devs.sort_by(|a, b| b.free.cmp(&a.free).then(a.id.cmp(&b.id)));
            devs.reverse(); // pop() takes the most free first
        }
    }
    // Per zone, a node-interleaved list; then interleave the zones.
    let mut zone_lists: Vec<Vec<&DeviceView>> = Vec::new();
    for nodes in by_zone.into_values() {
        let mut queues: Vec<Vec<&DeviceView>> = nodes.into_values().collect();
        let mut list = Vec::new();
        while queues.iter().any(|q| !q.is_empty()) {
            for q in queues.iter_mut() {
                if let Some(d) = q.pop() {
                    list.push(d);
                }
            }
        }
        zone_lists.push(list);
    }
    let mut ring = Vec::with_capacity(devices.len());
    let longest = zone_lists.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for z in &zone_lists {
            if let Some(d) = z.get(i) {
                ring.push(*d);
            }
        }
    }
    ring
}

/// Where a brick being evicted goes (spec 5.6): the same rules as its set (never on a node
/// another brick of the set uses; distinct zones when the cluster has enough of them or
/// strict checking is on; tags; arbiter roles), on a device other than its own.
#[derive(Debug, Clone)]
pub struct Replacement {
    pub old_device: String,
    pub size: u64,
    pub factor: f64,
    pub arbiter_brick: bool,
    pub volume_arbiter: bool,
    pub set_size: usize,
    /// Nodes and zones of the set's other bricks.
    pub other_nodes: BTreeSet<String>,
    pub other_zones: BTreeSet<i64>,
    pub zone_strict: bool,
    pub tag_rule: Option<TagRule>,
    pub seed: u64,
}

pub fn place_replacement(devices: &[DeviceView], r: &Replacement) -> Option<Planned> {
    let zone_count = devices.iter().map(|d| d.zone).collect::<BTreeSet<_>>().len();
    let distinct_zones = r.zone_strict || zone_count >= r.set_size;
    let ring = balanced_ring(devices);
    if ring.is_empty() {
        return None;
    }
    let rot = (r.seed as usize) % ring.len();
    let mut order: Vec<&DeviceView> = ring[rot..].iter().chain(ring[..rot].iter()).copied().collect();
    if r.volume_arbiter {
        let preferred = if r.arbiter_brick { "required" } else { "disabled" };
        order.sort_by_key(|d| d.tags.get("arbiter").map(String::as_str) != Some(preferred));
    }
    let factor = if r.arbiter_brick { 1.0 } else { r.factor };
    order.into_iter().find_map(|d| {
        let (tp, meta) = space_needed(r.size, factor, d.extent);
        let ok = d.id != r.old_device
            && !r.other_nodes.contains(&d.node)
            && !(distinct_zones && r.other_zones.contains(&d.zone))
            && r.tag_rule.as_ref().is_none_or(|t| t.matches(&d.tags))
            && arbiter_role_ok(r.volume_arbiter, r.arbiter_brick, &d.tags)
            && d.free > tp + meta;
        ok.then(|| Planned {
            device: d.id.clone(),
            node: d.node.clone(),
            size: r.size,
            tp_size: tp,
            meta_size: meta,
            arbiter: r.arbiter_brick,
        })
    })
}

/// A stable seed from an id (the rotation of the device ring).
pub fn seed_of(id: &str) -> u64 {
    u64::from_str_radix(id.get(..15).unwrap_or("0"), 16).unwrap_or(0)
}

#[cfg(test)]
mod tests;
