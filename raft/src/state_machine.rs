//! The replicated state machine on RocksDB.
//!
//! Apply rule: one WriteBatch per batch of committed entries, holding the application's
//! writes, `last_applied` and the membership, written with sync before any response is
//! returned. Reads inside the batch see earlier writes of the same batch ([`Txn`]).

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, StorageIOError};
use rocksdb::{IteratorMode, ReadOptions, WriteBatch};

use crate::app::{Application, Txn};
use crate::codec;
use crate::db::{Store, CF_SM_DATA, CF_SM_META};
use crate::error::StoreError;
use crate::snapshot::{self, SnapshotView};
use crate::types::{
    AppResponse, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

const KEY_LAST_APPLIED: &[u8] = b"last_applied";
const KEY_MEMBERSHIP: &[u8] = b"membership";

fn sm_write_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(&std::io::Error::other(e.to_string())).into()
}

fn sm_read_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_state_machine(&std::io::Error::other(e.to_string())).into()
}

fn snap_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_snapshot(None, &std::io::Error::other(e.to_string())).into()
}

pub struct StateMachine<A: Application> {
    store: Store,
    app: Arc<A>,
    /// Bumped after each applied batch and installed snapshot is written: what readers that
    /// wait for the applied state to change subscribe to ([`crate::Replica::applied_watch`]),
    /// rather than to every change of openraft's metrics.
    applied: Arc<tokio::sync::watch::Sender<u64>>,
}

impl<A: Application> StateMachine<A> {
    pub fn new(store: Store, app: Arc<A>) -> Self {
        StateMachine {
            store,
            app,
            applied: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    /// What changes after each applied batch (before the state machine is handed to Raft).
    pub fn applied(&self) -> Arc<tokio::sync::watch::Sender<u64>> {
        self.applied.clone()
    }

    fn applied_changed(&self) {
        self.applied.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn read_meta(&self) -> Result<(Option<LogId>, StoredMembership), StoreError> {
        read_sm_meta(&self.store, None)
    }
}

fn read_sm_meta(
    store: &Store,
    snap: Option<&rocksdb::SnapshotWithThreadMode<'_, rocksdb::DB>>,
) -> Result<(Option<LogId>, StoredMembership), StoreError> {
    let cf = store.cf(CF_SM_META);
    let get = |k: &[u8]| -> Result<Option<Vec<u8>>, StoreError> {
        Ok(match snap {
            Some(s) => s.get_cf(cf, k)?,
            None => store.db.get_cf(cf, k)?,
        })
    };
    let applied = match get(KEY_LAST_APPLIED)? {
        Some(b) => codec::decode(&b)?,
        None => None,
    };
    let membership = match get(KEY_MEMBERSHIP)? {
        Some(b) => codec::decode(&b)?,
        None => StoredMembership::default(),
    };
    Ok((applied, membership))
}

impl<A: Application> RaftStateMachine<TypeConfig> for StateMachine<A> {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        self.read_meta().map_err(sm_read_err)
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<AppResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut txn = Txn::new(&self.store);
        let mut responses = Vec::new();
        let mut last_applied = None;
        let mut membership = None;
        for entry in entries {
            last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => responses.push(AppResponse::default()),
                EntryPayload::Normal(req) => {
                    let cmd = self.app.decode_command(&req.0).map_err(sm_read_err)?;
                    let resp = self.app.apply(cmd, &mut txn).map_err(sm_write_err)?;
                    responses.push(AppResponse(codec::encode(&resp).map_err(sm_write_err)?));
                }
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), m));
                    responses.push(AppResponse::default());
                }
            }
        }
        let Some(last_applied) = last_applied else {
            return Ok(responses);
        };
        let mut batch = WriteBatch::default();
        let data = self.store.cf(CF_SM_DATA);
        for (k, v) in std::mem::take(&mut txn.pending) {
            match v {
                Some(v) => batch.put_cf(data, k, v),
                None => batch.delete_cf(data, k),
            }
        }
        let meta = self.store.cf(CF_SM_META);
        batch.put_cf(
            meta,
            KEY_LAST_APPLIED,
            codec::encode(&Some(last_applied)).map_err(sm_write_err)?,
        );
        if let Some(m) = membership {
            batch.put_cf(meta, KEY_MEMBERSHIP, codec::encode(&m).map_err(sm_write_err)?);
        }
        // Not synced: the entries are durable in the log, which keeps them until a purge,
        // and a purge is a synced write later in the same WAL, which makes this batch durable
        // first. A power loss in between loses at most applied batches whose entries are
        // still in the log; openraft applies them again from `last_applied` on restart
        // (apply is deterministic). Saves one fsync per applied batch on every replica.
        // On a blocking thread all the same: a write can stall while RocksDB flushes.
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.write_unsynced(batch))
            .await
            .map_err(sm_write_err)?
            .map_err(sm_write_err)?;
        self.applied_changed();
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            store: self.store.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        tracing::info!("receiving a snapshot from the leader");
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let store = self.store.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || install(&store, &meta, bytes))
            .await
            .map_err(snap_err)?
            .map_err(snap_err)?;
        self.applied_changed();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        // On the blocking pool: at 100,000 volumes the file is 176 MB, 126-169 ms to read
        // from the page cache on an idle machine, and a runtime worker held that long (a dev
        // replica has one) carries no heartbeats. One leader at 100,000 volumes stepped down
        // (heard from no quorum for 706 ms) while it read its snapshot twice to offer it.
        let dir = self.store.snapshot_dir();
        let Some(bytes) = tokio::task::spawn_blocking(move || snapshot::load_current(&dir))
            .await
            .map_err(sm_read_err)?
            .map_err(sm_read_err)?
        else {
            return Ok(None);
        };
        let meta = snapshot::decode_meta(&bytes).map_err(sm_read_err)?;
        // openraft asks at start and before it sends the snapshot to a follower; each ask
        // holds the whole file in memory until the caller drops it.
        tracing::info!(snapshot = %meta.snapshot_id, bytes = bytes.len(), "current snapshot read");
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}

/// Replaces the whole application keyspace and metadata with the snapshot's, in one synced
/// WriteBatch, then keeps the snapshot as the current one.
fn install(store: &Store, meta: &SnapshotMeta, bytes: Vec<u8>) -> Result<(), StoreError> {
    let t = std::time::Instant::now();
    let file = SnapshotView::decode(&bytes)?;
    if file.meta.last_log_id != meta.last_log_id {
        return Err(StoreError::Invalid(format!(
            "snapshot data is at {:?} but its metadata says {:?}",
            file.meta.last_log_id, meta.last_log_id
        )));
    }
    let data = store.cf(CF_SM_DATA);
    let mut batch = WriteBatch::default();
    for kv in store.db.iterator_cf(data, IteratorMode::Start) {
        let (k, _) = kv?;
        batch.delete_cf(data, k);
    }
    for (k, v) in &file.data {
        batch.put_cf(data, k, v);
    }
    let pairs = file.data.len();
    drop(file);
    let sm_meta = store.cf(CF_SM_META);
    batch.put_cf(sm_meta, KEY_LAST_APPLIED, codec::encode(&meta.last_log_id)?);
    batch.put_cf(sm_meta, KEY_MEMBERSHIP, codec::encode(&meta.last_membership)?);
    let batched = t.elapsed();
    store.write_synced(batch)?;
    let written = t.elapsed();
    snapshot::save_current(&store.snapshot_dir(), &bytes)?;
    tracing::info!(
        snapshot = %meta.snapshot_id,
        bytes = bytes.len(),
        pairs,
        batched_ms = batched.as_millis() as u64,
        written_ms = written.as_millis() as u64,
        kept_ms = t.elapsed().as_millis() as u64,
        "snapshot installed"
    );
    Ok(())
}

/// Builds a snapshot from a RocksDB snapshot, on a thread of its own at a lower CPU priority
/// ([`BUILD_NICENESS`]), while apply goes on.
pub struct SnapshotBuilder {
    store: Store,
}

/// The nice value of a snapshot build's thread. Every replica builds one after the same number
/// of entries, so all three build at once: at 100,000 volumes that is about 2 s of CPU each on
/// a 2-core machine, and at the default priority it delayed the Raft core's heartbeats and
/// answers enough for leaders to lose their quorum and elections to follow under load. At nice
/// 10 the build gets about a tenth of a contended core; it takes longer, which only delays a
/// log purge. A thread of its own, because a nice value cannot be lowered again without
/// privilege and the blocking pool's threads are reused.
pub const BUILD_NICENESS: i32 = 10;

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let store = self.store.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("snapshot-build".into())
            .spawn(move || {
                // `None`: the calling thread (Linux keeps a nice value per thread).
                if let Err(e) = rustix::process::setpriority_process(None, BUILD_NICENESS) {
                    tracing::debug!("snapshot build at the default priority: {e}");
                }
                let _ = tx.send(build(&store));
            })
            .map_err(snap_err)?;
        rx.await.map_err(snap_err)?.map_err(snap_err)
    }
}

fn build(store: &Store) -> Result<Snapshot, StoreError> {
    let snap = store.db.snapshot();
    let (last_applied, membership) = read_sm_meta(store, Some(&snap))?;
    let view = || {
        let mut ro = ReadOptions::default();
        ro.set_snapshot(&snap);
        ro
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let snapshot_id = match last_applied {
        Some(l) => format!("{}-{}-{}-{nanos}", l.leader_id.term, l.leader_id.node_id, l.index),
        None => format!("empty-{nanos}"),
    };
    let meta = SnapshotMeta {
        last_log_id: last_applied,
        last_membership: membership,
        snapshot_id,
    };
    // Two passes over the same view: the count comes first in the file.
    let data = store.cf(CF_SM_DATA);
    let mut count = 0u64;
    let mut keys = store.db.raw_iterator_cf_opt(data, view());
    keys.seek_to_first();
    while keys.valid() {
        count += 1;
        keys.next();
    }
    keys.status()?;
    let pairs = store
        .db
        .iterator_cf_opt(data, view(), IteratorMode::Start)
        .map(|kv| kv.map_err(StoreError::from));
    let size = snapshot::write_current(&store.snapshot_dir(), &meta, count, pairs)?;
    tracing::info!(snapshot = %meta.snapshot_id, bytes = size, pairs = count, "snapshot built");
    // openraft keeps only the metadata of a snapshot it had built; the bytes are read once
    // more here because the trait hands them back, and dropped as soon as it returns.
    let bytes = snapshot::load_current(&store.snapshot_dir())?
        .ok_or_else(|| StoreError::Invalid("snapshot file missing right after it was written".into()))?;
    Ok(Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(bytes)),
    })
}
