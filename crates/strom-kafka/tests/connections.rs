//! Connection limits: `connections.max.idle.ms`, `max.connections.per.ip` and the
//! `queued.max.request.bytes` pool that large requests draw on.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use strom_broker::group::GroupConfig;
use strom_log::RecordBatchBuilder;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn metadata(stream: &mut TcpStream) {
    let _: MetadataResponse = call(stream, ApiKey::Metadata, 12, &MetadataRequest::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_with_nothing_to_do_is_closed_after_connections_max_idle_ms() {
    let h = start_configured(GroupConfig::default(), |c| c.connections_max_idle_ms = 1000).await;
    let mut busy = TcpStream::connect(h.addr).await.unwrap();
    let mut idle = TcpStream::connect(h.addr).await.unwrap();
    metadata(&mut idle).await;
    // A request half-way through the limit moves the deadline; silence after it still ends
    // the connection one limit later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    metadata(&mut idle).await;
    // Requests every 100 ms keep a connection open well past the idle limit.
    for _ in 0..15 {
        metadata(&mut busy).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(is_closed(&mut idle).await, "the silent connection is closed");
    metadata(&mut busy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_connections_per_ip_are_closed_on_accept() {
    let h = start_configured(GroupConfig::default(), |c| c.max_connections_per_ip = 2).await;
    let mut first = TcpStream::connect(h.addr).await.unwrap();
    let mut second = TcpStream::connect(h.addr).await.unwrap();
    metadata(&mut first).await;
    metadata(&mut second).await;
    let mut third = TcpStream::connect(h.addr).await.unwrap();
    assert!(
        is_closed(&mut third).await,
        "a third connection from 127.0.0.1 is refused"
    );
    drop(first);
    // The slot comes back once the broker has seen the close.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = TcpStream::connect(h.addr).await.unwrap();
        let request = frame(ApiKey::Metadata, 12, 7, &MetadataRequest::default());
        if again.write_all(&request).await.is_ok() {
            if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), read_frame(&mut again)).await {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no slot after a connection closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    metadata(&mut second).await;
}

fn produce(value_bytes: usize) -> ProduceRequest {
    let mut builder = RecordBatchBuilder::new();
    builder.push(1_700_000_000_000, None, Some(&vec![7u8; value_bytes]));
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(builder.build().unwrap())))])])
}

fn produce_error(mut body: Bytes) -> i16 {
    use bytes::Buf;
    assert_eq!(body.get_u8(), 0, "no tagged fields in the response header");
    let response = ProduceResponse::decode(&mut body, 9).unwrap();
    response.responses[0].partition_responses[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_requests_wait_for_room_in_queued_max_request_bytes() {
    let h = start_configured(GroupConfig::default(), |c| {
        c.socket_request_max_bytes = 1 << 20;
        c.queued_max_request_bytes = 1 << 20;
    })
    .await;
    // A: a 900 KB request, of which only the first half arrives for now.
    let mut a = TcpStream::connect(h.addr).await.unwrap();
    let big = frame(ApiKey::Produce, 9, 1, &produce(900_000));
    let half = big.len() / 2;
    a.write_all(&big[..half]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // B: a complete 300 KB request; the pool has no room for it while A's is held.
    let mut b = TcpStream::connect(h.addr).await.unwrap();
    b.write_all(&frame(ApiKey::Produce, 9, 2, &produce(300_000)))
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(1), read_frame(&mut b)).await;
    assert!(waited.is_err(), "B was answered while the pool was full");
    // Small requests do not draw on the pool.
    let mut c = TcpStream::connect(h.addr).await.unwrap();
    metadata(&mut c).await;
    // A completes: both are answered and appended.
    a.write_all(&big[half..]).await.unwrap();
    let (id, body) = read_frame(&mut a).await.unwrap();
    assert_eq!((id, produce_error(body)), (1, 0));
    let (id, body) = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut b))
        .await
        .expect("B answered once A's request ran")
        .unwrap();
    assert_eq!((id, produce_error(body)), (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_per_ip_changes_at_runtime() {
    use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let h = start().await;
    let mut admin = TcpStream::connect(h.addr).await.unwrap();
    let alter = |operation: i8, value: Option<&'static str>| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("1"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_static_str("max.connections.per.ip"))
                .with_config_operation(operation)
                .with_value(value.map(StrBytes::from_static_str))])])
    };
    let set: IncrementalAlterConfigsResponse =
        call(&mut admin, ApiKey::IncrementalAlterConfigs, 0, &alter(0, Some("2"))).await;
    assert_eq!(set.responses[0].error_code, 0);
    let mut second = TcpStream::connect(h.addr).await.unwrap();
    metadata(&mut second).await;
    let mut third = TcpStream::connect(h.addr).await.unwrap();
    assert!(is_closed(&mut third).await, "the new limit applies to the next accept");
    let deleted: IncrementalAlterConfigsResponse =
        call(&mut admin, ApiKey::IncrementalAlterConfigs, 0, &alter(1, None)).await;
    assert_eq!(deleted.responses[0].error_code, 0);
    let mut fourth = TcpStream::connect(h.addr).await.unwrap();
    metadata(&mut fourth).await;
}
