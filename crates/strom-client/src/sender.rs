//! The producer's sender: the background task that drains the accumulator, sends one Produce
//! request per leader broker and settles each batch by the response: delivered, retried
//! within the delivery timeout, or failed.
//!
//! Requests to one broker are submitted in drain order so that a partition's pipelined
//! batches reach it in sequence order; only the waits for responses run concurrently.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{oneshot, watch, Notify, OwnedSemaphorePermit};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::accumulator::{Accumulator, Batch};
use crate::client::Client;
use crate::delivery::RecordMetadata;
use crate::error::{Error, Result};
use crate::idempotence::{DUPLICATE_SEQUENCE_NUMBER, OUT_OF_ORDER_SEQUENCE_NUMBER};
use crate::producer_config::{Acks, ProducerConfig};
use crate::record::{encode_batch, BatchProducer, RecordData};
use crate::sync::lock;
use crate::topic_partition::TopicPartition;
use crate::transaction::Transactions;

/// What the `Producer` handle and its sender task share.
pub(crate) struct Sender {
    pub client: Client,
    pub config: ProducerConfig,
    pub transactions: Option<Transactions>,
    /// Producer id and epoch; (-1, -1) without idempotence (or before `init_transactions`).
    identity: Mutex<(i64, i16)>,
    accumulator: Accumulator,
    wakeup: Notify,
    /// Records queued but not yet completed.
    pending: watch::Sender<usize>,
    flushing: AtomicUsize,
    closing: AtomicBool,
    stale_topics: Mutex<Vec<String>>,
}

impl Sender {
    pub fn new(
        client: Client,
        config: ProducerConfig,
        identity: (i64, i16),
        transactions: Option<Transactions>,
    ) -> Self {
        Sender {
            accumulator: Accumulator::new(&config),
            client,
            config,
            transactions,
            identity: Mutex::new(identity),
            wakeup: Notify::new(),
            pending: watch::channel(0).0,
            flushing: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            stale_topics: Mutex::new(Vec::new()),
        }
    }

    pub fn identity(&self) -> (i64, i16) {
        *lock(&self.identity)
    }

    /// Takes a new producer id and epoch; sequence numbers start again from 0.
    pub fn set_identity(&self, identity: (i64, i16)) {
        *lock(&self.identity) = identity;
        self.accumulator.reset_sequences();
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Makes the sender deliver what is queued, then stop.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.wakeup.notify_one();
    }

    /// Whether a record of `bytes` would start a new batch of its partition.
    pub fn starts_new_batch(&self, topic: &str, partition: i32, bytes: usize) -> bool {
        self.accumulator.starts_new_batch(topic, partition, bytes)
    }

    /// Queues a record for sending.
    pub fn enqueue(
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
        if self.accumulator.append(partition, data, bytes, completion, memory) {
            self.wakeup.notify_one();
        }
    }

    /// Sends every queued record at once (ignoring linger) and waits until all records
    /// queued so far are delivered or failed.
    pub async fn flush(&self) -> Result<()> {
        self.flushing.fetch_add(1, Ordering::AcqRel);
        self.wakeup.notify_one();
        let mut pending = self.pending.subscribe();
        let result = pending.wait_for(|count| *count == 0).await.map(|_| ());
        self.flushing.fetch_sub(1, Ordering::AcqRel);
        result.map_err(|_| Error::Config("producer stopped".into()))
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

    /// Puts a failed batch back for a retry (in sequence order) or fails it for good.
    fn retry_or_fail(&self, partition: TopicPartition, mut batch: Batch, error: Error) {
        let now = Instant::now();
        let idempotent_reorder = self.config.idempotent() && error.code() == Some(OUT_OF_ORDER_SEQUENCE_NUMBER);
        let backoff = self.client.config().backoff(batch.attempts);
        let retriable = (error.is_retriable() || idempotent_reorder) && now + backoff < batch.deadline;
        if retriable {
            debug!(topic = %partition.topic, partition = partition.partition, %error, attempts = batch.attempts, "retrying batch");
            if error.needs_metadata_refresh() {
                lock(&self.stale_topics).push(partition.topic.clone());
            }
            batch.attempts += 1;
            batch.retry_at = Some(now + backoff);
            self.accumulator.requeue(partition, batch);
        } else {
            self.accumulator.settled(&partition);
            warn!(topic = %partition.topic, partition = partition.partition, %error, "batch failed");
            self.complete(&partition.topic, partition.partition, batch, Err(error));
        }
        self.wakeup.notify_one();
    }

    fn succeeded(&self, partition: TopicPartition, batch: Batch, base_offset: i64, log_append_time: i64) {
        self.accumulator.settled(&partition);
        self.complete(
            &partition.topic,
            partition.partition,
            batch,
            Ok((base_offset, log_append_time)),
        );
        self.wakeup.notify_one();
    }
}

/// The sender task: runs until the producer closes and nothing is queued or in flight.
pub(crate) async fn run(sender: Arc<Sender>) {
    loop {
        let stale: Vec<String> = std::mem::take(&mut *lock(&sender.stale_topics));
        if !stale.is_empty() {
            let mut topics: Vec<&str> = stale.iter().map(String::as_str).collect();
            topics.sort_unstable();
            topics.dedup();
            if let Err(error) = sender.client.refresh_metadata(Some(&topics)).await {
                debug!(%error, "metadata refresh failed");
            }
        }
        let now = Instant::now();
        let flushing = sender.flushing.load(Ordering::Acquire) > 0 || sender.is_closing();
        let metadata = sender.client.metadata();
        let drained = sender
            .accumulator
            .drain(now, flushing, &metadata, sender.client.config().retry_backoff);
        lock(&sender.stale_topics).extend(drained.stale_topics);
        for (key, batch) in drained.expired {
            let error = Error::Timeout(format!("{key}: not delivered within delivery_timeout"));
            sender.complete(&key.topic, key.partition, batch, Err(error));
        }
        for (broker, batches) in drained.ready {
            // Submitted here, in drain order, so that a partition's pipelined batches
            // reach the broker in sequence order; only the waits run concurrently.
            if let Some(sending) = submit_batches(&sender, broker, batches).await {
                tokio::spawn(sending);
            }
        }
        if sender.is_closing() && sender.accumulator.is_idle() {
            debug!("producer sender stopped");
            return;
        }
        let wake = drained.next_wake.unwrap_or(now + Duration::from_millis(500));
        tokio::select! {
            _ = sender.wakeup.notified() => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// Queues one Produce request with the batches for one broker on its connection; the
/// returned future waits for the response and settles each batch.
async fn submit_batches(
    sender: &Arc<Sender>,
    broker: i32,
    batches: Vec<(TopicPartition, Batch)>,
) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
    let config = &sender.config;
    let mut topics: Vec<TopicProduceData> = Vec::new();
    let mut sendable = Vec::with_capacity(batches.len());
    let (producer_id, producer_epoch) = sender.identity();
    for (partition, batch) in batches {
        let producer = BatchProducer {
            producer_id,
            producer_epoch,
            base_sequence: batch.base_sequence.unwrap_or(-1),
            transactional: sender.transactions.is_some(),
        };
        let encoded = match encode_batch(&batch.records, producer, config.compression) {
            Ok(encoded) => encoded,
            Err(error) => {
                sender.retry_or_fail(partition, batch, Error::Config(error.to_string()));
                continue;
            }
        };
        let data = PartitionProduceData::default()
            .with_index(partition.partition)
            .with_records(Some(encoded));
        match topics.iter_mut().find(|t| t.name.0.as_str() == partition.topic) {
            Some(topic) => topic.partition_data.push(data),
            None => topics.push(
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(partition.topic.clone())))
                    .with_partition_data(vec![data]),
            ),
        }
        sendable.push((partition, batch));
    }
    if sendable.is_empty() {
        return None;
    }
    let timeout_ms = i32::try_from(sender.client.config().request_timeout.as_millis()).unwrap_or(i32::MAX);
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
    let submitted = match sender.client.connection(broker).await {
        Ok(connection) => connection.submit(&request, config.acks != Acks::None).await,
        Err(error) => Err(error),
    };
    let sender = sender.clone();
    Some(async move {
        let result = match submitted {
            Ok(submitted) => submitted.response().await,
            Err(error) => Err(error),
        };
        settle_all(&sender, sendable, result);
    })
}

/// Settles the batches of one Produce request by its outcome.
fn settle_all(sender: &Sender, sendable: Vec<(TopicPartition, Batch)>, result: Result<Option<ProduceResponse>>) {
    match result {
        Ok(None) => {
            for (partition, batch) in sendable {
                sender.succeeded(partition, batch, -1, -1);
            }
        }
        Ok(Some(response)) => settle(sender, sendable, response),
        Err(error) => {
            for (partition, batch) in sendable {
                sender.retry_or_fail(partition, batch, error.clone());
            }
        }
    }
}

fn settle(sender: &Sender, batches: Vec<(TopicPartition, Batch)>, response: ProduceResponse) {
    let mut results = HashMap::new();
    for topic in response.responses {
        for partition in topic.partition_responses {
            results.insert(
                TopicPartition::new(topic.name.0.to_string(), partition.index),
                partition,
            );
        }
    }
    for (partition, batch) in batches {
        let Some(result) = results.remove(&partition) else {
            let error = Error::Protocol(format!("no produce result for {partition}"));
            sender.retry_or_fail(partition, batch, error);
            continue;
        };
        match result.error_code {
            0 if result.base_offset >= 0 => {
                sender.succeeded(partition, batch, result.base_offset, result.log_append_time_ms)
            }
            0 => {
                let error = Error::Protocol(format!("negative base offset {}", result.base_offset));
                sender.retry_or_fail(partition, batch, error);
            }
            DUPLICATE_SEQUENCE_NUMBER => sender.succeeded(partition, batch, -1, -1),
            code => {
                let error = Error::kafka(code, result.error_message.as_deref());
                sender.retry_or_fail(partition, batch, error);
            }
        }
    }
}
