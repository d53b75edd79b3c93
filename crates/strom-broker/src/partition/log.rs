//! The log side of a partition: the segments (`strom_log::Log`), the producer state
//! derived from them (idempotence sequences, open and aborted transactions) and the
//! fsync bookkeeping of `flush.ms`. It knows nothing of leaders or the high watermark:
//! it appends, reads below a limit it is given, and says where its log ends.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use strom_log::{AppendInfo, Clock, ControlRecordType, Log, LogConfig, Marker, RangeRead};

use crate::constants::REPLAY_READ_BYTES;
use crate::error::{BrokerError, Result};
use crate::producer_state::{AbortedTxn, ProducerStateManager, SequenceCheck, TxnGuard};
use crate::sync::lock;

/// One producer's state in a partition (DescribeProducers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerSummary {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// First offset of its open transaction here, or -1.
    pub current_txn_start_offset: i64,
}

pub struct PartitionLog {
    name: String,
    log: Log,
    clock: Arc<dyn Clock>,
    /// Producer state; its lock also orders check, append and update.
    producers: Mutex<ProducerStateManager>,
    /// Segment count at the last producer snapshot (a roll takes a new one).
    segments_at_snapshot: AtomicUsize,
    /// First offset of the oldest open transaction (i64::MAX: none), published under the
    /// producer lock so readers get the last stable offset without taking it.
    first_unstable_offset: AtomicI64,
    /// When the last fsync finished (the injected clock's ms), for `flush.ms`.
    last_flush_ms: AtomicI64,
}

impl PartitionLog {
    pub fn open(name: String, dir: &std::path::Path, config: LogConfig, clock: Arc<dyn Clock>) -> Result<PartitionLog> {
        let log = Log::open(dir, config, clock.clone())?;
        let producers = load_producer_state(&log, dir)?;
        let segments = log.segment_count();
        let now = clock.now_ms();
        let partition_log = PartitionLog {
            name,
            log,
            clock,
            producers: Mutex::new(producers),
            segments_at_snapshot: AtomicUsize::new(segments),
            first_unstable_offset: AtomicI64::new(i64::MAX),
            last_flush_ms: AtomicI64::new(now),
        };
        partition_log.publish_unstable(&lock(&partition_log.producers));
        Ok(partition_log)
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// First offset of the oldest open transaction, if any.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        match self.first_unstable_offset.load(Ordering::Acquire) {
            i64::MAX => None,
            offset => Some(offset),
        }
    }

    /// Appends a client's batches: offsets assigned here and `leader_epoch` stamped in
    /// the stored copy (`batches` is not modified). Checks size, control batches, keys on
    /// compacted topics (the one case where produce looks inside batches) and producer
    /// sequences; a retried batch is answered with where it went and stored once.
    pub fn append_client(
        &self,
        batches: &[u8],
        max_message_bytes: usize,
        require_keys: bool,
        leader_epoch: i32,
        txn_guard: TxnGuard,
    ) -> Result<AppendInfo> {
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
        self.append_assigning_offsets(batches, leader_epoch, txn_guard)
    }

    /// Appends a coordinator's batches (offsets assigned here, no client checks).
    pub fn append_coordinator(&self, batches: &[u8], leader_epoch: i32) -> Result<AppendInfo> {
        self.append_assigning_offsets(batches, leader_epoch, TxnGuard::Unchecked)
    }

    /// Starts verifying `producer_id`'s transaction before its first batch here
    /// (KIP-890): the guard for [`PartitionLog::append_client`], or None when the
    /// transaction is open here already.
    pub fn begin_txn_verification(&self, producer_id: i64) -> Option<u64> {
        lock(&self.producers).begin_verification(producer_id, self.clock.now_ms())
    }

    fn append_assigning_offsets(&self, batches: &[u8], leader_epoch: i32, txn_guard: TxnGuard) -> Result<AppendInfo> {
        let mut producers = lock(&self.producers);
        for (header, _) in strom_log::BatchIter::new(batches) {
            if header.is_transactional() && header.producer_id >= 0 && !header.is_control() {
                producers.check_txn_guard(header.producer_id, txn_guard)?;
            }
            if let SequenceCheck::Duplicate(original) = producers.check(&header)? {
                return Ok(AppendInfo {
                    base_offset: original.first_offset,
                    last_offset: original.last_offset,
                    log_append_time_ms: -1,
                    max_timestamp: -1,
                    batch_count: 0,
                });
            }
        }
        let before = self.log.log_end_offset();
        // The leader epoch (outside the CRC) is stamped as Kafka does, for clients'
        // truncation checks.
        let info = match self.log.append_stamped(batches, Some(leader_epoch)) {
            Ok(info) => info,
            Err(error) => {
                let error = BrokerError::from(error);
                if error.is_storage() {
                    for (header, _) in strom_log::BatchIter::new(batches) {
                        producers.record_failed_write(&header);
                    }
                }
                return Err(error);
            }
        };
        debug_assert_eq!(info.base_offset, before, "offsets are dense");
        debug_assert_eq!(self.log.log_end_offset(), info.last_offset + 1, "offsets are dense");
        let mut offset = info.base_offset;
        for (mut header, _) in strom_log::BatchIter::new(batches) {
            // The stored copy has the assigned offsets; the request's headers do not.
            header.base_offset = offset;
            offset += i64::from(header.last_offset_delta) + 1;
            producers.update(&header);
        }
        self.after_append(&mut producers);
        Ok(info)
    }

    /// Appends a leader's batches as they are: its offsets and leader epochs kept (a
    /// follower's log is a copy of the leader's). Producer state follows the batches,
    /// markers included, as it does when the log is replayed.
    pub fn append_replicated(&self, batches: &[u8]) -> Result<AppendInfo> {
        let mut producers = lock(&self.producers);
        let info = self.log.append_as_follower(batches)?;
        for (header, batch) in strom_log::BatchIter::new(batches) {
            if header.is_control() {
                if let Some(marker) = strom_log::control::marker(batch) {
                    producers.complete_txn(
                        header.producer_id,
                        header.producer_epoch,
                        header.base_offset,
                        marker.is_commit(),
                    );
                }
            } else {
                producers.update(&header);
            }
        }
        self.after_append(&mut producers);
        Ok(info)
    }

    /// Removes every record at or above `offset` (a follower cutting the tail where it
    /// diverges from the leader) and rebuilds the producer state from the log that is
    /// left, so idempotence and transactions match the kept records.
    pub fn truncate_to(&self, offset: i64) -> Result<()> {
        let mut producers = lock(&self.producers);
        self.log.truncate_to(offset)?;
        *producers = load_producer_state(&self.log, self.log.dir())?;
        self.publish_unstable(&producers);
        self.segments_at_snapshot
            .store(self.log.segment_count(), Ordering::Relaxed);
        Ok(())
    }

    /// Empties the log and restarts it at `offset` (a follower behind the leader's log
    /// start), with no producer state.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<()> {
        let mut producers = lock(&self.producers);
        self.log.truncate_fully_and_start_at(offset)?;
        producers.remove_snapshots();
        *producers = ProducerStateManager::new(self.log.dir());
        self.publish_unstable(&producers);
        self.segments_at_snapshot
            .store(self.log.segment_count(), Ordering::Relaxed);
        Ok(())
    }

    /// Writes a transaction marker for `producer_id` and closes its transaction here.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        leader_epoch: i32,
    ) -> Result<AppendInfo> {
        let marker = Marker {
            record_type: if commit {
                ControlRecordType::Commit
            } else {
                ControlRecordType::Abort
            },
            coordinator_epoch,
            producer_id,
            producer_epoch,
        };
        let batch = strom_log::control::marker_batch(&marker, self.clock.now_ms())?;
        let mut producers = lock(&self.producers);
        let info = self.log.append_stamped(&batch, Some(leader_epoch))?;
        producers.complete_txn(producer_id, producer_epoch, info.base_offset, commit);
        self.after_append(&mut producers);
        Ok(info)
    }

    fn after_append(&self, producers: &mut ProducerStateManager) {
        self.publish_unstable(producers);
        let segments = self.log.segment_count();
        if segments != self.segments_at_snapshot.swap(segments, Ordering::Relaxed) {
            if let Err(e) = producers.write_snapshot(self.log.log_end_offset()) {
                tracing::warn!(partition = %self.name, error = %e, "producer snapshot failed");
            }
        }
    }

    fn publish_unstable(&self, producers: &ProducerStateManager) {
        let first = producers.first_unstable_offset().unwrap_or(i64::MAX);
        self.first_unstable_offset.store(first, Ordering::Release);
    }

    /// Stored batches from `offset`, whole batches, below `limit`, as a file range.
    pub fn read_range(&self, offset: i64, max_bytes: usize, limit: i64) -> Result<RangeRead> {
        Ok(self.log.read_range(offset, max_bytes, limit)?)
    }

    /// Aborted transactions with data in `[start, end)`, for read_committed fetches.
    pub fn aborted_between(&self, start: i64, end: i64) -> Vec<AbortedTxn> {
        lock(&self.producers).aborted_between(start, end)
    }

    /// Producers with state in this partition.
    pub fn producer_states(&self) -> Vec<ProducerSummary> {
        let producers = lock(&self.producers);
        producers
            .producers()
            .iter()
            .map(|(pid, e)| ProducerSummary {
                producer_id: *pid,
                producer_epoch: e.epoch,
                last_sequence: e.last_sequence(),
                last_timestamp: e.last_timestamp,
                current_txn_start_offset: producers.ongoing_txn(*pid).unwrap_or(-1),
            })
            .collect()
    }

    /// Forgets producers idle for `producer.id.expiration.ms`.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        lock(&self.producers).expire(now_ms, expiration_ms)
    }

    /// First offset of `producer_id`'s open transaction here, if any.
    pub fn ongoing_txn(&self, producer_id: i64) -> Option<i64> {
        lock(&self.producers).ongoing_txn(producer_id)
    }

    /// fsync up to the current log end (group commit: concurrent callers share one sync).
    pub fn flush(&self) -> Result<i64> {
        let flushed = self.log.flush()?;
        debug_assert!(flushed <= self.log.log_end_offset(), "flushed past the log end");
        self.last_flush_ms.store(self.clock.now_ms(), Ordering::Relaxed);
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
    pub fn flush_if_older_than(&self, flush_ms: i64) -> Result<bool> {
        let age = self
            .clock
            .now_ms()
            .saturating_sub(self.last_flush_ms.load(Ordering::Relaxed));
        if self.unflushed_messages() == 0 || age < flush_ms {
            return Ok(false);
        }
        self.flush()?;
        Ok(true)
    }

    /// Advances the log start offset to `offset` (already checked against the high
    /// watermark by the caller).
    pub fn delete_records(&self, offset: i64) -> Result<i64> {
        Ok(self.log.delete_records(offset)?)
    }

    pub fn set_config(&self, config: LogConfig) {
        self.log.set_config(config);
    }

    pub fn close(&self) -> Result<()> {
        let producers = lock(&self.producers);
        if let Err(error) = producers.write_snapshot(self.log.log_end_offset()) {
            // The snapshot only saves replay time: the next start rebuilds the state
            // from the previous one and the log. Still close the log cleanly.
            tracing::warn!(dir = %self.log.dir().display(), %error, "could not write the producer-state snapshot");
        }
        Ok(self.log.close()?)
    }

    /// Compacted topics need a key on every record: each keyless one is reported by its
    /// index in the batch, as Kafka does, so clients can tell which records failed.
    fn check_keys(&self, batch: &[u8]) -> Result<()> {
        let (_, records) = strom_log::record::decode_batch(batch)?;
        let errors: Vec<(i32, String)> = records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.key.is_none())
            .map(|(index, _)| {
                let message = format!(
                    "Compacted topic cannot accept message without key in topic partition {}.",
                    self.name
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

/// Producer state as of the log end: the newest snapshot, then the batches after it.
fn load_producer_state(log: &Log, dir: &std::path::Path) -> Result<ProducerStateManager> {
    let mut state = ProducerStateManager::new(dir);
    let end = log.log_end_offset();
    let mut offset = state.load_snapshot(end).max(log.log_start_offset());
    while offset < end {
        let read = log.read(offset, REPLAY_READ_BYTES, end)?;
        if read.records.is_empty() {
            break;
        }
        for (header, batch) in strom_log::BatchIter::new(&read.records) {
            if header.last_offset() >= offset {
                if header.is_control() {
                    if let Some(marker) = strom_log::control::marker(batch) {
                        state.complete_txn(
                            header.producer_id,
                            header.producer_epoch,
                            header.base_offset,
                            marker.is_commit(),
                        );
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
