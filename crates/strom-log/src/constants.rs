//! Limits, defaults and on-disk names of the storage engine, kept in one place.
//!
//! Every size read from a file or from a producer is checked against one of these
//! limits before it is used to allocate or to index.

/// Size of the length prefix of a batch: `baseOffset` (i64) + `batchLength` (i32).
pub const BATCH_LOG_OVERHEAD: usize = 12;

/// Size of the fixed Kafka v2 RecordBatch header, `baseOffset` through `recordCount`.
pub const BATCH_HEADER_SIZE: usize = 61;

/// Smallest legal value of the `batchLength` field (the header after the length prefix).
pub const BATCH_LENGTH_MIN: usize = BATCH_HEADER_SIZE - BATCH_LOG_OVERHEAD;

/// The only RecordBatch format this engine stores.
pub const MAGIC_V2: i8 = 2;

/// Largest single batch accepted or read back, in bytes (header included).
/// Topic-level `max.message.bytes` is enforced above this layer and is normally far smaller.
pub const BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Largest number of bytes a compressed batch may expand to when records are decoded
/// (timestamp lookup). Guards against decompression bombs.
pub const DECOMPRESSED_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Largest segment file. Index entries store file positions as u32, and Kafka's
/// `segment.bytes` is an int, so a segment never grows past `i32::MAX` bytes.
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;

/// Smallest `segment.bytes` honoured (Kafka's minimum is 14 bytes; one header is the
/// practical floor).
pub const SEGMENT_BYTES_MIN: u64 = BATCH_HEADER_SIZE as u64;

/// Kafka default `segment.bytes`: 1 GiB.
pub const SEGMENT_BYTES_DEFAULT: u64 = 1024 * 1024 * 1024;

/// Kafka default `segment.ms`: 7 days.
pub const SEGMENT_MS_DEFAULT: i64 = 7 * 24 * 60 * 60 * 1000;

/// Kafka default `retention.ms`: 7 days.
pub const RETENTION_MS_DEFAULT: i64 = 7 * 24 * 60 * 60 * 1000;

/// Kafka default `retention.bytes`: unlimited.
pub const RETENTION_BYTES_DEFAULT: i64 = -1;

/// Kafka default `index.interval.bytes`.
pub const INDEX_INTERVAL_BYTES_DEFAULT: u32 = 4096;

/// Size of one offset index entry: relative offset u32 + file position u32.
pub const OFFSET_INDEX_ENTRY_SIZE: usize = 8;

/// Size of one time index entry: timestamp i64 + relative offset u32.
pub const TIME_INDEX_ENTRY_SIZE: usize = 12;

/// Bytes read per positional read while scanning a segment for batch boundaries.
pub const SCAN_CHUNK_BYTES: usize = 64 * 1024;

/// Bytes read per positional read when a fetch looks up the batch holding an offset: the
/// offset index leaves at most `index.interval.bytes` (4 KiB by default) to walk, so a
/// 64 KiB read (and its zeroed buffer) per fetch would mostly be wasted.
pub const LOOKUP_CHUNK_BYTES: usize = 8 * 1024;

/// Bytes read per positional read during recovery (whole batches are checksummed).
pub const RECOVERY_CHUNK_BYTES: usize = 1024 * 1024;

/// Digits in a segment file name: the base offset, zero padded.
pub const SEGMENT_FILE_NAME_DIGITS: usize = 20;

/// Suffix of a segment's batch file.
pub const LOG_FILE_SUFFIX: &str = "log";
/// Suffix of a segment's offset index.
pub const OFFSET_INDEX_FILE_SUFFIX: &str = "index";
/// Suffix of a segment's time index.
pub const TIME_INDEX_FILE_SUFFIX: &str = "timeindex";
/// Suffix of a file being written before an atomic rename.
pub const TEMPORARY_FILE_SUFFIX: &str = "tmp";
/// Extra suffix of a segment file written by compaction and not yet committed
/// (`NNNNNNNNNNNNNNNNNNNN.log.cleaned`); deleted on open unless a swap record names it.
pub const CLEANED_FILE_SUFFIX: &str = "cleaned";
/// Suffix of a compaction swap record, `NNNNNNNNNNNNNNNNNNNN.swap`, holding the
/// decimal end offset of the segment group its `.cleaned` files replace.
pub const SWAP_FILE_SUFFIX: &str = "swap";

/// Kafka default `delete.retention.ms`: 1 day.
pub const DELETE_RETENTION_MS_DEFAULT: i64 = 24 * 60 * 60 * 1000;
/// Kafka default `min.compaction.lag.ms`: 0.
pub const MIN_COMPACTION_LAG_MS_DEFAULT: i64 = 0;
/// Memory budget of compaction's key → latest offset map. When full, the map covers
/// a prefix of the log and only segments wholly inside it are cleaned in that pass.
pub const COMPACTION_OFFSET_MAP_BYTES_MAX: usize = 128 * 1024 * 1024;
/// Bytes charged per offset map entry on top of the key bytes (hash table slot,
/// vector header, offsets).
pub const COMPACTION_OFFSET_MAP_ENTRY_OVERHEAD_BYTES: usize = 64;
/// Cleaned batches are buffered up to this many bytes before each write.
pub const COMPACTION_WRITE_BUFFER_BYTES: usize = 1024 * 1024;

/// Present in a log directory only between a clean `close` and the next `open`.
pub const CLEAN_SHUTDOWN_FILE_NAME: &str = "clean-shutdown";
/// Offset below which every segment is known to be durable (decimal text).
pub const RECOVERY_POINT_FILE_NAME: &str = "recovery-point";
/// The persisted log start offset (decimal text).
pub const LOG_START_OFFSET_FILE_NAME: &str = "log-start-offset";
/// Kafka's leader epoch checkpoint: each leader epoch and its first offset.
pub const LEADER_EPOCH_CHECKPOINT_FILE_NAME: &str = "leader-epoch-checkpoint";

const _: () = assert!(BATCH_HEADER_SIZE == 61);
const _: () = assert!(BATCH_LENGTH_MIN == 49);
const _: () = assert!(BATCH_BYTES_MAX as u64 <= SEGMENT_BYTES_MAX);
const _: () = assert!(SEGMENT_BYTES_DEFAULT <= SEGMENT_BYTES_MAX);
const _: () = assert!(SEGMENT_BYTES_MAX <= u32::MAX as u64);
const _: () = assert!(SCAN_CHUNK_BYTES >= BATCH_HEADER_SIZE);
const _: () = assert!(LOOKUP_CHUNK_BYTES >= BATCH_HEADER_SIZE);
const _: () = assert!(RECOVERY_CHUNK_BYTES >= SCAN_CHUNK_BYTES);
const _: () = assert!(COMPACTION_WRITE_BUFFER_BYTES as u64 <= SEGMENT_BYTES_MAX);
const _: () = assert!(COMPACTION_OFFSET_MAP_BYTES_MAX > COMPACTION_OFFSET_MAP_ENTRY_OVERHEAD_BYTES);
