//! The drill as a test: three replicas, each in its own network namespace, behind a real
//! haproxy health-checked on `/readyz`, under concurrent creates and deletes with a slow
//! brick step, while the leader is killed, paused and partitioned (its link taken down
//! while it keeps running) or cut from its peers only (clients and haproxy still reach it: the
//! minority must leave the balancer and answer within the bound). `hekate-bench drill` exits non-zero when an invariant breaks:
//! an acknowledged operation lost, a duplicate, an orphan, an operation that never ends, a
//! reconcile finding, or a command of an old term started after a newer term's first.
//! Needs root and haproxy (`deploy/test.sh` installs it); skipped without them unless
//! `HEKATE_REQUIRE_TESTBED` is set.

use std::process::Command;

fn can_run() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    let haproxy = Command::new("haproxy").arg("-v").output().is_ok();
    if root && haproxy {
        return true;
    }
    let why = format!("root: {root}, haproxy: {haproxy}");
    if std::env::var_os("HEKATE_REQUIRE_TESTBED").is_some() {
        panic!("the drill needs root and haproxy ({why})");
    }
    eprintln!("skipped: the drill needs root and haproxy ({why})");
    false
}

#[test]
fn drill_through_haproxy_with_kills_pauses_partitions_and_peer_partitions() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("drill.json");
    let out = Command::new(env!("CARGO_BIN_EXE_hekate-bench"))
        .arg("--out")
        .arg(&out_file)
        .args([
            "drill",
            "--kills",
            "10",
            "--partition-every",
            "3",
            "--peer-partition-every",
            "4",
            "--pause-every",
            "2",
            "--latency-ms",
            "50",
            "--slow-ms",
            "1500",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "drill failed:\n{stderr}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    eprintln!("{r:#}");
    assert_eq!(r["partitions"], 3, "{r}");
    assert_eq!(r["peer_partitions"], 2, "{r}");
    assert_eq!(r["minority_probe"]["other"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["minority_out_of_lb"]["n"], 2, "{r}");
    assert!(r["pauses"].as_u64().unwrap() >= 2, "{r}");
    assert_eq!(r["invariants_ok"], true, "{r}");
    assert_eq!(r["fencing_violations"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["reconcile_findings"].as_array().unwrap().len(), 0, "{r}");
    assert!(r["terms_seen"].as_u64().unwrap() >= 5, "{r}");
    assert!(r["creates"]["ok"].as_u64().unwrap() > 0, "{r}");
}
