//! A new operation record: the intent that a handler (volume create, device remove, ...) or
//! reconcile's repair commits with `OpBegin`, before the runner takes it up. Here, beside the
//! runner that executes operations, rather than in one of the handlers that start them.

use crate::ids;
use crate::state::model::{OpKind, OpPlan, OpStatus, Operation};

/// A pending operation for `plan`, with a fresh id and the proposer's clock.
pub fn new_op(kind: OpKind, plan: OpPlan, by_user: bool) -> Operation {
    Operation {
        id: ids::new_id(),
        kind,
        created: crate::clock::now_secs(),
        finished: None,
        status: OpStatus::Pending,
        by_user,
        plan,
        location: None,
        error: None,
        progress: 0,
    }
}
