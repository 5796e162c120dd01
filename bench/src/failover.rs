//! `hekate-bench failover`: the write gap a client sees when the leader goes away while the
//! cluster is under load (issue 13). `--signal kill` (SIGKILL: a crash, an election follows)
//! or `--signal term` (SIGTERM: a graceful stop, the leader hands over before it exits). The
//! gap of one round is the time from the signal to the first write, sent after the signal
//! through a surviving replica, that succeeds; the load's writes are counted (done, retried
//! on 503 or a refused connection, failed) and the terms seen, to show what the stop cost.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use hekate::client::Client;
use hekate_testkit::{create_cluster, ClusterSpec, ProcCluster};
use serde::Serialize;

use crate::stats::{summarize, Summary};

#[derive(Debug, Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stop {
    Kill,
    Term,
}

#[derive(Args, Debug)]
pub struct FailoverArgs {
    /// The hekate binary to run (default: next to this one).
    #[arg(long)]
    pub hekate: Option<std::path::PathBuf>,
    /// How the leader goes away.
    #[arg(long, value_enum, default_value = "kill")]
    pub signal: Stop,
    /// Leader stops to measure.
    #[arg(long, default_value_t = 50)]
    pub rounds: usize,
    /// Clients writing in the background (spread over the replicas, retrying 503s).
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Only run the load for this many seconds, without stopping anything: counts the term
    /// changes a fault-free cluster makes under load (issue 13: 0 in 10 minutes).
    #[arg(long)]
    pub quiet_seconds: Option<u64>,
    /// `raft.timeouts` for every replica, as JSON (default: the build's defaults).
    #[arg(long)]
    pub timeouts: Option<String>,
    /// With `--signal term`: stop the first leader right after it was elected, instead of
    /// once it has led for a vote lease (a rolling restart's case).
    #[arg(long)]
    pub fresh_leader: bool,
}

#[derive(Debug, Serialize)]
pub struct FailoverResults {
    pub signal: Stop,
    pub rounds: usize,
    pub clients: usize,
    pub timeouts: serde_json::Value,
    pub gap: Summary,
    pub gap_samples_ms: Vec<f64>,
    /// Background writes that succeeded / were retried (503 or connection refused) / failed.
    pub load_done: u64,
    pub load_retried: u64,
    pub load_failed: u64,
    pub load_first_failures: Vec<String>,
    /// Term changes over the whole run (rounds: at least one per round).
    pub term_changes: u64,
    pub seconds: f64,
}

struct Load {
    stop: AtomicBool,
    done: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    failures: std::sync::Mutex<Vec<String>>,
}

pub async fn run(args: FailoverArgs) -> anyhow::Result<FailoverResults> {
    let tmp = tempfile::tempdir()?;
    let mut spec = ClusterSpec::new(crate::hekate_binary(&args.hekate)?, 3);
    spec.loglevel = "warning".into();
    let timeouts: serde_json::Value = match &args.timeouts {
        Some(t) => serde_json::from_str(t).context("--timeouts is not JSON")?,
        None => serde_json::json!({}),
    };
    spec.timeouts = timeouts.clone();
    let mut c = ProcCluster::create(tmp.path(), spec)?;
    c.start_all()?;
    c.wait_ready(&[1, 2, 3], Duration::from_secs(60)).await?;
    c.wait_leader(&[1, 2, 3], Duration::from_secs(30)).await?;
    if matches!(args.signal, Stop::Term) {
        // A rolling restart does not stop a leader elected moments ago. One that is waits
        // out the rest of openraft's vote lease (`election_timeout_max` from its election)
        // before it can hand off (`Replica::transfer_leader`). Later rounds start after a
        // restart and catch-up,
        // longer than a lease. `--fresh-leader` measures the fresh case.
        let max = timeouts["election_timeout_max_ms"].as_u64().unwrap_or(400);
        let heartbeat = timeouts["heartbeat_ms"].as_u64().unwrap_or(50);
        if !args.fresh_leader {
            tokio::time::sleep(Duration::from_millis(max + heartbeat)).await;
        }
    }
    let first_term = term(&c).await;
    let load = Arc::new(Load {
        stop: AtomicBool::new(false),
        done: AtomicU64::new(0),
        retried: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        failures: Default::default(),
    });
    let started = Instant::now();
    let clients: Vec<Client> = (0..args.clients).map(|i| c.client(1 + i as u64 % 3)).collect();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| tokio::spawn(writer(client, load.clone())))
        .collect();
    let mut gaps = Vec::new();
    if let Some(secs) = args.quiet_seconds {
        tokio::time::sleep(Duration::from_secs(secs)).await;
    } else {
        for k in 0..args.rounds {
            let ms = round(&mut c, args.signal).await?;
            eprintln!(
                "  {:?} {}/{}: first write after {ms:.0} ms",
                args.signal,
                k + 1,
                args.rounds
            );
            gaps.push(ms);
        }
    }
    load.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let last_term = term(&c).await;
    let first_failures = load.failures.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(FailoverResults {
        signal: args.signal,
        rounds: gaps.len(),
        clients: args.clients,
        timeouts,
        gap: summarize(&gaps),
        gap_samples_ms: gaps,
        load_done: load.done.load(Ordering::Relaxed),
        load_retried: load.retried.load(Ordering::Relaxed),
        load_failed: load.failed.load(Ordering::Relaxed),
        load_first_failures: first_failures,
        term_changes: last_term.saturating_sub(first_term),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Highest term any running replica reports.
async fn term(c: &ProcCluster) -> u64 {
    let mut t = 0;
    for id in c.ids() {
        if let Some(s) = c.status(id).await {
            t = t.max(s["term"].as_u64().unwrap_or(0));
        }
    }
    t
}

/// One stop of the leader: the gap, then the replica restarted and every replica ready.
pub async fn round(c: &mut ProcCluster, how: Stop) -> anyhow::Result<f64> {
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(30)).await?;
    c.wait_ready(&[1, 2, 3], Duration::from_secs(30)).await?;
    let survivor = c
        .ids()
        .into_iter()
        .find(|i| *i != leader)
        .context("no survivor")?;
    let probe = c.client(survivor);
    let t0 = Instant::now();
    match how {
        Stop::Kill => c.kill(leader)?,
        Stop::Term => c.signal(leader, nix::sys::signal::Signal::SIGTERM)?,
    }
    loop {
        if create_cluster(&probe).await.is_ok() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            anyhow::bail!("no successful write within 30 s of stopping leader {leader}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    if matches!(how, Stop::Term) {
        c.stop(leader)?; // waits for its exit (a second SIGTERM is ignored)
    }
    c.start(leader)?;
    Ok(ms)
}

/// A background client: creates clusters back to back; a 503 or a refused connection is
/// retried (as a client behind a balancer would) for up to 30 s, anything else is a failure.
async fn writer(client: Client, load: Arc<Load>) {
    while !load.stop.load(Ordering::Relaxed) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = client
                .call(
                    reqwest::Method::POST,
                    "/clusters",
                    Some(&serde_json::json!({"file": true, "block": true})),
                )
                .await;
            let retry = match &r {
                Ok(rep) if rep.status == 201 => {
                    load.done.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(rep) => rep.status == 503,
                Err(_) => true,
            };
            if !retry || Instant::now() > deadline {
                load.failed.fetch_add(1, Ordering::Relaxed);
                let mut f = load.failures.lock().unwrap_or_else(|e| e.into_inner());
                if f.len() < 10 {
                    f.push(match r {
                        Ok(rep) => format!("{} {}", rep.status, rep.body.trim()),
                        Err(e) => e.to_string(),
                    });
                }
                break;
            }
            load.retried.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
