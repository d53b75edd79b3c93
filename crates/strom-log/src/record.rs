//! Records inside a v2 batch's records section. The produce and fetch paths never
//! decode records; timestamp lookups, compaction and the broker's internal topics do,
//! all through one decoder, [`decode_record_entries`]: [`RecordEntry`] locates a
//! record's bytes, key and value in the decompressed section (compaction copies them),
//! [`decode_batch`] returns owned [`Record`]s in one call.
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

use std::ops::Range;

use bytes::Bytes;

use crate::batch::RecordBatchHeader;
use crate::constants::BATCH_HEADER_SIZE;
use crate::error::LogError;

/// One record header: a UTF-8 key (never null) and a nullable value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Header key. Invalid UTF-8 is replaced with U+FFFD, as Kafka's Java decoder does.
    pub key: String,
    /// Header value, `None` for null.
    pub value: Option<Bytes>,
}

/// One record of a batch, owned: what [`decode_batch`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Absolute offset (batch base offset + offsetDelta).
    pub offset: i64,
    /// Absolute timestamp (batch base timestamp + timestampDelta), or the batch's
    /// max timestamp in a LogAppendTime batch.
    pub timestamp: i64,
    /// The key, `None` for a null key.
    pub key: Option<Bytes>,
    /// The value, `None` for a null value (a tombstone when the key is not null).
    pub value: Option<Bytes>,
    /// The record's headers, in order.
    pub headers: Vec<RecordHeader>,
}

/// One record of a decompressed records section, located in it: compaction copies
/// `bytes` to keep a record. Ranges index the section the record was decoded from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordEntry {
    /// Absolute offset (batch base offset + offsetDelta).
    pub offset: i64,
    /// Absolute timestamp (as in [`Record::timestamp`]).
    pub timestamp: i64,
    /// The whole record, its length varint included: copying these bytes re-frames it.
    pub bytes: Range<usize>,
    /// The key bytes, `None` for a null key.
    pub key: Option<Range<usize>>,
    /// The value bytes, `None` for a null value (a tombstone when the key is not null).
    pub value: Option<Range<usize>>,
    /// The record's headers, in order.
    pub headers: Vec<RecordHeader>,
}

/// Reads a nullable bytes field (varint length, -1 = null) and returns its range.
fn read_nullable_bytes(body: &[u8], at: &mut usize) -> Result<Option<Range<usize>>, LogError> {
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

/// Reads `headerCount` and the headers after it.
fn read_headers(body: &[u8], at: &mut usize) -> Result<Vec<RecordHeader>, LogError> {
    let count = usize::try_from(read_varint(body, at)?).map_err(|_| LogError::corrupt("negative header count"))?;
    // Each header takes at least two bytes: the count cannot size the allocation alone.
    let mut headers = Vec::with_capacity(count.min(body.len().saturating_sub(*at) / 2));
    for _ in 0..count {
        let key = read_nullable_bytes(body, at)?.ok_or_else(|| LogError::corrupt("null record header key"))?;
        let value = read_nullable_bytes(body, at)?;
        headers.push(RecordHeader {
            key: String::from_utf8_lossy(body.get(key).unwrap_or(&[])).into_owned(),
            value: value.map(|range| Bytes::copy_from_slice(body.get(range).unwrap_or(&[]))),
        });
    }
    Ok(headers)
}

/// The one record decoder: every record of a decompressed records section of the
/// batch described by `header`. Fails on any structural error (never panics); the
/// section must hold exactly `recordCount` records, each exactly its length.
#[doc(hidden)]
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
        let headers = read_headers(body, &mut field)?;
        if field != body.len() {
            return Err(LogError::corrupt("bytes after the last record header"));
        }
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
            headers,
        });
        at = end;
    }
    if at != section.len() {
        return Err(LogError::corrupt("bytes after the last record"));
    }
    Ok(out)
}

/// Decompresses the records section of one whole batch.
#[doc(hidden)]
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

/// Decompresses one whole batch and decodes its records, keys, values and headers.
/// Keys and values share one buffer (the decompressed section) rather than being copied.
pub fn decode_batch(batch: &[u8]) -> Result<(RecordBatchHeader, Vec<Record>), LogError> {
    let (header, section) = decompress_records_section(batch)?;
    let entries = decode_record_entries(&header, &section)?;
    let section = Bytes::from(section);
    let slice = |range: Range<usize>| -> Result<Bytes, LogError> {
        if range.end > section.len() || range.start > range.end {
            return Err(LogError::corrupt("record field outside the records section"));
        }
        Ok(section.slice(range))
    };
    let mut records = Vec::with_capacity(entries.len());
    for entry in entries {
        records.push(Record {
            offset: entry.offset,
            timestamp: entry.timestamp,
            key: entry.key.map(slice).transpose()?,
            value: entry.value.map(slice).transpose()?,
            headers: entry.headers,
        });
    }
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
pub(crate) fn read_varint(bytes: &[u8], at: &mut usize) -> Result<i32, LogError> {
    let raw = read_unsigned_varint(bytes, at, 5)?;
    let raw = u32::try_from(raw).map_err(|_| LogError::corrupt("varint overflows i32"))?;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Reads a zigzag varlong (i64).
pub(crate) fn read_varlong(bytes: &[u8], at: &mut usize) -> Result<i64, LogError> {
    let raw = read_unsigned_varint(bytes, at, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// Appends a zigzag varint.
pub(crate) fn write_varint(out: &mut Vec<u8>, value: i32) {
    write_varlong(out, i64::from(value));
}

/// Appends a zigzag varlong.
pub(crate) fn write_varlong(out: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// The first record of `batch` with timestamp >= `timestamp_ms` and offset >=
/// `min_offset`, as `(offset, timestamp)`.
///
/// A LogAppendTime batch answers from its header alone; a CreateTime batch whose
/// `maxTimestamp` is below the target is skipped without decoding. (Public for the fuzz
/// targets.)
#[doc(hidden)]
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
    let (header, section) = decompress_records_section(batch)?;
    Ok(decode_record_entries(&header, &section)?
        .into_iter()
        .find(|r| r.timestamp >= timestamp_ms && r.offset >= min_offset)
        .map(|r| (r.offset, r.timestamp)))
}

#[cfg(test)]
mod tests;
