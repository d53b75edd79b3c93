use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use strom_cluster::{BrokerRegistration, Listener, MetadataRecord, PartitionChange};
use strom_log::RecordBatchBuilder;
use uuid::Uuid;

use super::*;
use crate::api::BrokerApi;
use crate::broker::{AppendOrigin, Broker, BrokerConfig, NewTopic};
use crate::caller::Caller;
use crate::group::{GroupConfig, GroupCoordinator};
use crate::partition::Partition;
use crate::txn::{InitProducerId, ProducerIdAndEpoch, RemoteMarkers, TxnConfig, TxnState};

fn create(broker: &Broker, name: &str, partitions: i32) {
    let topic = NewTopic {
        name: name.into(),
        num_partitions: partitions,
        replication_factor: 1,
        ..Default::default()
    };
    broker.create_topic(topic, false).unwrap();
}

/// Two records of an open transaction of `producer`, appended to `topic`-`index`.
fn append_open_txn(broker: &Broker, topic: &str, index: i32, producer: ProducerIdAndEpoch) -> Arc<Partition> {
    let mut builder = RecordBatchBuilder::new()
        .producer(producer.producer_id, producer.producer_epoch, 0)
        .flags(true, false);
    builder.push(1, Some(b"k"), Some(b"v"));
    builder.push(2, Some(b"k"), Some(b"v"));
    let batch = builder.build().unwrap();
    let live = broker.topic(topic).unwrap();
    let partition = broker.partition(topic, index).unwrap();
    broker.append(&live, &partition, &batch, AppendOrigin::Client).unwrap();
    partition
}

/// Registers a node 2 (that never runs) and hands it the leadership of `topic`-`index`.
fn lead_from_node_2(broker: &Broker, topic: &str, index: i32) {
    let image = broker.image();
    let record = image.topic(topic).unwrap();
    let registration = BrokerRegistration {
        node_id: 2,
        incarnation: Uuid::new_v4(),
        directory_id: Uuid::new_v4(),
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 1,
        }],
        rack: None,
    };
    let change = PartitionChange {
        topic_id: record.id,
        partition: index,
        partition_epoch: record.partitions[&index].partition_epoch,
        leader: Some(2),
        isr: Some(vec![2]),
        replicas: Some(vec![2]),
        joining: Vec::new(),
        elr: None,
        reassignment: None,
    };
    broker
        .quorum()
        .propose(vec![
            MetadataRecord::RegisterBroker(registration),
            MetadataRecord::PartitionChange(change),
        ])
        .unwrap();
    broker.sync_metadata().unwrap();
    assert_eq!(broker.image().topic(topic).unwrap().partitions[&index].leader, 2);
}

fn commit_marker(producer: ProducerIdAndEpoch, partitions: &[(&str, i32)]) -> MarkerRequest {
    MarkerRequest {
        producer_id: producer.producer_id,
        producer_epoch: producer.producer_epoch,
        commit: true,
        coordinator_epoch: 0,
        partitions: partitions.iter().map(|(t, p)| TopicPartition::new(*t, *p)).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_txn_markers_closes_transactions_here_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(BrokerConfig::new(dir.path())).unwrap();
    create(&broker, "t", 1);
    create(&broker, "elsewhere", 1);
    let api = BrokerApi::start_with(broker.clone(), GroupConfig::default(), TxnConfig::default())
        .await
        .unwrap();
    let producer = ProducerIdAndEpoch {
        producer_id: 4_000,
        producer_epoch: 0,
    };
    let partition = append_open_txn(&broker, "t", 0, producer);
    assert_eq!((partition.high_watermark(), partition.last_stable_offset()), (2, 0));

    let caller = Caller::internal();
    let marker = commit_marker(producer, &[("t", 0), ("missing", 0), ("t", 9)]);
    let results = api.write_txn_markers(&caller, vec![marker.clone()]).await.unwrap();
    assert!(results[0][0].is_ok());
    assert!(matches!(results[0][1], Err(BrokerError::UnknownTopicOrPartition)));
    assert!(matches!(results[0][2], Err(BrokerError::UnknownTopicOrPartition)));
    assert_eq!(
        (partition.high_watermark(), partition.last_stable_offset()),
        (3, 3),
        "the marker at 2 closed the transaction"
    );

    // A retried marker (a coordinator that lost the answer) closes nothing and fails nothing.
    let results = api.write_txn_markers(&caller, vec![marker]).await.unwrap();
    assert!(results[0][0].is_ok());
    assert_eq!((partition.high_watermark(), partition.last_stable_offset()), (4, 4));
    let read = partition
        .read(0, 1 << 20, crate::partition::FetchIsolation::TxnCommitted)
        .unwrap();
    assert_eq!(read.aborted.unwrap_or_default().len(), 0, "committed, never aborted");

    lead_from_node_2(&broker, "elsewhere", 0);
    let results = api
        .write_txn_markers(&caller, vec![commit_marker(producer, &[("elsewhere", 0)])])
        .await
        .unwrap();
    assert!(matches!(results[0][0], Err(BrokerError::NotLeaderOrFollower)));
    api.shutdown().await.unwrap();
}

/// A stand-in for the other nodes: records what it was sent; refuses while `down`.
#[derive(Debug, Default)]
struct FakeNodes {
    down: AtomicBool,
    sent: Mutex<Vec<(i32, MarkerRequest)>>,
}

impl RemoteMarkers for Arc<FakeNodes> {
    fn write(&self, node: &BrokerEndpoint, markers: &[MarkerRequest]) -> Result<MarkerResults> {
        if self.down.load(Ordering::SeqCst) {
            return Err(BrokerError::Remote {
                node: node.node_id,
                reason: "connection refused".into(),
            });
        }
        let mut sent = crate::sync::lock(&self.sent);
        sent.extend(markers.iter().map(|m| (node.node_id, m.clone())));
        Ok(markers
            .iter()
            .map(|m| m.partitions.iter().map(|_| Ok(())).collect())
            .collect())
    }

    fn verify(
        &self,
        node: &BrokerEndpoint,
        _: &str,
        _: crate::txn::ProducerIdAndEpoch,
        _: &[crate::group::TopicPartition],
    ) -> Result<Vec<Result<()>>> {
        Err(BrokerError::Remote {
            node: node.node_id,
            reason: "not asked in these tests".into(),
        })
    }
}

#[test]
fn markers_for_partitions_led_elsewhere_go_to_their_leader_and_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(BrokerConfig::new(dir.path())).unwrap();
    create(&broker, "t", 2);
    let groups = GroupCoordinator::open(broker.clone(), GroupConfig::default()).unwrap();
    let nodes = Arc::new(FakeNodes::default());
    let config = TxnConfig {
        state_topic_partitions: 1,
        ..Default::default()
    };
    let txns = TxnCoordinator::open(broker.clone(), groups, config, Arc::new(nodes.clone())).unwrap();
    let producer = txns
        .init_producer_id(&InitProducerId {
            transactional_id: Some("app".into()),
            transaction_timeout_ms: 60_000,
            producer_id: -1,
            producer_epoch: -1,
        })
        .unwrap();
    let partitions = [TopicPartition::new("t", 0), TopicPartition::new("t", 1)];
    txns.add_partitions("app", producer, &partitions).unwrap();
    let local = append_open_txn(&broker, "t", 0, producer);
    lead_from_node_2(&broker, "t", 1);

    // Node 2 is down: the local marker is written, the transaction stays prepared
    // with what is left, and EndTxn gets a retriable error.
    nodes.down.store(true, Ordering::SeqCst);
    assert!(matches!(
        txns.end_txn("app", producer, true),
        Err(BrokerError::CoordinatorNotAvailable)
    ));
    assert_eq!(local.last_stable_offset(), local.high_watermark());
    let meta = txns.describe("app").unwrap().unwrap();
    assert_eq!(meta.state, TxnState::PrepareCommit);
    assert_eq!(
        meta.partitions.iter().cloned().collect::<Vec<_>>(),
        vec![partitions[1].clone()]
    );
    assert_eq!(txns.retry_unfinished(), 0, "still down");

    // Back: the periodic check finishes it; the client's retry then succeeds too.
    nodes.down.store(false, Ordering::SeqCst);
    assert_eq!(txns.retry_unfinished(), 1);
    assert_eq!(txns.describe("app").unwrap().unwrap().state, TxnState::CompleteCommit);
    txns.end_txn("app", producer, true).unwrap();
    let sent = crate::sync::lock(&nodes.sent).clone();
    assert_eq!(sent, vec![(2, commit_marker(producer, &[("t", 1)]))]);
    assert_eq!(
        local.high_watermark(),
        3,
        "the local partition got one marker, not one per attempt"
    );
}
