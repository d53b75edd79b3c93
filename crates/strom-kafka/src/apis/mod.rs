//! One module per API family, each with `handle(context, request, version) -> response`.
//! This file holds the table of served versions and the dispatch.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::context::{Context, Peer};
use crate::outbound::Outbound;

pub mod api_versions;
pub mod cluster;
pub mod configs;
pub mod consumer_group;
pub mod fetch;
pub mod group_offsets;
pub mod groups;
pub mod leader_epoch;
pub mod leader_hints;
pub mod log_dirs;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod producer;
pub mod reassign;
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
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::UnregisterBroker, 0, 0),
    (ApiKey::AddRaftVoter, 0, 0),
    (ApiKey::RemoveRaftVoter, 0, 0),
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
    // Inter-broker: coordinators send it to partition leaders. kafka-protocol (as
    // Kafka 4) defines v1 only.
    (ApiKey::WriteTxnMarkers, 1, 1),
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

/// A response that is finished later (an acks=all Produce waiting for its fsync): the
/// framed response bytes, or the reason to close the connection.
pub type Deferred = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Outbound, String>> + Send>>;

/// What frames a response: the request's correlation id, API and version.
#[derive(Debug, Clone, Copy)]
pub struct ResponseHeader {
    pub correlation_id: i32,
    pub api_key: ApiKey,
    pub version: i16,
}

impl ResponseHeader {
    /// Appends length, response header and body to `output`.
    pub(crate) fn write<T: Encodable>(&self, output: &mut BytesMut, response: &T) -> Result<(), String> {
        let start = output.len();
        output.put_i32(0);
        output.put_i32(self.correlation_id);
        if self.api_key.response_header_version(self.version) >= 1 {
            output.put_u8(0); // no tagged fields
        }
        if let Err(e) = response.encode(output, self.version) {
            output.truncate(start);
            return Err(format!("could not encode response: {e}"));
        }
        let length = (output.len() - start - 4) as i32;
        output[start..start + 4].copy_from_slice(&length.to_be_bytes());
        Ok(())
    }
}

/// Writes a response straight into the connection's output buffer: length, response
/// header, body (one copy of the body, not two); or takes a [`Deferred`] response.
pub struct ResponseWriter<'a> {
    pub output: &'a mut Outbound,
    pub header: ResponseHeader,
    pub deferred: Option<Deferred>,
}

impl ResponseWriter<'_> {
    fn write<T: Encodable>(&mut self, response: &T) -> Result<(), String> {
        self.header.write(self.output.buffer(), response)
    }

    fn defer(&mut self, response: Deferred) {
        self.deferred = Some(response);
    }
}

pub async fn dispatch(
    context: &Context,
    peer: &Peer,
    api_key: ApiKey,
    version: i16,
    mut body: Bytes,
    w: &mut ResponseWriter<'_>,
) -> Result<(), String> {
    let body = &mut body;
    match api_key {
        ApiKey::ApiVersions => w.write(&api_versions::handle(decode(api_key, body, version)?)),
        ApiKey::Metadata => w.write(&metadata::handle(context, peer, decode(api_key, body, version)?, version).await),
        ApiKey::Produce => {
            match produce::append_all(context, &peer.caller, decode(api_key, body, version)?, version)
                .await
                .ready()
            {
                Ok(Some(mut response)) => {
                    leader_hints::produce(&context.api, &context.config.listener_name, &mut response, version);
                    w.write(&response)
                }
                Ok(None) => Ok(()),
                Err(appended) => {
                    let header = w.header;
                    let (api, listener) = (context.api.clone(), context.config.listener_name.clone());
                    w.defer(Box::pin(async move {
                        let mut output = BytesMut::new();
                        if let Some(mut response) = appended.durable().await {
                            leader_hints::produce(&api, &listener, &mut response, version);
                            header.write(&mut output, &response)?;
                        }
                        Ok(Outbound::from(output))
                    }));
                    Ok(())
                }
            }
        }
        ApiKey::Fetch => {
            let (mut response, files) = fetch::handle(context, peer, decode(api_key, body, version)?, version).await;
            leader_hints::fetch(&context.api, &context.config.listener_name, &mut response, version);
            fetch::write(w.output, w.header, &response, files)
        }
        ApiKey::ListOffsets => {
            w.write(&offsets::list_offsets(context, peer, decode(api_key, body, version)?, version).await)
        }
        ApiKey::DeleteRecords => {
            w.write(&offsets::delete_records(context, peer, decode(api_key, body, version)?).await)
        }
        ApiKey::CreateTopics => w.write(&topics::create_topics(context, peer, decode(api_key, body, version)?).await),
        ApiKey::DeleteTopics => w.write(&topics::delete_topics(context, peer, decode(api_key, body, version)?).await),
        ApiKey::CreatePartitions => {
            w.write(&topics::create_partitions(context, peer, decode(api_key, body, version)?).await)
        }
        ApiKey::DescribeConfigs => w.write(&configs::describe_configs(
            context,
            peer,
            decode(api_key, body, version)?,
            version,
        )),
        ApiKey::AlterConfigs => w.write(&configs::alter_configs(context, peer, decode(api_key, body, version)?).await),
        ApiKey::IncrementalAlterConfigs => {
            w.write(&configs::incremental_alter_configs(context, peer, decode(api_key, body, version)?).await)
        }
        ApiKey::DescribeCluster => w.write(&cluster::describe_cluster(context, decode(api_key, body, version)?)),
        ApiKey::DescribeQuorum => {
            w.write(&cluster::describe_quorum(context, peer, decode(api_key, body, version)?).await)
        }
        ApiKey::ElectLeaders => w.write(&cluster::elect_leaders(context, peer, decode(api_key, body, version)?).await),
        ApiKey::AlterPartitionReassignments => {
            w.write(&reassign::alter(context, peer, decode(api_key, body, version)?).await)
        }
        ApiKey::ListPartitionReassignments => w.write(&reassign::list(context, peer, decode(api_key, body, version)?)),
        ApiKey::DescribeLogDirs => w.write(&log_dirs::describe(context, peer, decode(api_key, body, version)?)),
        ApiKey::OffsetForLeaderEpoch => w.write(&leader_epoch::handle(context, peer, decode(api_key, body, version)?)),
        ApiKey::UnregisterBroker => {
            w.write(&cluster::unregister_broker(context, peer, decode(api_key, body, version)?).await)
        }
        ApiKey::AddRaftVoter => w.write(&cluster::add_raft_voter(context, peer, decode(api_key, body, version)?).await),
        ApiKey::RemoveRaftVoter => {
            w.write(&cluster::remove_raft_voter(context, peer, decode(api_key, body, version)?).await)
        }
        ApiKey::FindCoordinator => {
            w.write(&groups::find_coordinator(context, peer, decode(api_key, body, version)?, version).await)
        }
        ApiKey::JoinGroup => {
            w.write(&groups::join_group(context, peer, decode(api_key, body, version)?, version).await)
        }
        ApiKey::SyncGroup => {
            w.write(&groups::sync_group(context, peer, decode(api_key, body, version)?, version).await)
        }
        ApiKey::Heartbeat => w.write(&groups::heartbeat(context, peer, decode(api_key, body, version)?)),
        ApiKey::LeaveGroup => w.write(&groups::leave_group(
            context,
            peer,
            decode(api_key, body, version)?,
            version,
        )),
        ApiKey::DescribeGroups => w.write(&groups::describe_groups(
            context,
            peer,
            decode(api_key, body, version)?,
            version,
        )),
        ApiKey::ListGroups => w.write(&groups::list_groups(
            context,
            peer,
            decode(api_key, body, version)?,
            version,
        )),
        ApiKey::DeleteGroups => w.write(&groups::delete_groups(context, peer, decode(api_key, body, version)?).await),
        ApiKey::OffsetCommit => {
            w.write(&group_offsets::offset_commit(context, peer, decode(api_key, body, version)?).await)
        }
        ApiKey::OffsetFetch => w.write(&group_offsets::offset_fetch(
            context,
            peer,
            decode(api_key, body, version)?,
            version,
        )),
        ApiKey::OffsetDelete => {
            w.write(&group_offsets::offset_delete(context, peer, decode(api_key, body, version)?).await)
        }
        ApiKey::ConsumerGroupHeartbeat => w.write(&consumer_group::heartbeat(
            context,
            peer,
            decode(api_key, body, version)?,
            version,
        )),
        ApiKey::ConsumerGroupDescribe => w.write(&consumer_group::describe(
            context,
            peer,
            decode(api_key, body, version)?,
        )),
        ApiKey::InitProducerId => {
            w.write(&producer::init_producer_id(context, peer, decode(api_key, body, version)?).await)
        }
        ApiKey::DescribeProducers => w.write(&producer::describe_producers(
            context,
            peer,
            decode(api_key, body, version)?,
        )),
        ApiKey::AddPartitionsToTxn => {
            w.write(&txn::add_partitions(context, peer, decode(api_key, body, version)?, version).await)
        }
        ApiKey::AddOffsetsToTxn => w.write(&txn::add_offsets(context, peer, decode(api_key, body, version)?).await),
        ApiKey::EndTxn => w.write(&txn::end_txn(context, peer, decode(api_key, body, version)?).await),
        ApiKey::TxnOffsetCommit => {
            w.write(&txn::txn_offset_commit(context, peer, decode(api_key, body, version)?).await)
        }
        ApiKey::DescribeTransactions => w.write(&txn::describe_transactions(
            context,
            peer,
            decode(api_key, body, version)?,
        )),
        ApiKey::ListTransactions => w.write(&txn::list_transactions(context, peer, decode(api_key, body, version)?)),
        ApiKey::WriteTxnMarkers => {
            w.write(&txn::write_txn_markers(context, peer, decode(api_key, body, version)?).await)
        }
        other => Err(format!("{other:?} is not served")),
    }
}

/// A result the broker should have returned for a request's item but did not (the
/// façade answers every item; this keeps a short answer from becoming a panic).
pub(crate) fn missing_result<T>() -> Result<T, strom_broker::BrokerError> {
    Err(strom_broker::BrokerError::Internal("missing result".into()))
}

pub(crate) fn str_bytes(s: impl Into<String>) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.into())
}
