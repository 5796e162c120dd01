//! Brick eviction (`POST /bricks/to-evict/{id}`) and the removal of devices and nodes that
//! still hold bricks (state `offline` -> `failed`): every brick is planned a replacement up
//! front (spec 5.6), and one operation moves them one by one, committing each move.

use crate::executor::Executor;
use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use hekate_raft::StoreError;
use serde::Deserialize;

use super::error::ApiError;
use super::respond::parse_optional_body;
use super::{route_id, AppState};
use crate::allocator::{self, DeviceView, Replacement, TagRule};
use crate::ids;
use crate::ops::new_op;
use crate::state::model::{BrickEntry, Eviction, OpKind, OpPlan, VolumeEntry, SUBTYPE_ARBITER};
use crate::state::{self};

const NO_REPLACEMENT: &str = "No Replacement was found for resource requested to be removed";

/// Placeable devices of a cluster, and (node, zone) of a set's other bricks.
type PlanView = (Vec<DeviceView>, Vec<(String, i64)>);

/// The set (brick ids, Gluster order) holding `brick` in `v`.
async fn set_of(st: &AppState, v: &VolumeEntry, brick: &str) -> Result<Vec<String>, ApiError> {
    if let Some(set) = v.brick_sets.iter().find(|s| s.iter().any(|b| b == brick)) {
        return Ok(set.clone());
    }
    // Imported volume: ask Gluster for the order, as Heketi does.
    let (paths, host) = st.replica().read(|r| -> Result<_, StoreError> {
        let mut paths = BTreeMap::new();
        let mut host = String::new();
        for b in &v.bricks {
            if let Some(b) = state::get_brick(r, b)? {
                if let Some(n) = state::get_node(r, &b.node)? {
                    paths.insert(format!("{}:{}", n.storage_host(), b.path), b.id.clone());
                    host = n.manage_host().to_string();
                }
            }
        }
        Ok((paths, host))
    })?;
    let order = st
        .fenced_executor()
        .await?
        .volume_bricks(&host, &v.name)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let ids: Vec<String> = order
        .iter()
        .map(|p| paths.get(p).cloned().ok_or(ApiError::NotFound))
        .collect::<Result<_, _>>()?;
    let size = v.durability.set_size().max(1);
    ids.chunks(size)
        .find(|c| c.iter().any(|b| b == brick))
        .map(|c| c.to_vec())
        .ok_or(ApiError::NotFound)
}

/// Why no replacement plan was made: no device can take a brick (each caller words it), or
/// the request fails as it is.
enum PlanError {
    NoReplacement,
    Api(ApiError),
}

impl<E: Into<ApiError>> From<E> for PlanError {
    fn from(e: E) -> PlanError {
        PlanError::Api(e.into())
    }
}

/// Plans a replacement for every brick, on devices other than `leaving`.
async fn plan(
    st: &AppState,
    bricks: Vec<BrickEntry>,
    leaving: &BTreeSet<String>,
    op: &str,
) -> Result<Vec<Eviction>, PlanError> {
    let mut out = Vec::new();
    let mut taken: BTreeMap<String, u64> = BTreeMap::new();
    for old in bricks {
        let v = st
            .replica()
            .read(|r| state::get_volume(r, &old.volume))?
            .ok_or(ApiError::NotFound)?;
        let set = set_of(st, &v, &old.id).await?;
        let (devices, others) = st.replica().read(|r| -> Result<PlanView, StoreError> {
            let devices = crate::ops::plan::device_views(r, &v.cluster, crate::clock::now_secs())?;
            let mut others = Vec::new();
            for b in set.iter().filter(|b| **b != old.id) {
                if let Some(b) = state::get_brick(r, b)? {
                    let zone = state::get_node(r, &b.node)?.map(|n| n.zone).unwrap_or(0);
                    others.push((b.node.clone(), zone));
                }
            }
            Ok((devices, others))
        })?;
        let devices: Vec<DeviceView> = devices
            .into_iter()
            .filter(|d| !leaving.contains(&d.id))
            .map(|mut d| {
                d.free = d.free.saturating_sub(taken.get(&d.id).copied().unwrap_or(0));
                d
            })
            .collect();
        let opts = crate::ops::plan::interpret(&v.options);
        let tag_rule = opts.tag_rule.as_deref().map(TagRule::parse);
        let tag_rule = tag_rule.transpose().map_err(ApiError::Internal)?;
        let r = Replacement {
            old_device: old.device.clone(),
            size: old.size,
            factor: v.snapshot_factor as f64,
            arbiter_brick: old.subtype == SUBTYPE_ARBITER,
            volume_arbiter: v.arbiter,
            set_size: v.durability.set_size(),
            other_nodes: others.iter().map(|(n, _)| n.clone()).collect(),
            other_zones: others.iter().map(|(_, z)| *z).collect(),
            // Strict if either says so (a volume's `none` does not relax a strict policy here).
            zone_strict: st.policy().zone_strict || opts.zone_strict == Some(true),
            tag_rule,
            seed: allocator::seed_of(&old.id),
        };
        let p = allocator::place_replacement(&devices, &r).ok_or(PlanError::NoReplacement)?;
        *taken.entry(p.device.clone()).or_default() += p.tp_size + p.meta_size;
        let new = crate::ops::planned_brick(p, &old.volume, op);
        out.push(Eviction {
            volume: old.volume.clone(),
            old: old.id.clone(),
            new,
        });
    }
    Ok(out)
}

/// The bricks on these devices.
fn bricks_on(st: &AppState, devices: &[String]) -> Result<Vec<BrickEntry>, ApiError> {
    Ok(st.replica().read(|r| -> Result<Vec<BrickEntry>, StoreError> {
        let mut out = Vec::new();
        for d in devices {
            for b in state::device_brick_ids(r, d)? {
                if let Some(b) = state::get_brick(r, &b)? {
                    out.push(b);
                }
            }
        }
        Ok(out)
    })?)
}

/// Starts the removal of devices (and optionally their node): evict every brick, then mark
/// them failed.
pub async fn start_removal(
    st: &AppState,
    kind: OpKind,
    node: Option<String>,
    devices: Vec<String>,
    healcheck: bool,
) -> Result<Response, ApiError> {
    st.throttle()?;
    let op_id = ids::new_id();
    let leaving: BTreeSet<String> = devices.iter().cloned().collect();
    let evictions = plan(st, bricks_on(st, &devices)?, &leaving, &op_id)
        .await
        .map_err(|e| match e {
            PlanError::NoReplacement => match (&node, devices.first()) {
                (Some(n), Some(d)) => ApiError::Internal(format!(
                    "Unable to remove node [{n}] as no device was found to replace device [{d}]"
                )),
                (_, Some(d)) => ApiError::Internal(format!(
                    "Unable to delete device [{d}] as no device was found to replace it: {NO_REPLACEMENT}"
                )),
                _ => ApiError::Internal(NO_REPLACEMENT.into()),
            },
            PlanError::Api(e) => e,
        })?;
    let mut op = new_op(
        kind,
        OpPlan::Evict {
            node,
            devices,
            evictions,
            healcheck,
        },
        false,
    );
    op.id = op_id;
    st.start_limited(op).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvictOptions {
    #[serde(default)]
    pub healcheck: String,
}

pub async fn evict_brick(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = route_id(&id)?.to_string();
    let opts: EvictOptions = parse_optional_body(&body)?;
    if !matches!(opts.healcheck.as_str(), "" | "enable" | "disable") {
        return Err(super::validate::failed("healcheck: must be a valid value"));
    }
    let brick = st
        .replica()
        .read(|r| state::get_brick(r, &id))?
        .ok_or(ApiError::NotFound)?;
    st.throttle()?;
    let op_id = ids::new_id();
    let fail = |m: String| ApiError::Internal(format!("Failed to set up brick eviction: {m}"));
    if brick.pending.is_some() {
        return Err(fail(format!("Can not evict brick {id}: brick is pending")));
    }
    let evictions = plan(&st, vec![brick], &BTreeSet::new(), &op_id)
        .await
        .map_err(|e| match e {
            PlanError::NoReplacement => fail(NO_REPLACEMENT.into()),
            PlanError::Api(ApiError::Internal(m)) => fail(m),
            PlanError::Api(other) => other,
        })?;
    let healcheck = opts.healcheck != "disable";
    let mut op = new_op(
        OpKind::BrickEvict,
        OpPlan::Evict {
            node: None,
            devices: Vec::new(),
            evictions,
            healcheck,
        },
        false,
    );
    op.id = op_id;
    st.start_limited(op).await.map_err(|e| match e {
        ApiError::Internal(m) => fail(m),
        other => other,
    })
}
