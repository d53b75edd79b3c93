//! Producing against the real broker: codecs, acks, partitioners and idempotence.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use strom_client::partitioner::murmur2_partition;
use strom_client::{
    Acks, Admin, Client, Compression, Consumer, ConsumerConfig, Offset, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};

use common::*;

#[tokio::test]
async fn produces_and_consumes_keyed_records_with_every_codec() {
    const RECORDS: usize = 10_000;
    const PARTITIONS: i32 = 3;
    let broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    let admin = Admin::with_client(client.clone());
    for compression in Compression::ALL {
        let topic = format!("codec-{compression:?}").to_lowercase();
        create_topic(&admin, &topic, PARTITIONS).await;
        let producer = Producer::with_client(
            client.clone(),
            ProducerConfig {
                acks: Acks::All,
                compression,
                ..Default::default()
            },
        )
        .await
        .expect("producer");
        let mut deliveries = Vec::with_capacity(RECORDS);
        for i in 0..RECORDS {
            let record =
                ProducerRecord::new(&topic, format!("value-{i}-{}", "x".repeat(i % 50))).with_key(format!("key-{i}"));
            deliveries.push(producer.send(record).await.expect("send"));
        }
        let mut expected = BTreeMap::new();
        for (i, delivery) in deliveries.into_iter().enumerate() {
            let metadata = delivery.await.expect("delivered");
            let key = format!("key-{i}");
            assert_eq!(
                metadata.partition,
                murmur2_partition(key.as_bytes(), PARTITIONS),
                "{key}"
            );
            assert!(metadata.offset >= 0);
            expected.insert(
                (metadata.partition, metadata.offset),
                (key, format!("value-{i}-{}", "x".repeat(i % 50))),
            );
        }
        producer.close().await.expect("close");

        let consumer = Consumer::with_client(client.clone(), ConsumerConfig::default()).expect("consumer");
        consumer
            .assign(
                (0..PARTITIONS)
                    .map(|p| (TopicPartition::new(topic.clone(), p), Offset::Beginning))
                    .collect(),
            )
            .await
            .expect("assign");
        let records = consume(&consumer, RECORDS).await;
        assert_eq!(records.len(), RECORDS, "{compression:?}");
        for record in &records {
            let (key, value) = expected
                .get(&(record.partition, record.offset))
                .expect("expected record");
            assert_eq!(record.key.as_deref(), Some(key.as_bytes()));
            assert_eq!(record.value.as_deref(), Some(value.as_bytes()));
        }
        for partition in 0..PARTITIONS {
            let offsets: Vec<i64> = records
                .iter()
                .filter(|r| r.partition == partition)
                .map(|r| r.offset)
                .collect();
            assert!(offsets.windows(2).all(|w| w[0] + 1 == w[1]), "dense, in order");
        }
    }
}

#[tokio::test]
async fn idempotent_producer_gets_a_producer_id() {
    let broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    create_topic(&Admin::with_client(client.clone()), "idempotent", 1).await;
    let producer = Producer::with_client(client.clone(), ProducerConfig::default())
        .await
        .expect("producer");
    let identity = producer.producer_id().expect("idempotent producer has an id");
    assert!(identity.id >= 0 && identity.epoch >= 0);
    let first = producer
        .send(ProducerRecord::new("idempotent", "a"))
        .await
        .expect("send")
        .await
        .expect("delivered");
    let second = producer
        .send(ProducerRecord::new("idempotent", "b"))
        .await
        .expect("send")
        .await
        .expect("delivered");
    assert_eq!(second.offset, first.offset + 1);
    producer.close().await.expect("close");

    let plain = Producer::with_client(
        client,
        ProducerConfig {
            acks: Acks::Leader,
            ..Default::default()
        },
    )
    .await
    .expect("producer");
    assert_eq!(plain.producer_id(), None);
}

#[tokio::test]
async fn acks_zero_and_unkeyed_records_are_delivered() {
    let broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    create_topic(&Admin::with_client(client.clone()), "fire-and-forget", 4).await;
    let producer = Producer::with_client(
        client.clone(),
        ProducerConfig {
            acks: Acks::None,
            ..Default::default()
        },
    )
    .await
    .expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..500 {
        deliveries.push(
            producer
                .send(ProducerRecord::new("fire-and-forget", format!("{i}")))
                .await
                .expect("send"),
        );
    }
    for delivery in deliveries {
        assert_eq!(delivery.await.expect("written").offset, -1);
    }
    producer.close().await.expect("close");
    let consumer = Consumer::with_client(client, ConsumerConfig::default()).expect("consumer");
    consumer
        .assign(
            (0..4)
                .map(|p| (TopicPartition::new("fire-and-forget", p), Offset::Beginning))
                .collect(),
        )
        .await
        .expect("assign");
    assert_eq!(consume(&consumer, 500).await.len(), 500);
}

#[tokio::test]
async fn idempotent_producer_does_not_duplicate_across_a_broker_restart() {
    let mut broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    create_topic(&Admin::with_client(client.clone()), "restarts", 1).await;
    let producer = Producer::with_client(client.clone(), ProducerConfig::default())
        .await
        .expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..200 {
        deliveries.push(
            producer
                .send(ProducerRecord::new("restarts", format!("{i}")))
                .await
                .expect("send"),
        );
        if i == 100 {
            // Kill the broker with records in flight: their connections drop mid-request.
            restart_broker(&mut broker);
        }
    }
    for delivery in deliveries {
        delivery.await.expect("delivered after the restart");
    }
    producer.close().await.expect("close");
    let consumer = Consumer::with_client(client, ConsumerConfig::default()).expect("consumer");
    consumer
        .assign(BTreeMap::from([(
            TopicPartition::new("restarts", 0),
            Offset::Beginning,
        )]))
        .await
        .expect("assign");
    let mut records = consume(&consumer, 200).await;
    records.extend(consumer.poll(Duration::from_millis(500)).await.expect("poll"));
    let mut seen: Vec<usize> = values(&records).iter().map(|v| v.parse().expect("number")).collect();
    assert_eq!(seen.len(), 200, "no duplicates, nothing lost");
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 200);
}
