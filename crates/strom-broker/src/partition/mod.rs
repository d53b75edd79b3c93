//! One partition on this broker: its log side ([`PartitionLog`]: segments, producer
//! state, flush bookkeeping) and its replica side ([`ReplicaState`]: leader epoch,
//! replicas, ISR, high watermark), joined by one rule: after every append the high
//! watermark is advanced from the new log end offset ([`ReplicaState::advance_high_watermark`]).
//!
//! Invariants: the high watermark never moves backwards and never passes the log end
//! offset; the last stable offset never passes the high watermark; reads for consumers
//! stop at one of them ([`FetchIsolation`]).

pub mod log;
pub mod replica;

use std::sync::Arc;

use bytes::Bytes;
use strom_log::{AppendInfo, Clock, FileRange, Log, LogConfig, RecordBatchHeader};
use tokio::sync::watch;

use crate::constants::REPLAY_READ_BYTES;
use crate::error::{BrokerError, Result};
use crate::producer_state::{AbortedTxn, TxnGuard};
pub use log::{PartitionLog, ProducerSummary};
pub use replica::{FollowerState, IsrProposal, ReplicaState, RoleChange};

/// Who appends (Kafka's `AppendOrigin`), deciding validation and offset assignment:
/// clients' batches are checked (sizes, keys on compacted topics, no control batches,
/// no internal topics) and get offsets here; coordinators' batches get offsets here and
/// may go to internal topics; replicated batches keep the leader's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    Client,
    Coordinator,
    Replication,
}

/// What a read may see (Kafka's `FetchIsolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchIsolation {
    /// Everything in the log (followers replicating it).
    LogEnd,
    /// Below the high watermark (consumers with read_uncommitted).
    HighWatermark,
    /// Below the last stable offset, with the aborted transactions in range
    /// (consumers with read_committed).
    TxnCommitted,
}

impl FetchIsolation {
    /// Kafka's `isolation_level` field: 1 = read_committed, anything else read_uncommitted.
    pub fn from_isolation_level(level: i8) -> FetchIsolation {
        if level == 1 {
            FetchIsolation::TxnCommitted
        } else {
            FetchIsolation::HighWatermark
        }
    }
}

/// A read of stored bytes.
#[derive(Debug, Clone)]
pub struct FetchedData {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub last_stable_offset: i64,
    /// For read_committed reads: aborted transactions overlapping the data.
    pub aborted: Option<Vec<AbortedTxn>>,
}

/// A read of stored bytes as a file range (what a fetch sends).
#[derive(Debug, Clone)]
pub struct FetchedRange {
    /// None when there is nothing to read yet.
    pub records: Option<FileRange>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub last_stable_offset: i64,
    /// For read_committed reads: aborted transactions overlapping the data.
    pub aborted: Option<Vec<AbortedTxn>>,
}

/// The limits an append checks, from the topic's configs.
#[derive(Debug, Clone, Copy)]
pub struct AppendLimits {
    pub max_message_bytes: usize,
    /// `cleanup.policy` includes compact: every record needs a key.
    pub require_keys: bool,
    /// The transaction check of a client's transactional batches (KIP-890).
    pub txn_guard: TxnGuard,
}

pub struct Partition {
    topic: Arc<str>,
    index: i32,
    log: PartitionLog,
    replica: ReplicaState,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.index)
    }
}

impl Partition {
    /// Opens the log in `dir`; this node (`node_id`) leads it in `leader_epoch`.
    pub fn open(
        topic: Arc<str>,
        index: i32,
        dir: &std::path::Path,
        config: LogConfig,
        clock: Arc<dyn Clock>,
        node_id: i32,
    ) -> Result<Partition> {
        let log = PartitionLog::open(format!("{topic}-{index}"), dir, config, clock)?;
        // One node: everything recovered is in sync, so the high watermark starts at
        // the log end.
        let replica = ReplicaState::new(node_id, 0, vec![node_id], log.log_end_offset());
        replica.publish_log_end(log.log_end_offset());
        Ok(Partition {
            topic,
            index,
            log,
            replica,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn index(&self) -> i32 {
        self.index
    }

    pub fn log(&self) -> &Log {
        self.log.log()
    }

    pub fn partition_log(&self) -> &PartitionLog {
        &self.log
    }

    pub fn replica(&self) -> &ReplicaState {
        &self.replica
    }

    pub fn leader_epoch(&self) -> i32 {
        self.replica.leader_epoch()
    }

    pub fn high_watermark(&self) -> i64 {
        self.replica.high_watermark()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// The last stable offset: below it every transaction is decided.
    pub fn last_stable_offset(&self) -> i64 {
        // The high watermark is read first: a transaction that opened before it moved
        // is already published, so the result never passes undecided records.
        let high_watermark = self.high_watermark();
        let last_stable = self.log.first_unstable_offset().unwrap_or(i64::MAX).min(high_watermark);
        debug_assert!(last_stable <= high_watermark);
        last_stable
    }

    /// A receiver that wakes when the high watermark moves; subscribe before
    /// reading so an append between the read and the wait is not missed.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.replica.subscribe()
    }

    /// Checks the leader epoch a client sent (-1 = not given).
    pub fn check_leader_epoch(&self, requested: i32) -> Result<()> {
        self.replica.check_leader_epoch(requested)
    }

    /// Appends batches as `origin` asks. A leader's append then applies the
    /// high-watermark rule; a replicated append does not move it (a follower learns its
    /// high watermark from the leader).
    pub fn append(&self, batches: &[u8], origin: AppendOrigin, limits: AppendLimits) -> Result<AppendInfo> {
        let epoch = self.leader_epoch();
        let info = match origin {
            AppendOrigin::Client => self.log.append_client(
                batches,
                limits.max_message_bytes,
                limits.require_keys,
                epoch,
                limits.txn_guard,
            )?,
            AppendOrigin::Coordinator => self.log.append_coordinator(batches, epoch)?,
            AppendOrigin::Replication => return self.log.append_replicated(batches),
        };
        self.after_leader_append();
        Ok(info)
    }

    /// After a leader's append: the high watermark rule, then followers' fetches wake.
    fn after_leader_append(&self) {
        let end = self.log.log_end_offset();
        self.replica.advance_high_watermark(end);
        self.replica.publish_log_end(end);
    }

    /// This node leads now, in `leader_epoch`: the epoch begins at the log end in the
    /// leader-epoch cache (so it is known even before it holds records), and the high
    /// watermark advances as far as the ISR lets it (at once when the ISR is this node).
    pub fn become_leader(&self, leader_epoch: i32) -> Result<()> {
        self.log.log().assign_leader_epoch(leader_epoch)?;
        let start = self
            .log
            .log()
            .leader_epoch_start(leader_epoch)
            .unwrap_or_else(|| self.log_end_offset());
        self.replica.set_epoch_start_offset(start);
        self.after_leader_append();
        Ok(())
    }

    /// Waits until the high watermark reaches `offset` (every in-sync replica has the
    /// records below it) while this node leads: NOT_LEADER_OR_FOLLOWER once it does not,
    /// REQUEST_TIMED_OUT after `timeout` (what acks=all answers, as Kafka does).
    pub async fn wait_for_high_watermark(&self, offset: i64, timeout: std::time::Duration) -> Result<()> {
        let mut watcher = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if !self.replica.is_leader() {
                return Err(BrokerError::NotLeaderOrFollower);
            }
            if self.high_watermark() >= offset {
                return Ok(());
            }
            tokio::select! {
                changed = watcher.changed() => if changed.is_err() {
                    return Err(BrokerError::NotLeaderOrFollower);
                },
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(BrokerError::RequestTimedOut(format!(
                        "{self:?}: the in-sync replicas did not reach offset {offset} within {} ms",
                        timeout.as_millis()
                    )));
                }
            }
        }
    }

    /// [`Partition::wait_for_high_watermark`] for callers on the blocking pool (the
    /// coordinators).
    pub fn wait_for_high_watermark_blocking(&self, offset: i64, timeout: std::time::Duration) -> Result<()> {
        if self.replica.is_leader() && self.high_watermark() >= offset {
            return Ok(());
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle.block_on(self.wait_for_high_watermark(offset, timeout)),
            // Outside a runtime (unit tests of one node): the ISR is this node, so the
            // high watermark passed the append already or this node does not lead.
            Err(_) if !self.replica.is_leader() => Err(BrokerError::NotLeaderOrFollower),
            Err(_) => Err(BrokerError::RequestTimedOut(format!(
                "{self:?}: waiting for replicas outside a runtime"
            ))),
        }
    }

    /// A follower's high watermark, from the leader's fetch response.
    pub fn follow_high_watermark(&self, leader_high_watermark: i64) {
        self.replica
            .follow_high_watermark(leader_high_watermark, self.log_end_offset());
    }

    /// Removes every record at or above `offset` (a follower diverging from its
    /// leader); the high watermark stays at or below the new log end.
    pub fn truncate_to(&self, offset: i64) -> Result<()> {
        self.log.truncate_to(offset)?;
        let end = self.log_end_offset();
        if self.high_watermark() > end {
            self.replica.reset_high_watermark(end);
        }
        self.replica.publish_log_end(end);
        Ok(())
    }

    /// Empties the log and restarts it at `offset` (a follower behind the leader's
    /// log start offset).
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<()> {
        self.log.truncate_fully_and_start_at(offset)?;
        self.replica.reset_high_watermark(offset);
        self.replica.publish_log_end(offset);
        Ok(())
    }

    /// Writes a transaction marker (a control batch) for `producer_id` and closes its
    /// transaction here. Returns the marker's offset.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<i64> {
        let info = self.log.append_marker(
            producer_id,
            producer_epoch,
            commit,
            coordinator_epoch,
            self.leader_epoch(),
        )?;
        self.after_leader_append();
        Ok(info.base_offset)
    }

    /// Stored batches from `offset`, whole batches, as far as `isolation` lets the
    /// reader see, as a file range of one segment (nothing is read: a fetch sends it
    /// from the page cache).
    pub fn read_range(&self, offset: i64, max_bytes: usize, isolation: FetchIsolation) -> Result<FetchedRange> {
        let high_watermark = self.high_watermark();
        let last_stable_offset = self.last_stable_offset();
        let limit = match isolation {
            FetchIsolation::LogEnd => self.log_end_offset(),
            FetchIsolation::HighWatermark => high_watermark,
            FetchIsolation::TxnCommitted => last_stable_offset,
        };
        let read_committed = isolation == FetchIsolation::TxnCommitted;
        let (records, next_offset, log_start_offset) = if read_committed && offset > limit && offset <= high_watermark {
            // Inside an open transaction: nothing readable yet, not out of range.
            (None, offset, self.log_start_offset())
        } else {
            let read = self.log.read_range(offset, max_bytes, limit)?;
            (read.range, read.next_offset, read.log_start_offset)
        };
        let aborted = read_committed.then(|| {
            let end = if records.is_some() { next_offset } else { offset };
            self.log.aborted_between(offset, end)
        });
        Ok(FetchedRange {
            records,
            high_watermark,
            log_start_offset,
            last_stable_offset,
            aborted,
        })
    }

    /// [`Partition::read_range`], read into memory.
    pub fn read(&self, offset: i64, max_bytes: usize, isolation: FetchIsolation) -> Result<FetchedData> {
        let range = self.read_range(offset, max_bytes, isolation)?;
        let records = match &range.records {
            Some(records) => records.read()?,
            None => Bytes::new(),
        };
        Ok(FetchedData {
            records,
            high_watermark: range.high_watermark,
            log_start_offset: range.log_start_offset,
            last_stable_offset: range.last_stable_offset,
            aborted: range.aborted,
        })
    }

    /// Visits every stored batch from the log start to the log end, in order
    /// (coordinators replay their internal topics with it when they take over; a new
    /// leader's high watermark may still lag, but its whole log is what it will keep).
    pub fn for_each_batch(&self, mut visit: impl FnMut(&RecordBatchHeader, &[u8]) -> Result<()>) -> Result<()> {
        let mut offset = self.log_start_offset();
        let end = self.log_end_offset();
        while offset < end {
            let data = self.read(offset, REPLAY_READ_BYTES, FetchIsolation::LogEnd)?;
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

    /// Producers with state in this partition.
    pub fn producer_states(&self) -> Vec<ProducerSummary> {
        self.log.producer_states()
    }

    /// Forgets producers idle for `producer.id.expiration.ms`.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.log.expire_producers(now_ms, expiration_ms)
    }

    /// First offset of `producer_id`'s open transaction here, if any.
    pub fn ongoing_txn(&self, producer_id: i64) -> Option<i64> {
        self.log.ongoing_txn(producer_id)
    }

    /// fsync up to the current log end (group commit).
    pub fn flush(&self) -> Result<i64> {
        self.log.flush()
    }

    /// Records appended since the last fsync.
    pub fn unflushed_messages(&self) -> i64 {
        self.log.unflushed_messages()
    }

    /// `flush.messages`: whether `flush_messages` records (i64::MAX: never) wait unflushed.
    pub fn flush_due(&self, flush_messages: i64) -> bool {
        self.log.flush_due(flush_messages)
    }

    /// `flush.ms`: fsyncs if records wait and the last fsync is at least `flush_ms` old.
    pub fn flush_if_older_than(&self, flush_ms: i64) -> Result<bool> {
        self.log.flush_if_older_than(flush_ms)
    }

    /// Advances the log start offset (DeleteRecords); -1 means the high watermark.
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
        self.log.delete_records(target)
    }

    pub fn set_config(&self, config: LogConfig) {
        self.log.set_config(config);
    }

    pub fn close(&self) -> Result<()> {
        self.log.close()
    }
}

#[cfg(test)]
mod tests;
