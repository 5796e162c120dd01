//! Storage conformance: openraft's own test suite against the RocksDB log store and state
//! machine, plus the properties openraft's suite does not check (reads inside a batch see
//! earlier writes; snapshots round-trip and install atomically; everything survives reopen).

use std::io::Cursor;
use std::sync::Arc;

use hekate_raft::app::{Application, StateReader, Txn};
use hekate_raft::db::Store;
use hekate_raft::log_store::LogStore;
use hekate_raft::state_machine::StateMachine;
use hekate_raft::types::{AppRequest, Entry, LogId, StorageError, TypeConfig};
use hekate_raft::StoreError;
use openraft::storage::{RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload};
use serde::{Deserialize, Serialize};
use tempfile::TempDir;

/// A tiny key-value application: `Put` writes, `Incr` reads-modifies-writes.
struct Kv;

#[derive(Debug, Serialize, Deserialize)]
enum KvCmd {
    Put(String, String),
    Incr(String),
}

impl Application for Kv {
    type Command = KvCmd;
    type Response = Option<String>;

    fn apply(&self, cmd: KvCmd, txn: &mut Txn<'_>) -> Result<Option<String>, StoreError> {
        match cmd {
            KvCmd::Put(k, v) => {
                txn.put(k.into_bytes(), v.clone().into_bytes());
                Ok(Some(v))
            }
            KvCmd::Incr(k) => {
                let cur = txn.get(k.as_bytes())?.map(|b| String::from_utf8(b).unwrap());
                let n: u64 = cur.as_deref().unwrap_or("0").parse().unwrap();
                let next = (n + 1).to_string();
                txn.put(k.into_bytes(), next.clone().into_bytes());
                Ok(Some(next))
            }
        }
    }
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine<Kv>, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine<Kv>), StorageError> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        Ok((
            dir,
            LogStore::new(store.clone()),
            StateMachine::new(store, Arc::new(Kv)),
        ))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(Builder).unwrap();
}

fn entry(index: u64, cmd: &KvCmd) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(AppRequest(hekate_raft::codec::encode(cmd).unwrap())),
    }
}

fn decode_resp(r: &hekate_raft::types::AppResponse) -> Option<String> {
    hekate_raft::codec::decode(&r.0).unwrap()
}

#[tokio::test]
async fn reads_inside_a_batch_see_earlier_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut sm = StateMachine::new(store, Arc::new(Kv));
    let batch = vec![
        entry(1, &KvCmd::Incr("n".into())),
        entry(2, &KvCmd::Incr("n".into())),
        entry(3, &KvCmd::Incr("n".into())),
    ];
    let out = sm.apply(batch).await.unwrap();
    let got: Vec<_> = out.iter().map(decode_resp).collect();
    assert_eq!(got, vec![Some("1".into()), Some("2".into()), Some("3".into())]);
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied.unwrap().index, 3);
}

#[tokio::test]
async fn snapshot_round_trips_and_install_replaces_everything() {
    let d1 = tempfile::tempdir().unwrap();
    let mut a = StateMachine::new(Store::open(d1.path()).unwrap(), Arc::new(Kv));
    a.apply(vec![
        entry(1, &KvCmd::Put("a".into(), "1".into())),
        entry(2, &KvCmd::Put("b".into(), "2".into())),
    ])
    .await
    .unwrap();
    let snap = a.get_snapshot_builder().await.build_snapshot().await.unwrap();
    assert_eq!(snap.meta.last_log_id.unwrap().index, 2);

    let d2 = tempfile::tempdir().unwrap();
    let store2 = Store::open(d2.path()).unwrap();
    let mut b = StateMachine::new(store2.clone(), Arc::new(Kv));
    // b has a key the snapshot does not: installing must remove it.
    b.apply(vec![entry(1, &KvCmd::Put("stale".into(), "x".into()))])
        .await
        .unwrap();
    let bytes = snap.snapshot.into_inner();
    b.install_snapshot(&snap.meta, Box::new(Cursor::new(bytes)))
        .await
        .unwrap();
    let view = |k: &str| {
        let v = hekate_raft::app::StateReader::get(&ReadAll(&store2), k.as_bytes()).unwrap();
        v.map(|b| String::from_utf8(b).unwrap())
    };
    assert_eq!(view("a").as_deref(), Some("1"));
    assert_eq!(view("b").as_deref(), Some("2"));
    assert_eq!(view("stale"), None);
    assert_eq!(b.applied_state().await.unwrap().0.unwrap().index, 2);
    let cur = b.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(cur.meta.last_log_id, snap.meta.last_log_id);
}

/// Reads the committed keyspace through a fresh transaction (no pending writes).
struct ReadAll<'a>(&'a Store);
impl StateReader for ReadAll<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.db.get_cf(self.0.cf(hekate_raft::db::CF_SM_DATA), key)?)
    }
    fn scan_prefix(&self, _prefix: &[u8]) -> Result<hekate_raft::app::Pairs, StoreError> {
        unimplemented!()
    }
}

#[tokio::test]
async fn log_and_state_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let mut log = LogStore::new(store.clone());
        let vote = openraft::Vote::new(3, 2);
        log.save_vote(&vote).await.unwrap();
        let mut sm = StateMachine::new(store, Arc::new(Kv));
        sm.apply(vec![entry(1, &KvCmd::Put("k".into(), "v".into()))])
            .await
            .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let mut log = LogStore::new(store.clone());
    assert_eq!(log.read_vote().await.unwrap(), Some(openraft::Vote::new(3, 2)));
    let mut sm = StateMachine::new(store, Arc::new(Kv));
    assert_eq!(sm.applied_state().await.unwrap().0.unwrap().index, 1);
}
