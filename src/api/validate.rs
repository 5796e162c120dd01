//! Heketi's request validation messages (ozzo-validation style:
//! `validation failed: field: message.`), shared by the handlers. The rules themselves
//! live in [`crate::validate`], which dump import uses too; this module only turns their
//! verdicts into API errors.

use crate::api::error::ApiError;
use crate::state::model::Tags;

pub fn failed(detail: &str) -> ApiError {
    ApiError::BadRequest(format!("validation failed: {detail}."))
}

pub use crate::validate::{is_device_path, is_host, is_uuid, is_volume_name, is_volume_option};

/// Heketi's tag rules (spec 1.6), refused as a 400 with Heketi's message.
pub fn tags(t: &Tags) -> Result<(), ApiError> {
    crate::validate::tags(t).map_err(ApiError::BadRequest)
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
