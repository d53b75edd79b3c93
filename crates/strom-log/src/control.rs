//! Control records: Kafka's transaction markers, written by the transaction coordinator
//! to end a producer's transaction on each partition it wrote to.
//!
//! A marker is a batch with the control and transactional attribute bits set, the
//! producer's id and epoch (base sequence -1), and exactly one record:
//!
//! ```text
//! key    version int16 (0)  type int16 (0 = ABORT, 1 = COMMIT)
//! value  version int16 (0)  coordinatorEpoch int32
//! ```
//!
//! Other control record types (KRaft's leader change, snapshot headers, ...) are not
//! transaction markers; [`marker`] answers `None` for them.

use bytes::Bytes;

use crate::batch::RecordBatchHeader;
use crate::batch_builder::RecordBatchBuilder;
use crate::error::LogError;
use crate::record::decode_batch;

/// Version of the control record key and of the marker value written.
const CONTROL_RECORD_VERSION: i16 = 0;

/// The type in a control record's key that ends a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    /// The transaction's records are discarded by read_committed consumers.
    Abort,
    /// The transaction's records become visible to read_committed consumers.
    Commit,
}

impl ControlRecordType {
    /// The type's id in the key.
    pub fn id(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
        }
    }

    /// The marker type named by a control record key; `None` for a malformed key
    /// (shorter than 4 bytes, negative version) or a type that is not a marker.
    pub fn from_key(key: &[u8]) -> Option<ControlRecordType> {
        let version = i16::from_be_bytes(key.get(0..2)?.try_into().ok()?);
        if version < 0 {
            return None;
        }
        match i16::from_be_bytes(key.get(2..4)?.try_into().ok()?) {
            0 => Some(ControlRecordType::Abort),
            1 => Some(ControlRecordType::Commit),
            _ => None,
        }
    }

    /// The control record key for this type.
    pub fn key(self) -> [u8; 4] {
        let mut key = [0u8; 4];
        key[..2].copy_from_slice(&CONTROL_RECORD_VERSION.to_be_bytes());
        key[2..].copy_from_slice(&self.id().to_be_bytes());
        key
    }
}

/// A transaction marker: which producer's transaction ends, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    /// COMMIT or ABORT.
    pub record_type: ControlRecordType,
    /// Epoch of the transaction coordinator that wrote the marker.
    pub coordinator_epoch: i32,
    /// The transactional producer's id.
    pub producer_id: i64,
    /// The transactional producer's epoch.
    pub producer_epoch: i16,
}

impl Marker {
    /// True for a COMMIT marker.
    pub fn is_commit(&self) -> bool {
        self.record_type == ControlRecordType::Commit
    }

    /// The marker's value: version and coordinator epoch.
    fn value(&self) -> [u8; 6] {
        let mut value = [0u8; 6];
        value[..2].copy_from_slice(&CONTROL_RECORD_VERSION.to_be_bytes());
        value[2..].copy_from_slice(&self.coordinator_epoch.to_be_bytes());
        value
    }
}

/// Encodes `marker` as a complete batch (offset 0; the log assigns offsets and the
/// caller stamps the leader epoch, e.g. with [`Log::append_stamped`](crate::Log::append_stamped)).
pub fn marker_batch(marker: &Marker, timestamp_ms: i64) -> Result<Vec<u8>, LogError> {
    let mut builder = RecordBatchBuilder::new()
        .producer(marker.producer_id, marker.producer_epoch, -1)
        .flags(true, true);
    builder.push(timestamp_ms, Some(&marker.record_type.key()), Some(&marker.value()));
    builder.build()
}

/// The transaction marker in `batch`, or `None` when the batch is not a control batch,
/// does not decode, or holds another kind of control record or a malformed value.
pub fn marker(batch: &[u8]) -> Option<Marker> {
    let header = RecordBatchHeader::parse(batch).ok()?;
    if !header.is_control() {
        return None;
    }
    let (header, records) = decode_batch(batch).ok()?;
    let record = records.first()?;
    let record_type = ControlRecordType::from_key(record.key.as_deref()?)?;
    let coordinator_epoch = coordinator_epoch(record.value.as_ref()?)?;
    Some(Marker {
        record_type,
        coordinator_epoch,
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
    })
}

/// The coordinator epoch of a marker value; `None` when it is short or its version negative.
fn coordinator_epoch(value: &Bytes) -> Option<i32> {
    let version = i16::from_be_bytes(value.get(0..2)?.try_into().ok()?);
    if version < 0 {
        return None;
    }
    Some(i32::from_be_bytes(value.get(2..6)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::validate;

    fn sample(record_type: ControlRecordType) -> Marker {
        Marker {
            record_type,
            coordinator_epoch: 42,
            producer_id: 9_000,
            producer_epoch: 3,
        }
    }

    #[test]
    fn markers_round_trip() {
        for record_type in [ControlRecordType::Abort, ControlRecordType::Commit] {
            let batch = marker_batch(&sample(record_type), 1234).unwrap();
            let header = validate(&batch).unwrap();
            assert!(header.is_control() && header.is_transactional());
            assert_eq!(
                (header.producer_id, header.producer_epoch, header.base_sequence),
                (9_000, 3, -1)
            );
            assert_eq!((header.record_count, header.max_timestamp), (1, 1234));
            assert_eq!(marker(&batch), Some(sample(record_type)));
        }
        assert!(marker(&marker_batch(&sample(ControlRecordType::Commit), 0).unwrap())
            .unwrap()
            .is_commit());
    }

    #[test]
    fn the_wire_format_is_kafkas() {
        assert_eq!(ControlRecordType::Abort.key(), [0, 0, 0, 0]);
        assert_eq!(ControlRecordType::Commit.key(), [0, 0, 0, 1]);
        assert_eq!(sample(ControlRecordType::Commit).value(), [0, 0, 0, 0, 0, 42]);
        // A newer key version is still read (Kafka only logs it); a negative one is not.
        assert_eq!(
            ControlRecordType::from_key(&[0, 1, 0, 1]),
            Some(ControlRecordType::Commit)
        );
        assert_eq!(ControlRecordType::from_key(&[0xff, 0xff, 0, 1]), None);
        assert_eq!(
            ControlRecordType::from_key(&[0, 0, 0, 3]),
            None,
            "leader change is no marker"
        );
        assert_eq!(ControlRecordType::from_key(&[0, 0, 0]), None);
    }

    #[test]
    fn other_batches_are_not_markers() {
        let key = ControlRecordType::Commit.key();
        let value = sample(ControlRecordType::Commit).value();
        let build = |control: bool, key: Option<&[u8]>, value: Option<&[u8]>| {
            let mut builder = RecordBatchBuilder::new().producer(1, 0, -1).flags(true, control);
            builder.push(0, key, value);
            builder.build().unwrap()
        };
        assert!(marker(&build(true, Some(&key), Some(&value))).is_some());
        assert_eq!(marker(&build(false, Some(&key), Some(&value))), None, "data batch");
        assert_eq!(marker(&build(true, Some(&key), Some(&value[..5]))), None, "short value");
        assert_eq!(marker(&build(true, Some(&key), None)), None, "null value");
        assert_eq!(marker(&build(true, None, Some(&value))), None, "null key");
        assert_eq!(marker(&[0u8; 10]), None, "garbage");
    }
}
