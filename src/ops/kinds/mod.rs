//! The steps of each operation kind on the nodes, one module per kind beside its state
//! effects in `state::ops` (same names): what a kind loads from the state before its steps
//! run (`load`), the steps themselves (`run`), and how the runner runs them (`drive`: with
//! retries, or step by step for the kinds with a point of no return). The dispatches here
//! are one line per kind; what several kinds share (the brick
//! and volume specs, brick creation and destruction, reading Gluster back) is in
//! [`super::exec`], and what they may ask of the runner (retries, committing a step) in
//! [`super::runner::Drive`].

mod block_create;
mod block_delete;
mod block_expand;
mod device_add;
mod device_delete;
mod device_resync;
mod device_state;
mod evict;
mod node_add;
mod node_delete;
mod node_health;
mod node_state;
mod volume_clone;
mod volume_create;
mod volume_delete;
mod volume_expand;

use hekate_raft::{StateReader, StoreError};

use super::exec::Ctx;
use super::runner::Drive;
use crate::state::model::{ExecReport, OpPlan, Operation};
use crate::state::Command;

/// What the operation's steps need from the state, read from one consistent view.
pub fn load(r: &impl StateReader, op: &Operation) -> Result<Ctx, StoreError> {
    let mut ctx = Ctx::default();
    let c = &mut ctx;
    match &op.plan {
        OpPlan::NodeDelete { node, .. } | OpPlan::NodeState { node, .. } => c.add_node(r, node)?,
        OpPlan::NodeHealth { node } => c.add_node(r, node)?,
        OpPlan::DeviceDelete { device, .. } | OpPlan::DeviceState { device, .. } => {
            c.add_device(r, device)?
        }
        OpPlan::VolumeCreate { volume, bricks } => volume_create::load(c, r, volume, bricks)?,
        OpPlan::VolumeDelete { volume } => volume_delete::load(c, r, volume)?,
        OpPlan::VolumeExpand { volume, bricks, .. } => volume_expand::load(c, r, volume, bricks)?,
        OpPlan::Evict { evictions, .. } => evict::load(c, r, evictions)?,
        OpPlan::VolumeClone { source, .. } => volume_clone::load(c, r, source)?,
        OpPlan::BlockVolumeCreate {
            block,
            new_bhv,
            bricks,
            ..
        } => block_create::load(c, r, block, new_bhv.as_deref(), bricks)?,
        OpPlan::BlockVolumeDelete { block } => block_delete::load(c, r, block)?,
        OpPlan::BlockVolumeExpand { block, .. } => block_expand::load(c, r, block)?,
        OpPlan::NodeAdd { .. }
        | OpPlan::DeviceAdd { .. }
        | OpPlan::DeviceResync { .. }
        | OpPlan::VolumeRestriction { .. }
        | OpPlan::Cleanup => {}
    }
    Ok(ctx)
}

/// Runs the operation's steps under the runner's fence and retries; the command that ends
/// it, or None to leave it pending for the current leader.
pub async fn drive(d: &Drive<'_>) -> Option<Command> {
    match &d.op.plan {
        OpPlan::NodeAdd { node, probe_from } => node_add::drive(d, node, probe_from.as_deref()).await,
        OpPlan::NodeDelete { node, detach_from } => node_delete::drive(d, node, detach_from.as_deref()).await,
        OpPlan::NodeState { node, state } => node_state::drive(d, node, state).await,
        OpPlan::DeviceAdd {
            device,
            host,
            destroydata,
        } => device_add::drive(d, device, host, *destroydata).await,
        OpPlan::DeviceDelete { device, host, forget } => device_delete::drive(d, device, host, *forget).await,
        OpPlan::DeviceState { device, state } => device_state::drive(d, device, state).await,
        OpPlan::DeviceResync { device, host } => device_resync::drive(d, device, host).await,
        OpPlan::VolumeCreate { volume, bricks } => volume_create::drive(d, volume, bricks).await,
        OpPlan::VolumeDelete { .. } => volume_delete::drive(d).await,
        OpPlan::VolumeExpand { bricks, .. } => volume_expand::drive(d, bricks).await,
        OpPlan::Evict {
            evictions, healcheck, ..
        } => evict::drive(d, evictions, *healcheck).await,
        OpPlan::VolumeClone { clone, .. } => volume_clone::drive(d, clone).await,
        OpPlan::NodeHealth { node } => node_health::drive(d, node).await,
        OpPlan::BlockVolumeCreate {
            block,
            new_bhv,
            prealloc,
            ..
        } => block_create::drive(d, block, new_bhv.as_deref(), *prealloc).await,
        OpPlan::BlockVolumeDelete { .. } => block_delete::drive(d).await,
        OpPlan::BlockVolumeExpand { new_size, .. } => block_expand::drive(d, *new_size).await,
        // Nothing to do on the nodes.
        OpPlan::VolumeRestriction { .. } | OpPlan::Cleanup => d.end(Ok(ExecReport::default())),
    }
}
