//! Node health probe on the node: its glusterd must answer. The state effects:
//! `state::ops::node_health`.

use crate::executor::Executor;
use crate::ops::exec::Ctx;
use crate::ops::runner::Drive;
use crate::ops::step::StepResult;
use crate::state::model::ExecReport;
use crate::state::Command;

pub async fn drive(d: &Drive<'_>, node: &str) -> Option<Command> {
    d.once(|| run(d.exec(), d.ctx, node)).await
}

async fn run(exec: &dyn Executor, ctx: &Ctx, node: &str) -> StepResult<ExecReport> {
    exec.glusterd_check(&ctx.manage(node)).await?;
    Ok(ExecReport::default())
}
