//! Raft timing and log-retention settings, with the defaults Hekate ships and why.
//!
//! Defaults (see docs/design/raft-state.md, "Timing"): heartbeat 50 ms, election timeout
//! 150-300 ms. openraft 0.9 draws each replica's election timeout once per process and makes
//! a follower refuse votes for `election_timeout_max` after it last heard the leader (the
//! leader lease); a follower campaigns by itself only after the lease plus its own timeout
//! (450-600 ms without a heartbeat), which keeps elections rare under load on 2 cores. The
//! assisted election (`crate::assist`) makes a crash cost about the lease (300 ms).
//!
//! Two bounds are Hekate's own, not openraft's: `check_quorum_ms`, after which a leader that
//! has heard from no quorum stops calling itself ready, refuses proposals and steps down
//! (see [`crate::quorum`]), and `write_timeout_ms`, after which a proposal that was accepted
//! but not committed is answered as "outcome unknown" instead of hanging.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSettings {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many entries since the last one.
    pub snapshot_logs_since_last: u64,
    /// Entries kept in the log behind the last snapshot, so a lagging follower catches up from
    /// the log instead of a snapshot where it can.
    pub logs_to_keep: u64,
    /// Snapshot chunk size for the chunked install RPC.
    pub snapshot_chunk_bytes: u64,
    /// How long one snapshot chunk RPC may take. The last chunk's answer waits for the
    /// receiver to install the whole snapshot (about 2 s for 140 MB, 100,000 volumes), and a
    /// timed-out stream starts over from the first chunk, so this bounds more than a transfer.
    pub snapshot_rpc_timeout_ms: u64,
    /// A leader that has heard from no quorum for this long refuses proposals ("not
    /// accepted") and steps down; at half of it, it is no longer ready.
    /// 0 = `election_timeout_max_ms`.
    pub check_quorum_ms: u64,
    /// How long a proposal accepted by the leader may wait for its commit before the caller
    /// is told that its outcome is unknown (it may still commit). Also bounds the quorum
    /// confirmation of a linearizable read.
    pub write_timeout_ms: u64,
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            heartbeat_ms: 50,
            election_timeout_min_ms: 150,
            election_timeout_max_ms: 300,
            snapshot_logs_since_last: 5000,
            logs_to_keep: 5000,
            snapshot_chunk_bytes: 3 * 1024 * 1024,
            snapshot_rpc_timeout_ms: 30_000,
            check_quorum_ms: 0,
            write_timeout_ms: 3_000,
        }
    }
}

impl RaftSettings {
    /// The check-quorum bound: `check_quorum_ms`, or the maximum election timeout (the
    /// followers' leader lease: a leader silent that long is about to be replaced anyway).
    pub fn check_quorum(&self) -> std::time::Duration {
        let ms = if self.check_quorum_ms == 0 {
            self.election_timeout_max_ms
        } else {
            self.check_quorum_ms
        };
        std::time::Duration::from_millis(ms)
    }

    pub fn write_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.write_timeout_ms)
    }

    /// Checks the settings and builds openraft's config; the error names the offending key.
    pub fn to_openraft(&self, cluster_name: &str) -> Result<openraft::Config, String> {
        if self.heartbeat_ms == 0 {
            return Err("raft.timeouts.heartbeat_ms: must be > 0".into());
        }
        if self.election_timeout_min_ms <= self.heartbeat_ms {
            return Err("raft.timeouts.election_timeout_min_ms: must be greater than heartbeat_ms".into());
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            return Err(
                "raft.timeouts.election_timeout_max_ms: must be greater than election_timeout_min_ms".into(),
            );
        }
        if self.snapshot_logs_since_last == 0 {
            return Err("raft.timeouts.snapshot_logs_since_last: must be > 0".into());
        }
        if self.check_quorum_ms != 0 && self.check_quorum_ms <= self.heartbeat_ms {
            return Err("raft.timeouts.check_quorum_ms: must be greater than heartbeat_ms (or 0)".into());
        }
        if self.write_timeout_ms < 100 {
            return Err("raft.timeouts.write_timeout_ms: must be >= 100".into());
        }
        if self.snapshot_chunk_bytes < 1024 {
            return Err("raft.timeouts.snapshot_chunk_bytes: must be >= 1024".into());
        }
        if self.snapshot_rpc_timeout_ms < 1000 {
            return Err("raft.timeouts.snapshot_rpc_timeout_ms: must be >= 1000".into());
        }
        let cfg = openraft::Config {
            cluster_name: cluster_name.to_string(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            install_snapshot_timeout: self.snapshot_rpc_timeout_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: self.logs_to_keep,
            snapshot_max_chunk_size: self.snapshot_chunk_bytes,
            // Purge in steps of a tenth of the snapshot interval (purge_end only moves when a
            // snapshot is built, so bigger batches only delay it).
            purge_batch_size: (self.snapshot_logs_since_last / 10).max(1),
            ..Default::default()
        };
        cfg.validate().map_err(|e| format!("raft.timeouts: {e}"))
    }
}
