//! Tests of compaction through [`Log::compact`] and of its crash-safe swap.

use std::path::Path;
use std::sync::Arc;

use super::swap::{cleaned_name, swap_record_name};
use super::*;
use crate::batch::{validate, validate_stored, BatchIter};
use crate::batch_builder::RecordBatchBuilder;
use crate::clock::ManualClock;
use crate::compression::Compression;
use crate::constants::{CLEANED_FILE_SUFFIX, LOG_FILE_SUFFIX, OFFSET_INDEX_FILE_SUFFIX};
use crate::files::write_number_file;
use crate::log::{Log, LogConfig};
use crate::segment::LogSegment;
use crate::segment_name::segment_file_name;
use std::collections::BTreeMap;

type Records = BTreeMap<i64, (Vec<u8>, Option<Vec<u8>>)>;

const NOW_MS: i64 = 1_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 100_000,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, clock: &Arc<ManualClock>) -> Log {
    Log::open(dir, config(), clock.clone()).unwrap()
}

fn append(log: &Log, codec: Compression, records: &[(&str, Option<&str>)]) -> i64 {
    let mut builder = RecordBatchBuilder::new().compression(codec);
    for (key, value) in records {
        builder.push(NOW_MS, Some(key.as_bytes()), value.map(str::as_bytes));
    }
    log.append(&builder.build().unwrap()).unwrap().base_offset
}

/// Every record readable from the log start, by offset; checks batch validity and
/// strictly increasing offsets along the way.
fn read_all(log: &Log) -> Records {
    let mut out = Records::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log.read(offset, 1 << 20, i64::MAX).unwrap().records;
        assert!(!read.is_empty(), "nothing at {offset}");
        for (header, batch) in BatchIter::new(&read) {
            validate_stored(batch).unwrap();
            assert!(header.last_offset() >= offset);
            let (header, section) = decompress_records_section(batch).unwrap();
            for entry in decode_record_entries(&header, &section).unwrap() {
                assert!(out.keys().next_back().is_none_or(|last| *last < entry.offset));
                let key = section[entry.key.clone().unwrap()].to_vec();
                let value = entry.value.clone().map(|range| section[range].to_vec());
                out.insert(entry.offset, (key, value));
            }
            offset = header.next_offset();
        }
    }
    out
}

fn expect(entries: &[(i64, &str, Option<&str>)]) -> Records {
    entries
        .iter()
        .map(|(offset, key, value)| (*offset, (key.as_bytes().to_vec(), value.map(|v| v.as_bytes().to_vec()))))
        .collect()
}

fn keep_everything_young() -> CompactionConfig {
    CompactionConfig {
        delete_retention_ms: 1000,
        min_compaction_lag_ms: 0,
    }
}

#[test]
fn latest_value_per_key_survives_at_its_original_offset() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let log = open(dir.path(), &clock);
    append(&log, Compression::None, &[("a", Some("a1")), ("b", Some("b1"))]); // 0, 1
    append(&log, Compression::None, &[("c", Some("c1"))]); // 2
    log.roll_now().unwrap();
    append(&log, Compression::None, &[("a", Some("a2")), ("d", Some("d1"))]); // 3, 4
    log.roll_now().unwrap();
    append(&log, Compression::None, &[("b", Some("b2"))]); // 5, active
    let before = log.size_bytes();
    let stats = log.compact(keep_everything_young()).unwrap();
    assert_eq!(stats.records_removed, 2);
    assert_eq!(stats.segments_cleaned, 2);
    assert!(stats.bytes_after < stats.bytes_before);
    assert!(log.size_bytes() < before);
    // The two closed segments were merged into one.
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(
        read_all(&log),
        expect(&[
            (2, "c", Some("c1")),
            (3, "a", Some("a2")),
            (4, "d", Some("d1")),
            (5, "b", Some("b2"))
        ])
    );
    // A second pass finds nothing to do.
    assert_eq!(
        log.compact(keep_everything_young()).unwrap(),
        CompactionStats::default()
    );
    assert_eq!(append(&log, Compression::None, &[("e", Some("e1"))]), 6);
}

#[test]
fn tombstones_stay_until_delete_retention_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let log = open(dir.path(), &clock);
    append(&log, Compression::None, &[("a", Some("a1")), ("b", Some("b1"))]);
    append(&log, Compression::None, &[("a", None)]); // 2
    log.roll_now().unwrap();
    append(&log, Compression::None, &[("c", Some("c1"))]); // 3, active
    log.compact(keep_everything_young()).unwrap();
    assert_eq!(
        read_all(&log),
        expect(&[(1, "b", Some("b1")), (2, "a", None), (3, "c", Some("c1"))])
    );
    clock.advance_ms(1000);
    assert_eq!(log.compact(keep_everything_young()).unwrap().records_removed, 0);
    clock.advance_ms(1);
    let stats = log.compact(keep_everything_young()).unwrap();
    assert_eq!(stats.records_removed, 1);
    assert_eq!(read_all(&log), expect(&[(1, "b", Some("b1")), (3, "c", Some("c1"))]));
    assert_eq!(log.log_end_offset(), 4);
}

#[test]
fn min_compaction_lag_protects_young_records_and_their_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let log = open(dir.path(), &clock);
    append(&log, Compression::None, &[("a", Some("a1"))]);
    append(&log, Compression::None, &[("a", None)]);
    log.roll_now().unwrap();
    append(&log, Compression::None, &[("z", Some("z1"))]);
    clock.advance_ms(5000);
    let config = CompactionConfig {
        delete_retention_ms: 0,
        min_compaction_lag_ms: 10_000,
    };
    assert_eq!(log.compact(config).unwrap().records_removed, 0);
    assert_eq!(read_all(&log).len(), 3);
    clock.advance_ms(5000);
    assert_eq!(log.compact(config).unwrap().records_removed, 2);
    assert_eq!(read_all(&log), expect(&[(2, "z", Some("z1"))]));
}

#[test]
fn compressed_batches_are_rewritten_with_their_codec_and_range() {
    for codec in [
        Compression::Gzip,
        Compression::Zstd,
        Compression::Snappy,
        Compression::Lz4,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(NOW_MS));
        let log = open(dir.path(), &clock);
        append(
            &log,
            codec,
            &[
                ("a", Some("a1")),
                ("b", Some("b1")),
                ("a", Some("a2")),
                ("c", Some("c1")),
            ],
        );
        append(&log, codec, &[("b", Some("b2")), ("d", Some("d1"))]); // 4, 5
        log.roll_now().unwrap();
        append(&log, Compression::None, &[("d", Some("d2"))]); // 6
        assert_eq!(log.compact(keep_everything_young()).unwrap().records_removed, 3);
        let read = log.read(0, 1 << 20, i64::MAX).unwrap().records;
        let headers: Vec<_> = BatchIter::new(&read).map(|(h, b)| (h, b.to_vec())).collect();
        assert_eq!(headers.len(), 2, "a read stops at the end of a segment");
        let (first, bytes) = &headers[0];
        assert_eq!(
            (first.base_offset, first.last_offset_delta, first.record_count),
            (0, 3, 2)
        );
        assert_eq!(first.compression().unwrap(), codec);
        assert!(
            validate(bytes).is_err(),
            "{codec:?}: a sparse batch is not a producer batch"
        );
        assert_eq!(first.max_timestamp, NOW_MS);
        let (second, _) = &headers[1];
        assert_eq!(
            (second.base_offset, second.last_offset_delta, second.record_count),
            (4, 1, 1)
        );
        assert_eq!(
            read_all(&log),
            expect(&[
                (2, "a", Some("a2")),
                (3, "c", Some("c1")),
                (4, "b", Some("b2")),
                (6, "d", Some("d2"))
            ]),
            "{codec:?}"
        );
        assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((2, NOW_MS)));
    }
}

#[test]
fn emptied_batches_and_segments_disappear_and_reads_skip_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let log = open(dir.path(), &clock);
    append(&log, Compression::None, &[("a", Some("a1"))]); // 0
    append(&log, Compression::None, &[("b", Some("b1"))]); // 1
    log.roll_now().unwrap();
    append(&log, Compression::None, &[("a", Some("a2")), ("b", Some("b2"))]); // 2, 3
    log.roll_now().unwrap();
    append(&log, Compression::None, &[("a", Some("a3"))]); // 4, active
    let stats = log.compact(keep_everything_young()).unwrap();
    assert_eq!(stats.records_removed, 3);
    for offset in 0..=2 {
        let read = log.read(offset, 1, i64::MAX).unwrap();
        let header = validate_stored(&read.records).unwrap();
        assert_eq!((header.base_offset, header.record_count), (2, 1), "read at {offset}");
    }
    assert_eq!(read_all(&log), expect(&[(3, "b", Some("b2")), (4, "a", Some("a3"))]));
    assert_eq!(log.offset_for_timestamp(NOW_MS).unwrap(), Some((3, NOW_MS)));
    // A segment whose every record went stays as an empty segment holding its range.
    append(&log, Compression::None, &[("b", Some("b3"))]); // 5
    log.roll_now().unwrap();
    log.compact(keep_everything_young()).unwrap();
    assert_eq!(read_all(&log), expect(&[(4, "a", Some("a3")), (5, "b", Some("b3"))]));
    assert_eq!(
        log.read(0, 1, i64::MAX).unwrap().records.len(),
        log.read(4, 1, i64::MAX).unwrap().records.len()
    );
    assert_eq!(log.log_end_offset(), 6);
    // Retention and compaction share the segment list.
    log.set_config(LogConfig {
        retention_ms: 10,
        ..config()
    });
    clock.advance_ms(100);
    assert!(log.apply_retention().unwrap() > 0);
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(
        log.compact(keep_everything_young()).unwrap(),
        CompactionStats::default()
    );
}

#[test]
fn reopening_after_compaction_keeps_records_and_log_end_offset() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(NOW_MS));
        let log = open(dir.path(), &clock);
        for round in 0..30 {
            let value = format!("v{round}");
            append(&log, Compression::Gzip, &[("k1", Some(&value)), ("k2", Some(&value))]);
            append(&log, Compression::None, &[(&format!("u{round}"), Some("once"))]);
            if round % 7 == 6 {
                log.roll_now().unwrap();
            }
        }
        append(&log, Compression::None, &[("k1", None)]);
        log.roll_now().unwrap();
        append(&log, Compression::None, &[("k2", Some("last"))]);
        assert!(log.compact(keep_everything_young()).unwrap().records_removed > 50);
        let records = read_all(&log);
        let end = log.log_end_offset();
        if clean {
            log.close().unwrap();
        }
        drop(log);
        let log = open(dir.path(), &clock);
        assert_eq!(log.log_end_offset(), end, "clean {clean}");
        assert_eq!(read_all(&log), records, "clean {clean}");
        assert_eq!(append(&log, Compression::None, &[("k3", Some("x"))]), end);
    }
}

/// Writes the cleaned copy of the first closed segment and returns the log's
/// records before and after cleaning it, without swapping it in.
fn prepare_swap(dir: &Path, clock: &Arc<ManualClock>) -> (Records, Records, SegmentGroup) {
    let log = open(dir, clock);
    append(&log, Compression::None, &[("a", Some("a1")), ("b", Some("b1"))]);
    log.roll_now().unwrap();
    append(&log, Compression::None, &[("a", Some("a2"))]); // 2
    log.roll_now().unwrap();
    append(&log, Compression::None, &[("b", Some("b2"))]); // 3
    log.flush().unwrap();
    let before = read_all(&log);
    let mut after = before.clone();
    after.remove(&0);
    after.remove(&1);
    drop(log);
    // Reopen only the segment files needed to build the cleaned copy.
    let first = Arc::new(LogSegment::load(dir, 0, NOW_MS, 200).unwrap());
    let second = Arc::new(LogSegment::load(dir, 2, NOW_MS, 200).unwrap());
    let third = Arc::new(LogSegment::load(dir, 3, NOW_MS, 200).unwrap());
    let all = vec![first, second, third];
    let mut map = OffsetMap::build(&all, 4, usize::MAX).unwrap();
    let mut groups = plan_groups(&all, 100_000, 4);
    assert_eq!(groups.len(), 1);
    let group = groups.remove(0);
    let policy = Policy {
        now_ms: NOW_MS,
        config: keep_everything_young(),
    };
    let cleaned = clean_group(dir, &group, &mut map, &policy, 200).unwrap().unwrap();
    drop(cleaned);
    (before, after, group)
}

#[test]
fn open_discards_uncommitted_cleaned_files() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let (before, _, _) = prepare_swap(dir.path(), &clock);
    assert!(dir.path().join(cleaned_name(0, LOG_FILE_SUFFIX)).exists());
    let log = open(dir.path(), &clock);
    assert_eq!(read_all(&log), before);
    assert!(!dir.path().join(cleaned_name(0, LOG_FILE_SUFFIX)).exists());
    assert_eq!(log.segment_count(), 3);
}

#[test]
fn open_finishes_a_committed_swap_at_any_step() {
    for step in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(NOW_MS));
        let (_, after, group) = prepare_swap(dir.path(), &clock);
        write_number_file(dir.path(), &swap_record_name(0), group.end_offset).unwrap();
        if step >= 1 {
            // Old files deleted, some indexes renamed.
            for segment in &group.segments {
                segment.delete().unwrap();
            }
            std::fs::rename(
                dir.path().join(cleaned_name(0, OFFSET_INDEX_FILE_SUFFIX)),
                dir.path().join(segment_file_name(0, OFFSET_INDEX_FILE_SUFFIX)),
            )
            .unwrap();
        }
        if step >= 2 {
            std::fs::rename(
                dir.path().join(cleaned_name(0, LOG_FILE_SUFFIX)),
                dir.path().join(segment_file_name(0, LOG_FILE_SUFFIX)),
            )
            .unwrap();
        }
        drop(group);
        let log = open(dir.path(), &clock);
        assert_eq!(read_all(&log), after, "step {step}");
        assert_eq!(log.segment_count(), 2, "step {step}");
        assert_eq!(log.log_end_offset(), 4);
        assert!(!dir.path().join(swap_record_name(0)).exists());
        drop(log);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(CLEANED_FILE_SUFFIX)), "{names:?}");
    }
}

#[test]
fn a_pass_racing_a_truncation_stops() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let log = open(dir.path(), &clock);
    append(&log, Compression::None, &[("a", Some("a1"))]);
    log.roll_now().unwrap();
    append(&log, Compression::None, &[("a", Some("a2"))]);
    let segments = log_segments(&log);
    let mut map = OffsetMap::build(&segments, 2, usize::MAX).unwrap();
    let groups = plan_groups(&segments, 100_000, map.end_offset());
    let policy = Policy {
        now_ms: NOW_MS,
        config: keep_everything_young(),
    };
    let cleaned = clean_group(dir.path(), &groups[0], &mut map, &policy, 200)
        .unwrap()
        .unwrap();
    assert!(dir.path().join(cleaned_name(0, LOG_FILE_SUFFIX)).exists());
    log.truncate_to(1).unwrap();
    assert_eq!(log.swap_in_cleaned_for_tests(&groups[0], cleaned, 0).unwrap(), None);
    assert!(!dir.path().join(cleaned_name(0, LOG_FILE_SUFFIX)).exists());
    assert_eq!(read_all(&log), expect(&[(0, "a", Some("a1"))]));
}

fn log_segments(log: &Log) -> Vec<Arc<LogSegment>> {
    log.segments_for_tests()
}

#[test]
fn undecodable_batches_are_kept_and_the_map_respects_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let log = open(dir.path(), &clock);
    // A batch with a valid CRC whose records section is garbage.
    let mut builder = RecordBatchBuilder::new();
    builder.push(NOW_MS, Some(b"a"), Some(b"a1"));
    let mut garbage = builder.build().unwrap();
    garbage[crate::constants::BATCH_HEADER_SIZE] = 0x7e; // record length 63: past the end
    let crc = crate::batch::compute_crc(&garbage).unwrap();
    garbage[17..21].copy_from_slice(&crc.to_be_bytes());
    log.append(&garbage).unwrap();
    append(&log, Compression::None, &[("a", Some("a2"))]);
    log.roll_now().unwrap();
    append(&log, Compression::None, &[("a", Some("a3"))]);
    assert_eq!(log.compact(keep_everything_young()).unwrap().records_removed, 1);
    assert_eq!(log.read(0, 1, i64::MAX).unwrap().records.len(), garbage.len());
    // A map with no room stops after the first keyed batch (the one at 2, since
    // the batch at 1 is gone); only segments wholly below its end are cleaned.
    let segments = log_segments(&log);
    let map = OffsetMap::build(&segments, 3, 0).unwrap();
    assert_eq!(map.end_offset(), 3);
    assert_eq!(plan_groups(&segments, 100_000, map.end_offset()).len(), 1);
    assert!(plan_groups(&segments, 100_000, 1).is_empty());
}
