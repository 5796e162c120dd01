//! Block volume expand on the nodes: `gluster-block modify ... size` to the new size on the
//! first cluster node that can be reached. Growing to a size already reached converges, so a
//! new leader simply runs it again. The state effects: `state::ops::block_expand`.

use crate::executor::Executor;
use crate::ops::runner::Drive;
use crate::state::model::ExecReport;
use crate::state::Command;

pub use super::block_delete::load;

pub async fn drive(d: &Drive<'_>, new_size: u64) -> Option<Command> {
    let (exec, ctx) = (d.exec(), d.ctx);
    let Some(b) = &ctx.block else {
        return d.end(Err("Id not found".into()));
    };
    d.once(|| async move {
        super::block_delete::on_one_host(exec, ctx, |host, bhv| async move {
            exec.block_modify(&host, &bhv, &b.name, new_size).await
        })
        .await
        .map(|()| ExecReport::default())
    })
    .await
}
