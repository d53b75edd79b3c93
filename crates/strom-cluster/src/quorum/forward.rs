//! Proposals: a batch is committed here when this node leads, else forwarded to the
//! leader over the transport, retried only when it surely did not land.

use std::future::Future;
use std::time::Duration;

use openraft::error::{ClientWriteError, Fatal, ForwardToLeader, RaftError};
use openraft::raft::ClientWriteResponse;
use openraft::BasicNode;
use tokio::time::Instant;

use crate::error::{ClusterError, Result};
use crate::network::{CallError, Method, Peers};
use crate::types::{Command, NodeId, Raft, TypeConfig};

/// The pause between tries while no leader is known or leadership moves.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// How long a write pending on a node that stopped leading may still be answered.
const DEPOSED_GRACE: Duration = Duration::from_secs(2);

pub(crate) type WriteResult =
    std::result::Result<ClientWriteResponse<TypeConfig>, RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>>;

/// Commits `command` here if this node leads, or forwards it to the leader. Returns the
/// entry's index and whether it was forwarded.
pub(super) async fn commit(
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
            let addr = peers.raft_address(leader, &addr);
            match peers
                .call(leader, addr, Method::Propose, payload, Vec::new(), left)
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

/// `future`'s output, or a timeout once `deadline` passes.
pub(super) async fn within<F: Future>(deadline: Instant, future: F) -> Result<F::Output> {
    tokio::time::timeout_at(deadline, future)
        .await
        .map_err(|_| ClusterError::Timeout("the metadata quorum did not answer in time".into()))
}
