//! Assisted election: a faster, agreed take-over after a leader crash.
//!
//! openraft 0.9 makes a follower wait `election_timeout_max` (its vote lease) plus its own
//! election timeout after the last word from a leader before it campaigns, and a candidate
//! that was once refused for a shorter log adds `2 × election_timeout_max` to every later
//! timeout until it campaigns again (a flag openraft clears only when it starts an election).
//! Under load the survivors' logs differ, so after a few failovers that flag was set on the
//! survivors and a crash cost about 600 ms with 150 ms timeouts instead of 300
//! (docs/benchmarks.md).
//!
//! The assistant runs on every voter. Once this replica has heard nothing from a leader for
//! the vote lease plus one heartbeat (every voter's lease has then run out: they heard the
//! same last heartbeat), it asks the other voters ([`Probe`], a pre-vote of sorts) how long
//! since they heard a leader and how long their logs are. Only if a majority (itself included)
//! answered, none heard a leader within the lease, and its own log is the longest (ties: the
//! lowest id), it starts an election at once; the others do nothing and grant its vote. One
//! attempt per term: if it does not win, openraft's own timers go on as before. So a healthy
//! follower's pause or a partitioned follower never starts an election the others would not
//! also start, and at most one replica is pushed to campaign.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::types::NodeId;

/// When this replica last received an append (entries or heartbeat) from a leader.
#[derive(Debug)]
pub struct LeaderContact {
    base: Instant,
    /// Milliseconds after `base`.
    at_ms: AtomicU64,
}

impl Default for LeaderContact {
    /// A replica that just started counts as having heard a leader now.
    fn default() -> Self {
        LeaderContact {
            base: Instant::now(),
            at_ms: AtomicU64::new(0),
        }
    }
}

impl LeaderContact {
    pub fn heard(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.at_ms.fetch_max(ms, Ordering::Relaxed);
    }

    pub fn since_ms(&self) -> u64 {
        let now = self.base.elapsed().as_millis() as u64;
        now.saturating_sub(self.at_ms.load(Ordering::Relaxed))
    }
}

/// A voter's answer to the assistant's question (peer RPC `probe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub id: NodeId,
    pub is_leader: bool,
    /// Milliseconds since it last heard a leader.
    pub since_leader_ms: u64,
    /// Its last log index (None: empty log).
    pub last_log_index: Option<u64>,
}

/// Whether `me` should start an election now, given the answers of the other voters
/// (`voters` in all, `me` included) and the vote lease.
pub fn should_campaign(me: &Probe, answers: &[Probe], voters: usize, lease_ms: u64) -> bool {
    if me.is_leader || me.since_leader_ms <= lease_ms {
        return false;
    }
    // Itself plus the answers must be a majority: a minority side never campaigns early.
    if (answers.len() + 1) * 2 <= voters {
        return false;
    }
    if answers
        .iter()
        .any(|a| a.is_leader || a.since_leader_ms <= lease_ms)
    {
        return false;
    }
    let key = |p: &Probe| (p.last_log_index, std::cmp::Reverse(p.id));
    answers.iter().all(|a| key(me) > key(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: NodeId, since: u64, index: u64) -> Probe {
        Probe {
            id,
            is_leader: false,
            since_leader_ms: since,
            last_log_index: Some(index),
        }
    }

    #[test]
    fn only_the_longest_log_campaigns_and_only_when_nobody_hears_a_leader() {
        let lease = 400;
        // Leader 1 gone; 2 and 3 survive.
        assert!(should_campaign(&p(2, 460, 10), &[p(3, 455, 9)], 3, lease));
        assert!(!should_campaign(&p(3, 455, 9), &[p(2, 460, 10)], 3, lease));
        // Equal logs: the lowest id.
        assert!(should_campaign(&p(2, 460, 10), &[p(3, 455, 10)], 3, lease));
        assert!(!should_campaign(&p(3, 455, 10), &[p(2, 460, 10)], 3, lease));
        // Someone still hears a leader (this replica paused, or is cut off): no.
        assert!(!should_campaign(&p(2, 460, 10), &[p(3, 30, 9)], 3, lease));
        let leader = Probe {
            is_leader: true,
            ..p(1, 0, 10)
        };
        assert!(!should_campaign(
            &p(2, 460, 10),
            &[leader, p(3, 455, 9)],
            3,
            lease
        ));
        // Within the lease: openraft's own rules.
        assert!(!should_campaign(&p(2, 300, 10), &[p(3, 455, 9)], 3, lease));
        // No majority answered: no.
        assert!(!should_campaign(&p(2, 460, 10), &[], 3, lease));
        assert!(!should_campaign(&p(2, 460, 10), &[p(3, 455, 9)], 5, lease));
        assert!(should_campaign(
            &p(2, 460, 10),
            &[p(3, 455, 9), p(4, 470, 8)],
            5,
            lease
        ));
    }

    #[test]
    fn contact_counts_from_the_last_append() {
        let c = LeaderContact::default();
        assert!(c.since_ms() < 1000);
        c.heard();
        assert!(c.since_ms() < 1000);
    }
}
