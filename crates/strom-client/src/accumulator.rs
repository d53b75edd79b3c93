//! The record accumulator: per-partition queues of batches waiting to be sent, filled by
//! `send` and drained by the sender (`sender.rs`).
//!
//! A record joins its partition's newest open batch, or starts one. [`Accumulator::drain`]
//! takes at most one batch per partition: once the batch is full, its linger has passed, a
//! flush is requested or it is a retry. With idempotence a batch gets its sequence numbers
//! when first taken, and a retried batch goes alone (nothing else of its partition in flight)
//! and back in sequence order, so the broker sees sequences in order.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{oneshot, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::client::Metadata;
use crate::constants::{BATCH_RECORDS_PREALLOCATED_MAX, IN_FLIGHT_BATCHES_PER_PARTITION_MAX};
use crate::delivery::RecordMetadata;
use crate::error::Result;
use crate::idempotence::sequence_after;
use crate::producer_config::ProducerConfig;
use crate::record::RecordData;
use crate::sync::lock;
use crate::topic_partition::TopicPartition;

/// Batches to send, by leader broker id.
pub(crate) type ReadyBatches = HashMap<i32, Vec<(TopicPartition, Batch)>>;

/// Records of one partition sent (and retried) together.
pub(crate) struct Batch {
    pub records: Vec<RecordData>,
    pub completions: Vec<oneshot::Sender<Result<RecordMetadata>>>,
    pub bytes: usize,
    pub created: Instant,
    pub deadline: Instant,
    pub attempts: u32,
    pub retry_at: Option<Instant>,
    /// Set once sent; a sent batch takes no more records.
    pub sealed: bool,
    pub base_sequence: Option<i32>,
    /// The batch's share of `buffer.memory`, released when the batch drops.
    pub _memory: OwnedSemaphorePermit,
}

#[derive(Default)]
struct PartitionQueue {
    batches: VecDeque<Batch>,
    in_flight: usize,
    next_sequence: i32,
}

/// What [`Accumulator::drain`] took.
pub(crate) struct Drained {
    /// Batches to send now, by leader.
    pub ready: ReadyBatches,
    /// Batches past their delivery timeout, to fail.
    pub expired: Vec<(TopicPartition, Batch)>,
    /// Topics whose partitions had no known leader.
    pub stale_topics: Vec<String>,
    /// When to drain again, if a batch is waiting for its linger or backoff.
    pub next_wake: Option<Instant>,
}

/// The producer's queues of batches, per partition.
pub(crate) struct Accumulator {
    queues: Mutex<HashMap<TopicPartition, PartitionQueue>>,
    batch_size: usize,
    linger: Duration,
    delivery_timeout: Duration,
    idempotent: bool,
}

impl Accumulator {
    pub fn new(config: &ProducerConfig) -> Self {
        Accumulator {
            queues: Mutex::new(HashMap::new()),
            batch_size: config.batch_size,
            linger: config.linger,
            delivery_timeout: config.delivery_timeout,
            idempotent: config.idempotent(),
        }
    }

    /// Whether a record of `bytes` would start a new batch of its partition.
    pub fn starts_new_batch(&self, topic: &str, partition: i32, bytes: usize) -> bool {
        let queues = lock(&self.queues);
        let open = queues
            .get(&TopicPartition::new(topic, partition))
            .and_then(|queue| queue.batches.back())
            .filter(|batch| !batch.sealed);
        match open {
            Some(batch) => batch.bytes + bytes > self.batch_size,
            None => true,
        }
    }

    /// Adds a record to its partition's open batch, or starts one. Returns whether the
    /// sender needs waking: it already knows an open batch's linger deadline, so only a new
    /// or a full batch is news.
    pub fn append(
        &self,
        partition: TopicPartition,
        data: RecordData,
        bytes: usize,
        completion: oneshot::Sender<Result<RecordMetadata>>,
        memory: OwnedSemaphorePermit,
    ) -> bool {
        let mut queues = lock(&self.queues);
        let queue = queues.entry(partition).or_default();
        let batch_size = self.batch_size;
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
                batch.bytes >= batch_size
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
                    deadline: now + self.delivery_timeout,
                    attempts: 0,
                    retry_at: None,
                    sealed: false,
                    base_sequence: None,
                    _memory: memory,
                });
                true
            }
        }
    }

    /// Takes the batches to send now (at most one per partition), grouped by the leaders in
    /// `metadata`, and the batches past their delivery timeout. `flushing` sends batches
    /// before their linger ends; a partition without a known leader is looked at again after
    /// `retry_backoff`.
    pub fn drain(&self, now: Instant, flushing: bool, metadata: &Metadata, retry_backoff: Duration) -> Drained {
        let mut drained = Drained {
            ready: HashMap::new(),
            expired: Vec::new(),
            stale_topics: Vec::new(),
            next_wake: None,
        };
        let mut next_wake: Option<Instant> = None;
        let mut wake_at = |at: Instant| next_wake = Some(next_wake.map_or(at, |w| w.min(at)));
        let mut queues = lock(&self.queues);
        for (key, queue) in queues.iter_mut() {
            while let Some(batch) = queue.batches.front() {
                if batch.deadline <= now && !batch.sealed {
                    if let Some(batch) = queue.batches.pop_front() {
                        drained.expired.push((key.clone(), batch));
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
            let limit = if batch.attempts > 0 && self.idempotent {
                1
            } else {
                IN_FLIGHT_BATCHES_PER_PARTITION_MAX
            };
            if queue.in_flight >= limit {
                continue;
            }
            let full = batch.bytes >= self.batch_size || queue.batches.len() > 1;
            let linger_end = batch.created + self.linger;
            if !(full || flushing || batch.attempts > 0 || linger_end <= now) {
                wake_at(linger_end);
                continue;
            }
            let leader = metadata
                .topics
                .get(&key.topic)
                .and_then(|t| t.partition(key.partition))
                .map(|p| p.leader)
                .filter(|leader| metadata.brokers.contains_key(leader));
            let Some(leader) = leader else {
                drained.stale_topics.push(key.topic.clone());
                wake_at(now + retry_backoff);
                continue;
            };
            let Some(mut batch) = queue.batches.pop_front() else {
                continue;
            };
            batch.sealed = true;
            if self.idempotent && batch.base_sequence.is_none() {
                batch.base_sequence = Some(queue.next_sequence);
                queue.next_sequence = sequence_after(queue.next_sequence, batch.records.len());
            }
            queue.in_flight += 1;
            if !queue.batches.is_empty() {
                wake_at(now);
            }
            drained.ready.entry(leader).or_default().push((key.clone(), batch));
        }
        queues.retain(|_, queue| !queue.batches.is_empty() || queue.in_flight > 0 || queue.next_sequence > 0);
        drained.next_wake = next_wake;
        drained
    }

    /// Whether nothing is queued or in flight.
    pub fn is_idle(&self) -> bool {
        lock(&self.queues)
            .values()
            .all(|queue| queue.batches.is_empty() && queue.in_flight == 0)
    }

    /// Puts a sent batch back for a retry, before the queued batches with higher sequence
    /// numbers (and those without any).
    pub fn requeue(&self, partition: TopicPartition, batch: Batch) {
        let mut queues = lock(&self.queues);
        let queue = queues.entry(partition).or_default();
        queue.in_flight = queue.in_flight.saturating_sub(1);
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
    }

    /// Notes that a sent batch of the partition is settled (delivered or failed for good).
    pub fn settled(&self, partition: &TopicPartition) {
        if let Some(queue) = lock(&self.queues).get_mut(partition) {
            queue.in_flight = queue.in_flight.saturating_sub(1);
        }
    }

    /// Starts every partition's sequence numbers again from 0 (a new producer id).
    pub fn reset_sequences(&self) {
        for queue in lock(&self.queues).values_mut() {
            queue.next_sequence = 0;
        }
    }
}
