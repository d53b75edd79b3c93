//! Fetch: return stored batches below the high watermark, byte for byte. A fetch
//! that finds fewer than `min_bytes` waits on the partitions' high-watermark
//! notifications (never by sleeping) until data arrives or `max_wait_ms` passes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::select_all;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use strom_broker::{BrokerError, Partition};
use uuid::Uuid;

use crate::constants::FETCH_WAIT_MS_MAX;
use crate::error_code::error_code;
use crate::server::Context;

const READ_COMMITTED: i8 = 1;

/// One requested partition, resolved once per request.
struct Wanted {
    topic_name: TopicName,
    topic_id: Uuid,
    partition_index: i32,
    partition: Result<Arc<Partition>, BrokerError>,
    fetch_offset: i64,
    max_bytes: usize,
    leader_epoch: i32,
}

pub async fn handle(context: &Context, request: FetchRequest, version: i16) -> FetchResponse {
    let wanted = resolve(context, &request, version);
    let max_wait = Duration::from_millis((request.max_wait_ms.max(0) as u64).min(FETCH_WAIT_MS_MAX));
    let deadline = Instant::now() + max_wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let response_max_bytes = if request.max_bytes <= 0 {
        usize::MAX
    } else {
        request.max_bytes as usize
    };
    let read_committed = request.isolation_level == READ_COMMITTED;
    let mut shutdown = context.shutdown.clone();
    loop {
        // Subscribe before reading, so an append in between still wakes us.
        let mut watchers: Vec<_> = wanted
            .iter()
            .filter_map(|w| w.partition.as_ref().ok())
            .map(|p| p.subscribe())
            .collect();
        let (response, bytes, failed) = read_all(&wanted, response_max_bytes, read_committed);
        let now = Instant::now();
        if bytes >= min_bytes || failed || now >= deadline || watchers.is_empty() {
            return response;
        }
        let changes = watchers.iter_mut().map(|w| Box::pin(w.changed()));
        tokio::select! {
            _ = select_all(changes) => {}
            _ = tokio::time::sleep_until((deadline).into()) => {}
            _ = shutdown.changed() => return response,
        }
    }
}

fn resolve(context: &Context, request: &FetchRequest, version: i16) -> Vec<Wanted> {
    let mut wanted = Vec::new();
    for topic in &request.topics {
        let (found, missing) = if version >= 13 {
            (context.broker.topic_by_id(topic.topic_id), BrokerError::UnknownTopicId)
        } else {
            (context.broker.topic(&topic.topic), BrokerError::UnknownTopicOrPartition)
        };
        for p in &topic.partitions {
            let partition = match &found {
                Some(t) => t.partition(p.partition).ok_or(BrokerError::UnknownTopicOrPartition),
                None => Err(match missing {
                    BrokerError::UnknownTopicId => BrokerError::UnknownTopicId,
                    _ => BrokerError::UnknownTopicOrPartition,
                }),
            };
            wanted.push(Wanted {
                topic_name: topic.topic.clone(),
                topic_id: topic.topic_id,
                partition_index: p.partition,
                partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                leader_epoch: p.current_leader_epoch,
            });
        }
    }
    wanted
}

/// Read every wanted partition; returns the response, its record bytes and whether
/// any partition failed (an error is answered at once, as Kafka does).
fn read_all(wanted: &[Wanted], response_max_bytes: usize, read_committed: bool) -> (FetchResponse, usize, bool) {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut total = 0usize;
    let mut failed = false;
    for w in wanted {
        let data = match read_one(w, response_max_bytes.saturating_sub(total), total == 0, read_committed) {
            Ok(data) => data,
            Err(e) => {
                failed = true;
                let offsets = match &e {
                    BrokerError::OffsetOutOfRange { .. } => w.partition.as_ref().ok(),
                    _ => None,
                };
                PartitionData::default()
                    .with_partition_index(w.partition_index)
                    .with_error_code(error_code(&e))
                    .with_high_watermark(offsets.map_or(-1, |p| p.high_watermark()))
                    .with_last_stable_offset(offsets.map_or(-1, |p| p.high_watermark()))
                    .with_log_start_offset(offsets.map_or(-1, |p| p.log_start_offset()))
            }
        };
        total += data.records.as_ref().map_or(0, |r| r.len());
        match topics.last_mut() {
            Some(t) if t.topic == w.topic_name && t.topic_id == w.topic_id => t.partitions.push(data),
            _ => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(w.topic_name.clone())
                    .with_topic_id(w.topic_id)
                    .with_partitions(vec![data]),
            ),
        }
    }
    (FetchResponse::default().with_responses(topics), total, failed)
}

fn read_one(w: &Wanted, remaining: usize, first: bool, read_committed: bool) -> Result<PartitionData, BrokerError> {
    let partition = w.partition.as_ref().map_err(clone_error)?;
    partition.check_leader_epoch(w.leader_epoch)?;
    let limit = w.max_bytes.min(remaining);
    let mut fetched = if limit == 0 && !first {
        // The response is full: report the offsets, read nothing.
        strom_broker::FetchedData {
            records: bytes::Bytes::new(),
            high_watermark: partition.high_watermark(),
            log_start_offset: partition.log_start_offset(),
            last_stable_offset: partition.last_stable_offset(),
            aborted: read_committed.then(Vec::new),
        }
    } else {
        partition.read_isolated(w.fetch_offset, limit, read_committed)?
    };
    // Only the first partition with data may exceed the limits (KIP-74); later ones
    // leave an oversized batch for the next fetch.
    if !first && fetched.records.len() > limit {
        fetched.records = bytes::Bytes::new();
    }
    Ok(PartitionData::default()
        .with_partition_index(w.partition_index)
        .with_high_watermark(fetched.high_watermark)
        .with_last_stable_offset(fetched.last_stable_offset)
        .with_log_start_offset(fetched.log_start_offset)
        .with_aborted_transactions(fetched.aborted.map(|aborted| {
            aborted
                .iter()
                .map(|a| {
                    AbortedTransaction::default()
                        .with_producer_id(kafka_protocol::messages::ProducerId(a.producer_id))
                        .with_first_offset(a.first_offset)
                })
                .collect()
        }))
        .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1))
        .with_records(Some(fetched.records)))
}

fn clone_error(e: &BrokerError) -> BrokerError {
    match e {
        BrokerError::UnknownTopicId => BrokerError::UnknownTopicId,
        _ => BrokerError::UnknownTopicOrPartition,
    }
}
