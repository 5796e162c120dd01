//! hekate-cli against heketi-cli's recorded transcripts (tests/fixtures/heketi-samples/cli):
//! the same commands, in the same order, on the same topology, through a three-replica
//! cluster; output compared line by line with ids (and, where placement decides them, IP
//! orders and digits) normalized. Also: several server URLs with the first one dead.

use std::process::Command;

use regex::Regex;
use serde_json::Value;

use crate::{cluster, serial, T};

const CLI: &str = env!("CARGO_BIN_EXE_hekate-cli");

fn transcript(name: &str) -> (Vec<String>, String, i32) {
    let p = format!(
        "{}/tests/fixtures/heketi-samples/cli/{name}.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let t = std::fs::read_to_string(p).unwrap();
    let first = t.lines().next().unwrap();
    let args: Vec<String> = shell_words(first.trim_start_matches("$ heketi-cli "));
    let (body, exit) = t.split_once('\n').unwrap().1.rsplit_once("[exit ").unwrap();
    (
        args,
        body.to_string(),
        exit.trim().trim_end_matches(']').parse().unwrap(),
    )
}

/// Splits a recorded command line (`--opt=a b` keeps `a b` when quoted by the recorder's
/// convention: heketi-cli was run with `--gluster-volume-options=user.heketi.arbiter true`).
fn shell_words(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in s.split(' ') {
        match out.last_mut() {
            Some(prev) if prev.starts_with("--gluster-volume-options=") && !w.starts_with("--") => {
                prev.push(' ');
                prev.push_str(w);
            }
            _ => out.push(w.to_string()),
        }
    }
    out
}

fn run(c: &hekate_testkit::ProcCluster, servers: &str, args: &[String]) -> (String, String, i32) {
    let out = Command::new(CLI)
        .args(args)
        .env("HEKETI_CLI_SERVER", servers)
        .env("HEKETI_CLI_USER", "admin")
        .env("HEKETI_CLI_KEY", &c.admin_key)
        .current_dir(format!(
            "{}/tests/fixtures/heketi-samples",
            env!("CARGO_MANIFEST_DIR")
        ))
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// Ids become `<id>`; with `values`, digits become 9 (widths kept) and IPs `<ip>`.
fn norm(s: &str, values: bool) -> String {
    let id = Regex::new("[0-9a-f]{32}").unwrap();
    let mut s = id.replace_all(s, "<id>").into_owned();
    let ip = Regex::new(r"127\.0\.1\.\d").unwrap();
    s = ip.replace_all(&s, "<ip>").into_owned();
    if values {
        s = s
            .chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect();
    }
    s
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(String::from).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heketi_cli_transcripts_replay_line_for_line() {
    let _g = serial();
    let (_d, c) = cluster(3, serde_json::json!({})).await;
    let leader = c.wait_leader(&[1, 2, 3], T).await.unwrap();
    let via = c.ids().into_iter().find(|i| *i != leader).unwrap();
    // The first URL is dead: the CLI fails over to the next one.
    let dead = format!("http://127.0.0.1:{}", hekate_testkit::free_ports(1).unwrap()[0]);
    let servers = format!("{dead},{}", c.url(via));
    let mut volume_ids = Vec::new();

    // Exact (ids normalized) comparisons, in the order they were recorded.
    for name in [
        "topology-load",
        "cluster-list",
        "cluster-list-json",
        "volume-create-replicate3",
        "volume-create-arbiter",
        "volume-create-none",
        "volume-create-disperse",
        "volume-create-nospace",
        "volume-info-notfound",
        "server-operations-info",
    ] {
        let (args, want, code) = transcript(name);
        let (out, err, got) = run(&c, &servers, &args);
        assert_eq!(got, code, "{name}: exit code; stderr: {err}");
        let ours = if code == 0 { out.clone() } else { err.clone() };
        assert_eq!(
            norm(&ours, false).trim_end(),
            norm(&want, false).trim_end(),
            "{name}"
        );
        if let Some(id) = out.lines().find_map(|l| l.strip_prefix("Volume Id: ")) {
            volume_ids.push(id.to_string());
        }
    }
    // `volume create --json` prints the server's JSON without a newline.
    let (args, want, _) = transcript("volume-create-json");
    let (out, _, code) = run(&c, &servers, &args);
    assert_eq!(code, 0);
    assert!(!out.ends_with('\n'));
    let (ours, theirs): (Value, Value) = (
        serde_json::from_str(&out).unwrap(),
        serde_json::from_str(want.trim_end()).unwrap(),
    );
    assert_eq!(ours["durability"], theirs["durability"]);
    assert_eq!(ours["glustervolumeoptions"], theirs["glustervolumeoptions"]);

    // Commands whose values depend on placement: same lines, digits and ids normalized.
    let topo: Value =
        serde_json::from_str(&run(&c, &servers, &["topology".into(), "info".into(), "--json".into()]).0)
            .unwrap();
    let node4 = topo["clusters"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["hostnames"]["manage"][0] == "node4.heketi.test")
        .unwrap()
        .clone();
    let cluster_id = topo["clusters"][0]["id"].as_str().unwrap().to_string();
    let device = node4["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "/dev/vdb")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let replicate3 = volume_ids[0].clone();
    let subst = |args: Vec<String>| -> Vec<String> {
        let id = Regex::new("[0-9a-f]{32}").unwrap();
        args.into_iter()
            .map(|a| {
                if a.contains("expand") || a.starts_with("--volume=") {
                    return id.replace_all(&a, replicate3.as_str()).into_owned();
                }
                a
            })
            .collect()
    };
    let shape = Regex::new(r"\d+|/dev/vd[a-z]").unwrap();
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "cluster-info",
            vec!["cluster".into(), "info".into(), cluster_id.clone()],
        ),
        (
            "node-info",
            vec!["node".into(), "info".into(), node4["id"].as_str().unwrap().into()],
        ),
        ("device-info", vec!["device".into(), "info".into(), device]),
        (
            "volume-info",
            vec!["volume".into(), "info".into(), replicate3.clone()],
        ),
        ("volume-list", vec!["volume".into(), "list".into()]),
        // Recorded after the expansion (clirep3 shows Size: 2 there).
        ("volume-expand", subst(transcript("volume-expand").0)),
        ("topology-info", vec!["topology".into(), "info".into()]),
        (
            "volume-delete",
            vec!["volume".into(), "delete".into(), replicate3.clone()],
        ),
    ];
    for (name, args) in cases {
        let (_, want, code) = transcript(name);
        let (out, err, got) = run(&c, &servers, &args);
        assert_eq!(got, code, "{name}: {err}");
        let (ours, theirs) = (norm(&out, true), norm(&want, true));
        match name {
            // Lists of devices/bricks depend on placement: compare the headers, then check
            // every list line has the recorded line's shape.
            "node-info" | "device-info" => {
                let split = |s: &str| -> (Vec<String>, Vec<String>) {
                    let mut head = Vec::new();
                    let mut list = Vec::new();
                    let mut in_list = false;
                    for l in s.lines() {
                        if in_list {
                            list.push(l.to_string())
                        } else {
                            head.push(l.to_string())
                        }
                        if l == "Devices:" || l == "Bricks:" {
                            in_list = true
                        }
                    }
                    (head, list)
                };
                let ((oh, ol), (th, tl)) = (split(&ours), split(&theirs));
                assert_eq!(oh, th, "{name}: header");
                let t0 = shape.replace_all(&tl[0], "N").into_owned();
                for l in ol {
                    assert_eq!(shape.replace_all(&l, "N"), t0, "{name}: list line");
                }
            }
            "topology-info" | "volume-list" | "cluster-info" => {
                // Same lines, in an order that follows the (random) ids.
                let (o, t) = (sorted_lines(&ours), sorted_lines(&theirs));
                if name == "topology-info" {
                    // Brick lines differ with placement (which device holds how many).
                    let keep = |l: &&String| !l.starts_with("\t\t\t\tId:") && !l.starts_with("\t\tId:");
                    assert_eq!(
                        o.iter().filter(keep).collect::<Vec<_>>(),
                        t.iter().filter(keep).collect::<Vec<_>>(),
                        "{name}"
                    );
                } else {
                    assert_eq!(o, t, "{name}");
                }
            }
            _ => assert_eq!(ours.trim_end(), theirs.trim_end(), "{name}"),
        }
    }
}

/// A fresh clone's first steps, as the README gives them: `hekate-cli topology load` with the
/// shipped example (deploy/examples/topology.json: three nodes in three zones), then the
/// README's volume create, against a three-replica cluster of simulated nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_example_topology_loads_and_takes_a_volume() {
    let _g = serial();
    let (_d, c) = cluster(3, serde_json::json!({})).await;
    let servers = c.url(1);
    let example = format!("{}/deploy/examples/topology.json", env!("CARGO_MANIFEST_DIR"));
    let args = ["topology", "load", &format!("--json={example}")].map(String::from);
    let (out, err, code) = run(&c, &servers, &args);
    assert_eq!(code, 0, "topology load: {out}{err}");
    assert_eq!(out.matches("\tCreating node ").count(), 3, "{out}");
    assert_eq!(out.matches("Adding device ").count(), 6, "{out}");
    assert_eq!(out.matches(" ... OK").count(), 6, "{out}");
    let args = ["volume", "create", "--size=10", "--replica=3"].map(String::from);
    let (out, err, code) = run(&c, &servers, &args);
    assert_eq!(code, 0, "volume create: {out}{err}");
    assert!(
        out.contains("Durability Type: replicate") && out.contains("Replica Count: 3"),
        "{out}"
    );
}

/// Starts `n` replicas with extra `glusterfs` keys and waits until all are ready.
async fn cluster_with(n: u64, glusterfs: Value) -> (tempfile::TempDir, hekate_testkit::ProcCluster) {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = hekate_testkit::ClusterSpec::new(crate::BIN, n);
    spec.glusterfs = glusterfs;
    let mut c = hekate_testkit::ProcCluster::create(dir.path(), spec).unwrap();
    c.start_all().unwrap();
    let ids = c.ids();
    c.wait_ready(&ids, T)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(1)));
    (dir, c)
}

/// Heketi's mock answers `fakeIQN` and fixed credentials; the simulated nodes answer
/// gluster-block's real shapes: those three values are compared by presence only.
fn norm_block(s: &str) -> String {
    let target = Regex::new(r"(?m)^(IQN|Username|Password): \S+$").unwrap();
    norm(&target.replace_all(s, "$1: <set>"), false)
}

/// `hekate-cli blockvolume` against heketi-cli's block transcripts, in their recorded order,
/// on the recorded topology, with the block-hosting volume created on demand
/// (`auto_create_block_hosting_volume`, 100 GiB as the recording's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blockvolume_commands_replay_heketi_cli_transcripts() {
    let _g = serial();
    let (_d, c) = cluster_with(
        3,
        serde_json::json!({"auto_create_block_hosting_volume": true, "block_hosting_volume_size": 100}),
    )
    .await;
    let servers = c.url(1);
    let (args, _, _) = transcript("topology-load");
    let (out, err, code) = run(&c, &servers, &args);
    assert_eq!(code, 0, "topology load: {out}{err}");

    // create --name=cliblock --ha=3 --auth: the text template, ids and IPs normalized.
    let (args, want, code) = transcript("blockvolume-create");
    let (out, err, got) = run(&c, &servers, &args);
    assert_eq!((got, code), (0, 0), "create: {err}");
    assert_eq!(norm_block(&out), norm_block(&want), "create");
    let field = |s: &str, k: &str| -> String {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("{k} in {s}"))
            .to_string()
    };
    let named = field(&out, "Volume Id: ");
    let bhv = field(&out, "Block Hosting Volume: ");
    assert!(!field(&out, "Password: ").is_empty(), "--auth gives credentials");

    // create --json: the server's JSON, no newline, Heketi's keys in Heketi's order.
    let (args, want, _) = transcript("blockvolume-create-json");
    let (out, err, code) = run(&c, &servers, &args);
    assert_eq!(code, 0, "create --json: {err}");
    assert!(!out.ends_with('\n'));
    let (ours, theirs): (Value, Value) = (
        serde_json::from_str(&out).unwrap(),
        serde_json::from_str(want.trim_end()).unwrap(),
    );
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&ours), keys(&theirs));
    assert_eq!(keys(&ours["blockvolume"]), keys(&theirs["blockvolume"]));
    assert_eq!(ours["blockhostingvolume"], bhv, "the second one shares the BHV");
    assert_eq!(ours["size"], 1);
    let unnamed = ours["id"].as_str().unwrap().to_string();
    assert_eq!(ours["name"], format!("blockvol_{unnamed}"));

    // list: one line per block volume (order follows the random ids).
    let (args, want, code) = transcript("blockvolume-list");
    let (out, err, got) = run(&c, &servers, &args);
    assert_eq!(got, code, "list: {err}");
    assert_eq!(
        sorted_lines(&norm(&out, false)),
        sorted_lines(&norm(&want, false))
    );
    assert!(out.contains(&format!("Id:{named}    Cluster:")), "{out}");
    let (args, _, _) = transcript("blockvolume-list-json");
    let (out, _, code) = run(&c, &servers, &args);
    assert_eq!(code, 0);
    let mut ids = vec![named.clone(), unnamed.clone()];
    ids.sort();
    assert_eq!(out, serde_json::json!({ "blockvolumes": ids }).to_string());

    // info (text and JSON), expand and delete of the named one, then not found.
    let with_id = |args: Vec<String>| -> Vec<String> {
        let id = Regex::new("[0-9a-f]{32}").unwrap();
        args.iter()
            .map(|a| id.replace_all(a, named.as_str()).into_owned())
            .collect()
    };
    for name in ["blockvolume-info", "blockvolume-expand", "blockvolume-delete"] {
        let (args, want, code) = transcript(name);
        let (out, err, got) = run(&c, &servers, &with_id(args));
        assert_eq!(got, code, "{name}: {err}");
        assert_eq!(norm_block(&out), norm_block(&want), "{name}");
        if name == "blockvolume-info" {
            let (args, want, _) = transcript("blockvolume-info-json");
            let (out, _, _) = run(&c, &servers, &with_id(args));
            let (ours, theirs): (Value, Value) = (
                serde_json::from_str(&out).unwrap(),
                serde_json::from_str(want.trim_end()).unwrap(),
            );
            assert_eq!(keys(&ours), keys(&theirs));
            assert_eq!(
                (&ours["size"], &ours["hacount"]),
                (&theirs["size"], &theirs["hacount"])
            );
        }
    }
    let args = with_id(transcript("blockvolume-info").0);
    let (_, err, code) = run(&c, &servers, &args);
    assert_eq!((code, err.as_str()), (255, "Error: Id not found\n"));
    let (args, want, code) = transcript("blockvolume-info-notfound");
    let (_, err, got) = run(&c, &servers, &args);
    assert_eq!((got, err), (code, want));

    // The BHV lists what is left; `--blockvolume=<id>` names the volume to expand.
    let info = run(&c, &servers, &["volume".into(), "info".into(), bhv.clone()]).0;
    assert!(info.contains(&format!("Block Volumes: [{unnamed}]\n")), "{info}");
    let args = [
        "blockvolume",
        "expand",
        &format!("--blockvolume={unnamed}"),
        "--new-size=2",
    ]
    .map(String::from);
    let (out, err, code) = run(&c, &servers, &args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\nSize: 2\nUsableSize: 2\n"), "{out}");
    let args = ["blockvolume", "create", "--size=1", "--ha=-1"].map(String::from);
    let (_, err, code) = run(&c, &servers, &args);
    assert_eq!((code, err.as_str()), (255, "Error: Invalid HA count\n"));
}

/// Without a block-hosting volume and with automatic creation off (Heketi's default),
/// `blockvolume create` fails as heketi-cli's transcript shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blockvolume_create_without_block_hosting_volume_fails_as_heketi_cli() {
    let _g = serial();
    let (_d, c) = cluster(3, serde_json::json!({})).await;
    let servers = c.url(1);
    let (args, _, _) = transcript("topology-load");
    assert_eq!(run(&c, &servers, &args).2, 0);
    let (args, want, code) = transcript("blockvolume-create-nobhv");
    let (out, err, got) = run(&c, &servers, &args);
    assert_eq!((got, out.as_str(), err), (code, "", want));
}
