//! `hekate-bench`: benchmarks of Hekate, reported with medians and percentiles, never as
//! timed assertions. `raft` measures the replicated core through the API.

mod dev_bench;
mod drill;
mod failover;
mod micro;
mod procfs;
mod raft_bench;
mod reconcile_bench;
mod report;
mod soak;
mod stall;
mod stats;
mod testbed_bench;
mod upgrade;
mod volume_bench;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "hekate-bench")]
struct Cli {
    /// Write the results as JSON here too.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write latency, throughput and failover time of a three-replica cluster.
    Raft(raft_bench::RaftArgs),
    /// Volume create latency and throughput, scaling to 10,000 volumes, topology, RSS, restart.
    Volumes(volume_bench::VolumeArgs),
    /// Volume creates on the default dev cluster (`hekate dev`) with 1, 8 and 16 clients,
    /// and (`--prefill N`) create latency at N volumes against the empty cluster (issue 13).
    DevCreates(dev_bench::DevCreatesArgs),
    /// Failover drill: leader kills and pauses under load, behind haproxy; checks invariants.
    Drill(drill::DrillArgs),
    /// End to end on the testbed's real gluster nodes: topology load, create, 4 concurrent, delete.
    Testbed(testbed_bench::TestbedArgs),
    /// Footprint under churn: RSS and data directory of the dev cluster while volumes are
    /// created and deleted for `--minutes` (issue 16); writes bench/results/soak*.json.
    Soak(soak::SoakArgs),
    /// Stalled-leader drill: the old leader sends after a new one took over; the nodes must
    /// refuse it (issue 11). `--testbed` for the real nodes.
    Stall(stall::StallArgs),
    /// Write gap when the leader is killed or stopped (SIGTERM: leadership handoff) under
    /// load, over many rounds; or, with `--quiet-seconds`, term changes under load alone.
    Failover(failover::FailoverArgs),
    /// Rolling upgrade under load: three replicas of `--from` replaced one at a time by the
    /// new build (followers first, then a leadership transfer); checks the drill's invariants,
    /// the log format gating and that no replica failed to decode an entry (issue 12).
    Upgrade(upgrade::UpgradeArgs),
    /// In-process: brick placement time and state-machine apply throughput; with
    /// `--topology-volumes N`, `GET /topology`'s document at N volumes instead.
    Micro {
        #[arg(long)]
        topology_volumes: Option<usize>,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// With `--topology-volumes`: fill this directory's store once and reuse it in
        /// later runs (a profile without the minute of filling each time).
        #[arg(long)]
        store: Option<PathBuf>,
    },
    /// `GET /topology` against a running cluster (`hekate dev` prints the server and key),
    /// timed to the last byte, `--rounds` times.
    Topology {
        #[arg(long, env = "HEKETI_CLI_SERVER")]
        server: String,
        #[arg(long, env = "HEKETI_CLI_KEY")]
        key: String,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// Sequential replica-3 creates against a running cluster, each followed on its queue
    /// every 5 ms (as `dev-creates` does): the create latency of a cluster kept at scale.
    Creates {
        #[arg(long, env = "HEKETI_CLI_SERVER")]
        server: String,
        #[arg(long, env = "HEKETI_CLI_KEY")]
        key: String,
        #[arg(long, default_value_t = 200)]
        n: usize,
    },
    /// `GET /reconcile` against a running dev cluster's leader, timed, with the RSS of the
    /// cluster's processes (the children of `--parent`) sampled meanwhile.
    Reconcile(reconcile_bench::ReconcileArgs),
    /// Write docs/benchmarks.md and its plots from bench/results/*.json.
    Report {
        #[arg(long, default_value = "bench/results")]
        results: PathBuf,
        #[arg(long, default_value = "docs")]
        docs: PathBuf,
    },
}

/// The `hekate` binary the benchmarks start: `--hekate`, or the one next to this binary.
fn hekate_binary(arg: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match arg {
        Some(p) => Ok(p.clone()),
        None => Ok(std::env::current_exe()?.with_file_name("hekate")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The library's own log lines (for example `GET /topology`'s phases in `micro`), off
    // unless RUST_LOG asks for them.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let json = match cli.cmd {
        Cmd::Raft(a) => serde_json::to_value(raft_bench::run(a).await?)?,
        Cmd::Volumes(a) => serde_json::to_value(volume_bench::run(a).await?)?,
        Cmd::DevCreates(a) => serde_json::to_value(dev_bench::run(a).await?)?,
        Cmd::Drill(a) => serde_json::to_value(drill::run(a).await?)?,
        Cmd::Testbed(a) if a.dead_node => serde_json::to_value(testbed_bench::run_dead_node(a).await?)?,
        Cmd::Testbed(a) => serde_json::to_value(testbed_bench::run(a).await?)?,
        Cmd::Stall(a) => {
            let r = stall::run(a).await?;
            let ok = r.ok;
            let v = serde_json::to_value(r)?;
            if !ok {
                println!("{}", serde_json::to_string_pretty(&v)?);
                anyhow::bail!("stalled-leader drill: an invariant broke (see above)");
            }
            v
        }
        Cmd::Soak(a) => {
            let restart = a.restart_leader_at.is_some();
            let r = soak::run(a).await?;
            soak::print_summary(&r);
            let default = if restart {
                "bench/results/soak-restart.json"
            } else {
                "bench/results/soak.json"
            };
            let path = cli.out.unwrap_or_else(|| PathBuf::from(default));
            std::fs::write(&path, serde_json::to_string_pretty(&r)?)?;
            eprintln!("wrote {}", path.display());
            return Ok(());
        }
        Cmd::Failover(a) => serde_json::to_value(failover::run(a).await?)?,
        Cmd::Upgrade(a) => serde_json::to_value(upgrade::run(a).await?)?,
        Cmd::Micro {
            topology_volumes: Some(n),
            rounds,
            store,
        } => serde_json::to_value(micro::topology(n, rounds, store).await?)?,
        Cmd::Micro { .. } => serde_json::to_value(micro::run().await?)?,
        Cmd::Topology { server, key, rounds } => {
            let (times, bytes) = dev_bench::timed_topology(&server, &key, rounds).await?;
            eprintln!("GET /topology: {bytes} bytes, p50 {:.0} ms", times.p50_ms);
            serde_json::json!({ "server": server, "bytes": bytes, "topology": times })
        }
        Cmd::Creates { server, key, n } => {
            let c = hekate::client::Client::new(vec![server.clone()], "admin", &key);
            let ms = volume_bench::timed_creates(&c, n, volume_bench::POLL_5MS).await?;
            let s = stats::summarize(&ms);
            eprintln!(
                "{n} sequential creates: p50 {:.2} ms, p90 {:.2} ms",
                s.p50_ms, s.p90_ms
            );
            serde_json::json!({ "server": server, "creates": s })
        }
        Cmd::Reconcile(a) => serde_json::to_value(reconcile_bench::run(a).await?)?,
        Cmd::Report { results, docs } => {
            report::run(&results, &docs)?;
            println!("wrote {}/benchmarks.md", docs.display());
            return Ok(());
        }
    };
    let text = serde_json::to_string_pretty(&json)?;
    println!("{text}");
    if let Some(p) = cli.out {
        std::fs::write(&p, text)?;
    }
    Ok(())
}
