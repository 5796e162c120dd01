//! The stalled-leader drill as a test (issue 11), on the mock's node model: three rounds in
//! which the leader's runner stalls between its fence check and its send, a new leader takes
//! over and finishes the operation, and the old process then sends with its old term. Every
//! stale send must be refused by the node's guard and none executed; the operations end once
//! and reconcile finds nothing. (`hekate-bench stall --testbed` runs it on real nodes.)

use std::process::Command;

#[test]
fn a_stalled_leaders_late_commands_are_refused_by_the_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("stall.json");
    let out = Command::new(env!("CARGO_BIN_EXE_hekate-bench"))
        .arg("--out")
        .arg(&out_file)
        .args(["stall", "--rounds", "3", "--stall-ms", "4000"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "stall drill failed:\n{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    eprintln!("{r:#}");
    assert_eq!(r["stale_sends"], 3, "{r}");
    let rounds = r["rounds"].as_array().unwrap();
    assert!(rounds.iter().all(|x| x["refused"].as_u64().unwrap() >= 1), "{r}");
    assert!(rounds.iter().any(|x| x["kind"] == "delete"), "{r}");
    assert_eq!(r["stale_executed"], 0, "{r}");
    assert_eq!(r["reconcile_findings"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["volumes_found"], r["volumes_expected"], "{r}");
    assert_eq!(r["ok"], true, "{r}");
}
