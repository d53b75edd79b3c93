//! `LogSegment`: one contiguous range of a partition's log on disk.
//!
//! Files, named for the segment's base offset as 20 zero-padded digits:
//! - `NNNNNNNNNNNNNNNNNNNN.log`: v2 record batches exactly as appended (offsets
//!   already assigned), back to back, nothing else;
//! - `.index` (`OffsetIndex`) and `.timeindex` (`TimeIndex`).
//!
//! While compaction writes a segment's replacement, the same names carry an extra
//! `.cleaned` suffix (see [`cleaner`](crate::cleaner)).
//!
//! Invariants: batch offsets strictly increase (each base offset is above the
//! previous batch's last offset) and every batch lies at or above the segment's base
//! offset. Appended data is dense (each base offset is the previous batch's last
//! offset + 1); compaction leaves gaps — a removed batch between two batches, a whole
//! segment's worth of removed records, removed records inside a batch — so the first
//! batch may start above the base offset and an empty segment may stand for a range
//! of removed offsets. The file never exceeds [`SEGMENT_BYTES_MAX`], so positions fit
//! in u32. Bytes beyond `size` (a torn or failed write) are never served and are cut
//! by recovery, by a failed append itself, or overwritten by the next append. Readers use positional reads and see only batches published by
//! `size`; the single writer (serialised by the owning log) appends at `size`.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, IoSlice, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use crate::batch::{validate_stored, BatchIter, RecordBatchHeader};
use crate::constants::{
    BATCH_HEADER_SIZE, CLEANED_FILE_SUFFIX, LOG_FILE_SUFFIX, LOOKUP_CHUNK_BYTES, OFFSET_INDEX_FILE_SUFFIX,
    RECOVERY_CHUNK_BYTES, SCAN_CHUNK_BYTES, SEGMENT_BYTES_MAX, TIME_INDEX_FILE_SUFFIX,
};
use crate::error::LogError;
use crate::file_range::FileRange;
use crate::offset_index::OffsetIndex;
use crate::record::find_first_record_at_or_after;
use crate::scanner::Scanner;

pub use crate::segment_name::{parse_segment_file_name, segment_file_name};
use crate::time_index::{TimeIndex, TimestampOffset};

/// Writer-side bookkeeping for sparse indexing.
#[derive(Debug, Default)]
struct IndexingState {
    bytes_since_index_entry: u64,
    max_timestamp: Option<TimestampOffset>,
}

/// One segment: a `.log` file and its two indexes.
/// A read of one segment: the byte range, and the base offset of the first batch after
/// it (the offset the next read starts at).
pub(crate) struct SegmentRange {
    pub(crate) range: FileRange,
    pub(crate) next_offset: i64,
}

pub struct LogSegment {
    base_offset: i64,
    log_path: PathBuf,
    /// Shared with the file ranges reads hand out, which outlive the segment.
    log_file: Arc<File>,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    size: AtomicU64,
    next_offset: AtomicI64,
    created_ms: i64,
    indexing: Mutex<IndexingState>,
    max_timestamp: Mutex<Option<TimestampOffset>>,
    /// Sealed with index entries not yet fsync'ed (see [`LogSegment::flush_data`]).
    indexes_dirty: AtomicBool,
}

impl std::fmt::Debug for LogSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSegment")
            .field("base_offset", &self.base_offset)
            .field("size", &self.size())
            .field("next_offset", &self.next_offset())
            .finish()
    }
}

impl LogSegment {
    /// Creates a new, empty segment (replacing any files of the same name).
    pub(crate) fn create(dir: &Path, base_offset: i64, now_ms: i64) -> Result<LogSegment, LogError> {
        Self::create_named(dir, base_offset, now_ms, false)
    }

    /// Creates an empty segment under the `.cleaned` names, to be filled by compaction
    /// and renamed into place (replacing any earlier `.cleaned` files).
    pub(crate) fn create_cleaned(dir: &Path, base_offset: i64, now_ms: i64) -> Result<LogSegment, LogError> {
        Self::create_named(dir, base_offset, now_ms, true)
    }

    fn create_named(dir: &Path, base_offset: i64, now_ms: i64, cleaned: bool) -> Result<LogSegment, LogError> {
        let segment = Self::open_files(dir, base_offset, now_ms, cleaned)?;
        segment.log_file.set_len(0)?;
        segment.offset_index.reset()?;
        segment.time_index.reset()?;
        Ok(segment)
    }

    /// Opens an existing segment, trusting its files (clean shutdown or below the
    /// recovery point). Falls back to recovery when the files disagree; the whole
    /// segment is durable, so a bad batch there is damage and is skipped exactly (see
    /// [`damage`](crate::damage)), never cut with what follows it. Gaps are accepted
    /// anywhere: a trusted segment is durable as a whole.
    pub(crate) fn load(
        dir: &Path,
        base_offset: i64,
        now_ms: i64,
        index_interval_bytes: u32,
    ) -> Result<LogSegment, LogError> {
        let segment = Self::open_files(dir, base_offset, now_ms, false)?;
        if segment.load_trusted()? {
            return Ok(segment);
        }
        tracing::warn!(base_offset, "segment files inconsistent, recovering");
        drop(segment);
        Ok(Self::open_and_recover(dir, base_offset, now_ms, index_interval_bytes, i64::MAX)?.0)
    }

    /// Opens an existing segment and recovers it (see `LogSegment::recover`).
    /// Batches starting below `recovery_point` were fsynced: damage among them is cut
    /// out exactly and logged as an error; a bad batch at or above it is a torn write
    /// and the file is cut there. Returns the segment and the number of bytes cut
    /// from its tail.
    pub fn open_and_recover(
        dir: &Path,
        base_offset: i64,
        now_ms: i64,
        index_interval_bytes: u32,
        recovery_point: i64,
    ) -> Result<(LogSegment, u64), LogError> {
        let segment = Self::open_files(dir, base_offset, now_ms, false)?;
        if let Some(truncated) = segment.recover_checked(index_interval_bytes, recovery_point, recovery_point)? {
            return Ok((segment, truncated));
        }
        let damage = crate::damage::find_damage(&segment.log_file, base_offset, recovery_point)?;
        if damage.is_empty() {
            // An offset gap above the recovery point, not damage: cut as usual.
            let truncated = segment.recover(index_interval_bytes, recovery_point)?;
            return Ok((segment, truncated));
        }
        drop(segment);
        for stretch in &damage {
            tracing::error!(
                dir = %dir.display(),
                base_offset,
                position = stretch.position,
                first_lost_offset = stretch.first_offset,
                resumes_at = ?stretch.next_offset,
                "damaged data in a durable segment: {stretch}; skipping exactly the damaged bytes (a copy is kept beside the segment)"
            );
        }
        crate::damage::cut_out(dir, base_offset, &damage)?;
        // The cut leaves offset gaps where the damaged batches were.
        let gaps_below = damage
            .iter()
            .map(|d| d.next_offset.map_or(i64::MAX, |next| next.saturating_add(1)))
            .fold(recovery_point, i64::max);
        let segment = Self::open_files(dir, base_offset, now_ms, false)?;
        let truncated = segment.recover(index_interval_bytes, gaps_below)?;
        Ok((segment, truncated))
    }

    fn open_files(dir: &Path, base_offset: i64, now_ms: i64, cleaned: bool) -> Result<LogSegment, LogError> {
        let name = |suffix: &str| {
            let name = segment_file_name(base_offset, suffix);
            dir.join(if cleaned {
                format!("{name}.{CLEANED_FILE_SUFFIX}")
            } else {
                name
            })
        };
        let log_path = name(LOG_FILE_SUFFIX);
        let log_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&log_path)?;
        let offset_index = OffsetIndex::open(&name(OFFSET_INDEX_FILE_SUFFIX), base_offset)?;
        let time_index = TimeIndex::open(&name(TIME_INDEX_FILE_SUFFIX), base_offset)?;
        Ok(LogSegment {
            base_offset,
            log_path,
            log_file: Arc::new(log_file),
            offset_index,
            time_index,
            size: AtomicU64::new(0),
            next_offset: AtomicI64::new(base_offset),
            created_ms: now_ms,
            indexing: Mutex::new(IndexingState::default()),
            max_timestamp: Mutex::new(None),
            indexes_dirty: AtomicBool::new(false),
        })
    }

    /// Trusts the files: the size is the file length, the end offset comes from scanning
    /// headers after the last offset index entry (gaps between batches are accepted,
    /// overlaps are not). Returns false when they disagree.
    fn load_trusted(&self) -> Result<bool, LogError> {
        let file_size = self.log_file.metadata()?.len();
        if file_size > SEGMENT_BYTES_MAX {
            return Ok(false);
        }
        let start = self.offset_index.lookup(i64::MAX);
        if u64::from(start.position) > file_size {
            return Ok(false);
        }
        let mut max_timestamp = self.time_index.last();
        let mut expected = start.offset;
        let mut scanner = Scanner::new(&self.log_file, u64::from(start.position), file_size, SCAN_CHUNK_BYTES);
        while let Some((_, header)) = scanner.next_header()? {
            if header.base_offset < expected
                || header.magic != crate::constants::MAGIC_V2
                || header.last_offset() - self.base_offset > i64::from(u32::MAX)
            {
                return Ok(false);
            }
            if max_timestamp.is_none_or(|max| header.max_timestamp > max.timestamp) {
                max_timestamp = Some(TimestampOffset {
                    timestamp: header.max_timestamp,
                    offset: header.base_offset,
                });
            }
            expected = header.next_offset();
        }
        if scanner.position() != file_size {
            return Ok(false);
        }
        *crate::sync::lock(&self.indexing) = IndexingState {
            bytes_since_index_entry: file_size - u64::from(start.position),
            max_timestamp,
        };
        *crate::sync::lock(&self.max_timestamp) = max_timestamp;
        self.next_offset.store(expected, Ordering::Release);
        self.size.store(file_size, Ordering::Release);
        Ok(true)
    }

    /// Scans the whole file from position 0, checking each batch's length, magic,
    /// CRC (see [`validate_stored`]) and offsets; truncates the file at the first bad
    /// or torn batch and rebuilds both indexes. Returns the number of bytes cut.
    ///
    /// Offset rule: a batch must start above the previous batch's last offset (and at
    /// or above the segment's base offset). A gap (a batch starting beyond the offset
    /// following the previous one) is accepted only when the batch starts below
    /// `gaps_below`: the log passes its recovery point, because compaction rewrites
    /// only segments below a persisted recovery point while data above it is exactly
    /// what appends wrote, densely. `baseOffset` is outside the CRC, so this is what
    /// catches a damaged base offset in an unflushed tail.
    pub(crate) fn recover(&self, index_interval_bytes: u32, gaps_below: i64) -> Result<u64, LogError> {
        let truncated = self.recover_checked(index_interval_bytes, gaps_below, i64::MIN)?;
        Ok(truncated.unwrap_or(0))
    }

    /// [`LogSegment::recover`], except that a bad batch at an offset below
    /// `durable_below` stops it without changing the file and returns `None`: that is
    /// damage to skip, not a tail to cut.
    fn recover_checked(
        &self,
        index_interval_bytes: u32,
        gaps_below: i64,
        durable_below: i64,
    ) -> Result<Option<u64>, LogError> {
        // Rebuilt indexes are not durable until the next full flush.
        self.indexes_dirty.store(true, Ordering::Release);
        let file_size = self.log_file.metadata()?.len();
        self.offset_index.reset()?;
        self.time_index.reset()?;
        let mut state = IndexingState::default();
        let mut expected = self.base_offset;
        // Where the last batch would end had its base offset (outside the CRC) not been
        // damaged: the offset before it plus its record span (inside the CRC).
        let mut honest_next = self.base_offset;
        let mut valid_end = 0u64;
        let mut scanner = Scanner::new(
            &self.log_file,
            0,
            file_size.min(SEGMENT_BYTES_MAX),
            RECOVERY_CHUNK_BYTES,
        );
        while let Some((position, batch)) = scanner.next_batch()? {
            let header = match validate_stored(batch) {
                Ok(header) => header,
                Err(error) => {
                    tracing::warn!(base_offset = self.base_offset, position, %error, "invalid batch during recovery");
                    break;
                }
            };
            let gap_allowed = header.base_offset > expected && header.base_offset < gaps_below;
            if (header.base_offset != expected && !gap_allowed)
                || header.last_offset() - self.base_offset > i64::from(u32::MAX)
            {
                tracing::warn!(
                    base_offset = self.base_offset,
                    position,
                    found = header.base_offset,
                    expected,
                    "offset gap or overlap during recovery"
                );
                break;
            }
            self.index_batch(&mut state, &header, position, batch.len(), index_interval_bytes)?;
            honest_next = expected.saturating_add(i64::from(header.last_offset_delta) + 1);
            expected = header.next_offset();
            valid_end = position + batch.len() as u64;
        }
        if valid_end < file_size && expected.min(honest_next) < durable_below {
            return Ok(None);
        }
        if valid_end < file_size {
            tracing::warn!(
                base_offset = self.base_offset,
                valid_end,
                file_size,
                "truncating segment after recovery"
            );
            self.log_file.set_len(valid_end)?;
        }
        *crate::sync::lock(&self.max_timestamp) = state.max_timestamp;
        *crate::sync::lock(&self.indexing) = state;
        self.next_offset.store(expected, Ordering::Release);
        self.size.store(valid_end, Ordering::Release);
        Ok(Some(file_size - valid_end))
    }

    fn index_batch(
        &self,
        state: &mut IndexingState,
        header: &RecordBatchHeader,
        position: u64,
        batch_size: usize,
        index_interval_bytes: u32,
    ) -> Result<(), LogError> {
        if state
            .max_timestamp
            .is_none_or(|max| header.max_timestamp > max.timestamp)
        {
            state.max_timestamp = Some(TimestampOffset {
                timestamp: header.max_timestamp,
                offset: header.base_offset,
            });
        }
        if position > 0 && state.bytes_since_index_entry >= u64::from(index_interval_bytes) {
            if let Ok(position) = u32::try_from(position) {
                self.offset_index.append(header.base_offset, position)?;
                if let Some(max) = state.max_timestamp {
                    self.time_index.maybe_append(max.timestamp, max.offset)?;
                }
                state.bytes_since_index_entry = 0;
            }
        }
        state.bytes_since_index_entry += batch_size as u64;
        Ok(())
    }

    /// Appends already validated, offset-assigned batches with one write, then
    /// indexes them and publishes the new size. A failed write is cut back off the
    /// file (best effort), so no whole stale batch can linger past `size`.
    pub(crate) fn append(&self, batches: &[u8], index_interval_bytes: u32) -> Result<(), LogError> {
        let parts: Vec<(&[u8], &[u8])> = BatchIter::new(batches)
            .map(|(_, batch)| batch.split_at(BATCH_HEADER_SIZE.min(batch.len())))
            .collect();
        self.append_parts(&parts, index_interval_bytes)
    }

    /// [`LogSegment::append`] for batches given as (header, records) pairs: the log passes
    /// patched copies of the headers with the records still in the producer's request,
    /// and one vectored write stores them without copying the records.
    pub(crate) fn append_parts(&self, parts: &[(&[u8], &[u8])], index_interval_bytes: u32) -> Result<(), LogError> {
        let position = self.size();
        let length: usize = parts.iter().map(|(head, rest)| head.len() + rest.len()).sum();
        let end = position + length as u64;
        if end > SEGMENT_BYTES_MAX {
            return Err(LogError::BatchTooLarge {
                size: end,
                max: SEGMENT_BYTES_MAX,
            });
        }
        let mut slices: Vec<IoSlice<'_>> = parts
            .iter()
            .flat_map(|(head, rest)| [IoSlice::new(head), IoSlice::new(rest)])
            .collect();
        if let Err(error) = write_all_vectored_at(&self.log_file, &mut slices, position) {
            if let Err(trim_error) = self.log_file.set_len(position) {
                tracing::warn!(base_offset = self.base_offset, %trim_error, "could not cut a failed write");
            }
            return Err(error.into());
        }
        let mut state = crate::sync::lock(&self.indexing);
        let mut batch_position = position;
        let mut next_offset = self.next_offset();
        for (head, rest) in parts {
            let header = RecordBatchHeader::parse(head)?;
            let size = head.len() + rest.len();
            self.index_batch(&mut state, &header, batch_position, size, index_interval_bytes)?;
            batch_position += size as u64;
            next_offset = header.next_offset();
        }
        *crate::sync::lock(&self.max_timestamp) = state.max_timestamp;
        drop(state);
        self.next_offset.store(next_offset, Ordering::Release);
        self.size.store(end, Ordering::Release);
        Ok(())
    }

    /// Called when the segment stops being active: records the final time index
    /// entry and cuts any bytes past `size`.
    pub(crate) fn seal(&self) -> Result<(), LogError> {
        // The indexes of a sealed segment become trusted once the recovery point passes
        // it, so its next flush must include them.
        self.indexes_dirty.store(true, Ordering::Release);
        if let Some(max) = *crate::sync::lock(&self.max_timestamp) {
            self.time_index.maybe_append(max.timestamp, max.offset)?;
        }
        self.trim()
    }

    /// Cuts the file to the published size (drops bytes of a failed write).
    pub(crate) fn trim(&self) -> Result<(), LogError> {
        let size = self.size();
        if self.log_file.metadata()?.len() != size {
            self.log_file.set_len(size)?;
        }
        Ok(())
    }

    /// The first batch whose last offset is >= `offset`, with its position.
    pub(crate) fn find_batch(&self, offset: i64) -> Result<Option<(u64, RecordBatchHeader)>, LogError> {
        let size = self.size();
        let start = self.offset_index.lookup(offset);
        let mut scanner = Scanner::new(&self.log_file, u64::from(start.position), size, LOOKUP_CHUNK_BYTES);
        while let Some((position, header)) = scanner.next_header()? {
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
        }
        Ok(None)
    }

    /// Whole batches starting with the one containing `start_offset`, stopping before
    /// a batch whose base offset is >= `max_offset`, at most `max_bytes` except that the
    /// first batch is always whole, as a byte range of the file (nothing is read but
    /// batch headers). `None` when no batch here reaches `start_offset`.
    ///
    /// Where `max_bytes` cuts, the range ends at the last batch boundary below the cut:
    /// the offset index names a boundary at most `index.interval.bytes` before it, and
    /// the headers after that one are read to get closer.
    pub(crate) fn read_range(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Option<SegmentRange>, LogError> {
        Ok(self
            .range_bounds(start_offset, max_bytes, max_offset)?
            .map(|(position, len, next_offset)| SegmentRange {
                range: FileRange::new(self.log_file.clone(), position, len),
                next_offset,
            }))
    }

    /// [`LogSegment::read_range`]'s (position, length, next offset).
    fn range_bounds(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Option<(u64, u64, i64)>, LogError> {
        let size = self.size();
        let Some((position, header)) = self.find_batch(start_offset)? else {
            return Ok(None);
        };
        if header.base_offset >= max_offset {
            return Ok(Some((position, 0, header.base_offset)));
        }
        let first_end = position + self.checked_size(position, &header, size)?;
        // Where the readable part ends: before the first batch at or past `max_offset`.
        let (limit, limit_offset) = if max_offset >= self.next_offset() {
            (size, self.next_offset())
        } else {
            match self.find_batch(max_offset)? {
                Some((at, found)) if found.base_offset >= max_offset => (at, found.base_offset),
                Some((at, found)) => (at + self.checked_size(at, &found, size)?, found.next_offset()),
                None => (size, self.next_offset()),
            }
        };
        let cap = position.saturating_add(max_bytes as u64);
        let (end, next_offset) = if limit <= cap {
            (limit, limit_offset)
        } else if cap <= first_end {
            (first_end, header.next_offset())
        } else {
            self.last_boundary_before(first_end, cap, size)?
        };
        debug_assert!(first_end <= end && end <= limit.max(first_end));
        Ok(Some((position, end - position, next_offset)))
    }

    #[cfg(test)]
    /// [`LogSegment::read_range`], read into memory.
    pub(crate) fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Option<Vec<u8>>, LogError> {
        let Some((position, len, _)) = self.range_bounds(start_offset, max_bytes, max_offset)? else {
            return Ok(None);
        };
        let mut buffer = vec![0u8; len as usize];
        self.log_file.read_exact_at(&mut buffer, position)?;
        Ok(Some(buffer))
    }

    /// The batch boundary closest to `cap` (at or below it, at least `from`), and the
    /// base offset of the batch that starts there. One 12-byte read per batch walked
    /// (base offset and length); the offset index skips most of the walk.
    fn last_boundary_before(&self, from: u64, cap: u64, size: u64) -> Result<(u64, i64), LogError> {
        let mut boundary = self
            .offset_index
            .floor_by_position(cap)
            .map_or(from, |entry| u64::from(entry.position).max(from));
        while boundary < size {
            let mut head = [0u8; 12];
            self.log_file.read_exact_at(&mut head, boundary)?;
            let base_offset =
                i64::from_be_bytes([head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7]]);
            let length = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
            let batch_size = u64::try_from(length)
                .ok()
                .filter(|l| *l > 0)
                .map(|l| l + 12)
                .ok_or_else(|| LogError::corrupt("invalid batch length").stored_at(self.log_path.display()))?;
            if boundary + batch_size > cap {
                return Ok((boundary, base_offset));
            }
            boundary += batch_size;
        }
        Ok((boundary, self.next_offset()))
    }

    /// A batch's size, checked to lie inside the segment.
    fn checked_size(&self, position: u64, header: &RecordBatchHeader, size: u64) -> Result<u64, LogError> {
        header
            .total_size()
            .map(|s| s as u64)
            .filter(|s| position + s <= size)
            .ok_or_else(|| LogError::corrupt("invalid batch length").stored_at(self.log_path.display()))
    }

    /// The first record with timestamp >= `timestamp_ms` and offset >= `min_offset`.
    pub(crate) fn find_offset_for_timestamp(
        &self,
        timestamp_ms: i64,
        min_offset: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let size = self.size();
        let from_time = self
            .time_index
            .lookup(timestamp_ms)
            .map_or(self.base_offset, |entry| entry.offset);
        let start = self.offset_index.lookup(from_time.max(min_offset));
        let mut scanner = Scanner::new(&self.log_file, u64::from(start.position), size, SCAN_CHUNK_BYTES);
        while let Some((position, header)) = scanner.next_header()? {
            if header.last_offset() < min_offset || header.max_timestamp < timestamp_ms {
                continue;
            }
            let batch = self.read_batch(position, &header)?;
            let found = find_first_record_at_or_after(&batch, timestamp_ms, min_offset)
                .map_err(|error| error.stored_at(self.log_path.display()))?;
            if let Some(found) = found {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Reads the whole batch whose header is at `position`.
    pub(crate) fn read_batch(&self, position: u64, header: &RecordBatchHeader) -> Result<Vec<u8>, LogError> {
        let total = header
            .total_size()
            .ok_or_else(|| LogError::corrupt("invalid batch length").stored_at(self.log_path.display()))?;
        let mut batch = vec![0u8; total];
        self.log_file.read_exact_at(&mut batch, position)?;
        Ok(batch)
    }

    /// Removes batches from the one containing `offset` onwards; rebuilds the indexes.
    pub(crate) fn truncate_to(&self, offset: i64, index_interval_bytes: u32) -> Result<(), LogError> {
        let Some((position, _)) = self.find_batch(offset)? else {
            return Ok(());
        };
        self.size.store(position, Ordering::Release);
        self.log_file.set_len(position)?;
        self.recover(index_interval_bytes, i64::MAX)?;
        Ok(())
    }

    /// Calls `visit` with the header of every whole batch below `size`, in order,
    /// reading headers only.
    pub(crate) fn for_each_header(&self, mut visit: impl FnMut(&RecordBatchHeader)) -> Result<(), LogError> {
        let mut scanner = Scanner::new(&self.log_file, 0, self.size(), SCAN_CHUNK_BYTES);
        while let Some((_, header)) = scanner.next_header()? {
            visit(&header);
        }
        Ok(())
    }

    /// Calls `visit` with the position and bytes of every whole batch below `size`, in
    /// order, until it returns `false` (batches are not validated again; they were when
    /// written or recovered).
    pub(crate) fn for_each_batch(
        &self,
        mut visit: impl FnMut(u64, &[u8]) -> Result<bool, LogError>,
    ) -> Result<(), LogError> {
        let mut scanner = Scanner::new(&self.log_file, 0, self.size(), RECOVERY_CHUNK_BYTES);
        while let Some((position, batch)) = scanner.next_batch()? {
            if !visit(position, batch)? {
                break;
            }
        }
        Ok(())
    }

    /// fdatasync of the log file and both indexes.
    pub fn flush(&self) -> Result<(), LogError> {
        let dirty = self.indexes_dirty.swap(false, Ordering::AcqRel);
        let result = (|| {
            self.log_file.sync_data()?;
            self.offset_index.sync()?;
            self.time_index.sync()
        })();
        if result.is_err() && dirty {
            self.indexes_dirty.store(true, Ordering::Release);
        }
        result
    }

    /// fdatasync of the log file alone: enough for the active segment, whose indexes
    /// recovery rebuilds from the log after a crash (it is never below the recovery point).
    pub(crate) fn flush_data(&self) -> Result<(), LogError> {
        Ok(self.log_file.sync_data()?)
    }

    /// Whether the segment was sealed since its indexes were last fsync'ed.
    pub(crate) fn indexes_dirty(&self) -> bool {
        self.indexes_dirty.load(Ordering::Acquire)
    }

    /// Removes the segment's files. Readers holding the segment keep reading the
    /// unlinked file until they drop it.
    pub(crate) fn delete(&self) -> Result<(), LogError> {
        for path in [
            self.log_path.as_path(),
            self.offset_index.path(),
            self.time_index.path(),
        ] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// First offset of the segment.
    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Offset following the last batch (== base offset when empty).
    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// Bytes of whole batches.
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// When this segment was created or opened, by the log's clock.
    pub(crate) fn created_ms(&self) -> i64 {
        self.created_ms
    }

    /// Largest batch max timestamp and the base offset of the first batch reaching it.
    pub(crate) fn max_timestamp(&self) -> Option<TimestampOffset> {
        *crate::sync::lock(&self.max_timestamp)
    }

    /// Last modification time of the `.log` file in ms since the epoch.
    pub(crate) fn last_modified_ms(&self) -> Result<i64, LogError> {
        let modified = self.log_file.metadata()?.modified()?;
        Ok(modified
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0))
    }

    #[cfg(test)]
    /// Path of the `.log` file.
    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }
}

/// Writes every slice at `position` (the file cursor is used only by the segment's one
/// writer; readers use positional reads).
fn write_all_vectored_at(file: &File, mut slices: &mut [IoSlice<'_>], position: u64) -> std::io::Result<()> {
    let mut file = file;
    file.seek(SeekFrom::Start(position))?;
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(std::io::Error::new(ErrorKind::WriteZero, "log file accepted no bytes")),
            Ok(written) => IoSlice::advance_slices(&mut slices, written),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
