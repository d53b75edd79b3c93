//! Tests of [`Log::append_as_follower`] and of the log's leader epoch cache.

use std::sync::Arc;

use super::{batch, open};
use crate::batch::{set_base_offset, set_partition_leader_epoch, BatchIter};
use crate::clock::ManualClock;
use crate::compression::Compression;
use crate::constants::LEADER_EPOCH_CHECKPOINT_FILE_NAME;
use crate::error::LogError;
use crate::leader_epoch::EpochEntry;
use crate::log::Log;

/// A batch of `records` records as a leader stored it: at `base_offset`, in `epoch`.
fn leader_batch(base_offset: i64, records: usize, epoch: i32) -> Vec<u8> {
    let mut batch = batch(records, 1000 + base_offset, Compression::None);
    set_base_offset(&mut batch, base_offset).unwrap();
    set_partition_leader_epoch(&mut batch, epoch).unwrap();
    batch
}

fn epochs(pairs: &[(i32, i64)]) -> Vec<EpochEntry> {
    pairs
        .iter()
        .map(|&(epoch, start_offset)| EpochEntry { epoch, start_offset })
        .collect()
}

/// Every stored batch, raw, from the log start.
fn stored_bytes(log: &Log) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let read = log.read(next, 1 << 20, i64::MAX).unwrap();
        let Some((last, _)) = BatchIter::new(&read.records).last() else {
            break;
        };
        next = last.next_offset();
        bytes.extend_from_slice(&read.records);
    }
    bytes
}

#[test]
fn follower_appends_keep_the_leaders_offsets_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), &clock);
    let leader = [leader_batch(0, 2, 3), leader_batch(2, 1, 3), leader_batch(3, 2, 5)].concat();
    let info = log.append_as_follower(&leader).unwrap();
    assert_eq!((info.base_offset, info.last_offset, info.batch_count), (0, 4, 3));
    assert_eq!(info.log_append_time_ms, -1);
    assert_eq!(stored_bytes(&log), leader, "stored byte for byte");
    assert_eq!(log.leader_epoch_entries(), epochs(&[(3, 0), (5, 3)]));
    let more = leader_batch(5, 1, 5);
    assert_eq!(log.append_as_follower(&more).unwrap().base_offset, 5);
    assert_eq!(log.end_offset_for_leader_epoch(3), (3, 3));
    assert_eq!(log.end_offset_for_leader_epoch(5), (5, 6));
    assert_eq!(log.end_offset_for_leader_epoch(9), (-1, -1));
}

#[test]
fn follower_appends_that_do_not_continue_the_log_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), &clock);
    log.append_as_follower(&leader_batch(0, 2, 1)).unwrap();
    let refused = |batches: &[u8]| {
        let error = log.append_as_follower(batches).unwrap_err();
        assert!(matches!(error, LogError::NonContiguousReplication { .. }), "{error:?}");
    };
    refused(&leader_batch(3, 1, 1)); // gap after the log end
    refused(&leader_batch(1, 1, 1)); // overlap with the log
    refused(&[leader_batch(2, 1, 1), leader_batch(4, 1, 1)].concat()); // gap inside
    refused(&[leader_batch(2, 2, 1), leader_batch(3, 1, 1)].concat()); // overlap inside
    let mut corrupt = leader_batch(2, 1, 1);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(log.append_as_follower(&corrupt).unwrap_err().is_invalid_input());
    assert_eq!(log.log_end_offset(), 2, "nothing was written");
    assert_eq!(log.leader_epoch_entries(), epochs(&[(1, 0)]));
}

#[test]
fn follower_appends_survive_an_unclean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), &clock);
    let mut expected = Vec::new();
    for (index, epoch) in [1, 1, 2, 2, 2, 4, 4, 7].into_iter().enumerate() {
        let batch = leader_batch(index as i64 * 3, 3, epoch);
        log.append_as_follower(&batch).unwrap();
        expected.extend_from_slice(&batch);
        if index == 3 {
            log.flush().unwrap();
        }
    }
    assert!(log.segment_count() > 1);
    drop(log); // no close: the tail above the recovery point is recovered
    let log = open(dir.path(), &clock);
    assert_eq!(log.log_end_offset(), 24);
    assert_eq!(stored_bytes(&log), expected);
    assert_eq!(log.leader_epoch_entries(), epochs(&[(1, 0), (2, 6), (4, 15), (7, 21)]));
    // The leader's next batch still fits; a plain append goes on from the log end.
    log.append_as_follower(&leader_batch(24, 1, 7)).unwrap();
    assert_eq!(log.append(&batch(1, 0, Compression::None)).unwrap().base_offset, 25);
}

#[test]
fn appends_record_newer_leader_epochs_and_the_checkpoint_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), &clock);
    log.append(&batch(2, 0, Compression::None)).unwrap(); // unstamped (-1): no epoch
    assert_eq!(log.latest_leader_epoch(), None);
    log.append_stamped(&batch(2, 0, Compression::None), Some(4)).unwrap();
    log.append_stamped(&batch(2, 0, Compression::None), Some(4)).unwrap();
    log.append_stamped(&batch(1, 0, Compression::None), Some(2)).unwrap(); // older: ignored
    log.append_stamped(&batch(1, 0, Compression::None), Some(6)).unwrap();
    assert_eq!(log.leader_epoch_entries(), epochs(&[(4, 2), (6, 7)]));
    let checkpoint = dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE_NAME);
    assert_eq!(std::fs::read_to_string(&checkpoint).unwrap(), "0\n2\n4 2\n6 7\n");
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), &clock);
    assert_eq!(log.latest_leader_epoch(), Some(6));
    assert_eq!(log.end_offset_for_leader_epoch(4), (4, 7));
    assert_eq!(log.end_offset_for_leader_epoch(6), (6, 8));
}

#[test]
fn a_missing_or_unparsable_checkpoint_is_rebuilt_from_the_batches() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), &clock);
    for (index, epoch) in [0, 0, 3, 3, 5].into_iter().enumerate() {
        log.append_as_follower(&leader_batch(index as i64 * 2, 2, epoch))
            .unwrap();
    }
    log.close().unwrap();
    drop(log);
    let checkpoint = dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE_NAME);
    let expected = epochs(&[(0, 0), (3, 4), (5, 8)]);
    for damage in [None, Some("garbage\n"), Some("0\n5\n1 1\n")] {
        match damage {
            None => std::fs::remove_file(&checkpoint).unwrap(),
            Some(text) => std::fs::write(&checkpoint, text).unwrap(),
        }
        let log = open(dir.path(), &clock);
        assert_eq!(log.leader_epoch_entries(), expected, "{damage:?}");
        log.close().unwrap();
        assert_eq!(std::fs::read_to_string(&checkpoint).unwrap(), "0\n3\n0 0\n3 4\n5 8\n");
    }
}

#[test]
fn an_unclean_restart_replays_epochs_the_checkpoint_missed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), &clock);
    log.append_stamped(&batch(2, 0, Compression::None), Some(1)).unwrap();
    log.flush().unwrap();
    log.append_stamped(&batch(2, 0, Compression::None), Some(2)).unwrap();
    drop(log);
    // As if the crash came before the checkpoint write of epoch 2.
    let checkpoint = dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE_NAME);
    std::fs::write(&checkpoint, "0\n1\n1 0\n").unwrap();
    let log = open(dir.path(), &clock);
    assert_eq!(log.leader_epoch_entries(), epochs(&[(1, 0), (2, 2)]));
}

#[test]
fn truncation_and_log_start_advances_update_the_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), &clock);
    for (index, epoch) in [1, 1, 2, 2, 3, 3].into_iter().enumerate() {
        log.append_as_follower(&leader_batch(index as i64 * 2, 2, epoch))
            .unwrap();
    }
    assert_eq!(log.leader_epoch_entries(), epochs(&[(1, 0), (2, 4), (3, 8)]));
    log.truncate_to(8).unwrap(); // a follower cutting its divergent tail
    assert_eq!(log.leader_epoch_entries(), epochs(&[(1, 0), (2, 4)]));
    assert_eq!(log.end_offset_for_leader_epoch(2), (2, 8));
    log.delete_records(5).unwrap();
    assert_eq!(log.leader_epoch_entries(), epochs(&[(2, 5)]));
    log.append_as_follower(&leader_batch(8, 2, 4)).unwrap();
    assert_eq!(log.leader_epoch_entries(), epochs(&[(2, 5), (4, 8)]));
    drop(log);
    let log = open(dir.path(), &clock);
    assert_eq!(log.leader_epoch_entries(), epochs(&[(2, 5), (4, 8)]));
    // Truncating below the log start restarts the log: no old epoch applies.
    log.truncate_to(2).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 2));
    assert_eq!(log.leader_epoch_entries(), Vec::new());
}

#[test]
fn retention_moves_the_first_epoch_to_the_new_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let log = open(dir.path(), &clock);
    for index in 0..20 {
        let epoch = if index < 12 { 1 } else { 2 };
        log.append_as_follower(&leader_batch(index * 2, 2, epoch)).unwrap();
    }
    log.set_config(crate::log::LogConfig {
        retention_bytes: 6000,
        ..super::small_config()
    });
    assert!(log.apply_retention().unwrap() > 0);
    let start = log.log_start_offset();
    assert!(start > 0 && start < 24, "{start}: some epoch-1 records are left");
    assert_eq!(log.leader_epoch_entries(), epochs(&[(1, start), (2, 24)]));
    log.delete_records(30).unwrap();
    assert_eq!(log.leader_epoch_entries(), epochs(&[(2, 30)]));
}

#[test]
fn a_new_leaders_epoch_starts_at_the_log_end_even_without_records() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), &clock);
    log.append_as_follower(&leader_batch(0, 3, 1)).unwrap();
    assert!(log.assign_leader_epoch(2).unwrap());
    assert_eq!(
        log.leader_epoch_entries(),
        epochs(&[(1, 0), (2, 3)]),
        "known without records"
    );
    // A follower of epoch 2 is told epoch 2 ended where it began: it has no records.
    assert_eq!(log.end_offset_for_leader_epoch(2), (2, 3));
    // A newer epoch starting at the same offset replaces it, as in Kafka; epoch 2 is
    // then answered by its floor (epoch 1), which ends at the same offset.
    assert!(log.assign_leader_epoch(4).unwrap());
    assert!(
        !log.assign_leader_epoch(4).unwrap(),
        "the same epoch again changes nothing"
    );
    assert!(!log.assign_leader_epoch(3).unwrap(), "an older epoch changes nothing");
    assert_eq!(log.leader_epoch_entries(), epochs(&[(1, 0), (4, 3)]));
    assert_eq!(log.leader_epoch_start(4), Some(3));
    assert_eq!(log.leader_epoch_start(2), None);
    assert_eq!(log.end_offset_for_leader_epoch(2), (1, 3));
    drop(log);
    let reopened = open(dir.path(), &clock);
    assert_eq!(
        reopened.leader_epoch_entries(),
        epochs(&[(1, 0), (4, 3)]),
        "persisted with the log"
    );
}

#[test]
fn truncating_fully_restarts_the_log_at_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), &clock);
    log.append_as_follower(&[leader_batch(0, 2, 1), leader_batch(2, 2, 1)].concat())
        .unwrap();
    log.truncate_fully_and_start_at(10).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
    assert!(log.leader_epoch_entries().is_empty());
    log.append_as_follower(&leader_batch(10, 1, 3)).unwrap();
    assert_eq!(log.log_end_offset(), 11);
    // Restarting at the base of the current segment empties it in place.
    log.truncate_fully_and_start_at(10).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
    log.append_as_follower(&leader_batch(10, 2, 3)).unwrap();
    drop(log);
    let reopened = open(dir.path(), &clock);
    assert_eq!((reopened.log_start_offset(), reopened.log_end_offset()), (10, 12));
    assert_eq!(reopened.leader_epoch_entries(), epochs(&[(3, 10)]));
}

#[test]
fn truncating_at_the_log_end_forgets_an_epoch_that_began_there() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), &clock);
    log.append_as_follower(&leader_batch(0, 3, 1)).unwrap();
    // Led epoch 2 briefly and wrote nothing, then became a follower of epoch 3, whose
    // leader never had epoch 2: it answers that the logs part at the end of epoch 1.
    log.assign_leader_epoch(2).unwrap();
    log.truncate_to(3).unwrap();
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.latest_leader_epoch(), Some(1), "the next fetch names epoch 1");
}
