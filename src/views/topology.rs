//! `GET /topology` at scale: the document of every cluster, volume, node, device and brick
//! (230 MB at 100,000 volumes), read in one sequential pass per kind on two threads and
//! written as JSON pieces that are spliced together, one cluster at a time. Apart from the
//! shapes (`super`) because it answers one question, how to build that document fast and
//! within bounded memory; the point-read [`super::topology`] is the reference it is tested
//! against byte for byte (`dump::tests`).

use std::collections::HashMap;

use hekate_raft::{StateReader, StoreError};
use rustc_hash::FxHashMap;
use serde::Serialize;

use super::{cluster_hosts, device_shape, node_shape, volume_shape, BrickInfo};
use crate::state::model::{BrickEntry, DeviceEntry, NodeEntry, VolumeEntry};
use crate::state::{self, keys};

/// `GET /topology` at scale, one cluster at a time: the same document as [`super::topology`]
/// written as Go writes JSON (`crate::gojson`), `{"clusters":[` then each cluster's JSON
/// handed to `emit` as soon as it is written, then `]}`. `emit` returning false (the client
/// left) stops the walk. 100,000 volumes make a 230 MB document.
///
/// Point reads of 100,000 volumes and 600,000 brick lookups cost tens of seconds once the
/// store outgrows its block cache, so every record is read in one sequential pass per kind
/// instead ([`Tables::read_all`]), on two threads. What is held meanwhile is JSON, not
/// records: each brick's written once, each volume's up to its bricks, both copied into the
/// document as bytes ([`write_open`]). Then a helper writes every other cluster while this
/// thread writes the rest and emits them all in order (a bounded channel keeps the helper at
/// most two clusters ahead).
pub fn topology_chunks<R: StateReader + Sync>(
    r: &R,
    emit: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let (tables, volumes) = Tables::read_all(r)?;
    let read = started.elapsed();
    let (src, vols) = (&tables, volumes.as_slice());
    let (mut mine, mut theirs) = (Vec::new(), Vec::new());
    for (n, id) in state::cluster_ids(r)?.into_iter().enumerate() {
        if n % 2 == 0 { &mut mine } else { &mut theirs }.push(id);
    }
    let total = mine.len() + theirs.len();
    if !emit(b"{\"clusters\":[".to_vec()) {
        return Ok(());
    }
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        s.spawn(move || {
            for id in theirs {
                // A closed channel: the walk ended (client gone or an error); stop too.
                if tx.send(cluster_json(r, src, vols, &id)).is_err() {
                    return;
                }
            }
        });
        let mut mine = mine.into_iter();
        let mut first = true;
        for n in 0..total {
            let built = if n % 2 == 0 {
                let id = mine.next().expect("an even cluster for each even index");
                cluster_json(r, src, vols, &id)
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

/// Where the keyspaces of bricks and volumes are cut so that two threads share their
/// reading: share `k` holds the ids whose first byte is from `SHARES[k]` (the first share:
/// any byte) to the next cut. Ids are hex; another id is still in exactly one share.
const SHARES: [u8; 8] = *b"02468ace";

/// The first key of share `k` of the keyspace under `prefix` (the first: the prefix
/// itself), or with `k` past the last share, the first key past the prefix.
fn share_start(prefix: &[u8], k: usize) -> Vec<u8> {
    match k {
        0 => prefix.to_vec(),
        k if k < SHARES.len() => [prefix, &[SHARES[k]]].concat(),
        _ => hekate_raft::app::prefix_end(prefix).expect("the prefix ends"),
    }
}

/// An id as a table key: the 128 bits of 32 lowercase hex digits (every id Hekate and
/// Heketi make), held and compared in place; any other id as it is. 600,000 lookups by
/// the id's text cost `GET /topology` half a second, most of it reaching each key's text.
#[derive(Debug, PartialEq, Eq, Hash)]
enum IdKey {
    Hex(u128),
    Other(Box<str>),
}

impl IdKey {
    fn of(id: &str) -> IdKey {
        if id.len() == 32 {
            let mut bits: u128 = 0;
            for b in id.bytes() {
                let digit = match b {
                    b'0'..=b'9' => b - b'0',
                    b'a'..=b'f' => b - b'a' + 10,
                    _ => return IdKey::Other(id.into()),
                };
                bits = bits << 4 | u128::from(digit);
            }
            return IdKey::Hex(bits);
        }
        IdKey::Other(id.into())
    }

    /// The share of its keyspace ([`SHARES`]) this id is in.
    fn share(&self) -> usize {
        let first = match self {
            IdKey::Hex(bits) => b"0123456789abcdef"[(bits >> 124) as usize],
            IdKey::Other(id) => id.as_bytes().first().copied().unwrap_or(0),
        };
        SHARES[1..].iter().take_while(|&&cut| cut <= first).count()
    }
}

/// JSON appended in blocks of 1 MiB that never move once written (a growing buffer would
/// copy itself as it doubles: a tenth of the reading at 100,000 volumes), each piece found
/// by its [`Span`].
#[derive(Default)]
struct Arena {
    blocks: Vec<Vec<u8>>,
}

/// Where a piece of an [`Arena`] is.
#[derive(Clone, Copy)]
struct Span {
    block: u32,
    from: u32,
    to: u32,
}

impl Arena {
    const BLOCK: usize = 1 << 20;

    /// Appends what `write` writes (in one block: a block with less than 16 KiB left is
    /// left for a new one; a piece larger than what is left grows its block).
    fn write(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), StoreError>,
    ) -> Result<Span, StoreError> {
        if self
            .blocks
            .last()
            .is_none_or(|b| b.capacity() - b.len() < 16 << 10)
        {
            self.blocks.push(Vec::with_capacity(Self::BLOCK));
        }
        let block = self.blocks.len() - 1;
        let out = &mut self.blocks[block];
        let from = out.len();
        write(out)?;
        let offset = |n: usize| {
            u32::try_from(n)
                .map_err(|_| StoreError::Invalid("GET /topology: a piece of JSON over 4 GiB".into()))
        };
        Ok(Span {
            block: offset(block)?,
            from: offset(from)?,
            to: offset(out.len())?,
        })
    }

    fn get(&self, s: Span) -> &[u8] {
        &self.blocks[s.block as usize][s.from as usize..s.to as usize]
    }
}

/// The JSON of every brick in one share of the bricks' keyspace, where each one's is (no
/// allocation per brick), and by device, where its bricks' are in id order.
///
/// A device's bricks are those whose record names it: every write puts and deletes a brick
/// with its `db/<device>/<brick>` index entry, and an import refuses a dump whose device lists
/// and bricks disagree (`dump::check_lists`), so this is the index the point reads follow,
/// without reading its 300,000 keys (a sixth of the document's CPU).
#[derive(Default)]
struct BrickShare {
    json: Arena,
    at: FxHashMap<IdKey, Span>,
    by_device: FxHashMap<IdKey, Vec<Span>>,
}

impl BrickShare {
    fn read(r: &impl StateReader, k: usize) -> Result<BrickShare, StoreError> {
        let (from, to) = (
            share_start(keys::BRICK_PREFIX, k),
            share_start(keys::BRICK_PREFIX, k + 1),
        );
        let mut s = BrickShare::default();
        r.visit_range(&from, &to, &mut |_, v| {
            let b: BrickEntry = crate::state::record::decode(v)?;
            let info = BrickInfo {
                id: b.id.as_str(),
                path: &b.path,
                device: &b.device,
                node: &b.node,
                volume: &b.volume,
                size: b.size,
            };
            let span = s.json.write(|out| {
                crate::gojson::write_into(out, &info);
                Ok(())
            })?;
            s.at.insert(IdKey::of(&b.id), span);
            s.by_device.entry(IdKey::of(&b.device)).or_default().push(span);
            Ok(())
        })?;
        Ok(s)
    }
}

/// The visible volumes of one share of the volumes' keyspace: each one's JSON up to its
/// bricks (`…,"bricks":[`, [`write_open`]), and by cluster, in id order, their ids, JSON
/// and bricks' keys.
#[derive(Default)]
struct VolumeShare {
    json: Arena,
    clusters: HashMap<String, ClusterVolumes>,
}

/// One cluster's volumes in a [`VolumeShare`], in id order.
#[derive(Default)]
struct ClusterVolumes {
    /// Each volume's id, its JSON, and where its bricks' keys end in `bricks`.
    volumes: Vec<(Box<str>, Span, usize)>,
    bricks: Vec<IdKey>,
}

/// Every visible volume of one share of the volumes' keyspace.
fn volume_share(r: &impl StateReader, k: usize) -> Result<VolumeShare, StoreError> {
    let (from, to) = (
        share_start(keys::VOLUME_PREFIX, k),
        share_start(keys::VOLUME_PREFIX, k + 1),
    );
    let mut hosts: HashMap<String, Vec<String>> = HashMap::new();
    let mut share = VolumeShare::default();
    r.visit_range(&from, &to, &mut |_, v| {
        let v: VolumeEntry = crate::state::record::decode(v)?;
        if v.hidden {
            return Ok(());
        }
        if !hosts.contains_key(&v.cluster) {
            hosts.insert(v.cluster.clone(), cluster_hosts(r, &v.cluster)?);
        }
        let shape = volume_shape::<Spliced>(r, &v, &hosts[&v.cluster], Vec::new())?;
        let span = share
            .json
            .write(|out| write_open(out, &shape, b"\"bricks\":[]}"))?;
        let cv = share.clusters.entry(v.cluster.clone()).or_default();
        cv.bricks.extend(v.bricks.iter().map(|b| IdKey::of(b)));
        cv.volumes.push((v.id.into(), span, cv.bricks.len()));
        Ok(())
    })?;
    Ok(share)
}

/// No item: the element type of an array a shape is written with empty, to be filled by
/// [`write_open`]'s caller.
#[derive(Serialize)]
enum Spliced {}

/// Writes `shape`, whose last field is the empty array `tail` names (`"bricks":[]}`),
/// without its closing `]}`: the caller writes the array's items, then `]}`.
fn write_open(out: &mut Vec<u8>, shape: &impl Serialize, tail: &[u8]) -> Result<(), StoreError> {
    let start = out.len();
    crate::gojson::write_into(out, shape);
    if !out[start..].ends_with(tail) {
        out.truncate(start);
        return Err(StoreError::Invalid(format!(
            "GET /topology: a shape does not end with {}",
            String::from_utf8_lossy(tail)
        )));
    }
    out.truncate(out.len() - 2);
    Ok(())
}

/// The commas of a JSON array being written: one before every item but the first.
struct Commas(bool);

impl Commas {
    fn new() -> Commas {
        Commas(false)
    }

    /// Call before writing an item.
    fn before_item(&mut self, out: &mut Vec<u8>) {
        if self.0 {
            out.push(b',');
        }
        self.0 = true;
    }
}

/// One pass of `GET /topology`'s reading, done by whichever thread is free.
enum Part {
    Others(Tables),
    Volumes(usize, VolumeShare),
    Bricks(usize, BrickShare),
}

/// Every brick (its JSON, by id and by device), device and node, each read in one pass.
#[derive(Default)]
struct Tables {
    /// One per share of the bricks' keyspace ([`SHARES`]).
    bricks: Vec<BrickShare>,
    devices: HashMap<String, DeviceEntry>,
    nodes: HashMap<String, NodeEntry>,
}

impl Tables {
    /// Every pass, on this thread and a helper, each taking the next pass when free: the
    /// devices and nodes, then the shares of the volumes (each
    /// visible one's JSON up to its bricks), then the shares of the bricks, the largest
    /// table (three per volume). Returns the tables and the shares of the volumes in
    /// keyspace order (so in id order).
    fn read_all<R: StateReader + Sync>(r: &R) -> Result<(Tables, Vec<VolumeShare>), StoreError> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let n = SHARES.len();
        let work = || -> Result<Vec<Part>, StoreError> {
            let mut parts = Vec::new();
            loop {
                let job = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let started = std::time::Instant::now();
                parts.push(match job {
                    0 => Part::Others(Tables::others(r)?),
                    j if j <= n => Part::Volumes(j - 1, volume_share(r, j - 1)?),
                    j if j <= 2 * n => Part::Bricks(j - 1 - n, BrickShare::read(r, j - 1 - n)?),
                    _ => return Ok(parts),
                });
                tracing::trace!(
                    pass = job,
                    ms = started.elapsed().as_millis() as u64,
                    "topology pass read"
                );
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
        let mut volumes: Vec<VolumeShare> = (0..n).map(|_| VolumeShare::default()).collect();
        let mut bricks: Vec<BrickShare> = (0..n).map(|_| BrickShare::default()).collect();
        for part in mine?.into_iter().chain(theirs?) {
            match part {
                Part::Others(t) => tables = t,
                Part::Volumes(k, v) => volumes[k] = v,
                Part::Bricks(k, b) => bricks[k] = b,
            }
        }
        tables.bricks = bricks;
        Ok((tables, volumes))
    }

    /// The devices and nodes (no bricks).
    fn others(r: &impl StateReader) -> Result<Tables, StoreError> {
        let mut t = Tables::default();
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

    /// Appends the JSON of `device`'s bricks, comma separated, in id order (share by share,
    /// each share in id order).
    fn write_device_bricks(&self, out: &mut Vec<u8>, device: &str) {
        let key = IdKey::of(device);
        let mut commas = Commas::new();
        for share in &self.bricks {
            for &span in share.by_device.get(&key).map(Vec::as_slice).unwrap_or_default() {
                commas.before_item(out);
                out.extend_from_slice(share.json.get(span));
            }
        }
    }

    /// Appends the JSON of the bricks `keys` names that exist, comma separated.
    fn write_bricks(&self, out: &mut Vec<u8>, keys: &[IdKey]) {
        let mut commas = Commas::new();
        for key in keys {
            let share = &self.bricks[key.share()];
            if let Some(&span) = share.at.get(key) {
                commas.before_item(out);
                out.extend_from_slice(share.json.get(span));
            }
        }
    }
}

/// One cluster of the topology as Go writes it (None: no such cluster), in the field order
/// of `views::TopologyCluster` (the test-only reference shape). Its visible volumes are in
/// `vols`, the shares of the volumes in id order; those the cluster does not list (a volume
/// whose create is pending) are left out, as `cluster_volume_ids` does.
fn cluster_json(
    r: &impl StateReader,
    t: &Tables,
    vols: &[VolumeShare],
    id: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(c) = state::get_cluster(r, id)? else {
        return Ok(None);
    };
    let listed = state::cluster_volume_ids(r, id)?;
    let mut listed = listed.iter().map(String::as_str).peekable();
    let parts: Vec<(&Arena, &ClusterVolumes)> = vols
        .iter()
        .filter_map(|share| share.clusters.get(id).map(|cv| (&share.json, cv)))
        .collect();
    // About 2.3 KB a volume (its bricks twice): one allocation for most clusters.
    let volumes: usize = parts.iter().map(|(_, cv)| cv.volumes.len()).sum();
    let mut out = Vec::with_capacity(4096 + volumes * 2560);
    out.extend_from_slice(b"{\"id\":");
    crate::gojson::write_into(&mut out, &c.id);
    out.extend_from_slice(b",\"volumes\":[");
    let mut commas = Commas::new();
    for (json, cv) in parts {
        let mut bricks = 0;
        for (vid, span, bricks_end) in &cv.volumes {
            // Both in id order.
            while listed.next_if(|l| *l < &**vid).is_some() {}
            if listed.next_if(|l| *l == &**vid).is_some() {
                commas.before_item(&mut out);
                out.extend_from_slice(json.get(*span));
                t.write_bricks(&mut out, &cv.bricks[bricks..*bricks_end]);
                out.extend_from_slice(b"]}");
            }
            bricks = *bricks_end;
        }
    }
    out.extend_from_slice(b"],\"nodes\":[");
    let mut commas = Commas::new();
    for n in c.nodes.iter().filter_map(|n| t.nodes.get(n)) {
        commas.before_item(&mut out);
        write_open(
            &mut out,
            &node_shape::<Spliced>(n, Vec::new()),
            b"\"devices\":[]}",
        )?;
        let mut commas = Commas::new();
        for d in n.devices.iter().filter_map(|d| t.devices.get(d)) {
            commas.before_item(&mut out);
            write_open(
                &mut out,
                &device_shape::<Spliced>(d, Vec::new()),
                b"\"bricks\":[]}",
            )?;
            t.write_device_bricks(&mut out, &d.id);
            out.extend_from_slice(b"]}");
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"],\"block\":");
    out.extend_from_slice(if c.block { b"true" } else { b"false" });
    out.extend_from_slice(b",\"file\":");
    out.extend_from_slice(if c.file { b"true" } else { b"false" });
    out.push(b'}');
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::super::brick_info;
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

    /// A shape written open and filled with its items' JSON is what serde writes for the
    /// whole shape, Go's escapes included (an imported path may hold `&`).
    #[test]
    fn a_shape_written_open_and_filled_is_the_whole_shape() {
        let bricks: Vec<BrickInfo> = ["/var/lib/heketi/mounts/vg_1/brick_2/brick", "/mnt/a&b/<c>"]
            .into_iter()
            .map(|p| brick_info(&brick(p)))
            .collect();
        let d = DeviceEntry {
            id: "d".repeat(32),
            name: "/dev/<x>".into(),
            node: "n".repeat(32),
            tags: Default::default(),
            state: "online".into(),
            total: 7,
            free: 5,
            used: 2,
            extent_size: 4096,
            pv_uuid: String::new(),
            paths: Vec::new(),
            brick_count: 2,
            pending: None,
        };
        for n in 0..=bricks.len() {
            let whole = crate::gojson::to_string(&device_shape(&d, bricks[..n].to_vec()));
            let mut out = Vec::new();
            write_open(
                &mut out,
                &device_shape::<Spliced>(&d, Vec::new()),
                b"\"bricks\":[]}",
            )
            .unwrap();
            let items: Vec<String> = bricks[..n].iter().map(crate::gojson::to_string).collect();
            out.extend_from_slice(items.join(",").as_bytes());
            out.extend_from_slice(b"]}");
            assert_eq!(String::from_utf8(out).unwrap(), whole);
        }
        assert!(crate::gojson::to_string(&bricks[1]).contains(r"a\u0026b"));
        // A shape that does not end with the array named is refused, nothing written.
        let mut out = b"x".to_vec();
        assert!(write_open(
            &mut out,
            &device_shape::<Spliced>(&d, Vec::new()),
            b"\"devices\":[]}"
        )
        .is_err());
        assert_eq!(out, b"x");
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
            let k = IdKey::of(id).share();
            for (prefix, key) in [
                (keys::BRICK_PREFIX, keys::brick(id)),
                (keys::VOLUME_PREFIX, keys::volume(id)),
            ] {
                assert!(
                    key >= share_start(prefix, k) && key < share_start(prefix, k + 1),
                    "{id:?} in share {k}"
                );
            }
        }
        assert_eq!(share_start(keys::BRICK_PREFIX, SHARES.len()), b"b0");
    }

    /// Only 32 lowercase hex digits become bits: no two ids share a key.
    #[test]
    fn id_keys_are_one_to_one() {
        let ids = [
            "0123456789abcdef0123456789abcdef",
            "0123456789ABCDEF0123456789ABCDEF",
            "+123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcde",
            "00123456789abcdef0123456789abcdef",
            "g123456789abcdef0123456789abcdef",
        ];
        assert!(matches!(IdKey::of(ids[0]), IdKey::Hex(_)));
        for (i, a) in ids.iter().enumerate() {
            assert!(matches!(IdKey::of(a), IdKey::Other(_)) == (i > 0), "{a}");
            for b in &ids[i + 1..] {
                assert_ne!(IdKey::of(a), IdKey::of(b), "{a} {b}");
            }
        }
    }
}
