//! Heketi's response shapes (spec 1.3-1.5), built from stored records. Field order, omitted
//! empty fields and id-sorted arrays match Heketi's JSON byte for byte. Below the API
//! because two doors speak them: the handlers and the dump (`crate::dump`), whose entries
//! wrap these shapes.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use hekate_raft::{StateReader, StoreError};
use serde::Serialize;
use serde_json::value::RawValue;

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

/// The JSON of one brick as Go writes it, held to be written twice (under its volume and
/// under its device) by `GET /topology`. serde_json alone writes what Go does unless a field
/// holds one of Go's extra escapes (`<>&`, never in ids and generated paths).
fn brick_json(b: &BrickEntry) -> Result<Box<RawValue>, StoreError> {
    let info = BrickInfo {
        id: b.id.as_str(),
        path: &b.path,
        device: &b.device,
        node: &b.node,
        volume: &b.volume,
        size: b.size,
    };
    let raw = if [info.id, info.path, info.device, info.node, info.volume]
        .into_iter()
        .all(crate::gojson::plain)
    {
        serde_json::value::to_raw_value(&info)
    } else {
        RawValue::from_string(crate::gojson::to_string(&info))
    };
    raw.map_err(|e| StoreError::Invalid(format!("brick {}: {e}", b.id)))
}

/// Where a view finds its records: [`Store`] (point reads), or [`Tables`] of every record
/// read beforehand in one pass per kind (`topology_chunks`: point reads of 300,000 bricks
/// cost seconds once the store outgrows its block cache).
trait Source {
    /// A brick as this source hands it out.
    type Brick: Serialize;
    fn brick(&self, r: &impl StateReader, id: &str) -> Result<Option<Self::Brick>, StoreError>;
    /// A device's bricks, in id order.
    fn device_bricks(&self, r: &impl StateReader, device: &str) -> Result<Vec<Self::Brick>, StoreError>;
    fn device(&self, r: &impl StateReader, id: &str) -> Result<Option<Cow<'_, DeviceEntry>>, StoreError>;
    fn node(&self, r: &impl StateReader, id: &str) -> Result<Option<Cow<'_, NodeEntry>>, StoreError>;
}

/// Point reads of the state.
struct Store;

impl Source for Store {
    type Brick = BrickInfo;
    fn brick(&self, r: &impl StateReader, id: &str) -> Result<Option<BrickInfo>, StoreError> {
        Ok(state::get_brick(r, id)?.map(|b| brick_info(&b)))
    }
    fn device_bricks(&self, r: &impl StateReader, device: &str) -> Result<Vec<BrickInfo>, StoreError> {
        let mut bricks = Vec::new();
        for id in state::device_brick_ids(r, device)? {
            bricks.extend(self.brick(r, &id)?);
        }
        Ok(bricks)
    }
    fn device(&self, r: &impl StateReader, id: &str) -> Result<Option<Cow<'_, DeviceEntry>>, StoreError> {
        Ok(state::get_device(r, id)?.map(Cow::Owned))
    }
    fn node(&self, r: &impl StateReader, id: &str) -> Result<Option<Cow<'_, NodeEntry>>, StoreError> {
        Ok(state::get_node(r, id)?.map(Cow::Owned))
    }
}

/// Every brick (its JSON), device's brick list, device and node, each read in one pass.
#[derive(Default)]
struct Tables {
    /// One map per share of the bricks' keyspace ([`BRICK_SHARES`]).
    bricks: Vec<HashMap<BrickKey, Box<RawValue>>>,
    device_bricks: HashMap<String, Vec<BrickKey>>,
    devices: HashMap<String, DeviceEntry>,
    nodes: HashMap<String, NodeEntry>,
}

/// A brick id as a table key: the 128 bits of 32 lowercase hex digits (every id Hekate and
/// Heketi make), held and compared in place; any other id as it is. 600,000 lookups by
/// the id's text cost `GET /topology` half a second, most of it reaching each key's text.
#[derive(Debug, PartialEq, Eq, Hash)]
enum BrickKey {
    Hex(u128),
    Other(Box<str>),
}

impl BrickKey {
    fn of(id: &str) -> BrickKey {
        let hex = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        match hex.then(|| u128::from_str_radix(id, 16)) {
            Some(Ok(bits)) => BrickKey::Hex(bits),
            _ => BrickKey::Other(id.into()),
        }
    }

    /// The share of the bricks' keyspace ([`BRICK_SHARES`]) this id is in.
    fn share(&self) -> usize {
        let first = match self {
            BrickKey::Hex(bits) => b"0123456789abcdef"[(bits >> 124) as usize],
            BrickKey::Other(id) => id.as_bytes().first().copied().unwrap_or(0),
        };
        BRICK_SHARES[1..].iter().take_while(|&&cut| cut <= first).count()
    }
}

/// Where the bricks' keyspace is cut so that two threads share its reading: share `k` holds
/// the ids whose first byte is from `BRICK_SHARES[k]` (the first share: any byte) to the
/// next cut. Ids are hex; another id is still in exactly one share.
const BRICK_SHARES: [u8; 8] = *b"02468ace";

/// The first key of share `k` of the bricks' keyspace (the first: the prefix itself), or
/// with `k` past the last share, the first key past the prefix (`b/` ends before `b0`).
fn share_start(k: usize) -> Vec<u8> {
    match k {
        0 => keys::BRICK_PREFIX.to_vec(),
        k if k < BRICK_SHARES.len() => [keys::BRICK_PREFIX, &[BRICK_SHARES[k]]].concat(),
        _ => hekate_raft::app::prefix_end(keys::BRICK_PREFIX).expect("the prefix ends"),
    }
}

/// One pass of `GET /topology`'s reading, done by whichever thread is free.
enum Part {
    Volumes(HashMap<String, Vec<VolumeEntry>>),
    Others(Tables),
    Bricks(usize, HashMap<BrickKey, Box<RawValue>>),
}

impl Tables {
    /// Every pass, on this thread and a helper, each taking the next pass when free (the
    /// volumes and the small tables first, then the shares of the bricks, the largest
    /// table: three per volume, each brick's JSON written once here).
    fn read_all<R: StateReader + Sync>(
        r: &R,
    ) -> Result<(Tables, HashMap<String, Vec<VolumeEntry>>), StoreError> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let jobs = 2 + BRICK_SHARES.len();
        let work = || -> Result<Vec<Part>, StoreError> {
            let mut parts = Vec::new();
            loop {
                let job = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                parts.push(match job {
                    0 => Part::Volumes(visible_volumes_by_cluster(r)?),
                    1 => Part::Others(Tables::others(r)?),
                    j if j < jobs => Part::Bricks(j - 2, Tables::bricks(r, j - 2)?),
                    _ => return Ok(parts),
                });
            }
        };
        let (mine, theirs) = std::thread::scope(|s| {
            let helper = s.spawn(work);
            let mine = work();
            (
                mine,
                helper.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            )
        });
        let mut tables = Tables::default();
        let mut volumes = HashMap::new();
        let mut bricks: Vec<_> = BRICK_SHARES.iter().map(|_| HashMap::new()).collect();
        for part in mine?.into_iter().chain(theirs?) {
            match part {
                Part::Volumes(v) => volumes = v,
                Part::Others(t) => tables = t,
                Part::Bricks(k, b) => bricks[k] = b,
            }
        }
        tables.bricks = bricks;
        Ok((tables, volumes))
    }

    /// The JSON of every brick in share `k` of the keyspace.
    fn bricks(r: &impl StateReader, k: usize) -> Result<HashMap<BrickKey, Box<RawValue>>, StoreError> {
        let (from, to) = (share_start(k), share_start(k + 1));
        let mut bricks = HashMap::new();
        r.visit_range(&from, &to, &mut |_, v| {
            let b: BrickEntry = crate::state::record::decode(v)?;
            bricks.insert(BrickKey::of(&b.id), brick_json(&b)?);
            Ok(())
        })?;
        Ok(bricks)
    }

    /// The device indexes, devices and nodes (no bricks).
    fn others(r: &impl StateReader) -> Result<Tables, StoreError> {
        let mut t = Tables::default();
        // `db/<device>/<brick>`, in key order: each device's list in brick id order, the
        // devices one after the other.
        let mut lists: Vec<(String, Vec<BrickKey>)> = Vec::new();
        r.visit_prefix(b"db/", &mut |k, _| {
            let rest = String::from_utf8_lossy(&k[3..]);
            if let Some((device, brick)) = rest.split_once('/') {
                let brick = BrickKey::of(brick);
                match lists.last_mut() {
                    Some((d, list)) if d == device => list.push(brick),
                    _ => lists.push((device.to_string(), vec![brick])),
                }
            }
            Ok(())
        })?;
        t.device_bricks = lists.into_iter().collect();
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

    fn brick_of(&self, share: usize, key: &BrickKey) -> Option<&RawValue> {
        self.bricks[share].get(key).map(|b| &**b)
    }
}

impl<'a> Source for &'a Tables {
    type Brick = &'a RawValue;
    fn brick(&self, _: &impl StateReader, id: &str) -> Result<Option<&'a RawValue>, StoreError> {
        let key = BrickKey::of(id);
        Ok(self.brick_of(key.share(), &key))
    }
    fn device_bricks(&self, _: &impl StateReader, device: &str) -> Result<Vec<&'a RawValue>, StoreError> {
        let t: &'a Tables = self;
        let keys = t.device_bricks.get(device).map(Vec::as_slice).unwrap_or_default();
        Ok(keys.iter().filter_map(|k| t.brick_of(k.share(), k)).collect())
    }
    fn device(&self, _: &impl StateReader, id: &str) -> Result<Option<Cow<'_, DeviceEntry>>, StoreError> {
        Ok(self.devices.get(id).map(Cow::Borrowed))
    }
    fn node(&self, _: &impl StateReader, id: &str) -> Result<Option<Cow<'_, NodeEntry>>, StoreError> {
        Ok(self.nodes.get(id).map(Cow::Borrowed))
    }
}

pub fn device_info(r: &impl StateReader, d: &DeviceEntry) -> Result<DeviceInfo, StoreError> {
    device_info_from(r, d, &Store)
}

fn device_info_from<S: Source>(
    r: &impl StateReader,
    d: &DeviceEntry,
    src: &S,
) -> Result<DeviceInfo<S::Brick>, StoreError> {
    let bricks = src.device_bricks(r, &d.id)?;
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
    node_info_from(r, n, &Store)
}

fn node_info_from<S: Source>(
    r: &impl StateReader,
    n: &NodeEntry,
    src: &S,
) -> Result<NodeInfo<S::Brick>, StoreError> {
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
    volume_info_from(r, v, hosts, &Store)
}

fn volume_info_from<S: Source>(
    r: &impl StateReader,
    v: &VolumeEntry,
    hosts: &[String],
    src: &S,
) -> Result<VolumeInfo<S::Brick>, StoreError> {
    let mut bricks = Vec::new();
    for id in &v.bricks {
        if let Some(b) = src.brick(r, id)? {
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

/// `GET /topology` at scale, one cluster at a time: the same document as [`topology`]
/// written whole as Go writes JSON (`crate::gojson`), `{"clusters":[` then each cluster's
/// JSON handed to `emit` as soon as it is written, then `]}`. Every brick and every volume
/// is read in one sequential pass each (point reads of 100,000 volumes and 600,000 brick
/// lookups cost tens of seconds once the store outgrows its block cache); what is held
/// meanwhile is the tables (each brick's JSON, written once and copied under its volume and
/// its device) and the volumes, not the document. `emit` returning false (the client left)
/// stops the walk.
///
/// Two threads share the work, all from the one view `r`: they read the tables and the
/// volumes pass by pass ([`Tables::read_all`]), then a helper writes every other cluster while this thread
/// writes the rest and emits them all in order (a bounded channel keeps the helper at most
/// two clusters ahead). 100,000 volumes make a 230 MB document.
pub fn topology_chunks<R: StateReader + Sync>(
    r: &R,
    emit: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let (tables, mut volumes) = Tables::read_all(r)?;
    let read = started.elapsed();
    let src = &tables;
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
                if tx.send(cluster_json(r, src, &id, vols)).is_err() {
                    return;
                }
            }
        });
        let mut mine = mine.into_iter();
        let mut first = true;
        for n in 0..total {
            let built = if n % 2 == 0 {
                let (id, vols) = mine.next().expect("an even cluster for each even index");
                cluster_json(r, src, &id, vols)
            } else {
                rx.recv().expect("the helper sends one result per odd cluster")
            };
            let Some(json) = built? else {
                continue;
            };
            if !first && !emit(b",".to_vec()) {
                return Ok(());
            }
            first = false;
            if !emit(json) {
                return Ok(());
            }
        }
        emit(b"]}".to_vec());
        tracing::debug!(
            clusters = total,
            read_ms = read.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "topology written"
        );
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

/// One cluster of the topology as Go writes it (None: no such cluster). `vols` are its
/// visible volumes; those it does not list (a volume whose create is pending) are left out,
/// as `cluster_volume_ids` does.
fn cluster_json(
    r: &impl StateReader,
    src: &Tables,
    id: &str,
    vols: Vec<VolumeEntry>,
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
    for v in &vols {
        if listed.contains(&v.id) {
            infos.push(volume_info_from(r, v, &hosts, &src)?);
        }
    }
    let mut nodes = Vec::new();
    for n in &c.nodes {
        if let Some(n) = src.node(r, n)? {
            nodes.push(node_info_from(r, &n, &src)?);
        }
    }
    // About 2.3 KB a volume (its bricks twice): one allocation for most clusters.
    let mut out = Vec::with_capacity(4096 + infos.len() * 2560);
    crate::gojson::write_into(
        &mut out,
        &TopologyCluster {
            id: c.id.clone(),
            volumes: infos,
            nodes,
            block: c.block,
            file: c.file,
        },
    );
    Ok(Some(out))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn brick(path: &str) -> BrickEntry {
        BrickEntry {
            id: "b".repeat(32),
            path: path.into(),
            device: "d".repeat(32),
            node: "n".repeat(32),
            volume: "v".repeat(32),
            size: 1048576,
            tp_size: 1048576,
            pool_metadata_size: 8192,
            subtype: 0,
            pending: None,
            lvm_thin_pool: None,
            lvm_lv: None,
            pool_shared: false,
        }
    }

    /// A brick's JSON written once for `GET /topology` is what the API writes for it, with
    /// Go's escapes where a field needs them (an imported path may hold `&`).
    #[test]
    fn a_brick_s_json_is_the_api_s() {
        for path in ["/var/lib/heketi/mounts/vg_1/brick_2/brick", "/mnt/a&b/<c>"] {
            let b = brick(path);
            let raw = brick_json(&b).unwrap();
            assert_eq!(raw.get(), crate::gojson::to_string(&brick_info(&b)), "{path}");
        }
        assert!(brick_json(&brick("/mnt/a&b"))
            .unwrap()
            .get()
            .contains(r"a\u0026b"));
    }

    /// Every id is in the one share whose keys hold its key, hex or not.
    #[test]
    fn each_brick_key_is_in_its_share() {
        let hex = [
            "0123456789abcdef0123456789abcdef",
            "f0000000000000000000000000000000",
            "a".repeat(32).leak(),
        ];
        for id in [
            "", "0", "1f", "2", "7", "9z", "a", "bb", "c", "e0", "f", "g", "zz", "~", "\u{e9}t", " ",
        ]
        .into_iter()
        .chain(hex)
        {
            let key = keys::brick(id);
            let k = BrickKey::of(id).share();
            assert!(
                key >= share_start(k) && key < share_start(k + 1),
                "{id:?} in share {k}"
            );
        }
        assert_eq!(share_start(BRICK_SHARES.len()), b"b0");
    }

    /// Only 32 lowercase hex digits become bits: no two ids share a key.
    #[test]
    fn brick_keys_are_one_to_one() {
        let ids = [
            "0123456789abcdef0123456789abcdef",
            "0123456789ABCDEF0123456789ABCDEF",
            "+123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcde",
            "00123456789abcdef0123456789abcdef",
            "g123456789abcdef0123456789abcdef",
        ];
        assert!(matches!(BrickKey::of(ids[0]), BrickKey::Hex(_)));
        for (i, a) in ids.iter().enumerate() {
            assert!(matches!(BrickKey::of(a), BrickKey::Other(_)) == (i > 0), "{a}");
            for b in &ids[i + 1..] {
                assert_ne!(BrickKey::of(a), BrickKey::of(b), "{a} {b}");
            }
        }
    }
}
