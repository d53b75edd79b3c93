//! `LogError`: everything the storage engine reports to its callers.
//!
//! Variants are distinct so the broker can map each to its own Kafka error code
//! (`CORRUPT_MESSAGE`, `INVALID_RECORD`, `OFFSET_OUT_OF_RANGE`, `MESSAGE_TOO_LARGE`, ...).

/// An error from the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The operating system reported an I/O failure.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),

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
