//! The metadata quorum on one node: openraft with the durable [`LogStore`] and the
//! image [`StateMachine`], run on a runtime of its own, so elections and heartbeats
//! keep their timing whatever load the broker's I/O threads carry, and so that sync
//! callers (the broker's admin work) can wait on it from any thread without deadlock.
//!
//! A node whose metadata log is empty initializes the quorum with the configured voters
//! (every node may do so: they all propose the same first membership). A zero-config
//! node is a quorum of one voter: itself.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, SnapshotPolicy};
use tokio::sync::watch;

use crate::error::{ClusterError, Result};
use crate::network::NetworkFactory;
use crate::records::MetadataRecord;
use crate::storage::{Applied, LogStore, StateMachine};
use crate::types::{Command, NodeId, Raft};

/// Where the metadata log lives, relative to the data directory (Kafka's name).
pub const METADATA_DIR: &str = "__cluster_metadata-0";
const LOG_FILE: &str = "raft.redb";

/// Settings of the metadata quorum on this node.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    pub node_id: NodeId,
    /// The data directory; the quorum keeps its files in [`METADATA_DIR`] under it.
    pub data_dir: PathBuf,
    /// The voters: node id → controller address (`host:port`).
    pub voters: BTreeMap<NodeId, String>,
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
}

impl QuorumConfig {
    /// A quorum of one voter: this node.
    pub fn single(node_id: NodeId, data_dir: impl Into<PathBuf>) -> QuorumConfig {
        QuorumConfig {
            node_id,
            data_dir: data_dir.into(),
            voters: BTreeMap::from([(node_id, String::new())]),
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            snapshot_after_entries: 10_000,
            entries_kept_after_snapshot: 1000,
            request_timeout_ms: 30_000,
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
}

impl Quorum {
    /// Opens the metadata log and starts this node's part of the quorum. Sync: callable
    /// from any thread, inside a tokio runtime or not.
    pub fn start(config: QuorumConfig) -> Result<Arc<Quorum>> {
        if !config.voters.contains_key(&config.node_id) {
            return Err(ClusterError::Config(format!(
                "node {} is not one of the voters {:?}; only voters run the metadata quorum",
                config.node_id,
                config.voters.keys().collect::<Vec<_>>()
            )));
        }
        let dir = config.data_dir.join(METADATA_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| ClusterError::Storage(format!("{}: {e}", dir.display())))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("strom-quorum")
            .enable_all()
            .build()
            .map_err(|e| ClusterError::Storage(format!("quorum runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let log = LogStore::open(&dir.join(LOG_FILE)).map_err(storage)?;
        let state_machine = StateMachine::open(&dir).map_err(storage)?;
        let applied = state_machine.subscribe();
        let raft_config = openraft::Config {
            cluster_name: "strom".into(),
            heartbeat_interval: config.heartbeat_interval_ms,
            election_timeout_min: config.election_timeout_min_ms,
            election_timeout_max: config.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_after_entries),
            // Keep the log behind a snapshot long enough that purging never races a
            // snapshot being sent (openraft #1706).
            max_in_snapshot_log_to_keep: config.entries_kept_after_snapshot,
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
        let raft = run_on(&handle, async move {
            let raft = Raft::new(node_id, Arc::new(raft_config), NetworkFactory, log, state_machine)
                .await
                .map_err(|e| ClusterError::Storage(e.to_string()))?;
            if fresh {
                // Every voter may initialize: they all propose the same membership at
                // index 0, so whichever is elected first, the logs agree.
                if let Err(e) = raft.initialize(voters).await {
                    tracing::debug!(error = %e, "quorum already initialized");
                }
            }
            Ok::<_, ClusterError>(raft)
        })??;
        tracing::info!(node_id, voters = ?config.voters.keys().collect::<Vec<_>>(), fresh, "metadata quorum started");
        Ok(Arc::new(Quorum {
            node_id,
            raft,
            applied,
            handle,
            runtime: Mutex::new(Some(runtime)),
            request_timeout: Duration::from_millis(config.request_timeout_ms),
        }))
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
    pub fn propose(&self, records: Vec<MetadataRecord>) -> Result<u64> {
        let raft = self.raft.clone();
        let timeout = self.request_timeout;
        run_on(&self.handle, async move {
            let write = tokio::time::timeout(timeout, raft.client_write(Command { records }))
                .await
                .map_err(|_| ClusterError::Timeout("the batch was not committed in time".into()))?;
            match write {
                Ok(response) => {
                    response.data.outcome?;
                    Ok(response.log_id.index)
                }
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                    Err(ClusterError::NotAvailable(match forward.leader_id {
                        Some(leader) => format!("node {leader} is the active controller"),
                        None => "no controller is elected".into(),
                    }))
                }
                Err(e) => Err(ClusterError::NotAvailable(e.to_string())),
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
        let metrics = self.raft.metrics().borrow().clone();
        QuorumStatus {
            node_id: self.node_id,
            leader: metrics.current_leader,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            last_applied: metrics.last_applied.map_or(0, |id| id.index),
            snapshot_index: metrics.snapshot.map_or(0, |id| id.index),
            voters: metrics.membership_config.membership().voter_ids().collect(),
            replication: metrics
                .replication
                .map(|r| {
                    r.into_iter()
                        .map(|(id, matched)| (id, matched.map_or(0, |m| m.index)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Stops this node's part of the quorum and closes its files (a later start in
    /// this process can open them again). Idempotent; also done on drop.
    pub fn shutdown(&self) {
        let mut runtime = self.runtime.lock().unwrap_or_else(|p| p.into_inner());
        if runtime.is_none() {
            return;
        }
        let raft = self.raft.clone();
        if let Err(e) = run_on(&self.handle, async move { raft.shutdown().await }) {
            tracing::warn!(error = %e, "metadata quorum did not stop cleanly");
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

/// The quorum as one node sees it (`strom cluster status`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuorumStatus {
    pub node_id: NodeId,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_log_index: u64,
    pub last_applied: u64,
    pub snapshot_index: u64,
    pub voters: Vec<NodeId>,
    /// On the leader: each node's last replicated index.
    pub replication: BTreeMap<NodeId, u64>,
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
