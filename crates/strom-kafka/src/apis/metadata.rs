//! Metadata: brokers, topics and partition leadership; auto-creates topics on first use.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use strom_broker::{BrokerError, Topic};
use uuid::Uuid;

use super::cluster::{authorized_operations, AclResource};
use super::{blocking, str_bytes};
use crate::constants::AUTHORIZED_OPERATIONS_NOT_REQUESTED;
use crate::error_code::error_code;
use crate::server::Context;

pub async fn handle(context: &Context, request: MetadataRequest, version: i16) -> MetadataResponse {
    let broker = &context.broker;
    let node = BrokerId(broker.node_id());
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let all = match &request.topics {
        None => true,
        Some(topics) => version == 0 && topics.is_empty(),
    };
    let auto_create = version < 4 || request.allow_auto_topic_creation;
    // Both flags exist from v8; the cluster's operations moved to DescribeCluster in v11.
    let cluster_operations = authorized_operations(
        (8..=10).contains(&version) && request.include_cluster_authorized_operations,
        AclResource::Cluster,
    );
    let topic_operations = authorized_operations(
        version >= 8 && request.include_topic_authorized_operations,
        AclResource::Topic,
    );
    let mut topics = Vec::new();
    if all {
        for topic in broker.topics() {
            topics.push(describe(&topic, node));
        }
    } else {
        for wanted in request.topics.unwrap_or_default() {
            topics.push(
                lookup(
                    context,
                    wanted.name.map(|n| n.0.to_string()),
                    wanted.topic_id,
                    auto_create,
                    node,
                )
                .await,
            );
        }
    }
    // As Kafka: topics answered by name carry their operations; unknown topic ids do not.
    for topic in topics.iter_mut().filter(|t| t.name.is_some()) {
        topic.topic_authorized_operations = topic_operations;
    }
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(str_bytes(context.config.advertised_host.clone()))
            .with_port(context.config.advertised_port)])
        .with_cluster_id(Some(str_bytes(broker.cluster_id())))
        .with_controller_id(node)
        .with_cluster_authorized_operations(cluster_operations)
        .with_topics(topics)
}

async fn lookup(
    context: &Context,
    name: Option<String>,
    id: Uuid,
    auto_create: bool,
    node: BrokerId,
) -> MetadataResponseTopic {
    let broker = &context.broker;
    let Some(name) = name else {
        return match broker.topic_by_id(id) {
            Some(topic) => describe(&topic, node),
            None => MetadataResponseTopic::default()
                .with_topic_id(id)
                .with_error_code(ResponseError::UnknownTopicId.code()),
        };
    };
    if let Some(topic) = broker.topic(&name) {
        return describe(&topic, node);
    }
    let missing = |code: i16| {
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(str_bytes(name.clone()))))
            .with_error_code(code)
    };
    if !auto_create {
        return missing(ResponseError::UnknownTopicOrPartition.code());
    }
    let wanted = name.clone();
    match blocking(context, move |broker| broker.auto_create_topic(&wanted)).await {
        Ok(Some(topic)) => describe(&topic, node),
        Ok(None) => missing(ResponseError::UnknownTopicOrPartition.code()),
        Err(e @ BrokerError::InvalidTopic(_)) => missing(error_code(&e)),
        Err(e) => {
            tracing::warn!(topic = %name, error = %e, "auto-create failed");
            missing(error_code(&e))
        }
    }
}

fn describe(topic: &Arc<Topic>, node: BrokerId) -> MetadataResponseTopic {
    let partitions = topic
        .partitions()
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.index())
                .with_leader_id(node)
                .with_leader_epoch(p.leader_epoch())
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name()))))
        .with_topic_id(topic.id())
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_NOT_REQUESTED)
}
