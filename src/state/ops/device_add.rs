//! Device add (`POST /devices`): the device is recorded, pending, under a name unique on
//! its node; its sizes come from LVM when the setup succeeded, and it joins its node.

use hekate_raft::{StoreError, Txn};

use super::super::command::Outcome;
use super::super::model::{DeviceEntry, ExecReport};
use super::super::{get_device, get_node, keys, put};
use super::R;

pub fn begin(device: &DeviceEntry, op: &str, txn: &mut Txn<'_>) -> R {
    let Some(node) = get_node(txn, &device.node)? else {
        return Ok(Outcome::NotFound);
    };
    for id in &node.devices {
        if let Some(d) = get_device(txn, id)? {
            if d.name == device.name {
                return Ok(Outcome::Conflict(format!(
                    "Device {} is already used by device {} on node {}",
                    d.name, d.id, node.id
                )));
            }
        }
    }
    let mut d = device.clone();
    d.pending = Some(op.to_string());
    put(txn, keys::device(&d.id), &d)?;
    Ok(Outcome::Done)
}

pub fn finish(
    device: &DeviceEntry,
    report: &ExecReport,
    txn: &mut Txn<'_>,
) -> Result<Option<String>, StoreError> {
    if let Some(mut d) = get_device(txn, &device.id)? {
        d.total = report.device_total.unwrap_or(d.total);
        d.used = report.device_used.unwrap_or(0);
        d.free = d.total.saturating_sub(d.used);
        d.extent_size = report.device_extent.unwrap_or(d.extent_size);
        d.pv_uuid = report.pv_uuid.clone().unwrap_or_default();
        d.paths = report.paths.clone();
        d.pending = None;
        put(txn, keys::device(&d.id), &d)?;
        if let Some(mut n) = get_node(txn, &d.node)? {
            n.devices.insert(d.id.clone());
            put(txn, keys::node(&n.id), &n)?;
        }
    }
    Ok(None)
}

pub fn fail(device: &DeviceEntry, txn: &mut Txn<'_>) -> R {
    txn.delete(keys::device(&device.id));
    Ok(Outcome::Done)
}
