//! Device state change: no node is touched; the step checks the transition against Heketi's
//! device state table (spec 1.4). The state effects: `state::ops::device_state`.

use crate::ops::exec::Ctx;
use crate::ops::runner::Drive;
use crate::ops::step::{StepError, StepResult};
use crate::state::model::{EntryState, ExecReport};
use crate::state::Command;

pub async fn drive(d: &Drive<'_>, device: &str, to: &str) -> Option<Command> {
    d.once(|| async { run(d.ctx, device, to) }).await
}

fn run(ctx: &Ctx, device: &str, to: &str) -> StepResult<ExecReport> {
    use EntryState::{Failed, Offline, Online};
    let from = ctx.device_state.clone().unwrap_or(Online);
    let to = EntryState::parse(to);
    let refuse = |m: String| Err(StepError::Failed(m));
    match (&from, &to) {
        (a, b) if a == b => Ok(()),
        (Online, Offline) | (Offline, Online) | (Failed, Offline) => Ok(()),
        (Online, Failed) => refuse(format!(
            "Device must be offline before remove operation is performed, device:{device}"
        )),
        (Offline, Failed) if ctx.device_bricks == 0 => Ok(()),
        (Offline, Failed) => refuse(format!(
            "Unable to delete device [{device}]: it holds bricks; retry"
        )),
        (Failed, Online) => refuse("Cannot move a failed/removed device to online state".into()),
        _ => refuse(format!("invalid state transition {from} -> {to}")),
    }
    .map(|()| ExecReport::default())
}
