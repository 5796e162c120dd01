//! kill -9 of every replica during a write burst loses no acknowledged write.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hekate_testkit::{create_cluster, wait_for};
use serde_json::json;

use crate::{cluster, local_clusters, serial, T};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_all_during_write_burst_keeps_every_acknowledged_write() {
    let _g = serial();
    let (_d, mut c) = cluster(3, json!({})).await;
    c.wait_leader(&[1, 2, 3], T).await.unwrap();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..6u64 {
        let client = c.client(1 + w % 3);
        let acked = acked.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Only a 201 is an acknowledgement; errors during the crash are expected.
                if let Ok(id) = create_cluster(&client).await {
                    acked.lock().unwrap().push(id);
                }
            }
        }));
    }
    wait_for(T, "at least 50 acknowledged writes", || async {
        (acked.lock().unwrap().len() >= 50).then_some(())
    })
    .await
    .unwrap();
    for id in c.ids() {
        c.kill(id).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        let _ = tokio::time::timeout(Duration::from_secs(70), w).await;
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();

    c.start_all().unwrap();
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    c.wait_ready(&[1, 2, 3], T).await.unwrap();
    let present = local_clusters(&c, leader).await;
    let missing: Vec<&String> = acked.iter().filter(|id| !present.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost: {missing:?}",
        missing.len(),
        acked.len()
    );
    eprintln!(
        "{} acknowledged writes, all present after kill -9 of all replicas",
        acked.len()
    );
}
