//! `RecordBatchBuilder`: encodes a valid Kafka v2 record batch (see
//! [`batch`](crate::batch) for the layout) from records in memory.
//!
//! Used for batches the broker writes itself and by tests and benchmarks. The result
//! has `baseOffset` 0 (the log assigns offsets on append), a correct CRC-32C,
//! `lastOffsetDelta = recordCount - 1`, and CreateTime timestamps.

use crate::batch::compute_crc;
use crate::compression::Compression;
use crate::constants::{BATCH_BYTES_MAX, BATCH_HEADER_SIZE, BATCH_LOG_OVERHEAD, MAGIC_V2};
use crate::error::LogError;
use crate::record::{write_varint, write_varlong};

struct PendingRecord {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Builds one v2 record batch.
pub struct RecordBatchBuilder {
    compression: Compression,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    attributes_extra: i16,
    records: Vec<PendingRecord>,
}

impl Default for RecordBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordBatchBuilder {
    /// An empty, uncompressed, non-idempotent batch.
    pub fn new() -> RecordBatchBuilder {
        RecordBatchBuilder {
            compression: Compression::None,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            attributes_extra: 0,
            records: Vec::new(),
        }
    }

    /// Sets the codec for the records section.
    pub fn compression(mut self, compression: Compression) -> RecordBatchBuilder {
        self.compression = compression;
        self
    }

    /// Sets producer id, epoch and base sequence (idempotent producers).
    pub fn producer(mut self, id: i64, epoch: i16, base_sequence: i32) -> RecordBatchBuilder {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Marks the batch transactional (attribute bit 4) and/or control (bit 5).
    pub fn flags(mut self, transactional: bool, control: bool) -> RecordBatchBuilder {
        self.attributes_extra = (i16::from(transactional) << 4) | (i16::from(control) << 5);
        self
    }

    /// Adds a record with a CreateTime timestamp.
    pub fn push(&mut self, timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
        self.push_with_headers(timestamp, key, value, &[]);
    }

    /// Adds a record with a CreateTime timestamp and headers (`(key, value)`, in order).
    pub fn push_with_headers(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) {
        self.records.push(PendingRecord {
            timestamp,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: headers
                .iter()
                .map(|(key, value)| ((*key).to_owned(), value.map(<[u8]>::to_vec)))
                .collect(),
        });
    }

    /// Number of records added.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no record was added.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Encodes the batch. Fails for an empty batch or one over the size limit.
    pub fn build(&self) -> Result<Vec<u8>, LogError> {
        let first = self.records.first().ok_or(LogError::EmptyAppend)?;
        let count = i32::try_from(self.records.len()).map_err(|_| LogError::BatchTooLarge {
            size: self.records.len() as u64,
            max: i32::MAX as u64,
        })?;
        let base_timestamp = first.timestamp;
        let max_timestamp = self.records.iter().map(|r| r.timestamp).max().unwrap_or(base_timestamp);
        let mut section = Vec::new();
        let mut body = Vec::new();
        for (index, record) in self.records.iter().enumerate() {
            body.clear();
            body.push(0); // attributes
            write_varlong(&mut body, record.timestamp.wrapping_sub(base_timestamp));
            write_varint(&mut body, index as i32);
            write_bytes_field(&mut body, record.key.as_deref());
            write_bytes_field(&mut body, record.value.as_deref());
            write_count(&mut body, record.headers.len())?;
            for (key, value) in &record.headers {
                write_bytes_field(&mut body, Some(key.as_bytes()));
                write_bytes_field(&mut body, value.as_deref());
            }
            write_count(&mut section, body.len())?;
            section.extend_from_slice(&body);
        }
        let section = self.compression.compress(&section)?;
        let total = BATCH_HEADER_SIZE + section.len();
        if total > BATCH_BYTES_MAX {
            return Err(LogError::BatchTooLarge {
                size: total as u64,
                max: BATCH_BYTES_MAX as u64,
            });
        }
        let attributes = i16::from(self.compression.codec()) | self.attributes_extra;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&0i64.to_be_bytes());
        out.extend_from_slice(&((total - BATCH_LOG_OVERHEAD) as i32).to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes());
        out.push(MAGIC_V2 as u8);
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&(count - 1).to_be_bytes());
        out.extend_from_slice(&base_timestamp.to_be_bytes());
        out.extend_from_slice(&max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(&section);
        let crc = compute_crc(&out)?;
        if let Some(slot) = out.get_mut(17..21) {
            slot.copy_from_slice(&crc.to_be_bytes());
        }
        Ok(out)
    }
}

/// Writes a length or count varint; fails beyond i32 (Kafka's limit for both).
fn write_count(out: &mut Vec<u8>, count: usize) -> Result<(), LogError> {
    let count = i32::try_from(count).map_err(|_| LogError::BatchTooLarge {
        size: count as u64,
        max: i32::MAX as u64,
    })?;
    write_varint(out, count);
    Ok(())
}

fn write_bytes_field(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => write_varint(out, -1),
        Some(bytes) => {
            write_varint(out, bytes.len() as i32);
            out.extend_from_slice(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::validate;
    use crate::record::{decode_batch, RecordHeader};

    #[test]
    fn builds_valid_batches() {
        let mut builder = RecordBatchBuilder::new().producer(7, 1, 0).flags(true, false);
        assert!(builder.build().is_err());
        builder.push(5, Some(b"k"), None);
        builder.push(9, None, Some(b"v"));
        let batch = builder.build().unwrap();
        let header = validate(&batch).unwrap();
        assert_eq!(header.producer_id, 7);
        assert!(header.is_transactional());
        assert!(!header.is_control());
        let (_, records) = decode_batch(&batch).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].timestamp, 9);
        assert_eq!(records[1].offset, 1);
    }

    #[test]
    fn headers_round_trip_in_every_codec() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut builder = RecordBatchBuilder::new().compression(codec);
            builder.push_with_headers(
                5,
                Some(b"k"),
                Some(b"v"),
                &[("trace", Some(b"abc")), ("empty", Some(b"")), ("null", None)],
            );
            builder.push(6, None, None);
            builder.push_with_headers(7, None, Some(b"w"), &[("\u{e9}t\u{e9}", Some(&[0, 255]))]);
            let batch = builder.build().unwrap();
            validate(&batch).unwrap();
            let (header, records) = decode_batch(&batch).unwrap();
            assert_eq!(header.record_count, 3);
            let header = |key: &str, value: Option<&[u8]>| RecordHeader {
                key: key.to_owned(),
                value: value.map(bytes::Bytes::copy_from_slice),
            };
            assert_eq!(
                records[0].headers,
                vec![
                    header("trace", Some(b"abc")),
                    header("empty", Some(b"")),
                    header("null", None)
                ],
                "{codec:?}"
            );
            assert_eq!(records[0].key.as_deref(), Some(&b"k"[..]));
            assert_eq!(records[0].value.as_deref(), Some(&b"v"[..]));
            assert!(records[1].headers.is_empty());
            assert_eq!((records[1].key.clone(), records[1].value.clone()), (None, None));
            assert_eq!(records[2].headers, vec![header("\u{e9}t\u{e9}", Some(&[0, 255]))]);
            assert_eq!(records[2].offset, 2);
        }
    }
}
