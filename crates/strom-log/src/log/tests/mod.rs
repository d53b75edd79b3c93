//! Tests of [`Log`]: appends, reads, retention, truncation, flushing.

mod follower;
mod range;
mod recovery;

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::batch::validate;
use crate::batch::BatchIter;
use crate::batch_builder::RecordBatchBuilder;
use crate::clock::ManualClock;
use crate::compression::Compression;

pub(super) fn batch(records: usize, timestamp: i64, codec: Compression) -> Vec<u8> {
    let mut builder = RecordBatchBuilder::new().compression(codec);
    for i in 0..records {
        builder.push(timestamp + i as i64, None, Some(&[1u8; 200]));
    }
    builder.build().unwrap()
}

pub(super) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2000,
        index_interval_bytes: 300,
        ..LogConfig::default()
    }
}

pub(super) fn open(dir: &Path, clock: &Arc<ManualClock>) -> Log {
    Log::open(dir, small_config(), clock.clone()).unwrap()
}

#[test]
fn log_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Log>();
}

#[test]
fn appends_densely_reads_and_survives_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(10_000));
    let log = open(dir.path(), &clock);
    let two = [batch(2, 100, Compression::None), batch(3, 200, Compression::None)].concat();
    let info = log.append(&two).unwrap();
    assert_eq!((info.base_offset, info.last_offset, info.batch_count), (0, 4, 2));
    assert_eq!(info.log_append_time_ms, -1);
    assert_eq!(info.max_timestamp, 202);
    for i in 0..20 {
        log.append(&batch(1, 300 + i, Compression::None)).unwrap();
    }
    assert_eq!(log.log_end_offset(), 25);
    assert!(log.segment_count() > 1);
    let read = log.read(3, 1, i64::MAX).unwrap();
    let (header, _) = BatchIter::new(&read.records).next().unwrap();
    assert_eq!(header.base_offset, 2);
    assert!(log.read(25, 100, i64::MAX).unwrap().records.is_empty());
    assert!(matches!(
        log.read(26, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange {
            offset: 26,
            start: 0,
            end: 25
        })
    ));
    assert!(log.read(0, 10_000, 2).unwrap().records.len() < 1000);
    let everything: Vec<u8> = {
        let mut all = Vec::new();
        let mut offset = 0;
        while offset < 25 {
            let records = log.read(offset, 100_000, i64::MAX).unwrap().records;
            let mut last = offset;
            for (header, bytes) in BatchIter::new(&records) {
                last = header.next_offset();
                all.extend_from_slice(bytes);
            }
            offset = last;
        }
        all
    };
    log.close().unwrap();
    assert!(matches!(
        log.append(&batch(1, 1, Compression::None)),
        Err(LogError::Closed)
    ));
    drop(log);
    assert!(dir.path().join(CLEAN_SHUTDOWN_FILE_NAME).exists());
    let log = open(dir.path(), &clock);
    assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE_NAME).exists());
    assert_eq!(log.log_end_offset(), 25);
    assert_eq!(log.flushed_offset(), 25);
    assert_eq!(log.size_bytes(), everything.len() as u64);
    assert_eq!(log.max_timestamp(), Some((24, 319)));
    assert_eq!(log.append(&batch(1, 1, Compression::None)).unwrap().base_offset, 25);
}

#[test]
fn bad_batch_rejects_the_whole_append() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), &clock);
    let good = batch(1, 1, Compression::None);
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let input = [good.clone(), bad].concat();
    assert!(matches!(log.append(&input), Err(LogError::CrcMismatch { .. })));
    assert!(log.append(&input).unwrap_err().is_invalid_input());
    let torn = [good.clone(), good[..30].to_vec()].concat();
    assert!(matches!(log.append(&torn), Err(LogError::CorruptBatch { .. })));
    assert!(matches!(log.append(&[]), Err(LogError::EmptyAppend)));
    let huge = vec![good.clone(); 20].concat();
    assert!(matches!(log.append(&huge), Err(LogError::BatchTooLarge { .. })));
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
}

#[test]
fn log_append_time_patches_timestamp_and_crc() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(777));
    let config = LogConfig {
        message_timestamp_log_append_time: true,
        ..small_config()
    };
    let log = Log::open(dir.path(), config, clock.clone()).unwrap();
    let info = log.append(&batch(3, 5, Compression::Gzip)).unwrap();
    assert_eq!(info.log_append_time_ms, 777);
    assert_eq!(info.max_timestamp, 777);
    let records = log.read(0, 1000, i64::MAX).unwrap().records;
    let header = validate(&records).unwrap();
    assert!(header.is_log_append_time());
    assert_eq!(log.offset_for_timestamp(700).unwrap(), Some((0, 777)));
    assert_eq!(log.offset_for_timestamp(778).unwrap(), None);
}

#[test]
fn finds_offsets_by_timestamp_across_segments_and_codecs() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), &clock);
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    for i in 0..30i64 {
        log.append(&batch(4, 1000 + i * 10, codecs[i as usize % 5])).unwrap();
    }
    assert!(log.segment_count() > 2);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 1000)));
    assert_eq!(log.offset_for_timestamp(1152).unwrap(), Some((62, 1152)));
    assert_eq!(log.offset_for_timestamp(1154).unwrap(), Some((64, 1160)));
    assert_eq!(log.offset_for_timestamp(1294).unwrap(), None);
    assert_eq!(log.max_timestamp(), Some((119, 1293)));
    log.delete_records(70).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((70, 1172)));
}

#[test]
fn retention_by_time_and_size_and_delete_records() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let log = open(dir.path(), &clock);
    for i in 0..30 {
        log.append(&batch(2, 1_000_000 + i, Compression::None)).unwrap();
    }
    let segments = log.segment_count();
    assert!(segments > 3);
    assert_eq!(log.apply_retention().unwrap(), 0);
    log.set_config(LogConfig {
        retention_bytes: 4000,
        ..small_config()
    });
    let deleted = log.apply_retention().unwrap();
    assert!(deleted > 0);
    assert!(log.size_bytes() >= 4000 - 2000);
    let start = log.log_start_offset();
    assert!(start > 0);
    assert!(log.read(start - 1, 10, i64::MAX).is_err());
    log.set_config(LogConfig {
        retention_ms: 1000,
        ..small_config()
    });
    clock.advance_ms(5000);
    log.apply_retention().unwrap();
    assert_eq!(log.segment_count(), 1);
    assert!(matches!(log.delete_records(61), Err(LogError::OffsetOutOfRange { .. })));
    assert_eq!(log.delete_records(59).unwrap(), 59);
    assert_eq!(log.delete_records(10).unwrap(), 59);
    drop(log);
    let log = open(dir.path(), &clock);
    assert_eq!(log.log_start_offset(), 59);
    assert_eq!(log.log_end_offset(), 60);
}

#[test]
fn rolls_on_segment_ms() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let config = LogConfig {
        segment_ms: 100,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path(), config, clock.clone()).unwrap();
    assert!(!log.roll_if_due().unwrap());
    log.append(&batch(1, 0, Compression::None)).unwrap();
    assert!(!log.roll_if_due().unwrap());
    clock.advance_ms(100);
    assert!(log.roll_if_due().unwrap());
    assert_eq!(log.segment_count(), 2);
    clock.advance_ms(100);
    log.append(&batch(1, 0, Compression::None)).unwrap();
    clock.advance_ms(100);
    log.append(&batch(1, 0, Compression::None)).unwrap();
    assert_eq!(log.segment_count(), 3);
}

#[test]
fn truncate_to_cuts_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), &clock);
    for i in 0..20 {
        log.append(&batch(2, i, Compression::None)).unwrap();
    }
    log.flush().unwrap();
    log.truncate_to(13).unwrap();
    assert_eq!(log.log_end_offset(), 12);
    assert_eq!(log.flushed_offset(), 12);
    assert_eq!(log.append(&batch(1, 0, Compression::None)).unwrap().base_offset, 12);
    drop(log);
    let log = open(dir.path(), &clock);
    assert_eq!(log.log_end_offset(), 13);
    log.truncate_to(0).unwrap();
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.append(&batch(1, 0, Compression::None)).unwrap().base_offset, 0);
}

#[test]
fn flush_syncs_the_indexes_of_a_sealed_segment_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), &clock);
    log.append(&batch(1, 0, Compression::None)).unwrap();
    // The active segment's data is flushed without its indexes...
    log.flush().unwrap();
    let first = log.active_segment();
    assert!(!first.indexes_dirty());
    // ...so once it is sealed, the next flush must sync them even though no record
    // was appended to it after the last flush.
    assert!(log.roll_now().unwrap());
    assert!(first.indexes_dirty());
    log.append(&batch(1, 1, Compression::None)).unwrap();
    assert_eq!(log.flush().unwrap(), 2);
    assert!(!first.indexes_dirty());
    assert!(!log.active_segment().indexes_dirty());
}

#[test]
fn unclean_restart_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), &clock);
    for i in 0..3 {
        log.append(&batch(1, i, Compression::None)).unwrap();
    }
    assert_eq!(log.flush().unwrap(), 3);
    assert_eq!(log.flush_to(2).unwrap(), 3);
    log.append(&batch(1, 9, Compression::None)).unwrap();
    let active = log.active_segment().log_path().to_path_buf();
    drop(log);
    let length = std::fs::metadata(&active).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(length - 5)
        .unwrap();
    let log = open(dir.path(), &clock);
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.flushed_offset(), 3);
}

#[test]
fn concurrent_readers_and_flushers_see_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = Arc::new(open(dir.path(), &clock));
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for i in 0..300 {
                log.append(&batch(1, i, Compression::None)).unwrap();
                if i % 50 == 0 {
                    log.flush().unwrap();
                }
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let log = log.clone();
            std::thread::spawn(move || {
                while log.log_end_offset() < 300 {
                    let start = log.log_start_offset();
                    let result = log.read(start, 5000, i64::MAX).unwrap();
                    let mut iter = BatchIter::new(&result.records);
                    for (_, bytes) in iter.by_ref() {
                        validate(bytes).unwrap();
                    }
                    assert_eq!(iter.position(), result.records.len());
                    let _ = log.flush_to(log.log_end_offset());
                }
            })
        })
        .collect();
    writer.join().unwrap();
    for reader in readers {
        reader.join().unwrap();
    }
    assert_eq!(log.flush().unwrap(), 300);
}
