//! End-to-end timings on the testbed's real gluster nodes (`tests/testbed/testbed.sh up 3 2`):
//! three Hekate replicas with the SSH executor; loading the 3-node topology (peer probes,
//! 6 devices), replica-3 1 GiB creates one at a time, four concurrent creates, and deletes,
//! each through the API including the queue wait. The figures Heketi v10.4.1 measured on
//! the same testbed are in docs/benchmarks.md.

use std::time::{Duration, Instant};

use hekate::client::Client;
use hekate::testkit::{run_async, ClusterSpec, ProcCluster, TestbedEnv};
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
    hekate::testkit::load_topology(&api, &topo).await?;
    let topology_load_ms = ms(t);
    eprintln!("testbed: topology loaded in {topology_load_ms:.0} ms");

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
    Ok(TestbedResults {
        connection_per_step: args.connection_per_step,
        topology_load_ms,
        create: summarize(&creates),
        delete: summarize(&deletes),
        four_concurrent_creates: summarize(&fours),
    })
}
