//! Heketi's JSON dump format (spec 9.3): `GET /db/dump` and `hekate db export` write it from
//! the replicated state; `hekate db import` (`POST /db/import`) loads one into an empty
//! cluster, so a Heketi user migrates by `heketi db export` then `hekate db import`.
//!
//! Entry objects use Heketi's Go field names around the API shapes. Maps are emitted with
//! sorted keys and 4-space indentation, as Go's encoder does.
//!
//! Block volumes travel as Heketi's `blockvolumeentries` (`{"Info": BlockVolumeInfo with
//! `auth` when set, "Pending": {"Id": ""}}`); a dump holding any is imported with
//! [`Command::ImportWithBlock`] (log format 3), one without any with [`Command::Import`], so
//! that it still imports while the members' agreed log format is below 3. A block volume's
//! requested `clusters` is read but not kept (Hekate does not store it), so an export omits it.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use hekate_raft::{StateReader, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::state::model::{
    BlockVolumeEntry, BrickEntry, ClusterEntry, DeviceEntry, Durability, NodeEntry, Tags, VolumeEntry,
    SUBTYPE_ARBITER,
};
use crate::state::{self, Command, ImportSet};
use crate::validate;
use crate::views::{self, Hostnames, Storage};

#[derive(Debug, Serialize, Deserialize, Default)]
pub struct Dump {
    #[serde(default)]
    pub clusterentries: BTreeMap<String, ClusterDump>,
    #[serde(default)]
    pub volumeentries: BTreeMap<String, VolumeDump>,
    #[serde(default)]
    pub brickentries: BTreeMap<String, BrickDump>,
    #[serde(default)]
    pub nodeentries: BTreeMap<String, NodeDump>,
    #[serde(default)]
    pub deviceentries: BTreeMap<String, DeviceDump>,
    #[serde(default)]
    pub blockvolumeentries: BTreeMap<String, BlockVolumeDump>,
    #[serde(default)]
    pub dbattributeentries: BTreeMap<String, Attribute>,
    #[serde(default)]
    pub pendingoperations: BTreeMap<String, Value>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Attribute {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value")]
    pub value: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ClusterInfoDump {
    pub id: String,
    #[serde(default)]
    pub nodes: Vec<String>,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub block: bool,
    #[serde(default)]
    pub file: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub blockvolumes: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ClusterDump {
    #[serde(rename = "Info")]
    pub info: ClusterInfoDump,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NodeInfoDump {
    pub zone: i64,
    pub hostnames: Hostnames,
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
    pub id: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NodeDump {
    #[serde(rename = "State")]
    pub state: String,
    #[serde(rename = "Info")]
    pub info: NodeInfoDump,
    #[serde(rename = "Devices", default)]
    pub devices: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceInfoDump {
    pub name: String,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
    pub storage: Storage,
    pub id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pv_uuid: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceDump {
    #[serde(rename = "State")]
    pub state: String,
    #[serde(rename = "Info")]
    pub info: DeviceInfoDump,
    #[serde(rename = "Bricks", default)]
    pub bricks: Vec<String>,
    #[serde(rename = "NodeId")]
    pub node_id: String,
    #[serde(rename = "ExtentSize", default)]
    pub extent_size: u64,
}

#[derive(Debug, Serialize, Deserialize, Default)]
pub struct Pending {
    #[serde(rename = "Id", default)]
    pub id: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BrickDump {
    #[serde(rename = "Info")]
    pub info: views::BrickInfo,
    #[serde(rename = "TpSize")]
    pub tp_size: u64,
    #[serde(rename = "PoolMetadataSize")]
    pub pool_metadata_size: u64,
    #[serde(rename = "Pending", default)]
    pub pending: Pending,
    #[serde(rename = "LvmThinPool", default)]
    pub lvm_thin_pool: String,
    #[serde(rename = "LvmLv", default)]
    pub lvm_lv: String,
    #[serde(rename = "SubType", default)]
    pub sub_type: u8,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct VolumeDump {
    #[serde(rename = "Info")]
    pub info: Value,
    #[serde(rename = "Bricks", default)]
    pub bricks: Vec<String>,
    #[serde(rename = "GlusterVolumeOptions", default)]
    pub options: Vec<String>,
    #[serde(rename = "Pending", default)]
    pub pending: Pending,
}

/// Heketi's `BlockVolumeInfo` as its DB stores it: the create request's fields (`clusters`,
/// `hacount`, `auth` omitted when empty) then the result's, in Go's field order.
#[derive(Debug, Serialize, Deserialize, Default)]
pub struct BlockVolumeInfoDump {
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub clusters: Vec<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "is_zero_i")]
    pub hacount: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub auth: bool,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub blockvolume: views::BlockTarget,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub blockhostingvolume: String,
    #[serde(default, skip_serializing_if = "is_zero_u")]
    pub usablesize: u64,
}

/// The iSCSI target of a block volume (`lun` is always 0 in Heketi).

#[derive(Debug, Serialize, Deserialize, Default)]
pub struct BlockVolumeDump {
    #[serde(rename = "Info")]
    pub info: BlockVolumeInfoDump,
    #[serde(rename = "Pending", default)]
    pub pending: Pending,
}

fn is_zero_i(v: &i64) -> bool {
    *v == 0
}

fn is_zero_u(v: &u64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// Go writes a nil slice as `null`.
fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

fn block_dump(b: &BlockVolumeEntry) -> BlockVolumeDump {
    BlockVolumeDump {
        info: BlockVolumeInfoDump {
            size: b.size,
            clusters: Vec::new(),
            name: b.name.clone(),
            hacount: b.hacount,
            auth: b.auth,
            id: b.id.clone(),
            blockvolume: views::BlockTarget::of(b),
            cluster: b.cluster.clone(),
            blockhostingvolume: b.bhv.clone(),
            usablesize: b.usable(),
        },
        pending: Pending::default(),
    }
}

/// The whole replicated state as Heketi's dump. Block volumes being created or deleted
/// (hidden from the API) are left out, as pending volumes are: the dump is what the API shows.
pub fn export(r: &impl StateReader) -> Result<Dump, StoreError> {
    let mut d = Dump::default();
    for b in state::all::<BlockVolumeEntry>(r, state::keys::BLOCKVOLUME_PREFIX)? {
        if !b.hidden {
            d.blockvolumeentries.insert(b.id.clone(), block_dump(&b));
        }
    }
    for cid in state::cluster_ids(r)? {
        let Some(c) = state::get_cluster(r, &cid)? else {
            continue;
        };
        let hosts = views::cluster_hosts(r, &cid)?;
        let volumes = state::cluster_volume_ids(r, &cid)?;
        for vid in &volumes {
            if let Some(v) = state::get_volume(r, vid)? {
                export_volume(r, &v, &hosts, &mut d)?;
            }
        }
        for nid in &c.nodes {
            let Some(n) = state::get_node(r, nid)? else {
                continue;
            };
            for did in &n.devices {
                let Some(dev) = state::get_device(r, did)? else {
                    continue;
                };
                d.deviceentries.insert(
                    dev.id.clone(),
                    device_dump(&dev, state::device_brick_ids(r, did)?),
                );
            }
            d.nodeentries.insert(n.id.clone(), node_dump(&n));
        }
        d.clusterentries.insert(
            cid.clone(),
            ClusterDump {
                info: ClusterInfoDump {
                    id: cid.clone(),
                    nodes: c.nodes.iter().cloned().collect(),
                    volumes,
                    block: c.block,
                    file: c.file,
                    blockvolumes: c
                        .blockvolumes
                        .iter()
                        .filter(|b| d.blockvolumeentries.contains_key(*b))
                        .cloned()
                        .collect(),
                },
            },
        );
    }
    for k in [
        "DB_BRICK_HAS_SUBTYPE_FIELD",
        "DB_CLUSTER_HAS_FILE_BLOCK_FLAG",
        "DB_DEVICE_HAS_ID_META",
        "DB_HAS_PENDING_OPS_BUCKET",
    ] {
        d.dbattributeentries.insert(
            k.into(),
            Attribute {
                key: k.into(),
                value: "yes".into(),
            },
        );
    }
    Ok(d)
}

/// Volume `v` (and its bricks) into the dump, its info as Heketi stores it.
fn export_volume(
    r: &impl StateReader,
    v: &VolumeEntry,
    hosts: &[String],
    d: &mut Dump,
) -> Result<(), StoreError> {
    let info = views::volume_info(r, v, hosts)?;
    let mut info = serde_json::to_value(&info).map_err(|e| StoreError::Invalid(e.to_string()))?;
    if let Value::Object(m) = &mut info {
        m.shift_remove("bricks");
        m.shift_remove("glustervolumeoptions");
        if !v.request_clusters.is_empty() {
            // Heketi keeps the request's `clusters` in the stored info, after `size`.
            m.shift_insert(1, "clusters".into(), serde_json::json!(v.request_clusters));
        }
    }
    for bid in &v.bricks {
        if let Some(b) = state::get_brick(r, bid)? {
            d.brickentries.insert(b.id.clone(), brick_dump(&b));
        }
    }
    d.volumeentries.insert(
        v.id.clone(),
        VolumeDump {
            info,
            bricks: v.bricks.iter().cloned().collect(),
            options: v.options.clone(),
            pending: Pending::default(),
        },
    );
    Ok(())
}

fn brick_dump(b: &BrickEntry) -> BrickDump {
    BrickDump {
        info: views::brick_info(b),
        tp_size: b.tp_size,
        pool_metadata_size: b.pool_metadata_size,
        pending: Pending::default(),
        lvm_thin_pool: b.thin_pool(),
        lvm_lv: b.lvm_lv.clone().unwrap_or_default(),
        sub_type: b.subtype,
    }
}

fn node_dump(n: &NodeEntry) -> NodeDump {
    NodeDump {
        state: n.state.to_string(),
        info: NodeInfoDump {
            zone: n.zone,
            hostnames: Hostnames {
                manage: n.manage.clone(),
                storage: n.storage.clone(),
            },
            cluster: n.cluster.clone(),
            tags: n.tags.clone(),
            id: n.id.clone(),
        },
        devices: n.devices.iter().cloned().collect(),
    }
}

fn device_dump(d: &DeviceEntry, bricks: Vec<String>) -> DeviceDump {
    DeviceDump {
        state: d.state.to_string(),
        info: DeviceInfoDump {
            name: d.name.clone(),
            tags: d.tags.clone(),
            storage: Storage {
                total: d.total,
                free: d.free,
                used: d.used,
            },
            id: d.id.clone(),
            paths: d.paths.clone(),
            pv_uuid: d.pv_uuid.clone(),
        },
        bricks,
        node_id: d.node.clone(),
        extent_size: d.extent_size,
    }
}

/// Go's `json.MarshalIndent(v, "", "    ")` plus newline.
pub fn to_go_json(d: &Dump) -> String {
    match crate::gojson::to_string_pretty(d) {
        Some(s) => format!("{s}\n"),
        None => "{}\n".into(),
    }
}

fn volume_from(id: &str, v: &VolumeDump) -> Result<VolumeEntry, String> {
    let i = &v.info;
    let s = |k: &str| {
        i[k].as_str()
            .map(String::from)
            .ok_or_else(|| format!("volume {id}: {k} missing"))
    };
    let d = &i["durability"];
    let durability = Durability {
        kind: d["type"].as_str().unwrap_or("none").to_string(),
        replica: d["replicate"]["replica"].as_i64(),
        data: d["disperse"]["data"].as_i64(),
        redundancy: d["disperse"]["redundancy"].as_i64(),
    };
    let arbiter = v
        .options
        .iter()
        .any(|o| o.split_whitespace().collect::<Vec<_>>() == ["user.heketi.arbiter", "true"]);
    Ok(VolumeEntry {
        id: id.to_string(),
        name: s("name")?,
        cluster: s("cluster")?,
        size: i["size"]
            .as_u64()
            .ok_or_else(|| format!("volume {id}: size missing"))?,
        durability,
        gid: i["gid"].as_i64().unwrap_or(0),
        options: v.options.clone(),
        block: i["block"].as_bool().unwrap_or(false),
        snapshot_enable: i["snapshot"]["enable"].as_bool().unwrap_or(false),
        snapshot_factor: i["snapshot"]["factor"].as_f64().unwrap_or(1.0) as f32,
        arbiter,
        bricks: v.bricks.iter().cloned().collect(),
        pending: None,
        hidden: false,
        block_free: i["blockinfo"]["freesize"].as_u64().unwrap_or(0),
        block_reserved: i["blockinfo"]["reservedsize"].as_u64().unwrap_or(0),
        block_restriction: i["blockinfo"]["restriction"].as_str().unwrap_or("").to_string(),
        request_clusters: i["clusters"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c.as_str().map(String::from)).collect())
            .unwrap_or_default(),
        brick_sets: Vec::new(),
    })
}

/// A dump's brick passes the rules of what Hekate itself would create: a brick path under
/// Heketi's mount root (or Gluster's snapshot mounts, for clones), plain LVM names, sizes
/// within bounds. These strings reach node command lines (`umount`, `lvremove`, fstab).
fn check_brick(id: &str, b: &BrickDump) -> Result<(), String> {
    let path = &b.info.path;
    let under_root = path.starts_with(crate::executor::BRICK_ROOT)
        || crate::executor::SNAP_ROOTS.iter().any(|r| path.starts_with(r));
    if !validate::is_brick_path(path) || !under_root {
        return Err(format!(
            "brick {id}: path {path:?} is not a brick path under {} (or Gluster's snapshot mounts)",
            crate::executor::BRICK_ROOT
        ));
    }
    for (field, v) in [("LvmLv", &b.lvm_lv), ("LvmThinPool", &b.lvm_thin_pool)] {
        if !v.is_empty() && !validate::is_lv_name(v) {
            return Err(format!("brick {id}: {field} {v:?} is not a valid LVM name"));
        }
    }
    if [b.info.size, b.tp_size, b.pool_metadata_size]
        .iter()
        .any(|x| *x > validate::MAX_KIB)
    {
        return Err(format!("brick {id}: sizes beyond {} KiB", validate::MAX_KIB));
    }
    Ok(())
}

/// What an import commits: the records of [`Command::Import`], and the block volumes that
/// make it a [`Command::ImportWithBlock`].
#[derive(Debug, Serialize)]
pub struct ImportPlan {
    pub set: ImportSet,
    pub blockvolumes: Vec<BlockVolumeEntry>,
}

impl ImportPlan {
    /// `Import` when there are no block volumes (any replica applies it), else `ImportWithBlock`.
    pub fn command(self) -> Command {
        if self.blockvolumes.is_empty() {
            Command::Import {
                set: Box::new(self.set),
            }
        } else {
            Command::ImportWithBlock {
                set: Box::new(self.set),
                blockvolumes: self.blockvolumes,
            }
        }
    }
}

/// Converts and checks a dump: every reference resolves, nothing is pending, every name,
/// path, LV, host and size passes the rules API input passes ([`crate::validate`]), what the
/// API keeps unique (volume names in a cluster, block volume names in a block-hosting volume,
/// hostnames, device names on a node) is, and each block-hosting volume's sizes add up,
/// before anything is committed.
pub fn plan_import(d: &Dump) -> Result<ImportPlan, String> {
    refuse_whole(d)?;
    let clusters = plan_clusters(d)?;
    let nodes = plan_nodes(d)?;
    let devices = plan_devices(d)?;
    let mut bricks = plan_bricks(d)?;
    mark_shared_pools(&mut bricks);
    let volumes = plan_volumes(d)?;
    check_lists(d)?;
    let blockvolumes = plan_blockvolumes(d, &volumes)?;
    check_block_lists(d)?;
    check_block_sizes(&volumes, &blockvolumes)?;
    let set = ImportSet {
        clusters,
        nodes,
        devices,
        bricks,
        volumes,
    };
    check_unique(&set)?;
    check_unique_blocks(&blockvolumes)?;
    Ok(ImportPlan { set, blockvolumes })
}

/// Block volumes: not pending, in a known cluster, on a known block-hosting volume of that
/// cluster, with a valid name, size, hosts and HA count.
fn plan_blockvolumes(d: &Dump, volumes: &[VolumeEntry]) -> Result<Vec<BlockVolumeEntry>, String> {
    let mut out = Vec::new();
    for (id, b) in &d.blockvolumeentries {
        if !b.pending.id.is_empty() {
            return Err(format!(
                "block volume {id} belongs to pending operation {}",
                b.pending.id
            ));
        }
        let i = &b.info;
        d.clusterentries
            .get(&i.cluster)
            .ok_or_else(|| format!("block volume {id}: unknown cluster {:?}", i.cluster))?;
        let bhv = volumes
            .iter()
            .find(|v| v.id == i.blockhostingvolume)
            .ok_or_else(|| {
                format!(
                    "block volume {id}: unknown block-hosting volume {:?}",
                    i.blockhostingvolume
                )
            })?;
        if !bhv.block {
            return Err(format!(
                "block volume {id}: volume {} is not a block-hosting volume",
                bhv.id
            ));
        }
        if bhv.cluster != i.cluster {
            return Err(format!(
                "block volume {id}: in cluster {} but its block-hosting volume {} is in cluster {}",
                i.cluster, bhv.id, bhv.cluster
            ));
        }
        if !validate::is_volume_name(&i.name) {
            return Err(format!(
                "block volume {id}: name {:?} is not a valid volume name (letters, digits, _ and -)",
                i.name
            ));
        }
        if i.size == 0 || i.size > validate::MAX_VOLUME_GIB {
            return Err(format!(
                "block volume {id}: size {} GiB is not between 1 and {} GiB",
                i.size,
                validate::MAX_VOLUME_GIB
            ));
        }
        if i.usablesize > i.size {
            return Err(format!(
                "block volume {id}: usable size {} GiB is beyond its size {} GiB",
                i.usablesize, i.size
            ));
        }
        if !(0..=64).contains(&i.hacount) {
            return Err(format!("block volume {id}: hacount {} is not valid", i.hacount));
        }
        if let Some(h) = i.blockvolume.hosts.iter().find(|h| !validate::is_host(h)) {
            return Err(format!("block volume {id}: {h:?} is not a valid hostname"));
        }
        out.push(BlockVolumeEntry {
            id: id.clone(),
            name: i.name.clone(),
            cluster: i.cluster.clone(),
            bhv: i.blockhostingvolume.clone(),
            size: i.size,
            usable_size: if i.usablesize == 0 { i.size } else { i.usablesize },
            hacount: i.hacount,
            auth: i.auth,
            hosts: i.blockvolume.hosts.clone(),
            iqn: i.blockvolume.iqn.clone(),
            username: i.blockvolume.username.clone(),
            password: i.blockvolume.password.clone(),
            pending: None,
            hidden: false,
        });
    }
    Ok(out)
}

/// The block volume lists (a cluster's `blockvolumes`, a block-hosting volume's
/// `blockinfo.blockvolume`) are exactly the block volumes pointing back: Hekate keeps them as
/// indexes written from the block volumes, so a list that says otherwise would be lost.
fn check_block_lists(d: &Dump) -> Result<(), String> {
    let lists = d
        .clusterentries
        .iter()
        .map(|(id, c)| ("cluster", id, c.info.blockvolumes.clone(), false))
        .chain(d.volumeentries.iter().map(|(id, v)| {
            let list = v.info["blockinfo"]["blockvolume"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                .unwrap_or_default();
            ("volume", id, list, true)
        }));
    for (kind, id, list, by_bhv) in lists {
        let pointing: BTreeSet<&String> = d
            .blockvolumeentries
            .iter()
            .filter(|(_, b)| {
                let owner = if by_bhv {
                    &b.info.blockhostingvolume
                } else {
                    &b.info.cluster
                };
                owner == id
            })
            .map(|(bid, _)| bid)
            .collect();
        for b in &list {
            if !d.blockvolumeentries.contains_key(b) {
                return Err(format!("{kind} {id} lists unknown block volume {b}"));
            }
            if !pointing.contains(b) {
                return Err(format!("{kind} {id} lists block volume {b} of another {kind}"));
            }
        }
        let listed: BTreeSet<&String> = list.iter().collect();
        if let Some(b) = pointing.iter().find(|b| !listed.contains(**b)) {
            return Err(format!("{kind} {id} does not list its block volume {b}"));
        }
    }
    Ok(())
}

/// Heketi's invariant (its db check; its next start would lock the volume otherwise):
/// a block-hosting volume's size is its block volumes' sizes plus its free and reserved
/// sizes. Refused rather than repaired: where the difference went is not known, and a
/// start of Heketi on that database repairs it (free size recomputed, volume locked) before
/// a new export.
fn check_block_sizes(volumes: &[VolumeEntry], blocks: &[BlockVolumeEntry]) -> Result<(), String> {
    for v in volumes.iter().filter(|v| v.block) {
        let used: u64 = blocks
            .iter()
            .filter(|b| b.bhv == v.id)
            .map(|b| b.size)
            .fold(0, u64::saturating_add);
        let sum = used.saturating_add(v.block_free).saturating_add(v.block_reserved);
        if sum != v.size {
            return Err(format!(
                "block-hosting volume {}: size {} GiB is not its block volumes' {used} + free {} + reserved {} (start Heketi once on this database, it repairs the sizes, then export again)",
                v.id, v.size, v.block_free, v.block_reserved
            ));
        }
    }
    Ok(())
}

/// Block volume names are unique within their block-hosting volume (the `bvn/` index).
fn check_unique_blocks(blocks: &[BlockVolumeEntry]) -> Result<(), String> {
    let mut names: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for b in blocks {
        if let Some(other) = names.insert((&b.bhv, &b.name), &b.id) {
            return Err(format!(
                "block volumes {other} and {} are both named {:?} in block-hosting volume {}",
                b.id, b.name, b.bhv
            ));
        }
    }
    Ok(())
}

/// The id lists of nodes (devices), devices and volumes (bricks) name existing entries: the
/// import writes them as indexes that reads follow.
fn check_lists(d: &Dump) -> Result<(), String> {
    for (id, n) in &d.nodeentries {
        if let Some(x) = n.devices.iter().find(|x| !d.deviceentries.contains_key(*x)) {
            return Err(format!("node {id} lists unknown device {x}"));
        }
    }
    for (id, dv) in &d.deviceentries {
        if let Some(x) = dv.bricks.iter().find(|x| !d.brickentries.contains_key(*x)) {
            return Err(format!("device {id} lists unknown brick {x}"));
        }
        // A device lists exactly the bricks that name it: the index imported from the
        // list and each brick's own record then agree, as every write keeps them.
        if let Some(x) = dv.bricks.iter().find(|x| d.brickentries[*x].info.device != *id) {
            return Err(format!(
                "device {id} lists brick {x}, which is on device {}",
                d.brickentries[x].info.device
            ));
        }
    }
    // Every listed brick names the device that lists it (above), so a brick in any list is
    // in its own device's list: one set instead of a search of that list per brick.
    let listed: HashSet<&str> = d
        .deviceentries
        .values()
        .flat_map(|dv| dv.bricks.iter().map(String::as_str))
        .collect();
    for (id, b) in &d.brickentries {
        if !listed.contains(id.as_str()) {
            return Err(format!(
                "brick {id} is on device {}, which does not list it",
                b.info.device
            ));
        }
    }
    for (id, v) in &d.volumeentries {
        if let Some(x) = v.bricks.iter().find(|x| !d.brickentries.contains_key(*x)) {
            return Err(format!("volume {id} lists unknown brick {x}"));
        }
    }
    Ok(())
}

/// What the API keeps unique stays unique: a second holder would silently take over the
/// index entry (`vn/`, `hm/`, `hs/`) of the first.
fn check_unique(set: &ImportSet) -> Result<(), String> {
    let mut names: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for v in &set.volumes {
        if let Some(other) = names.insert((&v.cluster, &v.name), &v.id) {
            return Err(format!(
                "volumes {other} and {} are both named {:?} in cluster {}",
                v.id, v.name, v.cluster
            ));
        }
    }
    let mut manage: BTreeMap<&str, &str> = BTreeMap::new();
    let mut storage: BTreeMap<&str, &str> = BTreeMap::new();
    for n in &set.nodes {
        for (seen, hosts, what) in [
            (&mut manage, &n.manage, "management"),
            (&mut storage, &n.storage, "storage"),
        ] {
            for h in hosts {
                if let Some(other) = seen.insert(h, &n.id) {
                    if other != n.id {
                        return Err(format!(
                            "nodes {other} and {} both have {what} hostname {h}",
                            n.id
                        ));
                    }
                }
            }
        }
    }
    let mut devices: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for (dv, _) in &set.devices {
        if let Some(other) = devices.insert((&dv.node, &dv.name), &dv.id) {
            return Err(format!(
                "devices {other} and {} of node {} are both {}",
                dv.id, dv.node, dv.name
            ));
        }
    }
    Ok(())
}

/// What refuses a dump as a whole: pending operations, ids not Heketi's.
fn refuse_whole(d: &Dump) -> Result<(), String> {
    if !d.pendingoperations.is_empty() {
        return Err(format!(
            "{} pending operations: clean them up in Heketi first (heketi offline cleanup-operations)",
            d.pendingoperations.len()
        ));
    }
    let ids: BTreeSet<&String> = d
        .clusterentries
        .keys()
        .chain(d.nodeentries.keys())
        .chain(d.deviceentries.keys())
        .chain(d.brickentries.keys())
        .chain(d.volumeentries.keys())
        .chain(d.blockvolumeentries.keys())
        .collect();
    for id in &ids {
        if !validate::is_uuid(id) {
            return Err(format!("{id} is not a 32-hex id"));
        }
    }
    Ok(())
}

/// Clusters, with the volume ids each lists; their nodes and volumes must exist.
fn plan_clusters(d: &Dump) -> Result<Vec<(ClusterEntry, Vec<String>)>, String> {
    let mut out = Vec::new();
    for (id, c) in &d.clusterentries {
        let entry = ClusterEntry {
            id: id.clone(),
            file: c.info.file,
            block: c.info.block,
            nodes: c.info.nodes.iter().cloned().collect(),
            volume_count: c.info.volumes.len() as u64,
            blockvolumes: BTreeSet::new(),
        };
        for n in &c.info.nodes {
            d.nodeentries
                .get(n)
                .ok_or_else(|| format!("cluster {id} lists unknown node {n}"))?;
        }
        for v in &c.info.volumes {
            d.volumeentries
                .get(v)
                .ok_or_else(|| format!("cluster {id} lists unknown volume {v}"))?;
        }
        out.push((entry, c.info.volumes.clone()));
    }
    Ok(out)
}

/// Nodes: of a known cluster, with valid hostnames.
fn plan_nodes(d: &Dump) -> Result<Vec<NodeEntry>, String> {
    let mut out = Vec::new();
    for (id, n) in &d.nodeentries {
        d.clusterentries
            .get(&n.info.cluster)
            .ok_or_else(|| format!("node {id}: unknown cluster"))?;
        let hosts = n
            .info
            .hostnames
            .manage
            .iter()
            .chain(n.info.hostnames.storage.iter());
        if let Some(h) = hosts.clone().find(|h| !validate::is_host(h)) {
            return Err(format!("node {id}: {h:?} is not a valid hostname"));
        }
        out.push(NodeEntry {
            id: id.clone(),
            cluster: n.info.cluster.clone(),
            zone: n.info.zone,
            manage: n.info.hostnames.manage.clone(),
            storage: n.info.hostnames.storage.clone(),
            tags: n.info.tags.clone(),
            state: n.state.as_str().into(),
            devices: n.devices.iter().cloned().collect(),
            pending: None,
        });
    }
    Ok(out)
}

/// Devices, with the brick ids each lists: of a known node, a valid path, sizes in bounds.
fn plan_devices(d: &Dump) -> Result<Vec<(DeviceEntry, Vec<String>)>, String> {
    let mut out = Vec::new();
    for (id, dv) in &d.deviceentries {
        d.nodeentries
            .get(&dv.node_id)
            .ok_or_else(|| format!("device {id}: unknown node"))?;
        if !validate::is_device_path(&dv.info.name) {
            return Err(format!(
                "device {id}: {:?} is not a valid device path",
                dv.info.name
            ));
        }
        let s = &dv.info.storage;
        if [s.total, s.free, s.used, dv.extent_size]
            .iter()
            .any(|x| *x > validate::MAX_KIB)
        {
            return Err(format!(
                "device {id}: storage sizes beyond {} KiB",
                validate::MAX_KIB
            ));
        }
        out.push((
            DeviceEntry {
                id: id.clone(),
                name: dv.info.name.clone(),
                node: dv.node_id.clone(),
                tags: dv.info.tags.clone(),
                state: dv.state.as_str().into(),
                total: s.total,
                free: s.free,
                used: s.used,
                extent_size: if dv.extent_size == 0 { 4096 } else { dv.extent_size },
                pv_uuid: dv.info.pv_uuid.clone(),
                paths: dv.info.paths.clone(),
                brick_count: dv.bricks.len() as u64,
                pending: None,
            },
            dv.bricks.clone(),
        ));
    }
    Ok(out)
}

/// Bricks: not pending, of a known device, volume and node, passing [`check_brick`].
fn plan_bricks(d: &Dump) -> Result<Vec<BrickEntry>, String> {
    let mut out = Vec::new();
    for (id, b) in &d.brickentries {
        if !b.pending.id.is_empty() {
            return Err(format!(
                "brick {id} belongs to pending operation {}",
                b.pending.id
            ));
        }
        d.deviceentries
            .get(&b.info.device)
            .ok_or_else(|| format!("brick {id}: unknown device"))?;
        d.volumeentries
            .get(&b.info.volume)
            .ok_or_else(|| format!("brick {id}: unknown volume"))?;
        d.nodeentries
            .get(&b.info.node)
            .ok_or_else(|| format!("brick {id}: unknown node"))?;
        check_brick(id, b)?;
        out.push(BrickEntry {
            id: id.clone(),
            path: b.info.path.clone(),
            device: b.info.device.clone(),
            node: b.info.node.clone(),
            volume: b.info.volume.clone(),
            size: b.info.size,
            tp_size: b.tp_size,
            pool_metadata_size: b.pool_metadata_size,
            subtype: if b.sub_type == SUBTYPE_ARBITER {
                SUBTYPE_ARBITER
            } else {
                1
            },
            pending: None,
            lvm_thin_pool: (b.lvm_thin_pool != format!("tp_{id}") && !b.lvm_thin_pool.is_empty())
                .then(|| b.lvm_thin_pool.clone()),
            lvm_lv: (!b.lvm_lv.is_empty()).then(|| b.lvm_lv.clone()),
            pool_shared: !b.lvm_lv.is_empty(),
        });
    }
    Ok(out)
}

/// Bricks sharing a thin pool (clones and their origins) keep the pool until the last goes.
fn mark_shared_pools(bricks: &mut [BrickEntry]) {
    let mut pools: BTreeMap<(String, String), usize> = BTreeMap::new();
    for b in bricks.iter() {
        *pools.entry((b.device.clone(), b.thin_pool())).or_default() += 1;
    }
    for b in bricks.iter_mut() {
        if pools
            .get(&(b.device.clone(), b.thin_pool()))
            .copied()
            .unwrap_or(0)
            > 1
        {
            b.pool_shared = true;
        }
    }
}

/// Volumes: not pending, of a known cluster, with a valid durability, name, size and options.
fn plan_volumes(d: &Dump) -> Result<Vec<VolumeEntry>, String> {
    let mut out = Vec::new();
    for (id, v) in &d.volumeentries {
        if !v.pending.id.is_empty() {
            return Err(format!(
                "volume {id} belongs to pending operation {}",
                v.pending.id
            ));
        }
        let entry = volume_from(id, v)?;
        check_volume(id, &entry)?;
        d.clusterentries
            .get(&entry.cluster)
            .ok_or_else(|| format!("volume {id}: unknown cluster"))?;
        out.push(entry);
    }
    Ok(out)
}

/// A dump's volume passes the rules of a volume Hekate would create.
fn check_volume(id: &str, entry: &VolumeEntry) -> Result<(), String> {
    let du = &entry.durability;
    if !["none", "replicate", "disperse"].contains(&du.kind.as_str())
        || [du.replica, du.data, du.redundancy]
            .iter()
            .any(|x| x.is_some_and(|n| !(0..=64).contains(&n)))
    {
        return Err(format!(
            "volume {id}: durability {du:?} is not a valid durability"
        ));
    }
    if !validate::is_volume_name(&entry.name) {
        return Err(format!(
            "volume {id}: name {:?} is not a valid volume name (letters, digits, _ and -)",
            entry.name
        ));
    }
    if entry.size > validate::MAX_VOLUME_GIB {
        return Err(format!(
            "volume {id}: size {} GiB is beyond the maximum of {} GiB",
            entry.size,
            validate::MAX_VOLUME_GIB
        ));
    }
    if let Some(o) = entry.options.iter().find(|o| !validate::is_volume_option(o)) {
        return Err(format!(
            "volume {id}: GlusterVolumeOptions entry {o:?} is not a valid volume option"
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
