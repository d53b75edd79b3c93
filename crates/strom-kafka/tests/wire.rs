//! Wire-level tests: the real listener on a local port, raw Kafka frames over a socket.

mod common;

use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use strom_log::RecordBatchBuilder;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn batch(count: usize) -> Vec<u8> {
    batch_of(count, b"value")
}

fn batch_of(count: usize, value: &[u8]) -> Vec<u8> {
    let mut builder = RecordBatchBuilder::new();
    for i in 0..count {
        builder.push(
            1_700_000_000_000 + i as i64,
            Some(format!("k{i}").as_bytes()),
            Some(value),
        );
    }
    builder.build().unwrap()
}

fn produce_request(records: Vec<u8>, partition: i32, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(records)))])])
}

fn fetch_request(offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_advertises_produce_from_v0_and_omits_default_tagged_fields() {
    let h = start().await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    stream
        .write_all(&frame(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default()))
        .await
        .unwrap();
    let (correlation_id, body) = read_frame(&mut stream).await.unwrap();
    assert_eq!(correlation_id, 1);
    // Body ends with throttle_time_ms then a zero count of tagged fields.
    assert_eq!(body.last(), Some(&0u8));
    let response = ApiVersionsResponse::decode(&mut body.clone(), 3).unwrap();
    assert_eq!(response.error_code, 0);
    let produce = response
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce as i16)
        .unwrap();
    assert_eq!((produce.min_version, produce.max_version), (0, 13));
    assert!(response.supported_features.is_empty() && response.finalized_features_epoch == -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_api_versions_version_gets_a_v0_answer() {
    let h = start().await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let mut raw = BytesMut::new();
    raw.put_i16(ApiKey::ApiVersions as i16);
    raw.put_i16(99);
    raw.put_i32(42);
    raw.put_i16(-1);
    raw.put_slice(&[0, 0, 0]);
    let mut framed = BytesMut::new();
    framed.put_i32(raw.len() as i32);
    framed.extend_from_slice(&raw);
    stream.write_all(&framed).await.unwrap();
    let (correlation_id, mut body) = read_frame(&mut stream).await.unwrap();
    assert_eq!(correlation_id, 42);
    let response = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(response.error_code, 35);
    assert!(!response.api_keys.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let h = start().await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let mut all = BytesMut::new();
    for i in 0..50 {
        if i % 2 == 0 {
            all.extend_from_slice(&frame(ApiKey::ApiVersions, 3, i, &ApiVersionsRequest::default()));
        } else {
            all.extend_from_slice(&frame(ApiKey::Metadata, 12, i, &MetadataRequest::default()));
        }
    }
    stream.write_all(&all).await.unwrap();
    for i in 0..50 {
        let (correlation_id, _) = read_frame(&mut stream).await.unwrap();
        assert_eq!(correlation_id, i);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_acks_all_produces_are_appended_and_answered_in_order() {
    let h = start().await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    // acks=all responses wait for an fsync while the connection runs the next requests;
    // every response must still come back in request order, with offsets in that order.
    let mut all = BytesMut::new();
    for i in 0..40 {
        let request = match i % 4 {
            3 => frame(ApiKey::Metadata, 12, i, &MetadataRequest::default()),
            2 => frame(ApiKey::Produce, 9, i, &produce_request(batch(2), 0, 1)),
            _ => frame(ApiKey::Produce, 9, i, &produce_request(batch(2), 0, -1)),
        };
        all.extend_from_slice(&request);
    }
    stream.write_all(&all).await.unwrap();
    let mut next_offset = 0;
    for i in 0..40 {
        let (correlation_id, mut body) = read_frame(&mut stream).await.unwrap();
        assert_eq!(correlation_id, i);
        if i % 4 == 3 {
            continue;
        }
        body.advance(1); // flexible response header: no tagged fields
        let response = ProduceResponse::decode(&mut body, 9).unwrap();
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!((partition.error_code, partition.base_offset), (0, next_offset));
        next_offset += 2;
    }
    still_serves(h.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_then_fetch_returns_the_stored_bytes() {
    let h = start().await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let sent = batch(10);
    let response: ProduceResponse = call(&mut stream, ApiKey::Produce, 9, &produce_request(sent.clone(), 0, -1)).await;
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!((partition.error_code, partition.base_offset), (0, 0));
    let response: ProduceResponse = call(&mut stream, ApiKey::Produce, 9, &produce_request(sent.clone(), 0, 1)).await;
    assert_eq!(response.responses[0].partition_responses[0].base_offset, 10);

    let response: FetchResponse = call(&mut stream, ApiKey::Fetch, 12, &fetch_request(0, 100)).await;
    let data = &response.responses[0].partitions[0];
    assert_eq!((data.error_code, data.high_watermark), (0, 20));
    let records = data.records.clone().unwrap();
    assert_eq!(records.len(), 2 * sent.len());
    // Byte-identical except the base offset (bytes 0..8) and the partition leader epoch
    // (bytes 12..16, stamped by the broker); both lie outside the CRC.
    for (i, stored) in records.chunks(sent.len()).enumerate() {
        assert_eq!(i64::from_be_bytes(stored[..8].try_into().unwrap()), 10 * i as i64);
        assert_eq!(&stored[8..12], &sent[8..12]);
        assert_eq!(
            i32::from_be_bytes(stored[12..16].try_into().unwrap()),
            0,
            "leader epoch stamped"
        );
        assert_eq!(&stored[16..], &sent[16..]);
    }
}

/// Fetched records go out as file ranges spliced into the encoded response: every
/// Fetch version, with several partitions and a response budget, decodes to exactly
/// the stored batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fetch_version_sends_the_stored_batches_from_the_files() {
    let h = start().await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let create = CreateTopicsRequest::default().with_topics(vec![
        kafka_protocol::messages::create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("multi")))
            .with_num_partitions(3)
            .with_replication_factor(1),
    ]);
    let created: CreateTopicsResponse = call(&mut stream, ApiKey::CreateTopics, 5, &create).await;
    assert_eq!(created.topics[0].error_code, 0);
    let topic_id = h.api.broker().topic("multi").unwrap().id();
    let mut stored = Vec::new();
    for partition in 0..3 {
        let records = batch_of(5 + partition as usize, format!("p{partition}").as_bytes());
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("multi")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(Bytes::from(records.clone())))])]);
        let response: ProduceResponse = call(&mut stream, ApiKey::Produce, 9, &request).await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
        stored.push(records);
    }
    for version in 4..=18i16 {
        for max_bytes in [1 << 20, 1] {
            let topic = FetchTopic::default().with_partitions(
                (0..3)
                    .map(|p| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20)
                    })
                    .collect(),
            );
            let topic = if version >= 13 {
                topic.with_topic_id(topic_id)
            } else {
                topic.with_topic(TopicName(StrBytes::from_static_str("multi")))
            };
            let request = FetchRequest::default()
                .with_max_wait_ms(0)
                .with_max_bytes(max_bytes)
                .with_topics(vec![topic]);
            let response: FetchResponse = call(&mut stream, ApiKey::Fetch, version, &request).await;
            let partitions = &response.responses[0].partitions;
            assert_eq!(partitions.len(), 3);
            for (p, data) in partitions.iter().enumerate() {
                assert_eq!(data.error_code, 0, "v{version}");
                let records = data.records.clone().unwrap_or_default();
                if max_bytes == 1 && p > 0 {
                    // KIP-74: only the first partition may pass the budget.
                    assert!(records.is_empty(), "v{version} partition {p}");
                    continue;
                }
                assert_eq!(records.len(), stored[p].len(), "v{version} partition {p}");
                assert_eq!(&records[16..], &stored[p][16..], "v{version} partition {p}");
            }
        }
    }
    still_serves(h.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_batches_get_kafka_errors_and_store_nothing() {
    let h = start().await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let mut corrupt = batch(3);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let response: ProduceResponse = call(&mut stream, ApiKey::Produce, 9, &produce_request(corrupt, 0, 1)).await;
    assert_eq!(
        response.responses[0].partition_responses[0].error_code, 2,
        "CORRUPT_MESSAGE"
    );

    let mut bad_magic = batch(3);
    bad_magic[16] = 1;
    let response: ProduceResponse = call(&mut stream, ApiKey::Produce, 9, &produce_request(bad_magic, 0, 1)).await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 2);

    let response: ProduceResponse = call(&mut stream, ApiKey::Produce, 9, &produce_request(batch(3), 7, 1)).await;
    assert_eq!(
        response.responses[0].partition_responses[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );

    let huge = batch_of(2_000, &[7u8; 1024]);
    assert!(huge.len() > 1_048_588);
    let response: ProduceResponse = call(&mut stream, ApiKey::Produce, 9, &produce_request(huge, 0, 1)).await;
    assert_eq!(
        response.responses[0].partition_responses[0].error_code, 10,
        "MESSAGE_TOO_LARGE"
    );

    let response: ProduceResponse = call(&mut stream, ApiKey::Produce, 9, &produce_request(batch(3), 0, 5)).await;
    assert_eq!(
        response.responses[0].partition_responses[0].error_code, 21,
        "INVALID_REQUIRED_ACKS"
    );

    let response: FetchResponse = call(&mut stream, ApiKey::Fetch, 12, &fetch_request(0, 0)).await;
    assert_eq!(
        response.responses[0].partitions[0].high_watermark, 0,
        "nothing was stored"
    );
    let response: FetchResponse = call(&mut stream, ApiKey::Fetch, 12, &fetch_request(5, 0)).await;
    assert_eq!(response.responses[0].partitions[0].error_code, 1, "OFFSET_OUT_OF_RANGE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_framing_closes_only_that_connection() {
    let h = start().await;
    // A frame longer than socket.request.max.bytes.
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    stream.write_all(&[0x7f, 0xff, 0xff, 0xff, 0, 0]).await.unwrap();
    assert!(is_closed(&mut stream).await);
    // Garbage that parses as a frame with an unknown api key.
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    stream
        .write_all(&[0, 0, 0, 10, 0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0xff, 0xff])
        .await
        .unwrap();
    assert!(is_closed(&mut stream).await);
    // A known api at an unsupported version.
    let mut raw = BytesMut::new();
    raw.put_i16(ApiKey::Metadata as i16);
    raw.put_i16(99);
    raw.put_i32(1);
    let mut framed = BytesMut::new();
    framed.put_i32(raw.len() as i32);
    framed.extend_from_slice(&raw);
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    stream.write_all(&framed).await.unwrap();
    assert!(is_closed(&mut stream).await);
    // A truncated body.
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let good = frame(ApiKey::Produce, 9, 1, &produce_request(batch(2), 0, 1));
    let mut cut = BytesMut::new();
    cut.put_i32(20);
    cut.extend_from_slice(&good[4..24]);
    stream.write_all(&cut).await.unwrap();
    assert!(is_closed(&mut stream).await);
    still_serves(h.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_gets_no_response_and_long_poll_wakes_on_append() {
    let h = start().await;
    let mut consumer = TcpStream::connect(h.addr).await.unwrap();
    consumer
        .write_all(&frame(ApiKey::Fetch, 12, 3, &fetch_request(0, 20_000)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let mut producer = TcpStream::connect(h.addr).await.unwrap();
    producer
        .write_all(&frame(ApiKey::Produce, 9, 1, &produce_request(batch(1), 0, 0)))
        .await
        .unwrap();
    let (correlation_id, mut rest) = read_frame(&mut consumer).await.unwrap();
    assert_eq!(correlation_id, 3);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "woken by the append, not the timeout"
    );
    rest.get_u8();
    let response = FetchResponse::decode(&mut rest, 12).unwrap();
    assert_eq!(response.responses[0].partitions[0].high_watermark, 1);
    // The next response on the acks=0 connection is the next request's.
    let response: MetadataResponse = call(
        &mut producer,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    )
    .await;
    assert_eq!(response.topics.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_records_on_a_compacted_topic_are_reported_one_by_one() {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let h = start().await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let compact = AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_static_str("t"))
        .with_configs(vec![AlterableConfig::default()
            .with_name(StrBytes::from_static_str("cleanup.policy"))
            .with_value(Some(StrBytes::from_static_str("compact")))])]);
    let altered: AlterConfigsResponse = call(&mut stream, ApiKey::AlterConfigs, 0, &compact).await;
    assert_eq!(altered.responses[0].error_code, 0);
    // 100 records; every tenth (5, 15, ... 95) has no key.
    let mut builder = RecordBatchBuilder::new();
    for i in 0..100 {
        let key = format!("k{i}");
        let key = (i % 10 != 5).then_some(key.as_bytes());
        builder.push(1_700_000_000_000 + i, key, Some(b"v"));
    }
    let request = produce_request(builder.build().unwrap(), 0, 1);
    let response: ProduceResponse = call(&mut stream, ApiKey::Produce, 9, &request).await;
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, 87, "INVALID_RECORD");
    let indexes: Vec<i32> = partition.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(indexes, (0..10).map(|i| i * 10 + 5).collect::<Vec<_>>());
    let message = partition.record_errors[0].batch_index_error_message.as_ref().unwrap();
    assert_eq!(
        message.as_str(),
        "Compacted topic cannot accept message without key in topic partition t-0."
    );
    assert!(partition.error_message.as_ref().is_some_and(|m| m
        .as_str()
        .starts_with("One or more records have been rejected due to 10 record errors")));
    // v7 has no record errors: the batch is still refused as a whole.
    let response: ProduceResponse = call(&mut stream, ApiKey::Produce, 7, &request).await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 87);
    let response: FetchResponse = call(&mut stream, ApiKey::Fetch, 12, &fetch_request(0, 0)).await;
    assert_eq!(
        response.responses[0].partitions[0].high_watermark, 0,
        "nothing was stored"
    );
}

/// OffsetForLeaderEpoch on the leader: the latest epoch ends at the log end, an epoch
/// above every known one is unknown, the reader's current leader epoch is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_for_leader_epoch_answers_where_an_epoch_ends() {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
    let h = start().await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let response: ProduceResponse = call(&mut stream, ApiKey::Produce, 9, &produce_request(batch(5), 0, 1)).await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    let ask = |current: i32, epoch: i32, partition: i32| {
        OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(partition)
                    .with_current_leader_epoch(current)
                    .with_leader_epoch(epoch)])])
    };
    for version in 2..=4 {
        let answer: OffsetForLeaderEpochResponse =
            call(&mut stream, ApiKey::OffsetForLeaderEpoch, version, &ask(0, 0, 0)).await;
        let p = &answer.topics[0].partitions[0];
        assert_eq!((p.error_code, p.leader_epoch, p.end_offset), (0, 0, 5), "v{version}");
    }
    let answer: OffsetForLeaderEpochResponse = call(&mut stream, ApiKey::OffsetForLeaderEpoch, 4, &ask(-1, 7, 0)).await;
    let p = &answer.topics[0].partitions[0];
    assert_eq!(
        (p.error_code, p.leader_epoch, p.end_offset),
        (0, -1, -1),
        "unknown epoch"
    );
    let answer: OffsetForLeaderEpochResponse = call(&mut stream, ApiKey::OffsetForLeaderEpoch, 4, &ask(3, 0, 0)).await;
    assert_eq!(
        answer.topics[0].partitions[0].error_code,
        kafka_protocol::error::ResponseError::UnknownLeaderEpoch.code()
    );
    let answer: OffsetForLeaderEpochResponse = call(&mut stream, ApiKey::OffsetForLeaderEpoch, 4, &ask(0, 0, 9)).await;
    assert_eq!(
        answer.topics[0].partitions[0].error_code,
        kafka_protocol::error::ResponseError::UnknownTopicOrPartition.code()
    );
}
