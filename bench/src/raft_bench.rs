//! The replicated core measured through the API of a three-replica cluster of real
//! processes (fsync on, as always): committed write latency for one client (to the leader
//! and through a follower), writes/s with N concurrent clients, and failover time: SIGKILL
//! of the leader to the first successful write through another instance, over K kills.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hekate_testkit::{create_cluster, ClusterSpec, ProcCluster};
use serde::Serialize;

use crate::stats::{summarize, Summary};

#[derive(Debug, Clone, clap::Args)]
pub struct RaftArgs {
    /// The hekate binary to run (default: next to this one).
    #[arg(long)]
    pub hekate: Option<PathBuf>,
    /// Sequential writes for the latency measurement.
    #[arg(long, default_value_t = 1000)]
    pub writes: usize,
    /// Concurrent clients for the throughput measurement.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Seconds of the throughput measurement.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Client counts for the throughput sweep (each for `--seconds`/2).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    pub sweep: Vec<usize>,
    /// Leader kills for the failover measurement.
    #[arg(long, default_value_t = 20)]
    pub kills: usize,
    /// Where the cluster's data goes (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct RaftResults {
    pub write_to_leader: Summary,
    pub write_via_follower: Summary,
    pub throughput_clients: usize,
    pub throughput_writes_per_s: f64,
    pub throughput_errors: u64,
    pub throughput_latency: Summary,
    /// Term changes during the throughput phase (elections caused by load).
    pub throughput_elections: u64,
    /// (clients, writes/s) for each sweep point.
    pub throughput_by_clients: Vec<(usize, f64)>,
    pub failover: Summary,
    pub failover_samples_ms: Vec<f64>,
}

pub async fn run(args: RaftArgs) -> anyhow::Result<RaftResults> {
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let mut spec = ClusterSpec::new(crate::hekate_binary(&args.hekate)?, 3);
    spec.loglevel = "warning".into();
    let mut c = ProcCluster::create(&dir, spec)?;
    c.start_all()?;
    c.wait_ready(&[1, 2, 3], Duration::from_secs(60)).await?;
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(30)).await?;
    let follower = c
        .ids()
        .into_iter()
        .find(|i| *i != leader)
        .context("no follower")?;
    eprintln!("cluster up: leader {leader}; {} sequential writes", args.writes);

    let write_to_leader = sequential(&c, leader, args.writes).await?;
    let write_via_follower = sequential(&c, follower, args.writes).await?;
    eprintln!("throughput: {} clients for {} s", args.clients, args.seconds);
    let term = |st: Option<serde_json::Value>| st.and_then(|s| s["term"].as_u64()).unwrap_or(0);
    let term_before = term(c.status(leader).await);
    let (tput, errors, tlat) = throughput(&c, args.clients, Duration::from_secs(args.seconds)).await;
    let throughput_elections = term(c.status(leader).await).saturating_sub(term_before);
    let mut throughput_by_clients = Vec::new();
    for &n in &args.sweep {
        let (t, _, _) = throughput(&c, n, Duration::from_secs((args.seconds / 2).max(1))).await;
        eprintln!("  {n} clients: {t:.0} writes/s");
        throughput_by_clients.push((n, t));
    }
    eprintln!("failover: {} leader kills", args.kills);
    let failover_samples_ms = failover(&mut c, args.kills).await?;
    Ok(RaftResults {
        write_to_leader,
        write_via_follower,
        throughput_clients: args.clients,
        throughput_writes_per_s: tput,
        throughput_errors: errors,
        throughput_latency: tlat,
        throughput_elections,
        throughput_by_clients,
        failover: summarize(&failover_samples_ms),
        failover_samples_ms,
    })
}

async fn sequential(c: &ProcCluster, via: u64, n: usize) -> anyhow::Result<Summary> {
    let client = c.client(via);
    for _ in 0..20 {
        create_cluster(&client).await?; // warm-up: connections, caches
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        create_cluster(&client).await?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(summarize(&samples))
}

async fn throughput(c: &ProcCluster, clients: usize, dur: Duration) -> (f64, u64, Summary) {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let start = Instant::now();
    for i in 0..clients {
        let client = c.client(1 + (i as u64) % 3);
        let (stop, errors) = (stop.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match create_cluster(&client).await {
                    Ok(_) => lat.push(t.elapsed().as_secs_f64() * 1e3),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    tokio::time::sleep(dur).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    let secs = start.elapsed().as_secs_f64();
    (
        all.len() as f64 / secs,
        errors.load(Ordering::Relaxed),
        summarize(&all),
    )
}

/// SIGKILL the leader, then write through a surviving instance until one succeeds: the time
/// from the kill to that success is the failover time a client sees (without load; see
/// `hekate-bench failover` for the same under load and for SIGTERM).
async fn failover(c: &mut ProcCluster, kills: usize) -> anyhow::Result<Vec<f64>> {
    let mut samples = Vec::new();
    for k in 0..kills {
        let ms = crate::failover::round(c, crate::failover::Stop::Kill).await?;
        eprintln!("  kill {}/{kills}: first write after {ms:.0} ms", k + 1);
        samples.push(ms);
    }
    Ok(samples)
}
