//! Tests of [`Log::open`] after damage and torn writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{batch, open, small_config};
use crate::batch::BatchIter;
use crate::clock::ManualClock;
use crate::compression::Compression;
use crate::log::Log;

/// Every batch base offset readable from the log, in order.
fn stored_base_offsets(log: &Log) -> Vec<i64> {
    let mut offsets = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let read = log.read(next, 1 << 20, i64::MAX).unwrap();
        let batches: Vec<_> = BatchIter::new(&read.records).map(|(header, _)| header).collect();
        let Some(last) = batches.last() else { break };
        next = last.next_offset();
        offsets.extend(batches.iter().map(|h| h.base_offset));
    }
    offsets
}

/// 30 batches of 2 records across several segments, closed cleanly; returns the log
/// files of the segments in order with the batch positions of each.
fn damaged_fixture(dir: &Path, clock: &Arc<ManualClock>) -> Vec<(PathBuf, Vec<u64>)> {
    let log = open(dir, clock);
    for i in 0..30 {
        log.append(&batch(2, i, Compression::None)).unwrap();
    }
    let segments = log.segments_for_tests();
    assert!(segments.len() >= 4);
    let layout = segments
        .iter()
        .map(|segment| {
            let mut positions = Vec::new();
            segment
                .for_each_batch(|position, _| {
                    positions.push(position);
                    Ok(true)
                })
                .unwrap();
            (segment.log_path().to_path_buf(), positions)
        })
        .collect();
    log.close().unwrap();
    layout
}

fn flip_byte(path: &Path, position: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, position).unwrap();
    file.write_all_at(&[byte[0] ^ 0x5a], position).unwrap();
}

fn damage_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == crate::damage::DAMAGED_FILE_SUFFIX))
        .collect()
}

#[test]
fn damage_in_a_sealed_segment_skips_exactly_the_damaged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let layout = damaged_fixture(dir.path(), &clock);
    let (log_path, positions) = &layout[1];
    // A flipped byte inside the second batch of a sealed segment, and one in its
    // index so that the segment is recovered rather than trusted.
    flip_byte(log_path, positions[1] + 100);
    let index = log_path.with_extension("index");
    std::fs::write(&index, [0xffu8; 8]).unwrap();
    let log = open(dir.path(), &clock);
    let damaged_base = {
        let base: i64 = log_path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        base + 2
    };
    let expected: Vec<i64> = (0..30).map(|i| i * 2).filter(|o| *o != damaged_base).collect();
    assert_eq!(stored_base_offsets(&log), expected, "only the damaged batch is gone");
    assert_eq!(log.log_end_offset(), 60);
    assert_eq!(damage_files(dir.path()).len(), 1, "a copy of the damaged bytes is kept");
    // The repair is durable: the next start finds nothing to do.
    log.close().unwrap();
    let log = open(dir.path(), &clock);
    assert_eq!(stored_base_offsets(&log), expected);
    log.append(&batch(1, 0, Compression::None)).unwrap();
    assert_eq!(log.log_end_offset(), 61);
}

#[test]
fn a_damaged_length_field_is_skipped_by_finding_the_next_valid_batch() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let layout = damaged_fixture(dir.path(), &clock);
    // The last segment after a clean shutdown is durable as a whole: a broken
    // length field in its first batch must not cut the batches behind it.
    let (log_path, positions) = layout.last().unwrap();
    assert!(positions.len() >= 2);
    flip_byte(log_path, positions[0] + 9);
    let log = open(dir.path(), &clock);
    let first_lost: i64 = log_path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let expected: Vec<i64> = (0..30).map(|i| i * 2).filter(|o| *o != first_lost).collect();
    assert_eq!(stored_base_offsets(&log), expected);
    assert_eq!(log.log_end_offset(), 60);
}

#[test]
fn a_flipped_base_offset_costs_that_batch_not_the_ones_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let layout = damaged_fixture(dir.path(), &clock);
    let (log_path, positions) = &layout[1];
    // baseOffset is outside the CRC: a flipped bit makes the batch claim offsets far
    // ahead, and every intact batch after it seem to overlap.
    flip_byte(log_path, positions[1] + 4);
    std::fs::write(log_path.with_extension("index"), [0xffu8; 8]).unwrap();
    let log = open(dir.path(), &clock);
    let base: i64 = log_path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let expected: Vec<i64> = (0..30).map(|i| i * 2).filter(|o| *o != base + 2).collect();
    assert_eq!(stored_base_offsets(&log), expected);
    assert_eq!(log.log_end_offset(), 60);
}

#[test]
fn a_flipped_base_offset_at_a_segment_boundary_stops_the_open_and_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let layout = damaged_fixture(dir.path(), &clock);
    let (log_path, positions) = &layout[1];
    flip_byte(log_path, *positions.last().unwrap() + 4);
    std::fs::write(log_path.with_extension("index"), [0xffu8; 8]).unwrap();
    let error = Log::open(dir.path(), small_config(), clock.clone()).err().unwrap();
    assert!(error.is_corrupt_storage(), "{error:?}");
    assert!(error.to_string().contains("strom storage verify"), "{error}");
    for (path, _) in &layout {
        assert!(std::fs::metadata(path).unwrap().len() > 0, "{} kept", path.display());
    }
}

#[test]
fn damage_at_the_end_never_hands_out_flushed_offsets_again() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let layout = damaged_fixture(dir.path(), &clock);
    let (log_path, positions) = layout.last().unwrap();
    // A broken length field in the last batch of the last segment: damage to the end.
    flip_byte(log_path, *positions.last().unwrap() + 9);
    let log = open(dir.path(), &clock);
    assert_eq!(log.log_end_offset(), 60, "offsets below the recovery point stay used");
    let info = log.append(&batch(1, 0, Compression::None)).unwrap();
    assert_eq!(info.base_offset, 60);
    assert_eq!(stored_base_offsets(&log).len(), 30);
}

#[test]
fn a_torn_tail_above_the_recovery_point_is_still_cut() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), &clock);
    log.append(&batch(1, 0, Compression::None)).unwrap();
    log.flush().unwrap();
    log.append(&batch(1, 1, Compression::None)).unwrap();
    log.append(&batch(1, 2, Compression::None)).unwrap();
    let active = log.active_segment().log_path().to_path_buf();
    let positions = {
        let mut positions = Vec::new();
        log.active_segment()
            .for_each_batch(|p, _| {
                positions.push(p);
                Ok(true)
            })
            .unwrap();
        positions
    };
    drop(log);
    // Unflushed data may be torn: recovery cuts at the first bad batch above the
    // recovery point, as before.
    flip_byte(&active, positions[1] + 70);
    let log = open(dir.path(), &clock);
    assert_eq!(log.log_end_offset(), 1);
    assert!(damage_files(dir.path()).is_empty());
}
