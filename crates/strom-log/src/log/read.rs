//! Reading: whole stored batches from an offset, and lookups by timestamp.

use std::sync::Arc;

use bytes::Bytes;

use super::{Log, RangeRead, ReadResult};
use crate::error::LogError;
use crate::segment::LogSegment;
use crate::time_index::TimestampOffset;

impl Log {
    /// Stored batches beginning with the batch containing `offset`, whole batches only,
    /// stopping before any batch whose base offset is >= `max_offset`, at most
    /// `max_bytes` except that the first batch is always whole (KIP-74).
    /// `offset` outside `[log start, log end]` is `OffsetOutOfRange`; at the log end the
    /// result is empty. Read into memory: see [`Log::read_range`] for the same read as
    /// a file range.
    pub fn read(&self, offset: i64, max_bytes: usize, max_offset: i64) -> Result<ReadResult, LogError> {
        let read = self.read_range(offset, max_bytes, max_offset)?;
        let records = match &read.range {
            Some(range) => range.read()?,
            None => Bytes::new(),
        };
        Ok(ReadResult {
            records,
            log_start_offset: read.log_start_offset,
            log_end_offset: read.log_end_offset,
        })
    }

    /// [`Log::read`] without reading: the batches as a byte range of one segment file
    /// (a read never spans segments; the next one continues at `next_offset`).
    pub fn read_range(&self, offset: i64, max_bytes: usize, max_offset: i64) -> Result<RangeRead, LogError> {
        let log_end_offset = self.log_end_offset();
        let log_start_offset = self.log_start_offset();
        let result = |range, next_offset| RangeRead {
            range,
            next_offset,
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
            return Ok(result(None, offset));
        }
        let segments = self.snapshot();
        let first = segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1);
        for segment in segments.get(first..).unwrap_or(&[]) {
            if let Some(read) = segment.read_range(offset, max_bytes, max_offset.min(log_end_offset))? {
                let range = (!read.range.is_empty()).then_some(read.range);
                return Ok(result(range, read.next_offset));
            }
        }
        Ok(result(None, offset))
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
        let mut best: Option<(Arc<LogSegment>, TimestampOffset)> = None;
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
}
