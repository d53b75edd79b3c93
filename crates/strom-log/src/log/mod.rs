//! `Log`: one partition's log — a directory of [`LogSegment`]s.
//!
//! Directory contents:
//! - segment files `NNNNNNNNNNNNNNNNNNNN.{log,index,timeindex}` (see [`LogSegment`]);
//!   segments are ordered and never overlap: each segment's base offset is at or
//!   above the previous segment's next offset (above it where compaction removed the
//!   previous segment's last records);
//! - while compaction swaps segments: `*.cleaned` files and `NNNNNNNNNNNNNNNNNNNN.swap`
//!   records (see [`cleaner`](crate::cleaner) for the rule applied on open);
//! - `log-start-offset`: decimal log start offset (written durably on change);
//! - `recovery-point`: decimal offset `R` such that every segment ending at or below
//!   `R` was fsynced; written when a flush first covers a new segment;
//! - `clean-shutdown`: present only between [`Log::close`] and the next [`Log::open`];
//! - `leader-epoch-checkpoint`: each leader epoch's first offset (see
//!   [`leader_epoch`](crate::leader_epoch)); it covers every batch below the persisted recovery point,
//!   and recovery replays the epochs of the batches above it.
//!
//! Invariants: offsets strictly increase; appends assign them densely from the log
//! end offset (= the last segment's next offset: its last batch's base offset +
//! lastOffsetDelta + 1, or its base offset when empty); compaction leaves gaps below
//! the persisted recovery point and nowhere else, so recovery accepts a gap only there
//! and treats any other gap (or any overlap) as damage; log start offset <= log end
//! offset; the last segment is the only one appended to and is never compacted.
//! Concurrency: one writer at a time (a mutex); readers take a snapshot of the segment
//! list (an `Arc` clone under a briefly held read lock) and read with positional
//! reads, never waiting for the writer's I/O. Compaction rewrites segments without
//! the writer lock and takes it only to swap them in; retention, record deletion,
//! truncation and that swap all change the segment list under the writer lock.

mod append;
mod compaction;
mod flush;
mod read;
mod recovery;
mod retention;
mod roll;
#[cfg(test)]
mod tests;
mod truncation;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

use crate::clock::Clock;
use crate::constants::{
    CLEAN_SHUTDOWN_FILE_NAME, INDEX_INTERVAL_BYTES_DEFAULT, RETENTION_BYTES_DEFAULT, RETENTION_MS_DEFAULT,
    SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN, SEGMENT_MS_DEFAULT,
};
use crate::error::LogError;
use crate::files::sync_directory;
use crate::leader_epoch::{EpochEntry, LeaderEpochCache};
use crate::segment::LogSegment;

/// Per-log settings, named after Kafka's topic configs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment is older than this.
    pub segment_ms: i64,
    /// `retention.ms`: delete closed segments older than this; -1 = forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete closed segments while the log is bigger; -1 = unlimited.
    pub retention_bytes: i64,
    /// `index.interval.bytes`: bytes of log between sparse index entries.
    pub index_interval_bytes: u32,
    /// `message.timestamp.type=LogAppendTime`.
    pub message_timestamp_log_append_time: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            segment_ms: SEGMENT_MS_DEFAULT,
            retention_ms: RETENTION_MS_DEFAULT,
            retention_bytes: RETENTION_BYTES_DEFAULT,
            index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
            message_timestamp_log_append_time: false,
        }
    }
}

impl LogConfig {
    fn normalized(mut self) -> LogConfig {
        self.segment_bytes = self.segment_bytes.clamp(SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX);
        self
    }
}

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub base_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// The broker's append time for LogAppendTime logs, else -1.
    pub log_append_time_ms: i64,
    /// Largest batch max timestamp appended.
    pub max_timestamp: i64,
    /// Number of batches appended.
    pub batch_count: usize,
}

/// What a read returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole stored batches, raw, beginning with the batch containing the offset asked for.
    pub records: Bytes,
    /// Log start offset at the time of the read.
    pub log_start_offset: i64,
    /// Log end offset at the time of the read.
    pub log_end_offset: i64,
}

/// A read as a file range ([`Log::read_range`]).
#[derive(Debug, Clone)]
pub struct RangeRead {
    /// The batches; None when there is nothing to read yet.
    pub range: Option<crate::FileRange>,
    /// Base offset of the first batch after the range: where the next read starts.
    pub next_offset: i64,
    /// Log start offset at the time of the read.
    pub log_start_offset: i64,
    /// Log end offset at the time of the read.
    pub log_end_offset: i64,
}

#[derive(Debug)]
struct FlushState {
    /// Base offset of the segment holding the last checkpointed recovery point.
    checkpointed_segment_base: i64,
    /// The recovery point last written by this process, `i64::MIN` before the first.
    recovery_point: i64,
}

type Segments = Arc<Vec<Arc<LogSegment>>>;

/// One partition's log. `Send + Sync`; share it in an `Arc`.
pub struct Log {
    dir: PathBuf,
    clock: Arc<dyn Clock>,
    config: RwLock<LogConfig>,
    segments: RwLock<Segments>,
    writer: Mutex<()>,
    /// Serialises compaction passes (held for a whole pass, never by the writer).
    cleaner: Mutex<()>,
    /// Bumped by every truncation; a compaction pass that saw another value aborts.
    truncations: AtomicU64,
    flush_state: Mutex<FlushState>,
    log_start_offset: AtomicI64,
    log_end_offset: AtomicI64,
    flushed_offset: AtomicI64,
    directory_dirty: AtomicBool,
    closed: AtomicBool,
    /// Leader epoch → first offset; changed under the writer lock.
    leader_epochs: Mutex<LeaderEpochCache>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("log_start_offset", &self.log_start_offset())
            .field("log_end_offset", &self.log_end_offset())
            .field("flushed_offset", &self.flushed_offset())
            .finish()
    }
}

impl Log {
    fn snapshot(&self) -> Segments {
        crate::sync::read(&self.segments).clone()
    }

    fn replace_segments(&self, segments: Vec<Arc<LogSegment>>) {
        *crate::sync::write(&self.segments) = Arc::new(segments);
    }

    fn active_segment(&self) -> Arc<LogSegment> {
        let segments = self.snapshot();
        match segments.last() {
            Some(segment) => segment.clone(),
            None => unreachable!("a log always has an active segment"),
        }
    }

    #[cfg(test)]
    pub(crate) fn segments_for_tests(&self) -> Vec<Arc<LogSegment>> {
        self.snapshot().to_vec()
    }

    /// Asserts the offset invariants: log start <= log end, flushed offset <= log end.
    /// The recovery point written is a flushed offset, so it is bounded too.
    fn debug_check_offsets(&self) {
        let end = self.log_end_offset();
        debug_assert!(
            self.log_start_offset() <= end,
            "log start {} > log end {end}",
            self.log_start_offset()
        );
        debug_assert!(
            self.flushed_offset() <= end,
            "flushed {} > log end {end}",
            self.flushed_offset()
        );
    }

    fn check_open(&self) -> Result<(), LogError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        Ok(())
    }

    /// Current configuration.
    pub fn config(&self) -> LogConfig {
        *crate::sync::read(&self.config)
    }

    /// Replaces the configuration; takes effect on the next operation.
    pub fn set_config(&self, config: LogConfig) {
        *crate::sync::write(&self.config) = config.normalized();
    }

    /// The directory holding this log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// First offset still readable.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }

    /// Offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }

    /// Everything below this offset has been fsynced.
    pub fn flushed_offset(&self) -> i64 {
        self.flushed_offset.load(Ordering::Acquire)
    }

    /// Flushes, then marks the directory as cleanly shut down. Later writes fail with
    /// [`LogError::Closed`].
    pub fn close(&self) -> Result<(), LogError> {
        let _writer = crate::sync::lock(&self.writer);
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let active = self.active_segment();
        active.seal()?;
        let end = self.log_end_offset();
        self.flush_to(end)?;
        // The seal may have added a time index entry after the last flush.
        active.flush()?;
        crate::sync::lock(&self.leader_epochs).save_if_dirty()?;
        let marker = File::create(self.dir.join(CLEAN_SHUTDOWN_FILE_NAME))?;
        marker.sync_all()?;
        sync_directory(&self.dir)?;
        tracing::debug!(dir = %self.dir.display(), end, "log closed");
        Ok(())
    }

    /// The latest leader epoch recorded in the log, if any.
    pub fn latest_leader_epoch(&self) -> Option<i32> {
        crate::sync::lock(&self.leader_epochs).latest_epoch()
    }

    /// OffsetsForLeaderEpoch: `(epoch, end offset)` for `requested_epoch` (see
    /// [`leader_epoch`](crate::leader_epoch)): the latest epoch ends at the log end
    /// offset, an older one where the next epoch starts; `(-1, -1)` when unknown.
    pub fn end_offset_for_leader_epoch(&self, requested_epoch: i32) -> (i32, i64) {
        let cache = crate::sync::lock(&self.leader_epochs);
        cache.end_offset_for(requested_epoch, self.log_end_offset())
    }

    /// A new leader's epoch begins at the log end offset (Kafka assigns it when a
    /// replica becomes leader, so the cache knows epochs that hold no records and a
    /// follower diverging from them is told where they start). Older or equal epochs
    /// change nothing. Returns whether the cache changed; the checkpoint is written.
    pub fn assign_leader_epoch(&self, epoch: i32) -> Result<bool, LogError> {
        let _writer = crate::sync::lock(&self.writer);
        self.check_open()?;
        let mut cache = crate::sync::lock(&self.leader_epochs);
        if cache.latest_epoch().is_some_and(|latest| latest >= epoch) {
            return Ok(false);
        }
        cache.assign(epoch, self.log_end_offset())
    }

    /// The first offset of `epoch` in this log, if the cache knows it.
    pub fn leader_epoch_start(&self, epoch: i32) -> Option<i64> {
        crate::sync::lock(&self.leader_epochs)
            .entries()
            .iter()
            .find(|entry| entry.epoch == epoch)
            .map(|entry| entry.start_offset)
    }

    /// Every leader epoch of the log with its first offset, oldest first.
    pub fn leader_epoch_entries(&self) -> Vec<EpochEntry> {
        crate::sync::lock(&self.leader_epochs).entries().to_vec()
    }

    /// Bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.snapshot().iter().map(|s| s.size()).sum()
    }

    /// Number of segments (for tests and metrics).
    pub fn segment_count(&self) -> usize {
        self.snapshot().len()
    }
}
