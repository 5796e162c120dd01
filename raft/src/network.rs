//! The peer network, client side: openraft's RPCs (append, vote, chunked snapshot) as HTTP
//! POSTs of bincode bodies to `http://<peer_addr>/raft/rpc/<name>`, authenticated by the
//! cluster secret in the `x-hekate-secret` header. See [`crate::service`] for the server.

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

/// An HTTP client for peer RPCs, shared by all connections of a replica.
#[derive(Clone)]
pub struct PeerHttp {
    http: reqwest::Client,
    secret: Arc<str>,
}

impl PeerHttp {
    pub fn new(secret: &str) -> PeerHttp {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        PeerHttp {
            http,
            secret: Arc::from(secret),
        }
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
        let url = format!("http://{addr}{RPC_PREFIX}/{name}");
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
        self.rpc("snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.rpc("vote", &rpc, &option).await
    }
}
