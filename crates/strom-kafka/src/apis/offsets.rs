//! ListOffsets and DeleteRecords: decode, call the broker, encode.

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse};
use strom_broker::api::{DeleteRecordsPartition, ListOffsetsPartition, OffsetSpec};
use strom_broker::{FetchIsolation, TopicRef};

use crate::context::{Context, Peer};
use crate::error_code::error_code;

pub async fn list_offsets(
    context: &Context,
    peer: &Peer,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let wanted = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|p| ListOffsetsPartition {
                topic: TopicRef::Name(topic.name.0.to_string()),
                partition: p.partition_index,
                current_leader_epoch: p.current_leader_epoch,
                spec: OffsetSpec::from_timestamp(p.timestamp),
            })
        })
        .collect();
    let isolation = FetchIsolation::from_isolation_level(request.isolation_level);
    let mut results = context
        .api
        .list_offsets(&peer.caller, isolation, wanted)
        .await
        .into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                    match results.next().unwrap_or_else(super::missing_result) {
                        Ok(listed) => response
                            .with_timestamp(listed.timestamp)
                            .with_offset(listed.offset)
                            // The leader epoch exists from v4; the codec refuses it earlier.
                            .with_leader_epoch(if version >= 4 { listed.leader_epoch } else { -1 }),
                        Err(e) => response
                            .with_error_code(error_code(&e))
                            .with_timestamp(-1)
                            .with_offset(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

pub async fn delete_records(context: &Context, peer: &Peer, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let wanted = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|p| DeleteRecordsPartition {
                topic: topic.name.0.to_string(),
                partition: p.partition_index,
                offset: p.offset,
            })
        })
        .collect();
    let mut results = context.api.delete_records(&peer.caller, wanted).await.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
                    match results.next().unwrap_or_else(super::missing_result) {
                        Ok(low_watermark) => result.with_low_watermark(low_watermark),
                        Err(e) => result.with_error_code(error_code(&e)).with_low_watermark(-1),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
