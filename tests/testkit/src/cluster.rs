//! A local cluster of `hekate serve` processes ([`ProcCluster`]): what it is made of (ports,
//! keys, certificates, the shared mock nodes), where each replica lives and how to reach it.
//! Its configs are written by `config.rs`, its processes driven by `process.rs`, its replicas
//! probed by `probe.rs`.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::{anyhow, bail};

use hekate::client::Client;

use crate::{free_ports, ClusterSpec};

pub struct ProcCluster {
    pub dir: PathBuf,
    pub spec: ClusterSpec,
    pub admin_key: String,
    pub user_key: String,
    pub secret: String,
    pub(crate) ports: Vec<(u64, u16)>,
    /// Peer listener ports (with `tls`; otherwise peers use the API port).
    pub(crate) peer_ports: Vec<(u64, u16)>,
    /// API addresses announced to peers instead of the real ones (a capturing proxy).
    pub(crate) advertised_api: Vec<(u64, String)>,
    pub(crate) pki: Option<hekate::tls::GeneratedPki>,
    pub(crate) procs: Vec<(u64, Option<Child>)>,
    pub(crate) http: reqwest::Client,
    /// The shared nodes (with `shared_mock`), started with the first replica; stopped after
    /// the replicas when the cluster is dropped.
    pub(crate) mock_nodes: Option<hekate::dev::MockNodes>,
}

impl ProcCluster {
    /// Writes the configs of replicas 1..=n under `dir` (not started yet).
    pub fn create(dir: &Path, spec: ClusterSpec) -> anyhow::Result<ProcCluster> {
        let ports = free_ports(spec.replicas as usize * if spec.tls { 2 } else { 1 })?;
        let (ports, peer_ports) = ports.split_at(spec.replicas as usize);
        let rnd = || hex::encode(rand::random::<[u8; 16]>());
        let pki = if spec.tls {
            let names: Vec<String> = (1..=spec.replicas).map(|i| format!("replica-{i}")).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let hosts: Vec<String> = match &spec.netns {
                Some(ns) => (1..=spec.replicas).map(|i| ns.addr(i)).collect(),
                None => vec!["127.0.0.1".into(), "localhost".into()],
            };
            Some(hekate::tls::generate(&dir.join("tls"), &names, &hosts)?)
        } else {
            None
        };
        let mut http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30));
        if let Some(p) = &pki {
            http = http.tls_certs_only(reqwest::Certificate::from_pem_bundle(&std::fs::read(
                &p.ca_file,
            )?)?);
        }
        let c = ProcCluster {
            dir: dir.to_path_buf(),
            admin_key: rnd(),
            user_key: rnd(),
            secret: format!("{}{}", rnd(), rnd()),
            ports: (1..=spec.replicas).zip(ports.iter().copied()).collect(),
            peer_ports: (1..=spec.replicas).zip(peer_ports.iter().copied()).collect(),
            advertised_api: Vec::new(),
            pki,
            procs: Vec::new(),
            spec,
            http: http.build()?,
            mock_nodes: None,
        };
        for id in 1..=c.spec.replicas {
            c.write_config(id, false)?;
        }
        Ok(c)
    }

    /// Replica `id`'s peer listener port, when it has its own (with `tls`).
    pub fn peer_port(&self, id: u64) -> Option<u16> {
        self.peer_ports.iter().find(|(i, _)| *i == id).map(|(_, p)| *p)
    }

    /// The cluster CA (with `tls`).
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.pki.as_ref().map(|p| p.ca_file.clone())
    }

    /// Replica `id`'s certificate and key files (with `tls`).
    pub fn cert_files(&self, id: u64) -> Option<(PathBuf, PathBuf)> {
        let (c, k) = self.pki.as_ref()?.cert(&format!("replica-{id}"))?;
        Some((c.to_path_buf(), k.to_path_buf()))
    }

    pub fn config_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("replica-{id}")).join("heketi.json")
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.join(format!("replica-{id}")).join("data")
    }

    /// Where the replicas reach their shared (mock) nodes (with `shared_mock`).
    pub fn mock_nodes_url(&self) -> String {
        hekate::dev::MockNodes::url(&std::path::absolute(&self.dir).unwrap_or_else(|_| self.dir.clone()))
    }

    /// A client of the shared (mock) nodes, as tests and drills use it: read the model and
    /// the command record, arm faults, plant, stop glusterd.
    pub fn mock_nodes(&self) -> anyhow::Result<hekate::executor::mock::MockExecutor> {
        if !self.spec.shared_mock {
            bail!("this cluster's replicas model their own nodes (shared_mock is off)");
        }
        Ok(hekate::executor::mock::MockExecutor::new(
            hekate::executor::mock::MockConfig {
                nodes_url: self.mock_nodes_url(),
                ..Default::default()
            },
        )?)
    }

    /// Starts the shared nodes' process if it is not running (the first replica's start
    /// does); a restart resumes the model from `mock-nodes.json`.
    pub fn start_mock_nodes(&mut self) -> anyhow::Result<()> {
        if self.spec.shared_mock && self.mock_nodes.is_none() {
            let n = hekate::dev::MockNodes::start(
                &self.spec.binary,
                &self.dir,
                hekate::dev::MOCK_PERSIST_MS,
                None,
            )?;
            self.mock_nodes = Some(n);
        }
        Ok(())
    }

    /// Stops the shared nodes' process (SIGTERM: it writes the model first).
    pub fn stop_mock_nodes(&mut self) {
        if let Some(mut n) = self.mock_nodes.take() {
            n.stop();
        }
    }

    pub fn port(&self, id: u64) -> anyhow::Result<u16> {
        self.ports
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, p)| *p)
            .ok_or_else(|| anyhow!("no replica {id}"))
    }

    pub fn url(&self, id: u64) -> String {
        let scheme = if self.spec.tls { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.host(id), self.port(id).unwrap_or(0))
    }

    pub fn api_addr(&self, id: u64) -> String {
        format!("{}:{}", self.host(id), self.port(id).unwrap_or(0))
    }

    /// The address replica `id` listens on: its namespace's, or loopback.
    pub fn host(&self, id: u64) -> String {
        match &self.spec.netns {
            Some(ns) => ns.addr(id),
            None => "127.0.0.1".into(),
        }
    }

    pub fn ids(&self) -> Vec<u64> {
        self.ports.iter().map(|(i, _)| *i).collect()
    }

    pub fn client(&self, id: u64) -> Client {
        self.client_as(id, "admin", &self.admin_key)
    }

    /// A client of replica `id` signing as `user` (trusting the cluster CA with `tls`).
    pub fn client_as(&self, id: u64, user: &str, key: &str) -> Client {
        let tls = hekate::client::ClientTls {
            ca_files: self.ca_file().into_iter().collect(),
            insecure: false,
        };
        Client::with_tls(vec![self.url(id)], user, key, &tls)
            .unwrap_or_else(|_| Client::new(vec![self.url(id)], user, key))
    }
}
