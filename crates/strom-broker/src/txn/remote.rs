//! How the transaction coordinator reaches partition leaders on other nodes: the
//! [`RemoteMarkers`] seam a front-end implements (Kafka's WriteTxnMarkers), with the
//! request and result types. Kept apart from the coordinator so both sides of the seam
//! depend on it, not on each other.

use crate::api::BrokerEndpoint;
use crate::error::{BrokerError, Result};
use crate::group::TopicPartition;

/// The end of one producer's transaction in some partitions (one entry of Kafka's
/// WriteTxnMarkers request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerRequest {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// COMMIT, or ABORT.
    pub commit: bool,
    /// Written into the marker (Kafka fences older coordinators with it; not checked).
    pub coordinator_epoch: i32,
    pub partitions: Vec<TopicPartition>,
}

/// Per marker, the result of each of its partitions, in request order.
pub type MarkerResults = Vec<Vec<Result<()>>>;

/// Sends markers to the node that leads their partitions and waits for its answer.
/// Called on the blocking pool, with the transaction's lock held: implementations
/// must bound their waits.
pub trait RemoteMarkers: Send + Sync + std::fmt::Debug {
    /// `Err` when `node` could not be asked or its answer not read; else its answer.
    fn write(&self, node: &BrokerEndpoint, markers: &[MarkerRequest]) -> Result<MarkerResults>;
}

/// What a coordinator has when no front-end gave it a way to reach other nodes
/// (single-node tests): partitions led elsewhere cannot be ended.
#[derive(Debug, Default)]
pub struct NoRemoteMarkers;

impl RemoteMarkers for NoRemoteMarkers {
    fn write(&self, node: &BrokerEndpoint, _: &[MarkerRequest]) -> Result<MarkerResults> {
        Err(BrokerError::Remote {
            node: node.node_id,
            reason: "no client for other nodes was given to the transaction coordinator".into(),
        })
    }
}
