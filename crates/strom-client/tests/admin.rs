//! Admin against the real broker: topics, configs and partitions.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use strom_client::{Admin, ConfigChange, NewTopic, OffsetSpec, TopicPartition};

use common::*;

#[tokio::test]
async fn admin_creates_lists_describes_and_deletes_topics() {
    let broker = start_broker();
    let admin = Admin::new(config(&broker)).await.expect("admin");
    admin
        .create_topics(&[NewTopic::new("admin-topic", 2, 1).with_config("retention.ms", "3600000")])
        .await
        .expect("create");
    admin
        .wait_for_topic("admin-topic", Duration::from_secs(10))
        .await
        .expect("ready");
    let duplicate = admin.create_topics(&[NewTopic::new("admin-topic", 2, 1)]).await;
    assert_eq!(duplicate.err().and_then(|e| e.code()), Some(36), "TOPIC_ALREADY_EXISTS");

    let listed = admin.list_topics().await.expect("list");
    let listing = listed.iter().find(|t| t.name == "admin-topic").expect("listed");
    assert_eq!(listing.partitions, 2);

    let described = admin.describe_topics(&["admin-topic"]).await.expect("describe");
    let topic = &described[0];
    assert_eq!(topic.partitions.len(), 2);
    assert!(topic.partitions.iter().all(|p| p.leader >= 0));
    assert_eq!(
        topic.configs.get("retention.ms").and_then(|c| c.value.as_deref()),
        Some("3600000")
    );

    admin
        .create_partitions("admin-topic", 4)
        .await
        .expect("create partitions");
    admin
        .incremental_alter_configs("admin-topic", &[ConfigChange::set("retention.ms", "7200000")])
        .await
        .expect("alter");
    let described = admin.describe_topics(&["admin-topic"]).await.expect("describe again");
    assert_eq!(described[0].partitions.len(), 4);
    assert_eq!(
        described[0]
            .configs
            .get("retention.ms")
            .and_then(|c| c.value.as_deref()),
        Some("7200000")
    );

    let offsets = admin
        .list_offsets(&BTreeMap::from([
            (TopicPartition::new("admin-topic", 0), OffsetSpec::Earliest),
            (TopicPartition::new("admin-topic", 1), OffsetSpec::Latest),
        ]))
        .await
        .expect("list offsets");
    assert_eq!(
        offsets.get(&TopicPartition::new("admin-topic", 0)).map(|o| o.offset),
        Some(0)
    );
    assert_eq!(
        offsets.get(&TopicPartition::new("admin-topic", 1)).map(|o| o.offset),
        Some(0)
    );
    admin.list_groups().await.expect("list groups");

    admin.delete_topics(&["admin-topic"]).await.expect("delete");
    let listed = admin.list_topics().await.expect("list after delete");
    assert!(listed.iter().all(|t| t.name != "admin-topic"));
    let missing = admin.describe_topics(&["admin-topic"]).await;
    assert!(missing.is_err());
}
