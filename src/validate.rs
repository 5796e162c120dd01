//! The input rules shared by every way data enters Hekate: API requests (`api::validate`
//! adds Heketi's messages) and imported Heketi dumps (`dump`). Everything that later reaches
//! a node's command line (hostnames, device paths, volume names, LV names, brick paths,
//! options) passes one of these predicates first, whichever door it came through.

/// The largest volume (and expansion) size accepted, in GiB: 1 PiB. Sizes are stored in GiB
/// and multiplied into KiB (and by the snapshot factor) on every path; this bound keeps that
/// arithmetic far from `u64`'s limit. Heketi has none (its arithmetic wraps).
pub const MAX_VOLUME_GIB: u64 = 1 << 20;

/// The largest device, brick or thin pool size accepted from a dump or a node, in KiB
/// (1 EiB): far above any disk, far below overflow when sums of them are taken.
pub const MAX_KIB: u64 = 1 << 50;

/// A DNS name or an IPv4/IPv6 address; no shell metacharacters, at most 253 characters.
pub fn is_host(h: &str) -> bool {
    if h.is_empty() || h.len() > 253 {
        return false;
    }
    if h.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    h.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
}

pub fn is_uuid(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Device paths: `^/[a-zA-Z0-9_.:/-]+$`, no `..`, at most 4096 characters.
pub fn is_device_path(p: &str) -> bool {
    p.len() > 1
        && p.len() <= 4096
        && p.starts_with('/')
        && !p.split('/').any(|seg| seg == "..")
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:/-".contains(c))
}

/// Volume names: `^[a-zA-Z0-9_-]+$` (and at most 255 characters, Gluster's limit).
pub fn is_volume_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 255
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A volume option (`key value`) that will be passed to `gluster volume set`: printable,
/// no shell metacharacters.
pub fn is_volume_option(o: &str) -> bool {
    o.len() <= 1024
        && o.chars()
            .all(|c| c.is_ascii_alphanumeric() || " ._-,:/=+@%".contains(c))
}

/// An LVM logical volume (or thin pool) name: `^[a-zA-Z0-9_+.][a-zA-Z0-9_+.-]*$`, at most
/// 127 characters, not `.`/`..` (LVM's rules, minus its reserved prefixes).
pub fn is_lv_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 127
        && n != "."
        && n != ".."
        && !n.starts_with('-')
        && !n.starts_with("snapshot")
        && !n.starts_with("pvmove")
        && n.chars().all(|c| c.is_ascii_alphanumeric() || "_+.-".contains(c))
}

/// A brick path: absolute, `^/[a-zA-Z0-9_./-]+/brick$`, no `.` or `..` segment, no empty
/// segment, at most 4096 characters.
pub fn is_brick_path(p: &str) -> bool {
    p.len() <= 4096
        && p.starts_with('/')
        && p.ends_with("/brick")
        && p[1..]
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && p.chars().all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
}

/// Heketi's tag rules (spec 1.6): at most 32 tags; names of 1-32 characters from
/// `[A-Za-z0-9_.-]`; values of at most 64 characters, no control characters. The error is
/// Heketi's message (the API answers it as a 400).
pub fn tags(t: &std::collections::BTreeMap<String, String>) -> Result<(), String> {
    if t.len() > 32 {
        return Err(format!(
            "too many tags specified ({}), up to 32 supported",
            t.len()
        ));
    }
    for (k, v) in t {
        if k.is_empty() {
            return Err("tag names may not be empty".into());
        }
        if k.chars().count() > 32 || !k.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
            return Err(format!("invalid characters in tag name {k}"));
        }
        if v.chars().count() > 64 {
            return Err(format!("tag value for {k} is longer than 64 characters"));
        }
        if v.chars().any(|c| c.is_control()) {
            return Err(format!("invalid characters in tag value for {k}"));
        }
    }
    Ok(())
}

/// `gib` GiB in KiB, or None beyond [`MAX_VOLUME_GIB`] (checked, never wrapping).
pub fn gib_to_kib(gib: u64) -> Option<u64> {
    if gib > MAX_VOLUME_GIB {
        return None;
    }
    gib.checked_mul(1024 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lv_names_and_brick_paths() {
        for good in ["brick_0123abcd", "tp_x", "e3d7_0", "heketidbstorage"] {
            assert!(is_lv_name(good), "{good}");
        }
        for bad in [
            "",
            "-x",
            "a/b",
            "x;rm",
            "a b",
            "x\nd",
            "..",
            "$(id)",
            "x/d;e",
            "snapshot1",
        ] {
            assert!(!is_lv_name(bad), "{bad:?}");
        }
        assert!(!is_lv_name(&"x".repeat(128)));
        assert!(is_brick_path("/var/lib/heketi/mounts/vg_a/brick_b/brick"));
        assert!(is_brick_path("/run/gluster/snaps/abc/brick1/brick"));
        for bad in [
            "var/lib/brick",
            "/var/lib/heketi/mounts/../../etc/brick",
            "/x/./brick",
            "//brick",
            "/x//y/brick",
            "/x/y",
            "/x y/brick",
            "/x;e/brick",
            "/x/d\n/brick",
        ] {
            assert!(!is_brick_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn sizes_are_checked() {
        assert_eq!(gib_to_kib(1), Some(1 << 20));
        assert_eq!(gib_to_kib(MAX_VOLUME_GIB), Some(1 << 40));
        assert_eq!(gib_to_kib(MAX_VOLUME_GIB + 1), None);
        assert_eq!(gib_to_kib(u64::MAX), None);
        assert_eq!(gib_to_kib(u64::MAX / (1 << 20) + 1), None);
    }
}
