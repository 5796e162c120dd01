//! Opening the replica's RocksDB: one database, one WAL, four column families shared by the
//! log store and the state machine. Every acknowledged log write is a synced WriteBatch; an
//! applied batch is not synced (the log it came from is, see `state_machine::apply`).
//!
//! | column family | keys | values |
//! |---|---|---|
//! | `logs` | log index, u64 big-endian (RocksDB order = log order) | bincode `Entry` |
//! | `meta` | `vote`, `committed`, `last_purged`, `format` | bincode |
//! | `sm_meta` | `last_applied`, `membership` | bincode |
//! | `sm_data` | application keys | application values |
//!
//! Memory: one LRU block cache and one write-buffer manager shared by the four families, both
//! sized from [`StoreOptions::memory_budget_mib`] (half each), so the store's memory does not
//! grow with the number of families or with history (docs/footprint.md). Disk: dynamic level
//! sizes, small memtables and a WAL bound keep the files proportional to the live keys; purged
//! log ranges are dropped file by file (see `log_store::purge`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Options, WriteBatch,
    WriteOptions, DB,
};

use crate::error::StoreError;

pub const CF_LOGS: &str = "logs";
pub const CF_META: &str = "meta";
pub const CF_SM_META: &str = "sm_meta";
pub const CF_SM_DATA: &str = "sm_data";
const ALL_CFS: [&str; 4] = [CF_LOGS, CF_META, CF_SM_META, CF_SM_DATA];

/// On-disk format version of this data directory. Bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_KEY: &[u8] = b"format";

/// How the store uses memory. `memory_budget_mib` bounds RocksDB's memtables (a write-buffer
/// manager over all column families) and its block cache (one LRU cache shared by all of
/// them, holding index and filter blocks too), half each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    pub memory_budget_mib: u64,
}

/// The default budget: the live state of a large Heketi deployment (10,000 volumes) is tens of
/// MiB, so 64 MiB keeps it cached with room for the write path.
pub const DEFAULT_MEMORY_BUDGET_MIB: u64 = 64;
/// Below this the memtables are too small to batch Raft appends (a flush every few entries).
pub const MIN_MEMORY_BUDGET_MIB: u64 = 16;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            memory_budget_mib: DEFAULT_MEMORY_BUDGET_MIB,
        }
    }
}

impl StoreOptions {
    /// RocksDB options for every column family and the database, sharing `cache`.
    fn rocksdb(&self, cache: &Cache) -> Options {
        const MIB: usize = 1024 * 1024;
        let budget = self.memory_budget_mib.max(MIN_MEMORY_BUDGET_MIB) as usize * MIB;
        let write_buffers = budget / 2;
        let mut opts = Options::default();
        // All memtables of all families together; a flush is triggered past it.
        opts.set_db_write_buffer_size(write_buffers);
        // Per family: a quarter of the write budget (four families), two memtables at most
        // (one being flushed), capped at 16 MiB so a flush never carries much.
        opts.set_write_buffer_size((write_buffers / 4).clamp(MIB, 16 * MIB));
        opts.set_max_write_buffer_number(2);
        // The WAL is kept until every family with data in it has flushed. The meta families
        // see small writes (`last_applied` on every batch) and would otherwise hold WAL files
        // for the whole write budget: past half of it, RocksDB flushes them (measured: 17 MiB
        // of a 20 MiB data directory was WAL after 3 minutes of churn without this bound).
        opts.set_max_total_wal_size((write_buffers / 2) as u64);
        // Level sizes follow the data actually there: deleted history is compacted away
        // instead of sitting in a partly filled last level.
        opts.set_level_compaction_dynamic_level_bytes(true);
        opts.set_target_file_size_base(8 * MIB as u64);
        opts.set_max_bytes_for_level_base(32 * MIB as u64);
        // RocksDB's own info log: a few small files instead of one that grows forever.
        opts.set_max_log_file_size(MIB);
        opts.set_keep_log_file_num(3);
        opts.set_max_manifest_file_size(8 * MIB);
        // Table files (flushes, compactions) are synced every MiB as they are written rather
        // than all at once at their end: a burst of dirty pages holds the log's fsyncs behind
        // it (the snapshot file is paced the same way, `snapshot::SYNC_EVERY`).
        opts.set_bytes_per_sync(MIB as u64);
        // LZ4 rather than the default Snappy: the same size on disk here (393 vs 388 MB at
        // 100,000 volumes) and faster to decompress, which every read of a block outside the
        // cache pays (`GET /topology` at 100,000 volumes: p50 1.11-1.17 s against 1.19-1.34 s
        // in alternating runs). Files written before keep their Snappy blocks and are read
        // as they are; compactions rewrite them.
        opts.set_compression_type(DBCompressionType::Lz4);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(cache);
        // Index and filter blocks live in the cache too, so table readers are within budget.
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        opts.set_block_based_table_factory(&table);
        opts
    }

    fn cache_bytes(&self) -> usize {
        self.memory_budget_mib.max(MIN_MEMORY_BUDGET_MIB) as usize * 1024 * 1024 / 2
    }
}

/// A replica's open store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub db: Arc<DB>,
    pub dir: PathBuf,
    /// The block cache shared by every column family (its usage is a footprint metric).
    pub cache: Cache,
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
        Store::open_with(dir, StoreOptions::default())
    }

    /// [`Store::open`] with explicit memory settings.
    pub fn open_with(dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Invalid(format!("data dir {}: cannot create: {e}", dir.display())))?;
        check_writable(dir)?;
        let cache = Cache::new_lru_cache(options.cache_bytes());
        let mut opts = options.rocksdb(&cache);
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_paranoid_checks(true);
        let db_path = dir.join("db");
        let cfs = ALL_CFS.map(|name| ColumnFamilyDescriptor::new(name, options.rocksdb(&cache)));
        let db = DB::open_cf_descriptors(&opts, &db_path, cfs).map_err(|e| {
            StoreError::Invalid(format!("data dir {}: cannot open store: {e}", dir.display()))
        })?;
        let store = Store {
            db: Arc::new(db),
            dir: dir.to_path_buf(),
            cache,
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

    /// Writes the batch without waiting for the disk: what it holds can be rebuilt from
    /// synced writes (an applied batch from the log, which stays until a later synced purge).
    /// The WAL is one ordered stream, so the next synced write makes this one durable too.
    pub fn write_unsynced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.db.write(batch)?;
        Ok(())
    }

    pub fn snapshot_dir(&self) -> PathBuf {
        self.dir.join("snapshots")
    }

    /// What the store holds in memory and on disk now. Reads RocksDB properties (cheap) and
    /// walks the data directory (a few dozen files): call it on a blocking thread.
    pub fn footprint(&self) -> Result<StoreFootprint, StoreError> {
        let mut f = StoreFootprint {
            block_cache_bytes: self.cache.get_usage() as u64,
            block_cache_pinned_bytes: self.cache.get_pinned_usage() as u64,
            data_dir_bytes: dir_bytes(&self.dir),
            ..Default::default()
        };
        for name in ALL_CFS {
            let cf = self.cf(name);
            let prop = |p: &std::ffi::CStr| -> Result<u64, StoreError> {
                Ok(self.db.property_int_value_cf(cf, p)?.unwrap_or(0))
            };
            f.memtable_bytes += prop(rocksdb::properties::CUR_SIZE_ALL_MEM_TABLES)?;
            f.table_readers_bytes += prop(rocksdb::properties::ESTIMATE_TABLE_READERS_MEM)?;
            f.sst_bytes += prop(rocksdb::properties::TOTAL_SST_FILES_SIZE)?;
        }
        f.wal_bytes = std::fs::read_dir(self.dir.join("db"))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        f.snapshot_bytes = dir_bytes(&self.snapshot_dir());
        Ok(f)
    }
}

/// A point-in-time account of the store's memory and disk (see [`Store::footprint`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreFootprint {
    /// Active and immutable memtables of all column families.
    pub memtable_bytes: u64,
    /// The shared block cache (data, index and filter blocks).
    pub block_cache_bytes: u64,
    /// Part of the cache pinned (L0 index/filter blocks, blocks held by iterators).
    pub block_cache_pinned_bytes: u64,
    /// Index and filter memory of table readers outside the cache (0 when they are cached).
    pub table_readers_bytes: u64,
    /// SST files of all column families.
    pub sst_bytes: u64,
    /// Write-ahead log files.
    pub wal_bytes: u64,
    /// The current snapshot file.
    pub snapshot_bytes: u64,
    /// Everything under the data directory.
    pub data_dir_bytes: u64,
}

/// Bytes of the regular files under `dir`, recursively (apparent size, as `du -b`).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
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
    fn footprint_accounts_memtables_cache_and_disk() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_with(
            dir.path(),
            StoreOptions {
                memory_budget_mib: 16,
            },
        )
        .unwrap();
        let before = s.footprint().unwrap();
        let mut b = WriteBatch::default();
        for i in 0u32..2000 {
            b.put_cf(s.cf(CF_SM_DATA), i.to_be_bytes(), vec![7u8; 200]);
        }
        s.write_synced(b).unwrap();
        let after = s.footprint().unwrap();
        assert!(
            after.memtable_bytes > before.memtable_bytes + 2000 * 200,
            "{after:?}"
        );
        assert!(after.wal_bytes >= 2000 * 200, "{after:?}");
        assert!(after.data_dir_bytes >= after.wal_bytes, "{after:?}");
        s.db.flush_cf(s.cf(CF_SM_DATA)).unwrap();
        for i in (0u32..2000).step_by(7) {
            assert_eq!(
                s.db.get_cf(s.cf(CF_SM_DATA), i.to_be_bytes())
                    .unwrap()
                    .unwrap()
                    .len(),
                200
            );
        }
        let flushed = s.footprint().unwrap();
        assert!(flushed.sst_bytes > 0, "{flushed:?}");
        assert!(
            flushed.block_cache_bytes > 0,
            "reads go through the shared cache: {flushed:?}"
        );
        assert!(flushed.block_cache_bytes <= 8 * 1024 * 1024, "{flushed:?}");
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
