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

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn bounds() -> crate::dynamic_config::GroupConfigBounds {
    crate::group::GroupConfig::default().group_config_bounds()
}

#[test]
fn a_configs_record_committed_elsewhere_is_applied_by_sync_metadata() {
    use strom_cluster::ConfigScope;
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    create(&b, "t", 1);
    let topic = b.topic("t").unwrap();
    let configs = |resource: ConfigScope, pairs: &[(&str, &str)]| {
        // As another node commits: through the quorum, without this broker's sync.
        b.quorum()
            .propose(vec![MetadataRecord::Configs {
                resource,
                configs: map(pairs),
            }])
            .unwrap();
    };
    configs(
        ConfigScope::ClusterDefault,
        &[("message.max.bytes", "2000"), ("max.connections", "7")],
    );
    configs(ConfigScope::Broker(2), &[("message.max.bytes", "3000")]);
    configs(
        ConfigScope::Group("g".into()),
        &[("consumer.session.timeout.ms", "50000")],
    );
    assert_eq!(topic.limits().max_message_bytes, 1048588, "not synced yet");
    assert!(b.group_configs("g").is_empty());

    b.sync_metadata().unwrap();
    assert_eq!(
        b.defaults().dynamic_default,
        map(&[("message.max.bytes", "2000"), ("max.connections", "7")])
    );
    assert!(
        b.defaults().dynamic_broker.is_empty(),
        "another broker's configs are its own"
    );
    assert_eq!(topic.limits().max_message_bytes, 2000);
    assert_eq!(b.dynamic_setting("max.connections").as_deref(), Some("7"));
    assert_eq!(b.group_configs("g"), map(&[("consumer.session.timeout.ms", "50000")]));

    // This broker's own beat the cluster default; an empty set removes a scope.
    configs(ConfigScope::Broker(1), &[("message.max.bytes", "4000")]);
    configs(ConfigScope::Group("g".into()), &[]);
    b.sync_metadata().unwrap();
    assert_eq!(topic.limits().max_message_bytes, 4000);
    assert!(b.group_configs("g").is_empty());
    configs(ConfigScope::Broker(1), &[]);
    configs(ConfigScope::ClusterDefault, &[]);
    b.sync_metadata().unwrap();
    assert_eq!(topic.limits().max_message_bytes, 1048588);
    assert_eq!(b.dynamic_setting("max.connections"), None);
}

#[test]
fn dynamic_configs_are_committed_and_survive_a_restart() {
    use crate::dynamic_config::BrokerEntity;
    let dir = tempfile::tempdir().unwrap();
    {
        let b = broker(dir.path());
        create(&b, "t", 1);
        b.alter_broker_configs(
            BrokerEntity::ClusterDefault,
            map(&[("log.retention.ms", "1000")]),
            false,
        )
        .unwrap();
        b.incremental_alter_broker_configs(
            BrokerEntity::ThisBroker,
            &[("message.max.bytes".into(), AlterOp::Set, Some("5000".into()))],
            false,
        )
        .unwrap();
        // Refused and validate-only changes commit nothing.
        assert!(matches!(
            b.alter_broker_configs(BrokerEntity::ThisBroker, map(&[("log.dirs", "/x")]), false),
            Err(BrokerError::InvalidRequest(_))
        ));
        b.alter_broker_configs(BrokerEntity::ThisBroker, map(&[("message.max.bytes", "6000")]), true)
            .unwrap();
        let heartbeat = (
            "consumer.heartbeat.interval.ms".to_string(),
            AlterOp::Set,
            Some("6000".into()),
        );
        b.alter_group_configs("g", false, &[heartbeat], bounds(), false)
            .unwrap();
        assert_eq!(b.topic("t").unwrap().limits().max_message_bytes, 5000);
        let image = b.quorum().applied().image.clone();
        assert_eq!(
            image.configs(&strom_cluster::ConfigScope::Broker(1)),
            Some(&map(&[("message.max.bytes", "5000")]))
        );
        b.shutdown().unwrap();
    }
    assert!(
        !dir.path().join(crate::constants::DYNAMIC_CONFIGS_FILE).exists(),
        "no file any more"
    );
    let b = broker(dir.path());
    assert_eq!(b.defaults().dynamic_default, map(&[("log.retention.ms", "1000")]));
    assert_eq!(b.defaults().dynamic_broker, map(&[("message.max.bytes", "5000")]));
    assert_eq!(b.topic("t").unwrap().limits().max_message_bytes, 5000);
    assert_eq!(b.group_configs("g"), map(&[("consumer.heartbeat.interval.ms", "6000")]));
    // Incremental changes build on what the log has.
    b.incremental_alter_broker_configs(
        BrokerEntity::ClusterDefault,
        &[("log.retention.ms".into(), AlterOp::Delete, None)],
        false,
    )
    .unwrap();
    assert!(b.defaults().dynamic_default.is_empty());
    assert!(b
        .quorum()
        .applied()
        .image
        .configs(&strom_cluster::ConfigScope::ClusterDefault)
        .is_none());
}

#[test]
fn dynamic_configs_of_the_previous_version_are_migrated_into_the_metadata_log() {
    use crate::constants::{DYNAMIC_CONFIGS_FILE, DYNAMIC_CONFIGS_FILE_MIGRATED};
    use strom_cluster::ConfigScope;
    let dir = tempfile::tempdir().unwrap();
    {
        let b = broker(dir.path());
        create(&b, "t", 1);
        // Set in the metadata already (by another node, say): the file does not win.
        b.quorum()
            .propose(vec![
                MetadataRecord::Configs {
                    resource: ConfigScope::ClusterDefault,
                    configs: map(&[("log.retention.ms", "111")]),
                },
                MetadataRecord::Configs {
                    resource: ConfigScope::Group("kept".into()),
                    configs: map(&[("consumer.session.timeout.ms", "50000")]),
                },
            ])
            .unwrap();
        b.shutdown().unwrap();
    }
    // What the previous version kept in the data directory.
    std::fs::write(
        dir.path().join(DYNAMIC_CONFIGS_FILE),
        r#"{
  "broker": {"message.max.bytes": "2000", "max.connections": "9"},
  "cluster_default": {"log.retention.ms": "999"},
  "groups": {
    "g": {"consumer.heartbeat.interval.ms": "6000"},
    "kept": {"consumer.session.timeout.ms": "60000"}
  }
}"#,
    )
    .unwrap();

    let check = |b: &Broker| {
        assert_eq!(
            b.defaults().dynamic_broker,
            map(&[("message.max.bytes", "2000"), ("max.connections", "9")])
        );
        assert_eq!(b.defaults().dynamic_default, map(&[("log.retention.ms", "111")]));
        assert_eq!(b.group_configs("g"), map(&[("consumer.heartbeat.interval.ms", "6000")]));
        assert_eq!(
            b.group_configs("kept"),
            map(&[("consumer.session.timeout.ms", "50000")])
        );
        assert_eq!(b.topic("t").unwrap().limits().max_message_bytes, 2000);
        assert_eq!(b.dynamic_setting("max.connections").as_deref(), Some("9"));
    };
    let b = broker(dir.path());
    check(&b);
    assert!(!dir.path().join(DYNAMIC_CONFIGS_FILE).exists());
    assert!(dir.path().join(DYNAMIC_CONFIGS_FILE_MIGRATED).exists());
    b.shutdown().unwrap();
    drop(b);
    // Migrated once: the next start finds the configs in the log.
    check(&broker(dir.path()));
}

/// A free port on 127.0.0.1: bound to port 0, then released for the quorum to bind.
fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

#[test]
fn a_cluster_default_set_through_one_node_applies_on_the_other() {
    use crate::dynamic_config::BrokerEntity;
    let dirs = tempfile::tempdir().unwrap();
    let voters: BTreeMap<u64, String> = (1..=2).map(|id| (id, free_addr())).collect();
    // Both nodes start at once: each waits for the quorum of both.
    let starting: Vec<_> = (1..=2)
        .map(|id| {
            let mut config = BrokerConfig::new(dirs.path().join(format!("node-{id}")));
            config.node_id = id;
            let mut quorum = strom_cluster::QuorumConfig::single(id as u64, &config.data_dir);
            quorum.voters = voters.clone();
            quorum.election_timeout_min_ms = 300;
            quorum.election_timeout_max_ms = 600;
            config.quorum = Some(quorum);
            std::thread::spawn(move || Broker::open(config).unwrap())
        })
        .collect();
    let nodes: Vec<Arc<Broker>> = starting.into_iter().map(|t| t.join().unwrap()).collect();
    let (one, two) = (&nodes[0], &nodes[1]);
    // Both registrations applied before node 2 is named in an assignment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while one.quorum().applied().image.brokers().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "node 2 never registered");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let hosted_on_two = NewTopic {
        name: "t".into(),
        assignments: vec![(0, vec![2])],
        num_partitions: -1,
        replication_factor: -1,
        ..Default::default()
    };
    one.create_topic(hosted_on_two, false).unwrap();
    one.alter_broker_configs(
        BrokerEntity::ClusterDefault,
        map(&[("message.max.bytes", "2000")]),
        false,
    )
    .unwrap();
    one.alter_broker_configs(BrokerEntity::ThisBroker, map(&[("message.max.bytes", "3000")]), false)
        .unwrap();
    let heartbeat = (
        "consumer.heartbeat.interval.ms".to_string(),
        AlterOp::Set,
        Some("6000".into()),
    );
    one.alter_group_configs("g", false, &[heartbeat], bounds(), false)
        .unwrap();

    // What the background loop does when node 2 applies the commits.
    let index = one.quorum().applied().index();
    two.quorum().wait_applied(index, Duration::from_secs(15)).unwrap();
    two.sync_metadata().unwrap();
    assert_eq!(two.defaults().dynamic_default, map(&[("message.max.bytes", "2000")]));
    assert!(
        two.defaults().dynamic_broker.is_empty(),
        "node 1's own configs stay its own"
    );
    assert_eq!(two.topic("t").unwrap().limits().max_message_bytes, 2000);
    assert_eq!(
        two.group_configs("g"),
        map(&[("consumer.heartbeat.interval.ms", "6000")])
    );
    assert_eq!(one.defaults().dynamic_broker, map(&[("message.max.bytes", "3000")]));
    for node in &nodes {
        node.shutdown().unwrap();
    }
}
