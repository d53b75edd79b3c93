//! Idempotent-producer state of one partition (Kafka's `ProducerStateManager`):
//! for each producer id, its epoch and the metadata of its last five batches
//! (sequence range and offsets), enough to answer a retried batch with its original
//! offset instead of storing it twice, and to reject gaps and old epochs.
//!
//! Durability: the state is a function of the log. It is snapshotted to
//! `<offset>.snapshot` (JSON, written to a temporary file and renamed) when a segment is
//! rolled and at shutdown; on open the newest snapshot not past the log end is loaded
//! and the batches after it are replayed from the log's headers (no record decoding).
//! Without a usable snapshot the whole log is replayed.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use strom_log::RecordBatchHeader;

use crate::error::{BrokerError, Result};

/// Batches remembered per producer (Kafka's max.in.flight.requests.per.connection limit).
pub const BATCHES_PER_PRODUCER: usize = 5;
const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// Snapshots kept on disk; older ones are removed.
const SNAPSHOTS_KEPT: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMetadata {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMetadata>,
    pub last_timestamp: i64,
}

impl ProducerEntry {
    pub fn last_sequence(&self) -> i32 {
        self.batches.back().map_or(-1, |b| b.last_sequence)
    }
}

/// KIP-890's check on the batch that opens a transaction in a partition: without it, a
/// produce request delayed past its transaction's abort (a stalled connection, a paused
/// leader) lands after the abort marker and becomes part of the producer's next
/// transaction, which commits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnGuard {
    /// Not checked: verification is off, or the append is not a client's.
    Unchecked,
    /// Taken ([`ProducerStateManager::begin_verification`]) before the coordinator was
    /// asked, which said the partition is in the producer's open transaction. Valid
    /// while no marker and no other transaction start came in between.
    Verified(u64),
    /// Checking is on, but this request was not verified.
    Missing,
}

/// Verification guards are unique across partitions and restarts of a partition's state.
static NEXT_GUARD: AtomicU64 = AtomicU64::new(1);

/// What validating a batch decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not an idempotent batch, or the next one in sequence: append it.
    Append,
    /// A retry of a batch already stored at these offsets: answer, do not append.
    Duplicate(BatchMetadata),
}

fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX {
        0
    } else {
        sequence + 1
    }
}

/// An aborted transaction in this partition: its producer and offset range (the
/// range ends at the abort marker). Fetches at read_committed return these so the
/// client drops the records (Kafka's transaction index entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ProducerStateManager {
    producers: BTreeMap<i64, ProducerEntry>,
    /// Open transactions: producer id → offset of its first batch in this partition.
    ongoing: BTreeMap<i64, i64>,
    /// Aborted transactions, in marker order.
    aborted: Vec<AbortedTxn>,
    /// Producers being verified before their transaction opens here: producer id →
    /// (guard, when it was taken). In memory only: a verification does not outlive the
    /// leadership.
    #[serde(skip)]
    verifying: BTreeMap<i64, (u64, i64)>,
    /// Batches the disk failed to store, as producer id → (epoch, first sequence): a
    /// later batch of that producer leaving exactly this gap gets the storage error
    /// too, not OUT_OF_ORDER_SEQUENCE_NUMBER. Clients pipeline up to five requests, and
    /// a sequence error makes librdkafka bump its epoch and renumber every record not
    /// yet acknowledged, in all partitions, so one that another leader stored but never
    /// acknowledged (paused, cut off) is stored twice. Kafka takes the log directory
    /// offline, so its later batches fail with KAFKA_STORAGE_ERROR as well.
    #[serde(skip)]
    failed_writes: BTreeMap<i64, (i16, i32)>,
    #[serde(skip)]
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    offset: i64,
    producers: BTreeMap<i64, ProducerEntry>,
    #[serde(default)]
    ongoing: BTreeMap<i64, i64>,
    #[serde(default)]
    aborted: Vec<AbortedTxn>,
}

impl ProducerStateManager {
    pub fn new(dir: &Path) -> ProducerStateManager {
        ProducerStateManager {
            dir: dir.to_path_buf(),
            ..Default::default()
        }
    }

    pub fn producers(&self) -> &BTreeMap<i64, ProducerEntry> {
        &self.producers
    }

    /// First offset of the oldest open transaction (the last stable offset is below it).
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.values().min().copied()
    }

    /// First offset of `producer_id`'s open transaction here, if any.
    pub fn ongoing_txn(&self, producer_id: i64) -> Option<i64> {
        self.ongoing.get(&producer_id).copied()
    }

    /// Aborted transactions overlapping `[from, to)`.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.aborted
            .iter()
            .filter(|a| a.last_offset >= from && a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forget aborted transactions wholly below the log start offset.
    pub fn trim_aborted(&mut self, log_start_offset: i64) {
        self.aborted.retain(|a| a.last_offset >= log_start_offset);
    }

    /// Starts verifying `producer_id`'s transaction here: the guard to present at the
    /// append, or None when its transaction is open here already (nothing to verify).
    /// Concurrent requests of one producer share the guard.
    pub fn begin_verification(&mut self, producer_id: i64, now_ms: i64) -> Option<u64> {
        if self.ongoing.contains_key(&producer_id) {
            return None;
        }
        let (guard, _) = self
            .verifying
            .entry(producer_id)
            .or_insert_with(|| (NEXT_GUARD.fetch_add(1, Ordering::Relaxed), now_ms));
        Some(*guard)
    }

    /// Whether a transactional batch of `producer_id` may be appended with `guard`:
    /// always when its transaction is open here, else only with the guard still in
    /// place (no marker since the coordinator was asked).
    pub fn check_txn_guard(&self, producer_id: i64, guard: TxnGuard) -> Result<()> {
        if self.ongoing.contains_key(&producer_id) {
            return Ok(());
        }
        match guard {
            TxnGuard::Unchecked => Ok(()),
            TxnGuard::Verified(g) if self.verifying.get(&producer_id).is_some_and(|(v, _)| *v == g) => Ok(()),
            TxnGuard::Verified(_) => Err(BrokerError::InvalidTxnState(format!(
                "the transaction of producer {producer_id} ended while this batch was being verified"
            ))),
            TxnGuard::Missing => Err(BrokerError::InvalidTxnState(format!(
                "producer {producer_id} has no open transaction here that its coordinator confirmed"
            ))),
        }
    }

    /// Apply a transaction marker written at `offset` (commit or abort).
    pub fn complete_txn(&mut self, producer_id: i64, producer_epoch: i16, offset: i64, commit: bool) {
        self.verifying.remove(&producer_id);
        if let Some(first_offset) = self.ongoing.remove(&producer_id) {
            if !commit {
                self.aborted.push(AbortedTxn {
                    producer_id,
                    first_offset,
                    last_offset: offset,
                });
            }
        }
        if let Some(entry) = self.producers.get_mut(&producer_id) {
            if producer_epoch > entry.epoch {
                // A marker from a fencing bump: the next batch starts a new sequence.
                entry.epoch = producer_epoch;
                entry.batches.clear();
            }
        }
    }

    /// Check a batch against its producer's state (does not change it).
    pub fn check(&self, header: &RecordBatchHeader) -> Result<SequenceCheck> {
        if header.producer_id < 0 {
            return Ok(SequenceCheck::Append);
        }
        let first = header.base_sequence;
        let last = first.wrapping_add(header.last_offset_delta);
        let Some(entry) = self.producers.get(&header.producer_id) else {
            return if first <= 0 {
                Ok(SequenceCheck::Append)
            } else {
                self.check_failed_write(header, 0)?;
                Err(BrokerError::OutOfOrderSequence(format!(
                    "unknown producer {} must start at sequence 0, not {first}",
                    header.producer_id
                )))
            };
        };
        if header.producer_epoch < entry.epoch {
            return Err(BrokerError::InvalidProducerEpoch(format!(
                "epoch {} is older than the current {}",
                header.producer_epoch, entry.epoch
            )));
        }
        if header.base_sequence < 0 {
            // Written by a coordinator (no sequence): only the epoch is checked.
            return Ok(SequenceCheck::Append);
        }
        if header.producer_epoch > entry.epoch {
            return if first == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(BrokerError::OutOfOrderSequence(format!(
                    "a new epoch must start at sequence 0, not {first}"
                )))
            };
        }
        if let Some(batch) = entry
            .batches
            .iter()
            .find(|b| b.first_sequence == first && b.last_sequence == last)
        {
            return Ok(SequenceCheck::Duplicate(*batch));
        }
        let expected = next_sequence(entry.last_sequence());
        if first != expected {
            self.check_failed_write(header, expected)?;
            return Err(BrokerError::OutOfOrderSequence(format!(
                "expected sequence {expected}, got {first}"
            )));
        }
        Ok(SequenceCheck::Append)
    }

    /// The storage error for a batch whose gap starts at `expected`, a batch of the
    /// same producer and epoch the disk failed to store.
    fn check_failed_write(&self, header: &RecordBatchHeader, expected: i32) -> Result<()> {
        match self.failed_writes.get(&header.producer_id) {
            Some(&(epoch, first)) if epoch == header.producer_epoch && first == expected => {
                Err(BrokerError::Storage(format!(
                    "producer {}'s batch at sequence {expected} could not be stored; \
                     this one follows it",
                    header.producer_id
                )))
            }
            _ => Ok(()),
        }
    }

    /// Records that the disk failed to store `header`'s batch. Only a batch that was
    /// next in its producer's sequence counts (a later one failed because of it).
    pub fn record_failed_write(&mut self, header: &RecordBatchHeader) {
        if header.producer_id < 0 || header.base_sequence < 0 || header.is_control() {
            return;
        }
        let expected = match self.producers.get(&header.producer_id) {
            Some(entry) if entry.epoch == header.producer_epoch => next_sequence(entry.last_sequence()),
            _ => 0,
        };
        if header.base_sequence == expected {
            self.failed_writes
                .insert(header.producer_id, (header.producer_epoch, expected));
        }
    }

    /// Record a stored batch (after append, and when replaying the log).
    pub fn update(&mut self, header: &RecordBatchHeader) {
        if header.producer_id < 0 || header.is_control() {
            return;
        }
        self.failed_writes.remove(&header.producer_id);
        if header.is_transactional() {
            self.ongoing.entry(header.producer_id).or_insert(header.base_offset);
            self.verifying.remove(&header.producer_id);
        }
        if header.base_sequence < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: header.producer_epoch,
                batches: VecDeque::new(),
                last_timestamp: -1,
            });
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(BatchMetadata {
            first_sequence: header.base_sequence,
            last_sequence: header.base_sequence.wrapping_add(header.last_offset_delta),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
        });
        while entry.batches.len() > BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.last_timestamp = entry.last_timestamp.max(header.max_timestamp);
    }

    /// Forget producers idle for longer than `producer.id.expiration.ms`, and
    /// verifications that never led to an append for as long.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| e.last_timestamp.saturating_add(expiration_ms) > now_ms);
        self.verifying
            .retain(|_, (_, taken_ms)| taken_ms.saturating_add(expiration_ms) > now_ms);
        before - self.producers.len()
    }

    fn snapshot_path(&self, offset: i64) -> PathBuf {
        self.dir.join(format!("{offset:020}{SNAPSHOT_SUFFIX}"))
    }

    /// Snapshot offsets on disk, ascending.
    fn snapshot_offsets(&self) -> Vec<i64> {
        let mut offsets: Vec<i64> = fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let stem = name.strip_suffix(SNAPSHOT_SUFFIX)?;
                        (stem.len() == 20).then(|| stem.parse().ok()).flatten()
                    })
                    .collect()
            })
            .unwrap_or_default();
        offsets.sort_unstable();
        offsets
    }

    /// Write the state as of `offset` (the log end offset) and drop older snapshots.
    pub fn write_snapshot(&self, offset: i64) -> Result<()> {
        let snapshot = Snapshot {
            offset,
            producers: self.producers.clone(),
            ongoing: self.ongoing.clone(),
            aborted: self.aborted.clone(),
        };
        let bytes = serde_json::to_vec(&snapshot).map_err(|e| BrokerError::Storage(e.to_string()))?;
        crate::files::write_atomically(&self.snapshot_path(offset), &bytes)?;
        let offsets = self.snapshot_offsets();
        if offsets.len() > SNAPSHOTS_KEPT {
            for old in &offsets[..offsets.len() - SNAPSHOTS_KEPT] {
                let _ = fs::remove_file(self.snapshot_path(*old));
            }
        }
        Ok(())
    }

    /// Removes every snapshot (the log they describe is gone: a follower restarting its
    /// log where the leader's begins).
    pub fn remove_snapshots(&self) {
        for offset in self.snapshot_offsets() {
            let _ = fs::remove_file(self.snapshot_path(offset));
        }
    }

    /// Load the newest snapshot at or below `log_end_offset`; returns the offset to
    /// replay the log from (0 when there is none).
    pub fn load_snapshot(&mut self, log_end_offset: i64) -> i64 {
        for offset in self.snapshot_offsets().into_iter().rev() {
            if offset > log_end_offset {
                // Written for data a crash took away (truncated tail).
                let _ = fs::remove_file(self.snapshot_path(offset));
                continue;
            }
            let loaded = fs::read(self.snapshot_path(offset))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Snapshot>(&bytes).ok());
            match loaded {
                Some(snapshot) if snapshot.offset == offset => {
                    self.producers = snapshot.producers;
                    self.ongoing = snapshot.ongoing;
                    self.aborted = snapshot.aborted;
                    return offset;
                }
                _ => {
                    tracing::warn!(dir = %self.dir.display(), offset, "ignoring unreadable producer snapshot");
                }
            }
        }
        self.producers.clear();
        self.ongoing.clear();
        self.aborted.clear();
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_log::RecordBatchBuilder;

    fn header(pid: i64, epoch: i16, seq: i32, count: usize, base_offset: i64) -> RecordBatchHeader {
        let mut builder = RecordBatchBuilder::new().producer(pid, epoch, seq);
        for _ in 0..count {
            builder.push(1, Some(b"k"), Some(b"v"));
        }
        let mut batch = builder.build().unwrap();
        strom_log::batch::set_base_offset(&mut batch, base_offset).unwrap();
        RecordBatchHeader::parse(&batch).unwrap()
    }

    #[test]
    fn retries_are_duplicates_and_gaps_or_old_epochs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = ProducerStateManager::new(dir.path());
        let first = header(7, 0, 0, 3, 0);
        assert_eq!(state.check(&first).unwrap(), SequenceCheck::Append);
        state.update(&first);
        assert!(
            matches!(state.check(&first).unwrap(), SequenceCheck::Duplicate(b) if b.first_offset == 0 && b.last_offset == 2)
        );
        assert!(matches!(
            state.check(&header(7, 0, 5, 1, 3)),
            Err(BrokerError::OutOfOrderSequence(_))
        ));
        let second = header(7, 0, 3, 2, 3);
        assert_eq!(state.check(&second).unwrap(), SequenceCheck::Append);
        state.update(&second);
        assert!(matches!(
            state.check(&header(8, 0, 4, 1, 5)),
            Err(BrokerError::OutOfOrderSequence(_))
        ));
        let bumped = header(7, 1, 0, 1, 5);
        assert_eq!(state.check(&bumped).unwrap(), SequenceCheck::Append);
        state.update(&bumped);
        assert!(matches!(
            state.check(&header(7, 0, 5, 1, 6)),
            Err(BrokerError::InvalidProducerEpoch(_))
        ));
        assert_eq!(state.check(&header(-1, -1, -1, 1, 6)).unwrap(), SequenceCheck::Append);
    }

    /// A pipelined batch behind one the disk failed to store gets the storage error
    /// (retriable, not stored), not a sequence error that makes the client renumber.
    #[test]
    fn a_gap_left_by_a_failed_write_gets_the_storage_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = ProducerStateManager::new(dir.path());
        state.update(&header(7, 0, 0, 3, 0));
        let failed = header(7, 0, 3, 2, 3);
        state.record_failed_write(&failed);
        let behind = header(7, 0, 5, 1, 3);
        assert!(matches!(state.check(&behind), Err(BrokerError::Storage(_))));
        // The later batch failing too does not move the gap's start.
        state.record_failed_write(&behind);
        assert!(matches!(
            state.check(&header(7, 0, 6, 1, 3)),
            Err(BrokerError::Storage(_))
        ));
        // Another epoch, or a gap elsewhere, is a sequence error as before.
        assert!(matches!(
            state.check(&header(7, 1, 4, 1, 3)),
            Err(BrokerError::OutOfOrderSequence(_))
        ));
        // The retry of the failed batch goes in; then a gap is a sequence error again.
        assert_eq!(state.check(&failed).unwrap(), SequenceCheck::Append);
        state.update(&failed);
        assert!(matches!(
            state.check(&header(7, 0, 9, 1, 5)),
            Err(BrokerError::OutOfOrderSequence(_))
        ));
        // A new producer whose first batch failed.
        state.record_failed_write(&header(8, 0, 0, 2, 5));
        assert!(matches!(
            state.check(&header(8, 0, 2, 1, 5)),
            Err(BrokerError::Storage(_))
        ));
        assert!(matches!(
            state.check(&header(9, 0, 2, 1, 5)),
            Err(BrokerError::OutOfOrderSequence(_))
        ));
    }

    #[test]
    fn snapshots_round_trip_and_ignore_the_future() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = ProducerStateManager::new(dir.path());
        state.update(&header(7, 0, 0, 3, 0));
        state.write_snapshot(3).unwrap();
        state.update(&header(7, 0, 3, 3, 3));
        state.write_snapshot(6).unwrap();
        state.write_snapshot(12).unwrap();
        let mut loaded = ProducerStateManager::new(dir.path());
        assert_eq!(loaded.load_snapshot(7), 6, "12 is beyond the log end; 3 was pruned");
        assert_eq!(loaded.producers()[&7].last_sequence(), 5);
        assert_eq!(loaded.load_snapshot(2), 0);
    }
}
