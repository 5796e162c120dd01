//! Block volume delete on the nodes: `gluster-block delete` on the first cluster node that
//! can be reached (nodes the health monitor saw down last); a block volume or BHV already
//! gone counts as deleted. The state effects: `state::ops::block_delete`.

use hekate_raft::{StateReader, StoreError};

use crate::executor::{ExecResult, Executor};
use crate::ops::exec::Ctx;
use crate::ops::runner::Drive;
use crate::ops::step::{StepError, StepResult};
use crate::state;
use crate::state::model::ExecReport;
use crate::state::Command;

/// The block volume (`ctx.block`), its BHV (`ctx.volume`) and its cluster's nodes.
pub fn load(ctx: &mut Ctx, r: &impl StateReader, block: &str) -> Result<(), StoreError> {
    ctx.block = state::get_blockvolume(r, block)?;
    if let Some(b) = ctx.block.clone() {
        ctx.volume = state::get_volume(r, &b.bhv)?;
        ctx.add_cluster_nodes(r, &b.cluster)?;
    }
    Ok(())
}

pub async fn drive(d: &Drive<'_>) -> Option<Command> {
    let (exec, ctx) = (d.exec(), d.ctx);
    let Some(b) = &ctx.block else {
        return d.end(Ok(ExecReport::default()));
    };
    d.once(|| async move {
        on_one_host(exec, ctx, |host, bhv| async move {
            exec.block_delete(&host, &bhv, &b.name).await
        })
        .await
        .map(|()| ExecReport::default())
    })
    .await
}

/// Runs a gluster-block command (given the host and the BHV's name) on the first cluster
/// node that can be reached, best first, once that node says the Gluster volume of the
/// BHV's name is Hekate's BHV (its `user.heketi.id`; a volume of that name made outside
/// Hekate is left alone). A node that answered with a failure ends it: the failure is the
/// block volume's, not the node's.
pub(super) async fn on_one_host<F, Fut>(exec: &dyn Executor, ctx: &Ctx, f: F) -> StepResult<()>
where
    F: Fn(String, String) -> Fut,
    Fut: std::future::Future<Output = ExecResult<()>>,
{
    let Some(bhv) = &ctx.volume else {
        return Ok(()); // no block-hosting volume: nothing of the block volume is left
    };
    let mut last = StepError::Failed("No nodes in the block volume's cluster".into());
    for n in ctx.volume_hosts() {
        let host = n.manage_host().to_string();
        let owned = async {
            exec.volume_owner(&host, &bhv.name)
                .await?
                .check(&bhv.name, &bhv.id)?;
            f(host.clone(), bhv.name.clone()).await
        };
        match owned.await {
            Ok(()) => return Ok(()),
            Err(e) => last = StepError::from(e),
        }
        if !matches!(last, StepError::Unreachable(_)) {
            break;
        }
    }
    Err(last)
}
