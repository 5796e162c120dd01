//! `hekate-bench reconcile`: `GET /reconcile` on a running cluster (the leader reads every
//! node and compares it with the state), timed, while the RSS of the cluster's processes is
//! sampled. Issue 13 asks for RSS per replica <= 500 MB at 100,000 volumes; the reconcile,
//! hourly on the leader, is when the leader holds the most.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::stats::{summarize, Summary};

#[derive(clap::Args, Debug)]
pub struct ReconcileArgs {
    /// The leader's API (a follower forwards, and its forwarding may time out first).
    #[arg(long, env = "HEKETI_CLI_SERVER")]
    pub server: String,
    #[arg(long, env = "HEKETI_CLI_KEY")]
    pub key: String,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// The `hekate dev` process: its children (replicas and `mock-nodes`) are sampled.
    #[arg(long)]
    pub parent: u32,
}

#[derive(Debug, Serialize)]
pub struct Round {
    pub ms: f64,
    pub nodes_examined: u64,
    pub findings: usize,
    /// Peak RSS (MiB) of each process while this reconcile ran, by name.
    pub peak_rss_mib: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct ReconcileResults {
    pub server: String,
    pub sample_ms: u64,
    /// RSS (MiB) of each process before the first round.
    pub rest_rss_mib: BTreeMap<String, u64>,
    pub rounds: Vec<Round>,
    pub duration: Summary,
}

/// The children of `parent` as (pid, name): `mock-nodes`, or `replica-N` from the config
/// path a replica is started with.
fn processes(parent: u32) -> Vec<(u32, String)> {
    let path = format!("/proc/{parent}/task/{parent}/children");
    let children = std::fs::read_to_string(path).unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let name = if cmd.contains("mock-nodes") {
                "mock-nodes".to_string()
            } else {
                cmd.split(['/', ' '])
                    .find(|w| w.starts_with("replica-"))
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("pid-{pid}"))
            };
            (pid, name)
        })
        .collect()
}

fn rss_mib(pid: u32) -> Option<u64> {
    Some(crate::procfs::rss_kib(pid)? / 1024)
}

fn sample(procs: &[(u32, String)]) -> BTreeMap<String, u64> {
    procs
        .iter()
        .filter_map(|(pid, name)| Some((name.clone(), rss_mib(*pid)?)))
        .collect()
}

pub async fn run(args: ReconcileArgs) -> anyhow::Result<ReconcileResults> {
    const SAMPLE_MS: u64 = 250;
    let procs = processes(args.parent);
    anyhow::ensure!(!procs.is_empty(), "process {} has no children", args.parent);
    let rest_rss_mib = sample(&procs);
    // A reconcile at 100,000 volumes takes minutes; a server that stops answering does not
    // hold the bench forever.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(900))
        .build()?;
    let mut rounds = Vec::new();
    for _ in 0..args.rounds {
        let peak: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
        let sampler = {
            let (peak, procs) = (peak.clone(), procs.clone());
            tokio::spawn(async move {
                loop {
                    for (name, mib) in sample(&procs) {
                        let mut p = peak.lock().unwrap();
                        let e = p.entry(name).or_default();
                        *e = (*e).max(mib);
                    }
                    tokio::time::sleep(Duration::from_millis(SAMPLE_MS)).await;
                }
            })
        };
        let token = hekate::auth::sign(
            "admin",
            &args.key,
            "GET",
            "/reconcile",
            hekate::auth::now_unix(),
            900,
        );
        let t = Instant::now();
        let r = http
            .get(format!("{}/reconcile", args.server))
            .bearer_auth(token)
            .send()
            .await;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        sampler.abort();
        let r = r?;
        anyhow::ensure!(
            r.status() == 200,
            "GET /reconcile: {} {}",
            r.status(),
            r.text().await?
        );
        let report: serde_json::Value = r.json().await?;
        let round = Round {
            ms,
            nodes_examined: report["nodes_examined"].as_u64().unwrap_or(0),
            findings: report["findings"].as_array().map_or(0, Vec::len),
            peak_rss_mib: peak.lock().unwrap().clone(),
        };
        eprintln!(
            "reconcile: {:.0} ms, {} nodes, {} findings, peak RSS {:?} MiB",
            round.ms, round.nodes_examined, round.findings, round.peak_rss_mib
        );
        rounds.push(round);
    }
    let duration = summarize(&rounds.iter().map(|r| r.ms).collect::<Vec<_>>());
    Ok(ReconcileResults {
        server: args.server,
        sample_ms: SAMPLE_MS,
        rest_rss_mib,
        rounds,
        duration,
    })
}
