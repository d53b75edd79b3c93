//! No count read off the wire may size an allocation before the bytes behind it exist.
//! Every served API and version gets requests whose array, string or bytes lengths claim
//! billions of entries; the broker must refuse them (close the connection) and keep serving.
//! Before the decoders checked lengths against the bytes left, the first of these requests
//! aborted the whole process on a failed allocation.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request body of `api` at `version` with default (mostly empty) fields.
fn default_body(api: ApiKey, version: i16) -> Option<BytesMut> {
    macro_rules! encoded {
        ($request:expr) => {{
            let mut body = BytesMut::new();
            $request.encode(&mut body, version).ok().map(|_| body)
        }};
    }
    match api {
        ApiKey::Produce => encoded!(ProduceRequest::default()),
        ApiKey::Fetch => encoded!(FetchRequest::default()),
        ApiKey::ListOffsets => encoded!(ListOffsetsRequest::default()),
        ApiKey::Metadata => encoded!(MetadataRequest::default()),
        ApiKey::ApiVersions => encoded!(ApiVersionsRequest::default()),
        ApiKey::CreateTopics => encoded!(CreateTopicsRequest::default()),
        ApiKey::DeleteTopics => encoded!(DeleteTopicsRequest::default()),
        ApiKey::DeleteRecords => encoded!(DeleteRecordsRequest::default()),
        ApiKey::DescribeConfigs => encoded!(DescribeConfigsRequest::default()),
        ApiKey::AlterConfigs => encoded!(AlterConfigsRequest::default()),
        ApiKey::CreatePartitions => encoded!(CreatePartitionsRequest::default()),
        ApiKey::IncrementalAlterConfigs => encoded!(IncrementalAlterConfigsRequest::default()),
        ApiKey::DescribeCluster => encoded!(DescribeClusterRequest::default()),
        ApiKey::FindCoordinator => encoded!(FindCoordinatorRequest::default()),
        ApiKey::JoinGroup => encoded!(JoinGroupRequest::default()),
        ApiKey::SyncGroup => encoded!(SyncGroupRequest::default()),
        ApiKey::Heartbeat => encoded!(HeartbeatRequest::default()),
        ApiKey::LeaveGroup => encoded!(LeaveGroupRequest::default()),
        ApiKey::OffsetCommit => encoded!(OffsetCommitRequest::default()),
        ApiKey::OffsetFetch => encoded!(OffsetFetchRequest::default()),
        ApiKey::OffsetDelete => encoded!(OffsetDeleteRequest::default()),
        ApiKey::DescribeGroups => encoded!(DescribeGroupsRequest::default()),
        ApiKey::ListGroups => encoded!(ListGroupsRequest::default()),
        ApiKey::DeleteGroups => encoded!(DeleteGroupsRequest::default()),
        ApiKey::ConsumerGroupHeartbeat => encoded!(ConsumerGroupHeartbeatRequest::default()),
        ApiKey::ConsumerGroupDescribe => encoded!(ConsumerGroupDescribeRequest::default()),
        ApiKey::InitProducerId => encoded!(InitProducerIdRequest::default()),
        ApiKey::DescribeProducers => encoded!(DescribeProducersRequest::default()),
        ApiKey::AlterPartitionReassignments => encoded!(AlterPartitionReassignmentsRequest::default()),
        ApiKey::ListPartitionReassignments => encoded!(ListPartitionReassignmentsRequest::default()),
        ApiKey::DescribeLogDirs => encoded!(DescribeLogDirsRequest::default()),
        ApiKey::OffsetForLeaderEpoch => encoded!(OffsetForLeaderEpochRequest::default()),
        ApiKey::AddPartitionsToTxn => encoded!(AddPartitionsToTxnRequest::default()),
        ApiKey::AddOffsetsToTxn => encoded!(AddOffsetsToTxnRequest::default()),
        ApiKey::EndTxn => encoded!(EndTxnRequest::default()),
        ApiKey::TxnOffsetCommit => encoded!(TxnOffsetCommitRequest::default()),
        ApiKey::DescribeTransactions => encoded!(DescribeTransactionsRequest::default()),
        ApiKey::ListTransactions => encoded!(ListTransactionsRequest::default()),
        ApiKey::DescribeQuorum => encoded!(DescribeQuorumRequest::default()),
        ApiKey::ElectLeaders => encoded!(ElectLeadersRequest::default()),
        ApiKey::UnregisterBroker => encoded!(UnregisterBrokerRequest::default()),
        ApiKey::AddRaftVoter => encoded!(AddRaftVoterRequest::default()),
        ApiKey::RemoveRaftVoter => encoded!(RemoveRaftVoterRequest::default()),
        ApiKey::WriteTxnMarkers => encoded!(WriteTxnMarkersRequest::default()),
        other => panic!("{other:?} is served but this test has no request for it"),
    }
}

/// Bodies with one element at each level, so that nested counts are mutated too.
fn nested_bodies(api: ApiKey, version: i16) -> Vec<BytesMut> {
    use kafka_protocol::messages::add_partitions_to_txn_request::*;
    use kafka_protocol::messages::fetch_request::*;
    use kafka_protocol::messages::list_offsets_request::*;
    use kafka_protocol::messages::offset_commit_request::*;
    use kafka_protocol::messages::offset_fetch_request::*;
    use kafka_protocol::messages::produce_request::*;
    use kafka_protocol::messages::write_txn_markers_request::*;
    let name = || TopicName(StrBytes::from_static_str("t"));
    let mut bodies = Vec::new();
    let mut push = |result: Option<BytesMut>| bodies.extend(result);
    macro_rules! encoded {
        ($request:expr) => {{
            let mut body = BytesMut::new();
            $request.encode(&mut body, version).ok().map(|_| body)
        }};
    }
    match api {
        ApiKey::Produce => push(encoded!(ProduceRequest::default().with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name())
                .with_partition_data(vec![PartitionProduceData::default().with_records(Some(Bytes::new()))])
        ]))),
        ApiKey::Fetch => push(encoded!(FetchRequest::default()
            .with_topics(vec![FetchTopic::default()
                .with_topic(name())
                .with_partitions(vec![FetchPartition::default()])])
            .with_forgotten_topics_data(vec![ForgottenTopic::default()
                .with_topic(name())
                .with_partitions(vec![0])]))),
        ApiKey::ListOffsets => push(encoded!(ListOffsetsRequest::default().with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(name())
                .with_partitions(vec![ListOffsetsPartition::default()])
        ]))),
        ApiKey::OffsetCommit => push(encoded!(OffsetCommitRequest::default().with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(name())
                .with_partitions(vec![OffsetCommitRequestPartition::default()])
        ]))),
        ApiKey::OffsetFetch => {
            push(encoded!(OffsetFetchRequest::default().with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(name())
                    .with_partition_indexes(vec![0])
            ]))));
            push(encoded!(OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default().with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(name())
                    .with_partition_indexes(vec![0])]))
            ])));
        }
        ApiKey::AddPartitionsToTxn => {
            push(encoded!(AddPartitionsToTxnRequest::default().with_v3_and_below_topics(
                vec![AddPartitionsToTxnTopic::default()
                    .with_name(name())
                    .with_partitions(vec![0])]
            )));
            push(encoded!(AddPartitionsToTxnRequest::default().with_transactions(vec![
                AddPartitionsToTxnTransaction::default().with_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(name())
                    .with_partitions(vec![0])])
            ])));
        }
        ApiKey::WriteTxnMarkers => push(encoded!(WriteTxnMarkersRequest::default().with_markers(vec![
            WritableTxnMarker::default().with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(name())
                .with_partition_indexes(vec![0])])
        ]))),
        _ => {}
    }
    bodies
}

/// `body` with a huge length at every position: 4-byte counts written over the body and
/// inserted into it, and varint (compact) counts inserted.
fn mutations(body: &[u8]) -> Vec<Vec<u8>> {
    const INT32_MAX: [u8; 4] = [0x7f, 0xff, 0xff, 0xff];
    const VARINT_U32_MAX: [u8; 5] = [0xff, 0xff, 0xff, 0xff, 0x0f];
    let mut out = Vec::new();
    for at in 0..=body.len() {
        if at + 4 <= body.len() {
            let mut overwritten = body.to_vec();
            overwritten[at..at + 4].copy_from_slice(&INT32_MAX);
            out.push(overwritten);
        }
        for insert in [&INT32_MAX[..], &VARINT_U32_MAX[..]] {
            let mut inserted = body[..at].to_vec();
            inserted.extend_from_slice(insert);
            inserted.extend_from_slice(&body[at..]);
            out.push(inserted);
        }
    }
    out
}

fn framed(api: ApiKey, version: i16, body: &[u8]) -> BytesMut {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("huge-counts")));
    let mut payload = BytesMut::new();
    header
        .encode(&mut payload, api.request_header_version(version))
        .unwrap();
    payload.extend_from_slice(body);
    let mut out = BytesMut::new();
    out.put_i32(payload.len() as i32);
    out.extend_from_slice(&payload);
    out
}

/// Sends one request and waits for its answer or for the connection to close.
async fn send(addr: std::net::SocketAddr, request: &[u8]) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut sink = [0u8; 4096];
    // A close is the expected outcome. An answer, or a wait (a mutation that decoded after
    // all, say a long-poll Fetch with a huge max wait), is fine too: what matters is that
    // the broker survives, which the caller checks.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), stream.read(&mut sink)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reported_metadata_request_is_refused_and_the_broker_keeps_serving() {
    let h = start().await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    // Metadata v1 whose topics array claims 2^31-1 entries.
    let request = [
        0x00, 0x00, 0x00, 0x0e, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff,
    ];
    stream.write_all(&request).await.unwrap();
    assert!(
        is_closed(&mut stream).await,
        "a malformed request closes its connection"
    );
    still_serves(h.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_counts_in_every_served_api_are_refused_without_allocating() {
    use futures_util::stream::StreamExt;
    let h = start().await;
    let mut requests = Vec::new();
    for (api, min, max) in strom_kafka::SUPPORTED {
        for version in *min..=*max {
            let mut bodies: Vec<BytesMut> = default_body(*api, version).into_iter().collect();
            bodies.extend(nested_bodies(*api, version));
            assert!(!bodies.is_empty(), "{api:?} v{version}: no request body to mutate");
            for body in bodies {
                requests.extend(mutations(&body).iter().map(|m| framed(*api, version, m)));
            }
        }
    }
    assert!(requests.len() > 5_000, "only {} requests", requests.len());
    // Many at once: the waits of mutations that decoded into long polls overlap.
    futures_util::stream::iter(requests.iter())
        .for_each_concurrent(64, |request| send(h.addr, request))
        .await;
    still_serves(h.addr).await;
}
