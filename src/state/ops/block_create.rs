//! Block volume create (`POST /blockvolumes`): the block volume's size is taken from its
//! block-hosting volume's free space and its name reserved in that BHV, the block volume
//! recorded hidden; it shows once gluster-block made it (`OpFinishBlock`, with the hosts and
//! iSCSI identity gluster-block reported). A BHV created for it (`new_bhv`) is reserved as a
//! volume create is and shows with it, or goes with it when the create fails.

use hekate_raft::{StateReader, StoreError, Txn};

use super::super::command::Outcome;
use super::super::model::{BlockExport, BlockVolumeEntry, BrickEntry, VolumeEntry};
use super::super::{get_cluster, get_volume, keys, put};
use super::{volume_create, R};

pub fn begin(
    block: &BlockVolumeEntry,
    new_bhv: Option<&VolumeEntry>,
    bricks: &[BrickEntry],
    op: &str,
    txn: &mut Txn<'_>,
) -> R {
    if block.size > crate::validate::MAX_VOLUME_GIB {
        return Ok(Outcome::Invalid(super::shared::too_big()));
    }
    if let Some(v) = new_bhv {
        if v.id != block.bhv || !v.block {
            return Ok(Outcome::Invalid(
                "the new block-hosting volume is not the block volume's".into(),
            ));
        }
        let out = volume_create::begin(v, bricks, op, txn)?;
        if out != Outcome::Done {
            return Ok(out);
        }
    }
    let fail = |m: &str| {
        Ok(Outcome::Failed(format!(
            "Failed to allocate new block volume: {m}"
        )))
    };
    let Some(mut bhv) = get_volume(txn, &block.bhv)? else {
        return fail("Block hosting volume not found");
    };
    // A BHV being created by another operation, deleted or expanded takes no block volume.
    let ours = bhv.pending.as_deref() == Some(op);
    if !bhv.block || (bhv.pending.is_some() && !ours) || (bhv.hidden && !ours) {
        return fail(super::IN_USE);
    }
    if !bhv.block_restriction.is_empty() {
        return fail("Block hosting volume is restricted");
    }
    if bhv.cluster != block.cluster || get_cluster(txn, &block.cluster)?.is_none() {
        return Ok(Outcome::Invalid(format!(
            "Cluster id {} not found",
            block.cluster
        )));
    }
    let name_key = keys::blockvolume_name(&bhv.id, &block.name);
    if txn.get(&name_key)?.is_some() {
        return fail(&format!("Block volume name '{}' already in use", block.name));
    }
    if bhv.block_free < block.size {
        return fail("No space");
    }
    bhv.block_free -= block.size;
    put(txn, keys::volume(&bhv.id), &bhv)?;
    let mut b = block.clone();
    b.pending = Some(op.to_string());
    b.hidden = true;
    put(txn, keys::blockvolume(&b.id), &b)?;
    txn.put(name_key, b.id.as_bytes().to_vec());
    txn.put(keys::bhv_block(&b.bhv, &b.id), Vec::new());
    Ok(Outcome::Done)
}

pub fn finish(
    block: &BlockVolumeEntry,
    new_bhv: Option<&VolumeEntry>,
    bricks: &[BrickEntry],
    export: &BlockExport,
    txn: &mut Txn<'_>,
) -> Result<Option<String>, StoreError> {
    if let Some(v) = new_bhv {
        volume_create::finish(v, bricks, txn)?;
    }
    if let Some(mut b) = super::super::get_blockvolume(txn, &block.id)? {
        b.pending = None;
        b.hidden = false;
        b.hacount = export.hosts.len() as i64;
        b.hosts = export.hosts.clone();
        b.iqn = export.iqn.clone();
        b.username = export.username.clone();
        b.password = export.password.clone();
        b.usable_size = export.usable_size;
        put(txn, keys::blockvolume(&b.id), &b)?;
        if let Some(mut c) = get_cluster(txn, &b.cluster)? {
            c.blockvolumes.insert(b.id.clone());
            put(txn, keys::cluster(&c.id), &c)?;
        }
    }
    Ok(Some(format!("/blockvolumes/{}", block.id)))
}

/// Gives the size back to the BHV and forgets the block volume; a BHV made for it goes too.
pub fn fail(
    block: &BlockVolumeEntry,
    new_bhv: Option<&VolumeEntry>,
    bricks: &[BrickEntry],
    txn: &mut Txn<'_>,
) -> R {
    forget(block, txn)?;
    if let Some(v) = new_bhv {
        volume_create::fail(v, bricks, txn)?;
    }
    Ok(Outcome::Done)
}

/// Removes a block volume's record and keys and returns its size to its BHV's free space
/// (also the end of a delete).
pub(super) fn forget(block: &BlockVolumeEntry, txn: &mut Txn<'_>) -> Result<(), StoreError> {
    let Some(b) = super::super::get_blockvolume(txn, &block.id)? else {
        return Ok(());
    };
    if let Some(mut bhv) = get_volume(txn, &b.bhv)? {
        bhv.block_free = bhv.block_free.saturating_add(b.size);
        put(txn, keys::volume(&bhv.id), &bhv)?;
    }
    if let Some(mut c) = get_cluster(txn, &b.cluster)? {
        if c.blockvolumes.remove(&b.id) {
            put(txn, keys::cluster(&c.id), &c)?;
        }
    }
    txn.delete(keys::blockvolume_name(&b.bhv, &b.name));
    txn.delete(keys::bhv_block(&b.bhv, &b.id));
    txn.delete(keys::blockvolume(&b.id));
    Ok(())
}

pub fn holds(h: &mut super::Holds, new_bhv: Option<&VolumeEntry>, bricks: &[BrickEntry]) {
    if let Some(v) = new_bhv {
        volume_create::holds(h, v, bricks);
    }
}

pub fn changes(
    block: &BlockVolumeEntry,
    new_bhv: Option<&VolumeEntry>,
    bricks: &[BrickEntry],
) -> Vec<(String, &'static str)> {
    let mut out = new_bhv
        .map(|v| volume_create::changes(v, bricks))
        .unwrap_or_default();
    out.push((block.id.clone(), "Add block volume"));
    out
}
