//! `Record`: one record inside a v2 batch's records section, decoded only as far as
//! timestamp lookups and compaction need (the produce and fetch paths never decode
//! records). [`RecordEntry`] is the compaction view: where a record's bytes, key and
//! value lie in the decompressed records section.
//!
//! Format of each record (varints are zigzag-encoded, as in protobuf):
//!
//! ```text
//! length          varint   bytes following this field
//! attributes      int8     unused
//! timestampDelta  varlong  relative to the batch's baseTimestamp
//! offsetDelta     varint   relative to the batch's baseOffset
//! keyLength       varint   -1 = null
//! key             bytes
//! valueLength     varint   -1 = null
//! value           bytes
//! headerCount     varint
//! headers         (keyLength varint, key, valueLength varint, value)*
//! ```

use crate::batch::RecordBatchHeader;
use crate::constants::BATCH_HEADER_SIZE;
use crate::error::LogError;

/// The parts of a record that offset and timestamp lookups use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Absolute offset (batch base offset + offsetDelta).
    pub offset: i64,
    /// Absolute timestamp (batch base timestamp + timestampDelta), or the batch's
    /// max timestamp in a LogAppendTime batch.
    pub timestamp: i64,
}

/// One record of a decompressed records section, as compaction sees it. Ranges index
/// the section the record was decoded from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordEntry {
    /// Absolute offset (batch base offset + offsetDelta).
    pub offset: i64,
    /// Absolute timestamp (as in [`Record::timestamp`]).
    pub timestamp: i64,
    /// The whole record, its length varint included: copying these bytes re-frames it.
    pub bytes: std::ops::Range<usize>,
    /// The key bytes, `None` for a null key.
    pub key: Option<std::ops::Range<usize>>,
    /// The value bytes, `None` for a null value (a tombstone when the key is not null).
    pub value: Option<std::ops::Range<usize>>,
}

/// Reads a nullable bytes field (varint length, -1 = null) and returns its range.
fn read_nullable_bytes(body: &[u8], at: &mut usize) -> Result<Option<std::ops::Range<usize>>, LogError> {
    let length = read_varint(body, at)?;
    if length < 0 {
        return Ok(None);
    }
    let start = *at;
    let end = start
        .checked_add(length as usize)
        .filter(|end| *end <= body.len())
        .ok_or_else(|| LogError::corrupt("record field extends past the record"))?;
    *at = end;
    Ok(Some(start..end))
}

/// Decodes every record of a decompressed records section of the batch described by
/// `header`. Fails on any structural error (never panics); the section must hold
/// exactly `recordCount` records.
pub fn decode_record_entries(header: &RecordBatchHeader, section: &[u8]) -> Result<Vec<RecordEntry>, LogError> {
    let count = usize::try_from(header.record_count).map_err(|_| LogError::corrupt("negative record count"))?;
    let mut out = Vec::with_capacity(count.min(section.len()));
    let mut at = 0usize;
    for _ in 0..count {
        let record_start = at;
        let length =
            usize::try_from(read_varint(section, &mut at)?).map_err(|_| LogError::corrupt("negative record length"))?;
        let body_start = at;
        let end = at
            .checked_add(length)
            .filter(|end| *end <= section.len())
            .ok_or_else(|| LogError::corrupt("record extends past the batch"))?;
        let body = section.get(body_start..end).unwrap_or(&[]);
        let mut field = 1usize; // skip attributes
        let timestamp_delta = read_varlong(body, &mut field)?;
        let offset_delta = read_varint(body, &mut field)?;
        let key = read_nullable_bytes(body, &mut field)?;
        let value = read_nullable_bytes(body, &mut field)?;
        let timestamp = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp.wrapping_add(timestamp_delta)
        };
        out.push(RecordEntry {
            offset: header.base_offset.saturating_add(i64::from(offset_delta)),
            timestamp,
            bytes: record_start..end,
            key: key.map(|range| body_start + range.start..body_start + range.end),
            value: value.map(|range| body_start + range.start..body_start + range.end),
        });
        at = end;
    }
    if at != section.len() {
        return Err(LogError::corrupt("bytes after the last record"));
    }
    Ok(out)
}

/// Decompresses the records section of one whole batch.
pub fn decompress_records_section(batch: &[u8]) -> Result<(RecordBatchHeader, Vec<u8>), LogError> {
    let header = RecordBatchHeader::parse(batch)?;
    let total = header
        .total_size()
        .ok_or_else(|| LogError::corrupt("invalid batch length"))?;
    let section = batch
        .get(BATCH_HEADER_SIZE..total)
        .ok_or_else(|| LogError::corrupt("batch shorter than its length"))?;
    let records = header.compression()?.decompress(section)?;
    Ok((header, records))
}

/// Reads an unsigned LEB128 value of at most `max_bytes` bytes from `bytes[*at..]`.
fn read_unsigned_varint(bytes: &[u8], at: &mut usize, max_bytes: u32) -> Result<u64, LogError> {
    let mut value: u64 = 0;
    for index in 0..max_bytes {
        let byte = *bytes.get(*at).ok_or_else(|| LogError::corrupt("truncated varint"))?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(LogError::corrupt("varint too long"))
}

/// Reads a zigzag varint (i32).
pub fn read_varint(bytes: &[u8], at: &mut usize) -> Result<i32, LogError> {
    let raw = read_unsigned_varint(bytes, at, 5)?;
    let raw = u32::try_from(raw).map_err(|_| LogError::corrupt("varint overflows i32"))?;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Reads a zigzag varlong (i64).
pub fn read_varlong(bytes: &[u8], at: &mut usize) -> Result<i64, LogError> {
    let raw = read_unsigned_varint(bytes, at, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// Appends a zigzag varint.
pub fn write_varint(out: &mut Vec<u8>, value: i32) {
    write_varlong(out, i64::from(value));
}

/// Appends a zigzag varlong.
pub fn write_varlong(out: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// Decodes the records of one whole batch (decompressing if needed).
pub fn decode_records(batch: &[u8]) -> Result<Vec<Record>, LogError> {
    let header = RecordBatchHeader::parse(batch)?;
    let total = header
        .total_size()
        .ok_or_else(|| LogError::corrupt("invalid batch length"))?;
    let section = batch
        .get(BATCH_HEADER_SIZE..total)
        .ok_or_else(|| LogError::corrupt("batch shorter than its length"))?;
    let records = header.compression()?.decompress(section)?;
    let count = usize::try_from(header.record_count).map_err(|_| LogError::corrupt("negative record count"))?;
    let mut out = Vec::with_capacity(count.min(records.len()));
    let mut at = 0usize;
    for _ in 0..count {
        let length = usize::try_from(read_varint(&records, &mut at)?)
            .map_err(|_| LogError::corrupt("negative record length"))?;
        let end = at
            .checked_add(length)
            .filter(|end| *end <= records.len())
            .ok_or_else(|| LogError::corrupt("record extends past the batch"))?;
        let body = records.get(at..end).unwrap_or(&[]);
        let mut field = 1usize; // skip attributes
        let timestamp_delta = read_varlong(body, &mut field)?;
        let offset_delta = read_varint(body, &mut field)?;
        let timestamp = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp.wrapping_add(timestamp_delta)
        };
        out.push(Record {
            offset: header.base_offset.saturating_add(i64::from(offset_delta)),
            timestamp,
        });
        at = end;
    }
    Ok(out)
}

/// The first record of `batch` with timestamp >= `timestamp_ms` and offset >=
/// `min_offset`, as `(offset, timestamp)`.
///
/// A LogAppendTime batch answers from its header alone; a CreateTime batch whose
/// `maxTimestamp` is below the target is skipped without decoding.
pub fn find_first_record_at_or_after(
    batch: &[u8],
    timestamp_ms: i64,
    min_offset: i64,
) -> Result<Option<(i64, i64)>, LogError> {
    let header = RecordBatchHeader::parse(batch)?;
    if header.max_timestamp < timestamp_ms || header.last_offset() < min_offset {
        return Ok(None);
    }
    if header.is_log_append_time() {
        return Ok(Some((header.base_offset.max(min_offset), header.max_timestamp)));
    }
    Ok(decode_records(batch)?
        .into_iter()
        .find(|r| r.timestamp >= timestamp_ms && r.offset >= min_offset)
        .map(|r| (r.offset, r.timestamp)))
}

#[cfg(test)]
mod tests;
