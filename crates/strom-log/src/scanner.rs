//! `Scanner`: sequential reads of batch boundaries in a segment file, shared by the
//! segment (loading, recovery, lookups) and the damage finder.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::batch::RecordBatchHeader;
use crate::constants::BATCH_HEADER_SIZE;
use crate::error::LogError;

/// Sequential reader of batch boundaries over `[position, end)` of a segment file,
/// buffering `chunk` bytes per positional read.
pub(crate) struct Scanner<'a> {
    file: &'a File,
    position: u64,
    end: u64,
    chunk: usize,
    buffer: Vec<u8>,
    buffer_start: u64,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(file: &'a File, position: u64, end: u64, chunk: usize) -> Scanner<'a> {
        Scanner {
            file,
            position,
            end,
            chunk,
            buffer: Vec::new(),
            buffer_start: 0,
        }
    }

    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    /// Continues from `position`.
    pub(crate) fn seek(&mut self, position: u64) {
        self.position = position;
    }

    /// Makes `[at, at + length)` available in the buffer; false past `end`.
    pub(crate) fn fill(&mut self, at: u64, length: usize) -> Result<bool, LogError> {
        let wanted_end = at.saturating_add(length as u64);
        if wanted_end > self.end {
            return Ok(false);
        }
        let buffer_end = self.buffer_start + self.buffer.len() as u64;
        if at >= self.buffer_start && wanted_end <= buffer_end {
            return Ok(true);
        }
        let read = (length.max(self.chunk) as u64).min(self.end - at) as usize;
        self.buffer.resize(read, 0);
        self.file.read_exact_at(&mut self.buffer, at)?;
        self.buffer_start = at;
        Ok(true)
    }

    pub(crate) fn slice(&self, at: u64, length: usize) -> Option<&[u8]> {
        let start = usize::try_from(at.checked_sub(self.buffer_start)?).ok()?;
        self.buffer.get(start..start.checked_add(length)?)
    }

    /// Next header and its position; advances past the batch. `None` at the end or at
    /// a structurally impossible header.
    pub(crate) fn next_header(&mut self) -> Result<Option<(u64, RecordBatchHeader)>, LogError> {
        let at = self.position;
        if !self.fill(at, BATCH_HEADER_SIZE)? {
            return Ok(None);
        }
        let Some(header) = self
            .slice(at, BATCH_HEADER_SIZE)
            .and_then(|bytes| RecordBatchHeader::parse(bytes).ok())
        else {
            return Ok(None);
        };
        let Some(total) = header.total_size() else {
            return Ok(None);
        };
        if at + total as u64 > self.end {
            return Ok(None);
        }
        self.position = at + total as u64;
        Ok(Some((at, header)))
    }

    /// Next whole batch (unvalidated) and its position.
    pub(crate) fn next_batch(&mut self) -> Result<Option<(u64, &[u8])>, LogError> {
        let Some((at, header)) = self.next_header()? else {
            return Ok(None);
        };
        let total = header.total_size().unwrap_or(0);
        if !self.fill(at, total)? {
            return Ok(None);
        }
        Ok(self.slice(at, total).map(|batch| (at, batch)))
    }
}
