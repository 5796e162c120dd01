//! Device delete on its node: the VG and PV are torn down (`forget`: a failure is ignored).
//! The state effects: `state::ops::device_delete`.

use crate::executor::Executor;
use crate::ops::exec::Ctx;
use crate::ops::runner::Drive;
use crate::ops::step::StepResult;
use crate::state::model::ExecReport;
use crate::state::Command;

pub async fn drive(d: &Drive<'_>, device: &str, host: &str, forget: bool) -> Option<Command> {
    d.once(|| run(d.exec(), d.ctx, device, host, forget)).await
}

async fn run(
    exec: &dyn Executor,
    ctx: &Ctx,
    device: &str,
    host: &str,
    forget: bool,
) -> StepResult<ExecReport> {
    let name = ctx.device_name.clone().unwrap_or_default();
    match exec.device_teardown(host, &name, &format!("vg_{device}")).await {
        Err(e) if !forget => Err(e.into()),
        _ => Ok(ExecReport::default()),
    }
}
