//! Device add on its node: the PV and VG are set up, and LVM's sizes reported. The state
//! effects: `state::ops::device_add`.

use crate::executor::Executor;
use crate::ops::runner::Drive;
use crate::ops::step::StepResult;
use crate::state::model::{DeviceEntry, ExecReport};
use crate::state::Command;

pub async fn drive(d: &Drive<'_>, device: &DeviceEntry, host: &str, destroydata: bool) -> Option<Command> {
    d.once(|| run(d.exec(), device, host, destroydata)).await
}

async fn run(
    exec: &dyn Executor,
    device: &DeviceEntry,
    host: &str,
    destroydata: bool,
) -> StepResult<ExecReport> {
    let info = exec
        .device_setup(host, &device.name, &device.vg(), destroydata)
        .await?;
    Ok(ExecReport {
        device_total: Some(info.total_kib),
        device_extent: Some(info.extent_kib),
        device_used: Some(info.used_kib),
        pv_uuid: Some(info.pv_uuid),
        paths: info.paths,
        ..Default::default()
    })
}
