//! Produces a few keyed records: `cargo run -p strom-client --example produce -- 127.0.0.1:9092 events`.

use strom_client::{Admin, ClientConfig, Compression, NewTopic, Producer, ProducerConfig, ProducerRecord};

#[tokio::main]
async fn main() -> strom_client::Result<()> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".to_string());
    let topic = args.next().unwrap_or_else(|| "events".to_string());
    let config = ClientConfig::new([bootstrap]);

    let admin = Admin::new(config.clone()).await?;
    match admin.create_topics(&[NewTopic::new(&topic, 3, 1)]).await {
        Ok(()) | Err(strom_client::Error::Kafka { code: 36, .. }) => {} // created or already there
        Err(error) => return Err(error),
    }

    let producer = Producer::new(
        config,
        ProducerConfig {
            compression: Compression::Lz4,
            ..Default::default()
        },
    )
    .await?;
    let mut deliveries = Vec::new();
    for i in 0..10 {
        let record = ProducerRecord::new(&topic, format!("hello {i}")).with_key(format!("key-{i}"));
        deliveries.push(producer.send(record).await?);
    }
    for delivery in deliveries {
        let metadata = delivery.await?;
        println!("{}-{}@{}", metadata.topic, metadata.partition, metadata.offset);
    }
    producer.close().await
}
