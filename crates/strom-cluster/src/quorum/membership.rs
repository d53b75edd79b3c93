//! Membership: voters added (as a learner first, promoted once caught up) and removed
//! on the leader, one change at a time; nodes outside the voters joining as learners.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use tokio::time::Instant;

use super::forward::within;
use super::{run_on, Quorum, QuorumConfig};
use crate::error::{ClusterError, Result};
use crate::network::server::ServerHandle;
use crate::network::{Method, Peers};
use crate::types::{NodeId, Raft};

/// How long one Join call may take, and the pause between rounds of asking.
const JOIN_CALL_TIMEOUT: Duration = Duration::from_secs(5);
const JOIN_RETRY: Duration = Duration::from_secs(1);

impl Quorum {
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

/// The address a joining node gives the leader: its listen address.
pub(super) fn listen_addr_of(config: &QuorumConfig, started: &Result<Result<(Raft, Option<ServerHandle>)>>) -> String {
    match started {
        Ok(Ok((_, Some(server)))) => server.addr.to_string(),
        _ => config.listen.map(|a| a.to_string()).unwrap_or_default(),
    }
}

/// A node outside the voters asks them, in turn, to take it in as a learner, until it
/// is a member: it then receives the log (a broker-only node stays a learner; a
/// future voter is promoted by `add_voter`).
pub(super) async fn join_until_member(
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
