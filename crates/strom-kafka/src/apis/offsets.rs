//! ListOffsets (earliest, latest, by timestamp, max timestamp) and DeleteRecords.

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse};
use strom_broker::{Broker, BrokerError};

use super::blocking;
use crate::error_code::error_code;
use crate::server::Context;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub fn list_offsets(context: &Context, request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let read_committed = request.isolation_level == 1;
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                    match lookup(
                        &context.broker,
                        &topic.name.0,
                        p.partition_index,
                        p.current_leader_epoch,
                        p.timestamp,
                        read_committed,
                    ) {
                        Ok((timestamp, offset, epoch)) => {
                            // The leader epoch exists from v4; the codec refuses it earlier.
                            let epoch = if version >= 4 { epoch } else { -1 };
                            response
                                .with_timestamp(timestamp)
                                .with_offset(offset)
                                .with_leader_epoch(epoch)
                        }
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

/// (timestamp, offset, leader epoch) for one partition.
fn lookup(
    broker: &Broker,
    topic: &str,
    index: i32,
    epoch: i32,
    timestamp: i64,
    read_committed: bool,
) -> Result<(i64, i64, i32), BrokerError> {
    let partition = broker.partition(topic, index)?;
    partition.check_leader_epoch(epoch)?;
    let leader_epoch = partition.leader_epoch();
    let high_watermark = partition.high_watermark();
    let (ts, offset) = match timestamp {
        // On one node the last stable offset equals the high watermark.
        LATEST if read_committed => (-1, partition.last_stable_offset()),
        LATEST => (-1, high_watermark),
        EARLIEST | EARLIEST_LOCAL => (-1, partition.log_start_offset()),
        LATEST_TIERED => (-1, -1),
        MAX_TIMESTAMP => match partition.log().max_timestamp() {
            Some((offset, ts)) if offset < high_watermark => (ts, offset),
            _ => (-1, -1),
        },
        t if t >= 0 => match partition.log().offset_for_timestamp(t)? {
            Some((offset, ts)) if offset < high_watermark => (ts, offset),
            _ => (-1, -1),
        },
        other => {
            return Err(BrokerError::InvalidRequest(format!(
                "unknown special timestamp {other}"
            )))
        }
    };
    Ok((ts, offset, leader_epoch))
}

pub async fn delete_records(context: &Context, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = blocking(context, move |broker| {
        request
            .topics
            .into_iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let result = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
                        match broker.delete_records(&topic.name.0, p.partition_index, p.offset) {
                            Ok(low_watermark) => result.with_low_watermark(low_watermark),
                            Err(e) => result.with_error_code(error_code(&e)).with_low_watermark(-1),
                        }
                    })
                    .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(topic.name)
                    .with_partitions(partitions)
            })
            .collect()
    })
    .await;
    DeleteRecordsResponse::default().with_topics(topics)
}
