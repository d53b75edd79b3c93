//! The inter-broker side of transactions: how this node's transaction coordinator
//! writes markers into partitions another node leads (WriteTxnMarkers), and how a
//! partition leader asks a coordinator on another node whether a partition is in a
//! transaction (AddPartitionsToTxn v4 with `verify_only`, KIP-890). Synchronous, as the coordinator
//! runs on the blocking pool with the transaction locked: one connection per call to
//! the leader's listener of this front-end's name, one request, one response, every
//! wait bounded. The broker calls it through `strom_broker::txn::RemoteMarkers`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strom_broker::api::BrokerEndpoint;
use strom_broker::group::TopicPartition;
use strom_broker::txn::{MarkerRequest, MarkerResults, ProducerIdAndEpoch, RemoteMarkers};
use strom_broker::BrokerError;

use crate::constants::{INTER_BROKER_CONNECT_TIMEOUT, INTER_BROKER_IO_TIMEOUT, INTER_BROKER_RESPONSE_MAX_BYTES};
use crate::inter_broker::{decode_response, encode_request};
use crate::peers::PeerAddresses;

/// The only WriteTxnMarkers version kafka-protocol (and Kafka 4) defines.
const VERSION: i16 = 1;
/// The first AddPartitionsToTxn version with `verify_only` (brokers only).
const VERIFY_VERSION: i16 = 4;
const CLIENT_ID: &str = "strom-txn-coordinator";

/// Sends WriteTxnMarkers to the leader's listener named like this front-end's.
#[derive(Debug)]
pub struct TxnMarkerClient {
    peers: PeerAddresses,
    connect_timeout: Duration,
    io_timeout: Duration,
    correlation_id: AtomicI32,
}

impl TxnMarkerClient {
    /// A client of the listeners named `listener_name` (`PLAINTEXT`).
    pub fn new(listener_name: impl Into<String>) -> TxnMarkerClient {
        Self::with_peers(PeerAddresses::new(listener_name))
    }

    /// A client reaching each node where `peers` says.
    pub fn with_peers(peers: PeerAddresses) -> TxnMarkerClient {
        TxnMarkerClient {
            peers,
            connect_timeout: INTER_BROKER_CONNECT_TIMEOUT,
            io_timeout: INTER_BROKER_IO_TIMEOUT,
            correlation_id: AtomicI32::new(0),
        }
    }

    /// One request, one response, on a new connection.
    fn call<Req: Encodable, Resp: Decodable>(
        &self,
        host: &str,
        port: u16,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, String> {
        let correlation_id = self.correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_request(api_key, version, CLIENT_ID, request, correlation_id)?;
        let mut stream = self.connect(host, port)?;
        let io = |e: std::io::Error| e.to_string();
        stream.set_read_timeout(Some(self.io_timeout)).map_err(io)?;
        stream.set_write_timeout(Some(self.io_timeout)).map_err(io)?;
        let _ = stream.set_nodelay(true);
        stream.write_all(&frame).map_err(io)?;
        let mut length = [0u8; 4];
        stream.read_exact(&mut length).map_err(io)?;
        let length = i32::from_be_bytes(length);
        let length = usize::try_from(length)
            .ok()
            .filter(|l| *l <= INTER_BROKER_RESPONSE_MAX_BYTES)
            .ok_or_else(|| format!("response length {length} out of bounds"))?;
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).map_err(io)?;
        decode_response(api_key, version, Bytes::from(body), correlation_id)
    }

    fn connect(&self, host: &str, port: u16) -> Result<TcpStream, String> {
        let addresses = (host, port).to_socket_addrs().map_err(|e| format!("resolving: {e}"))?;
        let mut last = "resolves to no address".to_string();
        for address in addresses {
            match TcpStream::connect_timeout(&address, self.connect_timeout) {
                Ok(stream) => return Ok(stream),
                Err(e) => last = format!("connecting to {address}: {e}"),
            }
        }
        Err(last)
    }
}

impl RemoteMarkers for TxnMarkerClient {
    fn write(&self, node: &BrokerEndpoint, markers: &[MarkerRequest]) -> strom_broker::Result<MarkerResults> {
        let remote = |reason: String| BrokerError::Remote {
            node: node.node_id,
            reason,
        };
        let (host, port) = self.peers.resolve(node).map_err(remote)?;
        let response: WriteTxnMarkersResponse = self
            .call(&host, port, ApiKey::WriteTxnMarkers, VERSION, &request(markers))
            .map_err(|e| remote(format!("WriteTxnMarkers to {host}:{port}: {e}")))?;
        Ok(results(node.node_id, markers, &response))
    }

    fn verify(
        &self,
        node: &BrokerEndpoint,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        partitions: &[TopicPartition],
    ) -> strom_broker::Result<Vec<strom_broker::Result<()>>> {
        let remote = |reason: String| BrokerError::Remote {
            node: node.node_id,
            reason,
        };
        let (host, port) = self.peers.resolve(node).map_err(remote)?;
        let request = verify_request(transactional_id, producer, partitions);
        let response: AddPartitionsToTxnResponse = self
            .call(&host, port, ApiKey::AddPartitionsToTxn, VERIFY_VERSION, &request)
            .map_err(|e| remote(format!("AddPartitionsToTxn to {host}:{port}: {e}")))?;
        if response.error_code != 0 {
            return Err(error_of(node.node_id, response.error_code));
        }
        let codes: HashMap<(&str, i32), i16> = response
            .results_by_transaction
            .iter()
            .filter(|r| r.transactional_id.0.as_str() == transactional_id)
            .flat_map(|r| &r.topic_results)
            .flat_map(|t| {
                t.results_by_partition
                    .iter()
                    .map(|p| ((t.name.0.as_str(), p.partition_index), p.partition_error_code))
            })
            .collect();
        Ok(partitions
            .iter()
            .map(|tp| match codes.get(&(tp.topic.as_str(), tp.partition)) {
                Some(0) => Ok(()),
                Some(code) => Err(error_of(node.node_id, *code)),
                None => Err(remote(format!("no answer for {}-{}", tp.topic, tp.partition))),
            })
            .collect())
    }
}

/// One transaction's partitions to verify, grouped by topic.
fn verify_request(
    transactional_id: &str,
    producer: ProducerIdAndEpoch,
    partitions: &[TopicPartition],
) -> AddPartitionsToTxnRequest {
    let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for tp in partitions {
        match topics.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
            Some(topic) => topic.partitions.push(tp.partition),
            None => topics.push(
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                    .with_partitions(vec![tp.partition]),
            ),
        }
    }
    AddPartitionsToTxnRequest::default().with_transactions(vec![AddPartitionsToTxnTransaction::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(transactional_id.to_string())))
        .with_producer_id(ProducerId(producer.producer_id))
        .with_producer_epoch(producer.producer_epoch)
        .with_verify_only(true)
        .with_topics(topics)])
}

fn request(markers: &[MarkerRequest]) -> WriteTxnMarkersRequest {
    let markers = markers
        .iter()
        .map(|m| {
            // Partitions grouped by topic, in first-seen order.
            let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
            for tp in &m.partitions {
                match topics.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
                    Some(topic) => topic.partition_indexes.push(tp.partition),
                    None => topics.push(
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                            .with_partition_indexes(vec![tp.partition]),
                    ),
                }
            }
            WritableTxnMarker::default()
                .with_producer_id(ProducerId(m.producer_id))
                .with_producer_epoch(m.producer_epoch)
                .with_transaction_result(m.commit)
                .with_coordinator_epoch(m.coordinator_epoch)
                .with_topics(topics)
        })
        .collect();
    WriteTxnMarkersRequest::default().with_markers(markers)
}

/// The answer per marker and partition; a partition it leaves out failed.
fn results(node: i32, markers: &[MarkerRequest], response: &WriteTxnMarkersResponse) -> MarkerResults {
    markers
        .iter()
        .enumerate()
        .map(|(i, marker)| {
            // Kafka answers markers in request order; the producer id confirms it.
            let answer = response
                .markers
                .get(i)
                .filter(|r| r.producer_id.0 == marker.producer_id)
                .or_else(|| response.markers.iter().find(|r| r.producer_id.0 == marker.producer_id));
            let codes: HashMap<(&str, i32), i16> = answer
                .into_iter()
                .flat_map(|r| &r.topics)
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| ((t.name.0.as_str(), p.partition_index), p.error_code))
                })
                .collect();
            marker
                .partitions
                .iter()
                .map(|tp| match codes.get(&(tp.topic.as_str(), tp.partition)) {
                    Some(0) => Ok(()),
                    Some(code) => Err(error_of(node, *code)),
                    None => Err(BrokerError::Remote {
                        node,
                        reason: format!("no answer for {}-{}", tp.topic, tp.partition),
                    }),
                })
                .collect()
        })
        .collect()
}

fn error_of(node: i32, code: i16) -> BrokerError {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::UnknownTopicOrPartition) => BrokerError::UnknownTopicOrPartition,
        Some(ResponseError::NotLeaderOrFollower) => BrokerError::NotLeaderOrFollower,
        Some(ResponseError::ClusterAuthorizationFailed) => BrokerError::ClusterAuthorizationFailed,
        Some(ResponseError::InvalidTxnState) => BrokerError::InvalidTxnState(format!("node {node} says so")),
        Some(ResponseError::ProducerFenced) => BrokerError::ProducerFenced(format!("node {node} says so")),
        Some(ResponseError::InvalidProducerEpoch) => BrokerError::InvalidProducerEpoch(format!("node {node} says so")),
        Some(ResponseError::InvalidProducerIdMapping) => BrokerError::InvalidProducerIdMapping,
        Some(ResponseError::TransactionalIdAuthorizationFailed) => BrokerError::TransactionalIdAuthorizationFailed,
        other => BrokerError::Remote {
            node,
            reason: match other {
                Some(kind) => format!("{kind:?}"),
                None => format!("error code {code}"),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Decodable;
    use strom_broker::group::TopicPartition;

    fn marker(partitions: &[(&str, i32)]) -> MarkerRequest {
        MarkerRequest {
            producer_id: 7,
            producer_epoch: 1,
            commit: true,
            coordinator_epoch: 0,
            partitions: partitions.iter().map(|(t, p)| TopicPartition::new(*t, *p)).collect(),
        }
    }

    #[test]
    fn the_request_groups_by_topic_and_round_trips() {
        let request = request(&[marker(&[("a", 0), ("b", 1), ("a", 2)])]);
        let topics = &request.markers[0].topics;
        assert_eq!(topics.len(), 2);
        assert_eq!(topics[0].partition_indexes, vec![0, 2]);
        let mut frame = encode_request(ApiKey::WriteTxnMarkers, VERSION, CLIENT_ID, &request, 5)
            .unwrap()
            .freeze();
        let length = i32::from_be_bytes(frame[..4].try_into().unwrap());
        assert_eq!(length as usize, frame.len() - 4);
        let _ = frame.split_to(4);
        let header =
            RequestHeader::decode(&mut frame, ApiKey::WriteTxnMarkers.request_header_version(VERSION)).unwrap();
        assert_eq!((header.request_api_key, header.correlation_id), (27, 5));
        assert_eq!(WriteTxnMarkersRequest::decode(&mut frame, VERSION).unwrap(), request);
    }

    #[test]
    fn codes_become_broker_errors_and_missing_answers_fail() {
        use kafka_protocol::messages::write_txn_markers_response::*;
        let partition = |index: i32, code: i16| {
            WritableTxnMarkerPartitionResult::default()
                .with_partition_index(index)
                .with_error_code(code)
        };
        let response = WriteTxnMarkersResponse::default().with_markers(vec![WritableTxnMarkerResult::default()
            .with_producer_id(ProducerId(7))
            .with_topics(vec![WritableTxnMarkerTopicResult::default()
                .with_name(TopicName(StrBytes::from_static_str("a")))
                .with_partitions(vec![partition(0, 0), partition(1, 6), partition(2, 56)])])]);
        let results = results(3, &[marker(&[("a", 0), ("a", 1), ("a", 2), ("a", 3)])], &response);
        let results = &results[0];
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(BrokerError::NotLeaderOrFollower)));
        assert!(
            matches!(&results[2], Err(BrokerError::Remote { node: 3, reason }) if reason.contains("KafkaStorageError"))
        );
        assert!(matches!(&results[3], Err(BrokerError::Remote { reason, .. }) if reason.contains("no answer")));
    }

    #[test]
    fn an_unreachable_node_is_an_error_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let node = BrokerEndpoint {
            node_id: 2,
            rack: None,
            listeners: vec![strom_broker::Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port,
            }],
            alive: true,
        };
        let client = TxnMarkerClient::new("PLAINTEXT");
        let error = client.write(&node, &[marker(&[("a", 0)])]).unwrap_err();
        assert!(matches!(error, BrokerError::Remote { node: 2, .. }), "{error}");
        let other = TxnMarkerClient::new("INTERNAL");
        let error = other.write(&node, &[marker(&[("a", 0)])]).unwrap_err();
        assert!(error.to_string().contains("no INTERNAL listener"), "{error}");
    }
}
