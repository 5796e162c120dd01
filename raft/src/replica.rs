//! A running replica: wiring of store, state machine, network and openraft, and the small API
//! the application uses: propose a command, read linearizably, watch leadership, change
//! membership, report status and readiness.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::raft::VoteRequest;
use openraft::{ChangeMembers, ServerState};
use serde::Serialize;

use crate::app::{Application, View};
use crate::codec;
use crate::db::{Store, StoreFootprint, StoreOptions};
use crate::error::{ReplicaError, StoreError};
use crate::log_store::LogStore;
use crate::network::{NetworkFactory, PeerCallError, PeerHttp};
use crate::quorum::{CheckQuorumStatus, QuorumWatch};
use crate::service::{self, PeerService, PeerStatus};
use crate::settings::RaftSettings;
use crate::state_machine::StateMachine;
use crate::types::{AppRequest, Member, NodeId, Raft, Vote};

/// Role of a replica, as shown by `/raft/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    pub id: NodeId,
    pub api_addr: String,
    pub peer_addr: String,
    pub voter: bool,
}

/// A point-in-time view of this replica's Raft state.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaStatus {
    pub id: NodeId,
    pub state: Role,
    pub leader: Option<NodeId>,
    pub leader_api_addr: Option<String>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<u64>,
    pub snapshot: Option<u64>,
    pub purged: Option<u64>,
    pub millis_since_quorum_ack: Option<u64>,
    pub check_quorum: CheckQuorumStatus,
    pub members: Vec<MemberStatus>,
}

/// How a replica starts.
pub struct ReplicaConfig {
    pub id: NodeId,
    pub data_dir: std::path::PathBuf,
    pub settings: RaftSettings,
    /// The configured peers (including this replica) used to bootstrap a new cluster.
    pub initial_members: BTreeMap<NodeId, Member>,
    /// A joining replica never bootstraps; it waits to be added by the leader.
    pub join: bool,
    pub secret: String,
    /// Mutual TLS for peer RPCs (None: secret only, in clear).
    pub tls: Option<crate::network::PeerTls>,
    /// RocksDB's memory budget (memtables and block cache).
    pub store: StoreOptions,
}

pub struct Replica<A: Application> {
    id: NodeId,
    raft: Raft,
    store: Store,
    http: PeerHttp,
    secret: Arc<str>,
    cfg: Arc<ReplicaConfig>,
    quorum: Arc<QuorumWatch>,
    /// The replica leadership is being handed to (0: none): proposals are refused meanwhile,
    /// so that the log stops growing and the successor can catch up and win.
    handoff: Arc<AtomicU64>,
    /// Proposals admitted and not yet answered: a handoff waits for them, so the successor
    /// holds every entry the old leader appended.
    inflight: Arc<AtomicU64>,
    /// The application: encodes proposals in the log format its members agreed on.
    app: Arc<A>,
    /// Held across a membership change and across the application raising the log format,
    /// so that a replica reading only an older format cannot join between the check that
    /// every member reads the new one and its commit.
    format_change: Arc<tokio::sync::Mutex<()>>,
    /// When an append from a leader last arrived (the assisted election, `crate::assist`).
    contact: Arc<crate::assist::LeaderContact>,
    /// Changes after each batch the state machine applied (`applied_watch`).
    applied: Arc<tokio::sync::watch::Sender<u64>>,
}

impl<A: Application> Clone for Replica<A> {
    fn clone(&self) -> Self {
        Replica {
            id: self.id,
            raft: self.raft.clone(),
            store: self.store.clone(),
            http: self.http.clone(),
            secret: self.secret.clone(),
            cfg: self.cfg.clone(),
            quorum: self.quorum.clone(),
            handoff: self.handoff.clone(),
            inflight: self.inflight.clone(),
            app: self.app.clone(),
            format_change: self.format_change.clone(),
            contact: self.contact.clone(),
            applied: self.applied.clone(),
        }
    }
}

/// How long adding a replica waits for it to answer its log format report.
const JOIN_REPORT_WAIT: Duration = Duration::from_secs(10);

/// [`QuorumWatch::lost`] or [`QuorumWatch::doubtful`].
type QuorumTest = fn(&QuorumWatch, bool, u64, Option<u64>, std::time::Instant) -> Option<u64>;

fn fatal(e: impl std::fmt::Display) -> ReplicaError {
    ReplicaError::Fatal(e.to_string())
}

impl<A: Application> Replica<A> {
    /// Opens the store and starts Raft and the check-quorum watchdog. Does not bootstrap:
    /// call [`Replica::bootstrap`].
    pub async fn start(cfg: ReplicaConfig, app: Arc<A>) -> Result<Replica<A>, StoreError> {
        let raft_cfg = cfg.settings.to_openraft("hekate").map_err(StoreError::Invalid)?;
        let store = Store::open_with(&cfg.data_dir, cfg.store)?;
        let http = PeerHttp::new(&cfg.secret, cfg.tls.as_ref()).map_err(StoreError::Invalid)?;
        let log = LogStore::new(store.clone());
        let sm = StateMachine::new(store.clone(), app.clone());
        let applied = sm.applied();
        let net = NetworkFactory { http: http.clone() };
        let raft = Raft::new(cfg.id, Arc::new(raft_cfg), net, log, sm)
            .await
            .map_err(|e| StoreError::Invalid(format!("raft start: {e}")))?;
        let replica = Replica {
            id: cfg.id,
            raft,
            store,
            http,
            secret: Arc::from(cfg.secret.as_str()),
            quorum: Arc::new(QuorumWatch::new(cfg.settings.check_quorum())),
            cfg: Arc::new(cfg),
            handoff: Arc::new(AtomicU64::new(0)),
            inflight: Arc::new(AtomicU64::new(0)),
            app,
            format_change: Arc::new(tokio::sync::Mutex::new(())),
            contact: Arc::new(crate::assist::LeaderContact::default()),
            applied,
        };
        tokio::spawn(replica.clone().check_quorum_loop());
        tokio::spawn(replica.clone().assist_loop());
        Ok(replica)
    }

    /// The watchdog: every heartbeat, a leader that has heard from no quorum within
    /// `check_quorum` steps down (see [`crate::quorum`]). Ends when Raft shuts down.
    async fn check_quorum_loop(self) {
        let rx = self.raft.metrics();
        let mut tick = tokio::time::interval(Duration::from_millis(self.cfg.settings.heartbeat_ms.max(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (state, leading, term, ack) = {
                let m = rx.borrow();
                let leading = m.state == ServerState::Leader && m.current_leader == Some(self.id);
                (m.state, leading, m.current_term, m.millis_since_quorum_ack)
            };
            if state == ServerState::Shutdown || rx.has_changed().is_err() {
                return;
            }
            if let Some(silent) = self.quorum.lost(leading, term, ack, std::time::Instant::now()) {
                let m = rx.borrow().clone();
                self.step_down(&m, silent).await;
            }
        }
    }

    /// The assisted election (`crate::assist`): every heartbeat, a voter that has heard no
    /// leader for the vote lease plus a heartbeat asks the other voters, and campaigns at once
    /// if a majority agrees nobody hears a leader and its log is the longest. Once per term.
    async fn assist_loop(self) {
        let rx = self.raft.metrics();
        let hb = self.cfg.settings.heartbeat_ms.max(10);
        let lease = self.cfg.settings.election_timeout_max_ms;
        let mut tick = tokio::time::interval(Duration::from_millis(hb));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tried_term = 0;
        loop {
            tick.tick().await;
            let m = rx.borrow().clone();
            if m.state == ServerState::Shutdown || rx.has_changed().is_err() {
                return;
            }
            let me = service::local_probe(&self.raft, self.id, &self.contact);
            let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
            if me.is_leader
                || me.since_leader_ms <= lease + hb
                || m.current_term <= tried_term
                || !voters.contains(&self.id)
                || voters.len() < 2
            {
                continue;
            }
            let answers = self
                .probe_voters(&m, &voters, Duration::from_millis(hb * 2))
                .await;
            let me = service::local_probe(&self.raft, self.id, &self.contact);
            if crate::assist::should_campaign(&me, &answers, voters.len(), lease) {
                // The term it campaigns in: one attempt per term, then openraft's timers.
                tried_term = m.current_term + 1;
                tracing::info!(
                    since_leader_ms = me.since_leader_ms,
                    last_log_index = me.last_log_index,
                    "no leader heard by a majority and this log is the longest: campaigning now"
                );
                if let Err(e) = self.raft.trigger().elect().await {
                    tracing::warn!("assisted election: {e}");
                }
            }
        }
    }

    /// The other voters' answers to the assistant's probe; the unreachable ones and answers
    /// from another replica (an older build forwarding the unknown RPC) are left out.
    async fn probe_voters(
        &self,
        m: &openraft::RaftMetrics<NodeId, Member>,
        voters: &[NodeId],
        bound: Duration,
    ) -> Vec<crate::assist::Probe> {
        let membership = m.membership_config.membership();
        let calls = voters.iter().filter(|v| **v != self.id).filter_map(|v| {
            let node = membership.get_node(v)?.clone();
            let http = self.http.clone();
            let id = *v;
            Some(async move {
                let r: Result<crate::assist::Probe, PeerCallError> =
                    http.call(&node.peer_addr, "probe", &(), bound).await;
                r.ok().filter(|p| p.id == id)
            })
        });
        futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Steps this leader down: openraft is handed the vote request of another voter for the
    /// next term, with exactly this replica's last log id, so its ordinary vote handling makes
    /// this replica a follower of that term (granting that vote; a real campaign by that voter
    /// still needs its log to be as complete). openraft refuses it while the leader's own lease
    /// (`election_timeout_max` since it won) runs; the watchdog then tries again next period.
    async fn step_down(&self, m: &openraft::RaftMetrics<NodeId, Member>, silent_ms: u64) {
        let Some(other) = m
            .membership_config
            .membership()
            .voter_ids()
            .find(|v| *v != self.id)
        else {
            return; // a single voter is its own quorum
        };
        let last = match LogStore::new(self.store.clone()).last_log_id() {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("check quorum: cannot read the last log id: {e}");
                return;
            }
        };
        let req = VoteRequest::new(Vote::new(m.current_term + 1, other), last);
        match self.raft.vote(req).await {
            Ok(resp) if resp.vote_granted => {
                self.quorum.record_step_down(m.current_term, silent_ms);
                tracing::warn!(
                    term = m.current_term,
                    silent_ms,
                    "check quorum: no quorum acknowledged this leader for {silent_ms} ms; stepped down"
                );
            }
            Ok(_) => tracing::debug!("check quorum: step-down not taken yet (leader lease)"),
            Err(e) => tracing::warn!("check quorum: step-down failed: {e}"),
        }
    }

    /// `Err` with the reason when this replica leads but has heard from no quorum within the
    /// bound: it accepts no proposal and is not ready.
    fn check_quorum(&self) -> Result<(), String> {
        self.quorum_silence(QuorumWatch::lost)
    }

    /// [`Replica::check_quorum`] at half the bound: what readiness uses.
    fn quorum_doubtful(&self) -> Result<(), String> {
        self.quorum_silence(QuorumWatch::doubtful)
    }

    fn quorum_silence(&self, test: QuorumTest) -> Result<(), String> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let leading = m.state == ServerState::Leader && m.current_leader == Some(self.id);
        let now = std::time::Instant::now();
        match test(
            &self.quorum,
            leading,
            m.current_term,
            m.millis_since_quorum_ack,
            now,
        ) {
            None => Ok(()),
            Some(silent) => Err(format!(
                "this leader has heard from no quorum for {silent} ms (check_quorum_ms {})",
                self.quorum.bound().as_millis()
            )),
        }
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn data_dir(&self) -> &Path {
        &self.store.dir
    }

    /// The peer network's client (scheme, TLS identity, secret), for forwarding to the leader.
    pub fn peer_http(&self) -> &PeerHttp {
        &self.http
    }

    /// The store's memory and disk now (RocksDB properties and a walk of the data
    /// directory), computed on a blocking thread.
    pub async fn store_footprint(&self) -> Result<StoreFootprint, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.footprint())
            .await
            .map_err(|e| StoreError::Invalid(format!("footprint task: {e}")))?
    }

    /// The `/raft/rpc/*` router to mount on the peer listener.
    pub fn peer_router(&self) -> axum::Router {
        service::router(Arc::new(PeerService {
            raft: self.raft.clone(),
            secret: self.secret.clone(),
            id: self.id,
            log_format: A::LOG_FORMAT,
            contact: self.contact.clone(),
        }))
    }

    /// Bootstraps the cluster exactly once. Only the lowest configured id of a non-joining
    /// replica with a pristine store initializes, and only after no reachable peer reports an
    /// existing cluster; restarts and concurrent starts therefore never re-initialize.
    /// Returns when this replica belongs to an initialized cluster.
    pub async fn bootstrap(&self) {
        let lowest = self.cfg.initial_members.keys().next().copied();
        loop {
            if self.raft.is_initialized().await.unwrap_or(true) {
                return;
            }
            if !self.cfg.join && lowest == Some(self.id) && !self.any_peer_initialized().await {
                match self.raft.initialize(self.cfg.initial_members.clone()).await {
                    Ok(()) => {
                        tracing::info!(members = ?self.cfg.initial_members.keys().collect::<Vec<_>>(), "cluster bootstrapped");
                        return;
                    }
                    Err(e) => tracing::info!("bootstrap not done: {e}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    async fn any_peer_initialized(&self) -> bool {
        for (id, m) in &self.cfg.initial_members {
            if *id == self.id {
                continue;
            }
            let r: Result<PeerStatus, _> = self
                .http
                .call(&m.peer_addr, "status", &(), Duration::from_millis(500))
                .await;
            if let Ok(st) = r {
                if st.initialized {
                    return true;
                }
            }
        }
        false
    }

    /// Commits `cmd` through Raft and returns the application's response, within
    /// `write_timeout`. The error says which outcome the caller may assume:
    /// [`ReplicaError::NotAccepted`] and [`ReplicaError::NotLeader`]: the command was not
    /// appended (or was truncated away) and will never commit; [`ReplicaError::OutcomeUnknown`]:
    /// it was handed to the leader but not committed in time, and may still commit.
    pub async fn propose(&self, cmd: &A::Command) -> Result<A::Response, ReplicaError> {
        self.check_quorum().map_err(ReplicaError::NotAccepted)?;
        // Counted before the gate is read (both SeqCst): a handoff that closes the gate either
        // is seen here or sees this proposal in flight and waits for it.
        let _inflight = InFlight::enter(&self.inflight);
        let to = self.handoff.load(Ordering::SeqCst);
        if to != 0 {
            return Err(ReplicaError::NotAccepted(format!(
                "leadership is being handed to replica {to}; retry"
            )));
        }
        let bytes = self.read(|v| self.app.encode_command(cmd, v));
        let req = AppRequest(bytes.map_err(ReplicaError::NotAccepted)?);
        let bound = self.cfg.settings.write_timeout();
        let Ok(written) = tokio::time::timeout(bound, self.raft.client_write(req)).await else {
            return Err(ReplicaError::OutcomeUnknown(format!(
                "the leader accepted the write but it was not committed within {} ms",
                bound.as_millis()
            )));
        };
        match written {
            Ok(resp) => Ok(codec::decode(&resp.data.0)?),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(ReplicaError::NotLeader {
                leader: f.leader_id.zip(f.leader_node),
            }),
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(ReplicaError::Membership(membership_text(&e)))
            }
            Err(RaftError::Fatal(e)) => Err(fatal(e)),
        }
    }

    /// Confirms leadership with a quorum and waits until everything committed before this call
    /// is applied locally: a read after this returns sees every acknowledged write.
    pub async fn linearizable_read(&self) -> Result<(), ReplicaError> {
        self.check_quorum().map_err(ReplicaError::Unavailable)?;
        let fut = self.raft.ensure_linearizable();
        let bound = self.cfg.settings.write_timeout();
        match tokio::time::timeout(bound, fut).await {
            Err(_) => Err(ReplicaError::Unavailable(format!(
                "no quorum acknowledged leadership within {} ms",
                bound.as_millis()
            ))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                Err(ReplicaError::NotLeader {
                    leader: f.leader_id.zip(f.leader_node),
                })
            }
            Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)))) => {
                Err(ReplicaError::Unavailable(format!(
                    "no quorum acknowledged leadership (acknowledged by replicas {:?} only)",
                    q.got.iter().collect::<Vec<_>>()
                )))
            }
            Ok(Err(RaftError::Fatal(e))) => Err(fatal(e)),
        }
    }

    /// A linearizable read served by a follower (Raft's ReadIndex): the leader it knows
    /// confirms with a quorum that it still leads and names its commit index, and this
    /// replica waits until it has applied that index. A read after this sees every write
    /// acknowledged before the call, as after [`Self::linearizable_read`] on the leader.
    /// Returns the index waited for. An error (this replica leads or knows no other leader,
    /// the leader unreachable or deposed, an older build without the RPC, the index not
    /// applied within the write timeout) means nothing was confirmed: the caller forwards
    /// the read instead, never answers it from here.
    pub async fn read_index_barrier(&self) -> Result<u64, ReplicaError> {
        let Some((id, leader)) = self.leader().filter(|(id, _)| *id != self.id) else {
            return Err(ReplicaError::NotLeader { leader: None });
        };
        let bound = self.cfg.settings.write_timeout();
        let answer: Result<crate::service::ReadIndex, String> = self
            .http
            .call(&leader.peer_addr, "read-index", &(), bound)
            .await
            .map_err(|e| ReplicaError::Unavailable(e.to_string()))?;
        let read = answer.map_err(ReplicaError::Unavailable)?;
        if read.leader != id {
            return Err(ReplicaError::Unavailable(format!(
                "replica {} answered the read index asked of replica {id}",
                read.leader
            )));
        }
        self.raft
            .wait(Some(bound))
            .applied_index_at_least(Some(read.index), "read index")
            .await
            .map_err(|_| {
                ReplicaError::Unavailable(format!(
                    "read index {} not applied here within {} ms",
                    read.index,
                    bound.as_millis()
                ))
            })?;
        Ok(read.index)
    }

    /// The fence for side effects outside Raft: succeeds only if this replica leads in
    /// `term` (or, with `None`, in whatever term it leads now; the term is returned), a
    /// quorum acknowledged that leadership during this call, and the term did not move
    /// meanwhile. A replica that restarts believing its old vote, or a leader cut off from
    /// the majority, fails here: no follower acknowledges a term that was superseded.
    pub async fn fence(&self, term: Option<u64>) -> Result<u64, ReplicaError> {
        let before = self.leader_term()?;
        if term.is_some_and(|t| t != before) {
            return Err(ReplicaError::Unavailable(format!(
                "leadership of term {} ended (now term {before})",
                term.unwrap_or_default()
            )));
        }
        self.linearizable_read().await?;
        let after = self.leader_term()?;
        if after != before {
            return Err(ReplicaError::Unavailable(format!(
                "term moved from {before} to {after} while confirming leadership"
            )));
        }
        Ok(after)
    }

    /// The per-verb fence, without a round trip: this replica leads in `term`, has committed
    /// an entry of it, and has heard from a quorum within half the check-quorum bound (what
    /// readiness requires). What keeps two leaders apart on the nodes is the node-side guard
    /// (the term each command carries); this check only stops a leader that already knows
    /// it is isolated from sending more. [`Replica::fence`] is the round-trip version.
    pub fn fence_local(&self, term: u64) -> Result<(), ReplicaError> {
        let now = self.leader_term()?;
        if now != term {
            return Err(ReplicaError::Unavailable(format!(
                "leadership of term {term} ended (now term {now})"
            )));
        }
        self.quorum_doubtful().map_err(ReplicaError::Unavailable)
    }

    /// This replica leads, has committed an entry of its term and heard from a quorum within
    /// half the check-quorum bound: its applied state is as fresh as any replica's, without a
    /// round trip. (A non-final answer may use it; a final one needs no check: see `/queue`.)
    pub fn leads_with_quorum(&self) -> bool {
        self.leader_term().is_ok() && self.quorum_doubtful().is_ok()
    }

    /// The current term if this replica is its leader and has committed an entry in it.
    fn leader_term(&self) -> Result<u64, ReplicaError> {
        let rx = self.raft.metrics();
        let m = rx.borrow();
        let own_entry = m.last_applied.map(|l| l.leader_id.term) == Some(m.current_term);
        if m.state == ServerState::Leader && m.current_leader == Some(self.id) && own_entry {
            Ok(m.current_term)
        } else {
            Err(ReplicaError::NotLeader { leader: None })
        }
    }

    /// On a leader: waits (within `write_timeout`, no round trip) until this replica has
    /// applied every entry committed when called. A leader applies a committed entry
    /// asynchronously, so a follower may apply it, and answer from it, first: a client told
    /// by a follower that its operation finished then sends a write that must see it. Write
    /// handlers plan after this. The commit index is the quorum's match index (openraft's
    /// metrics do not carry it); on a follower this returns at once.
    pub async fn applied_committed(&self) -> Result<(), ReplicaError> {
        let m = self.raft.metrics().borrow().clone();
        let Some(repl) = m.replication.as_ref() else {
            return Ok(());
        };
        let membership = m.membership_config.membership();
        let mut matched: Vec<u64> = membership
            .voter_ids()
            .map(|v| match v == self.id {
                true => m.last_log_index.unwrap_or(0),
                false => repl.get(&v).cloned().flatten().map_or(0, |l| l.index),
            })
            .collect();
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&committed) = matched.get(matched.len() / 2) else {
            return Ok(());
        };
        if m.last_applied.map_or(0, |l| l.index) >= committed {
            return Ok(());
        }
        let bound = self.cfg.settings.write_timeout();
        self.raft
            .wait(Some(bound))
            .applied_index_at_least(Some(committed), "applied committed")
            .await
            .map(|_| ())
            .map_err(|_| {
                ReplicaError::NotAccepted(format!(
                    "this leader has not applied index {committed} within {} ms",
                    bound.as_millis()
                ))
            })
    }

    /// Runs `f` over a consistent view of the applied state (no leadership check).
    pub fn read<T>(&self, f: impl FnOnce(&View<'_>) -> T) -> T {
        let view = View::new(&self.store);
        f(&view)
    }

    /// The leader this replica knows, with its addresses.
    pub fn leader(&self) -> Option<(NodeId, Member)> {
        let m = self.raft.metrics().borrow().clone();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?.clone();
        Some((id, node))
    }

    /// The current term as this replica knows it.
    pub fn current_term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// Resolves when anything about this replica's Raft state changes (leader, term, applied).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<openraft::RaftMetrics<NodeId, Member>> {
        self.raft.metrics()
    }

    /// Changes (its value is a counter) each time the applied state changed: after every
    /// applied batch and installed snapshot. Cheaper to wait on than [`Replica::watch`],
    /// which also changes with every replication report.
    pub fn applied_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// The current term if this replica leads in it and heard from a quorum within half the
    /// check-quorum bound (the per-verb check, [`Replica::fence_local`]), without a round
    /// trip; None when only [`Replica::fence`] can tell.
    pub fn fence_lease(&self) -> Option<u64> {
        let term = self.leader_term().ok()?;
        self.quorum_doubtful().ok().map(|_| term)
    }

    /// Waits up to `timeout` until some replica is known as leader.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<(NodeId, Member)> {
        let mut rx = self.raft.metrics();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader() {
                return Some(l);
            }
            if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                return None;
            }
        }
    }

    pub fn status(&self) -> ReplicaStatus {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, n)| MemberStatus {
                id: *id,
                api_addr: n.api_addr.clone(),
                peer_addr: n.peer_addr.clone(),
                voter: voters.contains(id),
            })
            .collect();
        let state = match m.state {
            ServerState::Leader => Role::Leader,
            ServerState::Follower => Role::Follower,
            ServerState::Candidate => Role::Candidate,
            ServerState::Learner => Role::Learner,
            ServerState::Shutdown => Role::Shutdown,
        };
        let leader_api_addr = m
            .current_leader
            .and_then(|l| membership.get_node(&l))
            .map(|n| n.api_addr.clone());
        ReplicaStatus {
            id: self.id,
            state,
            leader: m.current_leader,
            leader_api_addr,
            term: m.current_term,
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index),
            snapshot: m.snapshot.map(|l| l.index),
            purged: m.purged.map(|l| l.index),
            millis_since_quorum_ack: m.millis_since_quorum_ack,
            check_quorum: self
                .quorum
                .status((m.state == ServerState::Leader).then(|| self.check_quorum().is_ok())),
            members,
        }
    }

    /// Ready = a leader is known and this replica has applied everything the leader had
    /// applied when asked (a leader: once it applied the first entry of its own term).
    pub async fn ready(&self) -> Result<(), String> {
        let m = self.raft.metrics().borrow().clone();
        let Some(leader) = m.current_leader else {
            return Err("no leader known".into());
        };
        if leader == self.id {
            self.leader_term()
                .map_err(|_| "leader has not yet applied an entry of its term".to_string())?;
            return self.quorum_doubtful();
        }
        let Some(node) = m.membership_config.membership().get_node(&leader).cloned() else {
            return Err(format!("leader {leader} is not in the membership"));
        };
        let st: PeerStatus = self
            .http
            .call(&node.peer_addr, "status", &(), Duration::from_millis(500))
            .await
            .map_err(|e| format!("leader {leader} not reachable: {e}"))?;
        let target = st.last_applied.unwrap_or(0);
        let wait = self.raft.wait(Some(Duration::from_millis(500)));
        wait.applied_index_at_least(Some(target), "readyz")
            .await
            .map(|_| ())
            .map_err(|_| format!("applied index behind the leader's {target}"))
    }

    /// Adds a replica online: as a learner until it has caught up, then as a voter. A replica
    /// whose build cannot read the log format the members agreed on is refused.
    pub async fn add_member(&self, id: NodeId, member: Member) -> Result<(), ReplicaError> {
        let current = self.raft.metrics().borrow().membership_config.clone();
        if current.membership().get_node(&id).is_some() {
            return Err(ReplicaError::Membership(format!(
                "replica id {id} is already a member"
            )));
        }
        let _fixed = self.format_change.lock().await;
        let agreed = self.read(|v| self.app.agreed_format(v))?;
        let reads = self.joiner_format(id, &member).await?;
        if reads < agreed {
            return Err(ReplicaError::Membership(format!(
                "replica {id} reads log format {reads} but the cluster writes format {agreed}: \
                 upgrade its build first"
            )));
        }
        map_write(self.raft.add_learner(id, member, true).await)?;
        map_write(
            self.raft
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                .await,
        )?;
        Ok(())
    }

    /// The newest log format replica `id`'s build reads. Any answer but its own report (a 404,
    /// a refusal, another replica's report fetched by an older build's forwarding layer) counts
    /// as 0, which only ever holds the format back; an unreachable replica is an error.
    async fn peer_format(&self, id: NodeId, member: &Member) -> Result<u16, PeerCallError> {
        let bound = Duration::from_millis(500);
        match self
            .http
            .call::<_, (NodeId, u16)>(&member.peer_addr, "format", &(), bound)
            .await
        {
            Ok((from, f)) if from == id => Ok(f),
            Ok((from, _)) => {
                tracing::debug!(id, from, "log format answered by another replica: counted as 0");
                Ok(0)
            }
            Err(e @ PeerCallError::Unreachable(..)) => Err(e),
            Err(e) => {
                tracing::debug!(id, "no log format report ({e}): counted as 0");
                Ok(0)
            }
        }
    }

    /// The log format a joining replica reads, waiting up to [`JOIN_REPORT_WAIT`] for it to
    /// listen (it is often started just before it is added).
    async fn joiner_format(&self, id: NodeId, member: &Member) -> Result<u16, ReplicaError> {
        let deadline = std::time::Instant::now() + JOIN_REPORT_WAIT;
        loop {
            match self.peer_format(id, member).await {
                Ok(f) => return Ok(f),
                Err(e) if std::time::Instant::now() >= deadline => {
                    return Err(ReplicaError::Membership(format!(
                        "replica {id} did not report its log format: {e}"
                    )))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// The newest log format every member (voters and learners, this replica included) reads,
    /// or why it is not known yet (a member did not answer). The guard keeps the membership
    /// from gaining a member until it is dropped: hold it until the raised format is committed.
    pub async fn members_read_format(&self) -> (tokio::sync::OwnedMutexGuard<()>, Result<u16, String>) {
        let guard = self.format_change.clone().lock_owned().await;
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let mut min = A::LOG_FORMAT;
        for (id, member) in membership.membership().nodes() {
            if *id == self.id {
                continue;
            }
            match self.peer_format(*id, member).await {
                Ok(f) => min = min.min(f),
                Err(e) => return (guard, Err(format!("replica {id}: {e}"))),
            }
        }
        (guard, Ok(min))
    }

    /// Removes a replica from the voters and the membership.
    pub async fn remove_member(&self, id: NodeId) -> Result<(), ReplicaError> {
        let current = self.raft.metrics().borrow().membership_config.clone();
        if current.membership().get_node(&id).is_none() {
            return Err(ReplicaError::Membership(format!(
                "replica id {id} is not a member"
            )));
        }
        if id == self.id {
            return Err(ReplicaError::Membership(format!(
                "replica {id} is the leader; transfer leadership first"
            )));
        }
        let is_voter = current.membership().voter_ids().any(|v| v == id);
        if is_voter {
            map_write(
                self.raft
                    .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                    .await,
            )?;
        } else {
            map_write(
                self.raft
                    .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                    .await,
            )?;
        }
        Ok(())
    }

    /// Moves leadership to `to` and returns the new leader. Proposals here are refused
    /// meanwhile (503, not accepted: clients retry), so the log stops growing; once `to` holds
    /// every entry it is asked to campaign. In a group of three that is enough: openraft 0.9
    /// refuses votes while a leader's lease runs (`election_timeout_max` after a follower last
    /// heard it), but this leader's own lease counts from its election, so it grants the vote
    /// and `to` wins with two of three at once (a leader elected less than a lease ago waits
    /// for the rest of it first). In a larger group the other followers would
    /// refuse: heartbeats pause first and the lease is waited out (as an election would).
    pub async fn transfer_leader(&self, to: NodeId) -> Result<NodeId, ReplicaError> {
        if !self.is_leader() {
            return Err(ReplicaError::NotLeader {
                leader: self.leader(),
            });
        }
        if to == self.id {
            return Ok(to);
        }
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        if !membership.voter_ids().any(|v| v == to) {
            return Err(ReplicaError::Membership(format!("replica {to} is not a voter")));
        }
        let Some(node) = membership.get_node(&to).cloned() else {
            return Err(ReplicaError::Membership(format!("replica {to} is not a member")));
        };
        let wait_lease = membership.voter_ids().count() > 3;
        if self
            .handoff
            .compare_exchange(0, to, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(ReplicaError::Unavailable(
                "a leadership transfer is already in progress".into(),
            ));
        }
        let lease = Duration::from_millis(self.cfg.settings.election_timeout_max_ms);
        if wait_lease {
            self.raft.runtime_config().heartbeat(false);
        }
        let result = self.campaign(to, &node, lease, wait_lease).await;
        if wait_lease {
            self.raft.runtime_config().heartbeat(true);
        }
        self.handoff.store(0, Ordering::Release);
        result
    }

    /// On a graceful stop: hands leadership to the voter that holds the most of the log,
    /// within `bound`, so that the group does not wait for an election (see
    /// [`Replica::transfer_leader`]). `None` when this replica does not lead or leads alone.
    pub async fn hand_off(&self, bound: Duration) -> Option<Result<NodeId, ReplicaError>> {
        if !self.is_leader() {
            return None;
        }
        let m = self.raft.metrics().borrow().clone();
        let matched = |id: &NodeId| {
            m.replication
                .as_ref()
                .and_then(|r| r.get(id).cloned().flatten())
                .map(|l| l.index)
        };
        let to = m
            .membership_config
            .membership()
            .voter_ids()
            .filter(|v| *v != self.id)
            .max_by_key(|v| (matched(v), std::cmp::Reverse(*v)))?;
        Some(
            match tokio::time::timeout(bound, self.transfer_leader(to)).await {
                Ok(r) => r,
                Err(_) => {
                    self.handoff.store(0, Ordering::Release);
                    Err(ReplicaError::Unavailable(format!(
                        "replica {to} did not take over within {} ms",
                        bound.as_millis()
                    )))
                }
            },
        )
    }

    async fn campaign(
        &self,
        to: NodeId,
        node: &Member,
        lease: Duration,
        wait_lease: bool,
    ) -> Result<NodeId, ReplicaError> {
        let deadline = tokio::time::Instant::now() + lease * 4;
        loop {
            // Proposals admitted before the gate closed are appended first; then the log no
            // longer grows and `to` must hold all of it, or this leader refuses its vote.
            let drained = self.inflight.load(Ordering::SeqCst) == 0;
            let last = self.raft.metrics().borrow().last_log_index;
            let matched = self
                .raft
                .metrics()
                .borrow()
                .replication
                .as_ref()
                .and_then(|r| r.get(&to).cloned());
            if drained && matched.flatten().map(|l| l.index) >= last {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ReplicaError::Unavailable(format!(
                    "replica {to} did not catch up"
                )));
            }
            self.raft.trigger().heartbeat().await.map_err(fatal)?;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if wait_lease {
            tokio::time::sleep(lease + Duration::from_millis(50)).await;
        } else {
            // This leader grants the vote only once its own lease, counted from its election,
            // has run: a leader elected moments ago waits for the rest of it.
            let term = self.raft.metrics().borrow().current_term;
            let led = self.quorum.leading_for(term, std::time::Instant::now());
            let heartbeat = Duration::from_millis(self.cfg.settings.heartbeat_ms);
            if let Some(rest) = (lease + heartbeat).checked_sub(led.unwrap_or_default()) {
                tokio::time::sleep(rest).await;
            }
        }
        let r: Result<Result<(), String>, PeerCallError> = self
            .http
            .call(&node.peer_addr, "elect", &(), Duration::from_secs(2))
            .await;
        r.map_err(|e| ReplicaError::Unavailable(e.to_string()))?
            .map_err(ReplicaError::Unavailable)?;
        let mut rx = self.raft.metrics();
        let until = tokio::time::Instant::now() + lease * 4;
        loop {
            let leader = rx.borrow().current_leader;
            if let Some(l) = leader.filter(|l| *l != self.id) {
                return Ok(l);
            }
            if tokio::time::timeout_at(until, rx.changed()).await.is_err() {
                return Err(ReplicaError::Unavailable("no new leader emerged".into()));
            }
        }
    }

    /// Stops Raft; the store is closed when the last clone is dropped.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }
}

/// One admitted proposal, counted while it is in flight.
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    fn enter(n: &'a AtomicU64) -> InFlight<'a> {
        n.fetch_add(1, Ordering::SeqCst);
        InFlight(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A membership refusal in words (openraft's texts print internal structures).
fn membership_text(e: &openraft::error::ChangeMembershipError<NodeId>) -> String {
    use openraft::error::ChangeMembershipError as E;
    match e {
        E::InProgress(_) => "another membership change is in progress; retry when it is done".into(),
        E::EmptyMembership(_) => "the change would leave no voter".into(),
        E::LearnerNotFound(l) => format!("replica {} is not a learner of the cluster", l.node_id),
    }
}

fn map_write<T>(
    r: Result<T, RaftError<NodeId, ClientWriteError<NodeId, Member>>>,
) -> Result<T, ReplicaError> {
    match r {
        Ok(v) => Ok(v),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(ReplicaError::NotLeader {
            leader: f.leader_id.zip(f.leader_node),
        }),
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            Err(ReplicaError::Membership(membership_text(&e)))
        }
        Err(RaftError::Fatal(e)) => Err(fatal(e)),
    }
}
