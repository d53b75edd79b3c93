//! One module per API family, each with `handle(context, request, version) -> response`.
//! This file holds the table of served versions and the dispatch.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::server::{Context, Peer};

pub mod api_versions;
pub mod cluster;
pub mod configs;
pub mod consumer_group;
pub mod fetch;
pub mod group_offsets;
pub mod groups;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod producer;
pub mod topics;
pub mod txn;

/// Served APIs and versions: (api, lowest decodable version, highest version).
/// Produce is advertised from v0 as Kafka 4.x does (KAFKA-18659: librdkafka sends
/// compressed batches only when v0 is listed); v0–v2 requests themselves are refused.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
];

/// The range listed in ApiVersions responses.
pub fn advertised_range(api_key: ApiKey, min: i16, max: i16) -> (i16, i16) {
    if api_key == ApiKey::Produce {
        (0, max)
    } else {
        (min, max)
    }
}

pub fn is_supported(api_key: ApiKey, version: i16) -> bool {
    SUPPORTED
        .iter()
        .any(|(key, min, max)| *key == api_key && (*min..=*max).contains(&version))
}

fn decode<T: Decodable>(api_key: ApiKey, body: &mut Bytes, version: i16) -> Result<T, String> {
    T::decode(body, version).map_err(|e| format!("malformed {api_key:?} v{version} request: {e}"))
}

fn encode<T: Encodable>(response: &T, version: i16) -> Result<Option<BytesMut>, String> {
    let mut out = BytesMut::new();
    response
        .encode(&mut out, version)
        .map_err(|e| format!("could not encode response: {e}"))?;
    Ok(Some(out))
}

/// Run one request; `Ok(None)` means no response is sent (acks=0 produce).
pub async fn dispatch(
    context: &Context,
    peer: &Peer,
    api_key: ApiKey,
    version: i16,
    mut body: Bytes,
) -> Result<Option<BytesMut>, String> {
    let body = &mut body;
    match api_key {
        ApiKey::ApiVersions => encode(&api_versions::handle(decode(api_key, body, version)?), version),
        ApiKey::Metadata => encode(
            &metadata::handle(context, decode(api_key, body, version)?, version).await,
            version,
        ),
        ApiKey::Produce => match produce::handle(context, decode(api_key, body, version)?, version).await {
            Some(response) => encode(&response, version),
            None => Ok(None),
        },
        ApiKey::Fetch => encode(
            &fetch::handle(context, decode(api_key, body, version)?, version).await,
            version,
        ),
        ApiKey::ListOffsets => encode(
            &offsets::list_offsets(context, decode(api_key, body, version)?, version),
            version,
        ),
        ApiKey::DeleteRecords => encode(
            &offsets::delete_records(context, decode(api_key, body, version)?).await,
            version,
        ),
        ApiKey::CreateTopics => encode(
            &topics::create_topics(context, decode(api_key, body, version)?).await,
            version,
        ),
        ApiKey::DeleteTopics => encode(
            &topics::delete_topics(context, decode(api_key, body, version)?).await,
            version,
        ),
        ApiKey::CreatePartitions => encode(
            &topics::create_partitions(context, decode(api_key, body, version)?).await,
            version,
        ),
        ApiKey::DescribeConfigs => encode(
            &configs::describe_configs(context, decode(api_key, body, version)?, version),
            version,
        ),
        ApiKey::AlterConfigs => encode(
            &configs::alter_configs(context, decode(api_key, body, version)?).await,
            version,
        ),
        ApiKey::IncrementalAlterConfigs => encode(
            &configs::incremental_alter_configs(context, decode(api_key, body, version)?).await,
            version,
        ),
        ApiKey::DescribeCluster => encode(
            &cluster::describe_cluster(context, decode(api_key, body, version)?),
            version,
        ),
        ApiKey::FindCoordinator => encode(
            &groups::find_coordinator(context, decode(api_key, body, version)?, version).await,
            version,
        ),
        ApiKey::JoinGroup => encode(
            &groups::join_group(context, peer, decode(api_key, body, version)?, version).await,
            version,
        ),
        ApiKey::SyncGroup => encode(
            &groups::sync_group(context, decode(api_key, body, version)?, version).await,
            version,
        ),
        ApiKey::Heartbeat => encode(&groups::heartbeat(context, decode(api_key, body, version)?), version),
        ApiKey::LeaveGroup => encode(
            &groups::leave_group(context, decode(api_key, body, version)?, version),
            version,
        ),
        ApiKey::DescribeGroups => encode(
            &groups::describe_groups(context, decode(api_key, body, version)?, version),
            version,
        ),
        ApiKey::ListGroups => encode(
            &groups::list_groups(context, decode(api_key, body, version)?, version),
            version,
        ),
        ApiKey::DeleteGroups => encode(
            &groups::delete_groups(context, decode(api_key, body, version)?).await,
            version,
        ),
        ApiKey::OffsetCommit => encode(
            &group_offsets::offset_commit(context, decode(api_key, body, version)?).await,
            version,
        ),
        ApiKey::OffsetFetch => encode(
            &group_offsets::offset_fetch(context, decode(api_key, body, version)?, version),
            version,
        ),
        ApiKey::OffsetDelete => encode(
            &group_offsets::offset_delete(context, decode(api_key, body, version)?).await,
            version,
        ),
        ApiKey::ConsumerGroupHeartbeat => encode(
            &consumer_group::heartbeat(context, peer, decode(api_key, body, version)?, version),
            version,
        ),
        ApiKey::ConsumerGroupDescribe => encode(
            &consumer_group::describe(context, decode(api_key, body, version)?),
            version,
        ),
        ApiKey::InitProducerId => encode(
            &producer::init_producer_id(context, decode(api_key, body, version)?).await,
            version,
        ),
        ApiKey::DescribeProducers => encode(
            &producer::describe_producers(context, decode(api_key, body, version)?),
            version,
        ),
        ApiKey::AddPartitionsToTxn => encode(
            &txn::add_partitions(context, decode(api_key, body, version)?, version).await,
            version,
        ),
        ApiKey::AddOffsetsToTxn => encode(
            &txn::add_offsets(context, decode(api_key, body, version)?).await,
            version,
        ),
        ApiKey::EndTxn => encode(&txn::end_txn(context, decode(api_key, body, version)?).await, version),
        ApiKey::TxnOffsetCommit => encode(
            &txn::txn_offset_commit(context, decode(api_key, body, version)?).await,
            version,
        ),
        ApiKey::DescribeTransactions => encode(
            &txn::describe_transactions(context, decode(api_key, body, version)?),
            version,
        ),
        ApiKey::ListTransactions => encode(
            &txn::list_transactions(context, decode(api_key, body, version)?),
            version,
        ),
        other => Err(format!("{other:?} is not served")),
    }
}

/// Run blocking broker work (file system, fsync) off the I/O threads.
pub(crate) async fn blocking<T, F>(context: &Context, work: F) -> T
where
    F: FnOnce(&strom_broker::Broker) -> T + Send + 'static,
    T: Send + 'static,
{
    let broker = context.broker.clone();
    match tokio::task::spawn_blocking(move || work(&broker)).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

pub(crate) fn str_bytes(s: impl Into<String>) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.into())
}
