use super::*;
use crate::batch_builder::RecordBatchBuilder;

fn sample(count: usize) -> Vec<u8> {
    let mut builder = RecordBatchBuilder::new();
    for i in 0..count {
        builder.push(1000 + i as i64, Some(b"k"), Some(&[i as u8; 10]));
    }
    builder.build().unwrap()
}

#[test]
fn parses_and_validates_a_built_batch() {
    let batch = sample(3);
    let header = validate(&batch).unwrap();
    assert_eq!(header.record_count, 3);
    assert_eq!(header.last_offset_delta, 2);
    assert_eq!(header.total_size(), Some(batch.len()));
    assert_eq!(header.base_timestamp, 1000);
    assert_eq!(header.max_timestamp, 1002);
    assert!(!header.is_log_append_time());
    assert_eq!(header.compression().unwrap(), Compression::None);
}

#[test]
fn rejects_bad_crc_magic_length_and_count() {
    let batch = sample(2);
    let mut bad = batch.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(validate(&bad), Err(LogError::CrcMismatch { .. })));

    let mut bad = batch.clone();
    bad[MAGIC_OFFSET] = 1;
    assert!(matches!(validate(&bad), Err(LogError::InvalidMagic(1))));

    assert!(matches!(
        validate(&batch[..batch.len() - 1]),
        Err(LogError::CorruptBatch { .. })
    ));
    assert!(matches!(validate(&batch[..10]), Err(LogError::CorruptBatch { .. })));

    let mut bad = batch.clone();
    bad[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4].copy_from_slice(&5i32.to_be_bytes());
    let crc = compute_crc(&bad).unwrap();
    bad[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(validate(&bad), Err(LogError::RecordCountMismatch { .. })));

    let mut bad = batch;
    bad[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&(-1i32).to_be_bytes());
    assert!(matches!(validate(&bad), Err(LogError::CorruptBatch { .. })));
}

#[test]
fn patches_keep_the_crc_valid() {
    let mut batch = sample(2);
    set_base_offset(&mut batch, 77).unwrap();
    set_partition_leader_epoch(&mut batch, 9).unwrap();
    let header = validate(&batch).unwrap();
    assert_eq!(header.base_offset, 77);
    assert_eq!(header.partition_leader_epoch, 9);
    set_max_timestamp_log_append_time(&mut batch, 5555).unwrap();
    let header = validate(&batch).unwrap();
    assert!(header.is_log_append_time());
    assert_eq!(header.max_timestamp, 5555);
    assert!(set_base_offset(&mut [0u8; 4], 1).is_err());
    assert!(set_max_timestamp_log_append_time(&mut [0u8; 20], 1).is_err());
}

#[test]
fn iterator_stops_at_a_torn_tail() {
    let a = sample(1);
    let b = sample(4);
    let mut all = a.clone();
    all.extend_from_slice(&b);
    let whole: Vec<_> = BatchIter::new(&all).map(|(_, bytes)| bytes.len()).collect();
    assert_eq!(whole, vec![a.len(), b.len()]);
    for cut in 0..all.len() {
        let mut iter = BatchIter::new(&all[..cut]);
        let count = iter.by_ref().count();
        let expected = if cut >= a.len() { 1 } else { 0 };
        assert_eq!(count, expected, "cut at {cut}");
        assert_eq!(iter.position(), if expected == 1 { a.len() } else { 0 });
    }
}

#[test]
fn stored_batches_may_hold_fewer_records_than_their_range() {
    let batch = sample(3);
    let section = &batch[BATCH_HEADER_SIZE..];
    // Keep the records section but claim one record: only the count changes.
    let rebuilt = rebuild_batch(&batch, section, 1, 1001).unwrap();
    assert!(matches!(validate(&rebuilt), Err(LogError::RecordCountMismatch { .. })));
    let header = validate_stored(&rebuilt).unwrap();
    assert_eq!((header.record_count, header.last_offset_delta), (1, 2));
    assert_eq!(header.max_timestamp, 1001);
    assert_eq!(header.base_timestamp, 1000);
    assert!(rebuild_batch(&batch, section, 4, 0).is_err());
    assert!(rebuild_batch(&batch, section, 0, 0).is_err());
    assert!(rebuild_batch(&batch[..10], section, 1, 0).is_err());
}

#[test]
fn never_panics_on_short_or_garbage_input() {
    for len in 0..100 {
        let garbage: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
        let _ = validate(&garbage);
        let _ = validate_stored(&garbage);
        let _ = BatchIter::new(&garbage).count();
        let _ = RecordBatchHeader::parse(&garbage);
    }
}
