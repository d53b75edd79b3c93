//! The broker's catalog and storage rules on a real data directory.
use std::path::Path;

use super::*;
use crate::constants::DELETE_DIR_SUFFIX;

fn broker(dir: &Path) -> Arc<Broker> {
    Broker::open(BrokerConfig::new(dir)).unwrap()
}

#[test]
fn topics_survive_reopen_and_names_collide_like_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let cluster_id;
    {
        let b = broker(dir.path());
        cluster_id = b.cluster_id().to_string();
        assert_eq!(cluster_id.len(), 22);
        let new = NewTopic {
            name: "a.b".into(),
            num_partitions: 3,
            replication_factor: -1,
            ..Default::default()
        };
        b.create_topic(new, false).unwrap();
        let clash = NewTopic {
            name: "a_b".into(),
            num_partitions: 1,
            replication_factor: 1,
            ..Default::default()
        };
        assert!(matches!(
            b.create_topic(clash, false),
            Err(BrokerError::InvalidTopic(_))
        ));
        b.incremental_alter_topic_configs(
            "a.b",
            &[("retention.ms".into(), AlterOp::Set, Some("1000".into()))],
            false,
        )
        .unwrap();
        b.shutdown().unwrap();
    }
    let b = broker(dir.path());
    assert_eq!(b.cluster_id(), cluster_id);
    let t = b.topic("a.b").unwrap();
    assert_eq!(t.partition_count(), 3);
    assert_eq!(t.overrides().get("retention.ms").map(String::as_str), Some("1000"));
}

#[test]
fn flush_messages_and_flush_ms_fsync_unflushed_records() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    b.create_topic(
        NewTopic {
            name: "f".into(),
            num_partitions: 1,
            replication_factor: 1,
            ..Default::default()
        },
        false,
    )
    .unwrap();
    let topic = b.topic("f").unwrap();
    let partition = topic.partition(0).unwrap();
    let record = || {
        let mut builder = strom_log::RecordBatchBuilder::new();
        builder.push(1, Some(b"k"), Some(b"v"));
        builder.build().unwrap()
    };
    // Defaults: nothing forces an fsync.
    b.append(&topic, &partition, &record(), AppendOrigin::Coordinator)
        .unwrap();
    assert!(!b.flush_due(&topic, &partition));
    b.flush_stale();
    assert_eq!(partition.unflushed_messages(), 1);

    let set = |name: &str, value: &str| {
        b.incremental_alter_topic_configs("f", &[(name.into(), AlterOp::Set, Some(value.into()))], false)
            .unwrap();
    };
    set("flush.messages", "3");
    b.append(&topic, &partition, &record(), AppendOrigin::Coordinator)
        .unwrap();
    assert!(!b.flush_due(&topic, &partition), "2 of 3 records wait");
    b.append(&topic, &partition, &record(), AppendOrigin::Coordinator)
        .unwrap();
    assert!(b.flush_due(&topic, &partition));
    partition.flush().unwrap();
    assert_eq!(partition.unflushed_messages(), 0);

    set("flush.ms", "0");
    b.append(&topic, &partition, &record(), AppendOrigin::Coordinator)
        .unwrap();
    assert_eq!(partition.unflushed_messages(), 1);
    b.flush_stale();
    assert_eq!(partition.unflushed_messages(), 0);
    set("flush.ms", "3600000");
    b.append(&topic, &partition, &record(), AppendOrigin::Coordinator)
        .unwrap();
    b.flush_stale();
    assert_eq!(partition.unflushed_messages(), 1, "the last fsync is recent");
}

#[test]
fn a_partition_metadata_file_that_does_not_parse_never_deletes_data() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("m-0").join("partition.metadata");
    let id = {
        let b = broker(dir.path());
        let summary = b
            .create_topic(
                NewTopic {
                    name: "m".into(),
                    num_partitions: 1,
                    replication_factor: 1,
                    ..Default::default()
                },
                false,
            )
            .unwrap();
        let topic = b.topic("m").unwrap();
        let partition = topic.partition(0).unwrap();
        for _ in 0..10 {
            let mut builder = strom_log::RecordBatchBuilder::new();
            builder.push(1, Some(b"k"), Some(b"v"));
            b.append(&topic, &partition, &builder.build().unwrap(), AppendOrigin::Client)
                .unwrap();
        }
        b.shutdown().unwrap();
        summary.id
    };
    let end = |dir: &Path| broker(dir).partition("m", 0).unwrap().log_end_offset();
    // One extra newline (and spacing): still ours, the data stays.
    std::fs::write(&marker, format!("version: 0\n\ntopic_id:  {id}\n\n")).unwrap();
    assert_eq!(end(dir.path()), 10);
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        format!("version: 0\ntopic_id: {id}\n"),
        "the marker is rewritten in its canonical form"
    );
    // Garbage: refuse to start, say which file, and keep the data.
    std::fs::write(&marker, "version: 0\ntopic_id: 12\x00garbage\n").unwrap();
    let error = Broker::open(BrokerConfig::new(dir.path())).err().unwrap().to_string();
    assert!(
        error.contains("partition.metadata") && error.contains("does not parse"),
        "{error}"
    );
    assert!(dir.path().join("m-0").join("00000000000000000000.log").exists());
    // Deleting the damaged file is the documented fix: the data is adopted again.
    std::fs::remove_file(&marker).unwrap();
    assert_eq!(end(dir.path()), 10);
    // A well-formed marker of another topic id: an earlier topic's leftovers.
    std::fs::write(&marker, format!("version: 0\ntopic_id: {}\n", Uuid::new_v4())).unwrap();
    assert_eq!(end(dir.path()), 0);
}

#[test]
fn a_start_finishes_a_deletion_committed_by_renaming_the_directories() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let b = broker(dir.path());
        let summary = b
            .create_topic(
                NewTopic {
                    name: "gone".into(),
                    num_partitions: 2,
                    replication_factor: 1,
                    ..Default::default()
                },
                false,
            )
            .unwrap();
        b.shutdown().unwrap();
        summary.id
    };
    // As a delete on a full disk leaves it: directories renamed, topics.json not
    // rewritten (partition 1 not renamed yet either).
    std::fs::rename(
        dir.path().join("gone-0"),
        dir.path().join(format!("gone-0.{}{DELETE_DIR_SUFFIX}", id.simple())),
    )
    .unwrap();
    let b = broker(dir.path());
    assert!(b.topic("gone").is_none());
    assert!(!dir.path().join("gone-1").exists());
    assert!(!std::fs::read_to_string(dir.path().join("topics.json"))
        .unwrap()
        .contains("gone"));
}

#[test]
fn a_second_broker_cannot_open_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _first = broker(dir.path());
    assert!(Broker::open(BrokerConfig::new(dir.path())).is_err());
}

#[test]
fn partitions_only_grow_and_deleted_topics_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    b.create_topic(
        NewTopic {
            name: "t".into(),
            num_partitions: 2,
            replication_factor: 1,
            ..Default::default()
        },
        false,
    )
    .unwrap();
    assert!(matches!(
        b.create_partitions("t", 1, false),
        Err(BrokerError::InvalidPartitions(_))
    ));
    b.create_partitions("t", 4, false).unwrap();
    assert_eq!(b.topic("t").unwrap().partition_count(), 4);
    b.delete_topic("t").unwrap();
    assert!(b.topic("t").is_none());
    assert!(!dir.path().join("t-0").exists());
    let rf3 = NewTopic {
        name: "x".into(),
        num_partitions: 1,
        replication_factor: 3,
        ..Default::default()
    };
    assert!(matches!(
        b.create_topic(rf3, false),
        Err(BrokerError::InvalidReplicationFactor(_))
    ));
}
