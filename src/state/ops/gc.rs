//! Queue retention: forgetting finished operation records, by age (`OpGc`, earlier builds'
//! command, kept so that their logs apply identically) and by age and count (`OpGcBounded`).

use hekate_raft::{StateReader, Txn};

use super::super::command::Outcome;
use super::super::keys;
use super::super::model::{OpStatus, Operation};
use super::R;

/// Forgets finished operations that ended before `before` (the command of earlier builds:
/// reads every operation record; kept so that their logs apply identically).
pub fn gc(before: u64, txn: &mut Txn<'_>) -> R {
    for (k, v) in txn.scan_prefix(keys::OP_PREFIX)? {
        let op: Operation = super::super::record::decode(&v)?;
        if op.status != OpStatus::Pending && op.finished.is_some_and(|f| f < before) {
            txn.delete(k);
            if let Some(f) = op.finished {
                txn.delete(keys::op_done(f, &op.id));
            }
        }
    }
    Ok(Outcome::Done)
}

/// Forgets finished operations that ended before `before`, and the oldest beyond the newest
/// `keep`, oldest first (by finish time, then id). Reads only the `od/` index keys, not the
/// records; the first run on a store written by an earlier build indexes its finished
/// operations once.
pub fn gc_bounded(before: u64, keep: u64, txn: &mut Txn<'_>) -> R {
    if txn.get(keys::OP_INDEX_MARK)?.is_none() {
        for (_, v) in txn.scan_prefix(keys::OP_PREFIX)? {
            let op: Operation = super::super::record::decode(&v)?;
            if let (true, Some(f)) = (op.status != OpStatus::Pending, op.finished) {
                txn.put(keys::op_done(f, &op.id), Vec::new());
            }
        }
        txn.put(keys::OP_INDEX_MARK.to_vec(), Vec::new());
    }
    let index = txn.scan_prefix(keys::OP_DONE_PREFIX)?;
    let total = index.len() as u64;
    for (i, (k, _)) in index.into_iter().enumerate() {
        let Some((finished, id)) = keys::parse_op_done(&k) else {
            txn.delete(k);
            continue;
        };
        let over_count = total - i as u64 > keep;
        if !(over_count || finished < before) {
            // Sorted by age: every later entry is newer and within the count.
            break;
        }
        txn.delete(keys::op(&id));
        txn.delete(k);
    }
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use hekate_raft::db::CF_SM_DATA;

    use super::super::super::model::{ExecReport, OpKind, OpPlan, OpStatus, Operation};
    use super::super::super::{keys, Command};
    use hekate_raft::StateReader;

    use super::super::testing::Sm;

    impl Sm {
        /// Begins and finishes operation `i` at time `t`.
        async fn finished_op(&mut self, i: u32, t: u64) {
            let id = format!("{i:032x}");
            let op = Operation {
                id: id.clone(),
                kind: OpKind::NodeAdd,
                created: t,
                finished: None,
                status: OpStatus::Pending,
                by_user: false,
                plan: OpPlan::Cleanup,
                location: None,
                error: None,
                progress: 0,
            };
            self.apply(Command::OpBegin { op: Box::new(op) }).await;
            self.apply(Command::OpFinish {
                id,
                report: ExecReport::default(),
                now: t,
            })
            .await;
        }

        fn op_ids(&self) -> Vec<u32> {
            let view = hekate_raft::app::View::new(&self.store);
            view.scan_prefix(keys::OP_PREFIX)
                .unwrap()
                .iter()
                .map(|(k, _)| u32::from_str_radix(&keys::id_of(keys::OP_PREFIX, k), 16).unwrap())
                .collect()
        }
    }

    #[tokio::test]
    async fn bounded_gc_keeps_the_newest_by_count_and_drops_the_old_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = Sm::new(dir.path());
        for i in 0..10 {
            // Finish times out of id order: 9, 8, ..., 0 seconds after 100.
            sm.finished_op(i, 109 - u64::from(i)).await;
        }
        sm.apply(Command::OpGcBounded { before: 0, keep: 4 }).await;
        let mut left = sm.op_ids();
        left.sort();
        assert_eq!(
            left,
            vec![0, 1, 2, 3],
            "the four finished last (ids 0..3) are kept"
        );
        sm.apply(Command::OpGcBounded {
            before: 108,
            keep: 100,
        })
        .await;
        assert_eq!(
            sm.op_ids(),
            vec![0, 1],
            "finished at 109 and 108: the only ones not before 108"
        );
        sm.apply(Command::OpGcBounded { before: 0, keep: 0 }).await;
        assert!(sm.op_ids().is_empty());
    }

    #[tokio::test]
    async fn a_store_without_the_index_is_indexed_once_and_pending_ops_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = Sm::new(dir.path());
        for i in 0..6 {
            sm.finished_op(i, 100 + u64::from(i)).await;
        }
        // One pending operation, never collected.
        let pending = Operation {
            id: format!("{:032x}", 99),
            kind: OpKind::NodeAdd,
            created: 1,
            finished: None,
            status: OpStatus::Pending,
            by_user: false,
            plan: OpPlan::Cleanup,
            location: None,
            error: None,
            progress: 0,
        };
        sm.apply(Command::OpBegin {
            op: Box::new(pending),
        })
        .await;
        // An earlier build's store: records without `od/` keys.
        let cf = sm.store.cf(CF_SM_DATA);
        for i in 0..6u64 {
            sm.store
                .db
                .delete_cf(cf, keys::op_done(100 + i, &format!("{i:032x}")))
                .unwrap();
        }
        sm.apply(Command::OpGcBounded { before: 0, keep: 2 }).await;
        let mut left = sm.op_ids();
        left.sort();
        assert_eq!(left, vec![4, 5, 99]);
        // The earlier command still works and also drops the index entries.
        sm.apply(Command::OpGc { before: 1000 }).await;
        assert_eq!(sm.op_ids(), vec![99]);
        let view = hekate_raft::app::View::new(&sm.store);
        assert!(view.scan_prefix(keys::OP_DONE_PREFIX).unwrap().is_empty());
    }
}
