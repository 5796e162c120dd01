//! `GET /metrics`: Heketi's gauges (spec 1.13, same names and labels) computed from this
//! replica's applied state at scrape time, plus Hekate's Raft and operation gauges and the
//! footprint gauges (`api::footprint`: RocksDB memory, disk, log, retained operations). Outside
//! auth, as in Heketi; a local read (no leader round trip), so every replica can be scraped.
//! Computed on the blocking pool, once per second at most (cached, single flight): a scrape
//! flood cannot occupy the async workers.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hekate_raft::{StateReader, StoreError};
use prometheus::{Encoder, GaugeVec, Opts, Registry, TextEncoder};

use super::AppState;
use crate::state::{self};

pub(super) fn gauge(
    reg: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<GaugeVec, prometheus::Error> {
    let g = GaugeVec::new(Opts::new(name, help), labels)?;
    reg.register(Box::new(g.clone()))?;
    Ok(g)
}

const DEV_LABELS: [&str; 6] = [
    "cluster",
    "hostname",
    "storage_hostname",
    "id",
    "device",
    "pv_uuid",
];

fn topology_metrics(reg: &Registry, r: &impl StateReader) -> Result<(), Box<dyn std::error::Error>> {
    let up = gauge(reg, "heketi_up", "Is heketi running?", &[])?;
    let clusters = gauge(reg, "heketi_cluster_count", "Number of clusters", &[])?;
    let volumes = gauge(
        reg,
        "heketi_volumes_count",
        "Number of volumes on cluster",
        &["cluster"],
    )?;
    let bvols = gauge(
        reg,
        "heketi_block_volumes_count",
        "Number of block volumes on cluster",
        &["cluster"],
    )?;
    let nodes = gauge(
        reg,
        "heketi_nodes_count",
        "Number of nodes on cluster",
        &["cluster"],
    )?;
    let devices = gauge(
        reg,
        "heketi_device_count",
        "Number of devices on node",
        &["cluster", "hostname", "storage_hostname"],
    )?;
    let per_device = DeviceGauges::register(reg)?;
    let ids = state::cluster_ids(r)?;
    clusters.with_label_values::<&str>(&[]).set(ids.len() as f64);
    for cid in ids {
        let Some(c) = state::get_cluster(r, &cid)? else {
            continue;
        };
        volumes
            .with_label_values(&[cid.as_str()])
            .set(c.volume_count as f64);
        bvols
            .with_label_values(&[cid.as_str()])
            .set(c.blockvolumes.len() as f64);
        nodes.with_label_values(&[cid.as_str()]).set(c.nodes.len() as f64);
        for nid in &c.nodes {
            let Some(n) = state::get_node(r, nid)? else {
                continue;
            };
            let (host, shost) = (n.manage_host(), n.storage_host());
            devices
                .with_label_values(&[cid.as_str(), host, shost])
                .set(n.devices.len() as f64);
            for did in &n.devices {
                let Some(d) = state::get_device(r, did)? else {
                    continue;
                };
                let l = [
                    cid.as_str(),
                    host,
                    shost,
                    d.id.as_str(),
                    d.name.as_str(),
                    d.pv_uuid.as_str(),
                ];
                per_device.set(&l, &d);
            }
        }
    }
    operation_metrics(reg, r)?;
    up.with_label_values::<&str>(&[]).set(1.0);
    Ok(())
}

/// The gauges of each device (labels [`DEV_LABELS`]): sizes in KiB and bytes, bricks.
struct DeviceGauges {
    size: GaugeVec,
    free: GaugeVec,
    used: GaugeVec,
    size_b: GaugeVec,
    free_b: GaugeVec,
    used_b: GaugeVec,
    bricks: GaugeVec,
}

impl DeviceGauges {
    fn register(reg: &Registry) -> Result<DeviceGauges, prometheus::Error> {
        let size = gauge(reg, "heketi_device_size", "Total size of the device", &DEV_LABELS)?;
        let free = gauge(
            reg,
            "heketi_device_free",
            "Amount of Free space available on the device",
            &DEV_LABELS,
        )?;
        let used = gauge(
            reg,
            "heketi_device_used",
            "Amount of space used on the device",
            &DEV_LABELS,
        )?;
        let size_b = gauge(
            reg,
            "heketi_device_size_bytes",
            "Total size of the device",
            &DEV_LABELS,
        )?;
        let free_b = gauge(
            reg,
            "heketi_device_free_bytes",
            "Amount of Free space available on the device",
            &DEV_LABELS,
        )?;
        let used_b = gauge(
            reg,
            "heketi_device_used_bytes",
            "Amount of space used on the device",
            &DEV_LABELS,
        )?;
        let bricks = gauge(
            reg,
            "heketi_device_brick_count",
            "Number of bricks on device",
            &DEV_LABELS,
        )?;
        Ok(DeviceGauges {
            size,
            free,
            used,
            size_b,
            free_b,
            used_b,
            bricks,
        })
    }

    fn set(&self, l: &[&str], d: &crate::state::DeviceEntry) {
        self.size.with_label_values(l).set(d.total as f64);
        self.free.with_label_values(l).set(d.free as f64);
        self.used.with_label_values(l).set(d.used as f64);
        self.size_b.with_label_values(l).set(d.total as f64 * 1024.0);
        self.free_b.with_label_values(l).set(d.free as f64 * 1024.0);
        self.used_b.with_label_values(l).set(d.used as f64 * 1024.0);
        self.bricks.with_label_values(l).set(d.brick_count as f64);
    }
}

/// Heketi's operation gauges: every pending operation is in flight (and new).
fn operation_metrics(reg: &Registry, r: &impl StateReader) -> Result<(), Box<dyn std::error::Error>> {
    let pending = state::pending_op_ids(r)?.len() as f64;
    for (name, v) in [
        ("heketi_operations_total_count", pending),
        ("heketi_operations_inFlight_count", pending),
        ("heketi_operations_new_count", pending),
        ("heketi_operations_stale_count", 0.0),
        ("heketi_operations_failed_count", 0.0),
    ] {
        gauge(
            reg,
            name,
            "Operations (Heketi's names; every pending operation is in flight)",
            &[],
        )?
        .with_label_values::<&str>(&[])
        .set(v);
    }
    Ok(())
}

fn raft_metrics(reg: &Registry, st: &AppState) -> Result<(), prometheus::Error> {
    let s = st.replica().status();
    let leader = matches!(s.state, hekate_raft::Role::Leader);
    for (name, help, v) in [
        ("hekate_raft_term", "Current Raft term", s.term as f64),
        (
            "hekate_raft_is_leader",
            "1 on the leader",
            if leader { 1.0 } else { 0.0 },
        ),
        (
            "hekate_raft_leader_known",
            "1 if this replica knows a leader",
            if s.leader.is_some() { 1.0 } else { 0.0 },
        ),
        (
            "hekate_raft_last_log_index",
            "Last log index",
            s.last_log_index.unwrap_or(0) as f64,
        ),
        (
            "hekate_raft_last_applied",
            "Last applied log index",
            s.last_applied.unwrap_or(0) as f64,
        ),
        (
            "hekate_raft_snapshot_index",
            "Index of the current snapshot",
            s.snapshot.unwrap_or(0) as f64,
        ),
        ("hekate_raft_members", "Number of members", s.members.len() as f64),
        (
            "hekate_raft_voters",
            "Number of voters",
            s.members.iter().filter(|m| m.voter).count() as f64,
        ),
    ] {
        gauge(reg, name, help, &[])?.with_label_values::<&str>(&[]).set(v);
    }
    Ok(())
}

/// How long a computed page is served again: scrapes (unauthenticated) cost at most one
/// walk of the state per second, whatever their rate.
const CACHE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// One computed page, shared by concurrent scrapes.
pub(crate) type MetricsCache = tokio::sync::Mutex<Option<(std::time::Instant, Response<Bytes>)>>;

pub async fn metrics(State(st): State<AppState>) -> Response {
    // Single flight: concurrent scrapes wait for the one computation in progress.
    let mut cached = st.metrics_cache().lock().await;
    if let Some((at, page)) = cached.as_ref() {
        if at.elapsed() < CACHE_FOR {
            return clone_page(page);
        }
    }
    // The walk of the whole state runs on the blocking pool, not on the async workers.
    let st2 = st.clone();
    let footprint = super::footprint::current(&st).await;
    let page = match tokio::task::spawn_blocking(move || compute(&st2, footprint)).await {
        Ok(p) => p,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("metrics: {e}\n")).into_response(),
    };
    let out = clone_page(&page);
    *cached = Some((std::time::Instant::now(), page));
    out
}

fn clone_page(p: &Response<Bytes>) -> Response {
    let mut r = Response::new(axum::body::Body::from(p.body().clone()));
    *r.status_mut() = p.status();
    *r.headers_mut() = p.headers().clone();
    r
}

fn compute(st: &AppState, footprint: Result<super::footprint::Footprint, String>) -> Response<Bytes> {
    let reg = Registry::new();
    let topo = st
        .replica()
        .read(|r| {
            topology_metrics(&reg, r)?;
            super::health::metrics(&reg, r)
        })
        .map_err(|e| StoreError::Invalid(e.to_string()));
    if let Err(e) = topo {
        tracing::warn!("metrics: topology unreadable: {e}");
        let reg = Registry::new();
        if let Ok(g) = gauge(&reg, "heketi_up", "Is heketi running?", &[]) {
            g.with_label_values::<&str>(&[]).set(0.0);
        }
        return encode(&reg);
    }
    if let Err(e) = raft_metrics(&reg, st) {
        tracing::warn!("metrics: raft gauges: {e}");
    }
    if let Err(e) = footprint.and_then(|f| super::footprint::register(&reg, st, f)) {
        tracing::warn!("metrics: footprint gauges: {e}");
    }
    encode(&reg)
}

fn encode(reg: &Registry) -> Response<Bytes> {
    let mut buf = Vec::new();
    let enc = TextEncoder::new();
    let mut r = Response::new(Bytes::new());
    if let Err(e) = enc.encode(&reg.gather(), &mut buf) {
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        *r.body_mut() = Bytes::from(e.to_string());
        return r;
    }
    *r.body_mut() = Bytes::from(buf);
    // Go's promhttp sends the charset too; scrapers accept either.
    if let Ok(v) = HeaderValue::from_str(&format!("{}; charset=utf-8", enc.format_type())) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}
