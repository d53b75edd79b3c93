//! Consuming assigned partitions against the real broker: starting offsets and `max_poll_records`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::{
    Admin, Client, Consumer, ConsumerConfig, Offset, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};

use common::*;

#[tokio::test]
async fn offset_timestamp_resolves_with_list_offsets() {
    let broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    create_topic(&Admin::with_client(client.clone()), "timestamps", 1).await;
    let producer = Producer::with_client(client.clone(), ProducerConfig::default())
        .await
        .expect("producer");
    for (i, timestamp) in [1_000i64, 2_000, 3_000].into_iter().enumerate() {
        let record = ProducerRecord::new("timestamps", format!("{i}"))
            .with_partition(0)
            .with_timestamp(timestamp);
        producer.send(record).await.expect("send").await.expect("delivered");
    }
    producer.close().await.expect("close");

    let consumer = Consumer::with_client(client, ConsumerConfig::default()).expect("consumer");
    consumer
        .assign(BTreeMap::from([(
            TopicPartition::new("timestamps", 0),
            Offset::Timestamp(1_500),
        )]))
        .await
        .expect("assign");
    assert_eq!(consumer.position(&TopicPartition::new("timestamps", 0)).await, Some(1));
    let records = consume(&consumer, 2).await;
    assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(records.first().map(|r| r.timestamp), Some(2_000));
    assert_eq!(
        records.first().and_then(|r| r.value.clone()),
        Some(Bytes::from_static(b"1"))
    );

    consumer
        .seek(&TopicPartition::new("timestamps", 0), Offset::Timestamp(10_000))
        .await
        .expect("seek");
    assert_eq!(
        consumer.position(&TopicPartition::new("timestamps", 0)).await,
        Some(3),
        "no later record: the end"
    );
    consumer
        .seek(&TopicPartition::new("timestamps", 0), Offset::At(0))
        .await
        .expect("seek");
    consumer
        .pause(&[TopicPartition::new("timestamps", 0)])
        .await
        .expect("pause");
    assert!(consumer
        .poll(Duration::from_millis(200))
        .await
        .expect("poll")
        .is_empty());
    consumer
        .resume(&[TopicPartition::new("timestamps", 0)])
        .await
        .expect("resume");
    assert_eq!(consume(&consumer, 3).await.len(), 3);
}

#[tokio::test]
async fn max_poll_records_bounds_each_poll_and_keeps_the_rest() {
    let broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    create_topic(&Admin::with_client(client.clone()), "bounded", 1).await;
    produce_numbered(&client, "bounded", 0..25).await;
    let consumer = Consumer::with_client(
        client,
        ConsumerConfig {
            max_poll_records: 10,
            ..Default::default()
        },
    )
    .expect("consumer");
    consumer
        .assign(BTreeMap::from([(TopicPartition::new("bounded", 0), Offset::Beginning)]))
        .await
        .expect("assign");
    let mut offsets = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while offsets.len() < 25 && Instant::now() < deadline {
        let records = consumer.poll(Duration::from_millis(500)).await.expect("poll");
        assert!(records.len() <= 10, "{} records in one poll", records.len());
        if let Some(last) = records.last() {
            assert_eq!(
                consumer.position(&TopicPartition::new("bounded", 0)).await,
                Some(last.offset + 1),
                "the position follows the returned records only"
            );
        }
        offsets.extend(records.iter().map(|r| r.offset));
    }
    assert_eq!(
        offsets,
        (0..25).collect::<Vec<i64>>(),
        "in order, none lost or repeated"
    );
    // A seek drops what is buffered past the new position.
    consumer
        .seek(&TopicPartition::new("bounded", 0), Offset::At(5))
        .await
        .expect("seek");
    let again = consume(&consumer, 20).await;
    assert_eq!(again.first().map(|r| r.offset), Some(5));
    assert_eq!(again.len(), 20);
}
