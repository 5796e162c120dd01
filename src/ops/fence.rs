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
use crate::executor::{BrickSpec, DeviceInfo, ExecError, ExecResult, Executor, VolumeSpec};

pub struct Fenced {
    inner: Arc<dyn Executor>,
    replica: HekateReplica,
    term: u64,
    tripped: AtomicBool,
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
        })
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    /// Whether some verb was refused because leadership of `term` could not be confirmed.
    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
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
        self.check().await?;
        self.inner.glusterd_check(host).await
    }
    async fn peer_probe(&self, host: &str, new_peer: &str) -> ExecResult<()> {
        self.check().await?;
        self.inner.peer_probe(host, new_peer).await
    }
    async fn peer_detach(&self, host: &str, peer: &str) -> ExecResult<()> {
        self.check().await?;
        self.inner.peer_detach(host, peer).await
    }
    async fn device_setup(
        &self,
        host: &str,
        device: &str,
        vg: &str,
        destroydata: bool,
    ) -> ExecResult<DeviceInfo> {
        self.check().await?;
        self.inner.device_setup(host, device, vg, destroydata).await
    }
    async fn device_teardown(&self, host: &str, device: &str, vg: &str) -> ExecResult<()> {
        self.check().await?;
        self.inner.device_teardown(host, device, vg).await
    }
    async fn device_info(&self, host: &str, vg: &str) -> ExecResult<DeviceInfo> {
        self.check().await?;
        self.inner.device_info(host, vg).await
    }
    async fn brick_create(&self, host: &str, brick: &BrickSpec) -> ExecResult<()> {
        self.check().await?;
        self.inner.brick_create(host, brick).await
    }
    async fn brick_destroy(&self, host: &str, brick: &BrickSpec) -> ExecResult<bool> {
        self.check().await?;
        self.inner.brick_destroy(host, brick).await
    }
    async fn volume_create(&self, host: &str, vol: &VolumeSpec) -> ExecResult<()> {
        self.check().await?;
        self.inner.volume_create(host, vol).await
    }
    async fn volume_expand(&self, host: &str, vol: &VolumeSpec, new_bricks: &[String]) -> ExecResult<()> {
        self.check().await?;
        self.inner.volume_expand(host, vol, new_bricks).await
    }
    async fn volume_destroy(&self, host: &str, name: &str) -> ExecResult<()> {
        self.check().await?;
        self.inner.volume_destroy(host, name).await
    }
    async fn replace_brick(&self, host: &str, volume: &str, old: &str, new: &str) -> ExecResult<()> {
        self.check().await?;
        self.inner.replace_brick(host, volume, old, new).await
    }
    async fn volume_bricks(&self, host: &str, volume: &str) -> ExecResult<Vec<String>> {
        self.check().await?;
        self.inner.volume_bricks(host, volume).await
    }
    async fn volume_clone(&self, host: &str, volume: &str, clone: &str) -> ExecResult<Vec<(String, String)>> {
        self.check().await?;
        self.inner.volume_clone(host, volume, clone).await
    }
}
