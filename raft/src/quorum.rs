//! Check quorum: a leader that has heard from no quorum within a bound says so and steps down.
//!
//! openraft 0.9 has no CheckQuorum: a leader cut off from the other voters keeps its role
//! until it hears a higher term, so it kept answering `/readyz` with 200 and proposals sent to
//! it waited until the partition healed. etcd's raft solves this with CheckQuorum; this module
//! is Hekate's equivalent, in three parts:
//!
//! - [`QuorumWatch::lost`] measures how long the local leader has gone without a quorum's
//!   acknowledgement (openraft's `millis_since_quorum_ack`, or the time since it was seen
//!   becoming leader before its first acknowledgement) and reports it past `check_quorum`.
//!   Every proposal consults it, so none waits on a leader without a quorum; `/readyz` turns
//!   503 already at half the bound ([`QuorumWatch::doubtful`]), so a load balancer drains the
//!   leader before it steps down.
//! - [`crate::Replica`] runs a watchdog every heartbeat that, past the bound, steps the leader
//!   down: it hands openraft the vote request of a candidate for the next term whose log is
//!   exactly the leader's own (see `Replica::step_down`). openraft's ordinary vote handling
//!   then turns the leader into a follower of that term, as if a real candidate had asked;
//!   the vote is persisted, so the step-down survives a restart.
//! - [`CheckQuorumStatus`] is what `/raft/status` shows of it.
//!
//! Trade-off: without pre-vote (openraft 0.9 has none), the stepped-down replica campaigns
//! with rising terms while it is isolated, and when it comes back its higher term makes the
//! majority's leader step down once: one extra election on heal. The same happens today to
//! any isolated follower.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// One step-down: the term it ended and how long the leader had been without a quorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepDown {
    pub term: u64,
    pub silent_ms: u64,
}

/// What `/raft/status` shows of the check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckQuorumStatus {
    pub timeout_ms: u64,
    /// On the leader: whether a quorum acknowledged it within the bound. Absent elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum_ok: Option<bool>,
    pub step_downs: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_step_down: Option<StepDown>,
}

/// How long a leader has gone without a quorum's acknowledgement: openraft's
/// `millis_since_quorum_ack`, or, before its first acknowledgement in this term, how long it
/// has led.
pub fn silence_ms(millis_since_quorum_ack: Option<u64>, leading_for: Duration) -> u64 {
    millis_since_quorum_ack.unwrap_or(leading_for.as_millis() as u64)
}

#[derive(Default)]
struct WatchState {
    /// The term this replica was last seen leading, and since when.
    leading: Option<(u64, Instant)>,
    step_downs: u64,
    last: Option<StepDown>,
}

/// The check's state, shared by the watchdog, readiness and proposals.
pub struct QuorumWatch {
    bound: Duration,
    state: Mutex<WatchState>,
}

impl QuorumWatch {
    pub fn new(bound: Duration) -> QuorumWatch {
        QuorumWatch {
            bound,
            state: Mutex::new(WatchState::default()),
        }
    }

    pub fn bound(&self) -> Duration {
        self.bound
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Some(silence in ms)` when this replica leads in `term` and has heard from no quorum
    /// for longer than the bound; `None` while the quorum is there or it does not lead.
    pub fn lost(
        &self,
        leading: bool,
        term: u64,
        millis_since_quorum_ack: Option<u64>,
        now: Instant,
    ) -> Option<u64> {
        self.silent_past(leading, term, millis_since_quorum_ack, now, self.bound)
    }

    /// Like [`QuorumWatch::lost`] at half the bound: readiness turns 503 this early, so the
    /// load balancer starts draining the leader before it steps down.
    pub fn doubtful(
        &self,
        leading: bool,
        term: u64,
        millis_since_quorum_ack: Option<u64>,
        now: Instant,
    ) -> Option<u64> {
        self.silent_past(leading, term, millis_since_quorum_ack, now, self.bound / 2)
    }

    fn silent_past(
        &self,
        leading: bool,
        term: u64,
        millis_since_quorum_ack: Option<u64>,
        now: Instant,
        bound: Duration,
    ) -> Option<u64> {
        let mut st = self.lock();
        if !leading {
            st.leading = None;
            return None;
        }
        let since = match st.leading {
            Some((t, at)) if t == term => now.saturating_duration_since(at),
            _ => {
                st.leading = Some((term, now));
                Duration::ZERO
            }
        };
        let silent = silence_ms(millis_since_quorum_ack, since);
        (silent > bound.as_millis() as u64).then_some(silent)
    }

    /// How long this replica has been seen leading `term` (by the watchdog, which looks every
    /// heartbeat: at most one heartbeat less than the truth); `None` if not seen leading it.
    pub fn leading_for(&self, term: u64, now: Instant) -> Option<Duration> {
        match self.lock().leading {
            Some((t, at)) if t == term => Some(now.saturating_duration_since(at)),
            _ => None,
        }
    }

    pub fn record_step_down(&self, term: u64, silent_ms: u64) {
        let mut st = self.lock();
        st.step_downs += 1;
        st.last = Some(StepDown { term, silent_ms });
        st.leading = None;
    }

    pub fn status(&self, quorum_ok: Option<bool>) -> CheckQuorumStatus {
        let st = self.lock();
        CheckQuorumStatus {
            timeout_ms: self.bound.as_millis() as u64,
            quorum_ok,
            step_downs: st.step_downs,
            last_step_down: st.last.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_never_lost_quorum() {
        let w = QuorumWatch::new(Duration::from_millis(200));
        assert_eq!(w.lost(false, 3, Some(10_000), Instant::now()), None);
    }

    #[test]
    fn a_leader_is_lost_only_past_the_bound() {
        let w = QuorumWatch::new(Duration::from_millis(200));
        let now = Instant::now();
        assert_eq!(w.lost(true, 3, Some(150), now), None);
        assert_eq!(w.lost(true, 3, Some(200), now), None);
        assert_eq!(w.lost(true, 3, Some(201), now), Some(201));
        assert_eq!(w.doubtful(true, 3, Some(100), now), None);
        assert_eq!(w.doubtful(true, 3, Some(101), now), Some(101));
    }

    #[test]
    fn before_its_first_ack_a_leader_counts_from_when_it_was_seen_leading() {
        let w = QuorumWatch::new(Duration::from_millis(20));
        let t0 = Instant::now();
        assert_eq!(w.lost(true, 4, None, t0), None, "just became leader");
        let later = t0 + Duration::from_millis(40);
        assert_eq!(w.lost(true, 4, None, later), Some(40));
        // A new term starts the count again.
        assert_eq!(w.lost(true, 5, None, later), None);
    }

    #[test]
    fn leading_time_is_per_term_and_ends_with_leadership() {
        let w = QuorumWatch::new(Duration::from_millis(200));
        let t0 = Instant::now();
        assert_eq!(w.leading_for(4, t0), None, "never seen leading");
        w.lost(true, 4, Some(1), t0);
        let later = t0 + Duration::from_millis(300);
        assert_eq!(w.leading_for(4, later), Some(Duration::from_millis(300)));
        assert_eq!(w.leading_for(5, later), None, "another term");
        w.lost(false, 4, None, later);
        assert_eq!(w.leading_for(4, later), None, "no longer leading");
    }

    #[test]
    fn step_downs_are_counted_and_shown() {
        let w = QuorumWatch::new(Duration::from_millis(200));
        w.record_step_down(7, 450);
        let st = w.status(None);
        assert_eq!(st.step_downs, 1);
        assert_eq!(
            st.last_step_down,
            Some(StepDown {
                term: 7,
                silent_ms: 450
            })
        );
        assert_eq!(st.timeout_ms, 200);
        let json = serde_json::to_value(&st).unwrap_or_default();
        assert!(json.get("quorum_ok").is_none(), "{json}");
    }
}
