//! Follower truncation for every divergence shape (Vanlightly's cases, KIP-101 and
//! KIP-279's iterated case), on real logs: the leader answers as its fetch path does
//! ([`diverging_epoch`]), the follower truncates ([`truncation_offset`]) and fetches
//! again until the leader has nothing to object, then copies the rest. Afterwards the
//! follower's log is the leader's, byte for byte.

use std::sync::Arc;

use strom_log::batch::{set_base_offset, set_partition_leader_epoch};
use strom_log::{Log, LogConfig, ManualClock, RecordBatchBuilder};

use super::truncation_offset;
use crate::replication::diverging_epoch;

/// A log holding batches of `(epoch, records)` in order. A record's value is made of
/// its epoch and offset: a batch of one epoch at one offset is the same batch on every
/// replica (only one leader writes in an epoch), while records a follower got in an
/// epoch the leader never saw differ from the leader's at the same offsets.
fn log_with(dir: &std::path::Path, batches: &[(i32, usize)], value: &str) -> Log {
    let log = Log::open(dir, LogConfig::default(), Arc::new(ManualClock::new(0))).unwrap();
    let mut offset = 0;
    for (epoch, records) in batches {
        let mut builder = RecordBatchBuilder::new();
        for i in 0..*records {
            builder.push(1, None, Some(format!("{value}-e{epoch}-{offset}-{i}").as_bytes()));
        }
        let mut batch = builder.build().unwrap();
        set_base_offset(&mut batch, offset).unwrap();
        set_partition_leader_epoch(&mut batch, *epoch).unwrap();
        log.append_as_follower(&batch).unwrap();
        offset += *records as i64;
    }
    log
}

fn bytes(log: &Log) -> Vec<u8> {
    log.read(log.log_start_offset(), 1 << 20, i64::MAX)
        .unwrap()
        .records
        .to_vec()
}

/// Replicates until the follower's log is the leader's; returns the truncations made.
fn replicate(leader: &Log, follower: &Log) -> Vec<i64> {
    let mut truncations = Vec::new();
    for _ in 0..10 {
        let last_epoch = follower.latest_leader_epoch().unwrap_or(-1);
        let fetch_offset = follower.log_end_offset();
        match diverging_epoch(leader, last_epoch, fetch_offset) {
            Some(diverging) => {
                let local = follower.end_offset_for_leader_epoch(diverging.0);
                let offset = truncation_offset(diverging, local, fetch_offset, 0);
                follower.truncate_to(offset).unwrap();
                truncations.push(follower.log_end_offset());
            }
            None => {
                let rest = leader.read(fetch_offset, 1 << 20, i64::MAX).unwrap().records;
                if !rest.is_empty() {
                    follower.append_as_follower(&rest).unwrap();
                }
                assert_eq!(bytes(follower), bytes(leader), "the follower's log is the leader's");
                assert_eq!(follower.leader_epoch_entries(), leader_batch_epochs(leader));
                return truncations;
            }
        }
    }
    panic!("no agreement after 10 rounds: {truncations:?}");
}

/// The leader's epochs that hold records (a follower learns epochs from batches).
fn leader_batch_epochs(leader: &Log) -> Vec<strom_log::leader_epoch::EpochEntry> {
    let end = leader.log_end_offset();
    leader
        .leader_epoch_entries()
        .into_iter()
        .filter(|e| e.start_offset < end)
        .collect()
}

fn case(leader: &[(i32, usize)], follower: &[(i32, usize)], expected_truncations: &[i64]) {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = log_with(a.path(), leader, "r");
    let follower_log = log_with(b.path(), follower, "r");
    assert_eq!(replicate(&leader, &follower_log), expected_truncations);
}

#[test]
fn a_follower_behind_in_the_same_epoch_only_appends() {
    case(&[(1, 3), (1, 2)], &[(1, 3)], &[]);
}

#[test]
fn an_empty_follower_copies_everything() {
    case(&[(1, 3), (2, 2)], &[], &[]);
}

#[test]
fn a_leader_ahead_in_a_newer_epoch_only_appends() {
    case(&[(1, 3), (3, 2)], &[(1, 3)], &[]);
}

#[test]
fn a_follower_ahead_in_the_same_epoch_cuts_its_unreplicated_tail() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = log_with(a.path(), &[(1, 3)], "x");
    // The follower has the leader's three records and two more the leader lost.
    let follower = log_with(b.path(), &[(1, 3)], "x");
    let mut builder = RecordBatchBuilder::new();
    builder.push(1, None, Some(b"lost"));
    builder.push(1, None, Some(b"lost"));
    let mut tail = builder.build().unwrap();
    set_base_offset(&mut tail, 3).unwrap();
    set_partition_leader_epoch(&mut tail, 1).unwrap();
    follower.append_as_follower(&tail).unwrap();
    // The leader then takes epoch 2 and writes at offset 3 (KIP-101's second case).
    leader.assign_leader_epoch(2).unwrap();
    let mut builder = RecordBatchBuilder::new();
    builder.push(1, None, Some(b"new"));
    let mut next = builder.build().unwrap();
    set_base_offset(&mut next, 3).unwrap();
    set_partition_leader_epoch(&mut next, 2).unwrap();
    leader.append_as_follower(&next).unwrap();
    assert_eq!(replicate(&leader, &follower), vec![3]);
}

#[test]
fn a_follower_with_an_epoch_the_leader_never_had_truncates_to_the_common_one() {
    // The follower led epoch 2 briefly; the leader went from 1 to 3.
    case(&[(1, 3), (3, 4)], &[(1, 3), (2, 2)], &[3]);
}

#[test]
fn a_follower_several_epochs_behind_catches_up() {
    case(&[(1, 2), (2, 2), (4, 2), (7, 3)], &[(1, 2)], &[]);
    case(&[(1, 2), (2, 2), (4, 2), (7, 3)], &[(1, 2), (2, 2)], &[]);
}

#[test]
fn epochs_with_no_records_on_the_leader_are_found() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = log_with(a.path(), &[(1, 3)], "leader");
    // Epochs 2 and 3 began at offset 3 and wrote nothing; epoch 4 writes.
    leader.assign_leader_epoch(2).unwrap();
    leader.assign_leader_epoch(3).unwrap();
    let follower = log_with(b.path(), &[(1, 3)], "leader");
    let mut builder = RecordBatchBuilder::new();
    builder.push(1, None, Some(b"zombie"));
    let mut zombie = builder.build().unwrap();
    set_base_offset(&mut zombie, 3).unwrap();
    set_partition_leader_epoch(&mut zombie, 2).unwrap();
    // A zombie write in epoch 2 that the leader of epoch 2 never replicated.
    follower.append_as_follower(&zombie).unwrap();
    assert_eq!(replicate(&leader, &follower), vec![3], "epoch 2 ended where it began");
}

#[test]
fn kip_279_divergence_is_resolved_by_iterating() {
    // Follower: epochs 1@0 and 3@4. Leader: 1@0 (shorter), 2@2 and 4@5. The first
    // answer names epoch 2, which the follower does not have; it truncates to where its
    // epoch 3 began, asks again with epoch 1, and cuts back to where the leader's epoch
    // 1 ended.
    case(&[(1, 2), (2, 3), (4, 2)], &[(1, 2), (1, 2), (3, 3)], &[4, 2]);
}

#[test]
fn truncation_offsets_follow_the_rules() {
    // Same epoch on both sides: the smaller end.
    assert_eq!(truncation_offset((3, 10), (3, 12), 15, 0), 10);
    assert_eq!(truncation_offset((3, 10), (3, 8), 15, 0), 8);
    // The follower does not know the epoch: the leader's end, bounded by its own.
    assert_eq!(truncation_offset((3, 10), (-1, -1), 15, 0), 10);
    assert_eq!(truncation_offset((3, 10), (-1, -1), 6, 0), 6);
    // The leader knows no epoch in common: keep what it committed.
    assert_eq!(truncation_offset((-1, -1), (-1, -1), 15, 7), 7);
}

#[test]
fn a_follower_that_led_an_epoch_without_records_drops_it() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = log_with(a.path(), &[(1, 3), (3, 2)], "r");
    let follower = log_with(b.path(), &[(1, 3)], "r");
    // It led epoch 2 at offset 3, wrote nothing, restarted and now follows epoch 3.
    follower.assign_leader_epoch(2).unwrap();
    assert_eq!(replicate(&leader, &follower), vec![3]);
}
