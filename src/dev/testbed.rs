//! The testbed of real gluster nodes (`tests/testbed/testbed.sh up`) as its `env` file
//! describes it: `hekate dev --testbed` points its SSH executor at it, and the end-to-end
//! tests and testbed benchmarks (through `hekate-testkit`) read its nodes and state directory.

use anyhow::{anyhow, Context};
use serde_json::{json, Value};

/// A running testbed of real gluster nodes (`tests/testbed/testbed.sh up`), as its `env`
/// file describes it: used by the end-to-end tests and the testbed benchmark.
#[derive(Debug, Clone)]
pub struct TestbedEnv {
    /// `$HT_STATE`: the testbed's state directory (one subdirectory per node).
    pub state_dir: String,
    pub key: String,
    pub known_hosts: String,
    /// (name, address, loop disks) per node.
    pub nodes: Vec<(String, String, Vec<String>)>,
}

impl TestbedEnv {
    /// Reads `$HT_STATE/env` (default `/tmp/hekate-testbed/env`).
    pub fn read() -> anyhow::Result<TestbedEnv> {
        let state = std::env::var("HT_STATE").unwrap_or_else(|_| "/tmp/hekate-testbed".into());
        let path = format!("{state}/env");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("no testbed at {state} (tests/testbed/testbed.sh up)"))?;
        let env: std::collections::HashMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect();
        let get = |k: &str| {
            env.get(k)
                .map(|v| v.to_string())
                .ok_or_else(|| anyhow!("{path}: no {k}"))
        };
        let names = get("HT_NODES")?;
        let ips = get("HT_IPS")?;
        let mut nodes = Vec::new();
        for (n, ip) in names.split(' ').zip(ips.split(' ')) {
            let disks = get(&format!("{n}_DISKS"))?.split(' ').map(String::from).collect();
            nodes.push((n.to_string(), ip.to_string(), disks));
        }
        Ok(TestbedEnv {
            state_dir: state.clone(),
            key: get("HT_KEY")?,
            known_hosts: get("HT_KNOWN_HOSTS")?,
            nodes,
        })
    }

    /// The `glusterfs` keys that point a Hekate cluster's SSH executor at the testbed.
    pub fn glusterfs_config(&self) -> Value {
        json!({
            "executor": "ssh",
            "sshexec": {"keyfile": self.key, "known_hosts": self.known_hosts, "user": "root",
                        "port": "22", "fstab": "/etc/fstab"},
        })
    }
}
