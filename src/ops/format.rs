//! Log-format agreement, leader-only: during a rolling upgrade the replicas run different
//! builds, and an entry written in a format some member cannot read would stop that member.
//! So the leader asks every member which log format its build reads and raises the agreed
//! format (`Command::SetLogFormat`, see `state::format`) only once all of them read it. Until
//! then entries stay in the older format, which every build reads. The membership cannot
//! gain a replica between the question and the commit (`Replica::members_read_format` holds
//! the membership guard), and a replica reading less than the agreed format cannot join.

use std::time::Duration;

use crate::state::{self, Command, HekateReplica};

/// How often a leader whose cluster has not agreed on this build's format asks again (a few
/// peer RPCs each time, and only until the format is agreed).
const ASK_EVERY: Duration = Duration::from_millis(500);

/// Runs until this build's format is agreed (then there is nothing left to raise) or `stop`.
pub async fn agreement_loop(replica: HekateReplica, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        match agree(&replica).await {
            Ok(f) if f >= state::format::CURRENT => {
                tracing::info!(format = f, "log format agreed by every replica");
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::info!("log format not raised yet: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(ASK_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One round: the agreed format afterwards. Only a leader raises it.
pub async fn agree(replica: &HekateReplica) -> Result<u16, String> {
    let agreed = replica
        .read(|v| state::format::agreed(v))
        .map_err(|e| e.to_string())?;
    if agreed >= state::format::CURRENT || !replica.is_leader() {
        return Ok(agreed);
    }
    let (_membership_fixed, reads) = replica.members_read_format().await;
    let reads = reads?;
    if reads <= agreed {
        return Err(format!(
            "a replica reads only log format {reads}; staying at {agreed} until it is upgraded"
        ));
    }
    let raise = Command::SetLogFormat { format: reads };
    match replica.propose(&raise).await.map_err(|e| e.to_string())? {
        state::Outcome::Done => {
            tracing::info!(from = agreed, to = reads, "log format raised");
            Ok(reads)
        }
        other => Err(format!("log format raise refused: {other:?}")),
    }
}
