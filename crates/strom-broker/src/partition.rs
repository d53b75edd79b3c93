//! One partition replica on this broker: its log plus the replication state
//! (leader epoch, high watermark) that Kafka keeps per partition.
//!
//! Invariants: the high watermark never moves backwards and never passes the log end
//! offset; consumers read only below it. On a single node every append is in sync,
//! so the high watermark follows the log end offset; with replication it will become
//! the minimum over the ISR without changing this type's callers.

use std::sync::atomic::{AtomicI32, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use strom_log::{AppendInfo, Clock, Log, LogConfig, RecordBatchHeader};
use tokio::sync::watch;

use crate::error::{BrokerError, Result};
use crate::producer_state::{AbortedTxn, ProducerStateManager, SequenceCheck};

/// A fetch of stored bytes below the high watermark.
#[derive(Debug, Clone)]
pub struct FetchedData {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub last_stable_offset: i64,
    /// For read_committed fetches: aborted transactions overlapping the data.
    pub aborted: Option<Vec<AbortedTxn>>,
}

pub struct Partition {
    topic: Arc<str>,
    index: i32,
    log: Log,
    leader_epoch: AtomicI32,
    high_watermark: watch::Sender<i64>,
    /// Idempotent-producer state; its lock also orders check, append and update.
    producers: Mutex<ProducerStateManager>,
    /// Segment count at the last producer snapshot (a roll takes a new one).
    segments_at_snapshot: AtomicUsize,
    /// First offset of the oldest open transaction (i64::MAX: none), published under the
    /// producer lock so fetches read the last stable offset without taking it.
    first_unstable_offset: AtomicI64,
    /// When the last fsync finished (ms since the epoch), for `flush.ms`.
    last_flush_ms: AtomicI64,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.index)
    }
}

impl Partition {
    pub fn open(
        topic: Arc<str>,
        index: i32,
        dir: &std::path::Path,
        config: LogConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Partition> {
        let log = Log::open(dir, config, clock)?;
        let (high_watermark, _) = watch::channel(log.log_end_offset());
        let producers = load_producer_state(&log, dir)?;
        let segments = log.segment_count();
        let partition = Partition {
            topic,
            index,
            log,
            leader_epoch: AtomicI32::new(0),
            high_watermark,
            producers: Mutex::new(producers),
            segments_at_snapshot: AtomicUsize::new(segments),
            first_unstable_offset: AtomicI64::new(i64::MAX),
            last_flush_ms: AtomicI64::new(0),
        };
        partition
            .last_flush_ms
            .store(partition.log_clock_ms(), Ordering::Relaxed);
        partition.publish_unstable(&partition.producers.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(partition)
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn index(&self) -> i32 {
        self.index
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Relaxed)
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// A receiver that wakes when the high watermark moves; subscribe before
    /// reading so an append between the read and the wait is not missed.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Check the leader epoch a client sent (-1 = not given).
    pub fn check_leader_epoch(&self, requested: i32) -> Result<()> {
        let current = self.leader_epoch();
        if requested < 0 || requested == current {
            Ok(())
        } else if requested > current {
            Err(BrokerError::UnknownLeaderEpoch { requested, current })
        } else {
            Err(BrokerError::FencedLeaderEpoch { requested, current })
        }
    }

    /// Append produced batches (validated by the log, offsets and leader epoch stamped
    /// into the stored copy; `batches` is not modified) and advance the high watermark.
    /// On compacted topics every record needs a key (Kafka's INVALID_RECORD): the one
    /// case where produce looks inside batches.
    pub fn append(&self, batches: &[u8], max_message_bytes: usize, require_keys: bool) -> Result<AppendInfo> {
        for (header, bytes) in strom_log::BatchIter::new(batches) {
            if bytes.len() > max_message_bytes {
                return Err(BrokerError::MessageTooLarge {
                    size: bytes.len(),
                    max: max_message_bytes,
                });
            }
            if header.is_control() {
                // Markers are written by the transaction coordinator, never by clients.
                return Err(BrokerError::InvalidRecord("control batches cannot be produced".into()));
            }
            if require_keys {
                self.check_keys(bytes)?;
            }
        }
        let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        for (header, _) in strom_log::BatchIter::new(batches) {
            if let SequenceCheck::Duplicate(original) = producers.check(&header)? {
                // A retry of a stored batch: answer with where it went, store nothing.
                return Ok(AppendInfo {
                    base_offset: original.first_offset,
                    last_offset: original.last_offset,
                    log_append_time_ms: -1,
                    max_timestamp: -1,
                    batch_count: 0,
                });
            }
        }
        // The leader epoch (outside the CRC) is stamped as Kafka does, for clients'
        // truncation checks.
        let info = self.log.append_stamped(batches, Some(self.leader_epoch()))?;
        let mut offset = info.base_offset;
        for (mut header, _) in strom_log::BatchIter::new(batches) {
            // The stored copy has the assigned offsets; the request's headers do not.
            header.base_offset = offset;
            offset += i64::from(header.last_offset_delta) + 1;
            producers.update(&header);
        }
        self.publish_unstable(&producers);
        let segments = self.log.segment_count();
        if segments != self.segments_at_snapshot.swap(segments, Ordering::Relaxed) {
            if let Err(e) = producers.write_snapshot(self.log.log_end_offset()) {
                tracing::warn!(partition = ?self, error = %e, "producer snapshot failed");
            }
        }
        drop(producers);
        self.advance_high_watermark(info.last_offset + 1);
        Ok(info)
    }

    /// Producers with state in this partition: (producer id, epoch, last sequence,
    /// last timestamp, first offset of their open transaction or -1).
    pub fn producer_states(&self) -> Vec<(i64, i16, i32, i64, i64)> {
        let producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        producers
            .producers()
            .iter()
            .map(|(pid, e)| {
                (
                    *pid,
                    e.epoch,
                    e.last_sequence(),
                    e.last_timestamp,
                    producers.ongoing_txn(*pid).unwrap_or(-1),
                )
            })
            .collect()
    }

    /// Forget producers idle for `producer.id.expiration.ms`.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.producers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expire(now_ms, expiration_ms)
    }

    fn advance_high_watermark(&self, offset: i64) {
        self.high_watermark.send_if_modified(|hw| {
            if offset > *hw {
                *hw = offset;
                true
            } else {
                false
            }
        });
    }

    /// fsync up to the current log end (group commit: concurrent callers share one sync).
    pub fn flush(&self) -> Result<i64> {
        let flushed = self.log.flush()?;
        self.last_flush_ms.store(self.log_clock_ms(), Ordering::Relaxed);
        Ok(flushed)
    }

    /// Records appended since the last fsync.
    pub fn unflushed_messages(&self) -> i64 {
        (self.log.log_end_offset() - self.log.flushed_offset()).max(0)
    }

    /// `flush.messages`: whether `flush_messages` records (i64::MAX: never) wait unflushed.
    pub fn flush_due(&self, flush_messages: i64) -> bool {
        flush_messages < i64::MAX && self.unflushed_messages() >= flush_messages
    }

    /// `flush.ms`: fsyncs if records wait and the last fsync is at least `flush_ms` old.
    /// Returns whether it flushed.
    pub fn flush_if_older_than(&self, flush_ms: i64) -> Result<bool> {
        let age = self
            .log_clock_ms()
            .saturating_sub(self.last_flush_ms.load(Ordering::Relaxed));
        if self.unflushed_messages() == 0 || age < flush_ms {
            return Ok(false);
        }
        self.flush()?;
        Ok(true)
    }

    /// Stored batches from `offset`, whole batches only, stopping at the high watermark.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<FetchedData> {
        self.read_isolated(offset, max_bytes, false)
    }

    /// The last stable offset: below it every transaction is decided.
    pub fn last_stable_offset(&self) -> i64 {
        // The high watermark is read first: a transaction that opened before it moved is
        // already published, so the result never passes undecided records.
        let high_watermark = self.high_watermark();
        self.first_unstable_offset.load(Ordering::Acquire).min(high_watermark)
    }

    fn publish_unstable(&self, producers: &ProducerStateManager) {
        let first = producers.first_unstable_offset().unwrap_or(i64::MAX);
        self.first_unstable_offset.store(first, Ordering::Release);
    }

    /// Stored batches from `offset`: below the high watermark (read_uncommitted) or
    /// below the last stable offset with the aborted transactions in range
    /// (read_committed), so the client can drop aborted records.
    pub fn read_isolated(&self, offset: i64, max_bytes: usize, read_committed: bool) -> Result<FetchedData> {
        let high_watermark = self.high_watermark();
        let last_stable_offset = self.last_stable_offset();
        let limit = if read_committed {
            last_stable_offset
        } else {
            high_watermark
        };
        let result = if read_committed && offset > limit && offset <= high_watermark {
            // Inside an open transaction: nothing readable yet, not out of range.
            strom_log::ReadResult {
                records: Bytes::new(),
                log_start_offset: self.log_start_offset(),
                log_end_offset: high_watermark,
            }
        } else {
            self.log.read(offset, max_bytes, limit)?
        };
        let aborted = read_committed.then(|| {
            let end = last_data_offset(&result.records).map_or(offset, |o| o + 1);
            let producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
            producers.aborted_between(offset, end)
        });
        Ok(FetchedData {
            records: result.records,
            high_watermark,
            log_start_offset: result.log_start_offset,
            last_stable_offset,
            aborted,
        })
    }

    /// Visit every stored batch from the log start to the high watermark, in order
    /// (coordinators replay their internal topics with it on start).
    pub fn for_each_batch(&self, mut visit: impl FnMut(&RecordBatchHeader, &[u8]) -> Result<()>) -> Result<()> {
        let mut offset = self.log_start_offset();
        let end = self.high_watermark();
        while offset < end {
            let data = self.read(offset, PRODUCER_REPLAY_READ_BYTES)?;
            if data.records.is_empty() {
                break;
            }
            for (header, batch) in strom_log::BatchIter::new(&data.records) {
                offset = header.next_offset();
                visit(&header, batch)?;
            }
        }
        Ok(())
    }

    /// Write a transaction marker (a control batch) for `producer_id` and close its
    /// transaction here. Returns the marker's offset.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<i64> {
        let mut key = Vec::with_capacity(4);
        key.extend_from_slice(&0i16.to_be_bytes());
        key.extend_from_slice(&i16::from(commit).to_be_bytes());
        let mut value = Vec::with_capacity(6);
        value.extend_from_slice(&0i16.to_be_bytes());
        value.extend_from_slice(&coordinator_epoch.to_be_bytes());
        let mut builder = strom_log::RecordBatchBuilder::new()
            .producer(producer_id, producer_epoch, -1)
            .flags(true, true);
        builder.push(self.log_clock_ms(), Some(&key), Some(&value));
        let mut batch = builder.build()?;
        strom_log::batch::set_partition_leader_epoch(&mut batch, self.leader_epoch())?;
        let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        let info = self.log.append(&batch)?;
        producers.complete_txn(producer_id, producer_epoch, info.base_offset, commit);
        self.publish_unstable(&producers);
        drop(producers);
        self.advance_high_watermark(info.last_offset + 1);
        Ok(info.base_offset)
    }

    fn log_clock_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }

    /// First offset of `producer_id`'s open transaction here, if any.
    pub fn ongoing_txn(&self, producer_id: i64) -> Option<i64> {
        self.producers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ongoing_txn(producer_id)
    }

    /// Advance the log start offset (DeleteRecords); -1 means the high watermark.
    pub fn delete_records(&self, offset: i64) -> Result<i64> {
        let high_watermark = self.high_watermark();
        let target = if offset == -1 { high_watermark } else { offset };
        if target < 0 || target > high_watermark {
            return Err(BrokerError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset(),
                end: high_watermark,
            });
        }
        Ok(self.log.delete_records(target)?)
    }

    pub fn set_config(&self, config: LogConfig) {
        self.log.set_config(config);
    }

    pub fn close(&self) -> Result<()> {
        let producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(error) = producers.write_snapshot(self.log.log_end_offset()) {
            // The snapshot only saves replay time: the next start rebuilds the state
            // from the previous one and the log. Still close the log cleanly.
            tracing::warn!(dir = %self.log.dir().display(), %error, "could not write the producer-state snapshot");
        }
        Ok(self.log.close()?)
    }
}

/// Producer state as of the log end: the newest snapshot, then the batches after it.
fn load_producer_state(log: &Log, dir: &std::path::Path) -> Result<ProducerStateManager> {
    let mut state = ProducerStateManager::new(dir);
    let end = log.log_end_offset();
    let mut offset = state.load_snapshot(end).max(log.log_start_offset());
    while offset < end {
        let read = log.read(offset, PRODUCER_REPLAY_READ_BYTES, end)?;
        if read.records.is_empty() {
            break;
        }
        for (header, batch) in strom_log::BatchIter::new(&read.records) {
            if header.last_offset() >= offset {
                if header.is_control() {
                    if let Some(commit) = marker_type(batch) {
                        state.complete_txn(header.producer_id, header.producer_epoch, header.base_offset, commit);
                    }
                } else {
                    state.update(&header);
                }
            }
            offset = header.next_offset();
        }
    }
    state.trim_aborted(log.log_start_offset());
    Ok(state)
}

/// Offset of the last record in a run of stored batches.
fn last_data_offset(records: &[u8]) -> Option<i64> {
    strom_log::BatchIter::new(records)
        .last()
        .map(|(header, _)| header.last_offset())
}

/// Whether a control batch is a COMMIT (true) or ABORT (false) marker; None for
/// other control records. The key is (version i16, type i16).
pub fn marker_type(batch: &[u8]) -> Option<bool> {
    let (header, section) = strom_log::record::decompress_records_section(batch).ok()?;
    let records = strom_log::record::decode_record_entries(&header, &section).ok()?;
    let key = section.get(records.first()?.key.clone()?)?;
    match key.get(2..4)? {
        [0, 0] => Some(false),
        [0, 1] => Some(true),
        _ => None,
    }
}

/// Bytes read per step while replaying a log on start.
const PRODUCER_REPLAY_READ_BYTES: usize = 1 << 20;

impl Partition {
    /// Compacted topics need a key on every record: each keyless one is reported by its
    /// index in the batch, as Kafka does, so clients can tell which records failed.
    fn check_keys(&self, batch: &[u8]) -> Result<()> {
        let (header, section) = strom_log::record::decompress_records_section(batch)?;
        let records = strom_log::record::decode_record_entries(&header, &section)?;
        let errors: Vec<(i32, String)> = records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.key.is_none())
            .map(|(index, _)| {
                let message = format!(
                    "Compacted topic cannot accept message without key in topic partition {}-{}.",
                    self.topic(),
                    self.index()
                );
                (i32::try_from(index).unwrap_or(i32::MAX), message)
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(BrokerError::InvalidRecords(errors))
        }
    }
}
