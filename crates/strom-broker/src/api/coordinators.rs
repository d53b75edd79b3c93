//! The coordinators behind the façade: FindCoordinator, and the group and transaction
//! coordinators handed out only after the caller is authorized for the group or
//! transactional id. Transaction work (durable state, markers) runs on the blocking pool.
//! WriteTxnMarkers, from the coordinators of other nodes, writes markers here.

use std::sync::Arc;

use super::BrokerApi;
use crate::blocking::{offload, offload_result};
use crate::caller::{Caller, Operation, Resource};
use crate::error::{BrokerError, Result};
use crate::group::coordinator::OFFSETS_TOPIC;
use crate::group::{GroupCoordinator, OffsetCommit};
use crate::txn::coordinator::TRANSACTION_STATE_TOPIC;
use crate::txn::{MarkerRequest, MarkerResults, ProducerIdAndEpoch, TxnCoordinator};

/// What a FindCoordinator key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinatorKind {
    Group,
    Transaction,
}

impl BrokerApi {
    /// FindCoordinator: the node that coordinates each key: the leader of the key's
    /// partition of the internal topic (created on first use).
    pub async fn find_coordinator(
        &self,
        caller: &Caller,
        kind: CoordinatorKind,
        keys: &[String],
    ) -> Vec<std::result::Result<i32, Arc<BrokerError>>> {
        let ready = match kind {
            CoordinatorKind::Group => {
                let groups = self.groups.clone();
                offload_result("create __consumer_offsets", move || groups.offsets_topic().map(|_| ())).await
            }
            CoordinatorKind::Transaction => {
                let txns = self.txns.clone();
                offload_result("create __transaction_state", move || txns.state_topic().map(|_| ())).await
            }
        }
        // As Kafka: an internal topic that cannot be created (no controller, a full
        // disk) leaves the coordinator unavailable, which clients retry.
        .map_err(|e| {
            tracing::debug!(error = %e, "coordinator topic not ready");
            Arc::new(BrokerError::CoordinatorNotAvailable)
        });
        let image = self.broker.image();
        keys.iter()
            .map(|key| {
                if key.is_empty() {
                    return Err(Arc::new(BrokerError::InvalidRequest("empty coordinator key".into())));
                }
                let resource = match kind {
                    CoordinatorKind::Group => Resource::Group(key),
                    CoordinatorKind::Transaction => Resource::TransactionalId(key),
                };
                self.authorize(caller, Operation::Describe, resource)
                    .map_err(Arc::new)?;
                ready.clone()?;
                let (topic, partition) = match kind {
                    CoordinatorKind::Group => (OFFSETS_TOPIC, self.groups.coordinator_partition(key)),
                    CoordinatorKind::Transaction => (TRANSACTION_STATE_TOPIC, self.txns.coordinator_partition(key)),
                };
                // The node leading the key's internal partition coordinates it.
                image
                    .topic(topic)
                    .and_then(|t| t.partitions.get(&partition))
                    .map(|p| p.leader)
                    .filter(|leader| *leader >= 0)
                    .ok_or_else(|| Arc::new(BrokerError::CoordinatorNotAvailable))
            })
            .collect()
    }

    /// The group coordinator, for `operation` on group `group_id`.
    pub fn group_coordinator(
        &self,
        caller: &Caller,
        operation: Operation,
        group_id: &str,
    ) -> Result<&Arc<GroupCoordinator>> {
        self.authorize(caller, operation, Resource::Group(group_id))?;
        Ok(&self.groups)
    }

    /// The group coordinator for listing every group (Describe on the cluster).
    pub fn group_listing(&self, caller: &Caller) -> Result<&Arc<GroupCoordinator>> {
        self.authorize(caller, Operation::Describe, Resource::Cluster)?;
        Ok(&self.groups)
    }

    /// The transaction coordinator for a read (describe, list) of `transactional_id`, or
    /// of every transaction (None: Describe on the cluster).
    pub fn transaction_view(&self, caller: &Caller, transactional_id: Option<&str>) -> Result<&Arc<TxnCoordinator>> {
        let resource = transactional_id.map_or(Resource::Cluster, Resource::TransactionalId);
        self.authorize(caller, Operation::Describe, resource)?;
        Ok(&self.txns)
    }

    /// Runs `work` on the transaction coordinator, on the blocking pool, once the caller
    /// may write with `transactional_id` (None: an idempotent producer, IdempotentWrite
    /// on the cluster).
    pub async fn transactions<T, F>(&self, caller: &Caller, transactional_id: Option<&str>, work: F) -> Result<T>
    where
        F: FnOnce(&TxnCoordinator) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        match transactional_id {
            Some(id) => self.authorize(caller, Operation::Write, Resource::TransactionalId(id))?,
            None => self.authorize(caller, Operation::IdempotentWrite, Resource::Cluster)?,
        }
        let txns = self.txns.clone();
        offload("transaction coordinator", move || work(&txns)).await?
    }

    /// TxnOffsetCommit: offsets committed inside a transaction, once the caller may
    /// write with the transactional id and read the group.
    pub async fn txn_offset_commit(
        &self,
        caller: &Caller,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        commit: OffsetCommit,
    ) -> Result<Vec<Result<()>>> {
        self.authorize(caller, Operation::Write, Resource::TransactionalId(transactional_id))?;
        self.authorize(caller, Operation::Read, Resource::Group(&commit.group_id))?;
        self.txns.txn_offset_commit(transactional_id, producer, commit).await
    }

    /// WriteTxnMarkers: a transaction coordinator (on another node) ends transactions
    /// in partitions this node leads. ClusterAction on the cluster, as in Kafka: only
    /// brokers send it. Per marker, per partition: UNKNOWN_TOPIC_OR_PARTITION,
    /// NOT_LEADER_OR_FOLLOWER, or the marker written and fsync'ed.
    pub async fn write_txn_markers(&self, caller: &Caller, markers: Vec<MarkerRequest>) -> Result<MarkerResults> {
        self.authorize(caller, Operation::ClusterAction, Resource::Cluster)?;
        let txns = self.txns.clone();
        offload("write transaction markers", move || txns.write_markers_here(&markers)).await
    }
}
