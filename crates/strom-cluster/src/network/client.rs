//! The calling side: one lazily connected gRPC channel per peer, shared by openraft's
//! replication and election clients and by this node's own calls (forwarded proposals,
//! a peer's status).

use std::collections::BTreeMap;
use std::error::Error as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{AnyError, BasicNode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use super::proto::quorum_client::QuorumClient;
use super::{Identity, MAX_MESSAGE_BYTES};
use crate::types::{NodeId, TypeConfig};

/// How long connecting to a peer may take; a dead peer must not hold up an election.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The RPCs of the `Quorum` service.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Method {
    AppendEntries,
    Vote,
    InstallSnapshot,
    Propose,
    Status,
    Heartbeat,
    Join,
}

/// Why a call failed, by what it says about delivery.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The peer refused the envelope (another node id, another cluster), or a
    /// different node answered: a configuration error, not a passing failure.
    Refused(String),
    /// No connection could be made: the call was not delivered.
    Unreachable(String),
    /// The call failed after it may have been delivered.
    Network(String),
    /// No answer in time; it may have been delivered.
    Timeout,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Refused(m) => write!(f, "refused: {m}"),
            CallError::Unreachable(m) => write!(f, "unreachable: {m}"),
            CallError::Network(m) => write!(f, "network error: {m}"),
            CallError::Timeout => f.write_str("no answer in time"),
        }
    }
}

/// This node's channels to its peers, by node id.
pub(crate) struct Peers {
    identity: Arc<Identity>,
    channels: Mutex<BTreeMap<NodeId, (String, Channel)>>,
    /// Peers' addresses as this node's `controller.quorum.voters` says: they win over
    /// the addresses in the replicated membership, which another node wrote from its
    /// own configuration (each node may reach a peer by another route: a proxy, NAT).
    configured: BTreeMap<NodeId, String>,
}

impl Peers {
    pub fn new(identity: Arc<Identity>, configured: BTreeMap<NodeId, String>) -> Peers {
        let configured = configured.into_iter().filter(|(_, addr)| !addr.is_empty()).collect();
        Peers {
            identity,
            channels: Mutex::new(BTreeMap::new()),
            configured,
        }
    }

    pub fn node_id(&self) -> NodeId {
        self.identity.node_id
    }

    /// The channel to `target` at `addr`, made (unconnected) on first use. Must run on
    /// the quorum's runtime: the channel's worker is spawned there.
    /// Where Raft's messages to `target` go: this node's configured address for it, else
    /// `membership_addr` (from the replicated membership).
    pub(crate) fn raft_address<'a>(&'a self, target: NodeId, membership_addr: &'a str) -> &'a str {
        self.configured.get(&target).map_or(membership_addr, String::as_str)
    }

    fn channel(&self, target: NodeId, addr: &str) -> Result<Channel, CallError> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known, channel)) = channels.get(&target) {
            if known == addr {
                return Ok(channel.clone());
            }
        }
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| CallError::Unreachable(format!("bad address {addr:?} for node {target}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(target, (addr.to_owned(), channel.clone()));
        Ok(channel)
    }

    /// Sends one call to `target` at `addr` and returns the reply's payload.
    pub async fn call(
        &self,
        target: NodeId,
        addr: &str,
        method: Method,
        payload: Vec<u8>,
        data: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let mut client = QuorumClient::new(self.channel(target, addr)?).max_decoding_message_size(MAX_MESSAGE_BYTES);
        let mut request = tonic::Request::new(self.identity.envelope(target, payload, data));
        request.set_timeout(timeout);
        let call = async {
            match method {
                Method::AppendEntries => client.append_entries(request).await,
                Method::Vote => client.vote(request).await,
                Method::InstallSnapshot => client.install_snapshot(request).await,
                Method::Propose => client.propose(request).await,
                Method::Status => client.status(request).await,
                Method::Heartbeat => client.heartbeat(request).await,
                Method::Join => client.join(request).await,
            }
        };
        let reply = match tokio::time::timeout(timeout, call).await {
            Err(_) => return Err(CallError::Timeout),
            Ok(Err(status)) => return Err(classify(&status)),
            Ok(Ok(reply)) => reply.into_inner(),
        };
        if reply.from_node != target {
            return Err(CallError::Refused(format!(
                "{addr} answered as node {}, not node {target}",
                reply.from_node
            )));
        }
        Ok(reply.payload)
    }
}

fn classify(status: &tonic::Status) -> CallError {
    match status.code() {
        Code::FailedPrecondition => CallError::Refused(status.message().to_owned()),
        Code::DeadlineExceeded => CallError::Timeout,
        Code::Unavailable if not_connected(status) => CallError::Unreachable(describe(status)),
        _ => CallError::Network(describe(status)),
    }
}

/// Whether the channel never got a connection, so the call was not sent: tonic reports
/// a failed connect as `Unavailable` with a `ConnectError` among the sources. (Anything
/// else, a reset connection included, may come after the call was delivered.)
fn not_connected(status: &tonic::Status) -> bool {
    let mut source = status.source();
    while let Some(error) = source {
        let refused = error
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
        if refused || error.is::<tonic::ConnectError>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// The status with its sources (tonic's own message alone is often just "transport
/// error"), each said once: the layers often repeat their source's text.
fn describe(status: &tonic::Status) -> String {
    let mut text = status.message().to_owned();
    let mut source = status.source();
    while let Some(error) = source {
        let said = error.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = error.source();
    }
    text
}

/// Makes a client per peer; all of them share this node's channels.
pub struct NetworkFactory {
    peers: Arc<Peers>,
}

impl NetworkFactory {
    pub(crate) fn new(peers: Arc<Peers>) -> NetworkFactory {
        NetworkFactory { peers }
    }
}

/// openraft's client to one peer controller.
pub struct PeerClient {
    peers: Arc<Peers>,
    target: NodeId,
    node: BasicNode,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            peers: self.peers.clone(),
            target,
            node: node.clone(),
        }
    }
}

type RpcResult<T, E = openraft::error::Infallible> = Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl PeerClient {
    /// Sends `rpc` and decodes the peer's `Result<Resp, RaftError<E>>`, so that the
    /// peer's Raft errors come back as `RemoteError`.
    async fn send<Req, Resp, E>(
        &self,
        action: RPCTypes,
        method: Method,
        rpc: &Req,
        data: Vec<u8>,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let payload = serde_json::to_vec(rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let timeout = option.hard_ttl();
        let addr = self.peers.raft_address(self.target, &self.node.addr);
        let reply = self.peers.call(self.target, addr, method, payload, data, timeout).await;
        let bytes = match reply {
            Ok(bytes) => bytes,
            Err(CallError::Refused(message)) => {
                tracing::warn!(peer = self.target, %addr, %message, "peer controller refused the call");
                return Err(RPCError::Unreachable(Unreachable::new(&AnyError::error(message))));
            }
            Err(CallError::Unreachable(message)) => {
                return Err(RPCError::Unreachable(Unreachable::new(&AnyError::error(message))))
            }
            Err(CallError::Network(message)) => {
                return Err(RPCError::Network(NetworkError::new(&AnyError::error(message))))
            }
            Err(CallError::Timeout) => {
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: self.peers.node_id(),
                    target: self.target,
                    timeout,
                }))
            }
        };
        match serde_json::from_slice::<Result<Resp, RaftError<NodeId, E>>>(&bytes) {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(remote)) => Err(RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                remote,
            ))),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        self.send(
            RPCTypes::AppendEntries,
            Method::AppendEntries,
            &rpc,
            Vec::new(),
            &option,
        )
        .await
    }

    async fn install_snapshot(
        &mut self,
        mut rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        // The chunk travels as protobuf bytes: as JSON it would be an array of numbers.
        let data = std::mem::take(&mut rpc.data);
        self.send(RPCTypes::InstallSnapshot, Method::InstallSnapshot, &rpc, data, &option)
            .await
    }

    async fn vote(&mut self, rpc: VoteRequest<NodeId>, option: RPCOption) -> RpcResult<VoteResponse<NodeId>> {
        self.send(RPCTypes::Vote, Method::Vote, &rpc, Vec::new(), &option).await
    }
}
