//! The producer handle: partitioning, buffer memory and the transactional calls; records go to
//! the accumulator (`accumulator.rs`), which the background sender (`sender.rs`) drains.
//!
//! `send` appends a record to its partition's newest open batch (or starts one) and returns a
//! [`DeliveryFuture`]. The sender wakes when a batch is full, its linger has passed or a
//! flush is requested, takes at most one batch per partition, groups them by leader broker
//! and sends one Produce request per broker, each on its own task so requests pipeline.
//! Idempotence (producer id, sequence numbers) is `idempotence.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::client::{Client, ClientConfig};
use crate::constants::RECORD_OVERHEAD_BYTES;
use crate::delivery::DeliveryFuture;
use crate::error::{Error, Result};
use crate::group::ConsumerGroupMetadata;
use crate::idempotence::{init_producer_id, ProducerIdentity};
use crate::producer_config::ProducerConfig;
use crate::record::{ProducerRecord, RecordData};
use crate::sender::{self, Sender};
use crate::topic_partition::TopicPartition;
use crate::transaction::Transactions;

/// An asynchronous, batching Kafka producer. Cheap to share behind an `Arc`; `send` takes `&self`.
///
/// ```no_run
/// # async fn demo() -> strom_client::Result<()> {
/// use strom_client::{ClientConfig, Producer, ProducerConfig, ProducerRecord};
///
/// let producer = Producer::new(ClientConfig::new(["127.0.0.1:9092"]), ProducerConfig::default()).await?;
/// let mut deliveries = Vec::new();
/// for i in 0..100 {
///     deliveries.push(producer.send(ProducerRecord::new("events", format!("event {i}")).with_key("k")).await?);
/// }
/// for delivery in deliveries {
///     delivery.await?;
/// }
/// producer.close().await?;
/// # Ok(()) }
/// ```
pub struct Producer {
    sender: Arc<Sender>,
    /// The `buffer_memory` budget: a queued record holds permits for its bytes until its
    /// batch is settled.
    memory: Arc<Semaphore>,
    sender_task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.sender.config)
            .field("producer_id", &self.sender.identity())
            .finish()
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // The sender delivers what is queued, then stops.
        self.sender.close();
    }
}

impl Producer {
    /// Connects a new client and starts a producer on it.
    pub async fn new(client_config: ClientConfig, config: ProducerConfig) -> Result<Producer> {
        Producer::with_client(Client::connect(client_config).await?, config).await
    }

    /// Starts a producer on an existing client (sharing its connections). With idempotence,
    /// this fetches a producer id first.
    pub async fn with_client(client: Client, config: ProducerConfig) -> Result<Producer> {
        config.validate()?;
        let (producer_id, producer_epoch) = if config.idempotent() && config.transactional_id.is_none() {
            init_producer_id(&client).await?
        } else {
            (-1, -1)
        };
        debug!(producer_id, producer_epoch, "producer started");
        let transactions = config
            .transactional_id
            .clone()
            .map(|id| Transactions::new(client.clone(), id, config.transaction_timeout));
        let memory = Arc::new(Semaphore::new(config.buffer_memory));
        let sender = Arc::new(Sender::new(client, config, (producer_id, producer_epoch), transactions));
        let sender_task = tokio::spawn(sender::run(sender.clone()));
        Ok(Producer {
            sender,
            memory,
            sender_task: tokio::sync::Mutex::new(Some(sender_task)),
        })
    }

    /// The producer id and epoch given by the broker, or `None` without idempotence.
    pub fn producer_id(&self) -> Option<ProducerIdentity> {
        let (id, epoch) = self.sender.identity();
        (id >= 0).then_some(ProducerIdentity { id, epoch })
    }

    /// The client this producer sends with.
    pub fn client(&self) -> &Client {
        &self.sender.client
    }

    /// Queues a record and returns a future of its delivery. Waits up to `max_block` for
    /// buffer memory. A missing topic is created if the cluster creates topics on first
    /// use; otherwise, and for unknown partitions, it fails at once.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let sender = &self.sender;
        if sender.is_closing() {
            return Err(Error::Config("producer is closed".into()));
        }
        let topic = sender.client.topic_metadata_or_create(&record.topic).await?;
        let partitions = topic.partition_count();
        if partitions == 0 {
            return Err(Error::UnknownTopic(record.topic));
        }
        if let Some(partition) = record.partition {
            if !(0..partitions).contains(&partition) {
                return Err(Error::UnknownTopic(format!("{}-{partition}", record.topic)));
            }
        }
        let bytes = record.payload_bytes() + RECORD_OVERHEAD_BYTES;
        let permits = u32::try_from(bytes)
            .ok()
            .filter(|_| bytes <= sender.config.buffer_memory)
            .ok_or_else(|| Error::Config(format!("record of {bytes} bytes exceeds buffer_memory")))?;
        // The fast path takes no timer: most sends find buffer memory free.
        let memory = match self.memory.clone().try_acquire_many_owned(permits) {
            Ok(memory) => memory,
            Err(_) => tokio::time::timeout(sender.config.max_block, self.memory.clone().acquire_many_owned(permits))
                .await
                .map_err(|_| {
                    Error::Timeout(format!(
                        "no buffer memory for {:?} (max_block)",
                        sender.config.max_block
                    ))
                })?
                .map_err(|_| Error::Config("producer is closed".into()))?,
        };

        let partitioner = &sender.config.partitioner;
        let key = record.key.as_deref();
        let mut partition = record
            .partition
            .unwrap_or_else(|| partitioner.partition(&record.topic, key, partitions));
        if record.partition.is_none() && key.is_none() && sender.starts_new_batch(&record.topic, partition, bytes) {
            partitioner.on_new_batch(&record.topic, partitions, partition);
            partition = partitioner.partition(&record.topic, key, partitions);
        }
        if !(0..partitions).contains(&partition) {
            return Err(Error::Config(format!(
                "partitioner chose partition {partition} of {partitions}"
            )));
        }

        if let Some(transactions) = &sender.transactions {
            transactions.add_partition(&record.topic, partition).await?;
        }
        let (completion, delivery) = DeliveryFuture::channel();
        let data = RecordData {
            key: record.key,
            value: record.value,
            headers: record.headers,
            timestamp: record.timestamp.unwrap_or_else(now_ms),
        };
        sender.enqueue(
            TopicPartition::new(record.topic, partition),
            data,
            bytes,
            completion,
            memory,
        );
        Ok(delivery)
    }

    /// Sends every queued record at once (ignoring linger) and waits until all records sent
    /// so far are delivered or failed.
    pub async fn flush(&self) -> Result<()> {
        self.sender.flush().await
    }

    /// Flushes, then stops the background sender. Later `send` calls fail.
    pub async fn close(&self) -> Result<()> {
        self.sender.close();
        self.flush().await?;
        self.sender.close();
        if let Some(sender_task) = self.sender_task.lock().await.take() {
            sender_task
                .await
                .map_err(|e| Error::Config(format!("producer sender task failed: {e}")))?;
        }
        Ok(())
    }
}

impl Producer {
    fn transactions(&self) -> Result<&Transactions> {
        self.sender
            .transactions
            .as_ref()
            .ok_or_else(|| Error::Config("transactional_id is not set".into()))
    }

    /// Registers the transactional id with its coordinator: fences older producers with the
    /// same id, completes their open transaction and gets a producer id. Call once, first.
    pub async fn init_transactions(&self) -> Result<()> {
        let transactions = self.transactions()?;
        self.flush().await?;
        let identity = transactions.init().await?;
        self.sender.set_identity(identity);
        Ok(())
    }

    /// Opens a transaction; records sent until it is committed or aborted belong to it.
    pub fn begin_transaction(&self) -> Result<()> {
        self.transactions()?.begin()
    }

    /// Adds a consumer group's offsets (the next offset to read per partition) to the open
    /// transaction: they are committed if and only if the transaction is.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &BTreeMap<TopicPartition, i64>,
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        self.transactions()?.send_offsets(offsets, group).await
    }

    /// Delivers every record of the open transaction, then commits it. Fails (and the
    /// transaction must be aborted) if a record of it could not be delivered.
    pub async fn commit_transaction(&self) -> Result<()> {
        let transactions = self.transactions()?;
        self.flush().await?;
        transactions.end(true).await
    }

    /// Waits for the records in flight, then aborts the open transaction: read_committed
    /// consumers never see its records.
    pub async fn abort_transaction(&self) -> Result<()> {
        let transactions = self.transactions()?;
        self.flush().await?;
        transactions.end(false).await
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
