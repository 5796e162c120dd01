//! A replica that was down while more entries than the snapshot threshold committed catches
//! up by installing a snapshot (its log position was purged on the leader).

use hekate_testkit::{create_cluster, wait_for};
use serde_json::json;

use crate::{cluster, local_clusters, serial, T};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_replica_catches_up_by_snapshot() {
    let _g = serial();
    let (_d, mut c) = cluster(3, json!({"snapshot_logs_since_last": 20, "logs_to_keep": 5})).await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    let lagging = c.ids().into_iter().find(|i| *i != leader).unwrap();
    let lagging_index = c.status(lagging).await.unwrap()["last_log_index"]
        .as_u64()
        .unwrap_or(0);
    c.kill(lagging).unwrap();

    let client = c.client(leader);
    for _ in 0..60 {
        create_cluster(&client).await.unwrap();
    }
    // The leader has snapshotted and purged past the lagging replica's last entry.
    let purged = wait_for(T, "leader to purge its log", || async {
        let st = c.status(leader).await?;
        st["purged"].as_u64().filter(|p| *p > lagging_index + 5)
    })
    .await
    .unwrap();
    assert!(c.status(leader).await.unwrap()["snapshot"].as_u64().is_some());

    c.start(lagging).unwrap();
    c.wait_ready(&[lagging], T).await.unwrap();
    let st = c.status(lagging).await.unwrap();
    let snap = st["snapshot"]
        .as_u64()
        .expect("the lagging replica installed a snapshot");
    assert!(
        snap >= purged,
        "installed snapshot {snap} should cover purged index {purged}"
    );
    let leader_view = local_clusters(&c, leader).await;
    assert_eq!(leader_view.len(), 60);
    let lagging_view = wait_for(T, "lagging replica to hold all 60 clusters", || async {
        let l = local_clusters(&c, lagging).await;
        (l.len() == 60).then_some(l)
    })
    .await
    .unwrap();
    assert_eq!(lagging_view, leader_view);
}
