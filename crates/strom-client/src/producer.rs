//! The producer: partitioning, a per-partition accumulator with linger and batch size, a
//! background sender, retries within the delivery timeout and idempotence.
//!
//! `send` appends a record to its partition's newest open batch (or starts one) and returns a
//! [`DeliveryFuture`]. The sender task wakes when a batch is full, its linger has passed or a
//! flush is requested, takes at most one batch per partition, groups them by leader broker
//! and sends one Produce request per broker, each on its own task so requests pipeline.
//!
//! With idempotence, batches get sequence numbers when first sent, at most
//! [`IN_FLIGHT_BATCHES_PER_PARTITION_MAX`] are in flight per partition, and a retried batch is
//! sent alone (nothing else of its partition in flight) so the broker sees sequences in order.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    InitProducerIdRequest, ProduceRequest, ProduceResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::client::{Client, ClientConfig};
use crate::constants::{BATCH_RECORDS_PREALLOCATED_MAX, IN_FLIGHT_BATCHES_PER_PARTITION_MAX, RECORD_OVERHEAD_BYTES};
use crate::error::{Error, Result};
use crate::group::ConsumerGroupMetadata;
use crate::partitioner::{DefaultPartitioner, Partitioner};
use crate::record::{encode_batch, BatchProducer, Compression, ProducerRecord, RecordData};
use crate::transaction::Transactions;

/// Kafka's DUPLICATE_SEQUENCE_NUMBER: the broker already has the batch.
const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
/// Kafka's OUT_OF_ORDER_SEQUENCE_NUMBER: an earlier batch of the partition is being retried.
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;

/// How many acknowledgements the leader waits for before answering a Produce request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// No answer at all (acks=0): a record is "delivered" once written to the socket.
    None,
    /// The leader has appended the records (acks=1).
    Leader,
    /// Every in-sync replica has the records (acks=all / -1).
    #[default]
    All,
}

impl Acks {
    fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Producer settings; the defaults are Kafka's.
///
/// ```
/// use std::time::Duration;
/// use strom_client::{Acks, Compression, ProducerConfig};
///
/// let config = ProducerConfig { compression: Compression::Zstd, linger: Duration::from_millis(20), ..Default::default() };
/// assert_eq!(config.acks, Acks::All);
/// assert_eq!(config.batch_size, 16 * 1024);
/// ```
#[derive(Clone)]
pub struct ProducerConfig {
    /// Acknowledgements to wait for.
    pub acks: Acks,
    /// How long a batch waits for more records before it is sent (`linger.ms`).
    pub linger: Duration,
    /// Target size of a batch in bytes of keys, values and headers (`batch.size`).
    pub batch_size: usize,
    /// Bytes of records waiting to be delivered before `send` blocks (`buffer.memory`).
    pub buffer_memory: usize,
    /// How long `send` waits for buffer memory (`max.block.ms`).
    pub max_block: Duration,
    /// Compression of produced batches.
    pub compression: Compression,
    /// Upper bound on the time from `send` to success or failure, retries included
    /// (`delivery.timeout.ms`).
    pub delivery_timeout: Duration,
    /// Exactly-once delivery per partition (producer id and sequence numbers). Only used with
    /// [`Acks::All`]; other acks turn it off, as Kafka's clients do when it is not set
    /// explicitly.
    pub enable_idempotence: bool,
    /// Chooses partitions for records without one.
    pub partitioner: Arc<dyn Partitioner>,
    /// Makes the producer transactional (`transactional.id`): records are sent inside
    /// transactions ([`Producer::begin_transaction`] … [`Producer::commit_transaction`]) and a
    /// newer producer with the same id fences this one. Needs idempotence.
    pub transactional_id: Option<String>,
    /// The coordinator aborts a transaction left open longer than this (`transaction.timeout.ms`).
    pub transaction_timeout: Duration,
}

impl std::fmt::Debug for ProducerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerConfig")
            .field("acks", &self.acks)
            .field("linger", &self.linger)
            .field("batch_size", &self.batch_size)
            .field("buffer_memory", &self.buffer_memory)
            .field("max_block", &self.max_block)
            .field("compression", &self.compression)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("enable_idempotence", &self.enable_idempotence)
            .field("transactional_id", &self.transactional_id)
            .field("transaction_timeout", &self.transaction_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 16 * 1024,
            buffer_memory: 32 * 1024 * 1024,
            max_block: Duration::from_secs(60),
            compression: Compression::None,
            delivery_timeout: Duration::from_secs(120),
            enable_idempotence: true,
            partitioner: Arc::new(DefaultPartitioner::default()),
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
        }
    }
}

impl ProducerConfig {
    fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::Config("batch_size must be positive".into()));
        }
        if self.buffer_memory < self.batch_size || self.buffer_memory > Semaphore::MAX_PERMITS {
            return Err(Error::Config(format!(
                "buffer_memory must be between batch_size ({}) and {}",
                self.batch_size,
                Semaphore::MAX_PERMITS
            )));
        }
        if self.delivery_timeout.is_zero() {
            return Err(Error::Config("delivery_timeout must be positive".into()));
        }
        if self.transactional_id.is_some() && !self.idempotent() {
            return Err(Error::Config(
                "a transactional producer needs enable_idempotence and Acks::All".into(),
            ));
        }
        Ok(())
    }

    fn idempotent(&self) -> bool {
        self.enable_idempotence && self.acks == Acks::All
    }
}

/// Where a record was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset, or -1 when unknown (acks=0, or a duplicate the broker already had).
    pub offset: i64,
    /// The record's timestamp: log-append time for such topics, else the creation time.
    pub timestamp: i64,
}

/// Resolves when the broker has acknowledged (or definitively rejected) a record.
///
/// ```no_run
/// # async fn demo(producer: strom_client::Producer) -> strom_client::Result<()> {
/// let delivery = producer.send(strom_client::ProducerRecord::new("events", "payload")).await?;
/// let metadata = delivery.await?;
/// println!("stored at {}-{}@{}", metadata.topic, metadata.partition, metadata.offset);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DeliveryFuture {
    receiver: oneshot::Receiver<Result<RecordMetadata>>,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.receiver)
            .poll(cx)
            .map(|result| result.unwrap_or_else(|_| Err(Error::Config("producer dropped before delivery".into()))))
    }
}

type TopicPartition = (String, i32);

/// Batches to send, by leader broker id.
type ReadyBatches = HashMap<i32, Vec<(TopicPartition, Batch)>>;

/// Records of one partition sent (and retried) together.
struct Batch {
    records: Vec<RecordData>,
    completions: Vec<oneshot::Sender<Result<RecordMetadata>>>,
    bytes: usize,
    created: Instant,
    deadline: Instant,
    attempts: u32,
    retry_at: Option<Instant>,
    /// Set once sent; a sent batch takes no more records.
    sealed: bool,
    base_sequence: Option<i32>,
    _memory: OwnedSemaphorePermit,
}

#[derive(Default)]
struct PartitionQueue {
    batches: VecDeque<Batch>,
    in_flight: usize,
    next_sequence: i32,
}

struct Shared {
    client: Client,
    config: ProducerConfig,
    /// Producer id and epoch; (-1, -1) without idempotence (or before `init_transactions`).
    identity: Mutex<(i64, i16)>,
    transactions: Option<Transactions>,
    queues: Mutex<HashMap<TopicPartition, PartitionQueue>>,
    wakeup: Notify,
    memory: Arc<Semaphore>,
    /// Records sent but not yet completed.
    pending: watch::Sender<usize>,
    flushing: AtomicUsize,
    closing: AtomicBool,
    stale_topics: Mutex<Vec<String>>,
}

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
    shared: Arc<Shared>,
    sender: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.shared.config)
            .field("producer_id", &self.shared.identity())
            .finish()
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // The sender delivers what is queued, then stops.
        self.shared.closing.store(true, Ordering::Release);
        self.shared.wakeup.notify_one();
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
        let shared = Arc::new(Shared {
            memory: Arc::new(Semaphore::new(config.buffer_memory)),
            client,
            config,
            identity: Mutex::new((producer_id, producer_epoch)),
            transactions,
            queues: Mutex::new(HashMap::new()),
            wakeup: Notify::new(),
            pending: watch::channel(0).0,
            flushing: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            stale_topics: Mutex::new(Vec::new()),
        });
        let sender = tokio::spawn(run_sender(shared.clone()));
        Ok(Producer {
            shared,
            sender: tokio::sync::Mutex::new(Some(sender)),
        })
    }

    /// The producer id and epoch given by the broker, or `None` without idempotence.
    pub fn producer_id(&self) -> Option<(i64, i16)> {
        let (producer_id, producer_epoch) = self.shared.identity();
        (producer_id >= 0).then_some((producer_id, producer_epoch))
    }

    /// The client this producer sends with.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// Queues a record and returns a future of its delivery. Waits up to `max_block` for
    /// buffer memory. A missing topic is created if the cluster creates topics on first
    /// use; otherwise, and for unknown partitions, it fails at once.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let shared = &self.shared;
        if shared.closing.load(Ordering::Acquire) {
            return Err(Error::Config("producer is closed".into()));
        }
        let topic = shared.client.topic_metadata_or_create(&record.topic).await?;
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
            .filter(|_| bytes <= shared.config.buffer_memory)
            .ok_or_else(|| Error::Config(format!("record of {bytes} bytes exceeds buffer_memory")))?;
        // The fast path takes no timer: most sends find buffer memory free.
        let memory = match shared.memory.clone().try_acquire_many_owned(permits) {
            Ok(memory) => memory,
            Err(_) => tokio::time::timeout(
                shared.config.max_block,
                shared.memory.clone().acquire_many_owned(permits),
            )
            .await
            .map_err(|_| {
                Error::Timeout(format!(
                    "no buffer memory for {:?} (max_block)",
                    shared.config.max_block
                ))
            })?
            .map_err(|_| Error::Config("producer is closed".into()))?,
        };

        let partitioner = &shared.config.partitioner;
        let key = record.key.as_deref();
        let mut partition = record
            .partition
            .unwrap_or_else(|| partitioner.partition(&record.topic, key, partitions));
        if record.partition.is_none() && key.is_none() && shared.starts_new_batch(&record.topic, partition, bytes) {
            partitioner.on_new_batch(&record.topic, partitions, partition);
            partition = partitioner.partition(&record.topic, key, partitions);
        }
        if !(0..partitions).contains(&partition) {
            return Err(Error::Config(format!(
                "partitioner chose partition {partition} of {partitions}"
            )));
        }

        if let Some(transactions) = &shared.transactions {
            transactions.add_partition(&record.topic, partition).await?;
        }
        let (completion, receiver) = oneshot::channel();
        let data = RecordData {
            key: record.key,
            value: record.value,
            headers: record.headers,
            timestamp: record.timestamp.unwrap_or_else(now_ms),
        };
        shared.append((record.topic, partition), data, bytes, completion, memory);
        Ok(DeliveryFuture { receiver })
    }

    /// Sends every queued record at once (ignoring linger) and waits until all records sent
    /// so far are delivered or failed.
    pub async fn flush(&self) -> Result<()> {
        let shared = &self.shared;
        shared.flushing.fetch_add(1, Ordering::AcqRel);
        shared.wakeup.notify_one();
        let mut pending = shared.pending.subscribe();
        let result = pending.wait_for(|count| *count == 0).await.map(|_| ());
        shared.flushing.fetch_sub(1, Ordering::AcqRel);
        result.map_err(|_| Error::Config("producer stopped".into()))
    }

    /// Flushes, then stops the background sender. Later `send` calls fail.
    pub async fn close(&self) -> Result<()> {
        self.shared.closing.store(true, Ordering::Release);
        self.flush().await?;
        self.shared.wakeup.notify_one();
        if let Some(sender) = self.sender.lock().await.take() {
            sender
                .await
                .map_err(|e| Error::Config(format!("producer sender task failed: {e}")))?;
        }
        Ok(())
    }
}

impl Producer {
    fn transactions(&self) -> Result<&Transactions> {
        self.shared
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
        *lock(&self.shared.identity) = identity;
        for queue in lock(&self.shared.queues).values_mut() {
            queue.next_sequence = 0;
        }
        Ok(())
    }

    /// Opens a transaction; records sent until it is committed or aborted belong to it.
    pub fn begin_transaction(&self) -> Result<()> {
        self.transactions()?.begin()
    }

    /// Adds a consumer group's offsets (topic, partition, next offset to read) to the open
    /// transaction: they are committed if and only if the transaction is.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &[(String, i32, i64)],
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

async fn init_producer_id(client: &Client) -> Result<(i64, i16)> {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(i32::MAX)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    client
        .retrying(|| async {
            let response = client.send_any(&request).await?;
            Error::check(response.error_code, None)?;
            if response.producer_id.0 < 0 || response.producer_epoch < 0 {
                return Err(Error::Protocol(format!(
                    "InitProducerId returned producer id {} epoch {}",
                    response.producer_id.0, response.producer_epoch
                )));
            }
            Ok((response.producer_id.0, response.producer_epoch))
        })
        .await
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn identity(&self) -> (i64, i16) {
        *lock(&self.identity)
    }

    fn starts_new_batch(&self, topic: &str, partition: i32, bytes: usize) -> bool {
        let queues = lock(&self.queues);
        let open = queues
            .get(&(topic.to_string(), partition))
            .and_then(|queue| queue.batches.back())
            .filter(|batch| !batch.sealed);
        match open {
            Some(batch) => batch.bytes + bytes > self.config.batch_size,
            None => true,
        }
    }

    fn append(
        &self,
        partition: TopicPartition,
        data: RecordData,
        bytes: usize,
        completion: oneshot::Sender<Result<RecordMetadata>>,
        memory: OwnedSemaphorePermit,
    ) {
        // Only a count reaching zero matters to flush(): no wakeups for increments.
        self.pending.send_if_modified(|count| {
            *count += 1;
            false
        });
        let mut queues = lock(&self.queues);
        let queue = queues.entry(partition).or_default();
        let batch_size = self.config.batch_size;
        match queue
            .batches
            .back_mut()
            .filter(|b| !b.sealed && b.bytes + bytes <= batch_size)
        {
            Some(batch) => {
                batch.records.push(data);
                batch.completions.push(completion);
                batch.bytes += bytes;
                batch._memory.merge(memory);
                // The sender already knows this batch's linger deadline; it needs waking
                // only once the batch is full.
                if batch.bytes < batch_size {
                    return;
                }
            }
            None => {
                let now = Instant::now();
                // Room for a full batch of records like this one: no regrowth per record.
                let capacity = (batch_size / bytes.max(1)).clamp(1, BATCH_RECORDS_PREALLOCATED_MAX);
                let mut records = Vec::with_capacity(capacity);
                records.push(data);
                let mut completions = Vec::with_capacity(capacity);
                completions.push(completion);
                queue.batches.push_back(Batch {
                    records,
                    completions,
                    bytes,
                    created: now,
                    deadline: now + self.config.delivery_timeout,
                    attempts: 0,
                    retry_at: None,
                    sealed: false,
                    base_sequence: None,
                    _memory: memory,
                });
            }
        }
        drop(queues);
        self.wakeup.notify_one();
    }

    /// Completes every record of a batch; the batch's memory is released when it drops.
    fn complete(&self, topic: &str, partition: i32, batch: Batch, result: Result<(i64, i64)>) {
        if let (Err(error), Some(transactions)) = (&result, &self.transactions) {
            transactions.record_failure(error);
        }
        let count = batch.completions.len();
        for (index, (completion, data)) in batch.completions.into_iter().zip(&batch.records).enumerate() {
            let outcome = match &result {
                Ok((base_offset, log_append_time)) => Ok(RecordMetadata {
                    topic: topic.to_string(),
                    partition,
                    offset: if *base_offset < 0 {
                        -1
                    } else {
                        base_offset + index as i64
                    },
                    timestamp: if *log_append_time >= 0 {
                        *log_append_time
                    } else {
                        data.timestamp
                    },
                }),
                Err(error) => Err(error.clone()),
            };
            let _ = completion.send(outcome);
        }
        self.pending.send_if_modified(|pending| {
            *pending = pending.saturating_sub(count);
            *pending == 0
        });
    }

    fn max_in_flight(&self) -> usize {
        IN_FLIGHT_BATCHES_PER_PARTITION_MAX
    }

    /// Takes the batches to send now (at most one per partition), grouped by leader, expires
    /// batches past their delivery timeout, and returns when to look again.
    fn drain(&self, now: Instant) -> (ReadyBatches, Option<Instant>) {
        let flushing = self.flushing.load(Ordering::Acquire) > 0 || self.closing.load(Ordering::Acquire);
        let metadata = self.client.metadata();
        let mut ready: ReadyBatches = HashMap::new();
        let mut expired = Vec::new();
        let mut next_wake: Option<Instant> = None;
        let mut wake_at = |at: Instant| next_wake = Some(next_wake.map_or(at, |w| w.min(at)));
        let mut queues = lock(&self.queues);
        for ((topic, partition), queue) in queues.iter_mut() {
            while let Some(batch) = queue.batches.front() {
                if batch.deadline <= now && !batch.sealed {
                    if let Some(batch) = queue.batches.pop_front() {
                        expired.push(((topic.clone(), *partition), batch));
                    }
                    continue;
                }
                break;
            }
            let Some(batch) = queue.batches.front() else { continue };
            if let Some(retry_at) = batch.retry_at.filter(|at| *at > now) {
                wake_at(retry_at);
                continue;
            }
            let limit = if batch.attempts > 0 && self.config.idempotent() {
                1
            } else {
                self.max_in_flight()
            };
            if queue.in_flight >= limit {
                continue;
            }
            let full = batch.bytes >= self.config.batch_size || queue.batches.len() > 1;
            let linger_end = batch.created + self.config.linger;
            if !(full || flushing || batch.attempts > 0 || linger_end <= now) {
                wake_at(linger_end);
                continue;
            }
            let leader = metadata
                .topics
                .get(topic)
                .and_then(|t| t.partition(*partition))
                .map(|p| p.leader)
                .filter(|leader| metadata.brokers.contains_key(leader));
            let Some(leader) = leader else {
                lock(&self.stale_topics).push(topic.clone());
                wake_at(now + self.client.config().retry_backoff);
                continue;
            };
            let Some(mut batch) = queue.batches.pop_front() else {
                continue;
            };
            batch.sealed = true;
            if self.config.idempotent() && batch.base_sequence.is_none() {
                batch.base_sequence = Some(queue.next_sequence);
                let count = i32::try_from(batch.records.len()).unwrap_or(i32::MAX);
                // Kafka's sequences wrap from i32::MAX to 0.
                queue.next_sequence = match queue.next_sequence.checked_add(count) {
                    Some(next) => next,
                    None => count - (i32::MAX - queue.next_sequence) - 1,
                };
            }
            queue.in_flight += 1;
            if !queue.batches.is_empty() {
                wake_at(now);
            }
            ready
                .entry(leader)
                .or_default()
                .push(((topic.clone(), *partition), batch));
        }
        queues.retain(|_, queue| !queue.batches.is_empty() || queue.in_flight > 0 || queue.next_sequence > 0);
        drop(queues);
        for ((topic, partition), batch) in expired {
            let error = Error::Timeout(format!("{topic}-{partition}: not delivered within delivery_timeout"));
            self.complete(&topic, partition, batch, Err(error));
        }
        (ready, next_wake)
    }

    fn is_idle(&self) -> bool {
        lock(&self.queues)
            .values()
            .all(|queue| queue.batches.is_empty() && queue.in_flight == 0)
    }

    /// Puts a failed batch back for a retry (in sequence order) or fails it for good.
    fn retry_or_fail(&self, partition: TopicPartition, mut batch: Batch, error: Error) {
        let now = Instant::now();
        let idempotent_reorder = self.config.idempotent() && error.code() == Some(OUT_OF_ORDER_SEQUENCE_NUMBER);
        let backoff = self.client.config().backoff(batch.attempts);
        let retriable = (error.is_retriable() || idempotent_reorder) && now + backoff < batch.deadline;
        let mut queues = lock(&self.queues);
        let queue = queues.entry(partition.clone()).or_default();
        queue.in_flight = queue.in_flight.saturating_sub(1);
        if retriable {
            debug!(topic = %partition.0, partition = partition.1, %error, attempts = batch.attempts, "retrying batch");
            if error.needs_metadata_refresh() {
                lock(&self.stale_topics).push(partition.0.clone());
            }
            batch.attempts += 1;
            batch.retry_at = Some(now + backoff);
            let position = queue
                .batches
                .iter()
                .position(|queued| match (queued.base_sequence, batch.base_sequence) {
                    (Some(queued), Some(retried)) => queued > retried,
                    (None, _) => true,
                    (Some(_), None) => false,
                })
                .unwrap_or(queue.batches.len());
            queue.batches.insert(position, batch);
            drop(queues);
        } else {
            drop(queues);
            warn!(topic = %partition.0, partition = partition.1, %error, "batch failed");
            self.complete(&partition.0, partition.1, batch, Err(error));
        }
        self.wakeup.notify_one();
    }

    fn succeeded(&self, partition: TopicPartition, batch: Batch, base_offset: i64, log_append_time: i64) {
        {
            let mut queues = lock(&self.queues);
            if let Some(queue) = queues.get_mut(&partition) {
                queue.in_flight = queue.in_flight.saturating_sub(1);
            }
        }
        self.complete(&partition.0, partition.1, batch, Ok((base_offset, log_append_time)));
        self.wakeup.notify_one();
    }
}

async fn run_sender(shared: Arc<Shared>) {
    loop {
        let stale: Vec<String> = std::mem::take(&mut *lock(&shared.stale_topics));
        if !stale.is_empty() {
            let mut topics: Vec<&str> = stale.iter().map(String::as_str).collect();
            topics.sort_unstable();
            topics.dedup();
            if let Err(error) = shared.client.refresh_metadata(Some(&topics)).await {
                debug!(%error, "metadata refresh failed");
            }
        }
        let now = Instant::now();
        let (ready, next_wake) = shared.drain(now);
        for (broker, batches) in ready {
            // Submitted here, in drain order, so that a partition's pipelined batches
            // reach the broker in sequence order; only the waits run concurrently.
            if let Some(sending) = submit_batches(&shared, broker, batches).await {
                tokio::spawn(sending);
            }
        }
        if shared.closing.load(Ordering::Acquire) && shared.is_idle() {
            debug!("producer sender stopped");
            return;
        }
        let wake = next_wake.unwrap_or(now + Duration::from_millis(500));
        tokio::select! {
            _ = shared.wakeup.notified() => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// Queues one Produce request with the batches for one broker on its connection; the
/// returned future waits for the response and settles each batch.
async fn submit_batches(
    shared: &Arc<Shared>,
    broker: i32,
    batches: Vec<(TopicPartition, Batch)>,
) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
    let config = &shared.config;
    let mut topics: Vec<TopicProduceData> = Vec::new();
    let mut sendable = Vec::with_capacity(batches.len());
    let (producer_id, producer_epoch) = shared.identity();
    for (partition, batch) in batches {
        let producer = BatchProducer {
            producer_id,
            producer_epoch,
            base_sequence: batch.base_sequence.unwrap_or(-1),
            transactional: shared.transactions.is_some(),
        };
        let encoded = match encode_batch(&batch.records, producer, config.compression) {
            Ok(encoded) => encoded,
            Err(error) => {
                shared.retry_or_fail(partition, batch, Error::Config(error.to_string()));
                continue;
            }
        };
        let data = PartitionProduceData::default()
            .with_index(partition.1)
            .with_records(Some(encoded));
        match topics.iter_mut().find(|t| t.name.0.as_str() == partition.0) {
            Some(topic) => topic.partition_data.push(data),
            None => topics.push(
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(partition.0.clone())))
                    .with_partition_data(vec![data]),
            ),
        }
        sendable.push((partition, batch));
    }
    if sendable.is_empty() {
        return None;
    }
    let timeout_ms = i32::try_from(shared.client.config().request_timeout.as_millis()).unwrap_or(i32::MAX);
    let request = ProduceRequest::default()
        .with_acks(config.acks.wire())
        .with_timeout_ms(timeout_ms)
        .with_transactional_id(
            config
                .transactional_id
                .clone()
                .map(|id| TransactionalId(StrBytes::from_string(id))),
        )
        .with_topic_data(topics);
    let submitted = match shared.client.connection(broker).await {
        Ok(connection) => connection.submit(&request, config.acks != Acks::None).await,
        Err(error) => Err(error),
    };
    let shared = shared.clone();
    Some(async move {
        let result = match submitted {
            Ok(submitted) => submitted.response().await,
            Err(error) => Err(error),
        };
        settle_all(&shared, sendable, result);
    })
}

/// Settles the batches of one Produce request by its outcome.
fn settle_all(shared: &Shared, sendable: Vec<(TopicPartition, Batch)>, result: Result<Option<ProduceResponse>>) {
    match result {
        Ok(None) => {
            for (partition, batch) in sendable {
                shared.succeeded(partition, batch, -1, -1);
            }
        }
        Ok(Some(response)) => settle(shared, sendable, response),
        Err(error) => {
            for (partition, batch) in sendable {
                shared.retry_or_fail(partition, batch, error.clone());
            }
        }
    }
}

fn settle(shared: &Shared, batches: Vec<(TopicPartition, Batch)>, response: ProduceResponse) {
    let mut results = HashMap::new();
    for topic in response.responses {
        for partition in topic.partition_responses {
            results.insert((topic.name.0.to_string(), partition.index), partition);
        }
    }
    for (partition, batch) in batches {
        let Some(result) = results.remove(&partition) else {
            let error = Error::Protocol(format!("no produce result for {}-{}", partition.0, partition.1));
            shared.retry_or_fail(partition, batch, error);
            continue;
        };
        match result.error_code {
            0 if result.base_offset >= 0 => {
                shared.succeeded(partition, batch, result.base_offset, result.log_append_time_ms)
            }
            0 => {
                let error = Error::Protocol(format!("negative base offset {}", result.base_offset));
                shared.retry_or_fail(partition, batch, error);
            }
            DUPLICATE_SEQUENCE_NUMBER => shared.succeeded(partition, batch, -1, -1),
            code => {
                let error = Error::kafka(code, result.error_message.as_deref());
                shared.retry_or_fail(partition, batch, error);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_are_kafkas() {
        let config = ProducerConfig::default();
        assert_eq!(config.acks, Acks::All);
        assert_eq!(config.linger, Duration::from_millis(5));
        assert_eq!(config.batch_size, 16 * 1024);
        assert_eq!(config.buffer_memory, 32 * 1024 * 1024);
        assert_eq!(config.max_block, Duration::from_secs(60));
        assert_eq!(config.compression, Compression::None);
        assert_eq!(config.delivery_timeout, Duration::from_secs(120));
        assert!(config.enable_idempotence && config.idempotent());
        assert!(!ProducerConfig {
            acks: Acks::Leader,
            ..Default::default()
        }
        .idempotent());
        assert!(config.validate().is_ok());
        assert!(ProducerConfig {
            batch_size: 0,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert_eq!((Acks::None.wire(), Acks::Leader.wire(), Acks::All.wire()), (0, 1, -1));
    }
}
