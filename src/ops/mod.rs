//! Operations: a new one's record ([`intent`]), and after it is accepted, the leader-only
//! [`runner`] that finds pending operations in the replicated state, executes their remote
//! steps through the [`crate::executor`] ([`exec`]) behind the leadership [`fence`], and
//! commits the result (finish, or fail after cleaning up on the nodes).

pub mod exec;
pub mod failpoint;
pub mod fence;
pub mod format;
pub mod health;
pub mod intent;
pub mod kinds;
pub mod plan;
pub mod runner;
pub mod step;

pub use intent::{new_op, planned_brick};
