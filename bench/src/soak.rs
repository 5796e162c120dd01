//! `hekate-bench soak`: the footprint under churn (issue 16). Starts the default `hekate dev`
//! cluster (three replicas, mock executor, as the README does), keeps about `--live` volumes
//! with `--clients` clients that create and delete at about `--rate` operations a second, and
//! samples every replica's RSS (`/proc/<pid>/status` VmRSS), data-directory size and Raft
//! term every `--sample-secs`. Records throughput and p50 per minute, errors, retries and term
//! changes; optionally restarts the leader at a given minute. The summary compares the first
//! and last five minutes and fits the RSS slope of the last ten minutes with its noise.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hekate::client::Client;
use hekate_testkit::load_topology;
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};

use crate::stats::{summarize, Summary};

#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    #[arg(long)]
    pub hekate: Option<PathBuf>,
    /// Length of the churn.
    #[arg(long, default_value_t = 30)]
    pub minutes: u64,
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Volumes kept alive (spread over the clients).
    #[arg(long, default_value_t = 50)]
    pub live: usize,
    /// Target operations per second over all clients (creates + deletes).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 10)]
    pub sample_secs: u64,
    /// Restart (SIGTERM, then `hekate serve --config`) the leader at this minute.
    #[arg(long)]
    pub restart_leader_at: Option<u64>,
    #[arg(long, default_value_t = 18480)]
    pub base_port: u16,
    /// The dev cluster's directory (default: a fresh directory under /tmp, removed at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub t_s: f64,
    /// Per replica id 1..=3.
    pub rss_mib: Vec<f64>,
    pub data_dir_mib: Vec<f64>,
    /// Per replica: the allocator's live heap (`hekate_heap_allocated_bytes`), NaN if absent.
    pub heap_allocated_mib: Vec<f64>,
    pub term: u64,
    pub leader: Option<u64>,
    pub ops_done: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Minute {
    pub minute: u64,
    pub ops: usize,
    pub ops_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Slope {
    /// Least-squares slope, MiB per minute.
    pub mib_per_min: f64,
    /// Standard error of the slope, MiB per minute.
    pub stderr_mib_per_min: f64,
    /// Standard deviation of the residuals around the fit, MiB.
    pub residual_sd_mib: f64,
    /// |slope| <= 2 standard errors, or the fitted change over the window is below the residual noise.
    pub within_noise: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakSummary {
    pub window_minutes: u64,
    pub first_ops_per_s: f64,
    pub last_ops_per_s: f64,
    pub first_p50_ms: f64,
    pub last_p50_ms: f64,
    pub first: Summary,
    pub last: Summary,
    /// Per replica, over the last ten minutes (or the last half of a short run).
    pub rss_slope: Vec<Slope>,
    /// Per replica, after minute 5 (or after the first third of a short run).
    pub max_rss_mib_after_warmup: Vec<f64>,
    pub max_data_dir_mib_after_warmup: Vec<f64>,
    pub data_dir_mib_at_end: Vec<f64>,
    pub data_dir_slope: Vec<Slope>,
}

#[derive(Debug, Serialize)]
pub struct SoakResults {
    pub minutes: u64,
    pub clients: usize,
    pub live_target: usize,
    pub rate_target: f64,
    pub restart_leader_at: Option<u64>,
    pub restarted_replica: Option<u64>,
    pub operations: u64,
    pub errors: u64,
    /// Requests sent again after a transport error or 503 (on another replica).
    pub retries: u64,
    pub first_errors: Vec<String>,
    pub term_changes: u64,
    pub terms_seen: Vec<u64>,
    pub per_minute: Vec<Minute>,
    pub samples: Vec<Sample>,
    pub summary: SoakSummary,
    /// Each replica's `hekate_footprint_*` / `hekate_rocksdb_*` / `hekate_heap_*` gauges at the end.
    pub footprint_at_end: Vec<Value>,
    pub live_volumes_at_end: usize,
}

/// Least-squares fit of `y` over `x` (minutes): slope, its standard error, residual sd.
pub fn slope(points: &[(f64, f64)]) -> Slope {
    let n = points.len() as f64;
    if points.len() < 3 {
        return Slope {
            mib_per_min: f64::NAN,
            stderr_mib_per_min: f64::NAN,
            residual_sd_mib: f64::NAN,
            within_noise: false,
        };
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let a = my - b * mx;
    let sse: f64 = points.iter().map(|p| (p.1 - (a + b * p.0)).powi(2)).sum();
    let resid_sd = (sse / (n - 2.0)).sqrt();
    let se = if sxx > 0.0 {
        resid_sd / sxx.sqrt()
    } else {
        f64::NAN
    };
    let span = points.last().map(|p| p.0).unwrap_or(0.0) - points[0].0;
    let within_noise = b.abs() <= 2.0 * se || (b * span).abs() <= resid_sd;
    Slope {
        mib_per_min: b,
        stderr_mib_per_min: se,
        residual_sd_mib: resid_sd,
        within_noise,
    }
}

fn rss_mib(pid: u32) -> f64 {
    crate::procfs::rss_kib(pid).map_or(0.0, |kib| kib as f64 / 1024.0)
}

/// The running `hekate dev` and the replicas' pids (a restarted replica is our child).
pub(crate) struct Dev {
    dev: Child,
    dir: PathBuf,
    pub(crate) servers: Vec<String>,
    pids: Mutex<Vec<u32>>,
    restarted: Mutex<Vec<Child>>,
    hekate: PathBuf,
}

impl Dev {
    /// The `hekate dev` process (its replicas and simulated nodes run below it).
    pub(crate) fn pid(&self) -> u32 {
        self.dev.id()
    }

    /// Starts `hekate dev --replicas 3` in `dir`; returns it and the admin key.
    pub(crate) fn start(
        hekate: &Path,
        dir: &Path,
        base_port: u16,
        extra: &[String],
    ) -> anyhow::Result<(Dev, String)> {
        let mut dev = Command::new(hekate)
            .args([
                "dev",
                "--replicas",
                "3",
                "--base-port",
                &base_port.to_string(),
                "--data-dir",
            ])
            .arg(dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start hekate dev")?;
        let out = dev.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(out).lines();
        let (mut pids, mut servers, mut key) = (Vec::new(), Vec::new(), None);
        for line in lines.by_ref() {
            let line = line?;
            let l = line.trim();
            // "replica 1: pid 123 api http://127.0.0.1:18480  config ..."
            if let Some(rest) = l.strip_prefix("replica ") {
                let f: Vec<&str> = rest.split_whitespace().collect();
                if f.len() >= 5 && f[1] == "pid" && f[3] == "api" {
                    pids.push(f[2].parse::<u32>()?);
                    servers.push(f[4].to_string());
                }
            }
            if let Some(i) = l.find("HEKETI_CLI_KEY=") {
                key = Some(l[i + "HEKETI_CLI_KEY=".len()..].trim().to_string());
            }
            if l.starts_with("Ctrl-C") {
                break;
            }
        }
        // Keep draining dev's stdout so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let key = key.context("hekate dev printed no admin key")?;
        if pids.len() != 3 {
            bail!("hekate dev reported {} replicas", pids.len());
        }
        Ok((
            Dev {
                dev,
                dir: dir.to_path_buf(),
                servers,
                pids: Mutex::new(pids),
                restarted: Mutex::new(Vec::new()),
                hekate: hekate.to_path_buf(),
            },
            key,
        ))
    }

    fn data_dir(&self, id: usize) -> PathBuf {
        self.dir.join(format!("replica-{id}")).join("data")
    }

    fn pids(&self) -> Vec<u32> {
        self.pids.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Starts a new replica `id` (config `replica-<id>/heketi.json`, made from replica 3's
    /// with its own port, data directory and `join`), empty, as our child; the caller adds it
    /// to the group (`POST /raft/members`). Its API address.
    pub(crate) fn start_new(&self, id: usize, port: u16) -> anyhow::Result<String> {
        let text = std::fs::read_to_string(self.dir.join("replica-3").join("heketi.json"))?;
        let mut cfg: serde_json::Value = serde_json::from_str(&text)?;
        let dir = self.dir.join(format!("replica-{id}"));
        std::fs::create_dir_all(&dir)?;
        let addr = format!("127.0.0.1:{port}");
        cfg["port"] = serde_json::json!(port.to_string());
        cfg["raft"]["id"] = serde_json::json!(id);
        cfg["raft"]["data_dir"] = serde_json::json!(dir.join("data"));
        cfg["raft"]["api_listen"] = serde_json::json!(addr);
        cfg["raft"]["join"] = serde_json::json!(true);
        if let Some(peers) = cfg["raft"]["peers"].as_array_mut() {
            peers.push(serde_json::json!({"id": id, "api": addr}));
        }
        std::fs::write(dir.join("heketi.json"), serde_json::to_vec_pretty(&cfg)?)?;
        self.serve(&dir)?;
        Ok(addr)
    }

    /// Starts `hekate serve` on `dir/heketi.json` as our child, logging to `dir/hekate.log`
    /// (appended); its pid.
    fn serve(&self, dir: &Path) -> anyhow::Result<u32> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("hekate.log"))?;
        let child = Command::new(&self.hekate)
            .arg("serve")
            .arg("--config")
            .arg(dir.join("heketi.json"))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()?;
        let pid = child.id();
        self.restarted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
        Ok(pid)
    }

    /// SIGTERM replica `id`, wait for it to exit, start it again from its config.
    pub(crate) async fn restart(&self, id: usize) -> anyhow::Result<()> {
        let pid = self.pids()[id - 1];
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Path::new(&format!("/proc/{pid}/status")).exists() && !is_zombie(pid) {
            if Instant::now() > deadline {
                bail!("replica {id} (pid {pid}) did not stop");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let dir = self.dir.join(format!("replica-{id}"));
        let pid = self.serve(&dir)?;
        self.pids.lock().unwrap_or_else(|e| e.into_inner())[id - 1] = pid;
        Ok(())
    }

    pub(crate) fn stop(mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.dev.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        for c in self
            .restarted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter_mut()
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
        let _ = self.dev.wait();
    }
}

/// A replica killed by SIGTERM but not yet reaped by `hekate dev` is a zombie: it has stopped.
fn is_zombie(pid: u32) -> bool {
    crate::procfs::state(pid).is_none_or(|s| s == 'Z')
}

struct Shared {
    start: Instant,
    /// (seconds since start, latency ms) of every completed operation.
    done: Mutex<Vec<(f64, f64)>>,
    errors: Mutex<Vec<(f64, String)>>,
    retries: AtomicU64,
    ops: AtomicU64,
}

/// Sends a request, retrying on a transport error or 503 (leader change) for up to 30 s.
async fn call_retry(
    sh: &Shared,
    c: &Client,
    m: Method,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<hekate::client::Reply> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match c.call(m.clone(), path, body).await {
            Ok(r) if r.status != 503 => return Ok(r),
            Ok(r) if Instant::now() > deadline => bail!("{m} {path}: 503 for 30 s: {}", r.body.trim()),
            Err(e) if Instant::now() > deadline => return Err(e),
            _ => {}
        }
        sh.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One asynchronous operation to its end: Ok(Some(resource)) on 303, Ok(None) on 204.
async fn run_op(
    sh: &Shared,
    c: &Client,
    m: Method,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<Option<String>> {
    let r = call_retry(sh, c, m.clone(), path, body).await?;
    if r.status != 202 {
        bail!("{m} {path}: {} {}", r.status, r.body.trim());
    }
    let loc = r.location();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut nap = Duration::from_millis(1);
    loop {
        let q = call_retry(sh, c, Method::GET, &loc, None).await?;
        match q.status {
            200 if q.headers.contains_key("x-pending") => {}
            303 => {
                return Ok(q
                    .headers
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .map(String::from))
            }
            204 => return Ok(None),
            s => bail!("{m} {path}: operation ended {s}: {}", q.body.trim()),
        }
        if Instant::now() > deadline {
            bail!("{loc}: still pending after 60 s");
        }
        tokio::time::sleep(nap).await;
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}

async fn churn(sh: Arc<Shared>, c: Client, share: usize, interval: Duration, until: Instant) -> Vec<String> {
    let body = json!({"size": 1, "durability": {"type": "replicate", "replicate": {"replica": 3}}});
    let mut live: VecDeque<String> = VecDeque::new();
    let mut next = Instant::now();
    while Instant::now() < until {
        let now = Instant::now();
        if next > now {
            tokio::time::sleep(next - now).await;
        } else {
            // Behind schedule (the cluster is slower than the target): do not burst.
            next = now;
        }
        next += interval;
        let t = Instant::now();
        let res = if live.len() < share {
            run_op(&sh, &c, Method::POST, "/volumes", Some(&body))
                .await
                .map(|loc| live.extend(loc))
        } else {
            let v = live.pop_front().unwrap_or_default();
            run_op(&sh, &c, Method::DELETE, &v, None).await.map(|_| ())
        };
        let at = sh.start.elapsed().as_secs_f64();
        match res {
            Ok(()) => {
                sh.done
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((at, t.elapsed().as_secs_f64() * 1e3));
                sh.ops.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => sh
                .errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((at, e.to_string())),
        }
    }
    live.into()
}

async fn status(http: &reqwest::Client, server: &str) -> Option<Value> {
    http.get(format!("{server}/raft/status"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// The highest term any replica reports, and the leader's id if one is known.
async fn term_and_leader(http: &reqwest::Client, servers: &[String]) -> (u64, Option<u64>) {
    let (mut term, mut leader) = (0, None);
    for s in servers {
        if let Some(v) = status(http, s).await {
            term = term.max(v["term"].as_u64().unwrap_or(0));
            if leader.is_none() {
                leader = v["leader"].as_u64();
            }
        }
    }
    (term, leader)
}

/// Each replica's footprint gauges, from `/metrics`.
async fn footprint(http: &reqwest::Client, servers: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for s in servers {
        let mut m = serde_json::Map::new();
        m.insert("server".into(), json!(s));
        if let Ok(r) = http
            .get(format!("{s}/metrics"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            for line in r.text().await.unwrap_or_default().lines() {
                if line.starts_with('#')
                    || !(line.starts_with("hekate_footprint")
                        || line.starts_with("hekate_rocksdb")
                        || line.starts_with("hekate_heap"))
                {
                    continue;
                }
                if let Some((k, v)) = line.rsplit_once(' ') {
                    m.insert(k.to_string(), json!(v.parse::<f64>().unwrap_or(f64::NAN)));
                }
            }
        }
        out.push(Value::Object(m));
    }
    out
}

fn window_summary(done: &[(f64, f64)], from_s: f64, to_s: f64) -> (f64, Summary) {
    let lat: Vec<f64> = done
        .iter()
        .filter(|(t, _)| *t >= from_s && *t < to_s)
        .map(|(_, l)| *l)
        .collect();
    (lat.len() as f64 / (to_s - from_s).max(1e-9), summarize(&lat))
}

pub async fn run(args: SoakArgs) -> anyhow::Result<SoakResults> {
    if args.clients == 0 || args.minutes == 0 || args.rate <= 0.0 {
        bail!("--clients, --minutes and --rate must be positive");
    }
    let hekate = crate::hekate_binary(&args.hekate)?;
    let tmp = tempfile::Builder::new()
        .prefix("hekate-soak-")
        .tempdir_in("/tmp")?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let (dev, key) = Dev::start(&hekate, &dir, args.base_port, &[])?;
    let dev = Arc::new(dev);
    let result = drive(&args, dev.clone(), &key).await;
    match Arc::try_unwrap(dev) {
        Ok(d) => d.stop(),
        Err(_) => eprintln!("soak: dev cluster still referenced; stop it by hand"),
    }
    result
}

async fn drive(args: &SoakArgs, dev: Arc<Dev>, key: &str) -> anyhow::Result<SoakResults> {
    let http = reqwest::Client::new();
    let servers = dev.servers.clone();
    let admin = Client::new(servers.clone(), "admin", key);
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
    // The leader may still be settling right after start: retry the topology load briefly.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match load_topology(&admin, &json!({"clusters": [{"nodes": nodes}]})).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("soak: topology load: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.context("topology load")),
        }
    }
    let shared = Arc::new(Shared {
        start: Instant::now(),
        done: Mutex::new(Vec::new()),
        errors: Mutex::new(Vec::new()),
        retries: AtomicU64::new(0),
        ops: AtomicU64::new(0),
    });
    let until = shared.start + Duration::from_secs(args.minutes * 60);
    let interval = Duration::from_secs_f64(args.clients as f64 / args.rate);
    let mut tasks = Vec::new();
    for i in 0..args.clients {
        // Client i starts on replica i mod 3; `Client::call` fails over on connect errors.
        let mut s = servers.clone();
        let n = s.len();
        s.rotate_left(i % n);
        let c = Client::new(s, "admin", key);
        let share = args.live / args.clients + usize::from(i < args.live % args.clients);
        tasks.push(tokio::spawn(churn(shared.clone(), c, share, interval, until)));
    }
    eprintln!(
        "soak: {} clients, ~{} live volumes, target {}/s for {} min; dev cluster in {}",
        args.clients,
        args.live,
        args.rate,
        args.minutes,
        dev.dir.display()
    );
    let mut samples: Vec<Sample> = Vec::new();
    let mut terms: Vec<u64> = Vec::new();
    let mut restarted = None;
    let mut next_sample = shared.start;
    while Instant::now() < until {
        let now = Instant::now();
        if next_sample > now {
            tokio::time::sleep(next_sample - now).await;
        }
        next_sample += Duration::from_secs(args.sample_secs);
        let t = shared.start.elapsed().as_secs_f64();
        if let (Some(m), None) = (args.restart_leader_at, restarted) {
            if t >= (m * 60) as f64 {
                let (_, leader) = term_and_leader(&http, &servers).await;
                if let Some(l) = leader {
                    eprintln!("soak: restarting leader {l} at {t:.0} s");
                    dev.restart(l as usize).await?;
                    restarted = Some(l);
                }
            }
        }
        let (term, leader) = term_and_leader(&http, &servers).await;
        if term > 0 && terms.last() != Some(&term) {
            terms.push(term);
        }
        let pids = dev.pids();
        let heap = footprint(&http, &servers).await;
        let s = Sample {
            t_s: t,
            rss_mib: pids.iter().map(|p| rss_mib(*p)).collect(),
            data_dir_mib: (1..=3)
                .map(|i| hekate_raft::db::dir_bytes(&dev.data_dir(i)) as f64 / (1024.0 * 1024.0))
                .collect(),
            heap_allocated_mib: heap
                .iter()
                .map(|f| f["hekate_heap_allocated_bytes"].as_f64().unwrap_or(f64::NAN) / (1024.0 * 1024.0))
                .collect(),
            term,
            leader,
            ops_done: shared.ops.load(Ordering::Relaxed),
        };
        eprintln!(
            "soak: {:>5.0} s  ops {:>7}  rss {:?} MiB  heap {:?} MiB  data {:?} MiB  term {}",
            s.t_s,
            s.ops_done,
            s.rss_mib.iter().map(|v| v.round()).collect::<Vec<_>>(),
            s.heap_allocated_mib.iter().map(|v| v.round()).collect::<Vec<_>>(),
            s.data_dir_mib.iter().map(|v| v.round()).collect::<Vec<_>>(),
            s.term
        );
        samples.push(s);
    }
    let mut live = Vec::new();
    for t in tasks {
        live.extend(t.await?);
    }
    let footprint_at_end = footprint(&http, &servers).await;
    let (term, _) = term_and_leader(&http, &servers).await;
    if term > 0 && terms.last() != Some(&term) {
        terms.push(term);
    }
    // Delete what is left so that a resumed dev directory starts from the same live state.
    for v in &live {
        let _ = run_op(&shared, &admin, Method::DELETE, v, None).await;
    }
    let done = shared.done.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let errors = shared.errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let per_minute = (0..args.minutes)
        .map(|m| {
            let (from, to) = ((m * 60) as f64, ((m + 1) * 60) as f64);
            let (rate, s) = window_summary(&done, from, to);
            Minute {
                minute: m,
                ops: s.n,
                ops_per_s: rate,
                p50_ms: s.p50_ms,
                p99_ms: s.p99_ms,
                errors: errors.iter().filter(|(t, _)| *t >= from && *t < to).count() as u64,
            }
        })
        .collect();
    let summary = summarize_run(args.minutes, &done, &samples);
    Ok(SoakResults {
        minutes: args.minutes,
        clients: args.clients,
        live_target: args.live,
        rate_target: args.rate,
        restart_leader_at: args.restart_leader_at,
        restarted_replica: restarted,
        operations: done.len() as u64,
        errors: errors.len() as u64,
        retries: shared.retries.load(Ordering::Relaxed),
        first_errors: errors
            .iter()
            .take(10)
            .map(|(t, e)| format!("{t:.1} s: {e}"))
            .collect(),
        term_changes: terms.len().saturating_sub(1) as u64,
        terms_seen: terms,
        per_minute,
        samples,
        summary,
        footprint_at_end,
        live_volumes_at_end: live.len(),
    })
}

/// The comparison windows: five minutes (shorter for a short run: a third of it, at least one).
fn window_minutes(minutes: u64) -> u64 {
    5.min((minutes / 3).max(1))
}

fn summarize_run(minutes: u64, done: &[(f64, f64)], samples: &[Sample]) -> SoakSummary {
    let w = window_minutes(minutes);
    let end = (minutes * 60) as f64;
    let (first_rate, first) = window_summary(done, 0.0, (w * 60) as f64);
    let (last_rate, last) = window_summary(done, end - (w * 60) as f64, end);
    let warm = (w * 60) as f64;
    let slope_from = end - (10.min((minutes / 2).max(1)) * 60) as f64;
    let replicas = samples.first().map(|s| s.rss_mib.len()).unwrap_or(0);
    let series = |f: &dyn Fn(&Sample) -> f64, from: f64| -> Vec<(f64, f64)> {
        samples
            .iter()
            .filter(|s| s.t_s >= from)
            .map(|s| (s.t_s / 60.0, f(s)))
            .collect()
    };
    let max_of = |v: Vec<(f64, f64)>| v.iter().map(|p| p.1).fold(0.0, f64::max);
    SoakSummary {
        window_minutes: w,
        first_ops_per_s: first_rate,
        last_ops_per_s: last_rate,
        first_p50_ms: first.p50_ms,
        last_p50_ms: last.p50_ms,
        first,
        last,
        rss_slope: (0..replicas)
            .map(|i| slope(&series(&|s| s.rss_mib[i], slope_from)))
            .collect(),
        max_rss_mib_after_warmup: (0..replicas)
            .map(|i| max_of(series(&|s| s.rss_mib[i], warm)))
            .collect(),
        max_data_dir_mib_after_warmup: (0..replicas)
            .map(|i| max_of(series(&|s| s.data_dir_mib[i], warm)))
            .collect(),
        data_dir_mib_at_end: samples.last().map(|s| s.data_dir_mib.clone()).unwrap_or_default(),
        data_dir_slope: (0..replicas)
            .map(|i| slope(&series(&|s| s.data_dir_mib[i], slope_from)))
            .collect(),
    }
}

/// One line per goal of issue 16, for the terminal.
pub fn print_summary(r: &SoakResults) {
    let s = &r.summary;
    let pct = |a: f64, b: f64| (b - a) / a * 100.0;
    eprintln!(
        "\n== soak: {} min, {} operations, {} errors, {} retries, {} term changes",
        r.minutes, r.operations, r.errors, r.retries, r.term_changes
    );
    eprintln!(
        "throughput first {w} min {:.1}/s, last {w} min {:.1}/s ({:+.1}%)",
        s.first_ops_per_s,
        s.last_ops_per_s,
        pct(s.first_ops_per_s, s.last_ops_per_s),
        w = s.window_minutes
    );
    eprintln!(
        "p50 first {:.1} ms, last {:.1} ms ({:+.1}%)",
        s.first_p50_ms,
        s.last_p50_ms,
        pct(s.first_p50_ms, s.last_p50_ms)
    );
    for (i, sl) in s.rss_slope.iter().enumerate() {
        eprintln!(
            "replica {}: max RSS after warm-up {:.0} MiB; RSS slope {:+.2} ± {:.2} MiB/min (residual sd {:.1} MiB, within noise: {}); data dir {:.0} MiB at end, max {:.0}, slope {:+.2} MiB/min",
            i + 1,
            s.max_rss_mib_after_warmup[i],
            sl.mib_per_min,
            sl.stderr_mib_per_min,
            sl.residual_sd_mib,
            sl.within_noise,
            s.data_dir_mib_at_end.get(i).copied().unwrap_or(f64::NAN),
            s.max_data_dir_mib_after_warmup[i],
            s.data_dir_slope[i].mib_per_min
        );
    }
    for e in &r.first_errors {
        eprintln!("error: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_is_exact_and_noise_free() {
        let pts: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, 3.0 + 0.5 * i as f64)).collect();
        let s = slope(&pts);
        assert!((s.mib_per_min - 0.5).abs() < 1e-9, "{s:?}");
        assert!(s.residual_sd_mib < 1e-9);
        assert!(!s.within_noise, "a clean rise is not noise");
    }

    #[test]
    fn flat_noisy_series_is_within_noise_and_a_rising_one_is_not() {
        // Deterministic +-2 MiB alternation around 100 MiB.
        let flat: Vec<(f64, f64)> = (0..60)
            .map(|i| (i as f64 / 6.0, 100.0 + if i % 2 == 0 { 2.0 } else { -2.0 }))
            .collect();
        let s = slope(&flat);
        assert!(s.mib_per_min.abs() < 0.1, "{s:?}");
        assert!(s.within_noise, "{s:?}");
        let rising: Vec<(f64, f64)> = flat.iter().map(|(x, y)| (*x, y + 5.0 * x)).collect();
        let r = slope(&rising);
        assert!((r.mib_per_min - 5.0).abs() < 0.2, "{r:?}");
        assert!(!r.within_noise, "{r:?}");
    }

    #[test]
    fn too_few_points_give_no_slope() {
        assert!(slope(&[(0.0, 1.0), (1.0, 2.0)]).mib_per_min.is_nan());
    }

    #[test]
    fn short_runs_use_shorter_windows() {
        assert_eq!(window_minutes(30), 5);
        assert_eq!(window_minutes(3), 1);
        assert_eq!(window_minutes(9), 3);
    }
}
