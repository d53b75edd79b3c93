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
//! - `clean-shutdown`: present only between [`Log::close`] and the next [`Log::open`].
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

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

use crate::batch::{set_base_offset, set_partition_leader_epoch, stamp_log_append_time, validate};
use crate::cleaner::{self, CompactionConfig, CompactionStats, OffsetMap, Policy, SegmentGroup};
use crate::clock::Clock;
use crate::constants::{
    BATCH_HEADER_SIZE, CLEAN_SHUTDOWN_FILE_NAME, COMPACTION_OFFSET_MAP_BYTES_MAX, INDEX_INTERVAL_BYTES_DEFAULT,
    LOG_FILE_SUFFIX, LOG_START_OFFSET_FILE_NAME, OFFSET_INDEX_FILE_SUFFIX, RECOVERY_POINT_FILE_NAME,
    RETENTION_BYTES_DEFAULT, RETENTION_MS_DEFAULT, SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
    SEGMENT_MS_DEFAULT, TEMPORARY_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX,
};
use crate::error::LogError;
use crate::segment::{parse_segment_file_name, LogSegment};

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

pub(crate) fn read_number_file(path: &Path) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub(crate) fn sync_directory(dir: &Path) -> Result<(), LogError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Writes `value` to `dir/name` atomically (temporary file, fsync, rename, dir fsync).
pub(crate) fn write_number_file(dir: &Path, name: &str, value: i64) -> Result<(), LogError> {
    let path = dir.join(name);
    let temporary = dir.join(format!("{name}.{TEMPORARY_FILE_SUFFIX}"));
    let mut file = File::create(&temporary)?;
    file.write_all(format!("{value}\n").as_bytes())?;
    file.sync_data()?;
    drop(file);
    std::fs::rename(&temporary, &path)?;
    sync_directory(dir)
}

/// Finishes or discards interrupted compaction swaps, lists segment base offsets and
/// removes leftovers (temporary files, indexes without a log file). Also returns the
/// base offsets of segments that must be recovered (finished swaps).
fn scan_directory(dir: &Path) -> Result<(Vec<i64>, Vec<i64>), LogError> {
    let must_recover = cleaner::finish_interrupted_swaps(dir)?;
    let mut bases = Vec::new();
    let mut index_files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(TEMPORARY_FILE_SUFFIX) {
            std::fs::remove_file(entry.path())?;
        } else if let Some(base) = parse_segment_file_name(name, LOG_FILE_SUFFIX) {
            bases.push(base);
        } else if let Some(base) = parse_segment_file_name(name, OFFSET_INDEX_FILE_SUFFIX)
            .or_else(|| parse_segment_file_name(name, TIME_INDEX_FILE_SUFFIX))
        {
            index_files.push((base, entry.path()));
        }
    }
    bases.sort_unstable();
    for (base, path) in index_files {
        if bases.binary_search(&base).is_err() {
            std::fs::remove_file(path)?;
        }
    }
    Ok((bases, must_recover))
}

impl Log {
    /// Opens (creating if missing) the log in `dir`, recovering after an unclean
    /// shutdown: interrupted compaction swaps are finished or discarded (see
    /// [`cleaner`](crate::cleaner)); segments not covered by the recovery point, and
    /// always the last one, are checked batch by batch and cut at the first torn or
    /// corrupt batch; a cut in a middle segment discards the segments after it.
    /// Offsets must strictly increase across batches and segments; a gap is accepted
    /// only below the recovery point (where compaction leaves them), any other gap or
    /// overlap counts as damage.
    pub fn open(dir: &Path, config: LogConfig, clock: Arc<dyn Clock>) -> Result<Log, LogError> {
        std::fs::create_dir_all(dir)?;
        let config = config.normalized();
        let now_ms = clock.now_ms();
        let clean_marker = dir.join(CLEAN_SHUTDOWN_FILE_NAME);
        let clean = clean_marker.exists();
        let (bases, must_recover) = scan_directory(dir)?;
        let persisted_start = read_number_file(&dir.join(LOG_START_OFFSET_FILE_NAME));
        let recovery_point = if clean {
            i64::MAX
        } else {
            read_number_file(&dir.join(RECOVERY_POINT_FILE_NAME)).unwrap_or(i64::MIN)
        };
        let mut segments = Self::open_segments(dir, &bases, &must_recover, recovery_point, now_ms, &config)?;
        let recovered_end = segments.last().map_or(0, |s| s.next_offset());
        if let Some(start) = persisted_start.filter(|start| *start > recovered_end) {
            // Recovery lost records up to and past the log start offset. Offsets below
            // it were already handed out, so the log restarts empty at the start offset.
            tracing::warn!(
                start,
                recovered_end,
                "log end below log start after recovery, restarting log at log start"
            );
            for segment in segments.drain(..) {
                segment.delete()?;
            }
        }
        if segments.is_empty() {
            let base = persisted_start.unwrap_or(0).max(0);
            segments.push(Arc::new(LogSegment::create(dir, base, now_ms)?));
        }
        // Offsets up to the persisted recovery point were fsynced, and may have been
        // consumed and committed past: if damage cost the tail below it, the log goes on
        // from there (a gap) rather than hand those offsets out again.
        let flushed_end = read_number_file(&dir.join(RECOVERY_POINT_FILE_NAME));
        if let Some(flushed_end) = flushed_end.filter(|end| *end > segments.last().map_or(0, |s| s.next_offset())) {
            tracing::warn!(dir = %dir.display(), flushed_end, "the log lost flushed offsets to damage; continuing after them");
            segments.push(Arc::new(LogSegment::create(dir, flushed_end, now_ms)?));
        }
        let first_base = segments.first().map_or(0, |s| s.base_offset());
        let log_end_offset = segments.last().map_or(0, |s| s.next_offset());
        let log_start_offset = persisted_start
            .unwrap_or(first_base)
            .max(first_base)
            .min(log_end_offset);
        if clean {
            std::fs::remove_file(&clean_marker)?;
            sync_directory(dir)?;
        }
        let log = Log {
            dir: dir.to_path_buf(),
            clock,
            config: RwLock::new(config),
            segments: RwLock::new(Arc::new(segments)),
            writer: Mutex::new(()),
            cleaner: Mutex::new(()),
            truncations: AtomicU64::new(0),
            flush_state: Mutex::new(FlushState {
                checkpointed_segment_base: i64::MIN,
                recovery_point: i64::MIN,
            }),
            log_start_offset: AtomicI64::new(log_start_offset),
            log_end_offset: AtomicI64::new(log_end_offset),
            flushed_offset: AtomicI64::new(if clean { log_end_offset } else { first_base }),
            directory_dirty: AtomicBool::new(!clean),
            closed: AtomicBool::new(false),
        };
        if !clean {
            log.flush()?;
        }
        tracing::debug!(dir = %dir.display(), clean, log_start_offset, log_end_offset, "log opened");
        Ok(log)
    }

    fn open_segments(
        dir: &Path,
        bases: &[i64],
        must_recover: &[i64],
        recovery_point: i64,
        now_ms: i64,
        config: &LogConfig,
    ) -> Result<Vec<Arc<LogSegment>>, LogError> {
        let interval = config.index_interval_bytes;
        let mut segments: Vec<Arc<LogSegment>> = Vec::with_capacity(bases.len());
        let mut discard_from = None;
        for (index, &base) in bases.iter().enumerate() {
            if let Some(previous) = segments.last() {
                let expected = previous.next_offset();
                if base < expected && base <= recovery_point {
                    // Both segments are durable: one of them is damaged (most likely a
                    // flipped bit in the last base offset of the earlier one). Dropping the
                    // later segments would lose intact records; refuse to open instead.
                    return Err(LogError::corrupt(format!(
                        "segment {base} in {} starts below the end {expected} of the segment before it, \
                         and both are below the recovery point; nothing was removed: check the \
                         directory with `strom storage verify`",
                        dir.display()
                    )));
                }
                if base < expected || (base > expected && base > recovery_point) {
                    tracing::warn!(
                        base,
                        expected,
                        recovery_point,
                        "segment overlaps or leaves a gap above the recovery point, discarding it and later segments"
                    );
                    discard_from = Some(index);
                    break;
                }
            }
            let trusted = bases
                .get(index + 1)
                .is_some_and(|next_base| *next_base <= recovery_point);
            let swapped = must_recover.contains(&base);
            let segment = if trusted && !swapped {
                LogSegment::load(dir, base, now_ms, interval)?
            } else {
                let gaps_below = if swapped { i64::MAX } else { recovery_point };
                let (segment, cut) = LogSegment::open_and_recover(dir, base, now_ms, interval, gaps_below)?;
                if cut > 0 && index + 1 < bases.len() {
                    segments.push(Arc::new(segment));
                    discard_from = Some(index + 1);
                    break;
                }
                segment
            };
            segments.push(Arc::new(segment));
        }
        if let Some(from) = discard_from {
            for &base in bases.get(from..).unwrap_or(&[]) {
                LogSegment::load(dir, base, now_ms, interval)?.delete()?;
            }
        }
        Ok(segments)
    }

    fn snapshot(&self) -> Segments {
        self.segments.read().unwrap().clone()
    }

    fn replace_segments(&self, segments: Vec<Arc<LogSegment>>) {
        *self.segments.write().unwrap() = Arc::new(segments);
    }

    fn active_segment(&self) -> Arc<LogSegment> {
        let segments = self.snapshot();
        match segments.last() {
            Some(segment) => segment.clone(),
            None => unreachable!("a log always has an active segment"),
        }
    }

    fn check_open(&self) -> Result<(), LogError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        Ok(())
    }

    /// Current configuration.
    pub fn config(&self) -> LogConfig {
        *self.config.read().unwrap()
    }

    /// Replaces the configuration; takes effect on the next operation.
    pub fn set_config(&self, config: LogConfig) {
        *self.config.write().unwrap() = config.normalized();
    }

    /// The directory holding this log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one or more concatenated v2 batches as a producer sent them. Every batch
    /// is validated first (nothing is written if any is bad); offsets are then assigned
    /// densely from the log end offset in copies of the batch headers (`baseOffset`,
    /// and for LogAppendTime logs the max timestamp and CRC), which one vectored write
    /// stores ahead of the untouched records: `batches` itself is not modified.
    pub fn append(&self, batches: &[u8]) -> Result<AppendInfo, LogError> {
        self.append_stamped(batches, None)
    }

    /// [`Log::append`] that also stamps `partitionLeaderEpoch` (outside the CRC) into
    /// every batch header.
    pub fn append_stamped(&self, batches: &[u8], leader_epoch: Option<i32>) -> Result<AppendInfo, LogError> {
        if batches.is_empty() {
            return Err(LogError::EmptyAppend);
        }
        let config = self.config();
        if batches.len() as u64 > config.segment_bytes {
            return Err(LogError::BatchTooLarge {
                size: batches.len() as u64,
                max: config.segment_bytes,
            });
        }
        let mut layout = Vec::new();
        let mut position = 0usize;
        while let Some(rest) = batches.get(position..).filter(|rest| !rest.is_empty()) {
            let header = validate(rest)?;
            let size = header.total_size().unwrap_or(rest.len());
            layout.push((position, size, header));
            position += size;
        }
        let _writer = self.writer.lock().unwrap();
        self.check_open()?;
        let now_ms = self.clock.now_ms();
        let base_offset = self.log_end_offset();
        let mut next_offset = base_offset;
        let mut max_timestamp = i64::MIN;
        let mut heads: Vec<([u8; BATCH_HEADER_SIZE], &[u8])> = Vec::with_capacity(layout.len());
        for (position, size, header) in &layout {
            let batch = batches
                .get(*position..position + size)
                .filter(|batch| batch.len() >= BATCH_HEADER_SIZE)
                .ok_or_else(|| LogError::corrupt("batch outside the append buffer"))?;
            let (head_bytes, rest) = batch.split_at(BATCH_HEADER_SIZE);
            let mut head = [0u8; BATCH_HEADER_SIZE];
            head.copy_from_slice(head_bytes);
            set_base_offset(&mut head, next_offset)?;
            if let Some(epoch) = leader_epoch {
                set_partition_leader_epoch(&mut head, epoch)?;
            }
            if config.message_timestamp_log_append_time {
                stamp_log_append_time(&mut head, rest, now_ms)?;
                max_timestamp = now_ms;
            } else {
                max_timestamp = max_timestamp.max(header.max_timestamp);
            }
            next_offset = next_offset
                .checked_add(i64::from(header.last_offset_delta) + 1)
                .ok_or(LogError::OffsetOverflow)?;
            heads.push((head, rest));
        }
        let last_offset = next_offset - 1;
        let active = self.roll_for_append(now_ms, batches.len() as u64, last_offset, &config)?;
        let parts: Vec<(&[u8], &[u8])> = heads.iter().map(|(head, rest)| (&head[..], *rest)).collect();
        active.append_parts(&parts, config.index_interval_bytes)?;
        self.log_end_offset.store(next_offset, Ordering::Release);
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms: if config.message_timestamp_log_append_time {
                now_ms
            } else {
                -1
            },
            max_timestamp,
            batch_count: layout.len(),
        })
    }

    /// Rolls first if the append would overflow the active segment (bytes or relative
    /// offsets) or the segment is older than `segment.ms`. Writer lock held.
    fn roll_for_append(
        &self,
        now_ms: i64,
        incoming_bytes: u64,
        last_offset: i64,
        config: &LogConfig,
    ) -> Result<Arc<LogSegment>, LogError> {
        let active = self.active_segment();
        let size = active.size();
        let full = size + incoming_bytes > config.segment_bytes;
        let old = now_ms.saturating_sub(active.created_ms()) >= config.segment_ms;
        let offsets_overflow = last_offset - active.base_offset() > i64::from(u32::MAX);
        if size > 0 && (full || old || offsets_overflow) {
            return self.roll(now_ms);
        }
        Ok(active)
    }

    /// Seals the active segment and starts a new one at the log end offset. Writer
    /// lock held.
    fn roll(&self, now_ms: i64) -> Result<Arc<LogSegment>, LogError> {
        let segments = self.snapshot();
        if let Some(active) = segments.last() {
            active.seal()?;
        }
        let base = self.log_end_offset();
        let segment = Arc::new(LogSegment::create(&self.dir, base, now_ms)?);
        self.directory_dirty.store(true, Ordering::Release);
        let mut next = Vec::with_capacity(segments.len() + 1);
        next.extend(segments.iter().cloned());
        next.push(segment.clone());
        self.replace_segments(next);
        tracing::debug!(dir = %self.dir.display(), base, "rolled segment");
        Ok(segment)
    }

    /// Rolls the active segment if it is non-empty and older than `segment.ms`.
    pub fn roll_if_due(&self) -> Result<bool, LogError> {
        let _writer = self.writer.lock().unwrap();
        self.check_open()?;
        let config = self.config();
        let now_ms = self.clock.now_ms();
        let active = self.active_segment();
        if active.size() > 0 && now_ms.saturating_sub(active.created_ms()) >= config.segment_ms {
            self.roll(now_ms)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Rolls the active segment now if it is non-empty (for tests and admin tools).
    pub fn roll_now(&self) -> Result<bool, LogError> {
        let _writer = self.writer.lock().unwrap();
        self.check_open()?;
        if self.active_segment().size() == 0 {
            return Ok(false);
        }
        self.roll(self.clock.now_ms())?;
        Ok(true)
    }

    /// Stored batches beginning with the batch containing `offset`, whole batches only,
    /// stopping before any batch whose base offset is >= `max_offset`, at most
    /// `max_bytes` except that the first batch is always whole (KIP-74).
    /// `offset` outside `[log start, log end]` is `OffsetOutOfRange`; at the log end the
    /// result is empty.
    pub fn read(&self, offset: i64, max_bytes: usize, max_offset: i64) -> Result<ReadResult, LogError> {
        let log_end_offset = self.log_end_offset();
        let log_start_offset = self.log_start_offset();
        let result = |records| ReadResult {
            records,
            log_start_offset,
            log_end_offset,
        };
        if offset < log_start_offset || offset > log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: log_start_offset,
                end: log_end_offset,
            });
        }
        if offset == log_end_offset || offset >= max_offset {
            return Ok(result(Bytes::new()));
        }
        let segments = self.snapshot();
        let first = segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1);
        for segment in segments.get(first..).unwrap_or(&[]) {
            if let Some(records) = segment.read(offset, max_bytes, max_offset.min(log_end_offset))? {
                return Ok(result(records));
            }
        }
        Ok(result(Bytes::new()))
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

    /// The first record (at or above the log start offset) whose timestamp is >= `ts`,
    /// as `(offset, timestamp)`, looking inside batches.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        let log_start_offset = self.log_start_offset();
        for segment in self.snapshot().iter() {
            if segment.next_offset() <= log_start_offset || segment.max_timestamp().is_none_or(|max| max.timestamp < ts)
            {
                continue;
            }
            if let Some(found) = segment.find_offset_for_timestamp(ts, log_start_offset)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp (the first one, if several), as
    /// `(offset, timestamp)`: ListOffsets `MAX_TIMESTAMP`.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let log_start_offset = self.log_start_offset();
        let mut best: Option<(Arc<LogSegment>, crate::time_index::TimestampOffset)> = None;
        for segment in self.snapshot().iter() {
            if segment.next_offset() <= log_start_offset {
                continue;
            }
            if let Some(max) = segment.max_timestamp() {
                if best.as_ref().is_none_or(|(_, b)| max.timestamp > b.timestamp) {
                    best = Some((segment.clone(), max));
                }
            }
        }
        let (segment, max) = best?;
        match segment.find_offset_for_timestamp(max.timestamp, max.offset.max(log_start_offset)) {
            Ok(Some(found)) => Some(found),
            _ => Some((max.offset.max(log_start_offset), max.timestamp)),
        }
    }

    /// fdatasyncs everything appended so far; returns the flushed offset.
    pub fn flush(&self) -> Result<i64, LogError> {
        self.flush_to(self.log_end_offset())
    }

    /// Makes everything below `offset` durable. Group commit: returns at once if a
    /// flush already covered it, and concurrent callers share one fdatasync — a caller
    /// waiting for the flush lock finds its offset covered by the flush that held it.
    pub fn flush_to(&self, offset: i64) -> Result<i64, LogError> {
        let flushed = self.flushed_offset();
        if flushed >= offset {
            return Ok(flushed);
        }
        let mut state = self.flush_state.lock().unwrap();
        let flushed = self.flushed_offset();
        if flushed >= offset {
            return Ok(flushed);
        }
        let end = self.log_end_offset();
        let segments = self.snapshot();
        let last_index = segments.len().saturating_sub(1);
        for (index, segment) in segments.iter().enumerate() {
            if index == last_index {
                // The active segment is above the recovery point: after a crash its
                // indexes are rebuilt from the log, so only the log needs the fsync.
                segment.flush_data()?;
            } else if segment.next_offset() > flushed || segment.indexes_dirty() {
                segment.flush()?;
            }
        }
        if self.directory_dirty.swap(false, Ordering::AcqRel) {
            if let Err(error) = sync_directory(&self.dir) {
                self.directory_dirty.store(true, Ordering::Release);
                return Err(error);
            }
        }
        self.flushed_offset.fetch_max(end, Ordering::AcqRel);
        let holding = segments
            .iter()
            .rev()
            .find(|s| s.base_offset() <= end)
            .map_or(i64::MIN, |s| s.base_offset());
        if holding > state.checkpointed_segment_base {
            match write_number_file(&self.dir, RECOVERY_POINT_FILE_NAME, end) {
                Ok(()) => {
                    state.checkpointed_segment_base = holding;
                    state.recovery_point = end;
                }
                // The data is synced; an older recovery point only means more to
                // check after a crash. Retried at the next flush, so a full disk does
                // not stop the broker from starting, closing or serving reads.
                Err(error) if error.is_out_of_space() => {
                    tracing::warn!(dir = %self.dir.display(), "no space to update the recovery point; keeping the older one");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(self.flushed_offset())
    }

    /// Deletes closed segments (never the active one), oldest first, while they are
    /// wholly below the log start offset, older than `retention.ms` (by their largest
    /// timestamp, or the file's modification time when they have none) or beyond
    /// `retention.bytes`. Advances the log start offset; returns the number deleted.
    pub fn apply_retention(&self) -> Result<usize, LogError> {
        let _writer = self.writer.lock().unwrap();
        let config = self.config();
        let now_ms = self.clock.now_ms();
        let segments = self.snapshot();
        let log_start_offset = self.log_start_offset();
        let total: u64 = segments.iter().map(|s| s.size()).sum();
        let mut excess = if config.retention_bytes >= 0 {
            total as i64 - config.retention_bytes
        } else {
            i64::MIN
        };
        let mut count = 0;
        for segment in segments.iter().take(segments.len().saturating_sub(1)) {
            let below_start = segment.next_offset() <= log_start_offset;
            let expired = config.retention_ms >= 0 && {
                let timestamp = match segment.max_timestamp() {
                    Some(max) if max.timestamp >= 0 => max.timestamp,
                    _ => segment.last_modified_ms()?,
                };
                now_ms.saturating_sub(timestamp) > config.retention_ms
            };
            let size = segment.size() as i64;
            let oversize = excess >= size && excess > 0;
            if !(below_start || expired || oversize) {
                break;
            }
            excess = excess.saturating_sub(size);
            count += 1;
        }
        if count > 0 {
            self.delete_oldest_segments(count)?;
        }
        Ok(count)
    }

    /// Removes the `count` oldest segments and advances the log start offset past
    /// them. Writer lock held; never removes the active segment.
    fn delete_oldest_segments(&self, count: usize) -> Result<(), LogError> {
        let segments = self.snapshot();
        let count = count.min(segments.len().saturating_sub(1));
        let (doomed, kept) = segments.split_at(count);
        let new_first_base = kept.first().map_or(0, |s| s.base_offset());
        if new_first_base > self.log_start_offset() {
            write_number_file(&self.dir, LOG_START_OFFSET_FILE_NAME, new_first_base)?;
            self.log_start_offset.fetch_max(new_first_base, Ordering::AcqRel);
        }
        self.replace_segments(kept.to_vec());
        for segment in doomed {
            segment.delete()?;
            tracing::debug!(dir = %self.dir.display(), base = segment.base_offset(), "deleted segment");
        }
        self.directory_dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Advances the log start offset to `new_log_start_offset` (persisted) and deletes
    /// closed segments wholly below it. Returns the log start offset afterwards.
    pub fn delete_records(&self, new_log_start_offset: i64) -> Result<i64, LogError> {
        let _writer = self.writer.lock().unwrap();
        let start = self.log_start_offset();
        let end = self.log_end_offset();
        if new_log_start_offset > end || new_log_start_offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset: new_log_start_offset,
                start,
                end,
            });
        }
        if new_log_start_offset <= start {
            return Ok(start);
        }
        write_number_file(&self.dir, LOG_START_OFFSET_FILE_NAME, new_log_start_offset)?;
        self.log_start_offset.store(new_log_start_offset, Ordering::Release);
        let segments = self.snapshot();
        let below = segments
            .iter()
            .take(segments.len().saturating_sub(1))
            .take_while(|s| s.next_offset() <= new_log_start_offset)
            .count();
        if below > 0 {
            self.delete_oldest_segments(below)?;
        }
        Ok(new_log_start_offset)
    }

    /// Removes every record at or above `offset` (the whole batch containing `offset`
    /// goes, so the log end offset may end below `offset`; in a compacted log it ends
    /// at the last kept batch, so offsets of a removed range may be handed out again). Truncating below the log
    /// start offset empties the log and restarts it at `offset`.
    pub fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        let _writer = self.writer.lock().unwrap();
        self.check_open()?;
        let end = self.log_end_offset();
        if offset >= end {
            return Ok(());
        }
        self.truncations.fetch_add(1, Ordering::AcqRel);
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset(),
                end,
            });
        }
        let config = self.config();
        let segments = self.snapshot();
        let first_base = segments.first().map_or(0, |s| s.base_offset());
        let (kept, doomed): (Vec<_>, Vec<_>) = if offset <= first_base || offset < self.log_start_offset() {
            let fresh = Arc::new(LogSegment::create(&self.dir, offset, self.clock.now_ms())?);
            let doomed = segments.iter().filter(|s| s.base_offset() != offset).cloned().collect();
            (vec![fresh], doomed)
        } else {
            segments.iter().cloned().partition(|s| s.base_offset() < offset)
        };
        let last = kept.last().cloned();
        self.replace_segments(kept);
        for segment in &doomed {
            segment.delete()?;
        }
        let new_end = match last {
            Some(last) => {
                last.truncate_to(offset, config.index_interval_bytes)?;
                last.next_offset()
            }
            None => offset,
        };
        self.log_end_offset.store(new_end, Ordering::Release);
        let start = self.log_start_offset();
        let new_start = if offset < start || offset <= first_base {
            offset.min(new_end)
        } else {
            start.min(new_end)
        };
        if new_start != start {
            write_number_file(&self.dir, LOG_START_OFFSET_FILE_NAME, new_start)?;
            self.log_start_offset.store(new_start, Ordering::Release);
        }
        let mut state = self.flush_state.lock().unwrap();
        let flushed = self.flushed_offset().min(new_end);
        self.flushed_offset.store(flushed, Ordering::Release);
        write_number_file(&self.dir, RECOVERY_POINT_FILE_NAME, flushed)?;
        state.checkpointed_segment_base = i64::MIN;
        state.recovery_point = flushed;
        self.directory_dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Compacts the closed segments (`cleanup.policy=compact`): keeps the latest record
    /// of every key at its original offset, drops tombstones older than
    /// `delete_retention_ms`, never removes records younger than
    /// `min_compaction_lag_ms`. The algorithm, its crash safety and its invariants are
    /// in [`cleaner`](crate::cleaner). Appends go on while segments are rewritten; a
    /// pass that races a truncation stops early. Passes on one log are serialised.
    pub fn compact(&self, config: CompactionConfig) -> Result<CompactionStats, LogError> {
        let _cleaner = self.cleaner.lock().unwrap();
        self.check_open()?;
        cleaner::remove_stale_swap_records(&self.dir)?;
        let truncations = self.truncations.load(Ordering::Acquire);
        let end = self.log_end_offset();
        let segments = self.snapshot();
        let log_config = self.config();
        let policy = Policy {
            now_ms: self.clock.now_ms(),
            config,
        };
        let mut map = OffsetMap::build(&segments, end, COMPACTION_OFFSET_MAP_BYTES_MAX)?;
        let groups = cleaner::plan_groups(&segments, log_config.segment_bytes, map.end_offset());
        let mut stats = CompactionStats::default();
        let Some(cover) = groups.last().map(|group| group.end_offset) else {
            return Ok(stats);
        };
        // A record is removed only because a later one exists: everything the map saw
        // must be durable first, or a crash could lose the later record too.
        self.flush_to(map.end_offset())?;
        self.checkpoint_recovery_point(cover)?;
        for group in &groups {
            let interval = log_config.index_interval_bytes;
            let Some(cleaned) = cleaner::clean_group(&self.dir, group, &mut map, &policy, interval)? else {
                continue;
            };
            let (bytes_before, records_removed) = (cleaned.bytes_before, cleaned.records_removed);
            let Some(bytes_after) = self.swap_in_cleaned(group, cleaned, truncations, interval)? else {
                tracing::debug!(dir = %self.dir.display(), "log changed under compaction, stopping the pass");
                break;
            };
            cleaner::remove_swap_record(&self.dir, group.base_offset())?;
            stats.segments_cleaned += group.segments.len();
            stats.records_removed += records_removed;
            stats.bytes_before += bytes_before;
            stats.bytes_after += bytes_after;
        }
        tracing::debug!(dir = %self.dir.display(), ?stats, "compacted");
        Ok(stats)
    }

    /// Makes sure the persisted recovery point is at least `offset` (everything below
    /// it must already be flushed).
    fn checkpoint_recovery_point(&self, offset: i64) -> Result<(), LogError> {
        let mut state = self.flush_state.lock().unwrap();
        if state.recovery_point >= offset {
            return Ok(());
        }
        let flushed = self.flushed_offset();
        write_number_file(&self.dir, RECOVERY_POINT_FILE_NAME, flushed)?;
        state.recovery_point = flushed;
        Ok(())
    }

    /// Under the writer lock: if `group` is still in the log unchanged (same segments,
    /// not the active one, no truncation since the pass began), commits the cleaned
    /// copy and swaps it into the segment list; returns its size. Otherwise discards
    /// the copy and returns `None`.
    fn swap_in_cleaned(
        &self,
        group: &SegmentGroup,
        cleaned: cleaner::CleanedGroup,
        truncations: u64,
        index_interval_bytes: u32,
    ) -> Result<Option<u64>, LogError> {
        let _writer = self.writer.lock().unwrap();
        let segments = self.snapshot();
        let position = segments
            .iter()
            .position(|s| group.segments.first().is_some_and(|first| Arc::ptr_eq(s, first)));
        let after = position.map(|p| p + group.segments.len());
        let still_there = position.zip(after).is_some_and(|(p, after)| {
            segments
                .get(p..after)
                .is_some_and(|run| run.iter().zip(&group.segments).all(|(a, b)| Arc::ptr_eq(a, b)))
                && segments
                    .get(after)
                    .is_some_and(|next| next.base_offset() == group.end_offset)
        });
        let unchanged = still_there
            && self.truncations.load(Ordering::Acquire) == truncations
            && !self.closed.load(Ordering::Acquire);
        let (Some(position), Some(after), true) = (position, after, unchanged) else {
            cleaned.segment.delete()?;
            return Ok(None);
        };
        let replacement = Arc::new(cleaner::commit_swap(
            &self.dir,
            cleaned,
            group,
            self.clock.now_ms(),
            index_interval_bytes,
        )?);
        let size = replacement.size();
        let mut next = Vec::with_capacity(segments.len());
        next.extend(segments.iter().take(position).cloned());
        next.push(replacement);
        next.extend(segments.iter().skip(after).cloned());
        self.replace_segments(next);
        self.directory_dirty.store(true, Ordering::Release);
        Ok(Some(size))
    }

    #[cfg(test)]
    pub(crate) fn segments_for_tests(&self) -> Vec<Arc<LogSegment>> {
        self.snapshot().to_vec()
    }

    #[cfg(test)]
    pub(crate) fn swap_in_cleaned_for_tests(
        &self,
        group: &SegmentGroup,
        cleaned: cleaner::CleanedGroup,
        truncations: u64,
    ) -> Result<Option<u64>, LogError> {
        self.swap_in_cleaned(group, cleaned, truncations, self.config().index_interval_bytes)
    }

    /// Flushes, then marks the directory as cleanly shut down. Later writes fail with
    /// [`LogError::Closed`].
    pub fn close(&self) -> Result<(), LogError> {
        let _writer = self.writer.lock().unwrap();
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let active = self.active_segment();
        active.seal()?;
        let end = self.log_end_offset();
        self.flush_to(end)?;
        // The seal may have added a time index entry after the last flush.
        active.flush()?;
        let marker = File::create(self.dir.join(CLEAN_SHUTDOWN_FILE_NAME))?;
        marker.sync_all()?;
        sync_directory(&self.dir)?;
        tracing::debug!(dir = %self.dir.display(), end, "log closed");
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchIter;
    use crate::batch_builder::RecordBatchBuilder;
    use crate::clock::ManualClock;
    use crate::compression::Compression;

    fn batch(records: usize, timestamp: i64, codec: Compression) -> Vec<u8> {
        let mut builder = RecordBatchBuilder::new().compression(codec);
        for i in 0..records {
            builder.push(timestamp + i as i64, None, Some(&[1u8; 200]));
        }
        builder.build().unwrap()
    }

    fn small_config() -> LogConfig {
        LogConfig {
            segment_bytes: 2000,
            index_interval_bytes: 300,
            ..LogConfig::default()
        }
    }

    fn open(dir: &Path, clock: &Arc<ManualClock>) -> Log {
        Log::open(dir, small_config(), clock.clone()).unwrap()
    }

    #[test]
    fn log_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Log>();
    }

    #[test]
    fn appends_densely_reads_and_survives_clean_restart() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(10_000));
        let log = open(dir.path(), &clock);
        let two = [batch(2, 100, Compression::None), batch(3, 200, Compression::None)].concat();
        let info = log.append(&two).unwrap();
        assert_eq!((info.base_offset, info.last_offset, info.batch_count), (0, 4, 2));
        assert_eq!(info.log_append_time_ms, -1);
        assert_eq!(info.max_timestamp, 202);
        for i in 0..20 {
            log.append(&batch(1, 300 + i, Compression::None)).unwrap();
        }
        assert_eq!(log.log_end_offset(), 25);
        assert!(log.segment_count() > 1);
        let read = log.read(3, 1, i64::MAX).unwrap();
        let (header, _) = BatchIter::new(&read.records).next().unwrap();
        assert_eq!(header.base_offset, 2);
        assert!(log.read(25, 100, i64::MAX).unwrap().records.is_empty());
        assert!(matches!(
            log.read(26, 100, i64::MAX),
            Err(LogError::OffsetOutOfRange {
                offset: 26,
                start: 0,
                end: 25
            })
        ));
        assert!(log.read(0, 10_000, 2).unwrap().records.len() < 1000);
        let everything: Vec<u8> = {
            let mut all = Vec::new();
            let mut offset = 0;
            while offset < 25 {
                let records = log.read(offset, 100_000, i64::MAX).unwrap().records;
                let mut last = offset;
                for (header, bytes) in BatchIter::new(&records) {
                    last = header.next_offset();
                    all.extend_from_slice(bytes);
                }
                offset = last;
            }
            all
        };
        log.close().unwrap();
        assert!(matches!(
            log.append(&batch(1, 1, Compression::None)),
            Err(LogError::Closed)
        ));
        drop(log);
        assert!(dir.path().join(CLEAN_SHUTDOWN_FILE_NAME).exists());
        let log = open(dir.path(), &clock);
        assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE_NAME).exists());
        assert_eq!(log.log_end_offset(), 25);
        assert_eq!(log.flushed_offset(), 25);
        assert_eq!(log.size_bytes(), everything.len() as u64);
        assert_eq!(log.max_timestamp(), Some((24, 319)));
        assert_eq!(log.append(&batch(1, 1, Compression::None)).unwrap().base_offset, 25);
    }

    #[test]
    fn bad_batch_rejects_the_whole_append() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let log = open(dir.path(), &clock);
        let good = batch(1, 1, Compression::None);
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let input = [good.clone(), bad].concat();
        assert!(matches!(log.append(&input), Err(LogError::CrcMismatch { .. })));
        let torn = [good.clone(), good[..30].to_vec()].concat();
        assert!(matches!(log.append(&torn), Err(LogError::CorruptBatch { .. })));
        assert!(matches!(log.append(&[]), Err(LogError::EmptyAppend)));
        let huge = vec![good.clone(); 20].concat();
        assert!(matches!(log.append(&huge), Err(LogError::BatchTooLarge { .. })));
        assert_eq!(log.log_end_offset(), 0);
        assert_eq!(log.size_bytes(), 0);
    }

    #[test]
    fn log_append_time_patches_timestamp_and_crc() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(777));
        let config = LogConfig {
            message_timestamp_log_append_time: true,
            ..small_config()
        };
        let log = Log::open(dir.path(), config, clock.clone()).unwrap();
        let info = log.append(&batch(3, 5, Compression::Gzip)).unwrap();
        assert_eq!(info.log_append_time_ms, 777);
        assert_eq!(info.max_timestamp, 777);
        let records = log.read(0, 1000, i64::MAX).unwrap().records;
        let header = validate(&records).unwrap();
        assert!(header.is_log_append_time());
        assert_eq!(log.offset_for_timestamp(700).unwrap(), Some((0, 777)));
        assert_eq!(log.offset_for_timestamp(778).unwrap(), None);
    }

    #[test]
    fn finds_offsets_by_timestamp_across_segments_and_codecs() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let log = open(dir.path(), &clock);
        let codecs = [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ];
        for i in 0..30i64 {
            log.append(&batch(4, 1000 + i * 10, codecs[i as usize % 5])).unwrap();
        }
        assert!(log.segment_count() > 2);
        assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 1000)));
        assert_eq!(log.offset_for_timestamp(1152).unwrap(), Some((62, 1152)));
        assert_eq!(log.offset_for_timestamp(1154).unwrap(), Some((64, 1160)));
        assert_eq!(log.offset_for_timestamp(1294).unwrap(), None);
        assert_eq!(log.max_timestamp(), Some((119, 1293)));
        log.delete_records(70).unwrap();
        assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((70, 1172)));
    }

    #[test]
    fn retention_by_time_and_size_and_delete_records() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let log = open(dir.path(), &clock);
        for i in 0..30 {
            log.append(&batch(2, 1_000_000 + i, Compression::None)).unwrap();
        }
        let segments = log.segment_count();
        assert!(segments > 3);
        assert_eq!(log.apply_retention().unwrap(), 0);
        log.set_config(LogConfig {
            retention_bytes: 4000,
            ..small_config()
        });
        let deleted = log.apply_retention().unwrap();
        assert!(deleted > 0);
        assert!(log.size_bytes() >= 4000 - 2000);
        let start = log.log_start_offset();
        assert!(start > 0);
        assert!(log.read(start - 1, 10, i64::MAX).is_err());
        log.set_config(LogConfig {
            retention_ms: 1000,
            ..small_config()
        });
        clock.advance_ms(5000);
        log.apply_retention().unwrap();
        assert_eq!(log.segment_count(), 1);
        assert!(matches!(log.delete_records(61), Err(LogError::OffsetOutOfRange { .. })));
        assert_eq!(log.delete_records(59).unwrap(), 59);
        assert_eq!(log.delete_records(10).unwrap(), 59);
        drop(log);
        let log = open(dir.path(), &clock);
        assert_eq!(log.log_start_offset(), 59);
        assert_eq!(log.log_end_offset(), 60);
    }

    #[test]
    fn rolls_on_segment_ms() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let config = LogConfig {
            segment_ms: 100,
            ..LogConfig::default()
        };
        let log = Log::open(dir.path(), config, clock.clone()).unwrap();
        assert!(!log.roll_if_due().unwrap());
        log.append(&batch(1, 0, Compression::None)).unwrap();
        assert!(!log.roll_if_due().unwrap());
        clock.advance_ms(100);
        assert!(log.roll_if_due().unwrap());
        assert_eq!(log.segment_count(), 2);
        clock.advance_ms(100);
        log.append(&batch(1, 0, Compression::None)).unwrap();
        clock.advance_ms(100);
        log.append(&batch(1, 0, Compression::None)).unwrap();
        assert_eq!(log.segment_count(), 3);
    }

    #[test]
    fn truncate_to_cuts_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let log = open(dir.path(), &clock);
        for i in 0..20 {
            log.append(&batch(2, i, Compression::None)).unwrap();
        }
        log.flush().unwrap();
        log.truncate_to(13).unwrap();
        assert_eq!(log.log_end_offset(), 12);
        assert_eq!(log.flushed_offset(), 12);
        assert_eq!(log.append(&batch(1, 0, Compression::None)).unwrap().base_offset, 12);
        drop(log);
        let log = open(dir.path(), &clock);
        assert_eq!(log.log_end_offset(), 13);
        log.truncate_to(0).unwrap();
        assert_eq!(log.log_end_offset(), 0);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.append(&batch(1, 0, Compression::None)).unwrap().base_offset, 0);
    }

    #[test]
    fn flush_syncs_the_indexes_of_a_sealed_segment_once() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let log = open(dir.path(), &clock);
        log.append(&batch(1, 0, Compression::None)).unwrap();
        // The active segment's data is flushed without its indexes...
        log.flush().unwrap();
        let first = log.active_segment();
        assert!(!first.indexes_dirty());
        // ...so once it is sealed, the next flush must sync them even though no record
        // was appended to it after the last flush.
        assert!(log.roll_now().unwrap());
        assert!(first.indexes_dirty());
        log.append(&batch(1, 1, Compression::None)).unwrap();
        assert_eq!(log.flush().unwrap(), 2);
        assert!(!first.indexes_dirty());
        assert!(!log.active_segment().indexes_dirty());
    }

    #[test]
    fn unclean_restart_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let log = open(dir.path(), &clock);
        for i in 0..3 {
            log.append(&batch(1, i, Compression::None)).unwrap();
        }
        assert_eq!(log.flush().unwrap(), 3);
        assert_eq!(log.flush_to(2).unwrap(), 3);
        log.append(&batch(1, 9, Compression::None)).unwrap();
        let active = log.active_segment().log_path().to_path_buf();
        drop(log);
        let length = std::fs::metadata(&active).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&active)
            .unwrap()
            .set_len(length - 5)
            .unwrap();
        let log = open(dir.path(), &clock);
        assert_eq!(log.log_end_offset(), 3);
        assert_eq!(log.flushed_offset(), 3);
    }

    /// Every batch base offset readable from the log, in order.
    fn stored_base_offsets(log: &Log) -> Vec<i64> {
        let mut offsets = Vec::new();
        let mut next = log.log_start_offset();
        while next < log.log_end_offset() {
            let read = log.read(next, 1 << 20, i64::MAX).unwrap();
            let batches: Vec<_> = BatchIter::new(&read.records).map(|(header, _)| header).collect();
            let Some(last) = batches.last() else { break };
            next = last.next_offset();
            offsets.extend(batches.iter().map(|h| h.base_offset));
        }
        offsets
    }

    /// 30 batches of 2 records across several segments, closed cleanly; returns the log
    /// files of the segments in order with the batch positions of each.
    fn damaged_fixture(dir: &Path, clock: &Arc<ManualClock>) -> Vec<(PathBuf, Vec<u64>)> {
        let log = open(dir, clock);
        for i in 0..30 {
            log.append(&batch(2, i, Compression::None)).unwrap();
        }
        let segments = log.segments_for_tests();
        assert!(segments.len() >= 4);
        let layout = segments
            .iter()
            .map(|segment| {
                let mut positions = Vec::new();
                segment
                    .for_each_batch(|position, _| {
                        positions.push(position);
                        Ok(true)
                    })
                    .unwrap();
                (segment.log_path().to_path_buf(), positions)
            })
            .collect();
        log.close().unwrap();
        layout
    }

    fn flip_byte(path: &Path, position: u64) {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, position).unwrap();
        file.write_all_at(&[byte[0] ^ 0x5a], position).unwrap();
    }

    fn damage_files(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == crate::damage::DAMAGED_FILE_SUFFIX))
            .collect()
    }

    #[test]
    fn damage_in_a_sealed_segment_skips_exactly_the_damaged_batch() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let layout = damaged_fixture(dir.path(), &clock);
        let (log_path, positions) = &layout[1];
        // A flipped byte inside the second batch of a sealed segment, and one in its
        // index so that the segment is recovered rather than trusted.
        flip_byte(log_path, positions[1] + 100);
        let index = log_path.with_extension("index");
        std::fs::write(&index, [0xffu8; 8]).unwrap();
        let log = open(dir.path(), &clock);
        let damaged_base = {
            let base: i64 = log_path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            base + 2
        };
        let expected: Vec<i64> = (0..30).map(|i| i * 2).filter(|o| *o != damaged_base).collect();
        assert_eq!(stored_base_offsets(&log), expected, "only the damaged batch is gone");
        assert_eq!(log.log_end_offset(), 60);
        assert_eq!(damage_files(dir.path()).len(), 1, "a copy of the damaged bytes is kept");
        // The repair is durable: the next start finds nothing to do.
        log.close().unwrap();
        let log = open(dir.path(), &clock);
        assert_eq!(stored_base_offsets(&log), expected);
        log.append(&batch(1, 0, Compression::None)).unwrap();
        assert_eq!(log.log_end_offset(), 61);
    }

    #[test]
    fn a_damaged_length_field_is_skipped_by_finding_the_next_valid_batch() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let layout = damaged_fixture(dir.path(), &clock);
        // The last segment after a clean shutdown is durable as a whole: a broken
        // length field in its first batch must not cut the batches behind it.
        let (log_path, positions) = layout.last().unwrap();
        assert!(positions.len() >= 2);
        flip_byte(log_path, positions[0] + 9);
        let log = open(dir.path(), &clock);
        let first_lost: i64 = log_path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let expected: Vec<i64> = (0..30).map(|i| i * 2).filter(|o| *o != first_lost).collect();
        assert_eq!(stored_base_offsets(&log), expected);
        assert_eq!(log.log_end_offset(), 60);
    }

    #[test]
    fn a_flipped_base_offset_costs_that_batch_not_the_ones_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let layout = damaged_fixture(dir.path(), &clock);
        let (log_path, positions) = &layout[1];
        // baseOffset is outside the CRC: a flipped bit makes the batch claim offsets far
        // ahead, and every intact batch after it seem to overlap.
        flip_byte(log_path, positions[1] + 4);
        std::fs::write(log_path.with_extension("index"), [0xffu8; 8]).unwrap();
        let log = open(dir.path(), &clock);
        let base: i64 = log_path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let expected: Vec<i64> = (0..30).map(|i| i * 2).filter(|o| *o != base + 2).collect();
        assert_eq!(stored_base_offsets(&log), expected);
        assert_eq!(log.log_end_offset(), 60);
    }

    #[test]
    fn a_flipped_base_offset_at_a_segment_boundary_stops_the_open_and_removes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let layout = damaged_fixture(dir.path(), &clock);
        let (log_path, positions) = &layout[1];
        flip_byte(log_path, *positions.last().unwrap() + 4);
        std::fs::write(log_path.with_extension("index"), [0xffu8; 8]).unwrap();
        let error = Log::open(dir.path(), small_config(), clock.clone()).err().unwrap();
        assert!(error.to_string().contains("strom storage verify"), "{error}");
        for (path, _) in &layout {
            assert!(std::fs::metadata(path).unwrap().len() > 0, "{} kept", path.display());
        }
    }

    #[test]
    fn damage_at_the_end_never_hands_out_flushed_offsets_again() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let layout = damaged_fixture(dir.path(), &clock);
        let (log_path, positions) = layout.last().unwrap();
        // A broken length field in the last batch of the last segment: damage to the end.
        flip_byte(log_path, *positions.last().unwrap() + 9);
        let log = open(dir.path(), &clock);
        assert_eq!(log.log_end_offset(), 60, "offsets below the recovery point stay used");
        let info = log.append(&batch(1, 0, Compression::None)).unwrap();
        assert_eq!(info.base_offset, 60);
        assert_eq!(stored_base_offsets(&log).len(), 30);
    }

    #[test]
    fn a_torn_tail_above_the_recovery_point_is_still_cut() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let log = open(dir.path(), &clock);
        log.append(&batch(1, 0, Compression::None)).unwrap();
        log.flush().unwrap();
        log.append(&batch(1, 1, Compression::None)).unwrap();
        log.append(&batch(1, 2, Compression::None)).unwrap();
        let active = log.active_segment().log_path().to_path_buf();
        let positions = {
            let mut positions = Vec::new();
            log.active_segment()
                .for_each_batch(|p, _| {
                    positions.push(p);
                    Ok(true)
                })
                .unwrap();
            positions
        };
        drop(log);
        // Unflushed data may be torn: recovery cuts at the first bad batch above the
        // recovery point, as before.
        flip_byte(&active, positions[1] + 70);
        let log = open(dir.path(), &clock);
        assert_eq!(log.log_end_offset(), 1);
        assert!(damage_files(dir.path()).is_empty());
    }

    #[test]
    fn concurrent_readers_and_flushers_see_whole_batches() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let log = Arc::new(open(dir.path(), &clock));
        let writer = {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..300 {
                    log.append(&batch(1, i, Compression::None)).unwrap();
                    if i % 50 == 0 {
                        log.flush().unwrap();
                    }
                }
            })
        };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let log = log.clone();
                std::thread::spawn(move || {
                    while log.log_end_offset() < 300 {
                        let start = log.log_start_offset();
                        let result = log.read(start, 5000, i64::MAX).unwrap();
                        let mut iter = BatchIter::new(&result.records);
                        for (_, bytes) in iter.by_ref() {
                            validate(bytes).unwrap();
                        }
                        assert_eq!(iter.position(), result.records.len());
                        let _ = log.flush_to(log.log_end_offset());
                    }
                })
            })
            .collect();
        writer.join().unwrap();
        for reader in readers {
            reader.join().unwrap();
        }
        assert_eq!(log.flush().unwrap(), 300);
    }
}
