//! Decode-only entry points for the fuzz targets in `fuzz/`: a request's header and body
//! decoded as a connection decodes them, without a broker or a socket.
//!
//! The prefix and header go through the connection's own `parse_request`. The bodies:
//! `apis::dispatch` decodes and runs a request in one go and needs a broker, so this
//! names, for each served API, the body type its handler takes; a test below keeps that
//! table in step with `apis::SUPPORTED`.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

pub use crate::apis::is_supported;
use crate::connection::Parsed;

/// The frame parser, for the `frame` target.
pub mod frame {
    pub use crate::frame::{parse, pending, FrameError};
}

/// Decodes one request body of a given API version, dropping the result.
pub type BodyDecoder = fn(&mut Bytes, i16) -> Result<(), String>;

fn decode<T: Decodable>(body: &mut Bytes, version: i16) -> Result<(), String> {
    T::decode(body, version).map(drop).map_err(|e| e.to_string())
}

/// The body decoder `apis::dispatch` uses for `api_key`, or `None` for an API it does not
/// serve.
pub fn body_decoder(api_key: ApiKey) -> Option<BodyDecoder> {
    let decoder: BodyDecoder = match api_key {
        ApiKey::ApiVersions => decode::<ApiVersionsRequest>,
        ApiKey::Metadata => decode::<MetadataRequest>,
        ApiKey::Produce => decode::<ProduceRequest>,
        ApiKey::Fetch => decode::<FetchRequest>,
        ApiKey::ListOffsets => decode::<ListOffsetsRequest>,
        ApiKey::DeleteRecords => decode::<DeleteRecordsRequest>,
        ApiKey::CreateTopics => decode::<CreateTopicsRequest>,
        ApiKey::DeleteTopics => decode::<DeleteTopicsRequest>,
        ApiKey::CreatePartitions => decode::<CreatePartitionsRequest>,
        ApiKey::DescribeConfigs => decode::<DescribeConfigsRequest>,
        ApiKey::AlterConfigs => decode::<AlterConfigsRequest>,
        ApiKey::IncrementalAlterConfigs => decode::<IncrementalAlterConfigsRequest>,
        ApiKey::DescribeCluster => decode::<DescribeClusterRequest>,
        ApiKey::DescribeQuorum => decode::<DescribeQuorumRequest>,
        ApiKey::ElectLeaders => decode::<ElectLeadersRequest>,
        ApiKey::UnregisterBroker => decode::<UnregisterBrokerRequest>,
        ApiKey::AddRaftVoter => decode::<AddRaftVoterRequest>,
        ApiKey::RemoveRaftVoter => decode::<RemoveRaftVoterRequest>,
        ApiKey::FindCoordinator => decode::<FindCoordinatorRequest>,
        ApiKey::JoinGroup => decode::<JoinGroupRequest>,
        ApiKey::SyncGroup => decode::<SyncGroupRequest>,
        ApiKey::Heartbeat => decode::<HeartbeatRequest>,
        ApiKey::LeaveGroup => decode::<LeaveGroupRequest>,
        ApiKey::DescribeGroups => decode::<DescribeGroupsRequest>,
        ApiKey::ListGroups => decode::<ListGroupsRequest>,
        ApiKey::DeleteGroups => decode::<DeleteGroupsRequest>,
        ApiKey::OffsetCommit => decode::<OffsetCommitRequest>,
        ApiKey::OffsetFetch => decode::<OffsetFetchRequest>,
        ApiKey::OffsetDelete => decode::<OffsetDeleteRequest>,
        ApiKey::ConsumerGroupHeartbeat => decode::<ConsumerGroupHeartbeatRequest>,
        ApiKey::ConsumerGroupDescribe => decode::<ConsumerGroupDescribeRequest>,
        ApiKey::InitProducerId => decode::<InitProducerIdRequest>,
        ApiKey::DescribeProducers => decode::<DescribeProducersRequest>,
        ApiKey::AlterPartitionReassignments => decode::<AlterPartitionReassignmentsRequest>,
        ApiKey::ListPartitionReassignments => decode::<ListPartitionReassignmentsRequest>,
        ApiKey::DescribeLogDirs => decode::<DescribeLogDirsRequest>,
        ApiKey::OffsetForLeaderEpoch => decode::<OffsetForLeaderEpochRequest>,
        ApiKey::AddPartitionsToTxn => decode::<AddPartitionsToTxnRequest>,
        ApiKey::AddOffsetsToTxn => decode::<AddOffsetsToTxnRequest>,
        ApiKey::EndTxn => decode::<EndTxnRequest>,
        ApiKey::TxnOffsetCommit => decode::<TxnOffsetCommitRequest>,
        ApiKey::DescribeTransactions => decode::<DescribeTransactionsRequest>,
        ApiKey::ListTransactions => decode::<ListTransactionsRequest>,
        ApiKey::WriteTxnMarkers => decode::<WriteTxnMarkersRequest>,
        _ => return None,
    };
    Some(decoder)
}

/// Decodes the body of a served request; an error is what closes the connection.
pub fn decode_body(api_key: ApiKey, version: i16, mut body: Bytes) -> Result<(), String> {
    let decoder = body_decoder(api_key).ok_or_else(|| format!("{api_key:?} is not served"))?;
    decoder(&mut body, version).map_err(|e| format!("malformed {api_key:?} v{version} request: {e}"))
}

/// What a request frame decoded to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// Header and body decoded: the request would be dispatched.
    Request { api_key: ApiKey, version: i16 },
    /// An ApiVersions request of a version not served: answered without decoding it.
    UnsupportedApiVersions { version: i16 },
}

/// Decodes one request frame (without its length prefix) as a connection does before it
/// dispatches it: prefix, served API and version, header, body. An error is what makes
/// the connection close.
pub fn decode_request(mut request: Bytes) -> Result<Decoded, String> {
    let version = request.get(2..4).map_or(0, |v| i16::from_be_bytes([v[0], v[1]]));
    match crate::connection::parse_request(&mut request)? {
        Parsed::Request { api_key, version, .. } => {
            decode_body(api_key, version, request)?;
            Ok(Decoded::Request { api_key, version })
        }
        Parsed::UnsupportedApiVersions { .. } => Ok(Decoded::UnsupportedApiVersions { version }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apis;

    #[test]
    fn every_served_api_has_a_body_decoder() {
        for (api_key, _, _) in apis::SUPPORTED {
            assert!(body_decoder(*api_key).is_some(), "{api_key:?}");
        }
    }

    #[test]
    fn decodes_a_served_request_and_refuses_garbage() {
        // ApiVersions v3: prefix, client id "c", no header tags, empty client software
        // name and version, no body tags.
        let frame = [0, 18, 0, 3, 0, 0, 0, 7, 0, 1, b'c', 0, 1, 1, 0];
        assert_eq!(
            decode_request(Bytes::copy_from_slice(&frame)),
            Ok(Decoded::Request {
                api_key: ApiKey::ApiVersions,
                version: 3
            })
        );
        assert_eq!(
            decode_request(Bytes::from_static(&[0, 18, 0x7f, 0, 0, 0, 0, 1])),
            Ok(Decoded::UnsupportedApiVersions { version: 0x7f00 })
        );
        assert!(decode_request(Bytes::from_static(&[0, 3, 0, 12, 0, 0, 0, 1, 0xff])).is_err());
        assert!(decode_request(Bytes::from_static(&[0, 3])).is_err());
    }
}
