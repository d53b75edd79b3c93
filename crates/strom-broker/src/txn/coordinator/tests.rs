use super::*;
use crate::broker::AppendOrigin;
use crate::broker::{BrokerConfig, NewTopic};
use crate::group::GroupConfig;
use crate::txn::NoRemoteMarkers;
use strom_log::RecordBatchBuilder;

struct Node {
    broker: Arc<Broker>,
    txns: Arc<TxnCoordinator>,
}

fn open(dir: &std::path::Path) -> Node {
    let broker = Broker::open(BrokerConfig::new(dir)).unwrap();
    let groups_config = GroupConfig {
        offsets_topic_partitions: 2,
        ..Default::default()
    };
    let groups = GroupCoordinator::open(broker.clone(), groups_config).unwrap();
    let config = TxnConfig {
        state_topic_partitions: 2,
        ..Default::default()
    };
    let txns = TxnCoordinator::open(broker.clone(), groups, config, Arc::new(NoRemoteMarkers)).unwrap();
    Node { broker, txns }
}

fn init(txns: &TxnCoordinator, id: &str, timeout_ms: i32) -> Result<ProducerIdAndEpoch> {
    txns.init_producer_id(&InitProducerId {
        transactional_id: Some(id.into()),
        transaction_timeout_ms: timeout_ms,
        producer_id: -1,
        producer_epoch: -1,
    })
}

fn transactional_batch(pid: i64, epoch: i16, sequence: i32) -> Vec<u8> {
    let mut builder = RecordBatchBuilder::new()
        .producer(pid, epoch, sequence)
        .flags(true, false);
    builder.push(1, Some(b"k"), Some(b"v"));
    builder.push(2, Some(b"k"), Some(b"v"));
    builder.build().unwrap()
}

#[test]
fn an_aborted_transaction_is_fenced_listed_and_skipped_by_read_committed() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    node.broker
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
    let producer = init(&node.txns, "app", 60_000).unwrap();
    let (pid, epoch) = (producer.producer_id, producer.producer_epoch);
    assert!(matches!(
        init(&node.txns, "app", 1_000_000_000),
        Err(BrokerError::InvalidTransactionTimeout(_))
    ));
    node.txns
        .add_partitions("app", producer, &[TopicPartition::new("t", 0)])
        .unwrap();
    let partition = node.broker.partition("t", 0).unwrap();
    let topic = node.broker.topic("t").unwrap();
    node.broker
        .append(
            &topic,
            &partition,
            &transactional_batch(pid, epoch, 0),
            AppendOrigin::Client,
        )
        .unwrap();
    assert_eq!((partition.high_watermark(), partition.last_stable_offset()), (2, 0));
    assert!(
        partition
            .read(0, 1 << 20, crate::partition::FetchIsolation::TxnCommitted)
            .unwrap()
            .records
            .is_empty(),
        "nothing stable yet"
    );

    // A second instance fences the first and aborts its open transaction.
    let second = init(&node.txns, "app", 60_000).unwrap();
    assert_eq!((second.producer_id, second.producer_epoch), (pid, epoch + 1));
    assert!(matches!(
        node.txns.end_txn("app", producer, true),
        Err(BrokerError::ProducerFenced(_))
    ));
    assert_eq!(
        (partition.high_watermark(), partition.last_stable_offset()),
        (3, 3),
        "abort marker at 2"
    );
    let read = partition
        .read(0, 1 << 20, crate::partition::FetchIsolation::TxnCommitted)
        .unwrap();
    let aborted = read.aborted.unwrap();
    assert_eq!(
        (aborted.len(), aborted[0].producer_id, aborted[0].first_offset),
        (1, pid, 0)
    );
    let stale = transactional_batch(pid, epoch, 2);
    assert!(matches!(
        node.broker
            .append(&topic, &partition, &stale.clone(), AppendOrigin::Client),
        Err(BrokerError::InvalidProducerEpoch(_))
    ));
    assert_eq!(node.txns.describe("app").unwrap().unwrap().state, TxnState::Empty);
}

#[test]
fn a_transaction_left_in_prepare_commit_is_finished_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (pid, epoch) = {
        let node = open(dir.path());
        node.broker
            .create_topic(
                NewTopic {
                    name: "t".into(),
                    num_partitions: 2,
                    replication_factor: 1,
                    ..Default::default()
                },
                false,
            )
            .unwrap();
        let producer = init(&node.txns, "app", 60_000).unwrap();
        let (pid, epoch) = (producer.producer_id, producer.producer_epoch);
        node.txns
            .add_partitions(
                "app",
                producer,
                &[TopicPartition::new("t", 0), TopicPartition::new("t", 1)],
            )
            .unwrap();
        let topic = node.broker.topic("t").unwrap();
        for index in 0..2 {
            let partition = topic.partition(index).unwrap();
            node.broker
                .append(
                    &topic,
                    &partition,
                    &transactional_batch(pid, epoch, 0),
                    AppendOrigin::Client,
                )
                .unwrap();
        }
        // The coordinator dies right after making PrepareCommit durable.
        let txn = node.txns.lookup("app").unwrap().unwrap();
        let mut meta = lock(&txn);
        meta.state = TxnState::PrepareCommit;
        node.txns.persist(&meta).unwrap();
        (pid, epoch)
    };
    let node = open(dir.path());
    let meta = node.txns.describe("app").unwrap().unwrap();
    assert_eq!(
        (meta.state, meta.producer_id, meta.producer_epoch),
        (TxnState::CompleteCommit, pid, epoch)
    );
    for index in 0..2 {
        let partition = node.broker.partition("t", index).unwrap();
        assert_eq!(partition.last_stable_offset(), 3, "committed in every partition");
        let read = partition
            .read(0, 1 << 20, crate::partition::FetchIsolation::TxnCommitted)
            .unwrap();
        assert!(read.aborted.unwrap().is_empty());
        assert_eq!(strom_log::BatchIter::new(&read.records).count(), 2, "data and marker");
    }
}

fn create_topic(broker: &Broker, name: &str) {
    let topic = NewTopic {
        name: name.into(),
        num_partitions: 1,
        replication_factor: 1,
        ..Default::default()
    };
    broker.create_topic(topic, false).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_offset_commit_needs_the_current_owner_of_the_transactional_id() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    create_topic(&node.broker, "t");
    let producer = init(&node.txns, "app", 60_000).unwrap();
    node.txns.add_offsets("app", producer, "g").unwrap();
    let commit = OffsetCommit {
        group_id: "g".into(),
        generation_id: -1,
        offsets: vec![crate::group::OffsetCommitEntry {
            topic: "t".into(),
            offset: 4,
            ..Default::default()
        }],
        ..Default::default()
    };
    let stranger = ProducerIdAndEpoch {
        producer_id: producer.producer_id + 1,
        ..producer
    };
    let stale = ProducerIdAndEpoch {
        producer_epoch: producer.producer_epoch - 1,
        ..producer
    };
    for (id, who, expected) in [
        ("app", stranger, "mapping"),
        ("other", producer, "mapping"),
        ("app", stale, "fenced"),
    ] {
        let refused = node.txns.txn_offset_commit(id, who, commit.clone()).await;
        let seen = match refused {
            Err(BrokerError::InvalidProducerIdMapping) => "mapping",
            Err(BrokerError::ProducerFenced(_)) => "fenced",
            other => panic!("{id} {who:?}: {other:?}"),
        };
        assert_eq!(seen, expected, "{id} {who:?}");
    }
    let results = node.txns.txn_offset_commit("app", producer, commit).await.unwrap();
    assert!(results[0].is_ok());

    let fetch = |require_stable| crate::group::OffsetFetch {
        group_id: "g".into(),
        topics: Some(vec![crate::group::TopicPartitions {
            topic: "t".into(),
            partitions: vec![0],
        }]),
        require_stable,
    };
    let pending = node.txns.groups.fetch_offsets(&fetch(true)).unwrap();
    assert!(matches!(pending[0].error, Some(BrokerError::UnstableOffsetCommit)));
    assert!(pending[0].committed.is_none(), "invisible until the commit");
    assert!(node.txns.groups.fetch_offsets(&fetch(false)).unwrap()[0]
        .error
        .is_none());

    let txns = node.txns.clone();
    tokio::task::spawn_blocking(move || txns.end_txn("app", producer, true))
        .await
        .unwrap()
        .unwrap();
    let committed = node.txns.groups.fetch_offsets(&fetch(true)).unwrap();
    assert!(committed[0].error.is_none());
    assert_eq!(committed[0].committed.as_ref().map(|v| v.offset), Some(4));
}

#[test]
fn idempotent_producers_get_a_new_id_or_a_bumped_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let idempotent = |producer_id, producer_epoch| {
        node.txns
            .init_producer_id(&InitProducerId {
                transactional_id: None,
                transaction_timeout_ms: 0,
                producer_id,
                producer_epoch,
            })
            .unwrap()
    };
    let first = idempotent(-1, -1);
    assert_eq!(first.producer_epoch, 0);
    assert_ne!(idempotent(-1, -1).producer_id, first.producer_id, "a new id each time");
    let bumped = idempotent(first.producer_id, 3);
    assert_eq!(
        (bumped.producer_id, bumped.producer_epoch),
        (first.producer_id, 4),
        "KIP-360"
    );
    let exhausted = idempotent(first.producer_id, i16::MAX - 1);
    assert_ne!(
        exhausted.producer_id, first.producer_id,
        "an epoch that would overflow takes a new id"
    );
    assert!(
        node.broker.topic(TRANSACTION_STATE_TOPIC).is_none(),
        "idempotent producers leave no transaction state"
    );
}
