//! The leader-only runner: while this replica leads, every pending operation in the
//! replicated state is executed once per leadership, its result committed as `OpFinish` or
//! `OpFail`. A new leader finds the operations its predecessor left pending and runs them
//! again from the start (their steps are idempotent). Every step is fenced (`fence`): sent
//! only after a quorum confirmed this replica still leads in the operation's term, and
//! carrying the term to the node's guard.
//!
//! At the start of each term the runner sets the group's identity if it has none (the first
//! leader) and claims every node (the guard records the new term there, so the previous
//! leader's late commands are refused). An operation's end is committed only after that
//! claim round: the end frees names and space, and a node not yet claimed could still run a
//! deposed leader's command against them. Also garbage-collects finished queue entries
//! through a committed `OpGcBounded` (by age and by count).
//!
//! Deletes, expands and evictions have a point of no return committed as a progress mark;
//! past it they only roll forward (docs/design/operations.md, "Roll forward").

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::Policy;
use crate::executor::Executor;
use crate::ops::exec::Ctx;
use crate::ops::failpoint::Failpoints;
use crate::ops::fence::Fenced;
use crate::ops::kinds;
use crate::ops::step::{StepError, StepResult};
use crate::state::model::BlockExport;
use crate::state::model::{ExecReport, OpStatus, Operation};
use crate::state::HekateReplica;
use crate::state::{self, Command};

pub struct Runner {
    replica: HekateReplica,
    exec: Arc<dyn Executor>,
    running: Mutex<BTreeSet<String>>,
    queue_retention_secs: u64,
    queue_retention_max: u64,
    attempts: u32,
    reconcile_first: Duration,
    reconcile_every: Option<Duration>,
    reconciling: std::sync::atomic::AtomicBool,
    failpoints: Arc<Failpoints>,
    /// The term whose claim round has ended (every node claimed, or found unreachable).
    claimed: tokio::sync::watch::Sender<u64>,
    /// The term whose claim round was started.
    claiming: std::sync::atomic::AtomicU64,
}

/// How often the leader proposes the queue GC. Between two runs at most `GC_EVERY` times the
/// operation rate is retained beyond the count bound (2,000 at 200 operations/s).
const GC_EVERY: Duration = Duration::from_secs(10);

/// How long the claim round waits for one node: a dead node (or one still running a long
/// command of an older term) must not hold back every operation's end for the whole SSH
/// connect budget (three tries of 10 s). Such a node is claimed by the first command that
/// reaches it; docs/design/operations.md ("Fencing") has what this leaves open.
const CLAIM_BOUND: Duration = Duration::from_secs(10);

fn now() -> u64 {
    crate::clock::now_secs()
}

impl Runner {
    pub fn new(
        replica: HekateReplica,
        exec: Arc<dyn Executor>,
        policy: &Policy,
        failpoints: Arc<Failpoints>,
    ) -> Arc<Runner> {
        Arc::new(Runner {
            replica,
            exec,
            running: Mutex::new(BTreeSet::new()),
            queue_retention_secs: policy.queue_retention_secs,
            queue_retention_max: policy.queue_retention_max,
            attempts: policy.op_attempts.max(1),
            reconcile_first: Duration::from_secs(policy.reconcile_first_secs),
            reconcile_every: policy.reconcile_every_secs.map(Duration::from_secs),
            reconciling: Default::default(),
            failpoints,
            claimed: tokio::sync::watch::channel(0).0,
            claiming: Default::default(),
        })
    }

    pub fn executor(&self) -> &Arc<dyn Executor> {
        &self.exec
    }

    /// Runs until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        // Woken by each applied batch (a new operation, a new term's first entry), not by
        // every replication report; the tick covers the rest (GC, reconcile, a lost term).
        let mut watch = self.replica.applied_watch();
        let mut last_gc = std::time::Instant::now();
        let mut next_reconcile = std::time::Instant::now() + self.reconcile_first;
        loop {
            if self.replica.is_leader() {
                self.start_term().await;
                self.dispatch();
                if let Some(every) = self.reconcile_every {
                    if std::time::Instant::now() >= next_reconcile {
                        next_reconcile = std::time::Instant::now() + every;
                        self.clone().reconcile_in_background();
                    }
                }
                if last_gc.elapsed() > GC_EVERY {
                    last_gc = std::time::Instant::now();
                    let gc = Command::OpGcBounded {
                        before: now().saturating_sub(self.queue_retention_secs),
                        keep: self.queue_retention_max,
                    };
                    if let Err(e) = self.replica.propose(&gc).await {
                        tracing::debug!("queue gc not proposed: {e}");
                    }
                }
            }
            tokio::select! {
                _ = watch.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Once per term: the group's identity (set by its first leader), then the claim round.
    async fn start_term(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        match self.replica.read(|v| state::identity(v)) {
            Ok(Some(_)) => {}
            Ok(None) => {
                let set = Command::SetIdentity {
                    id: crate::ids::new_id(),
                };
                match self.replica.propose(&set).await {
                    Ok(_) => tracing::info!("cluster identity set"),
                    Err(e) => tracing::info!("cluster identity not set yet: {e}"),
                }
                return;
            }
            Err(e) => {
                tracing::error!("runner cannot read the cluster identity: {e}");
                return;
            }
        }
        let term = self.replica.current_term();
        if self.claiming.swap(term, Ordering::SeqCst) == term {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.claim_nodes(term).await {
                tracing::info!(term, "claim round not done: {e}");
                // Let the next turn of the loop start it again.
                let _ = me
                    .claiming
                    .compare_exchange(term, 0, Ordering::SeqCst, Ordering::SeqCst);
            }
        });
    }

    /// Claims every node for this term, in parallel (each host's connection is its own: a
    /// dead node costs only its own connect timeout). Unreachable nodes are logged; they are
    /// claimed by the first command that reaches them.
    async fn claim_nodes(&self, term: u64) -> Result<(), String> {
        let fenced = Fenced::acquire(self.exec.clone(), self.replica.clone())
            .await
            .map_err(|e| e.to_string())?;
        if fenced.term() != term {
            return Err(format!("term moved to {}", fenced.term()));
        }
        let hosts = self
            .replica
            .read(|v| state::manage_hosts(v))
            .map_err(|e| e.to_string())?;
        let results = futures::future::join_all(hosts.iter().map(|h| async {
            tokio::time::timeout(CLAIM_BOUND, fenced.claim(h))
                .await
                .unwrap_or_else(|_| {
                    Err(crate::executor::ExecError::Unreachable {
                        host: h.clone(),
                        msg: format!("no claim answer within {CLAIM_BOUND:?}"),
                    })
                })
        }))
        .await;
        if fenced.tripped() {
            return Err("fenced while claiming".into());
        }
        let mut unclaimed = 0;
        for (h, r) in hosts.iter().zip(results) {
            if let Err(e) = r {
                unclaimed += 1;
                tracing::warn!(host = %h, term, "node not claimed: {e}");
            }
        }
        tracing::info!(term, nodes = hosts.len(), unclaimed, "claim round done");
        self.claimed.send_modify(|t| *t = (*t).max(term));
        Ok(())
    }

    /// Waits until this term's claim round has ended (false if leadership moved first).
    async fn claim_round_done(&self, term: u64) -> bool {
        let mut rx = self.claimed.subscribe();
        loop {
            if *rx.borrow_and_update() >= term {
                return true;
            }
            if self.replica.current_term() != term || !self.replica.is_leader() {
                return false;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), rx.changed()).await;
        }
    }

    /// The periodic reconcile: report only, into the log.
    fn reconcile_in_background(self: Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.reconciling.swap(true, Ordering::SeqCst) {
            return;
        }
        tokio::spawn(async move {
            match crate::reconcile::run(&self.replica, self.exec.clone(), false).await {
                Ok(r) if r.findings.is_empty() => {
                    tracing::info!(
                        nodes = r.nodes_examined,
                        "periodic reconcile: state matches the nodes"
                    )
                }
                Ok(r) => {
                    for line in r.lines() {
                        tracing::warn!("periodic reconcile: {line}");
                    }
                }
                Err(e) => tracing::info!("periodic reconcile not run: {e}"),
            }
            self.reconciling.store(false, Ordering::SeqCst);
        });
    }

    fn dispatch(self: &Arc<Self>) {
        let ids = match self.replica.read(|v| state::pending_op_ids(v)) {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!("runner cannot read pending operations: {e}");
                return;
            }
        };
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            if running.insert(id.clone()) {
                let me = self.clone();
                tokio::spawn(async move {
                    me.execute(&id).await;
                    me.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                });
            }
        }
    }

    async fn execute(&self, id: &str) {
        let loaded = self.replica.read(|v| -> Result<_, hekate_raft::StoreError> {
            let Some(op) = state::get_op(v, id)? else {
                return Ok(None);
            };
            let ctx = Ctx::load(v, &op)?;
            Ok(Some((op, ctx)))
        });
        let (op, ctx) = match loaded {
            Ok(Some(x)) if x.0.status == OpStatus::Pending => x,
            Ok(_) => return,
            Err(e) => {
                tracing::error!(op = id, "cannot load operation: {e}");
                return;
            }
        };
        // Confirm leadership with a quorum before touching any node, and before every
        // verb after that (see `fence`).
        let fenced = match Fenced::acquire(self.exec.clone(), self.replica.clone()).await {
            Ok(f) => f.with_failpoints(self.failpoints.clone()),
            Err(e) => {
                tracing::info!(op = id, "not running operation: leadership not confirmed ({e})");
                return;
            }
        };
        tracing::info!(op = id, kind = ?op.kind, term = fenced.term(), "running operation");
        let drive = Drive {
            runner: self,
            fenced: &fenced,
            op: &op,
            ctx: &ctx,
        };
        let cmd = kinds::drive(&drive).await;
        let Some(cmd) = cmd else {
            return; // left pending: the current leader runs it (again)
        };
        if fenced.tripped() {
            tracing::warn!(
                op = id,
                "operation stopped by the fence; the current leader resumes it"
            );
            return;
        }
        // The end frees names and space: not before every node refuses the older terms.
        if !self.claim_round_done(fenced.term()).await {
            tracing::info!(
                op = id,
                "leadership moved before the claim round ended; the next leader resumes it"
            );
            return;
        }
        if let Command::OpFail { error, .. } | Command::OpFailKept { error, .. } = &cmd {
            tracing::warn!(op = id, "operation failed: {error}");
        }
        if let Err(e) = self.replica.propose(&cmd).await {
            // Leadership moved: the next leader runs the operation again.
            tracing::warn!(op = id, "result not committed ({e}); the next leader resumes it");
        }
    }

    /// Bounded retries: the steps are idempotent, so an attempt that lost a node or its
    /// connection is run again from the start, backing off. A command that ran and failed is
    /// reported at once. An error that leaves the operation pending (fenced, stopped) is
    /// returned as it is.
    async fn with_retries<T, F, Fut>(&self, fenced: &Fenced, id: &str, mut attempt: F) -> StepResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = StepResult<T>>,
    {
        let mut n = 1;
        loop {
            fenced.take_remote_failure();
            let result = attempt().await;
            if fenced.tripped() {
                return Err(match result {
                    Err(e @ StepError::Fenced(_)) => e,
                    _ => StepError::Fenced("a verb of the operation was refused".into()),
                });
            }
            let result = match result {
                Err(e) if !e.leaves_pending() => Err(e.classify(fenced.take_remote_failure())),
                other => other,
            };
            match result {
                Err(StepError::Unreachable(e)) if n < self.attempts => {
                    let wait = Duration::from_millis(500 << n.min(5));
                    tracing::warn!(
                        op = id,
                        attempt = n,
                        "operation failed on a node: {e}; next attempt in {wait:?}"
                    );
                    tokio::time::sleep(wait).await;
                    if !self.replica.is_leader() {
                        return Err(StepError::Stopped); // the next leader resumes it
                    }
                    n += 1;
                }
                Err(e) if n > 1 && !e.leaves_pending() => {
                    return Err(StepError::Failed(format!("{e} (gave up after {n} attempts)")))
                }
                other => return other,
            }
        }
    }

    /// Whether this replica may go on acting for an operation under `fenced`.
    fn leading<'a>(&'a self, fenced: &'a Fenced) -> impl Fn() -> bool + Send + Sync + 'a {
        move || !fenced.tripped() && self.replica.is_leader()
    }
}

/// One operation as this leader runs it: what a kind's steps (`ops::kinds`) may ask of the
/// runner. Every verb goes through `exec()`, the operation's fence.
pub struct Drive<'a> {
    runner: &'a Runner,
    fenced: &'a Fenced,
    pub op: &'a Operation,
    pub ctx: &'a Ctx,
}

impl<'a> Drive<'a> {
    /// The fenced executor: every verb of the operation goes through it.
    pub fn exec(&self) -> &'a Fenced {
        self.fenced
    }

    /// Runs `attempt` with the runner's bounded retries (`Runner::with_retries`).
    pub async fn retried<T, F, Fut>(&self, attempt: F) -> StepResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = StepResult<T>>,
    {
        self.runner.with_retries(self.fenced, &self.op.id, attempt).await
    }

    /// Runs `attempt` with retries and ends the operation with its result.
    pub async fn once<F, Fut>(&self, attempt: F) -> Option<Command>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = StepResult<ExecReport>>,
    {
        self.end(self.retried(attempt).await)
    }

    /// The command that ends the operation with `r`; None when it is left pending.
    pub fn end(&self, r: StepResult<ExecReport>) -> Option<Command> {
        ended(&self.op.id, r)
    }

    /// The command that ends a block volume create with `r` (what gluster-block made of it);
    /// None when it is left pending.
    pub fn end_block(&self, r: StepResult<BlockExport>) -> Option<Command> {
        match r {
            Ok(export) => Some(Command::OpFinishBlock {
                id: self.op.id.clone(),
                export,
                now: now(),
            }),
            Err(e) => ended(&self.op.id, Err(e)),
        }
    }

    /// Attempts in all for a step that could not reach its node.
    pub fn attempts(&self) -> u32 {
        self.runner.attempts
    }

    /// Whether this replica may go on acting for the operation.
    pub fn leading(&self) -> impl Fn() -> bool + Send + Sync + 'a {
        self.runner.leading(self.fenced)
    }

    /// Commits the point of no return of a delete or an expand (`OpStep 0`). False: not
    /// committed (the next leader resumes the operation from the mark it finds).
    pub async fn mark(&self) -> bool {
        if self.fenced.tripped() {
            return false;
        }
        match self.commit(0).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(op = %self.op.id, "point of no return not committed ({e}); the next leader resumes");
                false
            }
        }
    }

    /// Commits step `index` (an eviction done), so that a new leader resumes after it.
    pub async fn commit_step(&self, index: usize) -> StepResult<()> {
        self.commit(index).await.map_err(|err| {
            tracing::warn!(op = %self.op.id, "eviction {index} done but not committed ({err}); the next leader resumes");
            StepError::Stopped
        })
    }

    async fn commit(&self, index: usize) -> Result<(), hekate_raft::ReplicaError> {
        let step = Command::OpStep {
            id: self.op.id.clone(),
            index,
        };
        self.runner.replica.propose(&step).await.map(|_| ())
    }
}

/// The command that ends an operation with `r`; None when it is left pending.
fn ended(id: &str, r: StepResult<ExecReport>) -> Option<Command> {
    match r {
        Ok(report) => Some(Command::OpFinish {
            id: id.to_string(),
            report,
            now: now(),
        }),
        Err(e) if e.leaves_pending() => None,
        Err(error) => Some(Command::OpFail {
            id: id.to_string(),
            error: error.to_string(),
            now: now(),
        }),
    }
}
