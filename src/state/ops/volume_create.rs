//! Volume create (`POST /volumes`): the name is taken and every brick's space reserved
//! (re-checked against the devices), the volume recorded hidden; it shows, counted in its
//! cluster, once Gluster has it, and everything is given back if it failed.

use hekate_raft::{StateReader, StoreError, Txn};

use super::super::command::Outcome;
use super::super::model::{BrickEntry, VolumeEntry};
use super::super::{get_cluster, get_volume, keys, put};
use super::shared::{clear_brick_pending, release, reserve, too_big};
use super::R;

pub fn begin(v: &VolumeEntry, bricks: &[BrickEntry], op: &str, txn: &mut Txn<'_>) -> R {
    if v.size > crate::validate::MAX_VOLUME_GIB
        || bricks
            .iter()
            .any(|b| b.allocation() > crate::validate::MAX_KIB || b.size > crate::validate::MAX_KIB)
    {
        return Ok(Outcome::Invalid(too_big()));
    }
    if get_cluster(txn, &v.cluster)?.is_none() {
        return Ok(Outcome::Invalid(format!("Cluster id {} not found", v.cluster)));
    }
    let name_key = keys::volume_name(&v.cluster, &v.name);
    if txn.get(&name_key)?.is_some() {
        return Ok(Outcome::Failed(format!(
            "Volume name '{}' already in use",
            v.name
        )));
    }
    for b in bricks {
        if !reserve(b, txn)? {
            return Ok(Outcome::Failed("No space".into()));
        }
    }
    let mut vol = v.clone();
    vol.pending = Some(op.to_string());
    vol.hidden = true;
    vol.bricks = bricks.iter().map(|b| b.id.clone()).collect();
    let set = v.durability.set_size().max(1);
    vol.brick_sets = bricks
        .chunks(set)
        .map(|c| c.iter().map(|b| b.id.clone()).collect())
        .collect();
    put(txn, keys::volume(&vol.id), &vol)?;
    txn.put(name_key, vol.id.as_bytes().to_vec());
    Ok(Outcome::Done)
}

pub fn finish(
    volume: &VolumeEntry,
    bricks: &[BrickEntry],
    txn: &mut Txn<'_>,
) -> Result<Option<String>, StoreError> {
    if let Some(mut v) = get_volume(txn, &volume.id)? {
        v.pending = None;
        v.hidden = false;
        put(txn, keys::volume(&v.id), &v)?;
        for b in bricks {
            clear_brick_pending(&b.id, txn)?;
        }
        if let Some(mut c) = get_cluster(txn, &v.cluster)? {
            c.volume_count = c.volume_count.saturating_add(1);
            put(txn, keys::cluster(&c.id), &c)?;
            txn.put(keys::cluster_volume(&c.id, &v.id), Vec::new());
        }
    }
    Ok(Some(format!("/volumes/{}", volume.id)))
}

pub fn holds(h: &mut super::Holds, volume: &VolumeEntry, bricks: &[BrickEntry]) {
    h.volumes.insert(volume.name.clone());
    bricks.iter().for_each(|b| h.brick(b));
}

pub fn changes(volume: &VolumeEntry, bricks: &[BrickEntry]) -> Vec<(String, &'static str)> {
    std::iter::once((volume.id.clone(), "Add volume"))
        .chain(bricks.iter().map(|b| (b.id.clone(), "Add brick")))
        .collect()
}

pub fn fail(volume: &VolumeEntry, bricks: &[BrickEntry], txn: &mut Txn<'_>) -> R {
    for b in bricks {
        release(&b.id, txn)?;
    }
    txn.delete(keys::volume_name(&volume.cluster, &volume.name));
    txn.delete(keys::volume(&volume.id));
    Ok(Outcome::Done)
}
