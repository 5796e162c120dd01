//! The seam between the replicated core and the application: the application supplies a
//! command type and a deterministic `apply` over a transaction, and reads its state through a
//! consistent view. Nothing here knows what the keys mean.

use std::collections::BTreeMap;
use std::fmt::Debug;

use rocksdb::{Direction, IteratorMode, ReadOptions, SnapshotWithThreadMode, DB};
use serde::{de::DeserializeOwned, Serialize};

use crate::codec::{self, CodecError};
use crate::db::{Store, CF_SM_DATA};
use crate::error::StoreError;

/// What a replicated application provides.
///
/// `apply` must be deterministic: it may read and write only through `txn`, and must not read
/// clocks, randomness, the environment or the network. Ids and timestamps come inside the
/// command. A business refusal ("name taken") is a value inside `Response`; an `Err` means the
/// store failed and stops the replica.
pub trait Application: Send + Sync + 'static {
    type Command: Serialize + DeserializeOwned + Debug + Send + Sync + 'static;
    type Response: Serialize + DeserializeOwned + Debug + Send + Sync + 'static;

    fn apply(&self, cmd: Self::Command, txn: &mut Txn<'_>) -> Result<Self::Response, StoreError>;

    /// The newest log format this build reads. Peers report it (`/raft/rpc/format`) so that
    /// the application raises the format its entries use only once every member reads it; a
    /// build that predates the report counts as format 0.
    const LOG_FORMAT: u16 = 0;

    /// Encodes a command into log bytes. `state` is the applied state, where an application
    /// keeps the format its members agreed on ([`Application::agreed_format`]). An `Err` (the
    /// command needs a newer format than agreed) refuses the proposal before it is appended.
    fn encode_command(&self, cmd: &Self::Command, state: &View<'_>) -> Result<Vec<u8>, String> {
        let _ = state;
        codec::encode(cmd).map_err(|e| e.to_string())
    }

    /// Decodes log bytes written by [`Application::encode_command`] of this or an older build.
    fn decode_command(&self, bytes: &[u8]) -> Result<Self::Command, CodecError> {
        codec::decode(bytes)
    }

    /// The log format the members agreed on, read from the applied state: a replica whose
    /// build reads less may not join.
    fn agreed_format(&self, state: &View<'_>) -> Result<u16, StoreError> {
        let _ = state;
        Ok(0)
    }
}

/// Key/value pairs in key order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// What [`StateReader::visit_prefix`] calls with each key and value.
pub type Visit<'f> = &'f mut dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError>;

/// Reads of the application keyspace: from a transaction being applied or a consistent view.
pub trait StateReader {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// All pairs whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Pairs, StoreError>;

    /// Each pair whose key starts with `prefix`, in key order, without collecting them
    /// first (a whole keyspace at scale: `GET /topology`).
    fn visit_prefix(&self, prefix: &[u8], f: Visit<'_>) -> Result<(), StoreError> {
        for (k, v) in self.scan_prefix(prefix)? {
            f(&k, &v)?;
        }
        Ok(())
    }

    /// Each pair with `from <= key < to`, in key order, without collecting them: one share
    /// of a keyspace that several threads read (`GET /topology`'s bricks).
    fn visit_range(&self, from: &[u8], to: &[u8], f: Visit<'_>) -> Result<(), StoreError> {
        let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        for (k, v) in self.scan_prefix(&from[..common])? {
            if k.as_slice() >= from && k.as_slice() < to {
                f(&k, &v)?;
            }
        }
        Ok(())
    }
}

/// The first key after every key that starts with `prefix` (None: no such key, the
/// prefix is empty or all 0xff).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

/// The writes of one applied batch. Reads see the batch's earlier writes (`pending`) over
/// the committed database. The whole batch is written atomically, with `last_applied`.
pub struct Txn<'a> {
    store: &'a Store,
    pub(crate) pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Txn<'a> {
    pub(crate) fn new(store: &'a Store) -> Txn<'a> {
        Txn {
            store,
            pending: BTreeMap::new(),
        }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.pending.insert(key, Some(value));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.pending.insert(key, None);
    }

    /// Marks the writes so far; [`Txn::rollback`] forgets every write made after it. Lets a
    /// command check as it goes and refuse without leaving half its writes in the batch.
    pub fn savepoint(&self) -> Savepoint {
        Savepoint(self.pending.clone())
    }

    pub fn rollback(&mut self, sp: Savepoint) {
        self.pending = sp.0;
    }
}

/// The writes of a transaction at some point (see [`Txn::savepoint`]).
pub struct Savepoint(BTreeMap<Vec<u8>, Option<Vec<u8>>>);

impl StateReader for Txn<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.pending.get(key) {
            return Ok(v.clone());
        }
        Ok(self.store.db.get_cf(self.store.cf(CF_SM_DATA), key)?)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Pairs, StoreError> {
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = scan(&self.store.db, self.store, None, prefix)?;
        for (k, v) in self.pending.range(prefix.to_vec()..) {
            if !k.starts_with(prefix) {
                break;
            }
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().collect())
    }
}

fn scan(
    db: &DB,
    store: &Store,
    snap: Option<&SnapshotWithThreadMode<'_, DB>>,
    prefix: &[u8],
) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, StoreError> {
    let mut ro = ReadOptions::default();
    if let Some(s) = snap {
        ro.set_snapshot(s);
    }
    // Bounded, so that the iterator stops at the prefix's end instead of skipping the
    // deleted keys that follow it to the next live one (the finished operations that the
    // queue retention forgot lie right after the nodes' keys: at 100,000 volumes, scans of
    // the nodes were most of a reconcile's time).
    if let Some(end) = prefix_end(prefix) {
        ro.set_iterate_upper_bound(end);
    }
    let mode = IteratorMode::From(prefix, Direction::Forward);
    let mut out = BTreeMap::new();
    for kv in db.iterator_cf_opt(store.cf(CF_SM_DATA), ro, mode) {
        let (k, v) = kv?;
        if !k.starts_with(prefix) {
            break;
        }
        out.insert(k.to_vec(), v.to_vec());
    }
    Ok(out)
}

/// A consistent, read-only view of the committed application state (a RocksDB snapshot):
/// every read through one view sees the same applied index.
pub struct View<'a> {
    store: &'a Store,
    snap: SnapshotWithThreadMode<'a, DB>,
}

impl<'a> View<'a> {
    pub fn new(store: &'a Store) -> View<'a> {
        View {
            store,
            snap: store.db.snapshot(),
        }
    }
}

impl StateReader for View<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.snap.get_cf(self.store.cf(CF_SM_DATA), key)?)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Pairs, StoreError> {
        Ok(scan(&self.store.db, self.store, Some(&self.snap), prefix)?
            .into_iter()
            .collect())
    }

    fn visit_prefix(&self, prefix: &[u8], f: Visit<'_>) -> Result<(), StoreError> {
        self.visit(prefix, prefix_end(prefix), prefix, f)
    }

    fn visit_range(&self, from: &[u8], to: &[u8], f: Visit<'_>) -> Result<(), StoreError> {
        self.visit(from, Some(to.to_vec()), b"", f)
    }
}

impl View<'_> {
    /// Keys from `from` below `to` that start with `prefix`, read in place (a raw iterator:
    /// no copy of each key and value, which a scan of 300,000 bricks felt). A visit is a bulk
    /// read (`GET /topology` visits every brick and volume): its blocks bypass the block
    /// cache, which they would otherwise replace whole, evicting what the writes' point
    /// reads keep there.
    fn visit(&self, from: &[u8], to: Option<Vec<u8>>, prefix: &[u8], f: Visit<'_>) -> Result<(), StoreError> {
        let mut ro = ReadOptions::default();
        ro.set_snapshot(&self.snap);
        ro.fill_cache(false);
        if let Some(to) = to {
            ro.set_iterate_upper_bound(to);
        }
        let mut it = self.store.db.raw_iterator_cf_opt(self.store.cf(CF_SM_DATA), ro);
        it.seek(from);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(prefix) {
                break;
            }
            f(k, v)?;
            it.next();
        }
        Ok(it.status()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_at_its_successor() {
        assert_eq!(prefix_end(b"b/"), Some(b"b0".to_vec()));
        assert_eq!(prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    /// A view reads ranges and prefixes in place as a transaction reads them through its
    /// scan: the same pairs, in key order, bounds honoured at both ends.
    #[test]
    fn a_view_visits_what_a_transaction_scans() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cf = store.cf(CF_SM_DATA);
        for k in [
            "a/1", "b/", "b/0", "b/1x", "b/2", "b/9", "b/a", "b/\u{7f}", "b0", "c/",
        ] {
            store.db.put_cf(cf, k, format!("v{k}")).unwrap();
        }
        store.db.put_cf(cf, b"b/\xff\xff", b"top").unwrap();
        let (view, txn) = (View::new(&store), Txn::new(&store));
        let collect = |r: &dyn Fn(Visit<'_>) -> Result<(), StoreError>| {
            let mut out = Vec::new();
            r(&mut |k, v| {
                out.push((k.to_vec(), v.to_vec()));
                Ok(())
            })
            .unwrap();
            out
        };
        for (from, to) in [
            (&b"b/"[..], &b"b/2"[..]),
            (b"b/2", b"b0"),
            (b"b/1", b"b/1y"),
            (b"a", b"z"),
        ] {
            let v = collect(&|f| view.visit_range(from, to, f));
            let t = collect(&|f| txn.visit_range(from, to, f));
            assert_eq!(v, t, "{from:?}..{to:?}");
            assert!(v.iter().all(|(k, _)| k.as_slice() >= from && k.as_slice() < to));
        }
        let v = collect(&|f| view.visit_prefix(b"b/", f));
        assert_eq!(v, collect(&|f| txn.visit_prefix(b"b/", f)));
        assert_eq!(v.len(), 8, "b/ .. b/\\xff\\xff, not b0");
        assert_eq!(collect(&|f| view.visit_range(b"b/2", b"b/a", f)).len(), 2);
    }
}
