//! Records as users see them, and their v2 record batch encoding and decoding.

use std::collections::HashSet;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType, NO_PARTITION_LEADER_EPOCH,
};

use crate::constants::{RECORDS_PER_BATCH_MAX, RECORD_BATCH_HEADER_BYTES, RECORD_BATCH_MAGIC};
use crate::error::{Error, Result};

/// A record header: a string key and optional bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header key.
    pub key: String,
    /// Header value (`None` is Kafka's null).
    pub value: Option<Bytes>,
}

impl Header {
    /// A header with a value.
    ///
    /// ```
    /// let header = strom_client::Header::new("trace-id", "abc");
    /// assert_eq!(header.key, "trace-id");
    /// ```
    pub fn new(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Header {
            key: key.into(),
            value: Some(value.into()),
        }
    }
}

/// Compression codec of produced record batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// No compression.
    #[default]
    None,
    /// gzip.
    Gzip,
    /// Snappy (Kafka's xerial framing).
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// Every codec, for tests and tools.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn codec(self) -> kafka_protocol::records::Compression {
        use kafka_protocol::records::Compression as Codec;
        match self {
            Compression::None => Codec::None,
            Compression::Gzip => Codec::Gzip,
            Compression::Snappy => Codec::Snappy,
            Compression::Lz4 => Codec::Lz4,
            Compression::Zstd => Codec::Zstd,
        }
    }
}

/// A record to produce.
///
/// ```
/// use strom_client::ProducerRecord;
///
/// let record = ProducerRecord::new("events", "hello").with_key("user-1").with_partition(0);
/// assert_eq!(record.partition, Some(0));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Destination topic.
    pub topic: String,
    /// Destination partition; `None` lets the partitioner choose.
    pub partition: Option<i32>,
    /// Key (`None` is Kafka's null key).
    pub key: Option<Bytes>,
    /// Value (`None` is a tombstone).
    pub value: Option<Bytes>,
    /// Headers; a repeated key keeps only its last value.
    pub headers: Vec<Header>,
    /// Creation time in milliseconds since the epoch; `None` means now.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value and nothing else.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the partition.
    pub fn with_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, header: Header) -> Self {
        self.headers.push(header);
        self
    }

    /// Sets the timestamp (milliseconds since the epoch).
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// Bytes of key, value and headers, as counted against buffer memory and batch size.
    pub(crate) fn payload_bytes(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len))
            .sum();
        self.key.as_ref().map_or(0, Bytes::len) + self.value.as_ref().map_or(0, Bytes::len) + headers
    }
}

/// A record read by a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Timestamp (creation or log-append time, as the topic is configured).
    pub timestamp: i64,
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
    /// Headers in the order they were produced.
    pub headers: Vec<Header>,
}

/// Producer identity stamped on a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Sequence of the first record; -1 for non-idempotent producers.
    pub base_sequence: i32,
    /// Part of a transaction (the batch's transactional attribute).
    pub transactional: bool,
}

/// The key, value, headers and timestamp of a record waiting in a batch.
#[derive(Debug, Clone)]
pub(crate) struct RecordData {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    pub timestamp: i64,
}

/// Encodes records as one v2 record batch.
pub(crate) fn encode_batch(records: &[RecordData], producer: BatchProducer, compression: Compression) -> Result<Bytes> {
    let idempotent = producer.base_sequence >= 0;
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(index, data)| {
            let index = i32::try_from(index).unwrap_or(i32::MAX);
            // The encoder keeps a batch together while `offset - sequence` is constant.
            let sequence = if idempotent {
                producer.base_sequence.wrapping_add(index)
            } else {
                index - 1
            };
            Record {
                transactional: producer.transactional,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
                producer_id: producer.producer_id,
                producer_epoch: producer.producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(index),
                sequence,
                timestamp: data.timestamp,
                key: data.key.clone(),
                value: data.value.clone(),
                headers: data
                    .headers
                    .iter()
                    .map(|h| (StrBytes::from_string(h.key.clone()), h.value.clone()))
                    .collect::<IndexMap<_, _>>(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: RECORD_BATCH_MAGIC,
        compression: compression.codec(),
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options)
        .map_err(|e| Error::Protocol(format!("encoding record batch: {e}")))?;
    Ok(buf.freeze())
}

/// The fields of a v2 batch header the consumer needs, read without decoding records.
#[derive(Debug, Clone, Copy)]
struct BatchHeader {
    base_offset: i64,
    last_offset_delta: i32,
    max_timestamp: i64,
    attributes: i16,
    producer_id: i64,
    record_count: i32,
}

impl BatchHeader {
    fn parse(mut header: &[u8]) -> Self {
        // Caller guarantees RECORD_BATCH_HEADER_BYTES bytes.
        let base_offset = header.get_i64();
        header.advance(4 + 4 + 1 + 4); // length, leader epoch, magic, crc
        let attributes = header.get_i16();
        let last_offset_delta = header.get_i32();
        let _first_timestamp = header.get_i64();
        let max_timestamp = header.get_i64();
        let producer_id = header.get_i64();
        header.advance(2 + 4); // epoch, base sequence
        let record_count = header.get_i32();
        BatchHeader {
            base_offset,
            last_offset_delta,
            max_timestamp,
            attributes,
            producer_id,
            record_count,
        }
    }

    fn last_offset(&self) -> i64 {
        self.base_offset.saturating_add(i64::from(self.last_offset_delta))
    }

    fn is_transactional(&self) -> bool {
        self.attributes & (1 << 4) != 0
    }

    fn is_control(&self) -> bool {
        self.attributes & (1 << 5) != 0
    }

    fn is_log_append_time(&self) -> bool {
        self.attributes & (1 << 3) != 0
    }

    fn is_compressed(&self) -> bool {
        self.attributes & 0x7 != 0
    }
}

/// An aborted transaction listed in a fetch response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbortedTransaction {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// Records decoded from one partition's fetched bytes.
#[derive(Debug, Default)]
pub(crate) struct DecodedRecords {
    pub records: Vec<ConsumerRecord>,
    /// The offset to fetch next: one past the last complete batch (at least `fetch_offset`).
    pub next_offset: i64,
}

/// Decodes the complete batches of a fetch response partition, skipping control batches,
/// records below `fetch_offset` and (when `aborted` is given, i.e. read_committed) records of
/// aborted transactions. A trailing partial batch is ignored.
pub(crate) fn decode_batches(
    topic: &str,
    partition: i32,
    mut raw: Bytes,
    fetch_offset: i64,
    aborted: Option<&[AbortedTransaction]>,
) -> Result<DecodedRecords> {
    let mut aborted: Vec<AbortedTransaction> = aborted.map(<[_]>::to_vec).unwrap_or_default();
    aborted.sort_by_key(|a| std::cmp::Reverse(a.first_offset)); // pop() yields the lowest
    let read_committed = !aborted.is_empty();
    let mut aborting: HashSet<i64> = HashSet::new();
    let mut out = DecodedRecords {
        records: Vec::new(),
        next_offset: fetch_offset,
    };
    while raw.len() >= RECORD_BATCH_HEADER_BYTES {
        let length = i32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]);
        let total = usize::try_from(length).ok().and_then(|l| l.checked_add(12));
        let Some(total) = total else {
            return Err(Error::Protocol(format!(
                "{topic}-{partition}: negative batch length {length}"
            )));
        };
        if total < RECORD_BATCH_HEADER_BYTES {
            return Err(Error::Protocol(format!(
                "{topic}-{partition}: batch length {length} is too small"
            )));
        }
        if raw.len() < total {
            break; // partial batch at the end of the response
        }
        let magic = raw[16] as i8;
        if magic != RECORD_BATCH_MAGIC {
            return Err(Error::Protocol(format!(
                "{topic}-{partition}: unsupported record batch magic {magic}"
            )));
        }
        let mut batch = raw.split_to(total);
        let header = BatchHeader::parse(&batch[..RECORD_BATCH_HEADER_BYTES]);
        check_record_count(topic, partition, &header, total)?;
        if header.last_offset() < fetch_offset {
            continue;
        }
        out.next_offset = out.next_offset.max(header.last_offset().saturating_add(1));
        if read_committed {
            while aborted.last().is_some_and(|a| a.first_offset <= header.last_offset()) {
                if let Some(transaction) = aborted.pop() {
                    aborting.insert(transaction.producer_id);
                }
            }
        }
        if header.is_control() {
            if header.is_transactional() && is_abort_marker(&mut batch)? {
                aborting.remove(&header.producer_id);
            }
            continue;
        }
        if header.is_transactional() && aborting.contains(&header.producer_id) {
            continue;
        }
        let set = RecordBatchDecoder::decode(&mut batch)
            .map_err(|e| Error::Protocol(format!("{topic}-{partition}: malformed record batch: {e}")))?;
        for record in set.records {
            if record.offset < fetch_offset {
                continue;
            }
            out.records.push(ConsumerRecord {
                topic: topic.to_string(),
                partition,
                offset: record.offset,
                timestamp: if header.is_log_append_time() {
                    header.max_timestamp
                } else {
                    record.timestamp
                },
                key: record.key,
                value: record.value,
                headers: record
                    .headers
                    .into_iter()
                    .map(|(key, value)| Header {
                        key: key.to_string(),
                        value,
                    })
                    .collect(),
            });
        }
    }
    Ok(out)
}

/// Refuses record counts the decoder would pre-allocate for but the batch cannot hold.
fn check_record_count(topic: &str, partition: i32, header: &BatchHeader, batch_bytes: usize) -> Result<()> {
    let count = usize::try_from(header.record_count).map_err(|_| {
        Error::Protocol(format!(
            "{topic}-{partition}: negative record count {}",
            header.record_count
        ))
    })?;
    // An uncompressed record takes at least 7 bytes; a compressed one may take almost nothing.
    let limit = if header.is_compressed() {
        RECORDS_PER_BATCH_MAX
    } else {
        batch_bytes / 7 + 1
    };
    if count > limit || header.last_offset_delta < 0 {
        return Err(Error::Protocol(format!(
            "{topic}-{partition}: batch at offset {} claims {count} records in {batch_bytes} bytes",
            header.base_offset
        )));
    }
    Ok(())
}

/// Whether a control batch holds an ABORT marker (control record key: version, type 0).
fn is_abort_marker(batch: &mut Bytes) -> Result<bool> {
    let set =
        RecordBatchDecoder::decode(batch).map_err(|e| Error::Protocol(format!("malformed control batch: {e}")))?;
    let Some(key) = set.records.first().and_then(|r| r.key.as_ref()) else {
        return Err(Error::Protocol("control batch without a control record key".into()));
    };
    if key.len() < 4 {
        return Err(Error::Protocol(format!("control record key of {} bytes", key.len())));
    }
    Ok(i16::from_be_bytes([key[2], key[3]]) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(count: usize) -> Vec<RecordData> {
        (0..count)
            .map(|i| RecordData {
                key: Some(Bytes::from(format!("key-{i}"))),
                value: if i % 5 == 4 {
                    None
                } else {
                    Some(Bytes::from(format!("value-{i}").repeat(i % 7 + 1)))
                },
                headers: if i % 3 == 0 {
                    vec![Header::new("h", format!("{i}"))]
                } else {
                    Vec::new()
                },
                timestamp: 1_700_000_000_000 + i as i64,
            })
            .collect()
    }

    fn set_base_offset(batch: &Bytes, base_offset: i64) -> Bytes {
        let mut bytes = BytesMut::from(&batch[..]);
        bytes[..8].copy_from_slice(&base_offset.to_be_bytes());
        bytes.freeze()
    }

    #[test]
    fn encode_decode_round_trip_with_every_codec() {
        let records = data(100);
        for compression in Compression::ALL {
            let producer = BatchProducer {
                producer_id: 7,
                producer_epoch: 1,
                base_sequence: 40,
                transactional: false,
            };
            let batch = encode_batch(&records, producer, compression).map_err(|e| e.to_string());
            let batch = set_base_offset(&batch.unwrap_or_default(), 1000);
            let decoded = decode_batches("t", 3, batch, 1000, None).map_err(|e| e.to_string());
            let decoded = decoded.unwrap_or_default();
            assert_eq!(decoded.records.len(), records.len(), "{compression:?}");
            assert_eq!(decoded.next_offset, 1100);
            for (index, (got, sent)) in decoded.records.iter().zip(&records).enumerate() {
                assert_eq!(got.offset, 1000 + index as i64);
                assert_eq!((got.topic.as_str(), got.partition), ("t", 3));
                assert_eq!(got.key, sent.key);
                assert_eq!(got.value, sent.value);
                assert_eq!(got.headers, sent.headers);
                assert_eq!(got.timestamp, sent.timestamp);
            }
        }
    }

    #[test]
    fn skips_records_below_fetch_offset_and_partial_batches() {
        let producer = BatchProducer {
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
        };
        let first = set_base_offset(
            &encode_batch(&data(10), producer, Compression::None).unwrap_or_default(),
            0,
        );
        let second = set_base_offset(
            &encode_batch(&data(10), producer, Compression::Gzip).unwrap_or_default(),
            10,
        );
        let mut raw = BytesMut::new();
        raw.extend_from_slice(&first);
        raw.extend_from_slice(&second[..second.len() - 3]);
        let decoded = decode_batches("t", 0, raw.freeze(), 4, None)
            .map_err(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            decoded.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            (4..10).collect::<Vec<_>>()
        );
        assert_eq!(decoded.next_offset, 10);
    }

    /// One transactional batch (records or a control marker) of `producer_id` at `base_offset`.
    fn transactional(producer_id: i64, base_offset: i64, count: i64, marker: Option<i16>) -> Bytes {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: true,
                control: marker.is_some(),
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: base_offset + i,
                sequence: i32::try_from(i).unwrap_or(0),
                timestamp: 0,
                key: Some(match marker {
                    Some(kind) => Bytes::from([0i16.to_be_bytes(), kind.to_be_bytes()].concat()),
                    None => Bytes::from(format!("{producer_id}-{i}")),
                }),
                value: Some(Bytes::from_static(b"\0\0\0\0\0\0")),
                headers: IndexMap::new(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: kafka_protocol::records::Compression::None,
        };
        let encoded = RecordBatchEncoder::encode(&mut buf, &records, &options);
        assert!(encoded.is_ok());
        buf.freeze()
    }

    #[test]
    fn read_committed_drops_aborted_transactions_and_control_batches() {
        let mut raw = BytesMut::new();
        raw.extend_from_slice(&transactional(1, 0, 2, None)); // aborted below
        raw.extend_from_slice(&transactional(2, 2, 2, None)); // committed
        raw.extend_from_slice(&transactional(1, 4, 1, Some(0))); // ABORT marker of producer 1
        raw.extend_from_slice(&transactional(2, 5, 1, Some(1))); // COMMIT marker of producer 2
        raw.extend_from_slice(&transactional(1, 6, 1, None)); // producer 1's next transaction
        let raw = raw.freeze();
        let aborted = [AbortedTransaction {
            producer_id: 1,
            first_offset: 0,
        }];
        let committed = decode_batches("t", 0, raw.clone(), 0, Some(&aborted)).map_err(|e| e.to_string());
        let committed = committed.unwrap_or_default();
        assert_eq!(
            committed.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![2, 3, 6]
        );
        assert_eq!(committed.next_offset, 7);
        let everything = decode_batches("t", 0, raw, 0, None)
            .map_err(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            everything.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 6]
        );
    }

    #[test]
    fn rejects_lying_headers() {
        let producer = BatchProducer {
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
        };
        let batch = encode_batch(&data(3), producer, Compression::None).unwrap_or_default();
        let mut bytes = BytesMut::from(&batch[..]);
        bytes[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_batches("t", 0, bytes.freeze(), 0, None).is_err());
        let mut bytes = BytesMut::from(&batch[..]);
        bytes[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(decode_batches("t", 0, bytes.freeze(), 0, None).is_err());
        let mut bytes = BytesMut::from(&batch[..]);
        bytes[16] = 1;
        assert!(decode_batches("t", 0, bytes.freeze(), 0, None).is_err());
    }
}
