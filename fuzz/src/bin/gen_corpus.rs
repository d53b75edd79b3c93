//! Writes the seed corpora under `fuzz/corpus/<target>/`: a few valid requests, frames
//! and batches in each target's input layout (see `src/lib.rs`), so the fuzzer starts
//! from inputs that get deep into the decoders. Run: `cargo afl run --bin gen_corpus`
//! (or plain `cargo run`) in `fuzz/`; the output is committed.

use std::fs;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use strom_kafka::SUPPORTED;
use strom_log::compression::Compression;
use strom_log::RecordBatchBuilder;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        fs::create_dir_all(&dir).expect("create corpus directory");
        fs::write(dir.join(name), bytes).expect("write seed");
    };

    let requests = requests();
    for (name, request) in &requests {
        write("request_header", name, request);
    }

    // Two requests back to back, read in 7-byte chunks under the default cap; and a
    // torn one.
    let mut stream = Vec::new();
    for (_, request) in requests.iter().take(2) {
        stream.extend_from_slice(&(request.len() as i32).to_be_bytes());
        stream.extend_from_slice(request);
    }
    write("frame", "two_requests", &[[(6 << 2) | 3].as_slice(), &stream].concat());
    let torn = &stream[..stream.len() - 3];
    write("frame", "torn", &[[(63 << 2) | 3].as_slice(), torn].concat());
    write("frame", "too_large", &[2u8, 0, 0, 4, 1, 0, 0, 0, 0]);

    // Every served API's default body at its lowest and highest version.
    for (index, (api_key, min, max)) in SUPPORTED.iter().enumerate() {
        for version in [*min, *max] {
            let Some(body) = default_body(*api_key, version) else {
                continue;
            };
            let pick = (version - min) as u8;
            let name = format!("{api_key:?}_v{version}");
            write("request_body", &name, &[[index as u8, pick].as_slice(), &body].concat());
        }
    }

    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let batch = sample_batch(codec);
        let name = format!("{codec:?}").to_lowercase();
        write("batch", &name, &[[0u8].as_slice(), &batch].concat());
        write("records", &name, &[[0u8].as_slice(), &batch].concat());
    }
    // Two batches back to back; a batch whose CRC is for the fuzzer to fix.
    let batch = sample_batch(Compression::None);
    write("batch", "two_batches", &[[0u8].as_slice(), &batch, &batch].concat());
    let mut damaged = batch.clone();
    damaged[17] ^= 0xff;
    write("batch", "fix_crc", &[[1u8].as_slice(), &damaged].concat());
    let transactional = {
        let mut builder = RecordBatchBuilder::new().producer(7, 1, 0).flags(true, false);
        builder.push(1_700_000_000_000, Some(b"k"), Some(b"v"));
        builder.build().expect("build batch")
    };
    write("batch", "transactional", &[[0u8].as_slice(), &transactional].concat());
    // Uncompressed records under a zstd header, compressed by the target (control bit 0).
    let mut zstd_header = batch.clone();
    zstd_header[22] |= Compression::Zstd.codec();
    write("records", "compress_zstd", &[[1u8].as_slice(), &zstd_header].concat());
}

fn sample_batch(codec: Compression) -> Vec<u8> {
    let mut builder = RecordBatchBuilder::new().compression(codec);
    builder.push(1_700_000_000_000, Some(b"key"), Some(b"value"));
    builder.push(1_700_000_000_005, None, Some(b"second value"));
    builder.push(1_700_000_000_003, Some(b"key"), None);
    builder.build().expect("build batch")
}

/// Full request frames (header and body, without the length prefix) of a few APIs.
fn requests() -> Vec<(String, Vec<u8>)> {
    let topic = |name: &'static str| TopicName(StrBytes::from_static_str(name));
    let mut out = Vec::new();
    let mut add = |api_key: ApiKey, version: i16, body: Vec<u8>| {
        let mut frame = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(1)
            .with_client_id(Some(StrBytes::from_static_str("fuzz")))
            .encode(&mut frame, api_key.request_header_version(version))
            .expect("encode header");
        frame.extend_from_slice(&body);
        out.push((format!("{api_key:?}_v{version}"), frame.to_vec()));
    };
    add(ApiKey::ApiVersions, 3, default_body(ApiKey::ApiVersions, 3).unwrap());
    add(ApiKey::ApiVersions, 0, default_body(ApiKey::ApiVersions, 0).unwrap());
    let metadata =
        MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic("t")))]));
    add(ApiKey::Metadata, 12, encode(&metadata, 12).unwrap());
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic("t"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(sample_batch(Compression::None))))])]);
    add(ApiKey::Produce, 9, encode(&produce, 9).unwrap());
    add(ApiKey::Produce, 3, encode(&produce, 3).unwrap());
    for (api_key, version) in [
        (ApiKey::Fetch, 12),
        (ApiKey::FindCoordinator, 4),
        (ApiKey::JoinGroup, 9),
        (ApiKey::CreateTopics, 7),
        (ApiKey::OffsetCommit, 8),
        (ApiKey::InitProducerId, 4),
        (ApiKey::ConsumerGroupHeartbeat, 1),
    ] {
        add(api_key, version, default_body(api_key, version).unwrap());
    }
    out
}

fn encode<T: Encodable>(body: &T, version: i16) -> Option<Vec<u8>> {
    let mut out = BytesMut::new();
    body.encode(&mut out, version).ok()?;
    Some(out.to_vec())
}

/// The default (empty) request body of a served API.
fn default_body(api_key: ApiKey, version: i16) -> Option<Vec<u8>> {
    macro_rules! body {
        ($request:ty) => {
            encode(&<$request>::default(), version)
        };
    }
    match api_key {
        ApiKey::ApiVersions => body!(ApiVersionsRequest),
        ApiKey::Metadata => body!(MetadataRequest),
        ApiKey::Produce => body!(ProduceRequest),
        ApiKey::Fetch => body!(FetchRequest),
        ApiKey::ListOffsets => body!(ListOffsetsRequest),
        ApiKey::DeleteRecords => body!(DeleteRecordsRequest),
        ApiKey::CreateTopics => body!(CreateTopicsRequest),
        ApiKey::DeleteTopics => body!(DeleteTopicsRequest),
        ApiKey::CreatePartitions => body!(CreatePartitionsRequest),
        ApiKey::DescribeConfigs => body!(DescribeConfigsRequest),
        ApiKey::AlterConfigs => body!(AlterConfigsRequest),
        ApiKey::IncrementalAlterConfigs => body!(IncrementalAlterConfigsRequest),
        ApiKey::DescribeCluster => body!(DescribeClusterRequest),
        ApiKey::FindCoordinator => body!(FindCoordinatorRequest),
        ApiKey::JoinGroup => body!(JoinGroupRequest),
        ApiKey::SyncGroup => body!(SyncGroupRequest),
        ApiKey::Heartbeat => body!(HeartbeatRequest),
        ApiKey::LeaveGroup => body!(LeaveGroupRequest),
        ApiKey::DescribeGroups => body!(DescribeGroupsRequest),
        ApiKey::ListGroups => body!(ListGroupsRequest),
        ApiKey::DeleteGroups => body!(DeleteGroupsRequest),
        ApiKey::OffsetCommit => body!(OffsetCommitRequest),
        ApiKey::OffsetFetch => body!(OffsetFetchRequest),
        ApiKey::OffsetDelete => body!(OffsetDeleteRequest),
        ApiKey::ConsumerGroupHeartbeat => body!(ConsumerGroupHeartbeatRequest),
        ApiKey::ConsumerGroupDescribe => body!(ConsumerGroupDescribeRequest),
        ApiKey::InitProducerId => body!(InitProducerIdRequest),
        ApiKey::DescribeProducers => body!(DescribeProducersRequest),
        ApiKey::AddPartitionsToTxn => body!(AddPartitionsToTxnRequest),
        ApiKey::AddOffsetsToTxn => body!(AddOffsetsToTxnRequest),
        ApiKey::EndTxn => body!(EndTxnRequest),
        ApiKey::TxnOffsetCommit => body!(TxnOffsetCommitRequest),
        ApiKey::DescribeTransactions => body!(DescribeTransactionsRequest),
        ApiKey::ListTransactions => body!(ListTransactionsRequest),
        ApiKey::WriteTxnMarkers => body!(WriteTxnMarkersRequest),
        _ => None,
    }
}
