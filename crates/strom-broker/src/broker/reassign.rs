//! Partition reassignment (Kafka's KIP-455): AlterPartitionReassignments begins,
//! replaces or cancels a move of a partition's replicas; the new replicas are opened on
//! their nodes as the metadata says, fetch from the leader and join the ISR; the active
//! controller then completes the move and the nodes that left delete their copies.

use strom_cluster::controller::{self, ReassignmentError};
use strom_cluster::TopicImage;
use uuid::Uuid;

use super::Broker;
use crate::error::{BrokerError, Result};
use crate::sync::lock;
use crate::topic::Topic;

/// A reassignment in progress (ListPartitionReassignments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl Broker {
    /// AlterPartitionReassignments: for each (topic, partition, target replicas or
    /// `None` to cancel), the outcome; the accepted ones commit in one batch.
    pub fn alter_reassignments(&self, wanted: Vec<(String, i32, Option<Vec<i32>>)>) -> Vec<Result<()>> {
        let _admin = lock(&self.admin);
        let image = self.quorum.applied().image.clone();
        let mut records = Vec::new();
        let mut outcomes: Vec<Result<()>> = wanted
            .iter()
            .map(|(topic, partition, target)| {
                let id = image.topic(topic).map_or(Uuid::nil(), |t| t.id);
                let record = controller::reassign(&image, id, *partition, target.as_deref()).map_err(|e| match e {
                    ReassignmentError::UnknownPartition => BrokerError::UnknownTopicOrPartition,
                    ReassignmentError::InvalidReplicas(why) => BrokerError::InvalidReplicaAssignment(why),
                    ReassignmentError::NoneInProgress => BrokerError::NoReassignmentInProgress,
                })?;
                records.push(record);
                Ok(())
            })
            .collect();
        if !records.is_empty() {
            if let Err(e) = self.commit(records) {
                let shared = e.to_string();
                for outcome in outcomes.iter_mut().filter(|o| o.is_ok()) {
                    *outcome = Err(match &e {
                        BrokerError::NotController(_) => BrokerError::NotController(shared.clone()),
                        _ => BrokerError::RequestTimedOut(shared.clone()),
                    });
                }
            }
        }
        outcomes
    }

    /// ListPartitionReassignments: those in progress, of `only` (topic, partitions) or
    /// of every topic.
    pub fn list_reassignments(&self, only: Option<Vec<(String, Vec<i32>)>>) -> Vec<OngoingReassignment> {
        let image = self.quorum.applied().image.clone();
        let ongoing = |topic: &TopicImage, partition: i32| {
            let state = topic.partitions.get(&partition)?;
            (!state.adding.is_empty() || !state.removing.is_empty()).then(|| OngoingReassignment {
                topic: topic.name.clone(),
                partition,
                replicas: state.replicas.clone(),
                adding: state.adding.clone(),
                removing: state.removing.clone(),
            })
        };
        match only {
            Some(wanted) => wanted
                .iter()
                .filter_map(|(name, partitions)| image.topic(name).map(|t| (t, partitions)))
                .flat_map(|(topic, partitions)| partitions.iter().filter_map(move |p| ongoing(topic, *p)))
                .collect(),
            None => image
                .topics()
                .into_iter()
                .flat_map(|topic| topic.partitions.keys().filter_map(move |p| ongoing(topic, *p)))
                .collect(),
        }
    }

    /// Brings the hosted replicas of a live topic's first `count` partitions in line with
    /// the metadata: replicas moved here are opened (they start fetching), replicas
    /// moved away are dropped and their logs deleted.
    pub(super) fn move_replicas(&self, live: &Topic, record: &TopicImage, count: i32) -> Result<()> {
        let me = self.config.node_id;
        let log_config = self.defaults().log_config(&record.configs);
        let mut first_error = None;
        for (index, state) in record.partitions.range(..count) {
            let hosted = live.partition(*index).is_some();
            let wanted = state.replicas.contains(&me);
            if wanted && !hosted {
                match self.open_replica(&live.name_arc(), record.id, *index, state, log_config) {
                    Ok(partition) => {
                        tracing::info!(topic = %live.name(), partition = index, "replica added here");
                        live.set_partition(*index, Some(partition));
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            } else if hosted && !wanted {
                live.set_partition(*index, None);
                match self.logs.commit_deletion(live.name(), live.id(), &[*index]) {
                    Ok(renamed) => self.logs.remove_deleted(&renamed),
                    Err(e) => {
                        tracing::error!(topic = %live.name(), partition = index, error = %e, "could not delete a replica moved away")
                    }
                }
                tracing::info!(topic = %live.name(), partition = index, "replica moved away: deleted here");
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
