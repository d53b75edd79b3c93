//! Metadata: decode, ask the broker for its topics (it auto-creates on first use),
//! encode brokers, topics and partition leadership.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use strom_broker::api::TopicMetadata;
use strom_broker::TopicRef;

use super::cluster::{authorized_operations, AclResource};
use super::str_bytes;
use crate::constants::AUTHORIZED_OPERATIONS_NOT_REQUESTED;
use crate::context::{Context, Peer};
use crate::error_code::error_code;

pub async fn handle(context: &Context, peer: &Peer, request: MetadataRequest, version: i16) -> MetadataResponse {
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
    let wanted = if all {
        None
    } else {
        Some(
            request
                .topics
                .unwrap_or_default()
                .into_iter()
                .map(|t| match t.name {
                    Some(name) => TopicRef::Name(name.0.to_string()),
                    None => TopicRef::Id(t.topic_id),
                })
                .collect(),
        )
    };
    let mut topics: Vec<MetadataResponseTopic> = context
        .api
        .metadata(&peer.caller, wanted, auto_create)
        .await
        .into_iter()
        .map(encode_topic)
        .collect();
    // As Kafka: topics answered by name carry their operations; unknown topic ids do not.
    for topic in topics.iter_mut().filter(|t| t.name.is_some()) {
        topic.topic_authorized_operations = topic_operations;
    }
    MetadataResponse::default()
        .with_brokers(live_brokers(context))
        .with_cluster_id(Some(str_bytes(context.api.cluster_id())))
        .with_controller_id(BrokerId(context.api.controller_id()))
        .with_cluster_authorized_operations(cluster_operations)
        .with_topics(topics)
}

/// The brokers clients may use: registered, unfenced, with an endpoint on this listener.
fn live_brokers(context: &Context) -> Vec<MetadataResponseBroker> {
    let brokers = context.api.brokers();
    let mut live: Vec<MetadataResponseBroker> = brokers
        .iter()
        .filter(|b| b.alive)
        .filter_map(|b| {
            let (host, port) = context.endpoint(b.node_id, &brokers)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.node_id))
                    .with_host(str_bytes(host))
                    .with_port(port)
                    .with_rack(b.rack.clone().map(str_bytes)),
            )
        })
        .collect();
    // This node answers, so clients can always reach it (even while it is fenced).
    if !live.iter().any(|b| b.node_id.0 == context.api.node_id()) {
        live.push(
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(context.api.node_id()))
                .with_host(str_bytes(context.config.advertised_host.clone()))
                .with_port(context.config.advertised_port),
        );
    }
    live
}

fn encode_topic(topic: TopicMetadata) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .into_iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.into_iter().map(BrokerId).collect())
                .with_isr_nodes(p.isr.into_iter().map(BrokerId).collect())
                .with_offline_replicas(p.offline_replicas.into_iter().map(BrokerId).collect())
                .with_error_code(p.error.as_deref().map_or(0, error_code))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(topic.name.map(|n| TopicName(str_bytes(n))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.is_internal)
        .with_partitions(partitions)
        .with_error_code(topic.error.as_deref().map_or(0, error_code))
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_NOT_REQUESTED)
}
