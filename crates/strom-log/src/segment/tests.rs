use super::*;
use crate::batch::set_base_offset;
use crate::batch_builder::RecordBatchBuilder;

fn batch_at(base_offset: i64, records: usize, timestamp: i64) -> Vec<u8> {
    let mut builder = RecordBatchBuilder::new();
    for i in 0..records {
        builder.push(timestamp + i as i64, None, Some(&[7u8; 100]));
    }
    let mut batch = builder.build().unwrap();
    set_base_offset(&mut batch, base_offset).unwrap();
    batch
}

fn filled(dir: &Path, batches: usize) -> (LogSegment, Vec<Vec<u8>>) {
    let segment = LogSegment::create(dir, 10, 0).unwrap();
    let mut written = Vec::new();
    let mut offset = 10;
    for i in 0..batches {
        let batch = batch_at(offset, 3, 1000 + i as i64 * 10);
        segment.append(&batch, 500).unwrap();
        offset += 3;
        written.push(batch);
    }
    (segment, written)
}

#[test]
fn appends_reads_and_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, written) = filled(dir.path(), 20);
    assert_eq!(segment.next_offset(), 70);
    assert!(!segment.offset_index.is_empty());
    assert!(!segment.time_index.is_empty());
    let one = written[0].len();
    // offset 14 is inside batch 1 (offsets 13..=15)
    let bytes = segment.read(14, one * 2, i64::MAX).unwrap().unwrap();
    assert_eq!(&bytes[..], [written[1].clone(), written[2].clone()].concat());
    // first batch is whole even if max_bytes is tiny
    let bytes = segment.read(40, 1, i64::MAX).unwrap().unwrap();
    assert_eq!(&bytes[..], &written[10][..]);
    // max_offset stops before a batch
    let bytes = segment.read(10, usize::MAX / 2, 16).unwrap().unwrap();
    assert_eq!(bytes.len(), one * 2);
    assert!(segment.read(10, 100, 10).unwrap().unwrap().is_empty());
    assert!(segment.read(70, 100, i64::MAX).unwrap().is_none());
    assert_eq!(segment.max_timestamp().unwrap().timestamp, 1192);
    assert_eq!(segment.find_offset_for_timestamp(1051, 0).unwrap(), Some((26, 1051)));
    assert_eq!(segment.find_offset_for_timestamp(1053, 0).unwrap(), Some((28, 1060)));
    assert_eq!(segment.find_offset_for_timestamp(0, 30).unwrap(), Some((30, 1062)));
    assert_eq!(segment.find_offset_for_timestamp(5000, 0).unwrap(), None);
}

#[test]
fn load_and_recover_agree() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, written) = filled(dir.path(), 20);
    segment.seal().unwrap();
    drop(segment);
    let loaded = LogSegment::load(dir.path(), 10, 0, 500).unwrap();
    assert_eq!(loaded.next_offset(), 70);
    assert_eq!(loaded.max_timestamp().unwrap().timestamp, 1192);
    drop(loaded);
    let (recovered, cut) = LogSegment::open_and_recover(dir.path(), 10, 0, 500, i64::MAX).unwrap();
    assert_eq!(cut, 0);
    assert_eq!(recovered.next_offset(), 70);
    assert_eq!(recovered.size(), written.iter().map(Vec::len).sum::<usize>() as u64);
}

#[test]
fn recovery_cuts_torn_and_corrupt_tails() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, written) = filled(dir.path(), 5);
    let one = written[0].len() as u64;
    drop(segment);
    let path = dir.path().join(segment_file_name(10, LOG_FILE_SUFFIX));
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(one * 4 + 7).unwrap();
    file.write_all_at(&[0xAB], one * 2 + 70).unwrap();
    drop(file);
    // Nothing was flushed (no recovery point): the bad batch is where a write tore.
    let (segment, cut) = LogSegment::open_and_recover(dir.path(), 10, 0, 500, i64::MIN).unwrap();
    assert_eq!(cut, one * 2 + 7);
    assert_eq!(segment.next_offset(), 16);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), one * 2);
    drop(segment);
    // a trusted load of the already-cut file agrees
    let segment = LogSegment::load(dir.path(), 10, 0, 500).unwrap();
    assert_eq!(segment.next_offset(), 16);
}

#[test]
fn recovery_accepts_gaps_below_the_limit_and_rejects_overlaps() {
    let dir = tempfile::tempdir().unwrap();
    let segment = LogSegment::create(dir.path(), 10, 0).unwrap();
    // 12..=14, then a gap, then 20..=22, then an overlap at 21.
    for (base, count) in [(12, 3), (20, 3), (21, 1)] {
        segment.append(&batch_at(base, count, 1000), 500).unwrap();
    }
    drop(segment);
    let (segment, _) = LogSegment::open_and_recover(dir.path(), 10, 0, 500, i64::MAX).unwrap();
    assert_eq!(segment.next_offset(), 23);
    let bytes = segment.read(16, 1, i64::MAX).unwrap().unwrap();
    assert_eq!(validate_stored(&bytes).unwrap().base_offset, 20);
    drop(segment);
    let segment = LogSegment::load(dir.path(), 10, 0, 500).unwrap();
    assert_eq!(segment.next_offset(), 23);
    drop(segment);
    // A gap at or above the limit is damage: the batch and all after it go.
    let one = batch_at(12, 3, 1000).len() as u64;
    let (segment, cut) = LogSegment::open_and_recover(dir.path(), 10, 0, 500, 20).unwrap();
    assert_eq!(cut, one);
    assert_eq!(segment.next_offset(), 15);
    assert_eq!(segment.size(), one);
}

#[test]
fn truncate_to_removes_the_containing_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, written) = filled(dir.path(), 10);
    segment.truncate_to(20, 500).unwrap();
    assert_eq!(segment.next_offset(), 19);
    assert_eq!(segment.size(), 3 * written[0].len() as u64);
    segment.delete().unwrap();
    assert!(!segment.log_path().exists());
}
