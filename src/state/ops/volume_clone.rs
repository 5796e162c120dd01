//! Volume clone (`POST /volumes/{id}/clone`): the source is marked and the clone's name
//! taken; done, the clone's bricks (named by Gluster, sharing their source bricks' thin
//! pools) are recorded and the clone shows; failed, the name is given back.

use hekate_raft::{StateReader, StoreError, Txn};

use super::super::command::Outcome;
use super::super::model::{BrickEntry, ExecReport, VolumeEntry};
use super::super::{get_brick, get_cluster, get_device, get_volume, keys, put};
use super::shared::IN_USE;
use super::R;

pub fn begin(source: &str, clone: &VolumeEntry, op: &str, txn: &mut Txn<'_>) -> R {
    let Some(mut v) = get_volume(txn, source)? else {
        return Ok(Outcome::NotFound);
    };
    if v.hidden {
        return Ok(Outcome::NotFound);
    }
    if v.pending.is_some() {
        return Ok(Outcome::Failed(format!("Failed clone volume {source}: {IN_USE}")));
    }
    if v.block {
        return Ok(Outcome::Failed(format!(
            "Failed clone volume {source}: Cloning of block hosting volumes is not supported"
        )));
    }
    let name_key = keys::volume_name(&clone.cluster, &clone.name);
    if txn.get(&name_key)?.is_some() {
        return Ok(Outcome::Failed(format!(
            "Failed clone volume {source}: Volume name '{}' already in use",
            clone.name
        )));
    }
    v.pending = Some(op.to_string());
    put(txn, keys::volume(source), &v)?;
    let mut c = clone.clone();
    c.pending = Some(op.to_string());
    c.hidden = true;
    put(txn, keys::volume(&c.id), &c)?;
    txn.put(name_key, c.id.as_bytes().to_vec());
    Ok(Outcome::Done)
}

/// The clone's bricks share their source bricks' thin pools: they take no device space.
pub fn finish(
    source: &str,
    clone: &VolumeEntry,
    report: &ExecReport,
    txn: &mut Txn<'_>,
) -> Result<Option<String>, StoreError> {
    let location = Some(format!("/volumes/{}", clone.id));
    let Some(mut c) = get_volume(txn, &clone.id)? else {
        return Ok(location);
    };
    let mut order = Vec::new();
    for (i, (src, path, lv)) in report.clones.iter().enumerate() {
        let Some(sb) = get_brick(txn, src)? else { continue };
        let id = derived_id(&clone.id, i);
        let b = BrickEntry {
            id: id.clone(),
            path: path.clone(),
            device: sb.device.clone(),
            node: sb.node.clone(),
            volume: clone.id.clone(),
            size: sb.size,
            tp_size: 0,
            pool_metadata_size: 0,
            subtype: sb.subtype,
            pending: None,
            lvm_thin_pool: Some(sb.thin_pool()),
            lvm_lv: Some(lv.clone()),
            pool_shared: true,
        };
        if !sb.pool_shared {
            let mut sb = sb.clone();
            sb.pool_shared = true;
            put(txn, keys::brick(&sb.id), &sb)?;
        }
        put(txn, keys::brick(&id), &b)?;
        if let Some(mut d) = get_device(txn, &b.device)? {
            d.brick_count = d.brick_count.saturating_add(1);
            put(txn, keys::device(&d.id), &d)?;
            txn.put(keys::device_brick(&d.id, &id), Vec::new());
        }
        c.bricks.insert(id.clone());
        order.push(id);
    }
    let set = c.durability.set_size().max(1);
    c.brick_sets = order.chunks(set).map(|x| x.to_vec()).collect();
    c.pending = None;
    c.hidden = false;
    put(txn, keys::volume(&c.id), &c)?;
    if let Some(mut cl) = get_cluster(txn, &c.cluster)? {
        cl.volume_count = cl.volume_count.saturating_add(1);
        put(txn, keys::cluster(&cl.id), &cl)?;
        txn.put(keys::cluster_volume(&cl.id, &c.id), Vec::new());
    }
    if let Some(mut v) = get_volume(txn, source)? {
        v.pending = None;
        put(txn, keys::volume(source), &v)?;
    }
    Ok(location)
}

/// A deterministic 32-hex id for the i-th brick of a clone (`apply` may not draw random ids).
fn derived_id(volume: &str, i: usize) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(format!("{volume}/brick/{i}").as_bytes())[..16])
}

/// The clone's name, the source (by name) and its bricks' devices (the snapshot uses them).
pub fn holds(
    h: &mut super::Holds,
    r: &impl StateReader,
    source: &str,
    clone: &VolumeEntry,
) -> Result<(), StoreError> {
    h.volumes.insert(clone.name.clone());
    if let Some(v) = get_volume(r, source)? {
        h.volumes.insert(v.name.clone());
        for b in &v.bricks {
            h.device_of(r, b)?;
        }
    }
    Ok(())
}

pub fn fail(source: &str, clone: &VolumeEntry, txn: &mut Txn<'_>) -> R {
    txn.delete(keys::volume_name(&clone.cluster, &clone.name));
    txn.delete(keys::volume(&clone.id));
    if let Some(mut v) = get_volume(txn, source)? {
        v.pending = None;
        put(txn, keys::volume(source), &v)?;
    }
    Ok(Outcome::Done)
}
