//! Sizes (issue 10): a size whose KiB would overflow `u64` (or beyond the documented maximum,
//! 1 PiB) is refused with a 400 naming the field, and nothing is committed; before the
//! bound, such a size was recorded as a tiny one in release builds and panicked `apply` on
//! every replica in debug builds.

use hekate_testkit::create_cluster;
use reqwest::Method;
use serde_json::json;

use crate::{cluster, serial, T};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_beyond_the_maximum_are_refused_and_change_nothing() {
    let _g = serial();
    let (_d, c) = cluster(1, json!({})).await;
    c.wait_leader(&[1], T).await.unwrap();
    let api = c.client(1);
    create_cluster(&api).await.unwrap();
    for size in [json!(1u64 << 44), json!(i64::MAX), json!((1u64 << 20) + 1)] {
        let r = c
            .call(1, Method::POST, "/volumes", Some(&json!({ "size": size })))
            .await
            .unwrap();
        assert_eq!(r.status, 400, "size {size}: {}", r.body);
        assert!(r.body.contains("maximum supported size"), "{}", r.body);
    }
    let ops = c.call_ok(1, Method::GET, "/operations", None).await.unwrap();
    assert_eq!(ops["total"], 0, "{ops}");
    let vols = c.call_ok(1, Method::GET, "/volumes", None).await.unwrap();
    assert_eq!(vols["volumes"], json!([]));
}
