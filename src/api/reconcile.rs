//! `GET /reconcile` (report), `POST /reconcile` (`{"repair": true}` repairs) and Heketi's
//! `GET /internal/state/examine/gluster`. All run on the leader (the forwarding layer sends
//! them there) and read the nodes through the fence; see [`crate::reconcile`].

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::respond::{json, parse_optional_body};
use super::AppState;
use crate::reconcile::{self, ReconcileError, Report};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReconcileRequest {
    #[serde(default)]
    repair: bool,
}

async fn run(st: &AppState, repair: bool) -> Result<Report, ApiError> {
    reconcile::run(st.replica(), st.options().exec.clone(), repair)
        .await
        .map_err(|e| match e {
            ReconcileError::NotLeader(m) => ApiError::Unavailable(format!("reconcile: {m}; retry")),
            ReconcileError::State(m) => ApiError::Internal(m),
        })
}

pub async fn report(State(st): State<AppState>) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &run(&st, false).await?))
}

pub async fn repair(State(st): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req: ReconcileRequest = parse_optional_body(&body)?;
    Ok(json(StatusCode::OK, &run(&st, req.repair).await?))
}

#[derive(Serialize)]
struct Examined {
    heketidb: serde_json::Value,
    report: Vec<String>,
    findings: Vec<reconcile::compare::Finding>,
}

/// Heketi's examiner shape: the DB dump and report lines; Hekate adds its typed findings
/// (instead of Heketi's raw per-node command outputs).
pub async fn examine(State(st): State<AppState>) -> Result<Response, ApiError> {
    let r = run(&st, false).await?;
    let dump = st
        .replica()
        .read(|v| crate::dump::export(v))
        .map_err(|e| ApiError::Internal(format!("Could not construct dump from DB: {e}")))?;
    let heketidb = serde_json::from_str(&crate::dump::to_go_json(&dump))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let body = Examined {
        heketidb,
        report: r.lines(),
        findings: r.findings,
    };
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    body.serialize(&mut ser)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut resp = json(StatusCode::OK, &());
    *resp.body_mut() = axum::body::Body::from(format!("{}\n", String::from_utf8_lossy(&out)));
    Ok(resp)
}
