//! Heketi's request validation rules and messages (ozzo-validation style:
//! `validation failed: field: message.`), shared by the handlers. Everything that later
//! reaches a shell (hostnames, device paths, names, options) is checked here first.

use crate::api::error::ApiError;
use crate::state::model::Tags;

pub fn failed(detail: &str) -> ApiError {
    ApiError::BadRequest(format!("validation failed: {detail}."))
}

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

/// Heketi's tag rules (spec 1.6).
pub fn tags(t: &Tags) -> Result<(), ApiError> {
    if t.len() > 32 {
        return Err(ApiError::BadRequest(format!(
            "too many tags specified ({}), up to 32 supported",
            t.len()
        )));
    }
    for (k, v) in t {
        if k.is_empty() {
            return Err(ApiError::BadRequest("tag names may not be empty".into()));
        }
        if k.chars().count() > 32 || !k.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
            return Err(ApiError::BadRequest(format!(
                "invalid characters in tag name {k}"
            )));
        }
        if v.chars().count() > 64 {
            return Err(ApiError::BadRequest(format!(
                "tag value for {k} is longer than 64 characters"
            )));
        }
        if v.chars().any(|c| c.is_control()) {
            return Err(ApiError::BadRequest(format!(
                "invalid characters in tag value for {k}"
            )));
        }
    }
    Ok(())
}

/// A volume option (`key value`) that will be passed to `gluster volume set`: printable,
/// no shell metacharacters.
pub fn is_volume_option(o: &str) -> bool {
    o.len() <= 1024
        && o.chars()
            .all(|c| c.is_ascii_alphanumeric() || " ._-,:/=+@%".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_metacharacters_are_refused() {
        for bad in [
            "a;b",
            "$(x)",
            "a b",
            "`x`",
            "a|b",
            "",
            "-lead",
            "x".repeat(300).as_str(),
        ] {
            assert!(!is_host(bad), "{bad}");
        }
        assert!(is_host("node1.example.com") && is_host("10.0.0.1") && is_host("::1"));
        for bad in ["dev/sdb", "/dev/sdb;rm", "/dev/../etc", "/dev/sd b", "/"] {
            assert!(!is_device_path(bad), "{bad}");
        }
        assert!(is_device_path("/dev/disk/by-id/wwn-0x5000:c500"));
        assert!(!is_volume_name("vol;rm") && is_volume_name("vol_1-a"));
        assert!(!is_volume_option("a; rm -rf /") && is_volume_option("performance.readdir-ahead off"));
    }
}
