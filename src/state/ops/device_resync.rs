//! Device resync (`GET /devices/{id}/resync`): the device's sizes are read again from LVM.

use hekate_raft::{StoreError, Txn};

use super::super::model::ExecReport;
use super::super::{get_device, keys, put};
use super::shared::exists;
use super::R;

pub fn begin(device: &str, txn: &mut Txn<'_>) -> R {
    Ok(exists(get_device(txn, device)?.is_some()))
}

pub fn finish(device: &str, report: &ExecReport, txn: &mut Txn<'_>) -> Result<Option<String>, StoreError> {
    if let Some(mut d) = get_device(txn, device)? {
        d.total = report.device_total.unwrap_or(d.total);
        d.used = report.device_used.unwrap_or(d.used);
        d.free = d.total.saturating_sub(d.used);
        put(txn, keys::device(device), &d)?;
    }
    Ok(None)
}
