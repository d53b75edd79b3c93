//! Reads a topic's partitions from the beginning:
//! `cargo run -p strom-client --example consume -- 127.0.0.1:9092 events`.

use std::time::Duration;

use futures_util::StreamExt;
use strom_client::{Client, ClientConfig, Consumer, ConsumerConfig, Offset, TopicPartition};

#[tokio::main]
async fn main() -> strom_client::Result<()> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".to_string());
    let topic = args.next().unwrap_or_else(|| "events".to_string());

    let client = Client::connect(ClientConfig::new([bootstrap])).await?;
    let partitions = client.topic_metadata(&topic).await?.partition_count();
    let consumer = Consumer::with_client(client, ConsumerConfig::default())?;
    consumer
        .assign(
            (0..partitions)
                .map(|p| (TopicPartition::new(&topic, p), Offset::Beginning))
                .collect(),
        )
        .await?;

    let records = consumer.stream().take_until(tokio::time::sleep(Duration::from_secs(5)));
    let mut records = std::pin::pin!(records);
    while let Some(record) = records.next().await {
        let record = record?;
        let value = record.value.as_deref().map(String::from_utf8_lossy);
        println!("{}-{}@{}: {:?}", record.topic, record.partition, record.offset, value);
    }
    Ok(())
}
