//! Fetch: decode, call [`strom_broker::BrokerApi::fetch`] (which owns the long-poll
//! and the KIP-74 byte budget), encode the stored batches byte for byte.

use std::time::Duration;

use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};
use strom_broker::api::{FetchParams, FetchPartition};
use strom_broker::{FetchIsolation, TopicRef};

use crate::context::{Context, Peer};
use crate::error_code::error_code;

pub async fn handle(context: &Context, peer: &Peer, request: FetchRequest, version: i16) -> FetchResponse {
    let mut partitions = Vec::new();
    for topic in &request.topics {
        let topic_ref = if version >= 13 {
            TopicRef::Id(topic.topic_id)
        } else {
            TopicRef::Name(topic.topic.0.to_string())
        };
        for p in &topic.partitions {
            partitions.push(FetchPartition {
                topic: topic_ref.clone(),
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                current_leader_epoch: p.current_leader_epoch,
            });
        }
    }
    let params = FetchParams {
        isolation: FetchIsolation::from_isolation_level(request.isolation_level),
        min_bytes: request.min_bytes.max(0) as usize,
        max_wait: Duration::from_millis(request.max_wait_ms.max(0) as u64),
        max_bytes: if request.max_bytes <= 0 {
            usize::MAX
        } else {
            request.max_bytes as usize
        },
        partitions,
    };
    let mut fetched = context.api.fetch(&peer.caller, params).await.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let data = PartitionData::default().with_partition_index(p.partition);
                    let Some(f) = fetched.next() else {
                        return data.with_error_code(kafka_protocol::error::ResponseError::UnknownServerError.code());
                    };
                    let data = data
                        .with_high_watermark(f.high_watermark)
                        .with_last_stable_offset(f.last_stable_offset)
                        .with_log_start_offset(f.log_start_offset);
                    match &f.error {
                        Some(e) => data.with_error_code(error_code(e)),
                        None => data
                            .with_aborted_transactions(f.aborted.map(|aborted| {
                                aborted
                                    .iter()
                                    .map(|a| {
                                        AbortedTransaction::default()
                                            .with_producer_id(ProducerId(a.producer_id))
                                            .with_first_offset(a.first_offset)
                                    })
                                    .collect()
                            }))
                            .with_preferred_read_replica(BrokerId(-1))
                            .with_records(Some(f.records)),
                    }
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(topic.topic)
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    FetchResponse::default().with_responses(topics)
}
