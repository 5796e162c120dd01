//! The replicated keyspace. Every record key is `<kind>/<id>`; ids are 32 lowercase hex
//! characters, so RocksDB's key order within a kind is id order, which is the order Heketi
//! lists in. Index keys make every hot-path lookup a point read (no scans).
//!
//! | prefix | value | purpose |
//! |---|---|---|
//! | `c/<id>` | `ClusterEntry` | |
//! | `n/<id>` | `NodeEntry` | |
//! | `d/<id>` | `DeviceEntry` | holds its own free/used: per-device usage is a point read |
//! | `b/<id>` | `BrickEntry` | |
//! | `v/<id>` | `VolumeEntry` | |
//! | `o/<id>` | `Operation` | the replicated `/queue` |
//! | `meta/pending_ops` | `PendingOps` | operations not yet finished (the runner's work list, the throttle count); one small record, not a key range: a range of deleted keys would leave tombstones that every scan must skip |
//! | `hm/<host>` | node id | manage hostname registry |
//! | `hs/<host>` | node id | storage hostname registry |
//! | `vn/<cluster>/<name>` | volume id | volume names unique per cluster |
//! | `cv/<cluster>/<volume>` | empty | the cluster's visible volumes |
//! | `db/<device>/<brick>` | empty | the device's bricks |
//! | `od/<finished, 16 hex>/<id>` | empty | finished operations, oldest first: the queue GC deletes from the front by age and by count without reading the records |
//! | `bv/<id>` | `BlockVolumeEntry` | |
//! | `bvn/<bhv>/<name>` | block volume id | block volume names unique per block-hosting volume |
//! | `vb/<bhv>/<block volume>` | empty | the block-hosting volume's block volumes (pending ones too: a BHV holding any cannot be deleted) |
//! | `meta/identity` | text | the Raft group's identity, set once by its first leader: the fencing token's cluster part (node-side guard) |
//! | `meta/op_index` | empty | present once `od/` covers every finished operation (older stores are indexed by the first bounded GC) |

pub const CLUSTER_PREFIX: &[u8] = b"c/";
/// The cluster-wide admin state (`/admin`).
pub const ADMIN_STATE: &[u8] = b"meta/admin_state";
pub const NODE_PREFIX: &[u8] = b"n/";
pub const DEVICE_PREFIX: &[u8] = b"d/";
pub const BRICK_PREFIX: &[u8] = b"b/";
pub const VOLUME_PREFIX: &[u8] = b"v/";
pub const OP_PREFIX: &[u8] = b"o/";
pub const PENDING_OPS: &[u8] = b"meta/pending_ops";
pub const OP_DONE_PREFIX: &[u8] = b"od/";
pub const OP_INDEX_MARK: &[u8] = b"meta/op_index";
/// The Raft group's identity (fencing tokens).
pub const IDENTITY: &[u8] = b"meta/identity";
/// The log format every member agreed to read (`state::format`); absent: format 0.
pub const LOG_FORMAT: &[u8] = b"meta/log_format";
/// `health/<node id>` -> `NodeHealth`: the health monitor's last observation of the node.
pub const HEALTH_PREFIX: &[u8] = b"health/";

fn key(prefix: &[u8], id: &str) -> Vec<u8> {
    [prefix, id.as_bytes()].concat()
}

pub fn cluster(id: &str) -> Vec<u8> {
    key(CLUSTER_PREFIX, id)
}
pub fn node(id: &str) -> Vec<u8> {
    key(NODE_PREFIX, id)
}
pub fn device(id: &str) -> Vec<u8> {
    key(DEVICE_PREFIX, id)
}
pub fn brick(id: &str) -> Vec<u8> {
    key(BRICK_PREFIX, id)
}
pub fn volume(id: &str) -> Vec<u8> {
    key(VOLUME_PREFIX, id)
}
pub fn op(id: &str) -> Vec<u8> {
    key(OP_PREFIX, id)
}
/// The finished-operation index key: fixed-width hex time first, so key order is age order.
pub fn op_done(finished: u64, id: &str) -> Vec<u8> {
    format!("od/{finished:016x}/{id}").into_bytes()
}

/// (finished, id) of an `od/` key.
pub fn parse_op_done(key: &[u8]) -> Option<(u64, String)> {
    let rest = key.strip_prefix(OP_DONE_PREFIX)?;
    let (t, id) = std::str::from_utf8(rest).ok()?.split_once('/')?;
    Some((u64::from_str_radix(t, 16).ok()?, id.to_string()))
}
pub fn health(node: &str) -> Vec<u8> {
    key(HEALTH_PREFIX, node)
}
pub fn manage_host(host: &str) -> Vec<u8> {
    key(b"hm/", host)
}
pub fn storage_host(host: &str) -> Vec<u8> {
    key(b"hs/", host)
}
pub fn volume_name(cluster: &str, name: &str) -> Vec<u8> {
    [b"vn/", cluster.as_bytes(), b"/", name.as_bytes()].concat()
}

/// A cluster's name index: every volume of the cluster, hidden ones (being created) too.
pub fn volume_name_prefix(cluster: &str) -> Vec<u8> {
    [b"vn/", cluster.as_bytes(), b"/"].concat()
}

pub fn cluster_volume(cluster: &str, volume: &str) -> Vec<u8> {
    [b"cv/", cluster.as_bytes(), b"/", volume.as_bytes()].concat()
}

pub fn cluster_volume_prefix(cluster: &str) -> Vec<u8> {
    [b"cv/", cluster.as_bytes(), b"/"].concat()
}

/// The prefix of the whole device index (`db/<device>/<brick>`).
pub const DEVICE_BRICK_PREFIX: &[u8] = b"db/";

pub fn device_brick(device: &str, brick: &str) -> Vec<u8> {
    [DEVICE_BRICK_PREFIX, device.as_bytes(), b"/", brick.as_bytes()].concat()
}

pub fn device_brick_prefix(device: &str) -> Vec<u8> {
    [DEVICE_BRICK_PREFIX, device.as_bytes(), b"/"].concat()
}

/// `(device, brick)` of a `db/<device>/<brick>` key.
pub fn device_brick_of(key: &[u8]) -> Option<(String, String)> {
    let rest = std::str::from_utf8(key.strip_prefix(DEVICE_BRICK_PREFIX)?).ok()?;
    let (device, brick) = rest.split_once('/')?;
    Some((device.to_string(), brick.to_string()))
}

pub const BLOCKVOLUME_PREFIX: &[u8] = b"bv/";
pub fn blockvolume(id: &str) -> Vec<u8> {
    key(BLOCKVOLUME_PREFIX, id)
}
pub fn blockvolume_name(bhv: &str, name: &str) -> Vec<u8> {
    [b"bvn/", bhv.as_bytes(), b"/", name.as_bytes()].concat()
}
pub fn bhv_block(bhv: &str, block: &str) -> Vec<u8> {
    [b"vb/", bhv.as_bytes(), b"/", block.as_bytes()].concat()
}
pub fn bhv_block_prefix(bhv: &str) -> Vec<u8> {
    [b"vb/", bhv.as_bytes(), b"/"].concat()
}

/// The id part of a `<prefix><id>` key.
pub fn id_of(prefix: &[u8], key: &[u8]) -> String {
    String::from_utf8_lossy(&key[prefix.len()..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_index_key_reads_back() {
        assert_eq!(
            device_brick_of(&device_brick("d1", "b1")),
            Some(("d1".to_string(), "b1".to_string()))
        );
        assert_eq!(device_brick_of(b"d/d1"), None);
        assert_eq!(device_brick_of(b"db/d1"), None);
    }
}
