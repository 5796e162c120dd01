//! A new operation record: the intent that a handler (volume create, device remove, ...) or
//! reconcile's repair commits with `OpBegin`, before the runner takes it up. Here, beside the
//! runner that executes operations, rather than in one of the handlers that start them.

use crate::allocator::Planned;
use crate::ids;
use crate::state::model::{BrickEntry, OpKind, OpPlan, OpStatus, Operation, SUBTYPE_ARBITER, SUBTYPE_NORMAL};

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

/// The record of a brick the allocator placed, for operation `op`: a fresh id, and its path
/// named as Heketi names it (`/var/lib/heketi/mounts/vg_<device>/brick_<id>/brick`). One
/// place for volume create, expand and brick replacement alike.
pub fn planned_brick(p: Planned, volume: &str, op: &str) -> BrickEntry {
    let id = ids::new_id();
    BrickEntry {
        path: format!("/var/lib/heketi/mounts/vg_{}/brick_{id}/brick", p.device),
        id,
        device: p.device,
        node: p.node,
        volume: volume.to_string(),
        size: p.size,
        tp_size: p.tp_size,
        pool_metadata_size: p.meta_size,
        subtype: if p.arbiter {
            SUBTYPE_ARBITER
        } else {
            SUBTYPE_NORMAL
        },
        pending: Some(op.to_string()),
        lvm_thin_pool: None,
        lvm_lv: None,
        pool_shared: false,
    }
}
