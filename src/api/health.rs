//! `GET /health/nodes` and the `hekate_node_health` gauge: what the leader's health monitor
//! (`ops::health`) last saw of each node, read from the replicated state (any replica
//! answers). A Hekate addition: Heketi keeps this cache in memory and exposes none of it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use hekate_raft::{StateReader, StoreError};
use prometheus::Registry;
use serde::Serialize;

use super::error::ApiError;
use super::respond::json;
use super::AppState;
use crate::ops::new_op;
use crate::state::model::{NodeHealth, OpKind, OpPlan};
use crate::state::{self, NodeEntry};

#[derive(Debug, Serialize)]
struct Monitor {
    enabled: bool,
    start_seconds: u64,
    refresh_seconds: Option<u64>,
    expires_seconds: u64,
}

#[derive(Debug, Serialize)]
struct NodeRow {
    id: String,
    cluster: String,
    manage: String,
    state: String,
    /// `up`, `down` (placement skips it), `expired` (seen down over 2 hours ago: used again),
    /// or `unknown` (never checked).
    health: &'static str,
    checked: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Report {
    monitor: Monitor,
    nodes: Vec<NodeRow>,
}

fn health_word(h: Option<NodeHealth>, now: u64) -> &'static str {
    match h {
        None => "unknown",
        Some(h) if h.up => "up",
        Some(h) if h.down_at(now) => "down",
        Some(_) => "expired",
    }
}

fn rows(r: &impl StateReader, now: u64) -> Result<Vec<NodeRow>, StoreError> {
    let mut out = Vec::new();
    for n in state::all::<NodeEntry>(r, state::keys::NODE_PREFIX)? {
        let h = state::node_health(r, &n.id)?;
        out.push(NodeRow {
            health: health_word(h, now),
            checked: h.map(|h| h.checked),
            manage: n.manage_host().to_string(),
            id: n.id,
            cluster: n.cluster,
            state: n.state.to_string(),
        });
    }
    Ok(out)
}

pub async fn nodes(State(st): State<AppState>) -> Result<Response, ApiError> {
    let now = crate::clock::now_secs();
    let nodes = st.replica().read(|r| rows(r, now))?;
    let p = st.policy();
    let monitor = Monitor {
        enabled: p.health_every_secs.is_some(),
        start_seconds: p.health_first_secs,
        refresh_seconds: p.health_every_secs,
        expires_seconds: NodeHealth::EXPIRES_SECS,
    };
    Ok(json(StatusCode::OK, &Report { monitor, nodes }))
}

/// `POST /health/nodes/{id}`: checks the node's glusterd now, as an operation run by the
/// leader through the fence (202, then the queue: 204 when glusterd answered, 500 with the
/// node's error when not); either way the health is recorded, as the monitor would.
pub async fn check(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = super::route_id(&id)?;
    super::nodes::visible_node(&st, id)?;
    let plan = OpPlan::NodeHealth { node: id.to_string() };
    st.start(new_op(OpKind::NodeHealth, plan, false)).await
}

/// `hekate_node_health{cluster,hostname,id}`: 1 up, 0 down; absent when unknown or expired.
pub fn metrics(reg: &Registry, r: &impl StateReader) -> Result<(), Box<dyn std::error::Error>> {
    let g = super::metrics::gauge(
        reg,
        "hekate_node_health",
        "glusterd as the health monitor last saw it: 1 up, 0 down (placement skips the node)",
        &["cluster", "hostname", "id"],
    )?;
    for row in rows(r, crate::clock::now_secs())? {
        let v = match row.health {
            "up" => 1.0,
            "down" => 0.0,
            _ => continue,
        };
        g.with_label_values(&[row.cluster.as_str(), row.manage.as_str(), row.id.as_str()])
            .set(v);
    }
    Ok(())
}
