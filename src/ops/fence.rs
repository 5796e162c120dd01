//! Fencing: the guarantee that a deposed leader never acts on the nodes. Every executor
//! verb the runner issues goes through [`Fenced`], which first asks the replica to confirm,
//! with a quorum, that it still leads in the term the operation started under
//! ([`hekate_raft::Replica::fence`]). A replica that lost the majority, was superseded, or
//! restarted believing an old vote gets no acknowledgement, so the verb is not sent; the
//! wrapper remembers that it tripped and the runner then leaves the operation, uncommitted,
//! to the current leader (which runs it again from the start; the verbs are idempotent).
//!
//! What remains: a verb already running on a node when leadership moves finishes there.
//! Followers do not elect a new leader within the election timeout of their last
//! acknowledgement, so a verb starts at most one election timeout after a confirmed quorum,
//! and the new leader's re-run converges with whatever the old verb did.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use crate::api::HekateReplica;
use std::collections::BTreeMap;

use crate::executor::{
    BrickSpec, DeviceInfo, ExecError, ExecResult, Executor, GlusterVolume, HealBrick, NodeInventory,
    VolumeOwner, VolumeSpec, TERM,
};

pub struct Fenced {
    inner: Arc<dyn Executor>,
    replica: HekateReplica,
    term: u64,
    tripped: AtomicBool,
    /// Some verb let through could not reach its node (the operation is worth another attempt).
    remote_failed: AtomicBool,
}

impl Fenced {
    /// Confirms leadership now; the operation then runs under the returned fence.
    pub async fn acquire(
        inner: Arc<dyn Executor>,
        replica: HekateReplica,
    ) -> Result<Fenced, hekate_raft::ReplicaError> {
        let term = replica.fence(None).await?;
        Ok(Fenced {
            inner,
            replica,
            term,
            tripped: AtomicBool::new(false),
            remote_failed: AtomicBool::new(false),
        })
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    /// Whether some verb was refused because leadership of `term` could not be confirmed.
    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }

    /// Whether a verb could not reach its node since the last call (and forgets it).
    pub fn take_remote_failure(&self) -> bool {
        self.remote_failed.swap(false, Ordering::SeqCst)
    }

    /// Runs one verb: confirmed leadership first, then the verb stamped with the term.
    async fn guard<T>(&self, verb: impl std::future::Future<Output = ExecResult<T>>) -> ExecResult<T> {
        self.check().await?;
        let out = TERM.scope(self.term, verb).await;
        // Only a lost node or connection is worth another attempt; a command that ran and
        // failed (no such device, no space, Gluster refusing) would fail the same way.
        if matches!(out, Err(ExecError::Unreachable { .. })) {
            self.remote_failed.store(true, Ordering::SeqCst);
        }
        out
    }

    async fn check(&self) -> ExecResult<()> {
        if self.tripped() {
            return Err(fenced(self.term, "an earlier step was fenced"));
        }
        match self.replica.fence(Some(self.term)).await {
            Ok(_) => Ok(()),
            Err(e) => {
                self.tripped.store(true, Ordering::SeqCst);
                tracing::warn!(term = self.term, "fenced: {e}");
                Err(fenced(self.term, &e.to_string()))
            }
        }
    }
}

fn fenced(term: u64, why: &str) -> ExecError {
    ExecError::Failed(format!(
        "not executed: leadership of term {term} not confirmed ({why})"
    ))
}

#[async_trait]
impl Executor for Fenced {
    async fn glusterd_check(&self, host: &str) -> ExecResult<()> {
        self.guard(self.inner.glusterd_check(host)).await
    }
    async fn peer_probe(&self, host: &str, new_peer: &str) -> ExecResult<()> {
        self.guard(self.inner.peer_probe(host, new_peer)).await
    }
    async fn peer_detach(&self, host: &str, peer: &str) -> ExecResult<()> {
        self.guard(self.inner.peer_detach(host, peer)).await
    }
    async fn device_setup(
        &self,
        host: &str,
        device: &str,
        vg: &str,
        destroydata: bool,
    ) -> ExecResult<DeviceInfo> {
        self.guard(self.inner.device_setup(host, device, vg, destroydata))
            .await
    }
    async fn device_teardown(&self, host: &str, device: &str, vg: &str) -> ExecResult<()> {
        self.guard(self.inner.device_teardown(host, device, vg)).await
    }
    async fn device_info(&self, host: &str, vg: &str) -> ExecResult<DeviceInfo> {
        self.guard(self.inner.device_info(host, vg)).await
    }
    async fn brick_create(&self, host: &str, brick: &BrickSpec) -> ExecResult<()> {
        self.guard(self.inner.brick_create(host, brick)).await
    }
    async fn brick_destroy(&self, host: &str, brick: &BrickSpec) -> ExecResult<bool> {
        self.guard(self.inner.brick_destroy(host, brick)).await
    }
    async fn volume_create(&self, host: &str, vol: &VolumeSpec) -> ExecResult<()> {
        self.guard(self.inner.volume_create(host, vol)).await
    }
    async fn volume_expand(&self, host: &str, vol: &VolumeSpec, new_bricks: &[String]) -> ExecResult<()> {
        self.guard(self.inner.volume_expand(host, vol, new_bricks)).await
    }
    async fn volume_destroy(&self, host: &str, name: &str, id: &str) -> ExecResult<()> {
        self.guard(self.inner.volume_destroy(host, name, id)).await
    }
    async fn volume_owner(&self, host: &str, name: &str) -> ExecResult<VolumeOwner> {
        self.guard(self.inner.volume_owner(host, name)).await
    }
    async fn replace_brick(&self, host: &str, volume: &str, old: &str, new: &str) -> ExecResult<()> {
        self.guard(self.inner.replace_brick(host, volume, old, new)).await
    }
    async fn volume_bricks(&self, host: &str, volume: &str) -> ExecResult<Vec<String>> {
        self.guard(self.inner.volume_bricks(host, volume)).await
    }
    async fn volume_clone(
        &self,
        host: &str,
        volume: &str,
        clone: &str,
        clone_id: &str,
    ) -> ExecResult<Vec<(String, String)>> {
        self.guard(self.inner.volume_clone(host, volume, clone, clone_id))
            .await
    }
    async fn heal_info(&self, host: &str, volume: &str) -> ExecResult<Vec<HealBrick>> {
        self.guard(self.inner.heal_info(host, volume)).await
    }
    async fn inventory(&self, host: &str) -> ExecResult<NodeInventory> {
        self.guard(self.inner.inventory(host)).await
    }
    async fn volumes(&self, host: &str) -> ExecResult<BTreeMap<String, GlusterVolume>> {
        self.guard(self.inner.volumes(host)).await
    }
}
