//! The stalled-leader drill (issue 11): the leader's runner passes its fence check for a
//! verb, then stalls (a failpoint: `/internal/failpoints`) as a process in a GC pause or
//! swapped out would; the leader is paused (SIGSTOP) so the others elect a new leader,
//! which claims the nodes, finishes the operation (and, in delete rounds, creates a new
//! volume of the same name); then the old process resumes and sends its verb with its old
//! term. Each node's guard must refuse it. On the mock (its guard model) or on the testbed's
//! real nodes (`deploy/node/hekate-guard` as sshd's ForceCommand).
//!
//! Checks at the end: every stale send refused and none executed (the nodes' records: no
//! executed command of an older term after a newer term's first), every operation ended
//! exactly once (the volumes are exactly the expected ones), reconcile finds nothing.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hekate_testkit::{run_async, wait_queue, ClusterSpec, NodeLogs, ProcCluster, TestbedEnv};
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};

use crate::stats::{summarize, Summary};

#[derive(Debug, Clone, clap::Args)]
pub struct StallArgs {
    #[arg(long)]
    pub hekate: Option<std::path::PathBuf>,
    /// Rounds; each stalls one verb on the leader: the first a create's `brick_create`, the
    /// others a delete's `volume_destroy` (the name then taken again by a new volume).
    #[arg(long, default_value_t = 6)]
    pub rounds: usize,
    /// On the testbed's real nodes (`tests/testbed/testbed.sh up 3 2`) instead of the mock.
    #[arg(long)]
    pub testbed: bool,
    /// How long the old leader's runner stalls before it sends, ms.
    #[arg(long, default_value_t = 8000)]
    pub stall_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct Round {
    pub kind: String,
    pub verb: String,
    pub old_leader: u64,
    pub new_leader: u64,
    pub old_term: u64,
    /// Commands of the old term the nodes refused after the stall ended.
    pub refused: usize,
    /// SIGSTOP of the old leader -> the operation done by the new one, ms.
    pub takeover_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct StallResults {
    pub executor: String,
    pub rounds: Vec<Round>,
    /// Verbs the deposed leaders sent after their stall (failpoint releases).
    pub stale_sends: u64,
    /// Commands the nodes' guards refused, in all.
    pub refused_by_nodes: usize,
    /// Commands of an older term executed after a newer term's first, on any node.
    pub stale_executed: usize,
    pub stale_executed_detail: Vec<String>,
    /// Commands the nodes executed, in all.
    pub executed: usize,
    pub volumes_expected: usize,
    pub volumes_found: usize,
    pub reconcile_findings: Vec<String>,
    pub takeover_ms: Summary,
    pub ok: bool,
}

/// A node's record: (decided at, ns; term; refused; what).
type NodeRecord = (u128, u64, bool, String);

/// The nodes' records of this cluster (`identity`; a testbed's logs hold other runs' too).
async fn records(
    c: &ProcCluster,
    env: Option<&TestbedEnv>,
    identity: &str,
) -> anyhow::Result<Vec<NodeRecord>> {
    Ok(match env {
        Some(env) => env
            .nodes
            .iter()
            .flat_map(|n| {
                let mine = env.guard_log(&n.0).into_iter().filter(|r| r.cluster == identity);
                mine.map(|r| {
                    let node = n.0.clone();
                    (
                        r.at,
                        r.term,
                        r.verdict == "refused",
                        format!("{node}: {}", r.command),
                    )
                })
            })
            .collect(),
        None => c
            .mock_nodes()?
            .command_log()
            .await
            .map_err(|e| anyhow::anyhow!("mock command record: {e}"))?
            .into_iter()
            .map(|r| (r.at_ns, r.term, r.refused, format!("{} on {}", r.verb, r.host)))
            .collect(),
    })
}

async fn failpoints(c: &ProcCluster, id: u64) -> anyhow::Result<Value> {
    c.call_ok(id, Method::GET, "/internal/failpoints", None).await
}

async fn wait_fp(
    c: &ProcCluster,
    id: u64,
    key: &str,
    at_least: u64,
    within: Duration,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(v) = failpoints(c, id).await {
            if v[key].as_u64().unwrap_or(0) >= at_least {
                return Ok(v);
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!("replica {id}: failpoint {key} did not reach {at_least} within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn run(args: StallArgs) -> anyhow::Result<StallResults> {
    let tmp = tempfile::tempdir()?;
    let mut spec = ClusterSpec::new(crate::hekate_binary(&args.hekate)?, 3);
    spec.loglevel = "info".into();
    spec.raft = json!({"failpoints": true});
    let env = if args.testbed {
        let env = TestbedEnv::read()?;
        spec.shared_mock = false;
        spec.glusterfs = env.glusterfs_config();
        Some(env)
    } else {
        spec.mockexec = json!({"latency_ms": {"*": 5}});
        None
    };
    let mut c = ProcCluster::create(tmp.path(), spec)?;
    c.start_all()?;
    c.wait_ready(&c.ids(), Duration::from_secs(60)).await?;
    let topo = match &env {
        Some(env) => {
            json!({"clusters": [{"nodes": env.nodes.iter().enumerate().map(|(i, (_, ip, disks))| json!({
            "node": {"hostnames": {"manage": [ip], "storage": [ip]}, "zone": i + 1},
            "devices": disks.iter().map(|d| json!({"name": d})).collect::<Vec<_>>()})).collect::<Vec<_>>()}]})
        }
        None => json!({"clusters": [{"nodes": (1..=3).map(|i| json!({
            "node": {"hostnames": {"manage": [format!("node{i}")], "storage": [format!("10.9.0.{i}")]}, "zone": i},
            "devices": [{"name": "/dev/vdb"}]})).collect::<Vec<_>>()}]}),
    };
    hekate_testkit::load_topology(&c.client(1), &topo).await?;
    let identity = c
        .status(1)
        .await
        .and_then(|s| s["identity"].as_str().map(String::from))
        .ok_or_else(|| anyhow::anyhow!("no cluster identity in /raft/status"))?;

    let replica3 = |name: &str| json!({"size": 1, "name": name, "durability": {"type": "replicate", "replicate": {"replica": 3}}});
    let mut rounds = Vec::new();
    let mut live: Option<(String, String)> = None; // (name, volume path) of the volume in play
    let mut expected = BTreeSet::new();
    let mut stale_sends = 0;
    for r in 0..args.rounds {
        let old = c.wait_leader(&c.ids(), Duration::from_secs(30)).await?;
        let others: Vec<u64> = c.ids().into_iter().filter(|i| *i != old).collect();
        let (kind, verb) = match &live {
            None => ("create", "brick_create"),
            Some(_) => ("delete", "volume_destroy"),
        };
        let stall = json!({"verb": verb, "ms": args.stall_ms, "times": 1});
        let before = failpoints(&c, old).await?;
        let stalls = before["stalls"].as_u64().unwrap_or(0);
        let released = before["released"].as_u64().unwrap_or(0);
        c.call_ok(old, Method::PUT, "/internal/failpoints", Some(&stall))
            .await?;
        let name = format!("stall{r}");
        let reply = match (&live, kind) {
            (_, "create") => {
                c.call(old, Method::POST, "/volumes", Some(&replica3(&name)))
                    .await?
            }
            (Some((_, path)), _) => c.call(old, Method::DELETE, path, None).await?,
            _ => unreachable!(),
        };
        anyhow::ensure!(reply.status == 202, "{kind}: {} {}", reply.status, reply.body);
        let queue = reply.location();
        let fp = wait_fp(&c, old, "stalls", stalls + 1, Duration::from_secs(60)).await?;
        let old_term = fp["last_term"].as_u64().unwrap_or(0);

        // The old leader freezes inside its stall; the others take over.
        let t = Instant::now();
        c.pause(old)?;
        let new = c.wait_leader(&others, Duration::from_secs(30)).await?;
        let api = c.client(new);
        let done = wait_queue(&api, &queue, Duration::from_secs(120)).await?;
        match kind {
            "create" => {
                anyhow::ensure!(done.status == 303, "create ended {}: {}", done.status, done.body);
                let path = done
                    .headers
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                expected.insert(name.clone());
                live = Some((name.clone(), path));
            }
            _ => {
                anyhow::ensure!(done.status == 204, "delete ended {}: {}", done.status, done.body);
                // The name is free again: a new volume takes it before the old leader wakes.
                let (old_name, _) = live.take().unwrap_or_default();
                expected.remove(&old_name);
                let path = run_async(&api, Method::POST, "/volumes", Some(&replica3(&old_name)))
                    .await?
                    .unwrap_or_default();
                expected.insert(old_name.clone());
                live = Some((old_name, path));
            }
        }
        let takeover_ms = t.elapsed().as_secs_f64() * 1e3;
        let refused_before = records(&c, env.as_ref(), &identity)
            .await?
            .iter()
            .filter(|x| x.2 && x.1 == old_term)
            .count();
        c.resume(old)?;
        wait_fp(
            &c,
            old,
            "released",
            released + 1,
            Duration::from_millis(args.stall_ms) + Duration::from_secs(60),
        )
        .await?;
        stale_sends += 1;
        // The stale verb reaches a node right after the stall: wait for the node's refusal.
        let deadline = Instant::now() + Duration::from_secs(30);
        let refused = loop {
            let n = records(&c, env.as_ref(), &identity)
                .await?
                .iter()
                .filter(|x| x.2 && x.1 == old_term)
                .count();
            if n > refused_before || Instant::now() > deadline {
                break n - refused_before;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        eprintln!(
            "stall round {r}: {kind} stalled at {verb} on replica {old} (term {old_term}); replica {new} took over in {takeover_ms:.0} ms; {refused} stale command(s) refused by the nodes"
        );
        rounds.push(Round {
            kind: kind.into(),
            verb: verb.into(),
            old_leader: old,
            new_leader: new,
            old_term,
            refused,
            takeover_ms,
        });
        c.wait_ready(&c.ids(), Duration::from_secs(60)).await?;
    }

    // The end state: nothing pending, exactly the expected volumes, reconcile clean.
    let leader = c.wait_leader(&c.ids(), Duration::from_secs(30)).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = c.call_ok(leader, Method::GET, "/operations", None).await?;
        if p["in_flight"].as_u64() == Some(0) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list = c.call_ok(leader, Method::GET, "/volumes", None).await?;
    let mut names = Vec::new();
    for id in list["volumes"].as_array().cloned().unwrap_or_default() {
        let v = c
            .call_ok(
                leader,
                Method::GET,
                &format!("/volumes/{}", id.as_str().unwrap_or_default()),
                None,
            )
            .await?;
        names.push(v["name"].as_str().unwrap_or_default().to_string());
    }
    let rec = c.call_ok(leader, Method::GET, "/reconcile", None).await?;
    let reconcile_findings: Vec<String> = rec["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|f| f.to_string())
        .collect();
    let all = records(&c, env.as_ref(), &identity).await?;
    let executed: Vec<(u128, u64, String)> = all
        .iter()
        .filter(|x| !x.2)
        .map(|x| (x.0, x.1, x.3.clone()))
        .collect();
    // Per node: the guard orders terms per node, so check each node's record on its own.
    let mut violations = Vec::new();
    let nodes: BTreeSet<String> = executed
        .iter()
        .map(|x| match &env {
            Some(_) => x.2.split(':').next().unwrap_or_default().to_string(),
            None => x.2.rsplit(" on ").next().unwrap_or_default().to_string(),
        })
        .collect();
    for n in &nodes {
        let mine: Vec<(u128, u64, String)> = executed
            .iter()
            .filter(|x| match &env {
                Some(_) => x.2.starts_with(&format!("{n}:")),
                None => x.2.ends_with(&format!(" on {n}")),
            })
            .cloned()
            .collect();
        violations.extend(hekate_testkit::term_order(&mine).violations);
    }
    if env.is_some() {
        // Leave the testbed's nodes as they were.
        hekate_testkit::unload_topology(&c.client(leader)).await?;
    }
    let names_set: BTreeSet<String> = names.iter().cloned().collect();
    let ok = violations.is_empty()
        && reconcile_findings.is_empty()
        && names.len() == names_set.len()
        && names_set == expected
        && rounds.iter().all(|r| r.refused > 0);
    Ok(StallResults {
        executor: if args.testbed { "ssh (testbed)" } else { "mock" }.into(),
        stale_sends,
        refused_by_nodes: all.iter().filter(|x| x.2).count(),
        stale_executed: violations.len(),
        stale_executed_detail: violations,
        executed: executed.len(),
        volumes_expected: expected.len(),
        volumes_found: names.len(),
        reconcile_findings,
        takeover_ms: summarize(&rounds.iter().map(|r| r.takeover_ms).collect::<Vec<_>>()),
        rounds,
        ok,
    })
}
