//! Planning a block volume create (spec 1.7): which block-hosting volume (BHV) takes it, or
//! the BHV to create for it. Pure, as the rest of `plan`: one view, the policy, the request.

use hekate_raft::StateReader;
use rand::seq::IndexedRandom;

use super::PlanError;
use crate::config::Policy;
use crate::state::model::{BlockVolumeEntry, BrickEntry, Durability, OpPlan, VolumeEntry};
use crate::state::{self};

/// A block volume's place: its BHV, and the BHV with its bricks when one is created for it.
pub struct BlockPlace {
    pub block: BlockVolumeEntry,
    pub new_bhv: Option<VolumeEntry>,
    pub bricks: Vec<BrickEntry>,
}

fn fail(m: impl std::fmt::Display) -> PlanError {
    PlanError::Failed(format!("Failed to allocate new block volume: {m}"))
}

/// The candidate clusters that take block volumes, or Heketi's refusal (spec 5.7).
fn block_clusters(r: &impl StateReader, candidates: &[String]) -> Result<Vec<String>, PlanError> {
    let mut eligible = Vec::new();
    let mut reasons = Vec::new();
    for id in candidates {
        match state::get_cluster(r, id)? {
            None => reasons.push((id.clone(), "not found".to_string())),
            Some(c) if !c.file && !c.block => {
                reasons.push((id.clone(), "Cluster has disabled all volume types".into()))
            }
            Some(c) if !c.block => reasons.push((
                id.clone(),
                "Cluster does not support requested volume type".into(),
            )),
            Some(_) => eligible.push(id.clone()),
        }
    }
    if !eligible.is_empty() {
        return Ok(eligible);
    }
    Err(fail(if reasons.len() == 1 {
        reasons.remove(0).1
    } else {
        let lines: String = reasons
            .iter()
            .map(|(c, r)| format!("\nCluster {c}: {r}"))
            .collect();
        format!("No eligible cluster for volume{lines}")
    }))
}

/// The BHVs of `clusters` that can take `block`: visible, not busy, unrestricted, with the
/// free space, and without a block volume of that name.
fn fitting_bhvs(
    r: &impl StateReader,
    clusters: &[String],
    block: &BlockVolumeEntry,
) -> Result<Vec<VolumeEntry>, PlanError> {
    let mut out = Vec::new();
    for c in clusters {
        for id in state::cluster_volume_ids(r, c)? {
            let Some(v) = state::get_volume(r, &id)? else {
                continue;
            };
            let fits = v.block
                && v.pending.is_none()
                && !v.hidden
                && v.block_restriction.is_empty()
                && v.block_free >= block.size;
            if fits
                && r.get(&state::keys::blockvolume_name(&v.id, &block.name))?
                    .is_none()
            {
                out.push(v);
            }
        }
    }
    Ok(out)
}

/// Whether a block volume create that makes a BHV is in flight (Heketi answers 429 then).
fn bhv_create_in_flight(r: &impl StateReader) -> Result<bool, PlanError> {
    for id in state::pending_op_ids(r)? {
        if let Some(op) = state::get_op(r, &id)? {
            if matches!(op.plan, OpPlan::BlockVolumeCreate { new_bhv: Some(_), .. }) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The BHV Heketi would create: replica 3, `block_hosting_volume_size` GiB, its options
/// before the request's.
fn new_bhv_entry(p: &Policy) -> VolumeEntry {
    let id = crate::ids::new_id();
    let size = p.bhv_size_gib;
    let options: Vec<String> = p
        .pre_options
        .iter()
        .chain(p.bhv_options.iter())
        .chain(p.post_options.iter())
        .cloned()
        .collect();
    VolumeEntry {
        name: format!("vol_{id}"),
        id,
        cluster: String::new(),
        size,
        durability: Durability {
            kind: "replicate".into(),
            replica: Some(3),
            data: None,
            redundancy: None,
        },
        gid: 0,
        arbiter: super::interpret(&options).arbiter,
        options,
        block: true,
        snapshot_enable: false,
        snapshot_factor: 1.0,
        bricks: Default::default(),
        pending: None,
        hidden: false,
        block_free: size * 98 / 100,
        block_reserved: size - size * 98 / 100,
        block_restriction: String::new(),
        request_clusters: Vec::new(),
        brick_sets: Vec::new(),
    }
}

/// Where `block` (cluster and BHV unset) goes: a fitting BHV chosen at random, or a new one
/// when `auto_create_block_hosting_volume` allows (spec 1.7, steps 1-4).
pub fn place_block(
    r: &impl StateReader,
    p: &Policy,
    block: &BlockVolumeEntry,
    candidates: &[String],
    op: &str,
    now: u64,
) -> Result<BlockPlace, PlanError> {
    let clusters = block_clusters(r, candidates)?;
    let fitting = fitting_bhvs(r, &clusters, block)?;
    if let Some(bhv) = fitting.choose(&mut rand::rng()) {
        let mut b = block.clone();
        b.cluster = bhv.cluster.clone();
        b.bhv = bhv.id.clone();
        return Ok(BlockPlace {
            block: b,
            new_bhv: None,
            bricks: Vec::new(),
        });
    }
    let room = p.bhv_size_gib * 98 / 100;
    if block.size > room {
        return Err(fail(format!(
            "The size configured for automatic creation of block hosting volumes ({}) is too small to host the requested block volume of size {}. The available size on this block hosting volume, minus overhead, is {room}. Please create a sufficiently large block hosting volume manually.",
            p.bhv_size_gib, block.size
        )));
    }
    if bhv_create_in_flight(r)? {
        return Err(PlanError::Busy);
    }
    if !p.auto_create_bhv {
        return Err(fail(
            "Block Hosting Volume Creation is disabled. Create a Block hosting volume and try again.",
        ));
    }
    let v = new_bhv_entry(p);
    let records = state::all(r, state::keys::CLUSTER_PREFIX)?;
    let (cluster, bricks) =
        super::place_volume(r, p, &v, &clusters, &records, op, now).map_err(|e| match e {
            PlanError::Failed(m) => fail(m.trim_start_matches("Failed to allocate new volume: ")),
            other => other,
        })?;
    let mut v = v;
    v.cluster = cluster;
    let mut b = block.clone();
    b.cluster = v.cluster.clone();
    b.bhv = v.id.clone();
    Ok(BlockPlace {
        block: b,
        new_bhv: Some(v),
        bricks,
    })
}
