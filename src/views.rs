//! Heketi's response shapes (spec 1.3-1.5), built from stored records. Field order, omitted
//! empty fields and id-sorted arrays match Heketi's JSON byte for byte. Below the API
//! because two doors speak them: the handlers and the dump (`crate::dump`), whose entries
//! wrap these shapes.

use std::collections::{BTreeMap, HashMap};

use hekate_raft::{StateReader, StoreError};
use serde::Serialize;

use crate::state::model::{BrickEntry, DeviceEntry, NodeEntry, Tags, VolumeEntry};
use crate::state::{self, keys};

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

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct BrickInfo {
    pub id: String,
    pub path: String,
    pub device: String,
    pub node: String,
    pub volume: String,
    pub size: u64,
}

#[derive(Debug, Serialize)]
pub struct DeviceInfo {
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
    pub bricks: Vec<BrickInfo>,
}

#[derive(Debug, Serialize)]
pub struct NodeInfo {
    pub zone: i64,
    pub hostnames: Hostnames,
    pub cluster: String,
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
    pub id: String,
    pub state: String,
    pub devices: Vec<DeviceInfo>,
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
pub struct VolumeInfo {
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
    pub bricks: Vec<BrickInfo>,
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

/// Where a view finds its records: read from the state, or from tables of every record
/// read beforehand in one pass per kind (`topology_chunks`: point reads of 300,000 bricks
/// cost seconds once the store outgrows its block cache).
#[derive(Clone, Copy)]
enum Bricks<'a> {
    Store,
    Table(&'a Tables),
}

/// Every brick (as shown), device's brick list, device and node, each read in one pass.
#[derive(Default)]
struct Tables {
    bricks: HashMap<String, BrickInfo>,
    device_bricks: HashMap<String, Vec<String>>,
    devices: HashMap<String, DeviceEntry>,
    nodes: HashMap<String, NodeEntry>,
}

impl Tables {
    /// Every brick as shown: the largest pass (three per volume).
    fn bricks(r: &impl StateReader) -> Result<HashMap<String, BrickInfo>, StoreError> {
        let mut bricks = HashMap::new();
        r.visit_prefix(keys::BRICK_PREFIX, &mut |_, v| {
            let b: BrickEntry = crate::state::record::decode(v)?;
            bricks.insert(b.id.clone(), brick_info(&b));
            Ok(())
        })?;
        Ok(bricks)
    }

    /// The device indexes, devices and nodes (no bricks).
    fn others(r: &impl StateReader) -> Result<Tables, StoreError> {
        let mut t = Tables::default();
        // `db/<device>/<brick>`, in key order: each device's list in brick id order.
        r.visit_prefix(b"db/", &mut |k, _| {
            let rest = String::from_utf8_lossy(&k[3..]);
            if let Some((device, brick)) = rest.split_once('/') {
                t.device_bricks
                    .entry(device.to_string())
                    .or_default()
                    .push(brick.to_string());
            }
            Ok(())
        })?;
        r.visit_prefix(keys::DEVICE_PREFIX, &mut |_, v| {
            let d: DeviceEntry = crate::state::record::decode(v)?;
            t.devices.insert(d.id.clone(), d);
            Ok(())
        })?;
        r.visit_prefix(keys::NODE_PREFIX, &mut |_, v| {
            let n: NodeEntry = crate::state::record::decode(v)?;
            t.nodes.insert(n.id.clone(), n);
            Ok(())
        })?;
        Ok(t)
    }
}

impl Bricks<'_> {
    fn get(&self, r: &impl StateReader, id: &str) -> Result<Option<BrickInfo>, StoreError> {
        Ok(match self {
            Bricks::Store => state::get_brick(r, id)?.map(|b| brick_info(&b)),
            Bricks::Table(t) => t.bricks.get(id).cloned(),
        })
    }

    fn device_bricks(&self, r: &impl StateReader, device: &str) -> Result<Vec<String>, StoreError> {
        match self {
            Bricks::Store => state::device_brick_ids(r, device),
            Bricks::Table(t) => Ok(t.device_bricks.get(device).cloned().unwrap_or_default()),
        }
    }

    fn device(&self, r: &impl StateReader, id: &str) -> Result<Option<DeviceEntry>, StoreError> {
        match self {
            Bricks::Store => state::get_device(r, id),
            Bricks::Table(t) => Ok(t.devices.get(id).cloned()),
        }
    }

    fn node(&self, r: &impl StateReader, id: &str) -> Result<Option<NodeEntry>, StoreError> {
        match self {
            Bricks::Store => state::get_node(r, id),
            Bricks::Table(t) => Ok(t.nodes.get(id).cloned()),
        }
    }
}

pub fn device_info(r: &impl StateReader, d: &DeviceEntry) -> Result<DeviceInfo, StoreError> {
    device_info_from(r, d, Bricks::Store)
}

fn device_info_from(
    r: &impl StateReader,
    d: &DeviceEntry,
    src: Bricks<'_>,
) -> Result<DeviceInfo, StoreError> {
    let mut bricks = Vec::new();
    for id in &src.device_bricks(r, &d.id)? {
        if let Some(b) = src.get(r, id)? {
            bricks.push(b);
        }
    }
    Ok(DeviceInfo {
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
    })
}

pub fn node_info(r: &impl StateReader, n: &NodeEntry) -> Result<NodeInfo, StoreError> {
    node_info_from(r, n, Bricks::Store)
}

fn node_info_from(r: &impl StateReader, n: &NodeEntry, src: Bricks<'_>) -> Result<NodeInfo, StoreError> {
    let mut devices = Vec::new();
    for id in &n.devices {
        if let Some(d) = src.device(r, id)? {
            devices.push(device_info_from(r, &d, src)?);
        }
    }
    Ok(NodeInfo {
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
    })
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
    volume_info_from(r, v, hosts, Bricks::Store)
}

fn volume_info_from(
    r: &impl StateReader,
    v: &VolumeEntry,
    hosts: &[String],
    src: Bricks<'_>,
) -> Result<VolumeInfo, StoreError> {
    let mut bricks = Vec::new();
    for id in &v.bricks {
        if let Some(b) = src.get(r, id)? {
            bricks.push(b);
        }
    }
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

/// Heketi-cli's `topology info` JSON, assembled in one consistent read.
#[derive(Debug, Serialize)]
pub struct TopologyCluster {
    pub id: String,
    pub volumes: Vec<VolumeInfo>,
    pub nodes: Vec<NodeInfo>,
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

/// `GET /topology` at scale, one cluster at a time: the same document as [`topology`]
/// written whole, `{"clusters":[` then each cluster's JSON (`write` turns a
/// [`TopologyCluster`] into bytes) handed to `emit` as soon as it is built, then `]}`. Every
/// brick and every volume is read in one sequential pass each (point reads of 100,000
/// volumes and 600,000 brick lookups cost tens of seconds once the store outgrows its block
/// cache); what is held meanwhile is the bricks' and volumes' views, not the document.
/// `emit` returning false (the client left) stops the walk.
///
/// Two threads share the work, all from the one view `r`: the bricks are read beside the
/// volumes and the other tables, then a helper builds every other cluster while this thread builds the rest
/// and emits them all in order (a bounded channel keeps the helper at most two clusters
/// ahead). 100,000 volumes make a 230 MB document; one core took 3-4 s over it.
pub fn topology_chunks<R: StateReader + Sync>(
    r: &R,
    write: &(dyn Fn(&TopologyCluster) -> Vec<u8> + Sync),
    emit: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Result<(), StoreError> {
    let (bricks, others, volumes) = std::thread::scope(|s| {
        let bricks = s.spawn(|| Tables::bricks(r));
        let (others, volumes) = (Tables::others(r), visible_volumes_by_cluster(r));
        let bricks = bricks.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (bricks, others, volumes)
    });
    let tables = Tables {
        bricks: bricks?,
        ..others?
    };
    let mut volumes = volumes?;
    let src = Bricks::Table(&tables);
    let (mut mine, mut theirs) = (Vec::new(), Vec::new());
    for (n, id) in state::cluster_ids(r)?.into_iter().enumerate() {
        let vols = volumes.remove(&id).unwrap_or_default();
        if n % 2 == 0 { &mut mine } else { &mut theirs }.push((id, vols));
    }
    let total = mine.len() + theirs.len();
    if !emit(b"{\"clusters\":[".to_vec()) {
        return Ok(());
    }
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        s.spawn(move || {
            for (id, vols) in theirs {
                // A closed channel: the walk ended (client gone or an error); stop too.
                if tx.send(cluster_json(r, src, &id, vols, write)).is_err() {
                    return;
                }
            }
        });
        let mut mine = mine.into_iter();
        let mut first = true;
        for n in 0..total {
            let built = if n % 2 == 0 {
                let (id, vols) = mine.next().expect("an even cluster for each even index");
                cluster_json(r, src, &id, vols, write)
            } else {
                rx.recv().expect("the helper sends one result per odd cluster")
            };
            let Some(json) = built? else {
                continue;
            };
            let mut chunk = if first { Vec::new() } else { b",".to_vec() };
            first = false;
            chunk.extend(json);
            if !emit(chunk) {
                return Ok(());
            }
        }
        emit(b"]}".to_vec());
        Ok(())
    })
}

/// Visible volumes by cluster, each list in id order (the key order of `v/`).
fn visible_volumes_by_cluster(r: &impl StateReader) -> Result<HashMap<String, Vec<VolumeEntry>>, StoreError> {
    let mut volumes: HashMap<String, Vec<VolumeEntry>> = HashMap::new();
    r.visit_prefix(keys::VOLUME_PREFIX, &mut |_, v| {
        let v: VolumeEntry = crate::state::record::decode(v)?;
        if !v.hidden {
            volumes.entry(v.cluster.clone()).or_default().push(v);
        }
        Ok(())
    })?;
    Ok(volumes)
}

/// One cluster of the topology as `write` puts it (None: no such cluster). `vols` are its
/// visible volumes; those it does not list (a volume whose create is pending) are left out,
/// as `cluster_volume_ids` does.
fn cluster_json(
    r: &impl StateReader,
    src: Bricks<'_>,
    id: &str,
    vols: Vec<VolumeEntry>,
    write: &(dyn Fn(&TopologyCluster) -> Vec<u8> + Sync),
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(c) = state::get_cluster(r, id)? else {
        return Ok(None);
    };
    let mut hosts = Vec::new();
    for n in &c.nodes {
        if let Some(n) = src.node(r, n)? {
            hosts.push(n.storage_host().to_string());
        }
    }
    let listed: std::collections::BTreeSet<String> = state::cluster_volume_ids(r, id)?.into_iter().collect();
    let mut infos = Vec::new();
    for v in vols {
        if listed.contains(&v.id) {
            infos.push(volume_info_from(r, &v, &hosts, src)?);
        }
    }
    let mut nodes = Vec::new();
    for n in &c.nodes {
        if let Some(n) = src.node(r, n)? {
            nodes.push(node_info_from(r, &n, src)?);
        }
    }
    Ok(Some(write(&TopologyCluster {
        id: c.id.clone(),
        volumes: infos,
        nodes,
        block: c.block,
        file: c.file,
    })))
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
