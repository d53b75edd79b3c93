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

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, Fatal, ForwardToLeader, RaftError};
use openraft::raft::ClientWriteResponse;
use openraft::{BasicNode, ChangeMembers, SnapshotPolicy};
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
use crate::types::{Command, NodeId, Raft, TypeConfig};

/// How long a write pending on a node that stopped leading may still be answered.
const DEPOSED_GRACE: Duration = Duration::from_secs(2);

/// How long one Join call may take, and the pause between rounds of asking.
const JOIN_CALL_TIMEOUT: Duration = Duration::from_secs(5);
const JOIN_RETRY: Duration = Duration::from_secs(1);

/// Where the metadata log lives, relative to the data directory (Kafka's name).
pub const METADATA_DIR: &str = "__cluster_metadata-0";
const LOG_FILE: &str = "raft.redb";
/// Snapshots travel in chunks of this size: well under the transport's message limit,
/// and small enough that one chunk never takes long.
const SNAPSHOT_CHUNK_BYTES: u64 = 1 << 20;
/// How long sending one snapshot chunk (the last one includes installing it) may take.
const SNAPSHOT_CHUNK_TIMEOUT_MS: u64 = 10_000;
/// The pause between tries while no leader is known or leadership moves.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

type WriteResult =
    std::result::Result<ClientWriteResponse<TypeConfig>, RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>>;

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
        let peers = Arc::new(Peers::new(identity.clone()));
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
                session_timeout_ms,
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
            .map(|n| n.addr.clone())
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
                    .map(|n| n.addr.clone())
                    .ok_or_else(|| ClusterError::NotAvailable(format!("no address for node {leader}")))?;
                self.peer_status(leader, &addr)
            }
            None => Err(ClusterError::NotAvailable("no controller is elected".into())),
        }
    }

    /// Adds node `node_id`, reachable at `addr` (`host:port`), to the quorum as a voter:
    /// first as a learner, then, once it has caught up with the leader's log, as a voter
    /// (a joint-consensus change). The node must be running (started with `listen` and
    /// not among its configured `voters`, so that it waits to be added). Runs on the
    /// leader only: elsewhere it returns [`ClusterError::NotAvailable`] naming the
    /// leader. Changes are serialized: one at a time from this node, and openraft
    /// refuses a change while another is uncommitted. If the learner does not catch up
    /// within the request timeout this returns [`ClusterError::Timeout`] and it stays a
    /// learner; calling again resumes.
    ///
    /// A node id names one node's log for ever: never add a node under the id of a
    /// removed one (for example a replaced disk); give it a new id.
    pub fn add_voter(&self, node_id: NodeId, addr: &str) -> Result<()> {
        let _one_at_a_time = self.membership_change.lock().unwrap_or_else(|p| p.into_inner());
        self.ensure_leader()?;
        let raft = self.raft.clone();
        let me = self.node_id;
        let addr = addr.to_owned();
        let deadline = Instant::now() + self.request_timeout;
        run_on(&self.handle, async move {
            let membership = raft.metrics().borrow().membership_config.membership().clone();
            match membership.get_node(&node_id) {
                Some(known) if known.addr != addr => {
                    return Err(ClusterError::Config(format!(
                        "node {node_id} is already a member at {}, not {addr}",
                        known.addr
                    )))
                }
                Some(_) if membership.voter_ids().any(|id| id == node_id) => return Ok(()),
                Some(_) => {}
                None => {
                    let add = raft.add_learner(node_id, BasicNode::new(&addr), false);
                    within(deadline, add).await?.map_err(membership_error)?;
                }
            }
            // Caught up: it has everything the leader had once it was a learner. (Should
            // this node lose the leadership meanwhile, the promotion below says so.)
            let target = raft.metrics().borrow().last_log_index;
            let left = deadline.saturating_duration_since(Instant::now());
            raft.wait(Some(left))
                .metrics(
                    |m| {
                        let matched = m.replication.as_ref().and_then(|r| r.get(&node_id).cloned().flatten());
                        m.current_leader != Some(me) || matched.map(|id| id.index) >= target
                    },
                    "the new node catches up",
                )
                .await
                .map_err(|e| ClusterError::Timeout(format!("node {node_id} did not catch up: {e}")))?;
            let promote = raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), false);
            within(deadline, promote).await?.map_err(membership_error)?;
            tracing::info!(node_id, %addr, "added a voter to the metadata quorum");
            Ok(())
        })?
    }

    /// Removes node `node_id` from the quorum (voter or learner); nothing to do if it is
    /// not a member. Runs on the leader only, like [`Quorum::add_voter`]; removing the
    /// leader itself is allowed (it steps down once the change is committed). Its id
    /// must never be used again for another node.
    pub fn remove_voter(&self, node_id: NodeId) -> Result<()> {
        let _one_at_a_time = self.membership_change.lock().unwrap_or_else(|p| p.into_inner());
        self.ensure_leader()?;
        let raft = self.raft.clone();
        let deadline = Instant::now() + self.request_timeout;
        run_on(&self.handle, async move {
            let membership = raft.metrics().borrow().membership_config.membership().clone();
            if membership.get_node(&node_id).is_none() {
                return Ok(());
            }
            let ids = BTreeSet::from([node_id]);
            let change = if membership.voter_ids().any(|id| id == node_id) {
                ChangeMembers::RemoveVoters(ids)
            } else {
                ChangeMembers::RemoveNodes(ids)
            };
            // Not retained as a learner: the leader stops replicating to it.
            within(deadline, raft.change_membership(change, false))
                .await?
                .map_err(membership_error)?;
            tracing::info!(node_id, "removed a node from the metadata quorum");
            Ok(())
        })?
    }

    fn ensure_leader(&self) -> Result<()> {
        match self.raft.metrics().borrow().current_leader {
            Some(leader) if leader == self.node_id => Ok(()),
            Some(leader) => Err(ClusterError::NotAvailable(format!(
                "node {leader} is the active controller; membership changes run there"
            ))),
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

/// Commits `command` here if this node leads, or forwards it to the leader. Returns the
/// entry's index and whether it was forwarded.
async fn commit(
    raft: &Raft,
    peers: &Peers,
    node_id: NodeId,
    command: Command,
    deadline: Instant,
) -> Result<(u64, bool)> {
    let mut why = String::from("no controller is elected");
    loop {
        let local = within(deadline, write_while_leading(raft, node_id, command.clone())).await??;
        let forward = match local {
            Ok(response) => return committed(response).map(|index| (index, false)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => forward,
            Err(RaftError::Fatal(Fatal::Stopped)) => return Err(ClusterError::Shutdown),
            Err(e) => return Err(ClusterError::NotAvailable(e.to_string())),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ClusterError::NotAvailable(why));
        }
        if let Some((leader, addr)) = leader_of(raft, node_id, forward) {
            let payload = serde_json::to_vec(&command)
                .map_err(|e| ClusterError::NotAvailable(format!("encode the batch: {e}")))?;
            match peers
                .call(leader, &addr, Method::Propose, payload, Vec::new(), left)
                .await
            {
                Ok(bytes) => match serde_json::from_slice::<WriteResult>(&bytes) {
                    Ok(Ok(response)) => return committed(response).map(|index| (index, true)),
                    // Leadership moved: the leader did not take the batch; try again.
                    Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                        why = format!("node {leader} is no longer the active controller");
                    }
                    // It may have appended the batch before it stopped.
                    Ok(Err(RaftError::Fatal(e))) => {
                        return Err(ClusterError::Timeout(format!(
                            "the active controller (node {leader}) stopped mid-proposal ({e}); the batch may or \
                             may not be committed"
                        )))
                    }
                    Ok(Err(e)) => return Err(ClusterError::NotAvailable(format!("node {leader}: {e}"))),
                    Err(e) => {
                        return Err(ClusterError::Timeout(format!(
                            "undecodable answer from the active controller (node {leader}); the batch may or may \
                             not be committed: {e}"
                        )))
                    }
                },
                // Not delivered: safe to try again, perhaps at a new leader.
                Err(CallError::Unreachable(message)) => {
                    why = format!("the active controller (node {leader}) is unreachable: {message}");
                }
                Err(CallError::Refused(message)) => return Err(ClusterError::PeerRefused(message)),
                Err(e) => {
                    return Err(ClusterError::Timeout(format!(
                        "lost the active controller (node {leader}) mid-proposal; the batch may or may not be \
                         committed: {e}"
                    )))
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ClusterError::NotAvailable(why));
        }
        tokio::time::sleep(RETRY_PAUSE.min(left)).await;
    }
}

fn committed(response: ClientWriteResponse<TypeConfig>) -> Result<u64> {
    response.data.outcome?;
    Ok(response.log_id.index)
}

/// The leader to forward to, other than this node, with its address: from the
/// refusal, else from this node's metrics and membership.
fn leader_of(raft: &Raft, node_id: NodeId, forward: ForwardToLeader<NodeId, BasicNode>) -> Option<(NodeId, String)> {
    let metrics = raft.metrics().borrow().clone();
    let leader = forward
        .leader_id
        .or(metrics.current_leader)
        .filter(|id| *id != node_id)?;
    let addr = match forward.leader_node {
        Some(node) if forward.leader_id == Some(leader) => node.addr,
        _ => metrics.membership_config.membership().get_node(&leader)?.addr.clone(),
    };
    Some((leader, addr))
}

/// `future`'s output, or a timeout once `deadline` passes.
/// A local write, given up when this node stops leading before it is answered: a
/// batch appended by a leader that is then replaced may never be answered (openraft
/// answers writes whose entries are truncated, not those a snapshot from the new leader
/// replaces). The outcome is then unknown.
async fn write_while_leading(raft: &Raft, node_id: NodeId, command: Command) -> Result<WriteResult> {
    let mut metrics = raft.metrics();
    let deposed = async {
        loop {
            let leader = metrics.borrow_and_update().current_leader;
            if leader.is_some_and(|l| l != node_id) {
                // Time for the usual answer (ForwardToLeader on truncation) first.
                tokio::time::sleep(DEPOSED_GRACE).await;
                return;
            }
            if metrics.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        written = raft.client_write(command) => Ok(written),
        () = deposed => Err(ClusterError::Timeout(
            "this node stopped leading the quorum while the batch was pending; it may or may not be committed".into(),
        )),
    }
}

async fn within<F: Future>(deadline: Instant, future: F) -> Result<F::Output> {
    tokio::time::timeout_at(deadline, future)
        .await
        .map_err(|_| ClusterError::Timeout("the metadata quorum did not answer in time".into()))
}

fn membership_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> ClusterError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            ClusterError::NotAvailable(match forward.leader_id {
                Some(leader) => format!("node {leader} is the active controller now; membership changes run there"),
                None => "no controller is elected".into(),
            })
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(e))) => {
            ClusterError::NotAvailable(format!("another membership change is in progress: {e}"))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => ClusterError::Config(e.to_string()),
        RaftError::Fatal(e) => ClusterError::NotAvailable(e.to_string()),
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

/// The address a joining node gives the leader: its listen address.
fn listen_addr_of(config: &QuorumConfig, started: &Result<Result<(Raft, Option<ServerHandle>)>>) -> String {
    match started {
        Ok(Ok((_, Some(server)))) => server.addr.to_string(),
        _ => config.listen.map(|a| a.to_string()).unwrap_or_default(),
    }
}

/// A node outside the voters asks them, in turn, to take it in as a learner, until it
/// is a member: it then receives the log (a broker-only node stays a learner; a
/// future voter is promoted by `add_voter`).
async fn join_until_member(
    raft: Raft,
    peers: Arc<Peers>,
    node_id: NodeId,
    addr: String,
    voters: BTreeMap<NodeId, String>,
) {
    let join = match serde_json::to_vec(&crate::network::Join { node_id, addr }) {
        Ok(join) => join,
        Err(_) => return,
    };
    loop {
        let is_member = {
            let metrics = raft.metrics();
            let metrics = metrics.borrow();
            metrics.membership_config.membership().get_node(&node_id).is_some()
        };
        if is_member {
            return;
        }
        for (voter, voter_addr) in &voters {
            let reply = peers
                .call(
                    *voter,
                    voter_addr,
                    Method::Join,
                    join.clone(),
                    Vec::new(),
                    JOIN_CALL_TIMEOUT,
                )
                .await;
            if let Ok(bytes) = reply {
                if let Ok(Ok(())) = serde_json::from_slice::<std::result::Result<(), String>>(&bytes) {
                    tracing::info!(node_id, leader = voter, "joined the metadata quorum as a learner");
                    break;
                }
            }
        }
        tokio::time::sleep(JOIN_RETRY).await;
        if raft.metrics().has_changed().is_err() {
            return;
        }
    }
}
