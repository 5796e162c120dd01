//! The footprint gauges of `/metrics` (issue 16): what this replica holds in memory and on
//! disk, so that an operator sees growth before it hurts. RocksDB memory (memtables, block
//! cache and its pinned part, table readers), SST/WAL/snapshot/data-directory bytes, the Raft
//! log (entries stored, entries since the snapshot), retained and pending operations, and the
//! process's resident memory, and the allocator's live heap against what it keeps resident
//! (`hekate_heap_*`, src/heap.rs).
//!
//! Walking the data directory and counting the operation index are not free, so they run on a
//! blocking thread and the result is cached for [`TTL`] per data directory: a scrape storm
//! costs one computation per TTL, never work on the async workers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use hekate_raft::db::StoreFootprint;
use hekate_raft::StateReader;
use prometheus::{GaugeVec, Opts, Registry};

use super::AppState;
use crate::state::keys;

/// How long a computed footprint is served from the cache.
pub const TTL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, Default)]
pub struct Footprint {
    pub store: StoreFootprint,
    /// Finished operations still readable at `/queue/{id}` (the `od/` index).
    pub retained_operations: u64,
}

type Cache = Mutex<HashMap<PathBuf, (Instant, Footprint)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// This replica's footprint, at most [`TTL`] old.
pub async fn current(st: &AppState) -> Result<Footprint, String> {
    let replica = st.replica().clone();
    let dir = replica.data_dir().to_path_buf();
    if let Some((at, f)) = cache().lock().unwrap_or_else(|e| e.into_inner()).get(&dir) {
        if at.elapsed() < TTL {
            return Ok(*f);
        }
    }
    let store = replica.store_footprint().await.map_err(|e| e.to_string())?;
    let r = replica.clone();
    let retained = tokio::task::spawn_blocking(move || {
        r.read(|v| v.scan_prefix(keys::OP_DONE_PREFIX).map(|p| p.len() as u64))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let f = Footprint {
        store,
        retained_operations: retained,
    };
    cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(dir, (Instant::now(), f));
    Ok(f)
}

/// Resident memory of this process (VmRSS), bytes; 0 where /proc is absent.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// Registers the footprint gauges on `reg` from `f` (see [`current`]); runs on the blocking
/// pool with the rest of the metrics page.
pub fn register(reg: &Registry, st: &AppState, f: Footprint) -> Result<(), String> {
    set_gauges(reg, &store_gauges(st, &f))?;
    set_gauges(reg, &heap_gauges(&crate::heap::stats()?))
}

/// (name, help, value) of a label-less gauge.
type Gauge = (&'static str, &'static str, u64);

/// Registers each gauge on `reg` with its value.
fn set_gauges(reg: &Registry, gauges: &[Gauge]) -> Result<(), String> {
    for (name, help, v) in gauges {
        let g = GaugeVec::new(Opts::new(*name, *help), &[]).map_err(|e| e.to_string())?;
        reg.register(Box::new(g.clone())).map_err(|e| e.to_string())?;
        g.with_label_values::<&str>(&[]).set(*v as f64);
    }
    Ok(())
}

/// The store, the Raft log, the operations kept and the process's resident memory.
fn store_gauges(st: &AppState, f: &Footprint) -> Vec<Gauge> {
    let s = st.replica().status();
    let last = s.last_log_index.unwrap_or(0);
    let since_snapshot = last.saturating_sub(s.snapshot.unwrap_or(0));
    let stored = last.saturating_sub(s.purged.unwrap_or(0));
    let pending = st
        .replica()
        .read(|v| crate::state::pending_op_ids(v))
        .map(|p| p.len() as u64)
        .unwrap_or(0);
    let b = &f.store;
    vec![
        (
            "hekate_rocksdb_memtable_bytes",
            "RocksDB memtables of all column families (within raft.memory_budget_mib)",
            b.memtable_bytes,
        ),
        (
            "hekate_rocksdb_block_cache_bytes",
            "RocksDB shared block cache usage (within raft.memory_budget_mib)",
            b.block_cache_bytes,
        ),
        (
            "hekate_rocksdb_block_cache_pinned_bytes",
            "Part of the block cache pinned by readers and L0 index/filter blocks",
            b.block_cache_pinned_bytes,
        ),
        (
            "hekate_rocksdb_table_readers_bytes",
            "RocksDB table-reader memory outside the block cache",
            b.table_readers_bytes,
        ),
        ("hekate_rocksdb_sst_bytes", "RocksDB SST files, all column families", b.sst_bytes),
        ("hekate_rocksdb_wal_bytes", "RocksDB write-ahead log files", b.wal_bytes),
        (
            "hekate_footprint_snapshot_bytes",
            "The current Raft snapshot file",
            b.snapshot_bytes,
        ),
        (
            "hekate_footprint_data_dir_bytes",
            "Everything under the replica's data directory",
            b.data_dir_bytes,
        ),
        (
            "hekate_footprint_raft_log_entries",
            "Raft log entries stored (last index minus last purged)",
            stored,
        ),
        (
            "hekate_footprint_raft_log_since_snapshot",
            "Raft log entries after the current snapshot",
            since_snapshot,
        ),
        (
            "hekate_footprint_retained_operations",
            "Finished operations kept for /queue (bounded by queue_retention_seconds and queue_retention_max_operations)",
            f.retained_operations,
        ),
        (
            "hekate_footprint_pending_operations",
            "Operations not finished yet",
            pending,
        ),
        (
            "hekate_footprint_resident_bytes",
            "Resident memory of this replica's process (VmRSS)",
            rss_bytes(),
        ),
    ]
}

/// What the process allocator (jemalloc) holds.
fn heap_gauges(h: &crate::heap::HeapStats) -> Vec<Gauge> {
    vec![
        (
            "hekate_heap_allocated_bytes",
            "Live heap allocations (jemalloc stats.allocated; Rust and RocksDB)",
            h.allocated,
        ),
        (
            "hekate_heap_active_bytes",
            "Pages holding live allocations (jemalloc stats.active)",
            h.active,
        ),
        (
            "hekate_heap_resident_bytes",
            "Memory the allocator holds resident: active, unpurged free pages, metadata (jemalloc stats.resident)",
            h.resident,
        ),
        (
            "hekate_heap_metadata_bytes",
            "Allocator metadata (jemalloc stats.metadata)",
            h.metadata,
        ),
        (
            "hekate_heap_retained_bytes",
            "Address space the allocator keeps for reuse, not resident (jemalloc stats.retained)",
            h.retained,
        ),
    ]
}
