//! CreateTopics, DeleteTopics and CreatePartitions.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::*;
use strom_broker::{BrokerError, NewTopic};

use super::configs::source_code;
use super::{blocking, str_bytes};
use crate::error_code::{error_code, error_message};
use crate::server::Context;

pub async fn create_topics(context: &Context, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut counts: HashMap<TopicName, usize> = HashMap::new();
    for topic in &request.topics {
        *counts.entry(topic.name.clone()).or_default() += 1;
    }
    let validate_only = request.validate_only;
    let topics = blocking(context, move |broker| {
        request
            .topics
            .into_iter()
            .map(|topic| {
                let result = CreatableTopicResult::default().with_name(topic.name.clone());
                if counts.get(&topic.name).copied().unwrap_or(0) > 1 {
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(str_bytes(format!(
                            "Create topics request from client contains multiple entries for topic {}",
                            topic.name.0
                        ))))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1);
                }
                let mut configs = BTreeMap::new();
                for c in &topic.configs {
                    if let Some(value) = &c.value {
                        configs.insert(c.name.to_string(), value.to_string());
                    }
                }
                let new = NewTopic {
                    name: topic.name.0.to_string(),
                    num_partitions: topic.num_partitions,
                    replication_factor: topic.replication_factor,
                    assignments: topic
                        .assignments
                        .iter()
                        .map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0).collect()))
                        .collect(),
                    configs,
                };
                match broker.create_topic(new, validate_only) {
                    Ok(summary) => result
                        .with_topic_id(summary.id)
                        .with_num_partitions(summary.partitions)
                        .with_replication_factor(summary.replication_factor)
                        .with_configs(Some(
                            summary
                                .configs
                                .iter()
                                .map(|c| {
                                    CreatableTopicConfigs::default()
                                        .with_name(str_bytes(c.def.name))
                                        .with_value(Some(str_bytes(c.value.clone())))
                                        .with_config_source(source_code(c.source))
                                })
                                .collect(),
                        )),
                    Err(e) => {
                        if !matches!(e, BrokerError::TopicAlreadyExists(_)) {
                            tracing::info!(topic = %topic.name.0, error = %e, "create topic refused");
                        }
                        result
                            .with_error_code(error_code(&e))
                            .with_error_message(error_message(&e))
                            .with_num_partitions(-1)
                            .with_replication_factor(-1)
                    }
                }
            })
            .collect()
    })
    .await;
    CreateTopicsResponse::default().with_topics(topics)
}

pub async fn delete_topics(context: &Context, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    // v6 names topics by name or id; earlier versions send names only.
    let mut targets: Vec<(Option<TopicName>, uuid::Uuid)> = request
        .topic_names
        .into_iter()
        .map(|n| (Some(n), uuid::Uuid::nil()))
        .collect();
    targets.extend(request.topics.into_iter().map(|t| (t.name, t.topic_id)));
    let responses = blocking(context, move |broker| {
        targets
            .into_iter()
            .map(|(name, id)| {
                let name = match name {
                    Some(n) => Some(n.0.to_string()),
                    None => broker.topic_by_id(id).map(|t| t.name().to_string()),
                };
                let result = DeletableTopicResult::default().with_topic_id(id);
                let Some(name) = name else {
                    return result.with_error_code(ResponseError::UnknownTopicId.code());
                };
                let result = result.with_name(Some(TopicName(str_bytes(name.clone()))));
                match broker.delete_topic(&name) {
                    Ok(id) => result.with_topic_id(id),
                    Err(e) => result
                        .with_error_code(error_code(&e))
                        .with_error_message(error_message(&e)),
                }
            })
            .collect()
    })
    .await;
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(context: &Context, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let validate_only = request.validate_only;
    let results = blocking(context, move |broker| {
        let node = broker.node_id();
        request
            .topics
            .into_iter()
            .map(|topic| {
                let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
                let assignment_ok = topic.assignments.as_ref().is_none_or(|a| {
                    a.iter()
                        .all(|p| !p.broker_ids.is_empty() && p.broker_ids.iter().all(|b| b.0 == node))
                });
                let outcome = if assignment_ok {
                    broker.create_partitions(&topic.name.0, topic.count, validate_only)
                } else {
                    Err(BrokerError::InvalidReplicaAssignment(format!(
                        "replicas must be [{node}] on this single-node cluster"
                    )))
                };
                match outcome {
                    Ok(()) => result,
                    Err(e) => result
                        .with_error_code(error_code(&e))
                        .with_error_message(error_message(&e)),
                }
            })
            .collect()
    })
    .await;
    CreatePartitionsResponse::default().with_results(results)
}
