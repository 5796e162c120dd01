//! The failover drill: a three-replica cluster (real processes, mock executor with per-verb
//! latency, node model shared through a file as real nodes are) behind a real haproxy
//! health-checked on `/readyz`, under concurrent volume creates and deletes, while the
//! leader is killed (SIGKILL) or paused (SIGSTOP, then SIGCONT after a new leader exists)
//! over and over. Every client operation's outcome is recorded (ok / failed / indeterminate),
//! with the time to a new leader and to the first successful write through the balancer.
//! At the end it checks the invariants and exits non-zero if one breaks: no acknowledged
//! create or delete lost, no duplicate volume, no orphan (nodes = API, exactly), no
//! operation left pending. With `--peer-partition-every`, some faults cut only the leader's
//! peer link while haproxy and the clients still reach it: the minority leader must leave
//! the balancer (its `/readyz` fails once check quorum trips) and answer the writes sent
//! straight to it within the bound, "not accepted" or "outcome unknown", never committed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hekate::client::Client;
use hekate_testkit::{free_ports, wait_for, ClusterSpec, ProcCluster};
use reqwest::Method;
use serde::Serialize;
use serde_json::json;

use crate::stats::{summarize, Summary};

#[derive(Debug, Clone, clap::Args)]
pub struct DrillArgs {
    #[arg(long)]
    pub hekate: Option<PathBuf>,
    /// Leader faults to inject.
    #[arg(long, default_value_t = 100)]
    pub kills: usize,
    /// Every how many faults one is a pause (SIGSTOP) instead of a kill; 0 = kills only.
    #[arg(long, default_value_t = 4)]
    pub pause_every: usize,
    /// Concurrent clients creating and deleting volumes.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Mock executor latency of every verb, ms (a brick create over SSH takes ~1 s).
    #[arg(long, default_value_t = 50)]
    pub latency_ms: u64,
    /// Latency of `brick_create` (the slow step, mkfs on real nodes), ms; default: latency-ms.
    #[arg(long)]
    pub slow_ms: Option<u64>,
    /// Milliseconds of load between a recovery and the next fault.
    #[arg(long, default_value_t = 700)]
    pub gap_ms: u64,
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Run each replica in its own network namespace (root); haproxy reaches them over a
    /// bridge. Needed for partitions.
    #[arg(long)]
    pub netns: bool,
    /// Every how many faults one is a partition (the leader's link taken down while it
    /// keeps running); 0 = none. Implies --netns.
    #[arg(long, default_value_t = 0)]
    pub partition_every: usize,
    /// Every how many faults one is a peer-only partition: the leader's peer link is cut
    /// while clients and haproxy still reach it (a minority that stays reachable); 0 = none.
    /// Implies --netns with a separate peer network. Takes precedence over the others.
    #[arg(long, default_value_t = 0)]
    pub peer_partition_every: usize,
}

#[derive(Debug, Default, Serialize)]
pub struct Outcomes {
    pub ok: u64,
    /// Refused before reaching a leader (Hekate's 503 not-accepted, haproxy's 503):
    /// provably not applied; the client backs off 100 ms and goes on.
    pub refused: u64,
    pub failed: u64,
    pub indeterminate: u64,
}

/// Writes sent straight to a reachable minority leader during peer-only partitions.
#[derive(Debug, Default, Serialize)]
pub struct MinorityProbe {
    pub not_accepted: u64,
    pub unknown: u64,
    /// Any other answer (a committed write here would be a split brain).
    pub other: Vec<String>,
    /// Time to the answer, ms.
    pub answer_ms: Summary,
}

#[derive(Debug, Serialize)]
pub struct DrillResults {
    pub faults: usize,
    pub kills: usize,
    pub pauses: usize,
    pub partitions: usize,
    pub peer_partitions: usize,
    pub clients: usize,
    pub latency_ms: u64,
    pub creates: Outcomes,
    pub deletes: Outcomes,
    /// Fault to a leader known by a surviving replica.
    pub new_leader: Summary,
    /// Fault to the first successful write through haproxy.
    pub first_write_via_lb: Summary,
    /// Peer-only partitions: from the cut to haproxy marking the minority leader down.
    pub minority_out_of_lb: Summary,
    /// Peer-only partitions: writes sent straight to the minority leader.
    pub minority_probe: MinorityProbe,
    /// Client-observed duration of operations that succeeded (request to final queue state).
    pub op_duration: Summary,
    /// The longest any client waited for the answer to a submission (not the queue).
    pub longest_client_wait_ms: f64,
    pub longest_op_ms: f64,
    pub volumes_at_end: usize,
    /// Acknowledged creates, neither deleted nor possibly deleted, missing at the end.
    pub lost_acknowledged: Vec<String>,
    pub resurrected_deleted: Vec<String>,
    pub duplicates: Vec<String>,
    pub orphans: Vec<String>,
    /// Faults after which no write succeeded through the balancer within 30 s.
    pub no_write_within_30s: Vec<String>,
    pub pending_at_end: usize,
    /// Reconcile after the drill (state against the nodes): every finding is a broken
    /// invariant.
    pub reconcile_findings: Vec<String>,
    /// The nodes' command record (every verb stamped with the leader's term).
    pub commands_recorded: usize,
    pub terms_seen: usize,
    /// Commands the nodes' guards refused (a deposed leader's, or sent without a token).
    pub refused_by_nodes: usize,
    /// Commands of an older term a node executed after that node had seen a newer term.
    pub fencing_violations: Vec<String>,
    /// At each change of term on the nodes: from the old terms' last command start to the
    /// new term's first (negative would be an overlap).
    pub term_handover_gap_ms: Summary,
    pub invariants_ok: bool,
}

#[derive(Default)]
pub(crate) struct Ledger {
    created: BTreeSet<String>,
    deleted: BTreeSet<String>,
    /// Deletes whose outcome the client could not learn: the volume may or may not exist.
    maybe_deleted: BTreeSet<String>,
    pub creates: Outcomes,
    pub deletes: Outcomes,
    durations_ms: Vec<f64>,
    longest_wait_ms: f64,
}

enum End {
    Ok(Option<String>),
    Refused,
    Failed,
    Indeterminate,
}

/// Submits an async request through the balancer and follows its queue entry to the end.
/// Transport errors while polling are retried (the balancer moves to a live replica); a
/// 503 at submission means "outcome unknown" (the leader died with the request).
async fn run_op(
    api: &Client,
    method: Method,
    path: &str,
    body: Option<&serde_json::Value>,
    ledger: &Mutex<Ledger>,
) -> End {
    let t0 = Instant::now();
    let r = api.call(method, path, body).await;
    {
        let mut l = ledger.lock().unwrap_or_else(|e| e.into_inner());
        l.longest_wait_ms = l.longest_wait_ms.max(t0.elapsed().as_secs_f64() * 1e3);
    }
    let Ok(r) = r else {
        return End::Indeterminate;
    };
    if r.status != 202 {
        // docs/api.md, "Outcome of a write": 504 (or x-hekate-outcome: unknown) may still
        // commit; Hekate's 503 (not-accepted) and haproxy's 503 (no server took it) were
        // never written. haproxy's 502 is not proof: the server may have committed the write
        // and then died, or been cut off, before its answer (haproxy shuts the session down
        // when it marks the server down). Found by a 100-fault drill: a delete answered 502
        // had committed, and its retry ended 404.
        let unknown = r.headers.get("x-hekate-outcome").and_then(|v| v.to_str().ok()) == Some("unknown");
        return match r.status {
            _ if unknown => End::Indeterminate,
            502 | 504 => End::Indeterminate,
            503 => End::Refused,
            _ => End::Failed,
        };
    }
    let loc = r.location();
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        match api.call(Method::GET, &loc, None).await {
            Ok(q) if q.status == 200 && q.headers.contains_key("x-pending") => {}
            Ok(q) if q.status == 303 => {
                return End::Ok(
                    q.headers
                        .get("location")
                        .and_then(|v| v.to_str().ok())
                        .map(String::from),
                )
            }
            Ok(q) if q.status == 204 => return End::Ok(None),
            Ok(q) if q.status == 500 => return End::Failed,
            Ok(q) if q.status == 404 => {
                eprintln!("queue entry {loc} LOST (404)");
                return End::Indeterminate;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("operation {loc} did not end within 90 s");
    End::Indeterminate
}

async fn client_loop(api: Client, n: usize, stop: Arc<AtomicBool>, ledger: Arc<Mutex<Ledger>>) {
    let mut seq = 0u64;
    let mut mine: Vec<(String, String)> = Vec::new(); // (name, id)
    while !stop.load(Ordering::SeqCst) {
        seq += 1;
        let delete = mine.len() >= 3 && seq.is_multiple_of(2);
        let backoff = {
            let l = ledger.lock().unwrap_or_else(|e| e.into_inner());
            l.creates.refused + l.deletes.refused
        };
        let t0 = Instant::now();
        if delete {
            let (name, id) = mine.remove(0);
            let end = run_op(&api, Method::DELETE, &format!("/volumes/{id}"), None, &ledger).await;
            let mut l = ledger.lock().unwrap_or_else(|e| e.into_inner());
            match end {
                End::Ok(_) => {
                    l.deletes.ok += 1;
                    l.deleted.insert(name);
                    l.durations_ms.push(t0.elapsed().as_secs_f64() * 1e3);
                }
                End::Failed => {
                    l.deletes.failed += 1;
                    mine.push((name, id));
                }
                End::Indeterminate => {
                    l.deletes.indeterminate += 1;
                    l.maybe_deleted.insert(name);
                }
                End::Refused => {
                    l.deletes.refused += 1;
                    mine.push((name, id));
                }
            }
        } else {
            let name = format!("drill_c{n}_{seq}");
            let body = json!({"size": 1, "name": name,
                              "durability": {"type": "replicate", "replicate": {"replica": 3}}});
            let end = run_op(&api, Method::POST, "/volumes", Some(&body), &ledger).await;
            let mut l = ledger.lock().unwrap_or_else(|e| e.into_inner());
            match end {
                End::Ok(loc) => {
                    l.creates.ok += 1;
                    l.created.insert(name.clone());
                    l.durations_ms.push(t0.elapsed().as_secs_f64() * 1e3);
                    let id = loc
                        .unwrap_or_default()
                        .trim_start_matches("/volumes/")
                        .to_string();
                    mine.push((name, id));
                }
                End::Failed => l.creates.failed += 1,
                End::Indeterminate => l.creates.indeterminate += 1,
                End::Refused => l.creates.refused += 1,
            }
        }
        let refused_now = {
            let l = ledger.lock().unwrap_or_else(|e| e.into_inner());
            l.creates.refused + l.deletes.refused
        };
        if refused_now > backoff {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// haproxy goes with the drill, whichever way it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn haproxy(dir: &std::path::Path, port: u16, stats: u16, backends: &[String]) -> anyhow::Result<Child> {
    let mut cfg = format!(
        "global\n    maxconn 1024\ndefaults\n    mode http\n    timeout connect 1s\n    \
         timeout client 60s\n    timeout server 60s\n    retries 2\n    option redispatch\n\
         frontend stats\n    bind 127.0.0.1:{stats}\n    stats enable\n    stats uri /stats\n\
         frontend api\n    bind 127.0.0.1:{port}\n    default_backend hekate\n\
         backend hekate\n    balance roundrobin\n    option httpchk GET /readyz\n    \
         http-check expect status 200\n    \
         default-server inter 200ms fall 2 rise 1 on-marked-down shutdown-sessions\n"
    );
    for (i, b) in backends.iter().enumerate() {
        cfg.push_str(&format!("    server r{} {b} check\n", i + 1));
    }
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg)?;
    Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("haproxy.log"))?)
        .spawn()
        .context("start haproxy (apt-get install haproxy)")
}

/// A GET through the balancer, retried while the cluster answers 503 (a replica that
/// returns from a peer partition with a higher term forces one more election).
async fn get_json(api: &Client, path: &str) -> anyhow::Result<serde_json::Value> {
    wait_for(Duration::from_secs(30), &format!("GET {path}"), || async {
        let r = api.call(Method::GET, path, None).await.ok()?;
        (r.status == 200)
            .then(|| serde_json::from_str(&r.body).ok())
            .flatten()
    })
    .await
}

/// Whether haproxy's CSV statistics show `server` of the backend as down.
fn lb_server_down(csv: &str, server: &str) -> bool {
    csv.lines().any(|l| {
        let f: Vec<&str> = l.split(',').collect();
        f.len() > 17 && f[0] == "hekate" && f[1] == server && f[17].starts_with("DOWN")
    })
}

pub async fn run(args: DrillArgs) -> anyhow::Result<DrillResults> {
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let mut spec = ClusterSpec::new(crate::hekate_binary(&args.hekate)?, 3);
    spec.loglevel = "warning".into();
    let slow = args.slow_ms.unwrap_or(args.latency_ms);
    spec.mockexec =
        json!({"latency_ms": {"*": args.latency_ms, "brick_create": slow}, "device_size_gb": 4000});
    spec.glusterfs = json!({"max_inflight_operations": 256});
    if args.peer_partition_every > 0 {
        let ns = hekate_testkit::Netns::with_peer_net(3).context("network namespaces (root)")?;
        spec.netns = Some(ns);
    } else if args.netns || args.partition_every > 0 {
        spec.netns = Some(hekate_testkit::Netns::create(3).context("network namespaces (root)")?);
    }
    let mut c = ProcCluster::create(&dir, spec)?;
    c.start_all()?;
    c.wait_ready(&c.ids(), Duration::from_secs(60)).await?;
    let lb_ports = free_ports(2)?;
    let (lb_port, stats_port) = (lb_ports[0], lb_ports[1]);
    let backends: Vec<String> = c.ids().iter().map(|i| c.api_addr(*i)).collect();
    let _lb = KillOnDrop(haproxy(&dir, lb_port, stats_port, &backends)?);
    let lb_stats = reqwest::Client::new();
    let api = Client::new(vec![format!("http://127.0.0.1:{lb_port}")], "admin", &c.admin_key);
    wait_for(Duration::from_secs(10), "haproxy", || async {
        api.call(Method::GET, "/clusters", None)
            .await
            .ok()
            .filter(|r| r.status == 200)
    })
    .await?;

    // Topology: one cluster, three nodes in three zones, two devices each.
    let topo = json!({"clusters": [{"nodes": (1..=3).map(|i| json!({
        "node": {"hostnames": {"manage": [format!("drill-n{i}")], "storage": [format!("10.99.0.{i}")]}, "zone": i},
        "devices": [{"name": "/dev/sdb"}, {"name": "/dev/sdc"}]})).collect::<Vec<_>>()}]});
    hekate_testkit::load_topology(&api, &topo).await?;
    eprintln!(
        "drill: cluster behind haproxy :{lb_port}; {} faults, {} clients",
        args.kills, args.clients
    );

    let load = Load::start(
        &[format!("http://127.0.0.1:{lb_port}")],
        &c.admin_key,
        args.clients,
    );
    let ledger = load.ledger.clone();

    let probe_seq = AtomicU64::new(0);
    let (mut to_leader, mut to_write) = (Vec::new(), Vec::new());
    let (mut kills, mut pauses, mut partitions, mut peer_partitions) = (0, 0, 0, 0);
    let (mut out_of_lb, mut probe) = (Vec::new(), MinorityProbe::default());
    let mut probe_ms = Vec::new();
    let mut stuck: Vec<String> = Vec::new();
    for k in 1..=args.kills {
        tokio::time::sleep(Duration::from_millis(args.gap_ms)).await;
        let leader = c.wait_leader(&c.ids(), Duration::from_secs(30)).await?;
        let peer_cut = args.peer_partition_every > 0 && k.is_multiple_of(args.peer_partition_every);
        let partition = !peer_cut && args.partition_every > 0 && k.is_multiple_of(args.partition_every);
        let pause = !peer_cut && !partition && args.pause_every > 0 && k.is_multiple_of(args.pause_every);
        let t0 = Instant::now();
        let mut minority = None;
        if peer_cut {
            c.spec.netns.as_ref().context("netns")?.cut_peers(leader)?;
            peer_partitions += 1;
            // Writes straight to the minority while it is cut off, and haproxy's view of it.
            let direct = c.client(leader);
            minority = Some(tokio::spawn(async move {
                let mut answers = Vec::new();
                for _ in 0..3 {
                    let t = Instant::now();
                    let body = json!({"file": true, "block": false});
                    let r = direct.call(Method::POST, "/clusters", Some(&body)).await;
                    answers.push((t.elapsed().as_secs_f64() * 1e3, r));
                }
                answers
            }));
        } else if partition {
            c.spec.netns.as_ref().context("netns")?.partition(leader)?;
            partitions += 1;
        } else if pause {
            c.pause(leader)?;
            pauses += 1;
        } else {
            c.kill(leader)?;
            kills += 1;
        }
        // haproxy's view of the minority, watched from the cut on.
        let lb_out = peer_cut.then(|| {
            let (http, server) = (lb_stats.clone(), format!("r{leader}"));
            tokio::spawn(async move {
                wait_for(
                    Duration::from_secs(30),
                    "haproxy to take the minority out",
                    || async {
                        let url = format!("http://127.0.0.1:{stats_port}/stats;csv");
                        let csv = http.get(url).send().await.ok()?.text().await.ok()?;
                        lb_server_down(&csv, &server).then(|| t0.elapsed().as_secs_f64() * 1e3)
                    },
                )
                .await
            })
        });
        let others: Vec<u64> = c.ids().into_iter().filter(|i| *i != leader).collect();
        let new = c.wait_leader(&others, Duration::from_secs(30)).await?;
        to_leader.push(t0.elapsed().as_secs_f64() * 1e3);
        if let Some(t) = lb_out {
            out_of_lb.push(t.await??);
        }
        let wrote = wait_for(Duration::from_secs(30), "a write through haproxy", || async {
            probe_seq.fetch_add(1, Ordering::SeqCst);
            let body = json!({"file": true, "block": false});
            let call = api.call(Method::POST, "/clusters", Some(&body));
            let r = tokio::time::timeout(Duration::from_secs(2), call)
                .await
                .ok()?
                .ok()?;
            (r.status == 201).then_some(())
        })
        .await;
        match wrote {
            Ok(()) => to_write.push(t0.elapsed().as_secs_f64() * 1e3),
            Err(e) => {
                let kind = if peer_cut {
                    "peer partition"
                } else if partition {
                    "partition"
                } else if pause {
                    "pause"
                } else {
                    "kill"
                };
                eprintln!("drill: fault {k} ({kind} of {leader}, new leader {new}): {e}");
                for id in c.ids() {
                    eprintln!("drill:   replica {id}: {:?}", c.status(id).await);
                }
                stuck.push(format!("fault {k}: {kind} of replica {leader}: {e}"));
            }
        }
        if let Some(m) = minority {
            for (ms, r) in m.await? {
                probe_ms.push(ms);
                let outcome = r.as_ref().ok().and_then(|r| {
                    let h = r.headers.get("x-hekate-outcome")?.to_str().ok()?;
                    Some((r.status, h.to_string()))
                });
                match outcome {
                    Some((503, h)) if h == "not-accepted" => probe.not_accepted += 1,
                    Some((504, h)) if h == "unknown" => probe.unknown += 1,
                    _ => probe.other.push(format!("fault {k}: {r:?}")),
                }
            }
        }
        if peer_cut {
            c.spec.netns.as_ref().context("netns")?.heal_peers(leader)?;
        } else if partition {
            c.spec.netns.as_ref().context("netns")?.heal(leader)?;
        } else if pause {
            c.resume(leader)?;
        } else {
            c.start(leader)?;
        }
        c.wait_ready(&[leader], Duration::from_secs(60)).await?;
        if k.is_multiple_of(10) {
            let l = ledger.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!(
                "drill: {k}/{} faults; new leader {new}; creates ok {} deletes ok {}",
                args.kills, l.creates.ok, l.deletes.ok
            );
        }
    }
    load.finish().await;
    let a = audit(&api, &c, &ledger).await?;

    let l = ledger.lock().unwrap_or_else(|e| e.into_inner());
    let durations = l.durations_ms.clone();
    let ok = a.ok() && stuck.is_empty() && probe.other.is_empty();
    let res = DrillResults {
        faults: args.kills,
        kills,
        pauses,
        partitions,
        peer_partitions,
        clients: args.clients,
        latency_ms: args.latency_ms,
        creates: Outcomes {
            ok: l.creates.ok,
            refused: l.creates.refused,
            failed: l.creates.failed,
            indeterminate: l.creates.indeterminate,
        },
        deletes: Outcomes {
            ok: l.deletes.ok,
            refused: l.deletes.refused,
            failed: l.deletes.failed,
            indeterminate: l.deletes.indeterminate,
        },
        new_leader: summarize(&to_leader),
        first_write_via_lb: summarize(&to_write),
        minority_out_of_lb: summarize(&out_of_lb),
        minority_probe: MinorityProbe {
            answer_ms: summarize(&probe_ms),
            ..probe
        },
        op_duration: summarize(&durations),
        longest_client_wait_ms: l.longest_wait_ms,
        longest_op_ms: durations.iter().cloned().fold(0.0, f64::max),
        volumes_at_end: a.volumes_at_end,
        lost_acknowledged: a.lost,
        resurrected_deleted: a.resurrected,
        duplicates: a.duplicates,
        orphans: a.orphans,
        no_write_within_30s: stuck.clone(),
        pending_at_end: a.pending,
        reconcile_findings: a.reconcile_findings,
        commands_recorded: a.commands_recorded,
        terms_seen: a.terms_seen,
        refused_by_nodes: a.refused_by_nodes,
        fencing_violations: a.fencing_violations,
        term_handover_gap_ms: summarize(&a.handover_gaps_ms),
        invariants_ok: ok,
    };
    if !ok {
        eprintln!("drill: INVARIANT BROKEN: {}", serde_json::to_string_pretty(&res)?);
        drop(c);
        if args.dir.is_none() {
            // Keep the replicas' logs and data for the post-mortem.
            eprintln!("drill: logs and data kept in {}", tmp.keep().display());
        }
        bail!("drill invariants broken");
    }
    Ok(res)
}

/// What the end state says about every operation the clients ran: the drill's invariants.
pub(crate) struct Audit {
    pub pending: usize,
    pub volumes_at_end: usize,
    pub lost: Vec<String>,
    pub resurrected: Vec<String>,
    pub duplicates: Vec<String>,
    pub orphans: Vec<String>,
    pub reconcile_findings: Vec<String>,
    pub commands_recorded: usize,
    pub terms_seen: usize,
    pub refused_by_nodes: usize,
    pub fencing_violations: Vec<String>,
    pub handover_gaps_ms: Vec<f64>,
}

impl Audit {
    pub fn ok(&self) -> bool {
        self.lost.is_empty()
            && self.reconcile_findings.is_empty()
            && self.fencing_violations.is_empty()
            && self.resurrected.is_empty()
            && self.duplicates.is_empty()
            && self.orphans.is_empty()
            && self.pending == 0
    }
}

/// Once the load stopped: every operation ends; the API's volumes against the ledger (none
/// lost, none resurrected, no duplicate) and against the nodes (no orphan, reconcile finds
/// nothing); the nodes ran each host's commands in term order.
pub(crate) async fn audit(api: &Client, c: &ProcCluster, ledger: &Mutex<Ledger>) -> anyhow::Result<Audit> {
    // Every operation ends.
    let pending = wait_for(Duration::from_secs(60), "no pending operation", || async {
        let r = api.call(Method::GET, "/operations", None).await.ok()?;
        let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
        let n = v["total"].as_u64()?;
        (n == 0).then_some(0usize)
    })
    .await
    .unwrap_or(usize::MAX);

    // The API's volumes against the ledger and the nodes.
    let vols = get_json(api, "/volumes").await?;
    let ids: Vec<String> = vols["volumes"]
        .as_array()
        .context("volume list")?
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut api_bricks = 0usize;
    for id in &ids {
        let v = get_json(api, &format!("/volumes/{id}")).await?;
        *names
            .entry(v["name"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
        api_bricks += v["bricks"].as_array().map(|b| b.len()).unwrap_or(0);
    }
    // Reconcile: the state against the nodes, through the balancer (run by the leader).
    let rec = get_json(api, "/reconcile").await.context("reconcile report")?;
    let reconcile_findings: Vec<String> = rec["findings"]
        .as_array()
        .context("reconcile findings")?
        .iter()
        .map(|f| format!("{}: {}", f["kind"], f["detail"]))
        .collect();
    // The nodes' model and record, read before the ledger's lock is taken.
    let nodes = c.mock_nodes()?;
    let mock = nodes
        .snapshot()
        .await
        .map_err(|e| anyhow::anyhow!("mock state: {e}"))?;
    let log = nodes
        .command_log()
        .await
        .map_err(|e| anyhow::anyhow!("mock command record: {e}"))?;
    let l = ledger.lock().unwrap_or_else(|e| e.into_inner());
    let lost: Vec<String> = l
        .created
        .iter()
        .filter(|n| !l.deleted.contains(*n) && !l.maybe_deleted.contains(*n) && !names.contains_key(*n))
        .cloned()
        .collect();
    let resurrected: Vec<String> = l
        .deleted
        .iter()
        .filter(|n| names.contains_key(*n))
        .cloned()
        .collect();
    let duplicates: Vec<String> = names
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(n, _)| n.clone())
        .collect();
    let mut orphans = Vec::new();
    let node_vols: BTreeSet<&String> = mock.volumes.keys().collect();
    for n in &node_vols {
        if !names.contains_key(*n) {
            orphans.push(format!("volume {n} on the nodes, not in the API"));
        }
    }
    for n in names.keys() {
        if !node_vols.contains(n) {
            orphans.push(format!("volume {n} in the API, not on the nodes"));
        }
    }
    let node_lvs: usize = mock
        .hosts
        .values()
        .flat_map(|h| h.vgs.values())
        .map(|vg| vg.lvs.len())
        .sum();
    if node_lvs != api_bricks {
        orphans.push(format!(
            "{node_lvs} brick LVs on the nodes, {api_bricks} bricks in the API"
        ));
    }
    // The node guard orders terms per node: each node's executed commands must be in term
    // order; refused commands did not run.
    let refused_by_nodes = log.iter().filter(|r| r.refused).count();
    let hosts: std::collections::BTreeSet<&str> = log.iter().map(|r| r.host.as_str()).collect();
    let (mut fencing_violations, mut gaps) = (Vec::new(), Vec::new());
    for h in hosts {
        let records: Vec<(u128, u64, String)> = log
            .iter()
            .filter(|r| r.host == h && !r.refused)
            .map(|r| (r.at_ns, r.term, format!("{} on {}", r.verb, r.host)))
            .collect();
        let order = hekate_testkit::term_order(&records);
        fencing_violations.extend(order.violations);
        gaps.extend(order.handover_gaps_ms);
    }
    let terms_seen = log
        .iter()
        .map(|r| r.term)
        .filter(|t| *t > 0)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    Ok(Audit {
        pending,
        volumes_at_end: ids.len(),
        lost,
        resurrected,
        duplicates,
        orphans,
        reconcile_findings,
        commands_recorded: log.len(),
        terms_seen,
        refused_by_nodes,
        fencing_violations,
        handover_gaps_ms: gaps,
    })
}

/// Concurrent clients creating and deleting volumes, each following its queue entries to
/// the end, with every outcome in the ledger.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    pub ledger: Arc<Mutex<Ledger>>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `urls`: where the clients send (a balancer, or the replicas themselves in order).
    pub fn start(urls: &[String], admin_key: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let clients = (0..clients)
            .map(|n| {
                let api = Client::new(urls.to_vec(), "admin", admin_key);
                tokio::spawn(client_loop(api, n, stop.clone(), ledger.clone()))
            })
            .collect();
        Load {
            stop,
            ledger,
            clients,
        }
    }

    /// Stops the clients once their current operation ended.
    pub async fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.clients {
            let _ = h.await;
        }
    }

    /// Operations acknowledged so far (creates and deletes).
    pub fn acknowledged(&self) -> u64 {
        let l = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        l.creates.ok + l.deletes.ok
    }
}
