//! Failpoints for drills: a stall the runner takes between the fence's leadership check and
//! the send of a verb, the window a stop-the-world pause (GC, swap, SIGSTOP, a hung disk)
//! opens in a real process. The stalled-leader drill arms one on the leader, moves
//! leadership while it waits, and checks that the nodes refuse the old term's command when
//! it is finally sent.
//!
//! Off unless the configuration enables them (`hekate.failpoints`, never in production):
//! a disabled set refuses to arm, and the runner's check is one atomic load.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One armed stall.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Stall {
    /// The verb (`brick_create`, `volume_destroy`, ..., or `*`).
    pub verb: String,
    /// How long the runner waits before it sends.
    pub ms: u64,
    /// How many verbs it stalls (0 counts as 1).
    pub times: u32,
}

/// What a drill reads back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailpointStatus {
    pub enabled: bool,
    pub armed: Vec<Stall>,
    /// Stalls taken since start.
    pub stalls: u64,
    /// Stalls waiting right now.
    pub stalled_now: u64,
    /// Stalls over (their verb sent since).
    pub released: u64,
    /// The term of the last stalled verb.
    pub last_term: u64,
}

#[derive(Debug, Default)]
pub struct Failpoints {
    enabled: bool,
    any_armed: AtomicBool,
    armed: Mutex<Vec<Stall>>,
    stalls: AtomicU64,
    stalled_now: AtomicU64,
    released: AtomicU64,
    last_term: AtomicU64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FailpointError {
    #[error("failpoints are disabled on this replica (hekate.failpoints is false)")]
    Disabled,
    #[error("invalid stall: {0}")]
    Invalid(String),
}

/// The longest stall accepted: a drill needs seconds, not a wedged runner.
pub const MAX_STALL_MS: u64 = 120_000;

impl Failpoints {
    pub fn new(enabled: bool) -> Failpoints {
        Failpoints {
            enabled,
            ..Default::default()
        }
    }

    pub fn arm(&self, stall: Stall) -> Result<(), FailpointError> {
        if !self.enabled {
            return Err(FailpointError::Disabled);
        }
        if stall.verb.is_empty() || stall.verb.len() > 64 {
            return Err(FailpointError::Invalid("verb must be a verb name or *".into()));
        }
        if stall.ms == 0 || stall.ms > MAX_STALL_MS {
            return Err(FailpointError::Invalid(format!(
                "ms must be between 1 and {MAX_STALL_MS}"
            )));
        }
        let mut armed = self.armed.lock().unwrap_or_else(|e| e.into_inner());
        armed.push(Stall {
            times: stall.times.max(1),
            ..stall
        });
        self.any_armed.store(true, Ordering::SeqCst);
        Ok(())
    }

    pub fn clear(&self) {
        self.armed.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.any_armed.store(false, Ordering::SeqCst);
    }

    pub fn status(&self) -> FailpointStatus {
        FailpointStatus {
            enabled: self.enabled,
            armed: self.armed.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            stalls: self.stalls.load(Ordering::SeqCst),
            stalled_now: self.stalled_now.load(Ordering::SeqCst),
            released: self.released.load(Ordering::SeqCst),
            last_term: self.last_term.load(Ordering::SeqCst),
        }
    }

    /// Takes one matching stall, if armed.
    fn take(&self, verb: &str) -> Option<u64> {
        if !self.any_armed.load(Ordering::SeqCst) {
            return None;
        }
        let mut armed = self.armed.lock().unwrap_or_else(|e| e.into_inner());
        let i = armed.iter().position(|s| s.verb == verb || s.verb == "*")?;
        let ms = armed[i].ms;
        armed[i].times -= 1;
        if armed[i].times == 0 {
            armed.remove(i);
        }
        self.any_armed.store(!armed.is_empty(), Ordering::SeqCst);
        Some(ms)
    }

    /// The runner's failpoint between the fence check and the send.
    pub async fn before_send(&self, verb: &str, term: u64) {
        let Some(ms) = self.take(verb) else { return };
        tracing::warn!(verb, term, ms, "failpoint: stalling before the send");
        self.stalls.fetch_add(1, Ordering::SeqCst);
        self.last_term.store(term, Ordering::SeqCst);
        self.stalled_now.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.stalled_now.fetch_sub(1, Ordering::SeqCst);
        self.released.fetch_add(1, Ordering::SeqCst);
        tracing::warn!(verb, term, "failpoint: stall over, sending");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_refuses_to_arm() {
        let f = Failpoints::new(false);
        let s = Stall {
            verb: "*".into(),
            ms: 10,
            times: 1,
        };
        assert_eq!(f.arm(s), Err(FailpointError::Disabled));
        assert_eq!(f.take("brick_create"), None);
    }

    #[test]
    fn a_stall_is_taken_its_number_of_times() {
        let f = Failpoints::new(true);
        assert!(f
            .arm(Stall {
                verb: "brick_create".into(),
                ms: 0,
                times: 1
            })
            .is_err());
        f.arm(Stall {
            verb: "brick_create".into(),
            ms: 5,
            times: 2,
        })
        .unwrap();
        assert_eq!(f.take("volume_create"), None);
        assert_eq!(f.take("brick_create"), Some(5));
        assert_eq!(f.take("brick_create"), Some(5));
        assert_eq!(f.take("brick_create"), None);
        assert!(f.status().armed.is_empty());
    }
}
