//! The Raft log on RocksDB. Durability rule: every write that openraft will act on (vote,
//! append, truncate, purge) is a WriteBatch written with `sync = true` *before* the call
//! returns or the flush callback fires. Skipping that is how Raft stores lose acknowledged
//! entries or vote twice in one term (see docs/design/raft-state.md).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, StorageIOError};
use rocksdb::{Direction, IteratorMode, WriteBatch};

use crate::codec;
use crate::db::{Store, CF_LOGS, CF_META};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn key_index(key: &[u8]) -> Result<u64, StorageError> {
    let arr: [u8; 8] = key
        .try_into()
        .map_err(|_| StorageIOError::read_logs(&std::io::Error::other("log key is not 8 bytes")))?;
    Ok(u64::from_be_bytes(arr))
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

/// The log store. Clones share the same database (openraft asks for a separate reader).
#[derive(Debug, Clone)]
pub struct LogStore {
    store: Store,
}

impl LogStore {
    pub fn new(store: Store) -> LogStore {
        LogStore { store }
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        match self
            .store
            .db
            .get_cf(self.store.cf(CF_META), key)
            .map_err(read_err)?
        {
            None => Ok(None),
            Some(b) => codec::decode(&b).map(Some).map_err(read_err),
        }
    }

    fn put_meta_synced<T: serde::Serialize>(&self, key: &[u8], v: &T) -> Result<(), StorageError> {
        let mut b = WriteBatch::default();
        b.put_cf(self.store.cf(CF_META), key, codec::encode(v).map_err(write_err)?);
        self.store.write_synced(b).map_err(write_err)
    }

    pub(crate) fn last_log_id(&self) -> Result<Option<LogId>, StorageError> {
        let cf = self.store.cf(CF_LOGS);
        let mut it = self.store.db.iterator_cf(cf, IteratorMode::End);
        match it.next() {
            None => Ok(None),
            Some(kv) => {
                let (_, v) = kv.map_err(read_err)?;
                let e: Entry = codec::decode(&v).map_err(read_err)?;
                Ok(Some(e.log_id))
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let cf = self.store.cf(CF_LOGS);
        let mode = IteratorMode::From(&index_key(start), Direction::Forward);
        let mut out = Vec::new();
        for kv in self.store.db.iterator_cf(cf, mode) {
            let (k, v) = kv.map_err(read_err)?;
            let idx = key_index(&k)?;
            if !range.contains(&idx) {
                break;
            }
            out.push(codec::decode::<Entry>(&v).map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.get_meta(KEY_LAST_PURGED)?;
        let last = self.last_log_id()?.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_meta_synced(KEY_VOTE, vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not synced: losing it only means re-applying from the last applied index.
        let cf = self.store.cf(CF_META);
        let v = codec::encode(&committed).map_err(write_err)?;
        self.store.db.put_cf(cf, KEY_COMMITTED, v).map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = self.store.cf(CF_LOGS);
        let mut batch = WriteBatch::default();
        for e in entries {
            batch.put_cf(
                cf,
                index_key(e.log_id.index),
                codec::encode(&e).map_err(write_err)?,
            );
        }
        let store = self.store.clone();
        // The sync write blocks for the fsync; keep it off the async worker threads.
        let res = tokio::task::spawn_blocking(move || store.write_synced(batch))
            .await
            .map_err(|e| write_err(std::io::Error::other(e.to_string())))?;
        match res {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                callback.log_io_completed(Err(std::io::Error::other(msg.clone())));
                Err(write_err(std::io::Error::other(msg)))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let cf = self.store.cf(CF_LOGS);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, index_key(log_id.index), index_key(u64::MAX));
        // delete_range excludes the end key; u64::MAX is never a real index.
        self.store.write_synced(batch).map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.store.cf(CF_META),
            KEY_LAST_PURGED,
            codec::encode(&log_id).map_err(write_err)?,
        );
        batch.delete_range_cf(self.store.cf(CF_LOGS), index_key(0), index_key(log_id.index + 1));
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            store.write_synced(batch)?;
            // The range tombstone hides the entries; dropping the table files that lie wholly
            // inside the purged range frees their space now instead of at the next compaction
            // (the log is append-only, so most of its files qualify). Best effort: what is left
            // goes at compaction.
            let cf = store.cf(CF_LOGS);
            if let Err(e) = store
                .db
                .delete_file_in_range_cf(cf, index_key(0), index_key(log_id.index))
            {
                tracing::debug!("log purge: files not dropped: {e}");
            }
            Ok::<(), crate::error::StoreError>(())
        })
        .await
        .map_err(|e| write_err(std::io::Error::other(e.to_string())))?
        .map_err(write_err)
    }
}
