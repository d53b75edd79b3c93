//! Transactions against the real broker: what read_committed consumers see.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use strom_client::{
    Admin, Client, Consumer, ConsumerConfig, IsolationLevel, Offset, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};

use common::*;

#[tokio::test]
async fn aborted_transactions_are_invisible_to_read_committed_consumers() {
    let broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    let admin = Admin::with_client(client.clone());
    create_topic(&admin, "txn-data", 2).await;
    create_topic(&admin, "txn-input", 1).await;
    let transactional = |id: &str| ProducerConfig {
        transactional_id: Some(id.to_string()),
        ..Default::default()
    };
    let producer = Producer::with_client(client.clone(), transactional("mover"))
        .await
        .expect("producer");
    assert!(producer.begin_transaction().is_err(), "init_transactions comes first");
    producer.init_transactions().await.expect("init");
    assert!(producer.producer_id().is_some());

    producer.begin_transaction().expect("begin");
    for i in 0..10 {
        producer
            .send(ProducerRecord::new("txn-data", format!("aborted-{i}")))
            .await
            .expect("send");
    }
    producer.abort_transaction().await.expect("abort");

    producer.begin_transaction().expect("begin");
    for i in 0..10 {
        producer
            .send(ProducerRecord::new("txn-data", format!("committed-{i}")))
            .await
            .expect("send");
    }
    let group = strom_client::ConsumerGroupMetadata::new("txn-group");
    producer
        .send_offsets_to_transaction(&BTreeMap::from([(TopicPartition::new("txn-input", 0), 42)]), &group)
        .await
        .expect("send offsets");
    producer.commit_transaction().await.expect("commit");

    // An open transaction: read_committed consumers stop before it.
    producer.begin_transaction().expect("begin");
    producer
        .send(ProducerRecord::new("txn-data", "open").with_partition(0))
        .await
        .expect("send");
    producer.flush().await.expect("flush");

    let consumer = Consumer::with_client(
        client.clone(),
        ConsumerConfig {
            isolation_level: IsolationLevel::ReadCommitted,
            ..group_config("txn-group")
        },
    )
    .expect("consumer");
    consumer
        .assign(
            (0..2)
                .map(|p| (TopicPartition::new("txn-data", p), Offset::Beginning))
                .collect(),
        )
        .await
        .expect("assign");
    let mut records = consume(&consumer, 10).await;
    records.extend(consumer.poll(Duration::from_millis(500)).await.expect("poll"));
    let mut seen = values(&records);
    seen.sort();
    let mut expected: Vec<String> = (0..10).map(|i| format!("committed-{i}")).collect();
    expected.sort();
    assert_eq!(seen, expected);
    let committed = consumer
        .committed(&[TopicPartition::new("txn-input", 0)])
        .await
        .expect("committed");
    assert_eq!(committed.get(&TopicPartition::new("txn-input", 0)), Some(&42));

    // A second producer with the same id fences the first and aborts its open transaction.
    let successor = Producer::with_client(client.clone(), transactional("mover"))
        .await
        .expect("producer");
    successor.init_transactions().await.expect("init");
    let fenced = producer.commit_transaction().await;
    assert!(matches!(fenced, Err(strom_client::Error::Fatal(_))), "{fenced:?}");
    let uncommitted = Consumer::with_client(client, ConsumerConfig::default()).expect("consumer");
    uncommitted
        .assign(BTreeMap::from([(
            TopicPartition::new("txn-data", 0),
            Offset::Beginning,
        )]))
        .await
        .expect("assign");
    let mut everything = Vec::new();
    poll_until(&[&uncommitted], &mut everything, |records, _| {
        records.iter().any(|r| r.value.as_deref() == Some(b"open".as_slice()))
    })
    .await;
    let everything = values(&everything);
    assert!(
        everything.iter().any(|v| v == "open"),
        "read_uncommitted sees the open transaction"
    );
    successor.close().await.expect("close");
}
