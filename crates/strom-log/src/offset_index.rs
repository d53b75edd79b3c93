//! `OffsetIndex`: maps offsets to file positions within one segment.
//!
//! File `NNNNNNNNNNNNNNNNNNNN.index` (20-digit base offset). Sparse: one entry per
//! `index.interval.bytes` of log appended, pointing at the start of a batch. Each
//! entry is 8 bytes, big-endian: relative offset u32 (batch base offset − segment base
//! offset), file position u32. Entries are strictly increasing in both fields. The
//! first batch of a segment (position 0) is implicit. No checksum: rebuilt from the
//! log file after an unclean shutdown.

use std::path::Path;

use crate::constants::OFFSET_INDEX_ENTRY_SIZE;
use crate::error::LogError;
use crate::index_file::{IndexEntry, IndexFile};

/// An absolute offset and the file position of the batch that starts there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetPosition {
    /// Absolute offset (a batch base offset).
    pub offset: i64,
    /// Byte position of that batch in the segment's log file.
    pub position: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    relative_offset: u32,
    position: u32,
}

impl IndexEntry for Entry {
    const SIZE: usize = OFFSET_INDEX_ENTRY_SIZE;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Option<Entry> {
        Some(Entry {
            relative_offset: u32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?),
            position: u32::from_be_bytes(bytes.get(4..8)?.try_into().ok()?),
        })
    }
}

/// The sparse offset index of one segment.
pub struct OffsetIndex {
    base_offset: i64,
    file: IndexFile<Entry>,
}

impl OffsetIndex {
    /// Opens or creates the index at `path`, loading entries up to the first
    /// non-increasing one.
    pub fn open(path: &Path, base_offset: i64) -> Result<OffsetIndex, LogError> {
        let file = IndexFile::open(path, |previous: Option<&Entry>, next| match previous {
            None => next.position > 0,
            Some(previous) => next.relative_offset > previous.relative_offset && next.position > previous.position,
        })?;
        Ok(OffsetIndex { base_offset, file })
    }

    /// Records that the batch starting at `offset` lies at `position`. Ignored unless
    /// both are beyond the last entry and `offset` is representable.
    pub fn append(&self, offset: i64, position: u32) -> Result<(), LogError> {
        let Some(relative_offset) = offset
            .checked_sub(self.base_offset)
            .and_then(|relative| u32::try_from(relative).ok())
        else {
            return Ok(());
        };
        if let Some(last) = self.file.last() {
            if relative_offset <= last.relative_offset || position <= last.position {
                return Ok(());
            }
        } else if position == 0 {
            return Ok(());
        }
        self.file.push(Entry {
            relative_offset,
            position,
        })
    }

    /// The greatest entry at or below `offset`, or the segment start.
    pub fn lookup(&self, offset: i64) -> OffsetPosition {
        let start = OffsetPosition {
            offset: self.base_offset,
            position: 0,
        };
        let Some(relative) = offset.checked_sub(self.base_offset) else {
            return start;
        };
        if relative < 0 {
            return start;
        }
        let relative = u32::try_from(relative).unwrap_or(u32::MAX);
        self.file.with_entries(|entries| {
            let count = entries.partition_point(|e| e.relative_offset <= relative);
            match count.checked_sub(1).and_then(|i| entries.get(i)) {
                Some(entry) => self.absolute(entry),
                None => start,
            }
        })
    }

    /// The last entry at or below file position `position`, if any (its position is the
    /// start of a batch: a boundary a read may stop at).
    pub fn floor_by_position(&self, position: u64) -> Option<OffsetPosition> {
        self.file.with_entries(|entries| {
            let count = entries.partition_point(|e| u64::from(e.position) <= position);
            count
                .checked_sub(1)
                .and_then(|i| entries.get(i))
                .map(|entry| self.absolute(entry))
        })
    }

    #[cfg(test)]
    /// The last entry, if any.
    pub fn last(&self) -> Option<OffsetPosition> {
        self.file.last().map(|entry| self.absolute(&entry))
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
    /// Removes every entry at or above `offset`.
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

    fn absolute(&self, entry: &Entry) -> OffsetPosition {
        OffsetPosition {
            offset: self.base_offset + i64::from(entry.relative_offset),
            position: entry.position,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_greatest_entry_at_or_below() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.index");
        let index = OffsetIndex::open(&path, 100).unwrap();
        assert_eq!(index.lookup(150).position, 0);
        index.append(110, 4000).unwrap();
        index.append(120, 8000).unwrap();
        index.append(115, 9000).unwrap(); // not increasing: ignored
        index.append(130, 12000).unwrap();
        assert_eq!(index.len(), 3);
        assert_eq!(
            index.lookup(99),
            OffsetPosition {
                offset: 100,
                position: 0
            }
        );
        assert_eq!(index.lookup(109).position, 0);
        assert_eq!(index.lookup(110).position, 4000);
        assert_eq!(index.lookup(125).position, 8000);
        assert_eq!(index.lookup(i64::MAX).position, 12000);
        drop(index);

        let index = OffsetIndex::open(&path, 100).unwrap();
        assert_eq!(index.len(), 3);
        index.truncate_to(120).unwrap();
        assert_eq!(index.last().unwrap().offset, 110);
        drop(index);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
    }

    #[test]
    fn load_ignores_torn_and_garbage_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        let mut bytes = Vec::new();
        for (relative, position) in [(1u32, 10u32), (2, 20), (1, 30)] {
            bytes.extend_from_slice(&relative.to_be_bytes());
            bytes.extend_from_slice(&position.to_be_bytes());
        }
        bytes.extend_from_slice(&[1, 2, 3]);
        std::fs::write(&path, &bytes).unwrap();
        let index = OffsetIndex::open(&path, 0).unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 16);
    }
}
