//! Wire-level tests: the real listener on a local port, raw Kafka frames over a socket.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strom_broker::group::GroupConfig;
use strom_broker::{Broker, BrokerConfig, GroupCoordinator, NewTopic};
use strom_kafka::{Server, ServerConfig};
use strom_log::RecordBatchBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

struct Harness {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    _shutdown: watch::Sender<bool>,
}

async fn start() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(BrokerConfig::new(dir.path())).unwrap();
    broker
        .create_topic(
            NewTopic {
                name: "t".into(),
                num_partitions: 1,
                replication_factor: 1,
                ..Default::default()
            },
            false,
        )
        .unwrap();
    let (shutdown, rx) = watch::channel(false);
    let config = ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        advertised_host: "127.0.0.1".into(),
        advertised_port: 0,
        socket_request_max_bytes: 8 << 20,
        max_connections: 100,
        broker_configs: Vec::new(),
    };
    let groups = GroupCoordinator::open(broker.clone(), GroupConfig::default()).unwrap();
    let server = Server::bind(config, broker, groups, rx).await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.run());
    Harness {
        addr,
        _dir: dir,
        _shutdown: shutdown,
    }
}

fn frame<T: Encodable>(api_key: ApiKey, version: i16, correlation_id: i32, body: &T) -> BytesMut {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("wire-test")));
    let mut payload = BytesMut::new();
    header
        .encode(&mut payload, api_key.request_header_version(version))
        .unwrap();
    body.encode(&mut payload, version).unwrap();
    let mut out = BytesMut::new();
    out.put_i32(payload.len() as i32);
    out.extend_from_slice(&payload);
    out
}

/// Read one response frame; returns (correlation id, rest after the v0 header part).
async fn read_frame(stream: &mut TcpStream) -> Option<(i32, Bytes)> {
    let len = stream.read_i32().await.ok()?;
    let mut buf = vec![0u8; len as usize];
    stream.read_exact(&mut buf).await.ok()?;
    let mut buf = Bytes::from(buf);
    let correlation_id = buf.get_i32();
    Some((correlation_id, buf))
}

async fn call<Req: Encodable, Resp: Decodable>(
    stream: &mut TcpStream,
    api_key: ApiKey,
    version: i16,
    body: &Req,
) -> Resp {
    stream.write_all(&frame(api_key, version, 7, body)).await.unwrap();
    let (correlation_id, mut rest) = read_frame(stream).await.expect("response");
    assert_eq!(correlation_id, 7);
    if api_key.response_header_version(version) >= 1 {
        assert_eq!(rest.get_u8(), 0, "no tagged fields in the response header");
    }
    Resp::decode(&mut rest, version).unwrap()
}

async fn still_serves(addr: SocketAddr) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let response: MetadataResponse = call(
        &mut stream,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    )
    .await;
    assert_eq!(response.topics.len(), 1);
}

async fn is_closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

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
    // Byte-identical except the base offset (first 8 bytes) of the second batch.
    assert_eq!(&records[..sent.len()], &sent[..]);
    assert_eq!(&records[sent.len() + 8..], &sent[8..]);
    assert_eq!(
        i64::from_be_bytes(records[sent.len()..sent.len() + 8].try_into().unwrap()),
        10
    );
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
