//! End-to-end timings on the testbed's real gluster nodes (`tests/testbed/testbed.sh up 3 2`):
//! three Hekate replicas with the SSH executor; loading the 3-node topology (peer probes,
//! 6 devices), replica-3 1 GiB creates one at a time, four concurrent creates, and deletes,
//! each through the API including the queue wait; then the topology is unloaded, so the nodes
//! are left as they were. The figures Heketi v10.4.1 measured on the same testbed are in
//! docs/benchmarks.md.

use std::time::{Duration, Instant};

use anyhow::Context;
use hekate::client::Client;
use hekate_testkit::{run_async, ClusterSpec, ProcCluster, TestbedEnv};
use reqwest::Method;
use serde::Serialize;
use serde_json::json;

use crate::stats::{summarize, Summary};

#[derive(Debug, Clone, clap::Args)]
pub struct TestbedArgs {
    #[arg(long)]
    pub hekate: Option<std::path::PathBuf>,
    /// Sequential create + delete rounds.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// A new SSH connection for every executor step (what connection reuse buys).
    #[arg(long)]
    pub connection_per_step: bool,
    /// Instead of the usual rounds: replica-2 creates (and deletes) on the first two nodes
    /// (the last node set offline), first with every node up, then creates with the last
    /// node powered off and its link down, while reconcile reads every node in a loop
    /// (issue 11: one dead node must not slow commands to the others).
    #[arg(long)]
    pub dead_node: bool,
}

#[derive(Debug, Serialize)]
pub struct DeadNodeResults {
    pub dead_node: String,
    pub alive: DeadNodePhase,
    pub dead: DeadNodePhase,
    /// dead p50 / alive p50 of creates. (Deletes cannot be compared: Gluster refuses
    /// `volume delete` while a peer of the pool is down.)
    pub create_p50_ratio: f64,
}

#[derive(Debug, Serialize)]
pub struct DeadNodePhase {
    pub create: Summary,
    pub delete: Summary,
    /// The background reconciles that ran during the phase (each reads every node).
    pub reconcile: Summary,
}

#[derive(Debug, Serialize)]
pub struct TestbedResults {
    pub connection_per_step: bool,
    pub topology_load_ms: f64,
    pub create: Summary,
    pub delete: Summary,
    /// Wall time of four creates started together, per round.
    pub four_concurrent_creates: Summary,
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

async fn create(api: &Client, name: &str) -> anyhow::Result<String> {
    let body = json!({"size": 1, "name": name,
                      "durability": {"type": "replicate", "replicate": {"replica": 3}}});
    let loc = run_async(api, Method::POST, "/volumes", Some(&body)).await?;
    Ok(loc.unwrap_or_default())
}

/// Replica-2 create + delete rounds while a reconcile loop reads every node.
/// Without `delete` the volumes are left for later (Gluster refuses `volume delete` while a
/// peer of the pool is down: "Some of the peers are down"); their paths are returned.
async fn dead_node_phase(
    c: &ProcCluster,
    rounds: usize,
    tag: &str,
    delete: bool,
) -> anyhow::Result<(DeadNodePhase, Vec<String>)> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (st, rc) = (stop.clone(), c.client(2));
    let recon = tokio::spawn(async move {
        let mut times = Vec::new();
        while !st.load(std::sync::atomic::Ordering::SeqCst) {
            let t = Instant::now();
            let _ = rc.call(Method::GET, "/reconcile", None).await;
            times.push(ms(t));
        }
        times
    });
    let api = c.client(1);
    let (mut creates, mut deletes, mut left) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        let body = json!({"size": 1, "name": format!("{tag}{r}"),
                          "durability": {"type": "replicate", "replicate": {"replica": 2}}});
        let t = Instant::now();
        let loc = run_async(&api, Method::POST, "/volumes", Some(&body))
            .await?
            .unwrap_or_default();
        creates.push(ms(t));
        if !delete {
            eprintln!("testbed {tag}: round {r}: create {:.0} ms", creates[r]);
            left.push(loc);
            continue;
        }
        let t = Instant::now();
        run_async(&api, Method::DELETE, &loc, None).await?;
        deletes.push(ms(t));
        eprintln!(
            "testbed {tag}: round {r}: create {:.0} ms, delete {:.0} ms",
            creates[r], deletes[r]
        );
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let reconciles = recon.await?;
    Ok((
        DeadNodePhase {
            create: summarize(&creates),
            delete: summarize(&deletes),
            reconcile: summarize(&reconciles),
        },
        left,
    ))
}

fn testbed_sh(args: &[&str]) -> anyhow::Result<()> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/testbed/testbed.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .args(args)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "testbed.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Waits until `node`'s glusterd lists `peer` as Disconnected.
async fn wait_disconnected(node: &str, peer: &str, within: Duration) -> anyhow::Result<()> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/testbed/testbed.sh");
    let t = Instant::now();
    loop {
        let out = std::process::Command::new("bash")
            .arg(script)
            .args(["exec", node, "gluster", "--mode=script", "pool", "list"])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text
            .lines()
            .any(|l| l.contains(peer) && l.contains("Disconnected"))
        {
            eprintln!("testbed: {node} sees {peer} Disconnected after {:.0} ms", ms(t));
            return Ok(());
        }
        anyhow::ensure!(
            t.elapsed() < within,
            "{node} still lists {peer} as connected: {text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn ip_link(dev: &str, state: &str) -> anyhow::Result<()> {
    let out = std::process::Command::new("ip")
        .args(["link", "set", dev, state])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "ip link set {dev} {state}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

pub async fn run_dead_node(args: TestbedArgs) -> anyhow::Result<DeadNodeResults> {
    let env = TestbedEnv::read()?;
    anyhow::ensure!(env.nodes.len() >= 3, "the dead-node run needs 3 testbed nodes");
    let tmp = tempfile::tempdir()?;
    let mut spec = ClusterSpec::new(crate::hekate_binary(&args.hekate)?, 3);
    spec.loglevel = "warning".into();
    spec.shared_mock = false;
    spec.glusterfs = env.glusterfs_config();
    let mut c = ProcCluster::create(tmp.path(), spec)?;
    c.start_all()?;
    c.wait_ready(&c.ids(), Duration::from_secs(60)).await?;
    let api = c.client(1);
    let topo = json!({"clusters": [{"nodes": env.nodes.iter().enumerate().map(|(i, (_, ip, disks))| json!({
        "node": {"hostnames": {"manage": [ip], "storage": [ip]}, "zone": i + 1},
        "devices": disks.iter().map(|d| json!({"name": d})).collect::<Vec<_>>()})).collect::<Vec<_>>()}]});
    hekate_testkit::load_topology(&api, &topo).await?;
    // The last node leaves placement (offline), as an administrator does with a node he is
    // about to service; the cluster still knows it, so reconcile reads it.
    let (dead_name, dead_ip, _) = env.nodes.last().cloned().unwrap_or_default();
    let topo = c.call_ok(1, Method::GET, "/topology", None).await?;
    let dead_id = topo["clusters"][0]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["hostnames"]["manage"][0] == dead_ip.as_str())
        .and_then(|n| n["id"].as_str())
        .unwrap_or_default()
        .to_string();
    hekate_testkit::set_state(&api, "nodes", &dead_id, "offline").await?;
    let (alive, _) = dead_node_phase(&c, args.rounds, "alive", true).await?;
    // Power off: the node's processes die and its link goes down (no answer at all, as a
    // machine that lost power: connects run into their timeout).
    let idx = env.nodes.len();
    testbed_sh(&["poweroff", &dead_name])?;
    ip_link(&format!("ht{idx}"), "down")?;
    // Gluster's own peers notice the loss only after their ping timeout; until then a
    // cluster-wide Gluster transaction waits for the dead peer whoever sends it. Measure
    // Hekate's part: once the survivors call it Disconnected.
    let first = env.nodes[0].0.clone();
    let seen_dead = wait_disconnected(&first, &dead_ip, Duration::from_secs(180)).await;
    let dead = match seen_dead {
        Ok(()) => dead_node_phase(&c, args.rounds, "dead", false).await,
        Err(e) => Err(e),
    };
    if dead.is_err() {
        for id in c.ids() {
            eprintln!("--- replica {id}:\n{}", c.log_tail(id));
        }
    }
    ip_link(&format!("ht{idx}"), "up")?;
    testbed_sh(&["boot", &dead_name])?;
    hekate_testkit::set_state(&api, "nodes", &dead_id, "online").await?;
    // The node is back: Gluster deletes again (the volumes left by the dead phase go too).
    let unloaded = hekate_testkit::unload_topology(&api).await;
    let (dead, _) = dead?;
    unloaded?;
    let ratio = |d: &Summary, a: &Summary| if a.p50_ms > 0.0 { d.p50_ms / a.p50_ms } else { 0.0 };
    Ok(DeadNodeResults {
        dead_node: dead_name,
        create_p50_ratio: ratio(&dead.create, &alive.create),
        alive,
        dead,
    })
}

pub async fn run(args: TestbedArgs) -> anyhow::Result<TestbedResults> {
    let env = TestbedEnv::read()?;
    let tmp = tempfile::tempdir()?;
    let mut spec = ClusterSpec::new(crate::hekate_binary(&args.hekate)?, 3);
    spec.loglevel = "warning".into();
    spec.shared_mock = false;
    spec.glusterfs = env.glusterfs_config();
    spec.glusterfs["sshexec"]["connection_per_step"] = json!(args.connection_per_step);
    let mut c = ProcCluster::create(tmp.path(), spec)?;
    c.start_all()?;
    c.wait_ready(&c.ids(), Duration::from_secs(60)).await?;
    let api = c.client(1);

    let t = Instant::now();
    let topo = json!({"clusters": [{"nodes": env.nodes.iter().enumerate().map(|(i, (_, ip, disks))| json!({
        "node": {"hostnames": {"manage": [ip], "storage": [ip]}, "zone": i + 1},
        "devices": disks.iter().map(|d| json!({"name": d})).collect::<Vec<_>>()})).collect::<Vec<_>>()}]});
    hekate_testkit::load_topology(&api, &topo).await?;
    let topology_load_ms = ms(t);
    eprintln!("testbed: topology loaded in {topology_load_ms:.0} ms");

    let rounds = async {
        let (mut creates, mut deletes, mut fours) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..args.rounds {
            let t = Instant::now();
            let loc = create(&api, &format!("bench{r}")).await?;
            creates.push(ms(t));
            let t = Instant::now();
            run_async(&api, Method::DELETE, &loc, None).await?;
            deletes.push(ms(t));

            let t = Instant::now();
            let four: Vec<_> = (0..4)
                .map(|k| {
                    let api = c.client(1 + (k as u64 % 3));
                    let name = format!("bench{r}_{k}");
                    tokio::spawn(async move { create(&api, &name).await })
                })
                .collect();
            let mut locs = Vec::new();
            for h in four {
                locs.push(h.await??);
            }
            fours.push(ms(t));
            for loc in locs {
                run_async(&api, Method::DELETE, &loc, None).await?;
            }
            eprintln!(
                "testbed: round {r}: create {:.0} ms, delete {:.0} ms, 4 concurrent {:.0} ms",
                creates[r], deletes[r], fours[r]
            );
        }
        anyhow::Ok((creates, deletes, fours))
    }
    .await;
    // The nodes are left as they were before the topology was loaded (the floor script and
    // the e2e tests use the same disks), whether or not the rounds succeeded.
    let unloaded = hekate_testkit::unload_topology(&api).await;
    let (creates, deletes, fours) = rounds?;
    unloaded.context("topology unload after the rounds")?;
    Ok(TestbedResults {
        connection_per_step: args.connection_per_step,
        topology_load_ms,
        create: summarize(&creates),
        delete: summarize(&deletes),
        four_concurrent_creates: summarize(&fours),
    })
}
