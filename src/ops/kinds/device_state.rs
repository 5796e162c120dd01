//! Device state change: no node is touched; the step checks the transition against Heketi's
//! device state table (spec 1.4). The state effects: `state::ops::device_state`.

use crate::ops::exec::Ctx;
use crate::ops::step::{StepError, StepResult};
use crate::state::model::ExecReport;

pub fn run(ctx: &Ctx, device: &str, to: &str) -> StepResult<ExecReport> {
    let from = ctx.device_state.as_deref().unwrap_or("online");
    let refuse = |m: String| Err(StepError::Failed(m));
    match (from, to) {
        (a, b) if a == b => Ok(()),
        ("online", "offline") | ("offline", "online") | ("failed", "offline") => Ok(()),
        ("online", "failed") => refuse(format!(
            "Device must be offline before remove operation is performed, device:{device}"
        )),
        ("offline", "failed") if ctx.device_bricks == 0 => Ok(()),
        ("offline", "failed") => refuse(format!(
            "Unable to delete device [{device}]: it holds bricks; retry"
        )),
        ("failed", "online") => refuse("Cannot move a failed/removed device to online state".into()),
        _ => refuse(format!("invalid state transition {from} -> {to}")),
    }
    .map(|()| ExecReport::default())
}
