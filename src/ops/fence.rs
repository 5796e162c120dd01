//! Fencing: the guarantee that a deposed leader never acts on the nodes. It has two parts.
//!
//! On the leader, an operation starts under [`Fenced::acquire`]: the replica leads, has
//! committed an entry of its term and heard from a quorum within half the check-quorum bound
//! ([`hekate_raft::Replica::fence_lease`]), or else confirms it with a quorum round trip
//! ([`hekate_raft::Replica::fence`]): a replica that lost the majority, was superseded, or
//! restarted believing an old vote gets no acknowledgement and runs nothing. Every verb then checks locally, without a round trip,
//! that it still leads in that term and has heard from a quorum within half the check-quorum
//! bound ([`hekate_raft::Replica::fence_local`]): a leader that knows it is cut off stops.
//!
//! On the node, every command carries a fencing token (the Raft group's identity and the
//! term, [`FenceToken`]); the node's guard keeps the highest term it has seen per identity,
//! durably, and refuses older ones (`deploy/node/hekate-guard`; the mock models it). A new
//! leader claims every node before it runs anything (`Runner::claim_nodes`), and a claim
//! waits for older terms' commands still running there. So a verb already sent when
//! leadership moved, or one sent by a process that stalled between its quorum check and its
//! send, is refused by the node once the new leader has been there. A refusal trips the
//! fence: the runner stops and commits nothing, and the current leader resumes the
//! operation (its verbs are idempotent). The whole argument: docs/design/operations.md.
//!
//! Only this module sets the token ([`FENCE`] is crate-private and scoped here), and the
//! executors refuse a verb without one, so an executor call that bypasses the fence fails.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use crate::state::HekateReplica;
use std::collections::BTreeMap;

use crate::executor::{
    BlockSpec, BlockTarget, BrickSpec, DeviceInfo, ExecError, ExecResult, Executor, FenceToken,
    GlusterVolume, HealBrick, NodeInventory, VolumeOwner, VolumeSpec, FENCE,
};
use crate::ops::failpoint::Failpoints;

pub struct Fenced {
    inner: Arc<dyn Executor>,
    replica: HekateReplica,
    token: FenceToken,
    tripped: AtomicBool,
    /// Some verb let through could not reach its node (the operation is worth another attempt).
    remote_failed: AtomicBool,
    failpoints: Option<Arc<Failpoints>>,
}

impl Fenced {
    /// Confirms leadership now; the operation then runs under the returned fence. Fails
    /// until the group's identity is set (its first leader sets it, `Runner`).
    pub async fn acquire(
        inner: Arc<dyn Executor>,
        replica: HekateReplica,
    ) -> Result<Fenced, hekate_raft::ReplicaError> {
        // Within the lease (a quorum heard within half the check-quorum bound, as every verb
        // checks) no round trip is needed: the nodes' guard is what keeps a deposed leader
        // off them (docs/design/operations.md, "Fencing"). Outside it, confirm with one.
        let term = match replica.fence_lease() {
            Some(term) => term,
            None => replica.fence(None).await?,
        };
        let cluster = replica
            .read(|v| crate::state::identity(v))
            .map_err(|e| hekate_raft::ReplicaError::Unavailable(e.to_string()))?
            .ok_or_else(|| {
                hekate_raft::ReplicaError::Unavailable(
                    "the cluster's identity is not set yet (its leader sets it first)".into(),
                )
            })?;
        Ok(Fenced {
            inner,
            replica,
            token: FenceToken { cluster, term },
            tripped: AtomicBool::new(false),
            remote_failed: AtomicBool::new(false),
            failpoints: None,
        })
    }

    /// Drills: the runner's failpoints (a stall between the fence check and the send).
    pub fn with_failpoints(mut self, failpoints: Arc<Failpoints>) -> Fenced {
        self.failpoints = Some(failpoints);
        self
    }

    pub fn term(&self) -> u64 {
        self.token.term
    }

    pub fn token(&self) -> &FenceToken {
        &self.token
    }

    /// Whether some verb was refused because leadership of `term` could not be confirmed,
    /// here or by a node's guard.
    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }

    /// Whether a verb could not reach its node since the last call (and forgets it).
    pub fn take_remote_failure(&self) -> bool {
        self.remote_failed.swap(false, Ordering::SeqCst)
    }

    /// Runs one verb: confirmed leadership first, then the verb stamped with the token.
    async fn guard<T>(
        &self,
        name: &str,
        verb: impl std::future::Future<Output = ExecResult<T>>,
    ) -> ExecResult<T> {
        self.check().await?;
        if let Some(fp) = &self.failpoints {
            fp.before_send(name, self.token.term).await;
        }
        let out = FENCE.scope(self.token.clone(), verb).await;
        self.note(name, &out);
        out
    }

    /// What a verb's result says about the nodes and the fence.
    fn note<T>(&self, name: &str, out: &ExecResult<T>) {
        match out {
            // Only a lost node or connection is worth another attempt; a command that ran
            // and failed (no such device, no space, Gluster refusing) would fail the same way.
            Err(ExecError::Unreachable { .. }) => self.remote_failed.store(true, Ordering::SeqCst),
            Err(ExecError::Fenced(why)) => {
                self.tripped.store(true, Ordering::SeqCst);
                tracing::warn!(term = self.token.term, verb = name, "fenced by a node: {why}");
            }
            _ => {}
        }
    }

    /// [`Fenced::guard`] for a round of one verb on several nodes sent together: one
    /// leadership check for the round (its verbs leave at the same moment), each verb's
    /// failpoint, then every result classified as `guard` does.
    async fn guard_all<T>(
        &self,
        name: &str,
        n: usize,
        verbs: impl std::future::Future<Output = Vec<ExecResult<T>>>,
    ) -> Vec<ExecResult<T>> {
        if let Err(e) = self.check().await {
            return (0..n).map(|_| Err(e.clone())).collect();
        }
        if let Some(fp) = &self.failpoints {
            futures::future::join_all((0..n).map(|_| fp.before_send(name, self.token.term))).await;
        }
        let out = FENCE.scope(self.token.clone(), verbs).await;
        out.iter().for_each(|r| self.note(name, r));
        out
    }

    async fn check(&self) -> ExecResult<()> {
        if self.tripped() {
            return Err(fenced(self.token.term, "an earlier step was fenced"));
        }
        match self.replica.fence_local(self.token.term) {
            Ok(_) => Ok(()),
            Err(e) => {
                self.tripped.store(true, Ordering::SeqCst);
                tracing::warn!(term = self.token.term, "fenced: {e}");
                Err(fenced(self.token.term, &e.to_string()))
            }
        }
    }
}

fn fenced(term: u64, why: &str) -> ExecError {
    ExecError::Fenced(format!(
        "not executed: leadership of term {term} not confirmed ({why})"
    ))
}

#[async_trait]
impl Executor for Fenced {
    async fn claim(&self, host: &str) -> ExecResult<()> {
        self.guard("claim", self.inner.claim(host)).await
    }
    async fn glusterd_check(&self, host: &str) -> ExecResult<()> {
        self.guard("glusterd_check", self.inner.glusterd_check(host))
            .await
    }
    async fn peer_probe(&self, host: &str, new_peer: &str) -> ExecResult<()> {
        self.guard("peer_probe", self.inner.peer_probe(host, new_peer))
            .await
    }
    async fn peer_detach(&self, host: &str, peer: &str) -> ExecResult<()> {
        self.guard("peer_detach", self.inner.peer_detach(host, peer))
            .await
    }
    async fn device_setup(
        &self,
        host: &str,
        device: &str,
        vg: &str,
        destroydata: bool,
    ) -> ExecResult<DeviceInfo> {
        self.guard(
            "device_setup",
            self.inner.device_setup(host, device, vg, destroydata),
        )
        .await
    }
    async fn device_teardown(&self, host: &str, device: &str, vg: &str) -> ExecResult<()> {
        self.guard("device_teardown", self.inner.device_teardown(host, device, vg))
            .await
    }
    async fn device_info(&self, host: &str, vg: &str) -> ExecResult<DeviceInfo> {
        self.guard("device_info", self.inner.device_info(host, vg)).await
    }
    async fn brick_create(&self, host: &str, brick: &BrickSpec) -> ExecResult<()> {
        self.guard("brick_create", self.inner.brick_create(host, brick))
            .await
    }
    async fn brick_destroy(&self, host: &str, brick: &BrickSpec) -> ExecResult<bool> {
        self.guard("brick_destroy", self.inner.brick_destroy(host, brick))
            .await
    }
    async fn brick_create_all(&self, bricks: &[(String, BrickSpec)]) -> Vec<ExecResult<()>> {
        self.guard_all("brick_create", bricks.len(), self.inner.brick_create_all(bricks))
            .await
    }
    async fn brick_destroy_all(&self, bricks: &[(String, BrickSpec)]) -> Vec<ExecResult<bool>> {
        self.guard_all(
            "brick_destroy",
            bricks.len(),
            self.inner.brick_destroy_all(bricks),
        )
        .await
    }
    async fn volume_create(&self, host: &str, vol: &VolumeSpec) -> ExecResult<()> {
        self.guard("volume_create", self.inner.volume_create(host, vol))
            .await
    }
    async fn volume_expand(&self, host: &str, vol: &VolumeSpec, new_bricks: &[String]) -> ExecResult<()> {
        self.guard("volume_expand", self.inner.volume_expand(host, vol, new_bricks))
            .await
    }
    async fn volume_destroy(&self, host: &str, name: &str, id: &str) -> ExecResult<()> {
        self.guard("volume_destroy", self.inner.volume_destroy(host, name, id))
            .await
    }
    async fn volume_owner(&self, host: &str, name: &str) -> ExecResult<VolumeOwner> {
        self.guard("volume_owner", self.inner.volume_owner(host, name))
            .await
    }
    async fn replace_brick(&self, host: &str, volume: &str, old: &str, new: &str) -> ExecResult<()> {
        self.guard("replace_brick", self.inner.replace_brick(host, volume, old, new))
            .await
    }
    async fn volume_bricks(&self, host: &str, volume: &str) -> ExecResult<Vec<String>> {
        self.guard("volume_bricks", self.inner.volume_bricks(host, volume))
            .await
    }
    async fn volume_clone(
        &self,
        host: &str,
        volume: &str,
        clone: &str,
        clone_id: &str,
    ) -> ExecResult<Vec<(String, String)>> {
        self.guard(
            "volume_clone",
            self.inner.volume_clone(host, volume, clone, clone_id),
        )
        .await
    }
    async fn heal_info(&self, host: &str, volume: &str) -> ExecResult<Vec<HealBrick>> {
        self.guard("heal_info", self.inner.heal_info(host, volume)).await
    }
    async fn inventory(&self, host: &str) -> ExecResult<NodeInventory> {
        self.guard("inventory", self.inner.inventory(host)).await
    }
    async fn volumes(&self, host: &str) -> ExecResult<BTreeMap<String, GlusterVolume>> {
        self.guard("volumes", self.inner.volumes(host)).await
    }
    async fn block_create(&self, host: &str, spec: &BlockSpec) -> ExecResult<BlockTarget> {
        self.guard("block_create", self.inner.block_create(host, spec))
            .await
    }
    async fn block_info(&self, host: &str, bhv: &str, name: &str) -> ExecResult<Option<BlockTarget>> {
        self.guard("block_info", self.inner.block_info(host, bhv, name))
            .await
    }
    async fn block_modify(&self, host: &str, bhv: &str, name: &str, size_gib: u64) -> ExecResult<()> {
        self.guard("block_modify", self.inner.block_modify(host, bhv, name, size_gib))
            .await
    }
    async fn block_delete(&self, host: &str, bhv: &str, name: &str) -> ExecResult<()> {
        self.guard("block_delete", self.inner.block_delete(host, bhv, name))
            .await
    }
    async fn block_list(&self, host: &str, bhv: &str) -> ExecResult<Vec<String>> {
        self.guard("block_list", self.inner.block_list(host, bhv)).await
    }
}

#[cfg(test)]
mod tests {
    /// The lint behind "no unfenced executor call": outside tests, only this module sets the
    /// fencing token, only the SSH transport sends with an explicit one, and nothing acts as
    /// a node's operator (the mock's bypass of its guard). Every other path to a node goes
    /// through `Fenced`, and the executors refuse a verb without a token at run time.
    #[test]
    fn only_the_fence_sets_the_token() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                // Production code only: what precedes the file's test module.
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                let rel = path.strip_prefix(&root).unwrap().display().to_string();
                let allowed: &[(&str, &str)] = &[
                    ("FENCE.scope(", "ops/fence.rs"),
                    ("run_as(", "executor/ssh.rs"),
                    ("batch_as(", "executor/ssh.rs"),
                    ("as_operator(", "executor/mock.rs"),
                ];
                for (needle, home) in allowed {
                    if code.contains(needle) && rel != *home {
                        offenders.push(format!("{rel}: {needle}"));
                    }
                }
            }
        }
        assert!(offenders.is_empty(), "unfenced paths to a node: {offenders:?}");
    }
}
