//! The quorum's transport between controllers: gRPC (tonic) with openraft's own serde
//! types as JSON inside small protobuf envelopes (`proto/quorum.proto`).
//!
//! Every call carries an envelope (sender, intended receiver, cluster id) that the
//! receiver checks before anything reaches Raft: a call meant for another node id, or
//! from a node of another cluster, is refused (design rule: every connection verifies
//! the peer's node id). The caller checks in turn that the node that answered is the
//! one it meant to reach.
//!
//! - `client`: the openraft network (one [`PeerClient`] per peer) and the calls a
//!   node makes itself (forwarded proposals, a peer's status).
//! - `server`: the service every controller of a multi-voter quorum serves.

mod client;
pub(crate) mod server;

use std::sync::Arc;

use tokio::sync::watch;

pub(crate) use client::{CallError, Method, Peers};
pub use client::{NetworkFactory, PeerClient};

use crate::storage::Applied;
use crate::types::NodeId;

#[allow(clippy::all, clippy::pedantic, missing_docs)]
mod proto {
    tonic::include_proto!("strom.quorum.v1");
}

/// A node outside the voters asking to receive the metadata log (the `Join` call).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Join {
    pub node_id: u64,
    /// Where the leader reaches it: its controller listener.
    pub addr: String,
}

/// Largest gRPC message either side accepts: above tonic's 4 MiB default, so an
/// append of many large batches (openraft sends up to `max_payload_entries`) fits.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Who this node is, as its envelopes say and as it checks others' envelopes.
pub(crate) struct Identity {
    pub node_id: NodeId,
    configured_cluster_id: Option<String>,
    applied: watch::Receiver<Arc<Applied>>,
}

impl Identity {
    pub fn new(
        node_id: NodeId,
        configured_cluster_id: Option<String>,
        applied: watch::Receiver<Arc<Applied>>,
    ) -> Identity {
        Identity {
            node_id,
            configured_cluster_id,
            applied,
        }
    }

    /// The cluster id this node knows: configured, or else committed in the image.
    pub fn cluster_id(&self) -> Option<String> {
        self.configured_cluster_id
            .clone()
            .or_else(|| self.applied.borrow().image.cluster_id().map(str::to_owned))
    }

    fn envelope(&self, to_node: NodeId, payload: Vec<u8>, data: Vec<u8>) -> proto::Call {
        proto::Call {
            from_node: self.node_id,
            to_node,
            cluster_id: self.cluster_id().unwrap_or_default(),
            payload,
            data,
        }
    }

    /// Why this node refuses `call`, if it does: it is meant for another node, or it
    /// comes from another cluster (an empty cluster id is a sender that does not know
    /// its cluster yet, and passes).
    fn refusal(&self, call: &proto::Call) -> Option<String> {
        if call.to_node != self.node_id {
            return Some(format!(
                "this is node {}, not node {} (call from node {})",
                self.node_id, call.to_node, call.from_node
            ));
        }
        match self.cluster_id() {
            Some(ours) if !call.cluster_id.is_empty() && call.cluster_id != ours => Some(format!(
                "node {} is in cluster {ours}, not {} (call from node {})",
                self.node_id, call.cluster_id, call.from_node
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(configured: Option<&str>) -> Identity {
        let (_, applied) = watch::channel(Arc::new(Applied::default()));
        Identity::new(2, configured.map(str::to_owned), applied)
    }

    fn call(to_node: NodeId, cluster_id: &str) -> proto::Call {
        proto::Call {
            from_node: 1,
            to_node,
            cluster_id: cluster_id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_envelope_names_this_node_and_this_cluster() {
        let known = identity(Some("alpha"));
        assert_eq!(known.refusal(&call(2, "alpha")), None);
        // A sender that does not know its cluster yet passes.
        assert_eq!(known.refusal(&call(2, "")), None);
        let other_cluster = known.refusal(&call(2, "beta")).unwrap();
        assert!(other_cluster.contains("not beta"), "{other_cluster}");
        let other_node = known.refusal(&call(3, "alpha")).unwrap();
        assert!(other_node.contains("not node 3"), "{other_node}");
        // A node that does not know its cluster checks only the node id.
        let unknown = identity(None);
        assert_eq!(unknown.refusal(&call(2, "beta")), None);
        assert!(unknown.refusal(&call(3, "")).is_some());
        assert_eq!(known.envelope(3, Vec::new(), Vec::new()).cluster_id, "alpha");
        assert_eq!(unknown.envelope(3, Vec::new(), Vec::new()).cluster_id, "");
    }
}
