//! The snapshot format and its file. A snapshot is the whole application keyspace plus the
//! metadata (last applied log id, membership) read from one RocksDB snapshot, so data and
//! metadata always agree, and building it never blocks `apply`.
//!
//! File layout: bincode of [`SnapshotFile`] (versioned by `format`). The current snapshot is
//! `<data>/snapshots/current.snap`, replaced atomically (write temp, fsync, rename, fsync dir).

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::StoreError;
use crate::types::SnapshotMeta;

pub const SNAPSHOT_FORMAT: u32 = 1;
const CURRENT: &str = "current.snap";

#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotFile {
    pub format: u32,
    pub meta: SnapshotMeta,
    /// Application key/value pairs in key order.
    pub data: Vec<(Vec<u8>, Vec<u8>)>,
}

impl SnapshotFile {
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        Ok(codec::encode(self)?)
    }

    pub fn decode(bytes: &[u8]) -> Result<SnapshotFile, StoreError> {
        let f: SnapshotFile = codec::decode(bytes)?;
        if f.format != SNAPSHOT_FORMAT {
            return Err(StoreError::Invalid(format!(
                "snapshot format {} is not supported",
                f.format
            )));
        }
        Ok(f)
    }
}

/// Atomically replaces the current snapshot file with `bytes`.
pub fn save_current(dir: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{CURRENT}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(CURRENT))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// The bytes of the current snapshot, if one was built or installed.
pub fn load_current(dir: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match std::fs::read(dir.join(CURRENT)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}
