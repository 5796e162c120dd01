//! The volume and operation policy from `heketi.json`'s `glusterfs` keys, with Heketi's
//! defaults (spec 3.2) except the in-flight limit, which Hekate raises from 8 to 64. Part of
//! the configuration (below the API and the runner, which both read it).

use crate::allocator::GIB_KIB;
use crate::config::GlusterfsConfig;

#[derive(Debug, Clone)]
pub struct Policy {
    pub brick_min_kib: u64,
    pub brick_max_kib: u64,
    pub max_bricks: usize,
    pub average_file_kib: u64,
    pub pre_options: Vec<String>,
    pub post_options: Vec<String>,
    pub zone_strict: bool,
    /// Negative: unlimited.
    pub max_volumes_per_cluster: i64,
    pub max_inflight: usize,
    pub queue_retention_secs: u64,
    /// At most this many finished operations are retained (`queue_retention_max_operations`).
    pub queue_retention_max: u64,
    /// How long a poll of a pending operation waits for its end (`queue_poll_hold_ms`).
    pub queue_hold: std::time::Duration,
    /// How many times the runner attempts an operation whose remote steps fail (the steps
    /// are idempotent), backing off between attempts. `operation_retry_limits.volume_create`
    /// when set, else 3.
    pub op_attempts: u32,
    /// Periodic reconcile (report only) on the leader: first run and period. Heketi's
    /// background-cleaner keys; `disable_background_cleaner` turns it off.
    pub reconcile_first_secs: u64,
    pub reconcile_every_secs: Option<u64>,
    /// The node health monitor on the leader (`ops::health`): first round and period.
    /// Heketi's `*_monitor_gluster_nodes` keys; None when disabled.
    pub health_first_secs: u64,
    pub health_every_secs: Option<u64>,
    /// Block volumes (spec 1.7): create a block-hosting volume when none fits
    /// (`auto_create_block_hosting_volume`), of `block_hosting_volume_size` GiB (1024) with
    /// `block_hosting_volume_options` (`group gluster-block`) before the request options.
    pub auto_create_bhv: bool,
    pub bhv_size_gib: u64,
    pub bhv_options: Vec<String>,
    /// gluster-block `prealloc full`, or `no` when the SSH executor's `block_prealloc` is `no`.
    pub block_prealloc: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::from_config(&GlusterfsConfig::default())
    }
}

fn or(v: u64, default: u64) -> u64 {
    if v == 0 {
        default
    } else {
        v
    }
}

impl Policy {
    pub fn from_config(g: &GlusterfsConfig) -> Policy {
        Policy {
            brick_min_kib: or(g.brick_min_size_gb, 1) * GIB_KIB,
            brick_max_kib: or(g.brick_max_size_gb, 4096) * GIB_KIB,
            max_bricks: or(g.max_bricks_per_volume, 32) as usize,
            average_file_kib: or(g.average_file_size_kb, 64),
            pre_options: g
                .pre_request_volume_options
                .split(',')
                .map(|s| s.trim().to_string())
                .collect(),
            post_options: g
                .post_request_volume_options
                .split(',')
                .map(|s| s.trim().to_string())
                .collect(),
            zone_strict: g.zone_checking == "strict",
            max_volumes_per_cluster: if g.max_volumes_per_cluster == 0 {
                1000
            } else {
                g.max_volumes_per_cluster
            },
            max_inflight: or(g.max_inflight_operations, 64) as usize,
            queue_retention_secs: or(g.queue_retention_seconds, 3600),
            queue_retention_max: or(g.queue_retention_max_operations, 10_000),
            queue_hold: std::time::Duration::from_millis(g.queue_poll_hold_ms.unwrap_or(500).min(10_000)),
            op_attempts: g
                .operation_retry_limits
                .as_ref()
                .and_then(|v| v.get("volume_create")?.as_u64())
                .filter(|n| *n > 0)
                .map_or(3, |n| n.min(20) as u32),
            reconcile_first_secs: or(g.start_time_background_cleaner, 60),
            reconcile_every_secs: (!g.disable_background_cleaner)
                .then(|| or(g.refresh_time_background_cleaner, 3600)),
            health_first_secs: or(g.start_time_monitor_gluster_nodes, 10),
            health_every_secs: (!g.disable_monitor_gluster_nodes)
                .then(|| or(g.refresh_time_monitor_gluster_nodes, 120)),
            auto_create_bhv: g.auto_create_block_hosting_volume,
            bhv_size_gib: or(g.block_hosting_volume_size, 1024),
            bhv_options: if g.block_hosting_volume_options.trim().is_empty() {
                "group gluster-block"
            } else {
                g.block_hosting_volume_options.as_str()
            }
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
            block_prealloc: g.sshexec.as_ref().is_none_or(|s| s.block_prealloc != "no"),
        }
    }
}
