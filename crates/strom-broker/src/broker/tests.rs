//! The broker's catalog and storage rules on a real data directory.
use std::path::Path;

use super::*;

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

fn create(b: &Broker, name: &str, partitions: i32) -> Uuid {
    b.create_topic(
        NewTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: 1,
            ..Default::default()
        },
        false,
    )
    .unwrap()
    .id
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn directories_of_a_topic_the_metadata_deleted_are_set_aside_never_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let saved = tempfile::tempdir().unwrap();
    let id = {
        let b = broker(dir.path());
        let id = create(&b, "gone", 2);
        copy_dir(&dir.path().join("gone-0"), &saved.path().join("gone-0"));
        b.delete_topic("gone").unwrap();
        assert!(!dir.path().join("gone-0").exists() && !dir.path().join("gone-1").exists());
        b.shutdown().unwrap();
        id
    };
    // As if the node had crashed after the deletion was committed, before its
    // directories went: the next start does not know the topic and sets them aside.
    copy_dir(&saved.path().join("gone-0"), &dir.path().join("gone-0"));
    let b = broker(dir.path());
    assert!(b.topic("gone").is_none());
    assert!(!dir.path().join("gone-0").exists());
    assert!(dir
        .path()
        .join(format!("gone-0.{}-stray", id.simple()))
        .join("partition.metadata")
        .exists());
}

#[test]
fn a_single_node_data_directory_is_migrated_into_the_metadata_log() {
    let dir = tempfile::tempdir().unwrap();
    let (id, cluster_id) = {
        let b = broker(dir.path());
        let id = create(&b, "old", 2);
        let topic = b.topic("old").unwrap();
        let partition = topic.partition(1).unwrap();
        for _ in 0..10 {
            let mut builder = strom_log::RecordBatchBuilder::new();
            builder.push(1, Some(b"k"), Some(b"v"));
            b.append(&topic, &partition, &builder.build().unwrap(), AppendOrigin::Client)
                .unwrap();
        }
        let cluster_id = b.cluster_id().to_string();
        b.shutdown().unwrap();
        (id, cluster_id)
    };
    // Rewind the directory to what the single-node version left: no metadata log,
    // topics.json, producer-ids, and meta.properties without a directory id.
    std::fs::remove_dir_all(dir.path().join(strom_cluster::METADATA_DIR)).unwrap();
    std::fs::write(
        dir.path().join("topics.json"),
        format!(r#"{{"topics":[{{"name":"old","id":"{id}","partitions":2,"configs":{{"retention.ms":"12345"}}}}]}}"#),
    )
    .unwrap();
    std::fs::write(dir.path().join("producer-ids"), "5000").unwrap();
    std::fs::write(
        dir.path().join("meta.properties"),
        format!("version=1\ncluster.id={cluster_id}\nnode.id=1\n"),
    )
    .unwrap();

    let b = broker(dir.path());
    assert_eq!(b.cluster_id(), cluster_id, "the cluster keeps its id");
    let topic = b.topic("old").unwrap();
    assert_eq!((topic.id(), topic.partition_count()), (id, 2));
    assert_eq!(topic.overrides().get("retention.ms").map(String::as_str), Some("12345"));
    assert_eq!(topic.partition(1).unwrap().log_end_offset(), 10, "the data is kept");
    assert!(b.next_producer_id().unwrap() >= 5000, "producer ids are never reused");
    assert!(!dir.path().join("topics.json").exists());
    assert!(dir.path().join("topics.json.migrated").exists());
    b.shutdown().unwrap();
    drop(b);
    // Migrated once: the next start finds everything in the log.
    let b = broker(dir.path());
    assert_eq!(b.topic("old").unwrap().partition(1).unwrap().log_end_offset(), 10);
    let properties = std::fs::read_to_string(dir.path().join("meta.properties")).unwrap();
    assert!(properties.contains("directory.id="), "{properties}");
}

#[test]
fn a_data_directory_of_another_cluster_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    broker(dir.path()).shutdown().unwrap();
    let mut config = BrokerConfig::new(dir.path());
    config.cluster_id = Some("AnotherClusterIdAAAAAA".into());
    let error = Broker::open(config).err().unwrap().to_string();
    assert!(error.contains("belongs to cluster"), "{error}");
    // The metadata log fixed the id: a wiped meta.properties does not change it.
    std::fs::remove_file(dir.path().join("meta.properties")).unwrap();
    let mut config = BrokerConfig::new(dir.path());
    config.cluster_id = Some("AnotherClusterIdAAAAAA".into());
    let error = Broker::open(config).err().unwrap().to_string();
    assert!(error.contains("metadata quorum is cluster"), "{error}");
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
