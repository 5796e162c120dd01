//! `hekate-bench dev-creates`: volume creates on the default dev cluster (`hekate dev`: three
//! replicas, the mock executor with the nodes the replicas share, fsync on), the cluster a
//! newcomer starts (issue 13). Creates/s and latency with 1, 8 and 16 clients while the
//! cluster grows, then, with `--prefill N`, the sequential create latency once N volumes
//! exist, against the same measured on the empty cluster. Runs against any `hekate` binary
//! (`--hekate`), so the same command measures an older node model.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use hekate::client::Client;
use hekate_testkit::load_topology;
use serde::Serialize;
use serde_json::{json, Value};

use crate::soak::Dev;
use crate::stats::{summarize, Summary};
use crate::volume_bench::{concurrent_creates, timed_creates, POLL_5MS};

#[derive(Debug, Clone, clap::Args)]
pub struct DevCreatesArgs {
    #[arg(long)]
    pub hekate: Option<PathBuf>,
    /// Client counts, measured in this order on the growing cluster.
    #[arg(long, value_delimiter = ',', default_value = "1,8,16")]
    pub clients: Vec<usize>,
    /// Creates at each client count.
    #[arg(long, default_value_t = 200)]
    pub creates: usize,
    /// Then fill the cluster to this many volumes (16 clients) and measure sequential
    /// creates there (0: skip).
    #[arg(long, default_value_t = 0)]
    pub prefill: usize,
    /// Sequential creates measured on the empty cluster and after the prefill.
    #[arg(long, default_value_t = 100)]
    pub sequential: usize,
    #[arg(long, default_value_t = 18580)]
    pub base_port: u16,
    /// Passed to `hekate dev --mock-persist-ms` (unset: its default; older builds lack it).
    #[arg(long)]
    pub mock_persist_ms: Option<u64>,
    /// The dev cluster's directory (default: a fresh one under /tmp, removed at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct ClientsPoint {
    pub clients: usize,
    /// Volumes that existed when this point started.
    pub volumes_before: usize,
    pub creates_per_s: f64,
    pub create: Summary,
    /// CPU time of the whole dev cluster (`hekate dev`, its replicas and simulated nodes;
    /// not the clients) during this point, per create, ms.
    pub cluster_cpu_ms_per_create: f64,
}

#[derive(Debug, Serialize)]
pub struct DevCreatesResults {
    pub hekate: String,
    /// 1 client, on the empty cluster.
    pub sequential_empty: Summary,
    pub by_clients: Vec<ClientsPoint>,
    pub prefill: usize,
    pub prefill_creates_per_s: Option<f64>,
    /// 1 client, once `prefill` volumes exist.
    pub sequential_after_prefill: Option<Summary>,
    /// p50 after the prefill over p50 on the empty cluster.
    pub p50_ratio: Option<f64>,
    pub volumes_at_end: usize,
    pub clusters: usize,
    pub mock_persist_ms: Option<u64>,
    /// Once `prefill` volumes exist: each replica's resident memory and `GET /topology`.
    pub at_prefill: Option<ScaleCheck>,
    /// Creates answered 503 (nothing written: no leader, or a leader doubting its quorum
    /// under the load) and sent again.
    pub refused_and_retried: usize,
}

/// What a large cluster costs (issue 13: RSS per replica <= 500 MB, `/topology` <= 1 s).
#[derive(Debug, Serialize)]
pub struct ScaleCheck {
    /// `hekate_footprint_resident_bytes` of each replica, MiB.
    pub rss_mib: Vec<f64>,
    /// `GET /topology` through replica 1, 5 times.
    pub topology: Summary,
    pub topology_bytes: usize,
    /// A follower stopped (SIGTERM) and started again: from its start to `/readyz` 200
    /// (caught up with the leader's applied index).
    pub restart_to_ready_ms: Option<f64>,
    /// A new, empty replica started and added (`POST /raft/members`, which returns once it
    /// caught up and became a voter): from its start to its `/readyz` 200, having received the
    /// leader's snapshot (`snapshot` in its `/raft/status`). Removed again afterwards.
    pub new_replica_ready_ms: Option<f64>,
    pub new_replica_snapshot_index: Option<u64>,
}

/// Polls `/readyz` until 200 (300 s at most).
async fn wait_ready(c: &Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + std::time::Duration::from_secs(300);
    loop {
        if let Ok(r) = c.call(reqwest::Method::GET, "/readyz", None).await {
            if r.status == 200 {
                return Ok(());
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "not ready within 300 s");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The first replica's API port.
fn dev_port(dev: &Dev) -> anyhow::Result<u16> {
    dev.servers[0]
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .context("no port in the first server's address")
}

/// Each replica's RSS (from its `/metrics`) and `/topology` timed through the first.
async fn scale_check(dev: &Dev, key: &str) -> anyhow::Result<ScaleCheck> {
    let mut rss_mib = Vec::new();
    for s in &dev.servers {
        let c = Client::new(vec![s.clone()], "admin", key);
        let m = c.call(reqwest::Method::GET, "/metrics", None).await?.body;
        let rss = m
            .lines()
            .find_map(|l| l.strip_prefix("hekate_footprint_resident_bytes "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .context("no hekate_footprint_resident_bytes in /metrics")?;
        rss_mib.push(rss / (1 << 20) as f64);
    }
    let c = Client::new(vec![dev.servers[0].clone()], "admin", key);
    let (topology, bytes) = timed_topology(&dev.servers[0], key, 5).await?;
    // A follower restarted; then a new, empty replica added (caught up by snapshot).
    let status = c.call(reqwest::Method::GET, "/raft/status", None).await?.json()?;
    let leader = status["leader"].as_u64().context("no leader in /raft/status")? as usize;
    let follower = if leader == 1 { 2 } else { 1 };
    dev.restart(follower).await?;
    let t = Instant::now();
    let me = Client::new(vec![dev.servers[follower - 1].clone()], "admin", key);
    wait_ready(&me).await?;
    let restart_ms = t.elapsed().as_secs_f64() * 1e3;
    eprintln!("replica {follower} restarted: ready in {restart_ms:.0} ms");
    let port = dev_port(dev)? + 3;
    let t = Instant::now();
    let addr = dev.start_new(4, port)?;
    let added = c
        .call(
            reqwest::Method::POST,
            "/raft/members",
            Some(&serde_json::json!({"id": 4, "api": addr})),
        )
        .await?;
    anyhow::ensure!(
        added.status == 200,
        "adding replica 4: {} {}",
        added.status,
        added.body
    );
    let new = Client::new(vec![format!("http://{addr}")], "admin", key);
    wait_ready(&new).await?;
    let joined_ms = t.elapsed().as_secs_f64() * 1e3;
    let snap = new
        .call(reqwest::Method::GET, "/raft/status", None)
        .await?
        .json()?["snapshot"]
        .as_u64();
    eprintln!("replica 4 added empty: a voter and ready in {joined_ms:.0} ms (snapshot {snap:?})");
    let removed = c.call(reqwest::Method::DELETE, "/raft/members/4", None).await?;
    anyhow::ensure!(removed.status == 200, "removing replica 4: {}", removed.status);
    let (restart_to_ready_ms, new_replica_ready_ms, new_replica_snapshot_index) =
        (Some(restart_ms), Some(joined_ms), snap);
    Ok(ScaleCheck {
        rss_mib,
        topology,
        topology_bytes: bytes,
        restart_to_ready_ms,
        new_replica_ready_ms,
        new_replica_snapshot_index,
    })
}

/// At most this many volumes per cluster (Heketi's default `max_volumes_per_cluster` is
/// 1,000, which the dev cluster keeps): the topology has as many clusters as the run needs.
const PER_CLUSTER: usize = 900;

pub async fn run(args: DevCreatesArgs) -> anyhow::Result<DevCreatesResults> {
    let hekate = crate::hekate_binary(&args.hekate)?;
    let tmp = tempfile::Builder::new()
        .prefix("hekate-devbench-")
        .tempdir_in("/tmp")?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let extra: Vec<String> = args
        .mock_persist_ms
        .map(|ms| vec!["--mock-persist-ms".to_string(), ms.to_string()])
        .unwrap_or_default();
    let (dev, key) = Dev::start(&hekate, &dir, args.base_port, &extra)?;
    let result = drive(&args, &dev, &key).await;
    dev.stop();
    result.map(|mut r| {
        r.hekate = hekate.display().to_string();
        r
    })
}

async fn drive(args: &DevCreatesArgs, dev: &Dev, key: &str) -> anyhow::Result<DevCreatesResults> {
    let total = 2 * args.sequential + args.creates * args.clients.len() + args.prefill;
    let clusters = total.div_ceil(PER_CLUSTER).max(1);
    let devices: Vec<Value> = ["/dev/vdb", "/dev/vdc", "/dev/vdd", "/dev/vde"]
        .iter()
        .map(|d| json!({"name": d}))
        .collect();
    let topo: Vec<Value> = (0..clusters)
        .map(|k| {
            let nodes: Vec<Value> = (1..=3)
                .map(|i| {
                    json!({
                        "node": {"hostnames": {"manage": [format!("c{k}node{i}")], "storage": [format!("10.{}.0.{i}", 8 + k)]}, "zone": i},
                        "devices": devices,
                    })
                })
                .collect();
            json!({ "nodes": nodes })
        })
        .collect();
    let admin = Client::new(vec![dev.servers[0].clone()], "admin", key);
    // The leader may still be settling right after start: retry the topology load briefly.
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match load_topology(&admin, &json!({ "clusters": topo })).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("dev-creates: topology load: {e}; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.context("topology load")),
        }
    }
    eprintln!(
        "{clusters} cluster(s) loaded; {} sequential creates",
        args.sequential
    );
    let mut count = 0;
    let empty = timed_creates(&admin, args.sequential, POLL_5MS)
        .await
        .context("sequential creates")?;
    count += empty.len();
    let sequential_empty = summarize(&empty);
    eprintln!("empty: create p50 {:.2} ms", sequential_empty.p50_ms);
    let mut by_clients = Vec::new();
    for &n in &args.clients {
        let clients: Vec<Client> = (0..n)
            .map(|i| Client::new(vec![dev.servers[i % dev.servers.len()].clone()], "admin", key))
            .collect();
        let cpu_before = crate::procfs::tree_cpu_ms(dev.pid());
        let (secs, lat) = concurrent_creates(&clients, args.creates, POLL_5MS)
            .await
            .with_context(|| format!("{n} clients"))?;
        let cpu = crate::procfs::tree_cpu_ms(dev.pid()) - cpu_before;
        let point = ClientsPoint {
            clients: n,
            volumes_before: count,
            creates_per_s: args.creates as f64 / secs,
            create: summarize(&lat),
            cluster_cpu_ms_per_create: cpu / args.creates.max(1) as f64,
        };
        eprintln!(
            "{n} clients from {count} volumes: {:.1} creates/s, p50 {:.2} ms, cluster CPU {:.2} ms per create",
            point.creates_per_s, point.create.p50_ms, point.cluster_cpu_ms_per_create
        );
        count += args.creates;
        by_clients.push(point);
    }
    let (mut prefill_rate, mut after, mut ratio) = (None, None, None);
    let mut at_prefill = None;
    if args.prefill > count {
        eprintln!("filling to {} volumes", args.prefill);
        let fillers: Vec<Client> = (0..16)
            .map(|i| Client::new(vec![dev.servers[i % dev.servers.len()].clone()], "admin", key))
            .collect();
        let (secs, _) = concurrent_creates(&fillers, args.prefill - count, POLL_5MS)
            .await
            .context("prefill")?;
        prefill_rate = Some((args.prefill - count) as f64 / secs);
        count = args.prefill;
        let lat = timed_creates(&admin, args.sequential, POLL_5MS).await?;
        count += lat.len();
        let s = summarize(&lat);
        eprintln!("at {}: create p50 {:.2} ms", args.prefill, s.p50_ms);
        ratio = Some(s.p50_ms / sequential_empty.p50_ms);
        after = Some(s);
        let check = scale_check(dev, key).await?;
        eprintln!(
            "at {}: RSS {:?} MiB, GET /topology p50 {:.0} ms ({} bytes)",
            args.prefill, check.rss_mib, check.topology.p50_ms, check.topology_bytes
        );
        at_prefill = Some(check);
    }
    Ok(DevCreatesResults {
        hekate: String::new(),
        sequential_empty,
        by_clients,
        prefill: args.prefill,
        prefill_creates_per_s: prefill_rate,
        sequential_after_prefill: after,
        p50_ratio: ratio,
        volumes_at_end: count,
        clusters,
        mock_persist_ms: args.mock_persist_ms,
        at_prefill,
        refused_and_retried: crate::volume_bench::REFUSED.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// `GET /topology` through `server` as admin, `rounds` times: from the request to the last
/// byte, each byte counted and dropped as `curl -o /dev/null` does (a client building one
/// 230 MB string would time itself). The times and the body's size.
pub async fn timed_topology(server: &str, key: &str, rounds: usize) -> anyhow::Result<(Summary, usize)> {
    // A 230 MB body takes seconds; a server that stops sending does not hold the bench.
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()?;
    let mut ms = Vec::new();
    let mut bytes = 0;
    for _ in 0..rounds {
        let token = hekate::auth::sign("admin", key, "GET", "/topology", hekate::auth::now_unix(), 300);
        let t = Instant::now();
        let mut r = http
            .get(format!("{server}/topology"))
            .bearer_auth(token)
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "GET /topology: {}", r.status());
        bytes = 0;
        while let Some(chunk) = r.chunk().await? {
            bytes += chunk.len();
        }
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((summarize(&ms), bytes))
}
