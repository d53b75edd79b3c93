//! The partition's own rules: high watermark, last stable offset, isolation and
//! producer state, on a real log in a temporary directory.

use std::sync::Arc;

use strom_log::{LogConfig, RecordBatchBuilder, SystemClock};

use super::*;

const CLIENT: AppendLimits = AppendLimits {
    max_message_bytes: 1 << 20,
    require_keys: false,
    txn_guard: TxnGuard::Unchecked,
};

fn open(dir: &std::path::Path) -> Partition {
    Partition::open(Arc::from("t"), 0, dir, LogConfig::default(), Arc::new(SystemClock), 1).unwrap()
}

fn records(count: usize) -> Vec<u8> {
    let mut builder = RecordBatchBuilder::new();
    for i in 0..count {
        builder.push(1_000 + i as i64, Some(b"k"), Some(b"v"));
    }
    builder.build().unwrap()
}

fn idempotent(producer_id: i64, sequence: i32, count: usize, transactional: bool) -> Vec<u8> {
    let mut builder = RecordBatchBuilder::new()
        .producer(producer_id, 0, sequence)
        .flags(transactional, false);
    for i in 0..count {
        builder.push(1_000 + i as i64, Some(b"k"), Some(b"v"));
    }
    builder.build().unwrap()
}

#[test]
fn the_high_watermark_follows_the_log_end_after_each_append() {
    let dir = tempfile::tempdir().unwrap();
    let partition = open(dir.path());
    assert_eq!((partition.high_watermark(), partition.log_end_offset()), (0, 0));
    let info = partition.append(&records(3), AppendOrigin::Client, CLIENT).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 2));
    assert_eq!(partition.high_watermark(), 3);
    partition
        .append(&records(2), AppendOrigin::Coordinator, CLIENT)
        .unwrap();
    assert_eq!(partition.high_watermark(), 5);
    assert_eq!(partition.last_stable_offset(), 5, "no transaction: the LSO is the HW");
}

#[test]
fn a_reopened_partition_starts_with_the_high_watermark_at_the_recovered_log_end() {
    let dir = tempfile::tempdir().unwrap();
    {
        let partition = open(dir.path());
        partition.append(&records(4), AppendOrigin::Client, CLIENT).unwrap();
        partition.close().unwrap();
    }
    let partition = open(dir.path());
    assert_eq!(partition.high_watermark(), 4);
}

#[test]
fn an_open_transaction_holds_the_last_stable_offset_until_its_marker() {
    let dir = tempfile::tempdir().unwrap();
    let partition = open(dir.path());
    partition.append(&records(2), AppendOrigin::Client, CLIENT).unwrap();
    partition
        .append(&idempotent(7, 0, 3, true), AppendOrigin::Client, CLIENT)
        .unwrap();
    assert_eq!(partition.high_watermark(), 5);
    assert_eq!(partition.last_stable_offset(), 2, "the transaction starts at 2");
    assert_eq!(partition.ongoing_txn(7), Some(2));

    let committed = partition.read(0, 1 << 20, FetchIsolation::TxnCommitted).unwrap();
    let last = strom_log::BatchIter::new(&committed.records).last().unwrap().0;
    assert_eq!(
        last.last_offset(),
        1,
        "read_committed stops before the open transaction"
    );
    let inside = partition.read(3, 1 << 20, FetchIsolation::TxnCommitted).unwrap();
    assert!(
        inside.records.is_empty(),
        "inside the transaction: nothing yet, not out of range"
    );
    let uncommitted = partition.read(0, 1 << 20, FetchIsolation::HighWatermark).unwrap();
    let last = strom_log::BatchIter::new(&uncommitted.records).last().unwrap().0;
    assert_eq!(last.last_offset(), 4);

    let marker = partition.append_marker(7, 0, false, 0).unwrap();
    assert_eq!(marker, 5);
    assert_eq!(partition.high_watermark(), 6);
    assert_eq!(partition.last_stable_offset(), 6);
    assert_eq!(partition.ongoing_txn(7), None);
    let after = partition.read(0, 1 << 20, FetchIsolation::TxnCommitted).unwrap();
    let aborted = after.aborted.unwrap();
    assert_eq!(aborted.len(), 1);
    assert_eq!((aborted[0].producer_id, aborted[0].first_offset), (7, 2));
}

#[test]
fn a_retried_batch_is_answered_with_its_first_offsets_and_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let partition = open(dir.path());
    let batch = idempotent(9, 0, 2, false);
    let first = partition.append(&batch, AppendOrigin::Client, CLIENT).unwrap();
    let retry = partition.append(&batch, AppendOrigin::Client, CLIENT).unwrap();
    assert_eq!(
        (retry.base_offset, retry.last_offset),
        (first.base_offset, first.last_offset)
    );
    assert_eq!(partition.log_end_offset(), 2);
    let gap = idempotent(9, 5, 1, false);
    assert!(matches!(
        partition.append(&gap, AppendOrigin::Client, CLIENT),
        Err(BrokerError::OutOfOrderSequence(_))
    ));
    assert_eq!(partition.high_watermark(), 2, "a refused append moves nothing");
    let states = partition.producer_states();
    assert_eq!(states.len(), 1);
    assert_eq!((states[0].producer_id, states[0].last_sequence), (9, 1));
}

#[test]
fn clients_cannot_write_control_batches_or_oversized_or_keyless_compacted_batches() {
    let dir = tempfile::tempdir().unwrap();
    let partition = open(dir.path());
    let mut control = RecordBatchBuilder::new().producer(1, 0, -1).flags(true, true);
    control.push(0, Some(&[0, 0, 0, 1]), Some(&[0, 0, 0, 0, 0, 0]));
    let control = control.build().unwrap();
    assert!(matches!(
        partition.append(&control, AppendOrigin::Client, CLIENT),
        Err(BrokerError::InvalidRecord(_))
    ));
    let small = AppendLimits {
        max_message_bytes: 10,
        ..CLIENT
    };
    assert!(matches!(
        partition.append(&records(1), AppendOrigin::Client, small),
        Err(BrokerError::MessageTooLarge { .. })
    ));
    let mut keyless = RecordBatchBuilder::new();
    keyless.push(0, Some(b"k"), Some(b"v"));
    keyless.push(0, None, Some(b"v"));
    let keyless = keyless.build().unwrap();
    let compacted = AppendLimits {
        require_keys: true,
        ..CLIENT
    };
    match partition.append(&keyless, AppendOrigin::Client, compacted) {
        Err(BrokerError::InvalidRecords(errors)) => assert_eq!(errors[0].0, 1),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(partition.log_end_offset(), 0);
}

#[test]
fn replicated_batches_keep_the_leaders_offsets_and_leave_the_high_watermark_to_the_leader() {
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = open(leader_dir.path());
    leader.append(&records(2), AppendOrigin::Client, CLIENT).unwrap();
    leader
        .append(&idempotent(4, 0, 3, true), AppendOrigin::Client, CLIENT)
        .unwrap();
    let copied = leader.read(0, 1 << 20, FetchIsolation::LogEnd).unwrap().records;

    let follower_dir = tempfile::tempdir().unwrap();
    let follower = open(follower_dir.path());
    let info = follower.append(&copied, AppendOrigin::Replication, CLIENT).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 4));
    assert_eq!(follower.log_end_offset(), 5);
    assert_eq!(
        follower.high_watermark(),
        0,
        "the leader tells followers their high watermark"
    );
    assert_eq!(
        follower.ongoing_txn(4),
        Some(2),
        "producer state follows the copied batches"
    );
    assert!(
        follower.append(&copied, AppendOrigin::Replication, CLIENT).is_err(),
        "a batch that does not continue the log is refused"
    );
}

#[test]
fn delete_records_stops_at_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let partition = open(dir.path());
    partition.append(&records(4), AppendOrigin::Client, CLIENT).unwrap();
    assert!(matches!(
        partition.delete_records(5),
        Err(BrokerError::OffsetOutOfRange { .. })
    ));
    assert_eq!(partition.delete_records(-1).unwrap(), 4);
    assert_eq!(partition.log_start_offset(), 4);
    assert!(matches!(
        partition.read(0, 100, FetchIsolation::HighWatermark),
        Err(BrokerError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn log_end_isolation_reads_what_the_high_watermark_hides() {
    let dir = tempfile::tempdir().unwrap();
    let partition = open(dir.path());
    partition.append(&records(1), AppendOrigin::Client, CLIENT).unwrap();
    let all = partition.read(0, 1 << 20, FetchIsolation::LogEnd).unwrap();
    assert!(!all.records.is_empty());
    assert_eq!(FetchIsolation::from_isolation_level(1), FetchIsolation::TxnCommitted);
    assert_eq!(FetchIsolation::from_isolation_level(0), FetchIsolation::HighWatermark);
}
