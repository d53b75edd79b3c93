//! AlterPartitionReassignments and ListPartitionReassignments (KIP-455): decode, call
//! the façade, encode. The broker begins, replaces or cancels moves; the active
//! controller completes them once the new replicas are in sync.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::*;
use strom_broker::BrokerError;

use super::str_bytes;
use crate::context::{Context, Peer};
use crate::error_code::{error_code, error_message};

pub async fn alter(
    context: &Context,
    peer: &Peer,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let image = context.api.broker().image();
    let mut wanted = Vec::new();
    // Refused before anything is asked of the broker (KIP-860).
    let mut refused: BTreeMap<(String, i32), BrokerError> = BTreeMap::new();
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        for p in &topic.partitions {
            let target: Option<Vec<i32>> = p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
            let current = image
                .topic(&name)
                .and_then(|t| t.partitions.get(&p.partition_index))
                .map(|s| s.replicas.len() - s.adding.len());
            if let (false, Some(target), Some(current)) = (request.allow_replication_factor_change, &target, current) {
                if target.len() != current {
                    refused.insert(
                        (name.clone(), p.partition_index),
                        BrokerError::InvalidReplicationFactor(format!(
                            "the reassignment changes the replication factor from {current} to {}",
                            target.len()
                        )),
                    );
                    continue;
                }
            }
            wanted.push((name.clone(), p.partition_index, target));
        }
    }
    let keys: Vec<(String, i32)> = wanted.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
    let outcomes = match context.api.alter_partition_reassignments(&peer.caller, wanted).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            return AlterPartitionReassignmentsResponse::default()
                .with_error_code(error_code(&e))
                .with_error_message(error_message(&e))
        }
    };
    let mut results: BTreeMap<(String, i32), strom_broker::Result<()>> =
        refused.into_iter().map(|(key, e)| (key, Err(e))).collect();
    results.extend(keys.into_iter().zip(outcomes));
    let mut by_topic: BTreeMap<String, Vec<ReassignablePartitionResponse>> = BTreeMap::new();
    for ((topic, partition), outcome) in results {
        let (code, message) = match &outcome {
            Ok(()) => (0, None),
            Err(e) => (error_code(e), Some(str_bytes(e.to_string()))),
        };
        by_topic.entry(topic).or_default().push(
            ReassignablePartitionResponse::default()
                .with_partition_index(partition)
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(request.allow_replication_factor_change)
        .with_responses(
            by_topic
                .into_iter()
                .map(|(name, partitions)| {
                    ReassignableTopicResponse::default()
                        .with_name(TopicName(str_bytes(name)))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

pub fn list(
    context: &Context,
    peer: &Peer,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let only = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let ongoing = match context.api.list_partition_reassignments(&peer.caller, only) {
        Ok(ongoing) => ongoing,
        Err(e) => {
            return ListPartitionReassignmentsResponse::default()
                .with_error_code(error_code(&e))
                .with_error_message(error_message(&e))
        }
    };
    let ids = |ids: &[i32]| ids.iter().map(|id| BrokerId(*id)).collect::<Vec<_>>();
    let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for r in ongoing {
        by_topic.entry(r.topic.clone()).or_default().push(
            OngoingPartitionReassignment::default()
                .with_partition_index(r.partition)
                .with_replicas(ids(&r.replicas))
                .with_adding_replicas(ids(&r.adding))
                .with_removing_replicas(ids(&r.removing)),
        );
    }
    ListPartitionReassignmentsResponse::default().with_topics(
        by_topic
            .into_iter()
            .map(|(name, partitions)| {
                OngoingTopicReassignment::default()
                    .with_name(TopicName(str_bytes(name)))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}
