//! `LogError`: everything the storage engine reports to its callers.
//!
//! Variants are distinct so the broker can map each to its own Kafka error code
//! (`CORRUPT_MESSAGE`, `INVALID_RECORD`, `OFFSET_OUT_OF_RANGE`, `MESSAGE_TOO_LARGE`, ...).
//!
//! Two kinds of broken batch are told apart: a batch offered to the log that fails
//! validation is invalid input ([`LogError::is_invalid_input`]: `CorruptBatch`,
//! `InvalidMagic`, `CrcMismatch`, `RecordCountMismatch`, `UnsupportedCompression`,
//! `EmptyAppend`; Kafka's CORRUPT_MESSAGE), while stored data that fails the same checks
//! when read back is damage on disk, reported as [`LogError::CorruptStorage`] wrapping
//! the check that failed (Kafka's KAFKA_STORAGE_ERROR).

/// An error from the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The operating system reported an I/O failure.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),

    /// Stored data failed its checks when read back (CRC, framing, record encoding),
    /// or the segments of a directory contradict each other: damage on disk, not bad
    /// input. `source` is the check that failed.
    #[error("corrupt stored data in {location}: {source}")]
    CorruptStorage {
        /// The file or directory holding the data.
        location: String,
        /// What was wrong with it.
        #[source]
        source: Box<LogError>,
    },

    /// A follower's append does not continue the log: its batches must start at the
    /// log end offset and their offsets must be contiguous.
    #[error("replicated batches do not continue the log: {reason}")]
    NonContiguousReplication {
        /// Which offsets disagreed.
        reason: String,
    },

    /// A batch is structurally broken: truncated, bad length, undecodable records.
    #[error("corrupt record batch: {reason}")]
    CorruptBatch {
        /// What was wrong.
        reason: String,
    },

    /// The batch's magic byte is not 2.
    #[error("unsupported record batch magic {0}")]
    InvalidMagic(i8),

    /// The stored CRC-32C does not match the batch contents.
    #[error("record batch crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// The CRC in the header.
        stored: u32,
        /// The CRC computed over `attributes..end`.
        computed: u32,
    },

    /// A batch (or one append) is larger than the limit.
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes")]
    BatchTooLarge {
        /// Size offered.
        size: u64,
        /// Limit applied.
        max: u64,
    },

    /// `recordCount` and `lastOffsetDelta` disagree, or the count is not positive.
    #[error("record count {record_count} inconsistent with last offset delta {last_offset_delta}")]
    RecordCountMismatch {
        /// `recordCount` from the header.
        record_count: i32,
        /// `lastOffsetDelta` from the header.
        last_offset_delta: i32,
    },

    /// The batch uses a compression codec this engine does not know.
    #[error("unsupported compression codec {0}")]
    UnsupportedCompression(u8),

    /// An append carried no batches.
    #[error("append contains no record batches")]
    EmptyAppend,

    /// The requested offset is outside `[log start offset, log end offset]`.
    #[error("offset {offset} out of range [{start}, {end}]")]
    OffsetOutOfRange {
        /// Offset asked for.
        offset: i64,
        /// Log start offset at the time.
        start: i64,
        /// Log end offset at the time.
        end: i64,
    },

    /// The log was closed; it accepts no more writes.
    #[error("log is closed")]
    Closed,

    /// Offsets of an append would not fit in the log (i64 overflow).
    #[error("offset overflow")]
    OffsetOverflow,
}

impl LogError {
    /// Shorthand for [`LogError::CorruptBatch`].
    pub fn corrupt(reason: impl Into<String>) -> LogError {
        LogError::CorruptBatch { reason: reason.into() }
    }

    /// Whether this is a batch offered to the log that failed validation (the
    /// producer's fault: Kafka's CORRUPT_MESSAGE).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            LogError::CorruptBatch { .. }
                | LogError::InvalidMagic(_)
                | LogError::CrcMismatch { .. }
                | LogError::RecordCountMismatch { .. }
                | LogError::UnsupportedCompression(_)
                | LogError::EmptyAppend
        )
    }

    /// Whether stored data is damaged (Kafka's KAFKA_STORAGE_ERROR).
    pub fn is_corrupt_storage(&self) -> bool {
        matches!(self, LogError::CorruptStorage { .. })
    }

    /// This error, found in data read back from `location`: a failed batch check
    /// becomes [`LogError::CorruptStorage`]; anything else (I/O, ...) is kept.
    pub(crate) fn stored_at(self, location: impl std::fmt::Display) -> LogError {
        if self.is_invalid_input() || matches!(self, LogError::BatchTooLarge { .. }) {
            LogError::CorruptStorage {
                location: location.to_string(),
                source: Box::new(self),
            }
        } else {
            self
        }
    }

    /// Whether the file system is out of space (or quota).
    pub fn is_out_of_space(&self) -> bool {
        matches!(self, LogError::Io(e) if is_out_of_space(e))
    }
}

/// Whether an I/O error means the file system is out of space (or quota).
pub fn is_out_of_space(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_checks_on_stored_data_are_storage_corruption() {
        let input = LogError::CrcMismatch { stored: 1, computed: 2 };
        assert!(input.is_invalid_input() && !input.is_corrupt_storage());
        let stored = input.stored_at("/data/t-0/00000000000000000000.log");
        assert!(stored.is_corrupt_storage() && !stored.is_invalid_input());
        assert!(stored.to_string().contains("00000000000000000000.log"), "{stored}");
        assert!(std::error::Error::source(&stored).is_some());
        let io = LogError::Io(std::io::Error::other("disk gone")).stored_at("x");
        assert!(matches!(io, LogError::Io(_)), "I/O errors stay I/O errors");
        assert!(std::error::Error::source(&io).is_some(), "io::Error stays the source");
    }
}
