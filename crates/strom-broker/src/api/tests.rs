//! The façade as a front-end uses it: produce with acks, fetch with the long-poll and
//! the KIP-74 budget, ListOffsets, in the broker's own terms.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strom_log::RecordBatchBuilder;

use super::*;
use crate::broker::NewTopic;
use crate::partition::{AppendOrigin, FetchIsolation};

async fn api(dir: &std::path::Path) -> Arc<BrokerApi> {
    let broker = Broker::open(BrokerConfig::new(dir)).unwrap();
    for (name, partitions) in [("a", 2), ("b", 1)] {
        let new = NewTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: 1,
            ..Default::default()
        };
        broker.create_topic(new, false).unwrap();
    }
    BrokerApi::start_with(broker, GroupConfig::default(), TxnConfig::default())
        .await
        .unwrap()
}

fn records(count: usize, value_bytes: usize) -> Bytes {
    let mut builder = RecordBatchBuilder::new();
    for i in 0..count {
        builder.push(i as i64, Some(b"k"), Some(&vec![7u8; value_bytes]));
    }
    Bytes::from(builder.build().unwrap())
}

fn produce(topic: &str, partition: i32, batch: Bytes, acks: Acks) -> ProduceRequest {
    ProduceRequest {
        acks,
        timeout: Duration::from_secs(5),
        transactional_id: None,
        partitions: vec![ProducePartition {
            topic: TopicRef::Name(topic.into()),
            partition,
            records: Some(batch),
            txn: Default::default(),
        }],
        origin: AppendOrigin::Client,
    }
}

fn fetch_params(partitions: Vec<(&str, i32)>, min_bytes: usize, max_bytes: usize, wait_ms: u64) -> FetchParams {
    FetchParams {
        replica: None,
        isolation: FetchIsolation::HighWatermark,
        min_bytes,
        max_wait: Duration::from_millis(wait_ms),
        max_bytes,
        partitions: partitions
            .into_iter()
            .map(|(topic, partition)| FetchPartition {
                topic: TopicRef::Name(topic.into()),
                partition,
                fetch_offset: 0,
                max_bytes: 1 << 20,
                current_leader_epoch: -1,
                last_fetched_epoch: -1,
            })
            .collect(),
        follower_reads: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_resolves_once_the_batch_is_fsynced_and_acks_one_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let api = api(dir.path()).await;
    let caller = Caller::internal();
    let leader = api.produce(&caller, produce("a", 0, records(3, 10), Acks::Leader));
    let results = leader.ready().ok().expect("acks=1 waits for nothing");
    assert_eq!(results[0].as_ref().unwrap().base_offset, 0);
    let partition = api.broker().partition("a", 0).unwrap();
    assert_eq!(partition.unflushed_messages(), 3);
    let all = api.produce(&caller, produce("a", 0, records(2, 10), Acks::All));
    let all = all.ready().expect_err("acks=all waits for the fsync");
    let results = all.durable().await;
    assert_eq!(results[0].as_ref().unwrap().base_offset, 3);
    assert_eq!(
        partition.unflushed_messages(),
        0,
        "the fsync covered everything before it"
    );
    api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_waits_for_min_bytes_and_wakes_on_the_append() {
    let dir = tempfile::tempdir().unwrap();
    let api = api(dir.path()).await;
    let caller = Caller::internal();
    let waiting = {
        let (api, caller) = (api.clone(), caller.clone());
        tokio::spawn(async move {
            api.fetch(&caller, fetch_params(vec![("b", 0)], 1, 1 << 20, 20_000))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "nothing to read yet: the fetch waits");
    let produced = api.produce(&caller, produce("b", 0, records(1, 10), Acks::Leader));
    assert!(produced.ready().is_ok());
    let fetched = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("woken by the append, not by max_wait")
        .unwrap();
    assert_eq!(fetched[0].high_watermark, 1);
    assert!(fetched[0].records.as_ref().is_some_and(|r| !r.is_empty()));
    api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_budget_lets_only_the_first_partition_pass_it() {
    let dir = tempfile::tempdir().unwrap();
    let api = api(dir.path()).await;
    let caller = Caller::internal();
    for partition in 0..2 {
        let produced = api.produce(&caller, produce("a", partition, records(4, 1_000), Acks::Leader));
        assert!(produced.ready().is_ok());
    }
    let fetched = api
        .fetch(&caller, fetch_params(vec![("a", 0), ("a", 1)], 1, 100, 0))
        .await;
    assert!(
        fetched[0].records.as_ref().unwrap().len() > 100,
        "the first batch is whole (KIP-74)"
    );
    assert!(fetched[1].records.is_none(), "the rest waits for the next fetch");
    assert_eq!(fetched[1].high_watermark, 4, "with its offsets reported");
    api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topics_and_internal_topics_are_refused_by_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let api = api(dir.path()).await;
    let caller = Caller::internal();
    let mut request = produce("a", 0, records(1, 1), Acks::Leader);
    request.partitions[0].topic = TopicRef::Id(uuid::Uuid::new_v4());
    let results = api.produce(&caller, request).ready().ok().unwrap();
    assert!(matches!(results[0], Err(BrokerError::UnknownTopicId)));
    api.groups().offsets_topic().unwrap();
    let results = api
        .produce(&caller, produce("__consumer_offsets", 0, records(1, 1), Acks::Leader))
        .ready()
        .ok()
        .unwrap();
    assert!(matches!(results[0], Err(BrokerError::InvalidTopic(_))));
    let listed = api
        .list_offsets(
            &caller,
            FetchIsolation::HighWatermark,
            vec![ListOffsetsPartition {
                topic: TopicRef::Name("a".into()),
                partition: 0,
                current_leader_epoch: -1,
                spec: OffsetSpec::from_timestamp(-7),
            }],
        )
        .await;
    assert!(matches!(listed[0], Err(BrokerError::InvalidRequest(_))));
    api.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_brokers_dynamic_configs_are_described_from_the_metadata() {
    use strom_cluster::{ConfigScope, MetadataRecord};
    let dir = tempfile::tempdir().unwrap();
    let api = api(dir.path()).await;
    let caller = Caller::internal();
    let configs = std::collections::BTreeMap::from([("log.retention.ms".to_string(), "1000".to_string())]);
    // Broker 2 is not registered here: its configs alone make it known.
    api.broker()
        .quorum()
        .propose(vec![MetadataRecord::Configs {
            resource: ConfigScope::Broker(2),
            configs,
        }])
        .unwrap();
    api.broker().sync_metadata().unwrap();
    let described = api
        .describe_configs(&caller, &ConfigResource::Broker("2".into()), None)
        .unwrap();
    assert_eq!(described.len(), 1);
    assert_eq!(
        (
            described[0].name.as_str(),
            described[0].value.as_str(),
            described[0].source
        ),
        (
            "log.retention.ms",
            "1000",
            crate::topic_config::ConfigSource::DynamicBroker
        )
    );
    assert!(matches!(
        api.describe_configs(&caller, &ConfigResource::Broker("3".into()), None),
        Err(BrokerError::InvalidRequest(_))
    ));
    api.shutdown().await.unwrap();
}

fn transactional(pid: i64, epoch: i16, sequence: i32) -> Bytes {
    let mut builder = RecordBatchBuilder::new()
        .producer(pid, epoch, sequence)
        .flags(true, false);
    builder.push(1, Some(b"k"), Some(b"v"));
    Bytes::from(builder.build().unwrap())
}

/// KIP-890: a transactional batch that opens a transaction in a partition is checked
/// with the coordinator first; one that arrives after its transaction ended (a request
/// delayed past the abort) is refused and stored nowhere, instead of joining the
/// producer's next transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_batch_delayed_past_its_transaction_is_refused() {
    use crate::group::TopicPartition;
    use crate::txn::InitProducerId;
    let dir = tempfile::tempdir().unwrap();
    let api = api(dir.path()).await;
    let caller = Caller::internal();
    let txns = api.txns().clone();
    let producer = tokio::task::spawn_blocking(move || -> crate::Result<_> {
        let producer = txns.init_producer_id(&InitProducerId {
            transactional_id: Some("app".into()),
            transaction_timeout_ms: 60_000,
            producer_id: -1,
            producer_epoch: -1,
        })?;
        txns.add_partitions("app", producer, &[TopicPartition::new("a", 0)])?;
        Ok(producer)
    })
    .await
    .unwrap()
    .unwrap();
    let (pid, epoch) = (producer.producer_id, producer.producer_epoch);
    let request = |sequence| {
        let mut request = produce("a", 0, transactional(pid, epoch, sequence), Acks::Leader);
        request.transactional_id = Some("app".into());
        request
    };
    let partition = api.broker().partition("a", 0).unwrap();

    // Not verified at all: refused.
    let unverified = api.produce(&caller, request(0)).ready().ok().unwrap();
    assert!(
        matches!(unverified[0], Err(BrokerError::InvalidTxnState(_))),
        "{unverified:?}"
    );
    assert_eq!(partition.log_end_offset(), 0);

    // Verified while the transaction is open: stored.
    let mut open = request(0);
    api.verify_transactions(&caller, &mut open).await;
    let stored = api.produce(&caller, open).ready().ok().unwrap();
    assert_eq!(stored[0].as_ref().unwrap().base_offset, 0);

    // Verified, then the transaction ends before the append: the guard is gone.
    let txns = api.txns().clone();
    tokio::task::spawn_blocking(move || txns.end_txn("app", producer, false))
        .await
        .unwrap()
        .unwrap();
    let end = partition.log_end_offset();
    let mut late = request(1);
    api.verify_transactions(&caller, &mut late).await;
    assert!(
        matches!(
            late.partitions[0].txn,
            TxnCheck::Refused(BrokerError::InvalidTxnState(_))
        ),
        "{:?}",
        late.partitions[0].txn
    );
    let refused = api.produce(&caller, late).ready().ok().unwrap();
    assert!(
        matches!(refused[0], Err(BrokerError::InvalidTxnState(_))),
        "{refused:?}"
    );
    assert_eq!(partition.log_end_offset(), end, "nothing of the late batch is stored");

    // The race: verified while open, the marker lands before the append.
    let txns = api.txns().clone();
    tokio::task::spawn_blocking(move || txns.add_partitions("app", producer, &[TopicPartition::new("a", 0)]))
        .await
        .unwrap()
        .unwrap();
    let mut raced = request(1);
    api.verify_transactions(&caller, &mut raced).await;
    assert!(matches!(raced.partitions[0].txn, TxnCheck::Verified(_)));
    let txns = api.txns().clone();
    tokio::task::spawn_blocking(move || txns.end_txn("app", producer, false))
        .await
        .unwrap()
        .unwrap();
    let end = partition.log_end_offset();
    let refused = api.produce(&caller, raced).ready().ok().unwrap();
    assert!(
        matches!(refused[0], Err(BrokerError::InvalidTxnState(_))),
        "{refused:?}"
    );
    assert_eq!(partition.log_end_offset(), end);
    api.shutdown().await.unwrap();
}
