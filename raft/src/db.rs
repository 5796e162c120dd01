//! Opening the replica's RocksDB: one database, one WAL, four column families shared by the
//! log store and the state machine. Every acknowledged write is a synced WriteBatch.
//!
//! | column family | keys | values |
//! |---|---|---|
//! | `logs` | log index, u64 big-endian (RocksDB order = log order) | bincode `Entry` |
//! | `meta` | `vote`, `committed`, `last_purged`, `format` | bincode |
//! | `sm_meta` | `last_applied`, `membership` | bincode |
//! | `sm_data` | application keys | application values |

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{ColumnFamily, Options, WriteBatch, WriteOptions, DB};

use crate::error::StoreError;

pub const CF_LOGS: &str = "logs";
pub const CF_META: &str = "meta";
pub const CF_SM_META: &str = "sm_meta";
pub const CF_SM_DATA: &str = "sm_data";
const ALL_CFS: [&str; 4] = [CF_LOGS, CF_META, CF_SM_META, CF_SM_DATA];

/// On-disk format version of this data directory. Bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_KEY: &[u8] = b"format";

/// A replica's open store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub db: Arc<DB>,
    pub dir: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

impl Store {
    /// Opens (or creates) the store under `dir`. Refuses an unwritable directory, a corrupt
    /// database, or one written by an incompatible format, with an error naming the path.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Invalid(format!("data dir {}: cannot create: {e}", dir.display())))?;
        check_writable(dir)?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_paranoid_checks(true);
        let db_path = dir.join("db");
        let db = DB::open_cf(&opts, &db_path, ALL_CFS).map_err(|e| {
            StoreError::Invalid(format!("data dir {}: cannot open store: {e}", dir.display()))
        })?;
        let store = Store {
            db: Arc::new(db),
            dir: dir.to_path_buf(),
        };
        store.check_format()?;
        std::fs::create_dir_all(store.snapshot_dir())?;
        Ok(store)
    }

    fn check_format(&self) -> Result<(), StoreError> {
        let cf = self.cf(CF_META);
        match self.db.get_cf(cf, FORMAT_KEY)? {
            None => {
                let mut b = WriteBatch::default();
                b.put_cf(cf, FORMAT_KEY, FORMAT_VERSION.to_be_bytes());
                self.write_synced(b)
            }
            Some(v) if v.as_slice() == FORMAT_VERSION.to_be_bytes() => Ok(()),
            Some(v) => Err(StoreError::Invalid(format!(
                "data dir {}: store format {:?} is not supported by this build (expects {FORMAT_VERSION})",
                self.dir.display(),
                v
            ))),
        }
    }

    pub fn cf(&self, name: &str) -> &ColumnFamily {
        // The four families are created at open, so a missing one is a programming error.
        self.db
            .cf_handle(name)
            .unwrap_or_else(|| panic!("column family {name} missing"))
    }

    /// Writes the batch and fsyncs the WAL before returning.
    pub fn write_synced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }

    pub fn snapshot_dir(&self) -> PathBuf {
        self.dir.join("snapshots")
    }
}

fn check_writable(dir: &Path) -> Result<(), StoreError> {
    let probe = dir.join(".write-probe");
    std::fs::write(&probe, b"ok")
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| StoreError::Invalid(format!("data dir {}: not writable: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_store_is_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        // Overwrite every table/manifest file with garbage.
        for e in std::fs::read_dir(dir.path().join("db")).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("MANIFEST") || name == "CURRENT" {
                std::fs::write(&p, b"garbage garbage garbage").unwrap();
            }
        }
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }

    #[test]
    fn unwritable_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = Store::open(&file).unwrap_err().to_string();
        assert!(err.contains("not-a-dir"), "{err}");
    }

    #[test]
    fn foreign_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let mut b = WriteBatch::default();
        b.put_cf(s.cf(CF_META), FORMAT_KEY, 99u32.to_be_bytes());
        s.write_synced(b).unwrap();
        drop(s);
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("format"), "{err}");
    }
}
