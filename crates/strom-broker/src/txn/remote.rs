//! How the transaction coordinator reaches partition leaders on other nodes, and a
//! partition leader the coordinator of a transaction: the [`RemoteMarkers`] seam a
//! front-end implements (Kafka's WriteTxnMarkers and the verify-only
//! AddPartitionsToTxn of KIP-890), with the request and result types. Kept apart from the coordinator so both sides of the seam
//! depend on it, not on each other.

use crate::api::BrokerEndpoint;
use crate::coordinator_log::ProducerIdAndEpoch;
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

    /// Asks the transaction coordinator on `node` whether each partition is in the
    /// producer's open transaction (AddPartitionsToTxn with `verify_only`, KIP-890):
    /// `Err` when it could not be asked or refused the whole request; else per partition.
    fn verify(
        &self,
        node: &BrokerEndpoint,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        partitions: &[TopicPartition],
    ) -> Result<Vec<Result<()>>>;
}

/// What a coordinator has when no front-end gave it a way to reach other nodes
/// (single-node tests): partitions led elsewhere cannot be ended.
#[derive(Debug, Default)]
pub struct NoRemoteMarkers;

impl RemoteMarkers for NoRemoteMarkers {
    fn write(&self, node: &BrokerEndpoint, _: &[MarkerRequest]) -> Result<MarkerResults> {
        Err(unreachable(node))
    }

    fn verify(
        &self,
        node: &BrokerEndpoint,
        _: &str,
        _: ProducerIdAndEpoch,
        _: &[TopicPartition],
    ) -> Result<Vec<Result<()>>> {
        Err(unreachable(node))
    }
}

fn unreachable(node: &BrokerEndpoint) -> BrokerError {
    BrokerError::Remote {
        node: node.node_id,
        reason: "no client for other nodes was given to the transaction coordinator".into(),
    }
}
