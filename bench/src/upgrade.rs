//! The rolling upgrade, measured and checked: three replicas of the previous release under
//! load (volume creates and deletes), replaced one at a time by the new build, followers
//! first, then leadership moved to an upgraded replica and the last old one replaced. While
//! any member runs the old build the log format must stay at 0 (the old build could not read
//! a newer entry); once all run the new one the leader raises it, and the load goes on in the
//! new format. At the end the drill's invariants hold (nothing lost, nothing duplicated, no
//! orphan on the nodes, nothing pending) and no replica failed to decode an entry.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hekate::client::Client;
use hekate_testkit::{load_topology, wait_for, ClusterSpec, ProcCluster};
use reqwest::Method;
use serde::Serialize;
use serde_json::json;

use crate::drill::{audit, Audit, Ledger, Load};

#[derive(Debug, Clone, clap::Args)]
pub struct UpgradeArgs {
    /// The previous release's `hekate` (deploy/upgrade-base.sh builds it).
    #[arg(long)]
    pub from: PathBuf,
    /// The new build's `hekate`; default: the one next to this binary.
    #[arg(long)]
    pub to: Option<PathBuf>,
    /// Concurrent clients creating and deleting volumes.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Load kept running between two steps of the upgrade, ms.
    #[arg(long, default_value_t = 2000)]
    pub settle_ms: u64,
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct UpgradeResults {
    pub from: String,
    pub to: String,
    /// Replicas in the order they were replaced (the old leader last).
    pub order: Vec<u64>,
    pub creates_ok: u64,
    pub deletes_ok: u64,
    pub failed: u64,
    pub refused: u64,
    pub indeterminate: u64,
    /// Operations acknowledged while old and new builds ran side by side.
    pub acknowledged_while_mixed: u64,
    /// The agreed log format each replica reported while the old build still ran (must be 0).
    pub format_while_mixed: Vec<u64>,
    /// Agreed log format on each replica at the end.
    pub format_at_end: Vec<u64>,
    /// From the last replacement to every replica reporting the new format, ms.
    pub format_raised_after_ms: f64,
    pub lost: usize,
    pub duplicates: usize,
    pub orphans: usize,
    pub pending_at_end: usize,
    pub reconcile_findings: usize,
    /// Log lines of any replica saying it could not decode an entry, and replicas that exited.
    pub decode_errors: Vec<String>,
    /// A fourth replica running the previous release asks to join after the raise: the
    /// status and message of the refusal (409: it cannot read the agreed format).
    pub old_build_join: (u16, String),
    pub ok: bool,
}

pub async fn run(args: UpgradeArgs) -> anyhow::Result<UpgradeResults> {
    let to = crate::hekate_binary(&args.to)?;
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let mut spec = ClusterSpec::new(&args.from, 3);
    spec.loglevel = "info".into();
    spec.mockexec = json!({"latency_ms": {"*": 5}, "device_size_gb": 4000});
    let mut c = ProcCluster::create(&dir, spec)?;
    c.start_all()?;
    c.wait_ready(&c.ids(), Duration::from_secs(60)).await?;
    let urls: Vec<String> = c.ids().iter().map(|i| c.url(*i)).collect();
    let api = Client::new(urls.clone(), "admin", &c.admin_key);
    let topo = json!({"clusters": [{"nodes": (1..=3).map(|i| json!({
        "node": {"hostnames": {"manage": [format!("up-n{i}")], "storage": [format!("10.98.0.{i}")]}, "zone": i},
        "devices": [{"name": "/dev/sdb"}, {"name": "/dev/sdc"}]})).collect::<Vec<_>>()}]});
    load_topology(&api, &topo).await?;
    let load = Load::start(&urls, &c.admin_key, args.clients);
    let settle = Duration::from_millis(args.settle_ms);
    tokio::time::sleep(settle).await;

    let res = upgrade(&mut c, &to, &load, settle).await;
    let ledger = load.ledger.clone();
    load.finish().await;
    let (order, mixed, acknowledged_while_mixed, raised_ms) = res?;
    let a = audit(&api, &c, &ledger).await?;
    let format_at_end = formats(&c).await;
    let decode_errors = decode_errors(&mut c);
    let old_join = join_old_build(&mut c, &args.from).await?;
    let mut r = results(
        &args,
        &to,
        order,
        mixed,
        acknowledged_while_mixed,
        raised_ms,
        format_at_end,
        &a,
        &ledger,
        decode_errors,
    );
    r.ok &= old_join.0 == 409;
    r.old_build_join = old_join;
    if !r.ok {
        eprintln!("upgrade: INVARIANT BROKEN: {}", serde_json::to_string_pretty(&r)?);
        drop(c);
        if args.dir.is_none() {
            eprintln!("upgrade: logs and data kept in {}", tmp.keep().display());
        }
        bail!("rolling upgrade invariants broken");
    }
    Ok(r)
}

/// Followers first, then leadership to an upgraded replica, then the old leader. Returns the
/// order, the formats seen while mixed, the operations acknowledged meanwhile, and how long
/// the format raise took after the last replacement.
async fn upgrade(
    c: &mut ProcCluster,
    to: &std::path::Path,
    load: &Load,
    settle: Duration,
) -> anyhow::Result<(Vec<u64>, Vec<u64>, u64, f64)> {
    let before = load.acknowledged();
    let leader = c.wait_leader(&c.ids(), Duration::from_secs(30)).await?;
    let followers: Vec<u64> = c.ids().into_iter().filter(|i| *i != leader).collect();
    let mut order = Vec::new();
    for f in &followers {
        replace(c, *f, to).await?;
        order.push(*f);
        tokio::time::sleep(settle).await;
    }
    let target = followers[0];
    let r = c
        .call(leader, Method::POST, "/raft/leader", Some(&json!({"id": target})))
        .await?;
    if r.status != 200 {
        bail!("leadership transfer to {target}: {} {}", r.status, r.body);
    }
    c.wait_leader(&c.ids(), Duration::from_secs(30)).await?;
    // A new build leads an old follower: it must keep writing format 0.
    tokio::time::sleep(settle).await;
    let mixed = formats(c).await;
    let acknowledged_while_mixed = load.acknowledged() - before;
    replace(c, leader, to).await?;
    order.push(leader);
    let t0 = Instant::now();
    wait_for(
        Duration::from_secs(30),
        "every replica on the new log format",
        || async {
            let f = formats(c).await;
            f.iter()
                .all(|v| *v == hekate::state::format::CURRENT as u64)
                .then_some(())
        },
    )
    .await?;
    let raised_ms = t0.elapsed().as_secs_f64() * 1e3;
    tokio::time::sleep(settle).await;
    Ok((order, mixed, acknowledged_while_mixed, raised_ms))
}

/// Stops replica `id` (SIGTERM), starts the new build on its data, waits until it is ready.
async fn replace(c: &mut ProcCluster, id: u64, to: &std::path::Path) -> anyhow::Result<()> {
    c.stop(id)?;
    c.spec.binary = to.to_path_buf();
    c.start(id)?;
    c.wait_ready(&[id], Duration::from_secs(60))
        .await
        .with_context(|| format!("replica {id} on the new build: {}", c.log_tail(id)))?;
    eprintln!("upgrade: replica {id} runs the new build");
    Ok(())
}

/// The agreed log format per replica (an old build does not report it: 0).
async fn formats(c: &ProcCluster) -> Vec<u64> {
    let mut out = Vec::new();
    for id in c.ids() {
        let st = c.status(id).await.unwrap_or_default();
        out.push(st["log_format"]["agreed"].as_u64().unwrap_or(0));
    }
    out
}

/// Lines where a replica could not decode a log entry, and replicas that exited on their own.
fn decode_errors(c: &mut ProcCluster) -> Vec<String> {
    let mut out = Vec::new();
    for id in c.ids() {
        if let Some(status) = c.exited(id) {
            out.push(format!("replica {id} exited: {status}"));
        }
        let log = c.config_path(id).with_file_name("hekate.log");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        for line in text.lines() {
            let l = line.to_ascii_lowercase();
            if (l.contains("codec:") || l.contains("newer than this build")) && out.len() < 20 {
                out.push(format!("replica {id}: {line}"));
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn results(
    args: &UpgradeArgs,
    to: &std::path::Path,
    order: Vec<u64>,
    format_while_mixed: Vec<u64>,
    acknowledged_while_mixed: u64,
    format_raised_after_ms: f64,
    format_at_end: Vec<u64>,
    a: &Audit,
    ledger: &std::sync::Mutex<Ledger>,
    decode_errors: Vec<String>,
) -> UpgradeResults {
    let l = ledger.lock().unwrap_or_else(|e| e.into_inner());
    let ok = a.ok()
        && decode_errors.is_empty()
        && format_while_mixed.iter().all(|f| *f == 0)
        && acknowledged_while_mixed > 0;
    UpgradeResults {
        from: args.from.display().to_string(),
        to: to.display().to_string(),
        order,
        creates_ok: l.creates.ok,
        deletes_ok: l.deletes.ok,
        failed: l.creates.failed + l.deletes.failed,
        refused: l.creates.refused + l.deletes.refused,
        indeterminate: l.creates.indeterminate + l.deletes.indeterminate,
        acknowledged_while_mixed,
        format_while_mixed,
        format_at_end,
        format_raised_after_ms,
        lost: a.lost.len() + a.resurrected.len(),
        duplicates: a.duplicates.len(),
        orphans: a.orphans.len(),
        pending_at_end: a.pending,
        reconcile_findings: a.reconcile_findings.len(),
        decode_errors,
        old_build_join: (0, String::new()),
        ok,
    }
}

/// Starts a fourth replica on the previous release and asks the cluster to add it.
async fn join_old_build(c: &mut ProcCluster, old: &std::path::Path) -> anyhow::Result<(u16, String)> {
    c.add_replica(4)?;
    c.spec.binary = old.to_path_buf();
    c.start(4)?;
    wait_for(Duration::from_secs(30), "replica 4 listening", || async {
        c.call(4, Method::GET, "/hello", None).await.ok().map(|_| ())
    })
    .await?;
    let leader = c.wait_leader(&[1, 2, 3], Duration::from_secs(30)).await?;
    let body = json!({"id": 4, "api": c.api_addr(4)});
    let r = c.call(leader, Method::POST, "/raft/members", Some(&body)).await?;
    c.stop(4)?;
    Ok((r.status, r.body.trim().to_string()))
}
