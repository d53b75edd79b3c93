//! Shared harness for the wire tests: the real listener on a local port, raw frames.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strom_broker::group::GroupConfig;
use strom_broker::{Broker, BrokerApi, BrokerConfig, NewTopic};
use strom_kafka::{Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Harness {
    pub addr: SocketAddr,
    pub api: std::sync::Arc<BrokerApi>,
    _dir: tempfile::TempDir,
}

pub async fn start() -> Harness {
    start_with(GroupConfig::default()).await
}

pub async fn start_with(group_config: GroupConfig) -> Harness {
    start_configured(group_config, |_| {}).await
}

/// A harness whose listener settings `configure` adjusts.
pub async fn start_configured(group_config: GroupConfig, configure: impl FnOnce(&mut ServerConfig)) -> Harness {
    start_full(
        group_config,
        configure,
        std::sync::Arc::new(strom_broker::caller::AllowAll),
    )
    .await
}

/// A harness whose broker asks `authorizer`.
pub async fn start_authorized(authorizer: std::sync::Arc<dyn strom_broker::caller::Authorizer>) -> Harness {
    start_full(GroupConfig::default(), |_| {}, authorizer).await
}

async fn start_full(
    group_config: GroupConfig,
    configure: impl FnOnce(&mut ServerConfig),
    authorizer: std::sync::Arc<dyn strom_broker::caller::Authorizer>,
) -> Harness {
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
    let config = ServerConfig {
        listener_name: "PLAINTEXT".into(),
        bind: "127.0.0.1:0".parse().unwrap(),
        advertised_host: "127.0.0.1".into(),
        advertised_port: 0,
        socket_request_max_bytes: 8 << 20,
        max_connections: 100,
        max_connections_per_ip: usize::MAX,
        connections_max_idle_ms: 600_000,
        queued_max_request_bytes: 200 << 20,
    };
    let mut config = config;
    configure(&mut config);
    let markers = std::sync::Arc::new(strom_kafka::TxnMarkerClient::new(&config.listener_name));
    let fetcher = std::sync::Arc::new(strom_kafka::ReplicaFetchClient::new(strom_kafka::PeerAddresses::new(
        &config.listener_name,
    )));
    let api = BrokerApi::start_opened(broker, group_config, Default::default(), authorizer, markers, fetcher)
        .await
        .unwrap();
    let server = Server::bind(config, api.clone()).await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.run());
    Harness { addr, api, _dir: dir }
}

pub fn frame<T: Encodable>(api_key: ApiKey, version: i16, correlation_id: i32, body: &T) -> BytesMut {
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
pub async fn read_frame(stream: &mut TcpStream) -> Option<(i32, Bytes)> {
    let len = stream.read_i32().await.ok()?;
    let mut buf = vec![0u8; len as usize];
    stream.read_exact(&mut buf).await.ok()?;
    let mut buf = Bytes::from(buf);
    let correlation_id = buf.get_i32();
    Some((correlation_id, buf))
}

pub async fn call<Req: Encodable, Resp: Decodable>(
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

pub async fn still_serves(addr: SocketAddr) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let response: MetadataResponse = call(
        &mut stream,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    )
    .await;
    assert!(response
        .topics
        .iter()
        .any(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "t")));
}

pub async fn is_closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}
