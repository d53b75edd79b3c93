//! The serving side: every controller of a multi-voter quorum serves the `Quorum`
//! service on its controller address, on the quorum's runtime. Each call's envelope is
//! checked first; only then does its payload reach the local Raft.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use super::proto::quorum_server::{Quorum as QuorumRpc, QuorumServer};
use super::proto::{Call, Reply};
use super::{Identity, Join, MAX_MESSAGE_BYTES};
use tokio::sync::watch;

use crate::active::{Heartbeat, Liveness};
use crate::status::status_of;
use crate::storage::Applied;
use crate::types::{Command, Raft, TypeConfig};

/// How long a stopping server may take to finish the calls in flight.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// The `Quorum` service of one node.
pub(crate) struct Service {
    identity: Arc<Identity>,
    raft: Raft,
    request_timeout: Duration,
    liveness: Arc<Liveness>,
    applied: watch::Receiver<Arc<Applied>>,
}

impl Service {
    pub fn new(
        identity: Arc<Identity>,
        raft: Raft,
        request_timeout: Duration,
        liveness: Arc<Liveness>,
        applied: watch::Receiver<Arc<Applied>>,
    ) -> Service {
        Service {
            identity,
            raft,
            request_timeout,
            liveness,
            applied,
        }
    }

    /// The call, if its envelope is for this node and this cluster.
    fn admit(&self, request: Request<Call>) -> Result<Call, Status> {
        let call = request.into_inner();
        match self.identity.refusal(&call) {
            None => Ok(call),
            Some(message) => {
                tracing::info!(from = call.from_node, %message, "refused a quorum call");
                Err(Status::failed_precondition(message))
            }
        }
    }

    fn reply<T: Serialize>(&self, response: &T) -> Result<Response<Reply>, Status> {
        let payload = serde_json::to_vec(response).map_err(|e| Status::internal(format!("encode the reply: {e}")))?;
        Ok(Response::new(Reply {
            from_node: self.identity.node_id,
            payload,
        }))
    }
}

fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(payload).map_err(|e| Status::invalid_argument(format!("undecodable payload: {e}")))
}

#[tonic::async_trait]
impl QuorumRpc for Service {
    async fn append_entries(&self, request: Request<Call>) -> Result<Response<Reply>, Status> {
        let call = self.admit(request)?;
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&call.payload)?;
        self.reply(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<Call>) -> Result<Response<Reply>, Status> {
        let call = self.admit(request)?;
        let rpc: VoteRequest<u64> = decode(&call.payload)?;
        self.reply(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, request: Request<Call>) -> Result<Response<Reply>, Status> {
        let call = self.admit(request)?;
        let mut rpc: InstallSnapshotRequest<TypeConfig> = decode(&call.payload)?;
        rpc.data = call.data;
        self.reply(&self.raft.install_snapshot(rpc).await)
    }

    /// Commits a batch proposed on another node. This node does not forward it again:
    /// if it is not the leader, the caller gets `ForwardToLeader` and retries there.
    async fn propose(&self, request: Request<Call>) -> Result<Response<Reply>, Status> {
        let call = self.admit(request)?;
        let command: Command = decode(&call.payload)?;
        match tokio::time::timeout(self.request_timeout, self.raft.client_write(command)).await {
            Ok(result) => self.reply(&result),
            Err(_) => Err(Status::deadline_exceeded("the batch was not committed in time")),
        }
    }

    async fn status(&self, request: Request<Call>) -> Result<Response<Reply>, Status> {
        self.admit(request)?;
        self.reply(&status_of(self.identity.node_id, &self.raft))
    }

    /// Adds the caller as a learner (it then receives the log), on the leader only.
    async fn join(&self, request: Request<Call>) -> Result<Response<Reply>, Status> {
        let call = self.admit(request)?;
        let join: Join = decode(&call.payload)?;
        if join.node_id != call.from_node {
            return Err(Status::invalid_argument("a node joins only as itself"));
        }
        let metrics = self.raft.metrics().borrow().clone();
        let outcome: Result<(), String> = if metrics.current_leader != Some(self.identity.node_id) {
            Err(format!("node {} does not lead the quorum", self.identity.node_id))
        } else if metrics.membership_config.membership().get_node(&join.node_id).is_some() {
            Ok(())
        } else {
            match tokio::time::timeout(
                self.request_timeout,
                self.raft
                    .add_learner(join.node_id, openraft::BasicNode::new(&join.addr), false),
            )
            .await
            {
                Ok(Ok(_)) => {
                    tracing::info!(node_id = join.node_id, addr = %join.addr, "a node joined the metadata quorum as a learner");
                    Ok(())
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out adding the learner".into()),
            }
        };
        self.reply(&outcome)
    }

    /// Recorded whether or not this node leads now: should it become the active
    /// controller, it then knows who was alive.
    async fn heartbeat(&self, request: Request<Call>) -> Result<Response<Reply>, Status> {
        let call = self.admit(request)?;
        let heartbeat: Heartbeat = decode(&call.payload)?;
        let applied = self.applied.borrow().clone();
        self.reply(&self.liveness.record(heartbeat, &applied))
    }
}

/// A running server.
pub(crate) struct ServerHandle {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Binds `addr` (`host:port`).
pub(crate) async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `service` on `listener`; must run on the quorum's runtime.
pub(crate) fn serve(listener: TcpListener, service: Service) -> std::io::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let service = QuorumServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let task = tokio::spawn(async move {
        let server = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            });
        if let Err(e) = server.await {
            tracing::error!(%addr, error = %e, "quorum server failed");
        }
    });
    tracing::info!(%addr, "quorum server listening");
    Ok(ServerHandle { addr, stop, task })
}

impl ServerHandle {
    /// Stops serving and closes the listening socket before returning, so the address
    /// can be bound again at once (a restart in the same process).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
        }
    }
}
