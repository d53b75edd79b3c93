//! `TimeIndex`: maps timestamps to offsets within one segment.
//!
//! File `NNNNNNNNNNNNNNNNNNNN.timeindex`. Each entry is 12 bytes, big-endian:
//! timestamp i64, relative offset u32. An entry `(T, O)` means: the largest batch
//! `maxTimestamp` among all batches up to and including the batch at `O` is `T`, and
//! the batch at `O` is the first to reach it — so every batch before `O` has
//! `maxTimestamp < T`. Entries are strictly increasing in both fields. Sparse: at most
//! one entry per `index.interval.bytes`, only when the running maximum grew, plus a
//! final entry when the segment stops being active. No checksum: rebuilt from the log
//! file after an unclean shutdown.

use std::path::Path;

use crate::constants::TIME_INDEX_ENTRY_SIZE;
use crate::error::LogError;
use crate::index_file::{IndexEntry, IndexFile};

/// A timestamp and the offset of the batch where the running maximum first reached it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampOffset {
    /// Timestamp in milliseconds.
    pub timestamp: i64,
    /// Absolute batch base offset.
    pub offset: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    timestamp: i64,
    relative_offset: u32,
}

impl IndexEntry for Entry {
    const SIZE: usize = TIME_INDEX_ENTRY_SIZE;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Option<Entry> {
        Some(Entry {
            timestamp: i64::from_be_bytes(bytes.get(0..8)?.try_into().ok()?),
            relative_offset: u32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?),
        })
    }
}

/// The sparse time index of one segment.
pub struct TimeIndex {
    base_offset: i64,
    file: IndexFile<Entry>,
}

impl TimeIndex {
    /// Opens or creates the index at `path`, loading entries up to the first
    /// non-increasing one.
    pub fn open(path: &Path, base_offset: i64) -> Result<TimeIndex, LogError> {
        let file = IndexFile::open(path, |previous: Option<&Entry>, next| match previous {
            None => true,
            Some(previous) => next.timestamp > previous.timestamp && next.relative_offset >= previous.relative_offset,
        })?;
        Ok(TimeIndex { base_offset, file })
    }

    /// Adds `(timestamp, offset)` if `timestamp` exceeds the last entry's.
    pub fn maybe_append(&self, timestamp: i64, offset: i64) -> Result<(), LogError> {
        let Some(relative_offset) = offset
            .checked_sub(self.base_offset)
            .and_then(|relative| u32::try_from(relative).ok())
        else {
            return Ok(());
        };
        if let Some(last) = self.file.last() {
            if timestamp <= last.timestamp || relative_offset < last.relative_offset {
                return Ok(());
            }
        }
        self.file.push(Entry {
            timestamp,
            relative_offset,
        })
    }

    /// Where to start scanning for the first batch with `maxTimestamp >= timestamp`:
    /// the greatest entry with entry timestamp <= `timestamp`, or `None` (scan from the
    /// segment start).
    pub fn lookup(&self, timestamp: i64) -> Option<TimestampOffset> {
        self.file.with_entries(|entries| {
            let count = entries.partition_point(|e| e.timestamp <= timestamp);
            count
                .checked_sub(1)
                .and_then(|i| entries.get(i))
                .map(|e| self.absolute(e))
        })
    }

    /// The last entry, if any.
    pub fn last(&self) -> Option<TimestampOffset> {
        self.file.last().map(|e| self.absolute(&e))
    }

    #[cfg(test)]
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.file.len()
    }

    #[cfg(test)]
    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[cfg(test)]
    /// Removes every entry whose offset is at or above `offset`.
    pub fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        let keep = self
            .file
            .with_entries(|entries| entries.partition_point(|e| self.absolute(e).offset < offset));
        self.file.truncate(keep)
    }

    /// Removes every entry.
    pub fn reset(&self) -> Result<(), LogError> {
        self.file.truncate(0)
    }

    /// Makes appended entries durable.
    pub fn sync(&self) -> Result<(), LogError> {
        self.file.sync()
    }

    /// Path of the index file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    fn absolute(&self, entry: &Entry) -> TimestampOffset {
        TimestampOffset {
            timestamp: entry.timestamp,
            offset: self.base_offset + i64::from(entry.relative_offset),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_only_growing_timestamps_and_looks_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000050.timeindex");
        let index = TimeIndex::open(&path, 50).unwrap();
        assert_eq!(index.lookup(1000), None);
        index.maybe_append(100, 50).unwrap();
        index.maybe_append(90, 60).unwrap(); // not growing: ignored
        index.maybe_append(200, 70).unwrap();
        index.maybe_append(300, 80).unwrap();
        assert_eq!(index.len(), 3);
        assert_eq!(index.lookup(99), None);
        assert_eq!(index.lookup(100).unwrap().offset, 50);
        assert_eq!(index.lookup(250).unwrap().offset, 70);
        assert_eq!(index.lookup(i64::MAX).unwrap().offset, 80);
        drop(index);
        let index = TimeIndex::open(&path, 50).unwrap();
        assert_eq!(
            index.last().unwrap(),
            TimestampOffset {
                timestamp: 300,
                offset: 80
            }
        );
        index.truncate_to(70).unwrap();
        assert_eq!(index.len(), 1);
    }
}
