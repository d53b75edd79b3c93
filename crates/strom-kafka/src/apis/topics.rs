//! CreateTopics, DeleteTopics and CreatePartitions: decode, call the broker, encode.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::*;
use strom_broker::api::NewPartitions;
use strom_broker::{NewTopic, TopicRef};

use super::configs::source_code;
use super::str_bytes;
use crate::context::{Context, Peer};
use crate::error_code::{error_code, error_message};

pub async fn create_topics(context: &Context, peer: &Peer, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let wanted = request
        .topics
        .iter()
        .map(|topic| NewTopic {
            name: topic.name.0.to_string(),
            num_partitions: topic.num_partitions,
            replication_factor: topic.replication_factor,
            assignments: topic
                .assignments
                .iter()
                .map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0).collect()))
                .collect(),
            configs: topic
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect::<BTreeMap<_, _>>(),
        })
        .collect();
    let results = context
        .api
        .create_topics(&peer.caller, wanted, request.validate_only)
        .await;
    let topics = request
        .topics
        .into_iter()
        .zip(results.into_iter().chain(std::iter::repeat_with(super::missing_result)))
        .map(|(topic, outcome)| {
            let result = CreatableTopicResult::default().with_name(topic.name);
            match outcome {
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
                Err(e) => result
                    .with_error_code(error_code(&e))
                    .with_error_message(error_message(&e))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

pub async fn delete_topics(context: &Context, peer: &Peer, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    // v6 names topics by name or id; earlier versions send names only.
    let mut targets: Vec<(Option<TopicName>, uuid::Uuid)> = request
        .topic_names
        .into_iter()
        .map(|n| (Some(n), uuid::Uuid::nil()))
        .collect();
    targets.extend(request.topics.into_iter().map(|t| (t.name, t.topic_id)));
    let wanted = targets
        .iter()
        .map(|(name, id)| match name {
            Some(name) => TopicRef::Name(name.0.to_string()),
            None => TopicRef::Id(*id),
        })
        .collect();
    let results = context.api.delete_topics(&peer.caller, wanted).await;
    let responses = targets
        .into_iter()
        .zip(results.into_iter().chain(std::iter::repeat_with(super::missing_result)))
        .map(|((name, id), outcome)| {
            let result = DeletableTopicResult::default().with_topic_id(id).with_name(name);
            match outcome {
                Ok(deleted) => result
                    .with_name(Some(TopicName(str_bytes(deleted.name))))
                    .with_topic_id(deleted.id),
                Err(e) => result
                    .with_error_code(error_code(&e))
                    .with_error_message(error_message(&e)),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    context: &Context,
    peer: &Peer,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let wanted = request
        .topics
        .iter()
        .map(|topic| NewPartitions {
            topic: topic.name.0.to_string(),
            count: topic.count,
            assignments: topic
                .assignments
                .as_ref()
                .map(|a| a.iter().map(|p| p.broker_ids.iter().map(|b| b.0).collect()).collect()),
        })
        .collect();
    let results = context
        .api
        .create_partitions(&peer.caller, wanted, request.validate_only)
        .await;
    let results = request
        .topics
        .into_iter()
        .zip(results.into_iter().chain(std::iter::repeat_with(super::missing_result)))
        .map(|(topic, outcome)| {
            let result = CreatePartitionsTopicResult::default().with_name(topic.name);
            match outcome {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(error_code(&e))
                    .with_error_message(error_message(&e)),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
