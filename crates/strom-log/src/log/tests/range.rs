//! Reads as file ranges: whole batches, cut where `read` cuts, without reading data.

use std::sync::Arc;

use super::*;

/// Every batch boundary of the log, as (offset after the batch, bytes from `from`).
fn one_segment_log(dir: &Path) -> Log {
    let config = LogConfig {
        index_interval_bytes: 300,
        ..LogConfig::default()
    };
    let log = Log::open(dir, config, Arc::new(ManualClock::new(0))).unwrap();
    for i in 0..40 {
        // Batches of 1..=4 records of 200 bytes: uneven sizes.
        log.append(&batch(1 + (i % 4), 1_000 + i as i64, Compression::None))
            .unwrap();
    }
    log
}

#[test]
fn a_range_holds_the_bytes_read_returns_for_every_start_budget_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = one_segment_log(dir.path());
    let end = log.log_end_offset();
    for offset in [0, 1, 7, 33, end - 1, end] {
        for max_bytes in [0, 1, 250, 900, 3_000, 10_000, 1 << 20] {
            for max_offset in [offset, offset + 1, end / 2, end, i64::MAX] {
                let read = log.read(offset, max_bytes, max_offset).unwrap();
                let range = log.read_range(offset, max_bytes, max_offset).unwrap();
                let bytes = range.range.as_ref().map(|r| r.read().unwrap()).unwrap_or_default();
                assert_eq!(
                    bytes, read.records,
                    "offset {offset} max_bytes {max_bytes} max_offset {max_offset}"
                );
                let batches: Vec<_> = BatchIter::new(&bytes).map(|(h, _)| h).collect();
                let covered: usize = BatchIter::new(&bytes).map(|(_, b)| b.len()).sum();
                assert_eq!(covered, bytes.len(), "whole batches only");
                if let Some(last) = batches.last() {
                    assert_eq!(range.next_offset, last.next_offset(), "where the next read starts");
                    assert!(bytes.len() <= max_bytes.max(batches[0].total_size().unwrap()));
                    assert!(batches[0].base_offset <= offset && offset <= batches[0].last_offset());
                    assert!(last.base_offset < max_offset);
                }
            }
        }
    }
}

#[test]
fn a_budget_cut_ends_at_the_last_whole_batch_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    let log = one_segment_log(dir.path());
    let all = log.read(0, 1 << 20, i64::MAX).unwrap().records;
    let boundaries: Vec<usize> = BatchIter::new(&all)
        .scan(0usize, |end, (_, b)| {
            *end += b.len();
            Some(*end)
        })
        .collect();
    for budget in [
        boundaries[0] + 1,
        boundaries[5] - 1,
        boundaries[5],
        boundaries[20] + 100,
    ] {
        let range = log.read_range(0, budget, i64::MAX).unwrap().range.unwrap();
        let best = boundaries.iter().copied().filter(|b| *b <= budget).max().unwrap();
        assert_eq!(range.len() as usize, best, "budget {budget}");
    }
}

#[test]
fn a_range_stays_readable_after_its_segment_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 2_000,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path(), config, Arc::new(ManualClock::new(0))).unwrap();
    for i in 0..30 {
        log.append(&batch(2, i, Compression::None)).unwrap();
    }
    let range = log.read_range(0, 1 << 20, i64::MAX).unwrap().range.unwrap();
    let expected = range.read().unwrap();
    log.delete_records(log.log_end_offset()).unwrap();
    log.apply_retention().unwrap();
    assert_eq!(range.read().unwrap(), expected, "the open file outlives the segment");
}
