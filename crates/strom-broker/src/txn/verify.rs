//! KIP-890 (part 1) from the partition leader's side. A produce request can arrive
//! after its transaction ended: delayed on a stalled connection or in a paused leader,
//! it would land after the abort marker and open a new transaction in the partition,
//! which the producer's next commit then commits. So before a transactional batch
//! opens a transaction in a partition, its leader asks the producer's coordinator
//! (here, or on the node that leads the coordinator's partition) whether the
//! partition is in that open transaction; the partition's guard
//! ([`crate::TxnGuard`]) catches a marker written meanwhile.

use super::coordinator::{TxnCoordinator, TRANSACTION_STATE_TOPIC};
use crate::coordinator_log::ProducerIdAndEpoch;
use crate::error::{BrokerError, Result};
use crate::group::TopicPartition;

impl TxnCoordinator {
    /// Asks the coordinator of `transactional_id`, wherever it is, whether each
    /// partition is in the producer's open transaction. Blocking: another node is
    /// asked over the network.
    pub fn verify_anywhere(
        &self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        partitions: &[TopicPartition],
    ) -> Result<Vec<Result<()>>> {
        let index = self.coordinator_partition(transactional_id);
        let image = self.broker.image();
        let leader = image
            .topic(TRANSACTION_STATE_TOPIC)
            .and_then(|t| t.partitions.get(&index))
            .map(|p| p.leader);
        match leader {
            Some(leader) if leader == self.broker.node_id() => {
                self.verify_partitions(transactional_id, producer, partitions)
            }
            Some(leader) if leader >= 0 => {
                let endpoints = crate::api::broker_endpoints(&image);
                let endpoint = endpoints
                    .iter()
                    .find(|b| b.node_id == leader)
                    .ok_or(BrokerError::CoordinatorNotAvailable)?;
                self.remote.verify(endpoint, transactional_id, producer, partitions)
            }
            // No coordinator partition yet (a single node creates it on first use).
            None if image.brokers().len() <= 1 => self.verify_partitions(transactional_id, producer, partitions),
            _ => Err(BrokerError::CoordinatorNotAvailable),
        }
    }
}
