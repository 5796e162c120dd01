//! The snapshot format and its file. A snapshot is the whole application keyspace plus the
//! metadata (last applied log id, membership) read from one RocksDB snapshot, so data and
//! metadata always agree, and building it never blocks `apply`.
//!
//! File layout: bincode of `format`, `meta` and the key/value pairs (versioned by `format`),
//! written as the pairs are read ([`write_current`]); read back as a [`SnapshotView`]
//! borrowing its pairs, or only its head ([`decode_meta`]). The current snapshot is
//! `<data>/snapshots/current.snap`, replaced atomically (write temp, synced as it is written,
//! fsync, rename, fsync dir).

use std::io::Write;
use std::path::Path;

use openraft::raft::InstallSnapshotRequest;
use serde::{Deserialize, Serialize};
use serde_bytes::{ByteBuf, Bytes};

use crate::codec;
use crate::error::StoreError;
use crate::types::{SnapshotMeta, TypeConfig, Vote};

pub const SNAPSHOT_FORMAT: u32 = 1;
const CURRENT: &str = "current.snap";

/// Writes the current snapshot from `pairs` (in key order, `count` of them) as they come,
/// without holding them: bincode of `format`, `meta`, the pair count, then each pair as two
/// byte strings (a varint length, then the bytes), the layout format 1 has always had. At
/// 100,000 volumes, holding the pairs and then their encoding took about 400 MB at once.
/// Replaces the file atomically, as [`save_current`]. Its size in bytes.
pub fn write_current<I>(dir: &Path, meta: &SnapshotMeta, count: u64, pairs: I) -> Result<u64, StoreError>
where
    I: Iterator<Item = Result<(Box<[u8]>, Box<[u8]>), StoreError>>,
{
    replace_current(dir, |w| {
        let mut n = codec::encode_into(&SNAPSHOT_FORMAT, w)?;
        n += codec::encode_into(meta, w)?;
        n += codec::encode_into(&count, w)?;
        let mut written = 0u64;
        for pair in pairs {
            let (k, v) = pair?;
            n += codec::encode_into(&(Bytes::new(&k), Bytes::new(&v)), w)?;
            written += 1;
        }
        if written != count {
            return Err(StoreError::Invalid(format!(
                "snapshot: {count} pairs counted but {written} read from the same view"
            )));
        }
        Ok(n as u64)
    })
}

/// A snapshot as read: the same layout, its pairs borrowed from the file's bytes, so that
/// installing 100,000 volumes' worth (about 1.5 million pairs) allocates nothing per pair.
#[derive(Debug, Deserialize)]
pub struct SnapshotView<'a> {
    pub format: u32,
    pub meta: SnapshotMeta,
    #[serde(borrow)]
    pub data: Vec<(&'a Bytes, &'a Bytes)>,
}

impl<'a> SnapshotView<'a> {
    pub fn decode(bytes: &'a [u8]) -> Result<SnapshotView<'a>, StoreError> {
        let f: SnapshotView<'a> = codec::decode_borrowed(bytes)?;
        check_format(f.format)?;
        Ok(f)
    }
}

/// The head of a snapshot file (its first two fields): what a leader needs to offer the
/// snapshot, read without decoding the pairs.
#[derive(Debug, Deserialize)]
struct SnapshotHead {
    format: u32,
    meta: SnapshotMeta,
}

/// The metadata of the snapshot in `bytes`, from its head only.
pub fn decode_meta(bytes: &[u8]) -> Result<SnapshotMeta, StoreError> {
    let head: SnapshotHead = codec::decode_head(bytes)?;
    check_format(head.format)?;
    Ok(head.meta)
}

fn check_format(format: u32) -> Result<(), StoreError> {
    if format != SNAPSHOT_FORMAT {
        return Err(StoreError::Invalid(format!(
            "snapshot format {format} is not supported"
        )));
    }
    Ok(())
}

/// One chunk of a snapshot on the peer network: openraft's `InstallSnapshotRequest`, field
/// for field, with its data written as bytes. The bytes on the wire are the same as
/// bincode gives the request itself (a `Vec<u8>` and a byte string share a layout), so both
/// ends interoperate with builds that send the request as is; only the copying differs (one
/// copy instead of a call per byte, about 13 ms per 3 MiB chunk before).
#[derive(Serialize)]
pub struct ChunkOut<'a> {
    pub vote: &'a Vote,
    pub meta: &'a SnapshotMeta,
    pub offset: u64,
    pub data: &'a Bytes,
    pub done: bool,
}

impl<'a> ChunkOut<'a> {
    pub fn of(r: &'a InstallSnapshotRequest<TypeConfig>) -> ChunkOut<'a> {
        ChunkOut {
            vote: &r.vote,
            meta: &r.meta,
            offset: r.offset,
            data: Bytes::new(&r.data),
            done: r.done,
        }
    }
}

/// [`ChunkOut`] as received.
#[derive(Deserialize)]
pub struct ChunkIn {
    vote: Vote,
    meta: SnapshotMeta,
    offset: u64,
    data: ByteBuf,
    done: bool,
}

impl From<ChunkIn> for InstallSnapshotRequest<TypeConfig> {
    fn from(c: ChunkIn) -> Self {
        InstallSnapshotRequest {
            vote: c.vote,
            meta: c.meta,
            offset: c.offset,
            data: c.data.into_vec(),
            done: c.done,
        }
    }
}

/// Atomically replaces the current snapshot file with `bytes`.
pub fn save_current(dir: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    replace_current(dir, |w| Ok(w.write_all(bytes)?))
}

/// Written bytes a snapshot file may hold unsynced before they are synced. Every replica
/// builds its snapshot after the same number of entries, so at 100,000 volumes three 150 MB
/// files were synced at once at the end of their builds; the disk queue they made held each
/// replica's log fsyncs for up to 270 ms (measured with a 200-byte fdatasync loop beside three
/// 150 MB writes: max 271 ms; synced every 4 MiB: max 22 ms), long enough for the leader to
/// hear from no quorum and refuse writes. RocksDB's `bytes_per_sync` is the same idea.
const SYNC_EVERY: u64 = 4 << 20;

/// A file synced every [`SYNC_EVERY`] bytes written, so its dirty pages never pile up.
struct PacedFile {
    file: std::fs::File,
    unsynced: u64,
    syncs: u64,
}

impl PacedFile {
    fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            file: std::fs::File::create(path)?,
            unsynced: 0,
            syncs: 0,
        })
    }
}

impl Write for PacedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.unsynced += n as u64;
        if self.unsynced >= SYNC_EVERY {
            self.file.sync_data()?;
            self.unsynced = 0;
            self.syncs += 1;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Writes a new current snapshot file with `write` (buffered, synced as it goes): a
/// temporary file, fsync, rename, fsync of the directory.
fn replace_current<T>(
    dir: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<PacedFile>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let tmp = dir.join(format!("{CURRENT}.tmp"));
    let out = {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, PacedFile::create(&tmp)?);
        let out = write(&mut w)?;
        let paced = w.into_inner().map_err(|e| e.into_error())?;
        tracing::debug!(syncs = paced.syncs, "snapshot file written");
        paced.file.sync_all()?;
        out
    };
    std::fs::rename(&tmp, dir.join(CURRENT))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(out)
}

/// The bytes of the current snapshot, if one was built or installed.
pub fn load_current(dir: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match std::fs::read(dir.join(CURRENT)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{LogId, StoredMembership};

    /// A long write is synced as it goes, every `SYNC_EVERY` bytes, and what it wrote is
    /// what the file holds.
    #[test]
    fn a_snapshot_file_is_synced_as_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut paced = PacedFile::create(&dir.path().join("f")).unwrap();
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..10 {
            paced.write_all(&chunk).unwrap();
        }
        assert_eq!(paced.syncs, 10 * (1 << 20) / SYNC_EVERY);
        assert_eq!(paced.unsynced, 10 * (1 << 20) % SYNC_EVERY);
        drop(paced);
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap().len(), 10 << 20);
    }

    fn meta() -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(LogId::new(openraft::CommittedLeaderId::new(3, 1), 42)),
            last_membership: StoredMembership::default(),
            snapshot_id: "3-1-42-7".into(),
        }
    }

    /// What earlier builds wrote and read: owned pairs, each `Vec<u8>` a sequence of bytes.
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct OwnedFile {
        format: u32,
        meta: SnapshotMeta,
        data: Vec<(Vec<u8>, Vec<u8>)>,
    }

    fn pairs() -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..300u32)
            .map(|i| {
                (
                    format!("v/{i:04}").into_bytes(),
                    vec![i as u8; (i % 200) as usize],
                )
            })
            .collect()
    }

    #[test]
    fn the_file_layout_is_the_one_earlier_builds_wrote_and_read() {
        let (meta, pairs) = (meta(), pairs());
        let owned = OwnedFile {
            format: SNAPSHOT_FORMAT,
            meta: meta.clone(),
            data: pairs.clone(),
        };
        let dir = tempfile::tempdir().unwrap();
        let boxed = pairs
            .iter()
            .map(|(k, v)| Ok((k.clone().into_boxed_slice(), v.clone().into_boxed_slice())));
        let size = write_current(dir.path(), &meta, pairs.len() as u64, boxed).unwrap();
        let bytes = load_current(dir.path()).unwrap().unwrap();
        assert_eq!(size, bytes.len() as u64);
        assert_eq!(bytes, codec::encode(&owned).unwrap());
        assert_eq!(codec::decode::<OwnedFile>(&bytes).unwrap(), owned);
        let view = SnapshotView::decode(&bytes).unwrap();
        assert_eq!(view.meta, meta);
        let read: Vec<(Vec<u8>, Vec<u8>)> = view.data.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        assert_eq!(read, pairs);
        assert_eq!(decode_meta(&bytes).unwrap(), meta);
        // A count that does not match the pairs is refused and leaves the current file alone.
        let short = pairs
            .iter()
            .take(3)
            .map(|(k, v)| Ok((k.clone().into(), v.clone().into())));
        assert!(write_current(dir.path(), &meta, pairs.len() as u64, short).is_err());
        assert_eq!(load_current(dir.path()).unwrap().unwrap(), bytes);
    }

    #[test]
    fn another_format_or_a_cut_file_is_refused() {
        let meta = meta();
        let mut owned = OwnedFile {
            format: SNAPSHOT_FORMAT + 1,
            meta: meta.clone(),
            data: pairs(),
        };
        let bytes = codec::encode(&owned).unwrap();
        assert!(SnapshotView::decode(&bytes).is_err());
        assert!(decode_meta(&bytes).is_err());
        owned.format = SNAPSHOT_FORMAT;
        let bytes = codec::encode(&owned).unwrap();
        assert!(SnapshotView::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_meta(&bytes[..10]).is_err());
    }

    #[test]
    fn a_chunk_on_the_wire_is_openraft_s_request_byte_for_byte() {
        let req = InstallSnapshotRequest::<TypeConfig> {
            vote: Vote::new_committed(3, 1),
            meta: meta(),
            offset: 3 << 20,
            data: (0..5000u32).map(|i| (i * 7) as u8).collect(),
            done: true,
        };
        let ours = codec::encode(&ChunkOut::of(&req)).unwrap();
        assert_eq!(ours, codec::encode(&req).unwrap());
        let back: InstallSnapshotRequest<TypeConfig> = codec::decode::<ChunkIn>(&ours).unwrap().into();
        assert_eq!(back, req);
    }
}
