//! The peer network, client side: openraft's RPCs (append, vote, chunked snapshot) as HTTP
//! POSTs of bincode bodies to `http(s)://<peer_addr>/raft/rpc/<name>`, authenticated by the
//! cluster secret in the `x-hekate-secret` header and, with [`PeerTls`], by mutual TLS
//! against the cluster CA. See [`crate::service`] for the server.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{de::DeserializeOwned, Serialize};

use crate::codec;
use crate::types::{Member, NodeId, TypeConfig};

pub const SECRET_HEADER: &str = "x-hekate-secret";
pub const RPC_PREFIX: &str = "/raft/rpc";

/// Why a peer call failed, before openraft's error taxonomy is applied.
#[derive(Debug, thiserror::Error)]
pub enum PeerCallError {
    /// Nothing was delivered: connection refused, DNS, connect timeout.
    #[error("peer {0} unreachable: {1}")]
    Unreachable(String, String),
    /// Sent, but no valid answer (timeout, refused secret, bad body).
    #[error("peer {0}: {1}")]
    Failed(String, String),
}

/// Mutual TLS material for the peer network (PEM): the cluster CA, this replica's
/// certificate chain and its key. `Debug` never shows the key.
#[derive(Clone)]
pub struct PeerTls {
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls").finish_non_exhaustive()
    }
}

/// An HTTP client for peer RPCs, shared by all connections of a replica. With [`PeerTls`] it
/// speaks HTTPS, trusts only the cluster CA and presents this replica's certificate.
#[derive(Clone)]
pub struct PeerHttp {
    http: reqwest::Client,
    secret: Arc<str>,
    scheme: &'static str,
}

impl PeerHttp {
    pub fn new(secret: &str, tls: Option<&PeerTls>) -> Result<PeerHttp, String> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .pool_idle_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true);
        let mut scheme = "http";
        if let Some(t) = tls {
            let roots = reqwest::Certificate::from_pem_bundle(&t.ca_pem)
                .map_err(|e| format!("raft.tls.ca_file: {e}"))?;
            let mut pem = t.cert_pem.clone();
            pem.push(b'\n');
            pem.extend_from_slice(&t.key_pem);
            let id =
                reqwest::Identity::from_pem(&pem).map_err(|e| format!("raft.tls.cert_file/key_file: {e}"))?;
            b = b.tls_certs_only(roots).identity(id).https_only(true);
            scheme = "https";
        }
        let http = b.build().map_err(|e| format!("peer client: {e}"))?;
        Ok(PeerHttp {
            http,
            secret: Arc::from(secret),
            scheme,
        })
    }

    /// The client, for requests other than RPCs (forwarding to the leader's peer listener).
    pub fn client(&self) -> &reqwest::Client {
        &self.http
    }

    /// `http(s)://<addr><path>` with this network's scheme.
    pub fn url(&self, addr: &str, path: &str) -> String {
        format!("{}://{addr}{path}", self.scheme)
    }

    /// The cluster secret, sent in [`SECRET_HEADER`] to peer addresses only.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// POSTs `req` (bincode) to `addr`'s RPC `name` and decodes the bincode answer.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        name: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerCallError> {
        let body = codec::encode(req).map_err(|e| PeerCallError::Failed(addr.into(), e.to_string()))?;
        let url = self.url(addr, &format!("{RPC_PREFIX}/{name}"));
        let resp = self
            .http
            .post(url)
            .header(SECRET_HEADER, &*self.secret)
            .header("content-type", "application/octet-stream")
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    PeerCallError::Unreachable(addr.into(), e.to_string())
                } else {
                    PeerCallError::Failed(addr.into(), e.to_string())
                }
            })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| PeerCallError::Failed(addr.into(), e.to_string()))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes).trim().to_string();
            return Err(PeerCallError::Failed(addr.into(), format!("{status}: {text}")));
        }
        codec::decode(&bytes).map_err(|e| PeerCallError::Failed(addr.into(), e.to_string()))
    }
}

/// Makes one [`PeerClient`] per target, as openraft asks.
#[derive(Clone)]
pub struct NetworkFactory {
    pub http: PeerHttp,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerClient {
        PeerClient {
            target,
            node: node.clone(),
            http: self.http.clone(),
        }
    }
}

pub struct PeerClient {
    target: NodeId,
    node: Member,
    http: PeerHttp,
}

impl PeerClient {
    async fn rpc<Req, Resp, E>(
        &self,
        name: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Member, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let res: Result<Resp, RaftError<NodeId, E>> = self
            .http
            .call(&self.node.peer_addr, name, req, option.hard_ttl())
            .await
            .map_err(|e| match e {
                PeerCallError::Unreachable(..) => RPCError::Unreachable(Unreachable::new(&e)),
                PeerCallError::Failed(..) => RPCError::Network(NetworkError::new(&e)),
            })?;
        res.map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.rpc("append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.rpc("snapshot", &crate::snapshot::ChunkOut::of(&rpc), &option)
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.rpc("vote", &rpc, &option).await
    }
}
