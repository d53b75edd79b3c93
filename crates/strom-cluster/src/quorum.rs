//! The metadata quorum on one node: openraft with the durable [`LogStore`] and the
//! image [`StateMachine`], run on a runtime of its own, so elections and heartbeats
//! keep their timing whatever load the broker's I/O threads carry, and so that sync
//! callers (the broker's admin work) can wait on it from any thread without deadlock.
//!
//! A node whose metadata log is empty initializes the quorum with the configured voters
//! (every node may do so: they all propose the same first membership). A zero-config
//! node is a quorum of one voter: itself, and opens no port. A node that is not one of
//! the configured voters joins an existing quorum: it waits, listening, until the
//! leader adds it ([`Quorum::add_voter`]).
//!
//! Any node can propose: a follower forwards the batch to the leader
//! ([`Quorum::propose`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::{BasicNode, SnapshotPolicy};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::active::{self, Heartbeat, HeartbeatReply, Liveness};
use crate::error::{ClusterError, Result};
use crate::network::server::{self, ServerHandle, Service};
use crate::network::{CallError, Identity, Method, NetworkFactory, Peers};
use crate::records::MetadataRecord;
use crate::status::status_of;
pub use crate::status::QuorumStatus;
use crate::storage::{Applied, LogStore, StateMachine};

mod forward;
mod membership;

use crate::types::{Command, NodeId, Raft};
use forward::commit;
use membership::{join_until_member, listen_addr_of};

/// Where the metadata log lives, relative to the data directory (Kafka's name).
pub const METADATA_DIR: &str = "__cluster_metadata-0";
const LOG_FILE: &str = "raft.redb";
/// Snapshots travel in chunks of this size: well under the transport's message limit,
/// and small enough that one chunk never takes long.
const SNAPSHOT_CHUNK_BYTES: u64 = 1 << 20;
/// How long sending one snapshot chunk (the last one includes installing it) may take.
const SNAPSHOT_CHUNK_TIMEOUT_MS: u64 = 10_000;

/// Settings of the metadata quorum on this node.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    pub node_id: NodeId,
    /// The data directory; the quorum keeps its files in [`METADATA_DIR`] under it.
    pub data_dir: PathBuf,
    /// The initial voters: node id → controller address (`host:port`). A fresh node
    /// among them initializes the quorum with them; a node not among them joins an
    /// existing quorum when the leader adds it ([`Quorum::add_voter`]).
    pub voters: BTreeMap<NodeId, String>,
    /// The cluster this node belongs to, if known: peers of another cluster are
    /// refused. Without it, the cluster id committed in the image is used once known.
    pub cluster_id: Option<String>,
    /// Where to serve the quorum's transport; by default this node's address in
    /// `voters` when there is more than one voter (a one-voter quorum opens no port).
    /// Required for a node that is not one of `voters`.
    pub listen: Option<SocketAddr>,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// A snapshot is taken after this many entries since the last one.
    pub snapshot_after_entries: u64,
    /// Entries kept in the log behind a snapshot (followers slightly behind catch up
    /// from the log instead of a snapshot transfer).
    pub entries_kept_after_snapshot: u64,
    /// How long a proposal may wait for its commit.
    pub request_timeout_ms: u64,
    /// `broker.session.timeout.ms`: a broker not heard from for this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// `auto.leader.rebalance.enable` with `leader.imbalance.check.interval.seconds`:
    /// how often the active controller gives leadership back to preferred replicas
    /// (None: never).
    pub leader_rebalance_interval_ms: Option<u64>,
}

impl QuorumConfig {
    /// A quorum of one voter: this node.
    pub fn single(node_id: NodeId, data_dir: impl Into<PathBuf>) -> QuorumConfig {
        QuorumConfig {
            node_id,
            data_dir: data_dir.into(),
            voters: BTreeMap::from([(node_id, String::new())]),
            cluster_id: None,
            listen: None,
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            snapshot_after_entries: 10_000,
            entries_kept_after_snapshot: 1000,
            request_timeout_ms: 30_000,
            broker_session_timeout_ms: 9_000,
            leader_rebalance_interval_ms: Some(300_000),
        }
    }
}

/// The metadata quorum as this node runs it.
pub struct Quorum {
    node_id: NodeId,
    raft: Raft,
    applied: watch::Receiver<Arc<Applied>>,
    handle: tokio::runtime::Handle,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    request_timeout: Duration,
    peers: Arc<Peers>,
    server: Mutex<Option<ServerHandle>>,
    listen_addr: Option<SocketAddr>,
    /// Held through a membership change: one at a time from this node.
    membership_change: Mutex<()>,
    /// Brokers' heartbeats, for the active controller.
    liveness: Arc<Liveness>,
}

impl Quorum {
    /// Opens the metadata log and starts this node's part of the quorum, serving the
    /// transport when the quorum has more than one voter or `listen` is set. Sync:
    /// callable from any thread, inside a tokio runtime or not.
    pub fn start(config: QuorumConfig) -> Result<Arc<Quorum>> {
        let joining = !config.voters.contains_key(&config.node_id);
        if joining && config.listen.is_none() {
            return Err(ClusterError::Config(format!(
                "node {} is not one of the voters {:?} and has no listen address; a node joins \
                 an existing quorum only where the leader can reach it",
                config.node_id,
                config.voters.keys().collect::<Vec<_>>()
            )));
        }
        let listen = match (config.listen, config.voters.get(&config.node_id)) {
            (Some(addr), _) => Some(addr.to_string()),
            (None, Some(addr)) if config.voters.len() > 1 => Some(addr.clone()),
            _ => None,
        };
        let dir = config.data_dir.join(METADATA_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| ClusterError::Storage(format!("{}: {e}", dir.display())))?;
        let log = LogStore::open(&dir.join(LOG_FILE)).map_err(storage)?;
        let state_machine = StateMachine::open(&dir).map_err(storage)?;
        let applied = state_machine.subscribe();
        if let (Some(configured), Some(stored)) = (&config.cluster_id, applied.borrow().image.cluster_id()) {
            if configured != stored {
                return Err(ClusterError::Config(format!(
                    "configured for cluster {configured}, but the metadata in {} is of cluster {stored}",
                    dir.display()
                )));
            }
        }
        let raft_config = openraft::Config {
            cluster_name: "strom".into(),
            heartbeat_interval: config.heartbeat_interval_ms,
            election_timeout_min: config.election_timeout_min_ms,
            election_timeout_max: config.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_after_entries),
            // Keep the log behind a snapshot long enough that purging never races a
            // snapshot being sent (openraft #1706).
            max_in_snapshot_log_to_keep: config.entries_kept_after_snapshot,
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
            install_snapshot_timeout: SNAPSHOT_CHUNK_TIMEOUT_MS,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ClusterError::Config(e.to_string()))?;
        let fresh = log.is_empty().map_err(storage)?;
        let voters: BTreeMap<NodeId, BasicNode> = config
            .voters
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect();
        let node_id = config.node_id;
        let request_timeout = Duration::from_millis(config.request_timeout_ms);
        let identity = Arc::new(Identity::new(node_id, config.cluster_id.clone(), applied.clone()));
        let peers = Arc::new(Peers::new(identity.clone(), config.voters.clone()));
        let network = NetworkFactory::new(peers.clone());
        let peers_for_join = peers.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("strom-quorum")
            .enable_all()
            .build()
            .map_err(|e| ClusterError::Storage(format!("quorum runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let liveness = Arc::new(Liveness::new());
        let session_timeout_ms = config.broker_session_timeout_ms as i64;
        let rebalance_interval_ms = config.leader_rebalance_interval_ms.map(|ms| ms as i64);
        let (task_liveness, task_applied) = (liveness.clone(), applied.clone());
        let started = run_on(&handle, async move {
            // Bound before Raft starts, so a taken address fails the start cleanly.
            let listener = match &listen {
                Some(addr) => Some(
                    server::bind(addr)
                        .await
                        .map_err(|e| ClusterError::Config(format!("cannot listen on {addr}: {e}")))?,
                ),
                None => None,
            };
            let raft = Raft::new(node_id, Arc::new(raft_config), network, log, state_machine)
                .await
                .map_err(|e| ClusterError::Storage(e.to_string()))?;
            let server = match listener {
                Some(listener) => Some(
                    server::serve(
                        listener,
                        Service::new(
                            identity,
                            raft.clone(),
                            request_timeout,
                            task_liveness.clone(),
                            task_applied.clone(),
                        ),
                    )
                    .map_err(|e| ClusterError::Config(format!("cannot serve the quorum: {e}")))?,
                ),
                None => None,
            };
            if fresh && !joining {
                // Every voter may initialize: they all propose the same membership at
                // index 0, so whichever is elected first, the logs agree.
                if let Err(e) = raft.initialize(voters).await {
                    tracing::debug!(error = %e, "quorum already initialized");
                }
            }
            tokio::spawn(active::run(
                node_id,
                raft.clone(),
                task_applied,
                task_liveness,
                active::Timing {
                    session_timeout_ms,
                    rebalance_interval_ms,
                },
            ));
            Ok::<_, ClusterError>((raft, server))
        });
        if let (true, Ok(Ok((raft, _)))) = (joining, &started) {
            let addr = listen_addr_of(&config, &started);
            handle.spawn(join_until_member(
                raft.clone(),
                peers_for_join.clone(),
                node_id,
                addr,
                config.voters.clone(),
            ));
        }
        let (raft, server) = match started {
            Ok(Ok(started)) => started,
            Ok(Err(e)) | Err(e) => {
                // Not dropped in place: the caller may be inside another runtime.
                runtime.shutdown_background();
                return Err(e);
            }
        };
        let listen_addr = server.as_ref().map(|s| s.addr);
        tracing::info!(
            node_id,
            voters = ?config.voters.keys().collect::<Vec<_>>(),
            fresh,
            joining,
            listen = ?listen_addr,
            "metadata quorum started"
        );
        Ok(Arc::new(Quorum {
            node_id,
            raft,
            applied,
            handle,
            runtime: Mutex::new(Some(runtime)),
            request_timeout,
            peers,
            server: Mutex::new(server),
            listen_addr,
            membership_change: Mutex::new(()),
            liveness,
        }))
    }

    /// Where this node serves the quorum's transport (None: a one-voter quorum without
    /// `listen` opens no port).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen_addr
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// What this node has applied so far.
    pub fn applied(&self) -> Arc<Applied> {
        self.applied.borrow().clone()
    }

    /// The applied metadata now and every later change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Applied>> {
        self.applied.clone()
    }

    /// Commits `records` as one batch and returns once this node has applied it, with
    /// the batch's log index. A batch that does not fit the image at its place in the
    /// log is refused ([`ClusterError::Refused`]) and changes nothing. Blocks the calling
    /// thread (the quorum runs on its own runtime, so this is safe anywhere).
    ///
    /// Any node can propose: a follower forwards the batch to the leader and, once the
    /// leader has committed it, waits until it has applied it itself. While no leader is
    /// known or leadership moves it tries again, for up to the request timeout. When the
    /// leader is lost mid-call the outcome is unknown: that is a [`ClusterError::Timeout`]
    /// (the batch may or may not be committed), never a silent retry that could commit
    /// it twice.
    pub fn propose(&self, records: Vec<MetadataRecord>) -> Result<u64> {
        self.propose_within(records, self.request_timeout)
    }

    /// [`Quorum::propose`] that gives up after `timeout` instead of the request timeout
    /// (a shutdown must not wait long for a quorum that may be gone).
    pub fn propose_within(&self, records: Vec<MetadataRecord>, timeout: Duration) -> Result<u64> {
        let raft = self.raft.clone();
        let peers = self.peers.clone();
        let node_id = self.node_id;
        let deadline = Instant::now() + timeout;
        let command = Command { records };
        let (index, forwarded) = run_on(&self.handle, async move {
            commit(&raft, &peers, node_id, command, deadline).await
        })??;
        if forwarded {
            let left = deadline.saturating_duration_since(Instant::now());
            self.wait_applied(index, left)?;
        }
        Ok(index)
    }

    /// A broker's heartbeat, delivered to the active controller (recorded here too, so
    /// a controller that takes over knows who was alive). Answers whether the broker is
    /// fenced now. Blocks the calling thread for at most `timeout`.
    pub fn heartbeat(&self, heartbeat: Heartbeat, timeout: Duration) -> Result<HeartbeatReply> {
        let local = self.liveness.record(heartbeat, &self.applied());
        let metrics = self.raft.metrics().borrow().clone();
        let Some(leader) = metrics.current_leader.filter(|l| *l != self.node_id) else {
            return Ok(local);
        };
        let addr = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| self.peers.raft_address(leader, &n.addr).to_string())
            .ok_or_else(|| {
                ClusterError::NotAvailable(format!("no address for the active controller (node {leader})"))
            })?;
        let peers = self.peers.clone();
        let payload = serde_json::to_vec(&heartbeat).map_err(|e| ClusterError::NotAvailable(e.to_string()))?;
        run_on(&self.handle, async move {
            match peers
                .call(leader, &addr, Method::Heartbeat, payload, Vec::new(), timeout)
                .await
            {
                Ok(bytes) => serde_json::from_slice::<HeartbeatReply>(&bytes)
                    .map_err(|e| ClusterError::NotAvailable(format!("undecodable heartbeat reply: {e}"))),
                Err(CallError::Refused(message)) => Err(ClusterError::PeerRefused(message)),
                Err(e) => Err(ClusterError::NotAvailable(format!(
                    "the active controller (node {leader}) did not take the heartbeat: {e}"
                ))),
            }
        })?
    }

    /// Waits until this node has applied the entry at `index`.
    pub fn wait_applied(&self, index: u64, timeout: Duration) -> Result<Arc<Applied>> {
        let mut applied = self.applied.clone();
        run_on(&self.handle, async move {
            let wait = applied.wait_for(|a| a.index() >= index);
            match tokio::time::timeout(timeout, wait).await {
                Ok(Ok(applied)) => Ok(applied.clone()),
                Ok(Err(_)) => Err(ClusterError::Shutdown),
                Err(_) => Err(ClusterError::Timeout(format!("metadata not applied up to {index}"))),
            }
        })?
    }

    /// Waits until a predicate holds for the applied metadata.
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        predicate: impl Fn(&Applied) -> bool + Send + Sync + 'static,
    ) -> Result<Arc<Applied>> {
        let mut applied = self.applied.clone();
        let what = what.to_string();
        run_on(&self.handle, async move {
            match tokio::time::timeout(timeout, applied.wait_for(|a| predicate(a))).await {
                Ok(Ok(applied)) => Ok(applied.clone()),
                Ok(Err(_)) => Err(ClusterError::Shutdown),
                Err(_) => Err(ClusterError::Timeout(what)),
            }
        })?
    }

    /// Whether this node is the active controller (the quorum's leader) now.
    pub fn is_controller(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.node_id)
    }

    /// The quorum as this node sees it.
    pub fn status(&self) -> QuorumStatus {
        status_of(self.node_id, &self.raft)
    }

    /// The quorum as node `node_id`, at controller address `addr`, sees it. The call is
    /// refused ([`ClusterError::PeerRefused`]) if another node answers at `addr` or that
    /// node is of another cluster.
    pub fn peer_status(&self, node_id: NodeId, addr: &str) -> Result<QuorumStatus> {
        let peers = self.peers.clone();
        let addr = addr.to_owned();
        let timeout = self.request_timeout;
        let reply = run_on(&self.handle, async move {
            peers
                .call(node_id, &addr, Method::Status, Vec::new(), Vec::new(), timeout)
                .await
        })?;
        match reply {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ClusterError::NotAvailable(format!("undecodable status from node {node_id}: {e}"))),
            Err(e) => Err(call_error(node_id, e)),
        }
    }

    /// The quorum as its leader sees it (with every node's replicated index), asked of
    /// the leader when it is another node.
    pub fn leader_status(&self) -> Result<QuorumStatus> {
        let local = self.status();
        let metrics = self.raft.metrics().borrow().clone();
        match local.leader {
            Some(leader) if leader == self.node_id => Ok(local),
            Some(leader) => {
                let addr = metrics
                    .membership_config
                    .membership()
                    .get_node(&leader)
                    .map(|n| self.peers.raft_address(leader, &n.addr).to_string())
                    .ok_or_else(|| ClusterError::NotAvailable(format!("no address for node {leader}")))?;
                self.peer_status(leader, &addr)
            }
            None => Err(ClusterError::NotAvailable("no controller is elected".into())),
        }
    }

    /// Stops this node's part of the quorum and its server; the listening address is
    /// free again when this returns.
    pub fn shutdown(&self) {
        let mut runtime = self.runtime.lock().unwrap_or_else(|p| p.into_inner());
        if runtime.is_none() {
            return;
        }
        let raft = self.raft.clone();
        let server = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        let stopped = run_on(&self.handle, async move {
            let stopped = raft.shutdown().await;
            if let Some(server) = server {
                server.stop().await;
            }
            stopped
        });
        match stopped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "metadata quorum did not stop cleanly"),
            Err(e) => tracing::warn!(error = %e, "metadata quorum did not stop cleanly"),
        }
        if let Some(runtime) = runtime.take() {
            // Not dropped in place: dropping a runtime inside another one panics.
            runtime.shutdown_background();
        }
    }
}

impl Drop for Quorum {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn call_error(node_id: NodeId, e: CallError) -> ClusterError {
    match e {
        CallError::Refused(message) => ClusterError::PeerRefused(message),
        CallError::Timeout => ClusterError::Timeout(format!("node {node_id} did not answer in time")),
        CallError::Unreachable(message) => {
            ClusterError::NotAvailable(format!("node {node_id} is unreachable: {message}"))
        }
        CallError::Network(message) => ClusterError::NotAvailable(format!("node {node_id}: {message}")),
    }
}

fn storage(e: crate::types::StorageError) -> ClusterError {
    ClusterError::Storage(e.to_string())
}

/// Runs `future` on the quorum's runtime and waits for it from this thread.
fn run_on<F>(handle: &tokio::runtime::Handle, future: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv().map_err(|_| ClusterError::Shutdown)
}
