//! The follower's side of Kafka's Fetch: how this node's replica fetchers ask a
//! leader on another node for records (`strom_broker::replication::LeaderClient`).
//! One connection per leader, kept between rounds (each leader's fetch loop sends one
//! request at a time), dropped on any error and opened again on the next round. Every
//! wait is bounded: the connect, and the response by the fetch's own max wait plus
//! the inter-broker I/O timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_broker::api::BrokerEndpoint;
use strom_broker::replication::{LeaderClient, ReplicaFetch, ReplicaFetched};
use strom_broker::BrokerError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::constants::{INTER_BROKER_CONNECT_TIMEOUT, INTER_BROKER_IO_TIMEOUT, INTER_BROKER_RESPONSE_MAX_BYTES};
use crate::inter_broker::{decode_response, encode_request};
use crate::peers::PeerAddresses;

/// The first Fetch version with ReplicaState (the follower's broker epoch, KIP-903).
const VERSION: i16 = 15;
const CLIENT_ID: &str = "strom-replica-fetcher";

/// Fetches for this node's followers.
#[derive(Debug)]
pub struct ReplicaFetchClient {
    peers: PeerAddresses,
    /// Idle connections by leader node id.
    connections: Mutex<HashMap<i32, TcpStream>>,
    correlation_id: AtomicI32,
}

impl ReplicaFetchClient {
    pub fn new(peers: PeerAddresses) -> ReplicaFetchClient {
        ReplicaFetchClient {
            peers,
            connections: Mutex::new(HashMap::new()),
            correlation_id: AtomicI32::new(0),
        }
    }

    async fn call(
        &self,
        leader: &BrokerEndpoint,
        request: &FetchRequest,
        wait: Duration,
    ) -> Result<FetchResponse, String> {
        let correlation_id = self.correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_request(ApiKey::Fetch, VERSION, CLIENT_ID, request, correlation_id)?;
        let taken = self.lock().remove(&leader.node_id);
        let mut stream = match taken {
            Some(stream) => stream,
            None => self.connect(leader).await?,
        };
        let io = |e: std::io::Error| e.to_string();
        let exchange = async {
            stream.write_all(&frame).await.map_err(io)?;
            let length = stream.read_i32().await.map_err(io)?;
            let length = usize::try_from(length)
                .ok()
                .filter(|l| *l <= INTER_BROKER_RESPONSE_MAX_BYTES)
                .ok_or_else(|| format!("response length {length} out of bounds"))?;
            let mut body = vec![0u8; length];
            stream.read_exact(&mut body).await.map_err(io)?;
            Ok::<_, String>(Bytes::from(body))
        };
        let body = tokio::time::timeout(wait + INTER_BROKER_IO_TIMEOUT, exchange)
            .await
            .map_err(|_| "no response in time".to_string())??;
        let response: FetchResponse = decode_response(ApiKey::Fetch, VERSION, body, correlation_id)?;
        self.lock().insert(leader.node_id, stream);
        Ok(response)
    }

    async fn connect(&self, leader: &BrokerEndpoint) -> Result<TcpStream, String> {
        let (host, port) = self.peers.resolve(leader)?;
        let stream = tokio::time::timeout(INTER_BROKER_CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port)))
            .await
            .map_err(|_| format!("connecting to {host}:{port}: timed out"))?
            .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, TcpStream>> {
        self.connections.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl LeaderClient for ReplicaFetchClient {
    fn fetch<'a>(
        &'a self,
        leader: &'a BrokerEndpoint,
        request: ReplicaFetch,
    ) -> BoxFuture<'a, strom_broker::Result<Vec<ReplicaFetched>>> {
        Box::pin(async move {
            let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64);
            let wire = wire_request(&request);
            let response = self
                .call(leader, &wire, wait)
                .await
                .map_err(|reason| BrokerError::Remote {
                    node: leader.node_id,
                    reason: format!("Fetch: {reason}"),
                })?;
            if response.error_code != 0 {
                return Err(BrokerError::Remote {
                    node: leader.node_id,
                    reason: format!("Fetch refused: error code {}", response.error_code),
                });
            }
            Ok(answers(&request, response))
        })
    }
}

fn wire_request(request: &ReplicaFetch) -> FetchRequest {
    // Partitions grouped by topic, in first-seen order.
    let mut topics: Vec<FetchTopic> = Vec::new();
    for p in &request.partitions {
        let partition = FetchPartition::default()
            .with_partition(p.partition)
            .with_current_leader_epoch(p.current_leader_epoch)
            .with_fetch_offset(p.fetch_offset)
            .with_last_fetched_epoch(p.last_fetched_epoch)
            .with_log_start_offset(p.log_start_offset)
            .with_partition_max_bytes(p.max_bytes);
        match topics.iter_mut().find(|t| t.topic_id == p.topic_id) {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(p.topic.clone())))
                    .with_topic_id(p.topic_id)
                    .with_partitions(vec![partition]),
            ),
        }
    }
    FetchRequest::default()
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(request.replica_id))
                .with_replica_epoch(request.broker_epoch),
        )
        .with_max_wait_ms(request.max_wait_ms)
        .with_min_bytes(request.min_bytes)
        .with_max_bytes(request.max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// The leader's answer per asked partition; one it left out is not in the result.
fn answers(request: &ReplicaFetch, response: FetchResponse) -> Vec<ReplicaFetched> {
    let mut out = Vec::new();
    for topic in response.responses {
        for p in topic.partitions {
            let Some(asked) = request
                .partitions
                .iter()
                .find(|a| a.topic_id == topic.topic_id && a.partition == p.partition_index)
            else {
                continue;
            };
            let error = (p.error_code != 0).then(|| error_of(p.error_code, asked.fetch_offset, &p));
            let diverging = p.diverging_epoch.end_offset >= 0 || p.diverging_epoch.epoch >= 0;
            out.push(ReplicaFetched {
                topic_id: topic.topic_id,
                partition: p.partition_index,
                error,
                high_watermark: p.high_watermark,
                log_start_offset: p.log_start_offset,
                diverging_epoch: diverging.then_some((p.diverging_epoch.epoch, p.diverging_epoch.end_offset)),
                records: p.records.unwrap_or_default(),
            });
        }
    }
    out
}

fn error_of(code: i16, fetch_offset: i64, p: &fetch_response::PartitionData) -> BrokerError {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::OffsetOutOfRange) => BrokerError::OffsetOutOfRange {
            offset: fetch_offset,
            start: p.log_start_offset,
            end: p.high_watermark,
        },
        Some(ResponseError::NotLeaderOrFollower) => BrokerError::NotLeaderOrFollower,
        Some(ResponseError::FencedLeaderEpoch) => BrokerError::FencedLeaderEpoch {
            requested: -1,
            current: -1,
        },
        Some(ResponseError::UnknownLeaderEpoch) => BrokerError::UnknownLeaderEpoch {
            requested: -1,
            current: -1,
        },
        Some(ResponseError::UnknownTopicOrPartition) | Some(ResponseError::UnknownTopicId) => {
            BrokerError::UnknownTopicOrPartition
        }
        other => BrokerError::Remote {
            node: -1,
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
    use strom_broker::replication::ReplicaFetchPartition;
    use uuid::Uuid;

    fn fetch(partitions: Vec<ReplicaFetchPartition>) -> ReplicaFetch {
        ReplicaFetch {
            replica_id: 2,
            broker_epoch: 17,
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 1 << 20,
            partitions,
        }
    }

    fn partition(topic_id: Uuid, index: i32) -> ReplicaFetchPartition {
        ReplicaFetchPartition {
            topic_id,
            topic: "t".into(),
            partition: index,
            current_leader_epoch: 3,
            fetch_offset: 10,
            last_fetched_epoch: 2,
            log_start_offset: 0,
            max_bytes: 1024,
        }
    }

    #[test]
    fn the_request_names_the_replica_and_round_trips() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let request = wire_request(&fetch(vec![partition(a, 0), partition(b, 0), partition(a, 1)]));
        assert_eq!(request.replica_state.replica_id, BrokerId(2));
        assert_eq!(request.replica_state.replica_epoch, 17);
        assert_eq!(request.topics.len(), 2);
        assert_eq!(request.topics[0].partitions.len(), 2);
        assert_eq!(request.topics[0].partitions[1].last_fetched_epoch, 2);
        let mut frame = encode_request(ApiKey::Fetch, VERSION, CLIENT_ID, &request, 9)
            .unwrap()
            .freeze();
        let _ = frame.split_to(4);
        let header = RequestHeader::decode(&mut frame, ApiKey::Fetch.request_header_version(VERSION)).unwrap();
        assert_eq!((header.request_api_key, header.correlation_id), (1, 9));
        // v15 names topics by id only.
        let mut expected = request.clone();
        for topic in &mut expected.topics {
            topic.topic = TopicName::default();
        }
        assert_eq!(FetchRequest::decode(&mut frame, VERSION).unwrap(), expected);
    }

    #[test]
    fn answers_carry_divergence_errors_and_records() {
        use kafka_protocol::messages::fetch_response::{EpochEndOffset, FetchableTopicResponse, PartitionData};
        let id = Uuid::new_v4();
        let request = fetch(vec![partition(id, 0), partition(id, 1), partition(id, 2)]);
        let response = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic_id(id)
            .with_partitions(vec![
                PartitionData::default()
                    .with_partition_index(0)
                    .with_high_watermark(10)
                    .with_diverging_epoch(EpochEndOffset::default().with_epoch(1).with_end_offset(7)),
                PartitionData::default()
                    .with_partition_index(1)
                    .with_error_code(ResponseError::OffsetOutOfRange.code())
                    .with_log_start_offset(20)
                    .with_high_watermark(30),
                PartitionData::default()
                    .with_partition_index(2)
                    .with_high_watermark(12)
                    .with_records(Some(Bytes::from_static(b"batch"))),
                PartitionData::default().with_partition_index(9),
            ])]);
        let answers = answers(&request, response);
        assert_eq!(answers.len(), 3, "a partition not asked for is ignored");
        assert_eq!(answers[0].diverging_epoch, Some((1, 7)));
        assert!(answers[0].error.is_none());
        assert!(matches!(
            answers[1].error,
            Some(BrokerError::OffsetOutOfRange { start: 20, .. })
        ));
        assert_eq!(answers[2].diverging_epoch, None);
        assert_eq!(&answers[2].records[..], b"batch");
    }

    #[tokio::test]
    async fn an_unreachable_leader_is_an_error_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let leader = BrokerEndpoint {
            node_id: 1,
            rack: None,
            listeners: vec![strom_broker::Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port,
            }],
            alive: true,
        };
        let client = ReplicaFetchClient::new(PeerAddresses::new("PLAINTEXT"));
        let error = client.fetch(&leader, fetch(vec![])).await.unwrap_err();
        assert!(matches!(error, BrokerError::Remote { node: 1, .. }), "{error}");
    }
}
