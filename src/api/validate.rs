//! Heketi's request validation rules and messages (ozzo-validation style:
//! `validation failed: field: message.`), shared by the handlers. The predicates themselves
//! live in [`crate::validate`], which dump import uses too.

use crate::api::error::ApiError;
use crate::state::model::Tags;

pub fn failed(detail: &str) -> ApiError {
    ApiError::BadRequest(format!("validation failed: {detail}."))
}

pub use crate::validate::{is_device_path, is_host, is_uuid, is_volume_name, is_volume_option};

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
