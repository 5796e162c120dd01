//! Volume operations through the API of a three-replica cluster (fsync on, mock executor
//! without latency): create latency including the queue wait, throughput with N clients,
//! create latency as the number of existing volumes grows (0, 1,000, 10,000), `GET /topology`
//! against heketi-cli's request-per-object assembly at 1,000 volumes, RSS per replica, and
//! start-up time with 10,000 volumes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hekate::client::Client;
use hekate_testkit::{load_topology, run_async, run_async_every, ClusterSpec, ProcCluster};
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};

use crate::stats::{summarize, Summary};

#[derive(Debug, Clone, clap::Args)]
pub struct VolumeArgs {
    #[arg(long)]
    pub hekate: Option<PathBuf>,
    /// Sequential creates measured at each size point.
    #[arg(long, default_value_t = 200)]
    pub creates: usize,
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Volume counts at which create latency is measured (after the first point).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub points: Vec<usize>,
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct Point {
    pub existing_volumes: usize,
    pub create: Summary,
}

#[derive(Debug, Serialize)]
pub struct VolumeResults {
    pub sequential_create: Summary,
    pub concurrent_clients: usize,
    pub concurrent_creates_per_s: f64,
    pub concurrent_create: Summary,
    pub create_by_size: Vec<Point>,
    pub topology_at_1000: Option<Summary>,
    pub cli_assembly_at_1000: Option<Summary>,
    pub cli_assembly_requests: usize,
    /// `GET /volumes/{id}` through a follower (forwarded, linearizable).
    pub volume_info: Summary,
    /// Volume delete including the queue wait, 1 client.
    pub sequential_delete: Summary,
    pub concurrent_deletes_per_s: f64,
    pub rss_kib_per_replica: Vec<u64>,
    pub volumes_at_end: usize,
    pub restart_to_ready_ms: f64,
}

/// The queue polled every 5 ms, as issue 13's client (and the Heketi runs it compares with).
pub const POLL_5MS: Option<std::time::Duration> = Some(std::time::Duration::from_millis(5));

/// POST /volumes and follow the queue until 303, polling every `every` (None: the
/// testkit's quick polls); the new volume's path.
pub async fn create_volume(c: &Client, every: Option<std::time::Duration>) -> anyhow::Result<String> {
    let body = json!({"size": 1, "durability": {"type": "replicate", "replicate": {"replica": 3}}});
    let mut refused = 0;
    loop {
        match run_async_every(c, Method::POST, "/volumes", Some(&body), every).await {
            Ok(loc) => return Ok(loc.unwrap_or_default()),
            // 503 "nothing was written, retry" (no leader, or one that doubts its quorum):
            // what a client does with it, a bounded number of times. Counted.
            Err(e) if e.to_string().contains(": 503 ") && refused < 20 => {
                refused += 1;
                REFUSED.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Creates answered 503 (nothing written) and sent again, over the whole run.
pub static REFUSED: AtomicUsize = AtomicUsize::new(0);

pub(crate) async fn timed_creates(
    c: &Client,
    n: usize,
    poll: Option<std::time::Duration>,
) -> anyhow::Result<Vec<f64>> {
    Ok(timed_creates_ids(c, n, poll).await?.0)
}

async fn timed_creates_ids(
    c: &Client,
    n: usize,
    poll: Option<std::time::Duration>,
) -> anyhow::Result<(Vec<f64>, Vec<String>)> {
    let mut out = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        ids.push(create_volume(c, poll).await?);
        out.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((out, ids))
}

/// DELETE and follow the queue until 204.
pub async fn delete_volume(c: &Client, path: &str) -> anyhow::Result<()> {
    run_async(c, Method::DELETE, path, None).await.map(|_| ())
}

/// `n` creates spread over `clients` concurrent clients; returns (elapsed, latencies).
pub(crate) async fn concurrent_creates(
    cs: &[Client],
    n: usize,
    poll: Option<std::time::Duration>,
) -> anyhow::Result<(f64, Vec<f64>)> {
    let left = Arc::new(AtomicUsize::new(n));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for c in cs {
        let (c, left) = (c.clone(), left.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                .is_ok()
            {
                let t = Instant::now();
                create_volume(&c, poll).await?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok((t0.elapsed().as_secs_f64(), all))
}

/// heketi-cli's `topology info`: 1 + clusters + volumes + nodes requests, one at a time.
async fn cli_assembly(c: &Client) -> anyhow::Result<usize> {
    let mut n = 1;
    let clusters = c.call(Method::GET, "/clusters", None).await?.json()?;
    for cid in clusters["clusters"].as_array().cloned().unwrap_or_default() {
        let info = c
            .call(
                Method::GET,
                &format!("/clusters/{}", cid.as_str().unwrap_or_default()),
                None,
            )
            .await?
            .json()?;
        n += 1;
        for key in ["volumes", "nodes"] {
            for id in info[key].as_array().cloned().unwrap_or_default() {
                c.call(
                    Method::GET,
                    &format!("/{key}/{}", id.as_str().unwrap_or_default()),
                    None,
                )
                .await?
                .ok()?;
                n += 1;
            }
        }
    }
    Ok(n)
}

fn rss_kib(pid: u32) -> u64 {
    crate::procfs::rss_kib(pid).unwrap_or(0)
}

pub async fn run(args: VolumeArgs) -> anyhow::Result<VolumeResults> {
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let mut spec = ClusterSpec::new(crate::hekate_binary(&args.hekate)?, 3);
    spec.loglevel = "warning".into();
    spec.mockexec = json!({"device_size_gb": 200_000});
    spec.shared_mock = false;
    spec.glusterfs = json!({"max_volumes_per_cluster": -1, "max_inflight_operations": 10_000});
    let mut c = ProcCluster::create(&dir, spec)?;
    c.start_all()?;
    c.wait_ready(&[1, 2, 3], Duration::from_secs(60)).await?;
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(30)).await?;
    let client = c.client(leader);
    let devices: Vec<Value> = ["/dev/vdb", "/dev/vdc", "/dev/vdd", "/dev/vde"]
        .iter()
        .map(|d| json!({"name": d}))
        .collect();
    let nodes: Vec<Value> = (1..=3)
        .map(|i| {
            json!({
                "node": {"hostnames": {"manage": [format!("node{i}")], "storage": [format!("10.8.0.{i}")]}, "zone": i},
                "devices": devices,
            })
        })
        .collect();
    let topo = json!({"clusters": [{"nodes": nodes}]});
    load_topology(&client, &topo).await.context("topology load")?;
    eprintln!("topology loaded; {} sequential creates", args.creates);
    let (sequential, created) = timed_creates_ids(&client, args.creates, None).await?;
    let follower = c.client(
        c.ids()
            .into_iter()
            .find(|i| *i != leader)
            .context("no follower")?,
    );
    let mut reads = Vec::new();
    for path in &created {
        let t = Instant::now();
        follower.expect_ok(Method::GET, path, None).await?;
        reads.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let half = created.len() / 2;
    let mut deletes = Vec::new();
    for path in &created[..half] {
        let t = Instant::now();
        delete_volume(&client, path).await?;
        deletes.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let rest: Vec<String> = created[half..].to_vec();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for (i, chunk) in rest
        .chunks(rest.len().div_ceil(args.clients.max(1)).max(1))
        .enumerate()
    {
        let (c, chunk) = (c.client(1 + (i as u64 % 3)), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for p in chunk {
                delete_volume(&c, &p).await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let concurrent_deletes_per_s = rest.len() as f64 / t.elapsed().as_secs_f64();
    let clients: Vec<Client> = (0..args.clients).map(|i| c.client(1 + (i as u64 % 3))).collect();
    let (secs, conc) = concurrent_creates(&clients, args.creates, None).await?;
    let mut count = args.creates;
    eprintln!(
        "{} creates with {} clients in {secs:.2} s",
        args.creates, args.clients
    );
    let mut points = vec![Point {
        existing_volumes: 0,
        create: summarize(&sequential),
    }];
    let (mut topo_1000, mut cli_1000, mut cli_reqs) = (None, None, 0);
    let fillers: Vec<Client> = (0..16).map(|i| c.client(1 + (i as u64 % 3))).collect();
    for &target in &args.points {
        if target > count {
            eprintln!("filling to {target} volumes");
            concurrent_creates(&fillers, target - count, None).await?;
            count = target;
        }
        let lat = timed_creates(&client, 100.min(args.creates), None).await?;
        count += lat.len();
        points.push(Point {
            existing_volumes: target,
            create: summarize(&lat),
        });
        eprintln!("at {target}: create p50 {:.2} ms", summarize(&lat).p50_ms);
        if target == 1000 {
            let mut t = Vec::new();
            for _ in 0..20 {
                let s = Instant::now();
                client.call(Method::GET, "/topology", None).await?.ok()?;
                t.push(s.elapsed().as_secs_f64() * 1e3);
            }
            topo_1000 = Some(summarize(&t));
            let mut a = Vec::new();
            for _ in 0..3 {
                let s = Instant::now();
                cli_reqs = cli_assembly(&client).await?;
                a.push(s.elapsed().as_secs_f64() * 1e3);
            }
            cli_1000 = Some(summarize(&a));
        }
    }
    let rss: Vec<u64> = c.ids().iter().filter_map(|id| c.pid(*id)).map(rss_kib).collect();
    eprintln!("restarting all replicas with {count} volumes");
    for id in c.ids() {
        c.stop(id)?;
    }
    let t = Instant::now();
    c.start_all()?;
    c.wait_ready(&[1, 2, 3], Duration::from_secs(120)).await?;
    let restart = t.elapsed().as_secs_f64() * 1e3;
    Ok(VolumeResults {
        sequential_create: summarize(&sequential),
        concurrent_clients: args.clients,
        concurrent_creates_per_s: args.creates as f64 / secs,
        concurrent_create: summarize(&conc),
        create_by_size: points,
        topology_at_1000: topo_1000,
        cli_assembly_at_1000: cli_1000,
        cli_assembly_requests: cli_reqs,
        volume_info: summarize(&reads),
        sequential_delete: summarize(&deletes),
        concurrent_deletes_per_s,
        rss_kib_per_replica: rss,
        volumes_at_end: count,
        restart_to_ready_ms: restart,
    })
}
