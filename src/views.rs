//! Heketi's response shapes (spec 1.3-1.5), built from stored records. Field order, omitted
//! empty fields and id-sorted arrays match Heketi's JSON byte for byte. Below the API
//! because two doors speak them: the handlers and the dump (`crate::dump`), whose entries
//! wrap these shapes. `GET /topology`'s streamed document at scale is module `topology`.

use std::collections::BTreeMap;

use hekate_raft::{StateReader, StoreError};
use serde::Serialize;

use crate::state;
use crate::state::model::{BrickEntry, DeviceEntry, NodeEntry, Tags, VolumeEntry};

mod topology;
pub use topology::topology_chunks;

#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Hostnames {
    pub manage: Vec<String>,
    pub storage: Vec<String>,
}

#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Storage {
    pub total: u64,
    pub free: u64,
    pub used: u64,
}

/// A brick as Heketi shows it. `S` is `String`, or `&str` where a brick is written
/// straight from its record (`GET /topology`'s brick table).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct BrickInfo<S = String> {
    pub id: S,
    pub path: S,
    pub device: S,
    pub node: S,
    pub volume: S,
    pub size: u64,
}

/// A device with its bricks; `B` is how a brick is held ([`BrickInfo`], or its JSON written
/// beforehand for `GET /topology`): the same for the node, volume and cluster shapes below.
#[derive(Debug, Serialize)]
pub struct DeviceInfo<B = BrickInfo> {
    pub name: String,
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
    pub storage: Storage,
    pub id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pv_uuid: String,
    pub state: String,
    pub bricks: Vec<B>,
}

#[derive(Debug, Serialize)]
pub struct NodeInfo<B = BrickInfo> {
    pub zone: i64,
    pub hostnames: Hostnames,
    pub cluster: String,
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
    pub id: String,
    pub state: String,
    pub devices: Vec<DeviceInfo<B>>,
}

#[derive(Debug, Serialize)]
pub struct Replicate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct Disperse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redundancy: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct DurabilityInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub replicate: Replicate,
    pub disperse: Disperse,
}

#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub enable: bool,
    pub factor: serde_json::Value,
}

#[derive(Debug, Serialize)]
pub struct MountOptions {
    #[serde(rename = "backup-volfile-servers")]
    pub backup_volfile_servers: String,
}

#[derive(Debug, Serialize)]
pub struct GlusterMount {
    pub hosts: Vec<String>,
    pub device: String,
    pub options: MountOptions,
}

#[derive(Debug, Serialize)]
pub struct Mount {
    pub glusterfs: GlusterMount,
}

/// Block-hosting capacity (GiB), omitted fields when zero/empty, as Heketi.
#[derive(Debug, Serialize, Default)]
pub struct BlockInfo {
    #[serde(skip_serializing_if = "is_zero_u")]
    pub freesize: u64,
    #[serde(skip_serializing_if = "is_zero_u")]
    pub reservedsize: u64,
    /// Its block volumes (not those being created or deleted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blockvolume: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub restriction: String,
}

fn is_zero_u(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Serialize)]
pub struct VolumeInfo<B = BrickInfo> {
    pub size: u64,
    pub name: String,
    pub durability: DurabilityInfo,
    #[serde(skip_serializing_if = "is_zero")]
    pub gid: i64,
    pub glustervolumeoptions: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub block: bool,
    pub snapshot: Snapshot,
    pub id: String,
    pub cluster: String,
    pub mount: Mount,
    pub blockinfo: BlockInfo,
    pub bricks: Vec<B>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Go prints a float32 in its shortest form (`1`, `1.5`, `1.2`).
pub fn go_float32(f: f32) -> serde_json::Value {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        return serde_json::Value::from(f as i64);
    }
    let shortest: f64 = format!("{f}").parse().unwrap_or(f as f64);
    serde_json::Value::from(shortest)
}

pub fn brick_info(b: &BrickEntry) -> BrickInfo {
    BrickInfo {
        id: b.id.clone(),
        path: b.path.clone(),
        device: b.device.clone(),
        node: b.node.clone(),
        volume: b.volume.clone(),
        size: b.size,
    }
}

pub fn device_info(r: &impl StateReader, d: &DeviceEntry) -> Result<DeviceInfo, StoreError> {
    let mut bricks = Vec::new();
    for id in state::device_brick_ids(r, &d.id)? {
        bricks.extend(state::get_brick(r, &id)?.map(|b| brick_info(&b)));
    }
    Ok(device_shape(d, bricks))
}

/// A device's shape around `bricks`.
fn device_shape<B>(d: &DeviceEntry, bricks: Vec<B>) -> DeviceInfo<B> {
    DeviceInfo {
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
        state: d.state.to_string(),
        bricks,
    }
}

pub fn node_info(r: &impl StateReader, n: &NodeEntry) -> Result<NodeInfo, StoreError> {
    let mut devices = Vec::new();
    for id in &n.devices {
        if let Some(d) = state::get_device(r, id)? {
            devices.push(device_info(r, &d)?);
        }
    }
    Ok(node_shape(n, devices))
}

/// A node's shape around `devices`.
fn node_shape<B>(n: &NodeEntry, devices: Vec<DeviceInfo<B>>) -> NodeInfo<B> {
    NodeInfo {
        zone: n.zone,
        hostnames: Hostnames {
            manage: n.manage.clone(),
            storage: n.storage.clone(),
        },
        cluster: n.cluster.clone(),
        tags: n.tags.clone(),
        id: n.id.clone(),
        state: n.state.to_string(),
        devices,
    }
}

/// Storage hostnames of every node of a cluster, in node id order (the mount hosts).
pub fn cluster_hosts(r: &impl StateReader, cluster: &str) -> Result<Vec<String>, StoreError> {
    let Some(c) = state::get_cluster(r, cluster)? else {
        return Ok(Vec::new());
    };
    let mut hosts = Vec::new();
    for id in &c.nodes {
        if let Some(n) = state::get_node(r, id)? {
            hosts.push(n.storage_host().to_string());
        }
    }
    Ok(hosts)
}

/// Volume info; `hosts` are the cluster's mount hosts (pass them in when listing many).
pub fn volume_info(
    r: &impl StateReader,
    v: &VolumeEntry,
    hosts: &[String],
) -> Result<VolumeInfo, StoreError> {
    let mut bricks = Vec::new();
    for id in &v.bricks {
        bricks.extend(state::get_brick(r, id)?.map(|b| brick_info(&b)));
    }
    volume_shape(r, v, hosts, bricks)
}

/// A volume's shape around `bricks` (a block-hosting volume's block volumes are read).
fn volume_shape<B>(
    r: &impl StateReader,
    v: &VolumeEntry,
    hosts: &[String],
    bricks: Vec<B>,
) -> Result<VolumeInfo<B>, StoreError> {
    let d = &v.durability;
    Ok(VolumeInfo {
        size: v.size,
        name: v.name.clone(),
        durability: DurabilityInfo {
            kind: d.kind.clone(),
            replicate: Replicate { replica: d.replica },
            disperse: Disperse {
                data: d.data,
                redundancy: d.redundancy,
            },
        },
        gid: v.gid,
        glustervolumeoptions: v.options.clone(),
        block: v.block,
        snapshot: Snapshot {
            enable: v.snapshot_enable,
            factor: go_float32(v.snapshot_factor),
        },
        id: v.id.clone(),
        cluster: v.cluster.clone(),
        mount: Mount {
            glusterfs: GlusterMount {
                device: format!(
                    "{}:{}",
                    hosts.first().map(String::as_str).unwrap_or_default(),
                    v.name
                ),
                options: MountOptions {
                    backup_volfile_servers: hosts.iter().skip(1).cloned().collect::<Vec<_>>().join(","),
                },
                hosts: hosts.to_vec(),
            },
        },
        blockinfo: BlockInfo {
            freesize: v.block_free,
            reservedsize: v.block_reserved,
            blockvolume: if v.block {
                state::visible_bhv_blocks(r, &v.id)?
            } else {
                Vec::new()
            },
            restriction: v.block_restriction.clone(),
        },
        bricks,
    })
}

/// Heketi-cli's `topology info` JSON for one cluster, assembled in one consistent read: the
/// reference shape. `GET /topology` writes the same fields in this order by hand
/// (`topology::cluster_json`); the byte-for-byte test against [`topology`] holds the two
/// together.
#[cfg(test)]
#[derive(Debug, Serialize)]
pub struct TopologyCluster<B = BrickInfo> {
    pub id: String,
    pub volumes: Vec<VolumeInfo<B>>,
    pub nodes: Vec<NodeInfo<B>>,
    pub block: bool,
    pub file: bool,
}

/// The whole document built from point reads: the reference `topology_chunks` (what
/// `GET /topology` serves) is checked against, byte for byte (`dump::tests`).
#[cfg(test)]
#[derive(Debug, Serialize)]
pub struct Topology {
    pub clusters: Vec<TopologyCluster>,
}

#[cfg(test)]
pub fn topology(r: &impl StateReader) -> Result<Topology, StoreError> {
    let mut clusters = Vec::new();
    for id in state::cluster_ids(r)? {
        let Some(c) = state::get_cluster(r, &id)? else {
            continue;
        };
        let hosts = cluster_hosts(r, &id)?;
        let mut volumes = Vec::new();
        for v in state::cluster_volume_ids(r, &c.id)? {
            if let Some(v) = state::get_volume(r, &v)? {
                if !v.hidden {
                    volumes.push(volume_info(r, &v, &hosts)?);
                }
            }
        }
        let mut nodes = Vec::new();
        for n in &c.nodes {
            if let Some(n) = state::get_node(r, n)? {
                nodes.push(node_info(r, &n)?);
            }
        }
        clusters.push(TopologyCluster {
            id: c.id.clone(),
            volumes,
            nodes,
            block: c.block,
            file: c.file,
        });
    }
    Ok(Topology { clusters })
}

/// Tags of a node overlaid with its device's (device wins), for placement.
pub fn merged_tags(node: &Tags, device: &Tags) -> Tags {
    let mut t: BTreeMap<String, String> = node.clone();
    t.extend(device.iter().map(|(k, v)| (k.clone(), v.clone())));
    t
}

/// A block volume's iSCSI target as Heketi shows it (API info and the dump alike).
#[derive(Debug, Clone, Serialize, serde::Deserialize, Default, PartialEq)]
pub struct BlockTarget {
    #[serde(default, deserialize_with = "go_nullable")]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub iqn: String,
    #[serde(default)]
    pub lun: i64,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
}

impl BlockTarget {
    pub fn of(b: &crate::state::model::BlockVolumeEntry) -> BlockTarget {
        BlockTarget {
            hosts: b.hosts.clone(),
            iqn: b.iqn.clone(),
            lun: 0,
            username: b.username.clone(),
            password: b.password.clone(),
        }
    }
}

/// Go writes a nil slice as `null`.
fn go_nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    use serde::Deserialize;
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// Heketi's BlockVolumeInfo (`GET /blockvolumes/{id}`), fields in its order; `auth` and
/// `clusters` are never returned.
#[derive(Debug, Serialize)]
pub struct BlockVolumeInfo {
    pub size: u64,
    pub name: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub hacount: i64,
    pub id: String,
    pub blockvolume: BlockTarget,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub blockhostingvolume: String,
    #[serde(skip_serializing_if = "is_zero_u")]
    pub usablesize: u64,
}

pub fn block_volume_info(b: &crate::state::model::BlockVolumeEntry) -> BlockVolumeInfo {
    BlockVolumeInfo {
        size: b.size,
        name: b.name.clone(),
        hacount: b.hacount,
        id: b.id.clone(),
        blockvolume: BlockTarget::of(b),
        cluster: b.cluster.clone(),
        blockhostingvolume: b.bhv.clone(),
        usablesize: b.usable(),
    }
}
