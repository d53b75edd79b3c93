//! The quorum as one node's Raft sees it: [`QuorumStatus`], answered locally, over the
//! transport's Status call, and by DescribeQuorum.

use std::collections::BTreeMap;

use crate::types::{NodeId, Raft};

/// The quorum as one node sees it (`strom cluster status`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuorumStatus {
    pub node_id: NodeId,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_log_index: u64,
    pub last_applied: u64,
    pub snapshot_index: u64,
    /// The last index removed from the log behind a snapshot (0: none); a node behind
    /// it catches up by a snapshot transfer.
    pub purged_index: u64,
    pub voters: Vec<NodeId>,
    /// Members that receive the log but do not vote (a node being added).
    pub learners: Vec<NodeId>,
    /// On the leader: each node's last replicated index.
    pub replication: BTreeMap<NodeId, u64>,
}

/// The quorum as the local Raft sees it.
pub(crate) fn status_of(node_id: NodeId, raft: &Raft) -> QuorumStatus {
    let metrics = raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    QuorumStatus {
        node_id,
        leader: metrics.current_leader,
        term: metrics.current_term,
        last_log_index: metrics.last_log_index.unwrap_or(0),
        last_applied: metrics.last_applied.map_or(0, |id| id.index),
        snapshot_index: metrics.snapshot.map_or(0, |id| id.index),
        purged_index: metrics.purged.map_or(0, |id| id.index),
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
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
