//! The deployment files are checked with the tools that consume them: haproxy's own config
//! check, systemd's unit verifier, Hekate's config validation for every example config, and a
//! structural check of the Kubernetes manifests.

use std::process::Command;

use serde_yaml::Value;

fn path(p: &str) -> String {
    format!("{}/deploy/{p}", env!("CARGO_MANIFEST_DIR"))
}

fn env(k: &str) -> Option<String> {
    match k {
        "HEKETI_ADMIN_KEY" => Some("admin-key-from-secret".into()),
        "HEKETI_USER_KEY" => Some("user-key-from-secret".into()),
        "HEKATE_RAFT_SECRET" => Some("a-long-cluster-secret-from-a-secret".into()),
        _ => None,
    }
}

#[test]
fn haproxy_accepts_the_shipped_configuration() {
    let out = Command::new("haproxy")
        .args(["-c", "-f", &path("haproxy/haproxy.cfg")])
        .output()
        .expect("haproxy is installed by deploy/setup.sh");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg = std::fs::read_to_string(path("haproxy/haproxy.cfg")).unwrap();
    assert!(cfg.contains("option httpchk GET /readyz"));
}

#[test]
fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string(path("systemd/hekate.service")).unwrap();
    for needed in [
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=hekate",
    ] {
        assert!(unit.contains(needed), "unit lacks {needed}");
    }
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("systemd-analyze not installed: unit content checked only");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("hekate.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/hekate", env!("CARGO_BIN_EXE_hekate")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("Unknown key"), "{err}");
}

#[test]
fn example_configs_are_valid_and_agree() {
    let mut peers = Vec::new();
    for i in 1..=3u64 {
        let text = std::fs::read_to_string(path(&format!("examples/three-node/hekate-{i}.json"))).unwrap();
        let s = hekate::config::parse(&text, &env).unwrap_or_else(|e| panic!("hekate-{i}.json: {e}"));
        assert_eq!(s.file.raft.id, i);
        peers.push(s.members());
    }
    assert!(
        peers.windows(2).all(|w| w[0] == w[1]),
        "replicas disagree on their peers"
    );
    assert_eq!(peers[0].len(), 3);
}

#[test]
fn kubernetes_manifests_carry_the_required_fields() {
    let text = std::fs::read_to_string(path("k8s/hekate.yaml")).unwrap();
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect();
    let kind = |k: &str| {
        docs.iter()
            .filter(move |d| d["kind"].as_str() == Some(k))
            .collect::<Vec<_>>()
    };
    let sts = kind("StatefulSet")[0];
    assert_eq!(sts["spec"]["replicas"], Value::from(3));
    assert_eq!(sts["spec"]["podManagementPolicy"], Value::from("Parallel"));
    let headless = sts["spec"]["serviceName"].as_str().unwrap();
    let svc = kind("Service")
        .into_iter()
        .find(|s| s["metadata"]["name"].as_str() == Some(headless))
        .expect("headless service");
    assert_eq!(svc["spec"]["clusterIP"], Value::from("None"));
    assert!(kind("Service").len() >= 2, "a client Service too");
    assert_eq!(
        kind("PodDisruptionBudget")[0]["spec"]["maxUnavailable"],
        Value::from(1)
    );
    let pod = &sts["spec"]["template"]["spec"];
    assert!(!pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"].is_null());
    let c = &pod["containers"][0];
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], Value::from("/readyz"));
    let env_names: Vec<&str> = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for k in ["HEKETI_ADMIN_KEY", "HEKETI_USER_KEY", "HEKATE_RAFT_SECRET"] {
        assert!(env_names.contains(&k), "{k} from a Secret");
    }
    assert!(
        pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|v| !v["secret"].is_null()),
        "SSH key from a Secret"
    );
    // Every replica's config in the ConfigMap is a valid Hekate config, ids 1..3.
    let cm = kind("ConfigMap")[0];
    for ord in 0..3u64 {
        let cfg = cm["data"][format!("hekate-{ord}.json").as_str()]
            .as_str()
            .unwrap();
        let s = hekate::config::parse(cfg, &env).unwrap_or_else(|e| panic!("hekate-{ord}.json: {e}"));
        assert_eq!(s.file.raft.id, ord + 1);
    }
}

use serde::Deserialize;
