//! The process allocator and what it holds (issue 16, docs/footprint.md).
//!
//! Under create/delete churn glibc's malloc kept the leader's RSS rising while everything the
//! store accounts for was flat: freed memory stayed in per-thread arenas. The `hekate` binary
//! therefore runs on jemalloc, built with `override_allocator_on_supported_platforms`, so the
//! C `malloc` of the whole process (RocksDB's C++ allocates through it) is jemalloc's too,
//! and freed pages go back to the system after `dirty_decay_ms`.
//!
//! [`stats`] reads jemalloc's counters for `/metrics`: `allocated` (live heap) against
//! `resident` (pages the allocator holds in RAM) tells live data from fragmentation and
//! unpurged pages; `retained` is address space kept unmapped-but-reserved (not RSS).

use tikv_jemalloc_ctl::{background_thread, epoch, stats};

/// jemalloc's counters, bytes (see the module header).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes in live allocations.
    pub allocated: u64,
    /// Bytes in pages with live allocations (allocated plus fragmentation within them).
    pub active: u64,
    /// Bytes the allocator holds in physical memory: active, dirty pages not yet purged, metadata.
    pub resident: u64,
    /// Allocator metadata.
    pub metadata: u64,
    /// Virtual memory kept for reuse, not resident.
    pub retained: u64,
}

/// Starts jemalloc's background threads, which purge freed pages on their own schedule even
/// when the process is idle (otherwise purging rides on later allocations). Call once at
/// start; a failure (an allocator built without them) only loses the early purge.
pub fn init() {
    if let Err(e) = background_thread::write(true) {
        tracing::warn!("jemalloc background threads not started: {e}");
    }
}

/// The allocator's counters now (refreshes jemalloc's cached statistics first).
pub fn stats() -> Result<HeapStats, String> {
    epoch::advance().map_err(|e| e.to_string())?;
    let read = |r: tikv_jemalloc_ctl::Result<usize>| r.map(|v| v as u64).map_err(|e| e.to_string());
    Ok(HeapStats {
        allocated: read(stats::allocated::read())?,
        active: read(stats::active::read())?,
        resident: read(stats::resident::read())?,
        metadata: read(stats::metadata::read())?,
        retained: read(stats::retained::read())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_follow_a_live_allocation() {
        let before = stats().unwrap();
        let block = vec![1u8; 64 << 20];
        let during = stats().unwrap();
        // Other tests of this binary allocate concurrently: 16 MiB of slack either way.
        assert!(
            during.allocated >= before.allocated + (48 << 20),
            "{before:?} -> {during:?}"
        );
        assert!(during.resident >= 48 << 20, "{during:?}");
        drop(block);
        let after = stats().unwrap();
        assert!(
            after.allocated + (48 << 20) <= during.allocated,
            "{during:?} -> {after:?}"
        );
    }

    /// RocksDB is a shared library: its memtables are counted only if its `malloc` (C++
    /// `operator new`) resolves to jemalloc's, i.e. the override covers the whole process.
    #[test]
    fn rocksdb_allocates_through_jemalloc() {
        use hekate_raft::db::{Store, CF_SM_DATA};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // This thread's own allocations (jemalloc counts them per thread): the process-wide
        // counters move with the other tests of this binary. RocksDB writes the memtable
        // from the thread that calls `put`, so its arena blocks are counted here.
        let counter = tikv_jemalloc_ctl::thread::allocatedp::read().unwrap();
        let before = counter.get();
        for i in 0u32..4000 {
            store
                .db
                .put_cf(store.cf(CF_SM_DATA), i.to_be_bytes(), [7u8; 1000])
                .unwrap();
        }
        let by_this_thread = counter.get() - before;
        let memtables = store.footprint().unwrap().memtable_bytes;
        assert!(memtables >= 4_000_000, "{memtables}");
        assert!(
            by_this_thread >= memtables as u64 / 2,
            "memtables of {memtables} bytes, but this thread allocated {by_this_thread} bytes through jemalloc"
        );
    }
}
