//! Waiting on a condition instead of sleeping: tests poll until what they expect holds, or
//! fail naming it.

use std::time::{Duration, Instant};

use anyhow::bail;

/// Polls `cond` until it returns `Some`, or fails with `what` after `within`.
pub async fn wait_for<T, F, Fut>(within: Duration, what: &str, mut cond: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = cond().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
