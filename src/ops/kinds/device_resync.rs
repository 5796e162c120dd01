//! Device resync on its node: LVM's sizes are read again. The state effects:
//! `state::ops::device_resync`.

use crate::executor::Executor;
use crate::ops::runner::Drive;
use crate::ops::step::StepResult;
use crate::state::model::ExecReport;
use crate::state::Command;

pub async fn drive(d: &Drive<'_>, device: &str, host: &str) -> Option<Command> {
    d.once(|| run(d.exec(), device, host)).await
}

async fn run(exec: &dyn Executor, device: &str, host: &str) -> StepResult<ExecReport> {
    let info = exec.device_info(host, &format!("vg_{device}")).await?;
    Ok(ExecReport {
        device_total: Some(info.total_kib),
        device_used: Some(info.used_kib),
        device_extent: Some(info.extent_kib),
        ..Default::default()
    })
}
