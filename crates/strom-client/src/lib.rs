//! `strom-client`: a native async Rust client for Strom and other Kafka-protocol brokers.
//!
//! It speaks only the Kafka wire protocol (through the `kafka-protocol` codec), so it works
//! with any broker that does.
//!
//! - [`Client`]: bootstrap, metadata cache, one pipelined [`Connection`] per broker, retries.
//! - [`Producer`]: partitioning, batching with linger, compression, acks, retries, idempotence.
//! - [`Consumer`]: manually assigned partitions or consumer groups (classic protocol with range
//!   and round-robin assignors with eager rebalancing, the cooperative-sticky assignor with
//!   incremental rebalancing, or the KIP-848 protocol with broker-side assignors; topic or
//!   pattern subscriptions; commits), long-poll fetches, read_committed, `max_poll_records`.
//! - [`Admin`]: topics, partitions, configs, offsets and groups.
//!
//! ```no_run
//! # async fn demo() -> strom_client::Result<()> {
//! use strom_client::{
//!     ClientConfig, Consumer, ConsumerConfig, Offset, Producer, ProducerConfig, ProducerRecord, TopicPartition,
//! };
//! use std::collections::BTreeMap;
//! use std::time::Duration;
//!
//! let config = ClientConfig::new(["127.0.0.1:9092"]);
//! let producer = Producer::new(config.clone(), ProducerConfig::default()).await?;
//! let metadata = producer.send(ProducerRecord::new("events", "hello").with_key("k")).await?.await?;
//! producer.close().await?;
//!
//! let consumer = Consumer::new(config, ConsumerConfig::default()).await?;
//! let partition = TopicPartition::new("events", metadata.partition);
//! consumer.assign(BTreeMap::from([(partition, Offset::Beginning)])).await?;
//! for record in consumer.poll(Duration::from_secs(1)).await? {
//!     println!("{}@{}: {:?}", record.partition, record.offset, record.value);
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod accumulator;
mod admin;
mod assignment;
mod assignor;
mod classic_group;
mod client;
mod connection;
mod constants;
mod consumer;
mod consumer_group;
mod consumer_protocol;
mod coordinator;
mod delivery;
mod error;
mod fetch_buffer;
mod group;
mod idempotence;
mod membership;
mod offset;
pub mod partitioner;
mod producer;
mod producer_config;
mod record;
mod sender;
mod sticky;
mod subscription;
mod sync;
mod topic_partition;
mod transaction;

pub use admin::{
    Admin, ConfigChange, ConfigEntry, GroupDescription, GroupListing, GroupMember, NewTopic, PartitionDescription,
    TopicDescription, TopicListing,
};
pub use assignor::Assignor;
pub use client::{BrokerMetadata, Client, ClientConfig, Metadata, PartitionMetadata, TopicMetadata};
pub use connection::{Connection, Submitted};
pub use consumer::{Consumer, ConsumerConfig, IsolationLevel};
pub use delivery::{DeliveryFuture, RecordMetadata};
pub use error::{ConnectFailure, Error, Result};
pub use group::ConsumerGroupMetadata;
pub use idempotence::ProducerIdentity;
pub use membership::{GroupProtocol, RebalanceListener};
pub use offset::{AutoOffsetReset, CommittedOffset, ListedOffset, Offset, OffsetSpec};
pub use partitioner::{
    DefaultPartitioner, HashRangePartitioner, Murmur2Partitioner, Partitioner, RoundRobinPartitioner,
};
pub use producer::Producer;
pub use producer_config::{Acks, ProducerConfig};
pub use record::{Compression, ConsumerRecord, Header, ProducerRecord};
pub use topic_partition::TopicPartition;

/// The `kafka-protocol` crate this client is built on, for sending raw requests with
/// [`Client::send_to`].
pub use kafka_protocol;
