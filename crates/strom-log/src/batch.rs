//! `RecordBatchHeader`: a read-only view of the Kafka v2 RecordBatch header, plus
//! validation, iteration over concatenated batches and the in-place patches the
//! broker is allowed to make.
//!
//! On-disk and on-wire format (big-endian), 61 bytes followed by the records section:
//!
//! ```text
//! offset  size  field
//!      0     8  baseOffset            (not covered by the CRC)
//!      8     4  batchLength           bytes after this field (not covered by the CRC)
//!     12     4  partitionLeaderEpoch  (not covered by the CRC)
//!     16     1  magic                 always 2
//!     17     4  crc                   CRC-32C of bytes 21..end
//!     21     2  attributes            bits 0-2 codec, bit 3 LogAppendTime,
//!                                     bit 4 transactional, bit 5 control
//!     23     4  lastOffsetDelta
//!     27     8  baseTimestamp
//!     35     8  maxTimestamp
//!     43     8  producerId
//!     51     2  producerEpoch
//!     53     4  baseSequence
//!     57     4  recordCount
//!     61     …  records (compressed as a whole when codec != 0)
//! ```
//!
//! Invariants of a valid batch: total size = 12 + batchLength, batchLength >= 49,
//! magic == 2, CRC matches, recordCount > 0 and lastOffsetDelta == recordCount - 1.
//! A batch rewritten by compaction keeps its offset range (`baseOffset`,
//! `lastOffsetDelta`) but may hold fewer records: stored batches are checked with
//! [`validate_stored`], which accepts 0 < recordCount <= lastOffsetDelta + 1.
//! Nothing here panics on any input.

use crate::compression::Compression;
use crate::constants::{BATCH_BYTES_MAX, BATCH_HEADER_SIZE, BATCH_LENGTH_MIN, BATCH_LOG_OVERHEAD, MAGIC_V2};
use crate::error::LogError;

const BASE_OFFSET_OFFSET: usize = 0;
const BATCH_LENGTH_OFFSET: usize = 8;
const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const BASE_TIMESTAMP_OFFSET: usize = 27;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const PRODUCER_ID_OFFSET: usize = 43;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const BASE_SEQUENCE_OFFSET: usize = 53;
const RECORD_COUNT_OFFSET: usize = 57;

const COMPRESSION_CODEC_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_MASK: i16 = 0x08;
const TRANSACTIONAL_FLAG_MASK: i16 = 0x10;
const CONTROL_FLAG_MASK: i16 = 0x20;

/// The parsed fixed header of one v2 record batch. A copy: it borrows nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordBatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes following the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch of the partition when the batch was appended.
    pub partition_leader_epoch: i32,
    /// Format version; 2 for every batch this engine accepts.
    pub magic: i8,
    /// CRC-32C of bytes 21..end.
    pub crc: u32,
    /// Codec, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (CreateTime batches).
    pub base_timestamp: i64,
    /// Largest record timestamp, or the log append time for LogAppendTime batches.
    pub max_timestamp: i64,
    /// Idempotent / transactional producer id, -1 if none.
    pub producer_id: i64,
    /// Producer epoch, -1 if none.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 if none.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub record_count: i32,
}

fn read_array<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn read_i64(bytes: &[u8], at: usize) -> Option<i64> {
    read_array(bytes, at).map(i64::from_be_bytes)
}
fn read_i32(bytes: &[u8], at: usize) -> Option<i32> {
    read_array(bytes, at).map(i32::from_be_bytes)
}
fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    read_array(bytes, at).map(u32::from_be_bytes)
}
fn read_i16(bytes: &[u8], at: usize) -> Option<i16> {
    read_array(bytes, at).map(i16::from_be_bytes)
}

fn write_bytes(bytes: &mut [u8], at: usize, value: &[u8]) -> Result<(), LogError> {
    let end = at
        .checked_add(value.len())
        .ok_or_else(|| LogError::corrupt("field position overflow"))?;
    let slot = bytes
        .get_mut(at..end)
        .ok_or_else(|| LogError::corrupt("batch shorter than its header"))?;
    slot.copy_from_slice(value);
    Ok(())
}

impl RecordBatchHeader {
    /// Parses the 61-byte header at the start of `bytes`. Checks nothing but length.
    pub fn parse(bytes: &[u8]) -> Result<RecordBatchHeader, LogError> {
        Self::parse_opt(bytes)
            .ok_or_else(|| LogError::corrupt(format!("{} bytes is shorter than a batch header", bytes.len())))
    }

    fn parse_opt(b: &[u8]) -> Option<RecordBatchHeader> {
        if b.len() < BATCH_HEADER_SIZE {
            return None;
        }
        Some(RecordBatchHeader {
            base_offset: read_i64(b, BASE_OFFSET_OFFSET)?,
            batch_length: read_i32(b, BATCH_LENGTH_OFFSET)?,
            partition_leader_epoch: read_i32(b, PARTITION_LEADER_EPOCH_OFFSET)?,
            magic: i8::from_be_bytes(read_array(b, MAGIC_OFFSET)?),
            crc: read_u32(b, CRC_OFFSET)?,
            attributes: read_i16(b, ATTRIBUTES_OFFSET)?,
            last_offset_delta: read_i32(b, LAST_OFFSET_DELTA_OFFSET)?,
            base_timestamp: read_i64(b, BASE_TIMESTAMP_OFFSET)?,
            max_timestamp: read_i64(b, MAX_TIMESTAMP_OFFSET)?,
            producer_id: read_i64(b, PRODUCER_ID_OFFSET)?,
            producer_epoch: read_i16(b, PRODUCER_EPOCH_OFFSET)?,
            base_sequence: read_i32(b, BASE_SEQUENCE_OFFSET)?,
            record_count: read_i32(b, RECORD_COUNT_OFFSET)?,
        })
    }

    /// Total bytes of the batch (length prefix included), or `None` when
    /// `batchLength` is too small to hold a header or exceeds [`BATCH_BYTES_MAX`].
    pub fn total_size(&self) -> Option<usize> {
        let length = usize::try_from(self.batch_length).ok()?;
        if length < BATCH_LENGTH_MIN {
            return None;
        }
        let total = length.checked_add(BATCH_LOG_OVERHEAD)?;
        (total <= BATCH_BYTES_MAX).then_some(total)
    }

    /// Offset of the last record (`base_offset + last_offset_delta`), saturating.
    pub fn last_offset(&self) -> i64 {
        self.base_offset.saturating_add(i64::from(self.last_offset_delta))
    }

    /// The offset following this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// Raw codec bits (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression_codec(&self) -> u8 {
        // The mask keeps the value in 0..=7.
        (self.attributes & COMPRESSION_CODEC_MASK) as u8
    }

    /// The codec, or `UnsupportedCompression`.
    pub fn compression(&self) -> Result<Compression, LogError> {
        Compression::from_codec(self.compression_codec())
    }

    /// True when the broker, not the producer, set the timestamps.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_MASK != 0
    }

    /// True for batches written by a transactional producer.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG_MASK != 0
    }

    /// True for control batches (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG_MASK != 0
    }
}

/// Computes the CRC-32C a batch should carry (over `attributes..end`). Public for the
/// fuzz targets, which build valid batches around fuzzed bytes.
#[doc(hidden)]
pub fn compute_crc(batch: &[u8]) -> Result<u32, LogError> {
    let covered = batch
        .get(ATTRIBUTES_OFFSET..)
        .ok_or_else(|| LogError::corrupt("batch shorter than its header"))?;
    Ok(crc32c::crc32c(covered))
}

/// Validates the batch at the start of `bytes` (which may hold more batches after it)
/// and returns its header. Checks: header present, `batchLength` sane and complete,
/// magic 2, CRC-32C, `recordCount > 0` and `lastOffsetDelta == recordCount - 1`
/// (Kafka rejects an inconsistent offset range with INVALID_RECORD).
pub fn validate(bytes: &[u8]) -> Result<RecordBatchHeader, LogError> {
    validate_with(bytes, true)
}

/// Validates a batch read back from a segment: like [`validate`], except that a
/// batch rewritten by compaction may hold fewer records than its offset range
/// (`0 < recordCount <= lastOffsetDelta + 1`).
pub fn validate_stored(bytes: &[u8]) -> Result<RecordBatchHeader, LogError> {
    validate_with(bytes, false)
}

fn validate_with(bytes: &[u8], dense: bool) -> Result<RecordBatchHeader, LogError> {
    let header = RecordBatchHeader::parse(bytes)?;
    if header.batch_length < 0 || (header.batch_length as usize) < BATCH_LENGTH_MIN {
        return Err(LogError::corrupt(format!(
            "batch length {} is smaller than a header",
            header.batch_length
        )));
    }
    let total = (header.batch_length as usize).saturating_add(BATCH_LOG_OVERHEAD);
    if total > BATCH_BYTES_MAX {
        return Err(LogError::BatchTooLarge {
            size: total as u64,
            max: BATCH_BYTES_MAX as u64,
        });
    }
    let batch = bytes.get(..total).ok_or_else(|| {
        LogError::corrupt(format!(
            "batch length {} exceeds the {} bytes available",
            total,
            bytes.len()
        ))
    })?;
    if header.magic != MAGIC_V2 {
        return Err(LogError::InvalidMagic(header.magic));
    }
    let computed = compute_crc(batch)?;
    if computed != header.crc {
        return Err(LogError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    let span = i64::from(header.last_offset_delta) + 1;
    let count = i64::from(header.record_count);
    if header.record_count <= 0 || header.last_offset_delta < 0 || count > span || (dense && count != span) {
        return Err(LogError::RecordCountMismatch {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Iterates over concatenated batches, yielding each header with the batch's bytes.
///
/// Stops (without error) at the first incomplete or structurally impossible batch,
/// e.g. a torn tail. It does not check CRCs; use [`validate`] for that.
/// [`BatchIter::position`] tells where it stopped.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> BatchIter<'a> {
    /// Starts at the first byte of `bytes`.
    pub fn new(bytes: &'a [u8]) -> BatchIter<'a> {
        BatchIter { bytes, position: 0 }
    }

    /// Byte position of the next batch (after iteration ends: the end of the last whole batch).
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = (RecordBatchHeader, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.bytes.get(self.position..)?;
        let header = RecordBatchHeader::parse_opt(rest)?;
        let total = header.total_size()?;
        let batch = rest.get(..total)?;
        self.position += total;
        Some((header, batch))
    }
}

/// Re-encodes a stored batch with a new records section (already compressed with
/// the batch's codec) holding `record_count` records: the header of `original` is
/// kept — `baseOffset`, `lastOffsetDelta`, `baseTimestamp`, leader epoch, attributes
/// and producer fields — while `batchLength`, `recordCount`, the CRC and, for
/// CreateTime batches, `maxTimestamp` are recomputed. Used only by compaction.
pub(crate) fn rebuild_batch(
    original: &[u8],
    records_section: &[u8],
    record_count: i32,
    max_timestamp: i64,
) -> Result<Vec<u8>, LogError> {
    let header = RecordBatchHeader::parse(original)?;
    let total = BATCH_HEADER_SIZE
        .checked_add(records_section.len())
        .filter(|total| *total <= BATCH_BYTES_MAX)
        .ok_or(LogError::BatchTooLarge {
            size: (BATCH_HEADER_SIZE + records_section.len()) as u64,
            max: BATCH_BYTES_MAX as u64,
        })?;
    if record_count <= 0 || record_count > header.last_offset_delta.saturating_add(1) {
        return Err(LogError::RecordCountMismatch {
            record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(
        original
            .get(..BATCH_HEADER_SIZE)
            .ok_or_else(|| LogError::corrupt("batch shorter than its header"))?,
    );
    out.extend_from_slice(records_section);
    // `total` is at most BATCH_BYTES_MAX, far below i32::MAX.
    let batch_length = (total - BATCH_LOG_OVERHEAD) as i32;
    write_bytes(&mut out, BATCH_LENGTH_OFFSET, &batch_length.to_be_bytes())?;
    write_bytes(&mut out, RECORD_COUNT_OFFSET, &record_count.to_be_bytes())?;
    if !header.is_log_append_time() {
        write_bytes(&mut out, MAX_TIMESTAMP_OFFSET, &max_timestamp.to_be_bytes())?;
    }
    let crc = compute_crc(&out)?;
    write_bytes(&mut out, CRC_OFFSET, &crc.to_be_bytes())?;
    Ok(out)
}

/// Sets `baseOffset`. The field is outside the CRC, so the batch stays valid.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) -> Result<(), LogError> {
    write_bytes(batch, BASE_OFFSET_OFFSET, &base_offset.to_be_bytes())
}

/// Sets `partitionLeaderEpoch`. The field is outside the CRC.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) -> Result<(), LogError> {
    write_bytes(batch, PARTITION_LEADER_EPOCH_OFFSET, &epoch.to_be_bytes())
}

/// For LogAppendTime topics: sets `maxTimestamp` to `timestamp_ms`, sets the
/// timestamp-type bit and recomputes the CRC. `batch` must be exactly one batch. (The
/// append path patches header copies instead; this whole-batch form is for tests and
/// the fuzz targets.)
#[doc(hidden)]
pub fn set_max_timestamp_log_append_time(batch: &mut [u8], timestamp_ms: i64) -> Result<(), LogError> {
    if batch.len() < BATCH_HEADER_SIZE {
        return Err(LogError::corrupt("batch shorter than its header"));
    }
    let (head, rest) = batch.split_at_mut(BATCH_HEADER_SIZE);
    stamp_log_append_time(head, rest, timestamp_ms)
}

/// [`set_max_timestamp_log_append_time`] for a batch kept in two parts: `head`, its first
/// [`BATCH_HEADER_SIZE`] bytes (patched), and `rest`, the records after it (untouched).
pub(crate) fn stamp_log_append_time(head: &mut [u8], rest: &[u8], timestamp_ms: i64) -> Result<(), LogError> {
    let header = RecordBatchHeader::parse(head)?;
    let attributes = header.attributes | TIMESTAMP_TYPE_MASK;
    write_bytes(head, ATTRIBUTES_OFFSET, &attributes.to_be_bytes())?;
    write_bytes(head, MAX_TIMESTAMP_OFFSET, &timestamp_ms.to_be_bytes())?;
    let covered = head
        .get(ATTRIBUTES_OFFSET..)
        .ok_or_else(|| LogError::corrupt("batch shorter than its header"))?;
    let crc = crc32c::crc32c_append(crc32c::crc32c(covered), rest);
    write_bytes(head, CRC_OFFSET, &crc.to_be_bytes())
}

#[cfg(test)]
mod tests;
