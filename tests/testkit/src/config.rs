//! What each replica of a [`ProcCluster`] runs with: its `heketi.json` (ports, keys, peers,
//! mock executor, TLS files, the spec's extra keys), rewritten when the layout changes.

use anyhow::bail;
use serde_json::{json, Value};

use crate::{free_ports, ProcCluster};

impl ProcCluster {
    fn peers(&self) -> Value {
        Value::Array(
            self.ports
                .iter()
                .map(|(id, p)| {
                    let api = self
                        .advertised_api
                        .iter()
                        .find(|(i, _)| i == id)
                        .map(|(_, a)| a.clone())
                        .unwrap_or_else(|| format!("{}:{p}", self.host(*id)));
                    let mut m = json!({"id": id, "api": api});
                    if let Some(pp) = self.peer_port(*id) {
                        m["peer"] = json!(format!("{}:{pp}", self.host(*id)));
                    } else if let Some(peer) = self.peer_host(*id) {
                        m["peer"] = json!(format!("{peer}:{p}"));
                    }
                    m
                })
                .collect(),
        )
    }

    /// The address of replica `id`'s separate peer network, when its namespaces have one.
    fn peer_host(&self, id: u64) -> Option<String> {
        self.spec
            .netns
            .as_ref()
            .filter(|ns| ns.peer_net)
            .map(|ns| ns.peer_addr(id))
    }

    /// Announces `addr` to the peers as replica `id`'s API address (the replica still listens
    /// on its own port): lets a test put a recording proxy where followers would reach the
    /// leader's API. Rewrites every config; call before starting.
    pub fn advertise_api(&mut self, id: u64, addr: &str) -> anyhow::Result<()> {
        self.advertised_api.retain(|(i, _)| *i != id);
        self.advertised_api.push((id, addr.to_string()));
        for i in self.ids() {
            self.write_config(i, false)?;
        }
        Ok(())
    }

    /// The `glusterfs.mockexec` section: the spec's, pointed at the shared nodes.
    fn mock_config(&self) -> Value {
        let mut m = self.spec.mockexec.clone();
        if !m.is_object() {
            m = json!({});
        }
        if self.spec.shared_mock {
            m["nodes_url"] = json!(self.mock_nodes_url());
        }
        m
    }

    pub(crate) fn write_config(&self, id: u64, join: bool) -> anyhow::Result<()> {
        let port = self.port(id)?;
        let cfg = json!({
            "port": port.to_string(),
            "jwt": {"admin": {"key": self.admin_key}, "user": {"key": self.user_key}},
            "glusterfs": {"executor": "mock", "loglevel": self.spec.loglevel, "mockexec": self.mock_config()},
            "raft": {
                "id": id, "data_dir": self.data_dir(id), "secret": self.secret, "join": join,
                "api_listen": format!("{}:{port}", self.host(id)), "peers": self.peers(),
                "timeouts": self.spec.timeouts,
            }
        });
        let mut cfg = cfg;
        if let Some(peer) = self.peer_host(id) {
            cfg["raft"]["peer_listen"] = json!(format!("{peer}:{port}"));
        }
        if let Value::Object(extra) = &self.spec.raft {
            for (k, v) in extra {
                cfg["raft"][k] = v.clone();
            }
        }
        if let Value::Object(l) = &self.spec.limits {
            cfg["raft"]["limits"] = Value::Object(l.clone());
        }
        if let (Some(ca), Some((cert, key))) = (self.ca_file(), self.cert_files(id)) {
            cfg["enable_tls"] = json!(true);
            cfg["cert_file"] = json!(cert);
            cfg["key_file"] = json!(key);
            cfg["raft"]["tls"] = json!({"ca_file": ca, "cert_file": cert, "key_file": key});
        }
        if let Value::Object(extra) = &self.spec.glusterfs {
            for (k, v) in extra {
                cfg["glusterfs"][k] = v.clone();
            }
        }
        let path = self.config_path(id);
        std::fs::create_dir_all(path.parent().unwrap_or(&self.dir))?;
        hekate::dev::write_private(&path, serde_json::to_string_pretty(&cfg)?.as_bytes())?;
        Ok(())
    }

    /// Adds a replica id to the layout (a joining replica: it never bootstraps) and writes its config.
    pub fn add_replica(&mut self, id: u64) -> anyhow::Result<()> {
        if self.spec.tls {
            bail!("add_replica: not supported with tls (certificates are made at create)");
        }
        let port = free_ports(1)?[0];
        self.ports.push((id, port));
        self.write_config(id, true)
    }
}
