//! How much of a device one brick takes (spec section 5.3): a thin pool of the brick's
//! virtual size times the snapshot factor, plus pool metadata of 0.5 % (at most 16 GiB), each
//! rounded up to whole LVM extents.

pub const GIB_KIB: u64 = 1024 * 1024;

fn ceil_to(v: u64, extent: u64) -> u64 {
    let e = extent.max(1);
    v.div_ceil(e) * e
}

/// (thin pool KiB, metadata KiB) for a brick of `brick_kib` virtual KiB.
pub fn space_needed(brick_kib: u64, factor: f64, extent: u64) -> (u64, u64) {
    let tp = ceil_to((brick_kib as f64 * factor).floor() as u64, extent);
    let meta = ceil_to(((tp as f64 * 0.005).floor() as u64).min(16 * GIB_KIB), extent);
    (tp, meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heketi_sizes_for_a_1_gib_brick() {
        // 1 GiB brick, factor 1, 4 MiB extents: pool 1 GiB, metadata 5242 KiB -> 8 MiB.
        assert_eq!(space_needed(GIB_KIB, 1.0, 4096), (1_048_576, 8192));
        // factor 1.5
        assert_eq!(space_needed(GIB_KIB, 1.5, 4096), (1_572_864, 8192));
    }
}
