//! Block-hosting volume restriction (`POST /volumes/{id}/block-restriction`): lock or
//! unlock; unlocking a volume locked by an update reserves its block space again.

use hekate_raft::{StoreError, Txn};

use super::super::command::Outcome;
use super::super::{get_volume, keys, put};
use super::R;

pub fn begin(volume: &str, restriction: &str, txn: &mut Txn<'_>) -> R {
    let Some(v) = get_volume(txn, volume)? else {
        return Ok(Outcome::NotFound);
    };
    if !v.block {
        return Ok(Outcome::Failed(
            "Failed to set block restriction: Block restrictions can only be set on block hosting volumes"
                .into(),
        ));
    }
    if v.block_restriction == "locked-by-update" && restriction.is_empty() && v.block_reserved == 0 {
        let need = v.size.div_ceil(50);
        if v.block_free < need {
            return Ok(Outcome::Failed(format!(
                "Can not unlock volume. {need}GiB free space is required, but found {}GiB",
                v.block_free
            )));
        }
    }
    Ok(Outcome::Done)
}

pub fn finish(volume: &str, restriction: &str, txn: &mut Txn<'_>) -> Result<Option<String>, StoreError> {
    if let Some(mut v) = get_volume(txn, volume)? {
        if v.block_restriction == "locked-by-update" && restriction.is_empty() && v.block_reserved == 0 {
            let reserve = v.size.div_ceil(50);
            v.block_free = v.block_free.saturating_sub(reserve);
            v.block_reserved = reserve;
        }
        v.block_restriction = restriction.to_string();
        put(txn, keys::volume(volume), &v)?;
    }
    Ok(Some(format!("/volumes/{volume}")))
}
