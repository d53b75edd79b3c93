//! Transaction markers wherever a partition is led. The coordinator writes the markers
//! of partitions led here itself and sends the others to their leader (Kafka's
//! inter-broker WriteTxnMarkers) through [`RemoteMarkers`], which a front-end
//! implements: this crate knows no wire protocol. A leader answers WriteTxnMarkers with
//! [`TxnCoordinator::write_markers_here`], the same path the coordinator uses locally.
//!
//! Markers are idempotent: a marker for a transaction already closed in a partition
//! closes nothing and fails nothing, so a coordinator that lost an answer (or crashed)
//! simply writes the markers again.

use std::collections::BTreeMap;

use super::coordinator::TxnCoordinator;
use super::remote::{MarkerRequest, MarkerResults};
use super::state_record::TxnMetadata;
use crate::api::BrokerEndpoint;
use crate::error::{BrokerError, Result};
use crate::group::{TopicPartition, OFFSETS_TOPIC};
use crate::partition::Partition;

/// Write a COMMIT or ABORT marker to one partition and make it durable: fsynced, and
/// on every in-sync replica (markers are written with acks=all, as in Kafka).
pub(super) fn write_marker(
    partition: &Partition,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
) -> Result<()> {
    let offset = partition.append_marker(producer_id, producer_epoch, commit, coordinator_epoch)?;
    partition.flush()?;
    partition.wait_for_high_watermark_blocking(offset + 1, crate::constants::COORDINATOR_REPLICATION_TIMEOUT)
}

impl TxnCoordinator {
    /// Writes markers into partitions led by this node: UNKNOWN_TOPIC_OR_PARTITION for
    /// a partition the metadata does not have, NOT_LEADER_OR_FOLLOWER for one led
    /// elsewhere. A `__consumer_offsets` marker also settles the producer's pending
    /// transactional offset commits. Blocking I/O (fsync).
    pub(crate) fn write_markers_here(&self, markers: &[MarkerRequest]) -> MarkerResults {
        markers
            .iter()
            .map(|marker| marker.partitions.iter().map(|tp| self.write_here(marker, tp)).collect())
            .collect()
    }

    fn write_here(&self, marker: &MarkerRequest, tp: &TopicPartition) -> Result<()> {
        if !self.broker.partition_exists(&tp.topic, tp.partition) {
            return Err(BrokerError::UnknownTopicOrPartition);
        }
        let partition = self
            .broker
            .partition(&tp.topic, tp.partition)
            .map_err(|_| BrokerError::NotLeaderOrFollower)?;
        if !partition.replica().is_leader() {
            return Err(BrokerError::NotLeaderOrFollower);
        }
        write_marker(
            &partition,
            marker.producer_id,
            marker.producer_epoch,
            marker.commit,
            marker.coordinator_epoch,
        )?;
        if tp.topic == OFFSETS_TOPIC {
            self.groups
                .complete_txn_offsets(tp.partition, marker.producer_id, marker.commit);
        }
        Ok(())
    }

    /// Writes the markers of a transaction in a Prepare state: here for the partitions
    /// this node leads, through [`RemoteMarkers`] for the others, grouped by leader.
    /// Every partition is tried; those done (or whose topic is gone) leave
    /// `meta.partitions`, so a retry writes only the rest. A partition without a
    /// leader, or whose leader could not be reached or refused, fails the call with
    /// COORDINATOR_NOT_AVAILABLE (retriable: the client's EndTxn retry or the
    /// coordinator's periodic check finishes the transaction); a local storage error
    /// is returned as it is.
    pub(super) fn write_markers(&self, meta: &mut TxnMetadata, commit: bool) -> Result<()> {
        let image = self.broker.image();
        let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
        let mut done = Vec::new();
        let mut failure: Option<BrokerError> = None;
        for tp in &meta.partitions {
            match image.topic(&tp.topic).and_then(|t| t.partitions.get(&tp.partition)) {
                // A deleted topic takes its part of the transaction with it.
                None => done.push(tp.clone()),
                Some(state) if state.leader < 0 => {
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, "no leader for a transaction marker");
                    failure.get_or_insert(BrokerError::CoordinatorNotAvailable);
                }
                Some(state) => by_leader.entry(state.leader).or_default().push(tp.clone()),
            }
        }
        let marker = |partitions: Vec<TopicPartition>| MarkerRequest {
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
            commit,
            coordinator_epoch: 0,
            partitions,
        };
        if let Some(partitions) = by_leader.remove(&self.broker.node_id()) {
            let request = marker(partitions);
            let results = self.write_markers_here(std::slice::from_ref(&request));
            for (tp, result) in request.partitions.into_iter().zip(results.into_iter().flatten()) {
                match result {
                    // Deleted since the image above was taken.
                    Ok(()) | Err(BrokerError::UnknownTopicOrPartition) => done.push(tp),
                    Err(e) => {
                        tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %e, "transaction marker not written");
                        // Leadership moved meanwhile: retriable, like a remote refusal.
                        failure.get_or_insert(if e.is_storage() {
                            e
                        } else {
                            BrokerError::CoordinatorNotAvailable
                        });
                    }
                }
            }
        }
        if !by_leader.is_empty() {
            let endpoints = crate::api::broker_endpoints(&image);
            for (leader, partitions) in by_leader {
                let request = marker(partitions);
                let (written, result) = self.send_markers(&endpoints, leader, &request);
                done.extend(written);
                match result {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::warn!(
                            transactional_id = %meta.transactional_id,
                            node = leader,
                            error = %e,
                            "transaction markers not written on another node"
                        );
                        failure.get_or_insert(BrokerError::CoordinatorNotAvailable);
                    }
                }
            }
        }
        for tp in &done {
            meta.partitions.remove(tp);
        }
        failure.map_or(Ok(()), Err)
    }

    /// Sends one marker to `leader`: the partitions it wrote, and whether that was all.
    fn send_markers(
        &self,
        endpoints: &[BrokerEndpoint],
        leader: i32,
        request: &MarkerRequest,
    ) -> (Vec<TopicPartition>, Result<()>) {
        let Some(endpoint) = endpoints.iter().find(|b| b.node_id == leader) else {
            let error = BrokerError::Remote {
                node: leader,
                reason: "not registered".into(),
            };
            return (Vec::new(), Err(error));
        };
        let results = match self.remote.write(endpoint, std::slice::from_ref(request)) {
            Ok(answer) => answer.into_iter().next().unwrap_or_default(),
            Err(e) => return (Vec::new(), Err(e)),
        };
        let mut written = Vec::new();
        let mut failed = Vec::new();
        for (i, tp) in request.partitions.iter().enumerate() {
            match results.get(i) {
                Some(Ok(())) => written.push(tp.clone()),
                // UNKNOWN_TOPIC_OR_PARTITION too: the leader may not have applied the
                // topic yet; once deleted here, the next attempt skips it.
                Some(Err(e)) => failed.push(format!("{}-{}: {e}", tp.topic, tp.partition)),
                None => failed.push(format!("{}-{}: no answer", tp.topic, tp.partition)),
            }
        }
        if failed.is_empty() {
            return (written, Ok(()));
        }
        let error = BrokerError::Remote {
            node: leader,
            reason: failed.join(", "),
        };
        (written, Err(error))
    }
}

#[cfg(test)]
mod tests;
