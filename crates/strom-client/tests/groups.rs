//! Consumer groups against the real broker: classic (eager and cooperative) and KIP-848
//! members, commits and pattern subscriptions.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use strom_client::{
    Admin, Assignor, Client, Consumer, ConsumerConfig, GroupProtocol, RebalanceListener, TopicPartition,
};

use common::*;

#[derive(Default)]
struct Recorder {
    events: std::sync::Mutex<Vec<String>>,
}

impl RebalanceListener for Recorder {
    fn on_revoked(&self, partitions: &[TopicPartition]) {
        self.events
            .lock()
            .expect("lock")
            .push(format!("revoked {}", partitions.len()));
    }
    fn on_assigned(&self, partitions: &[TopicPartition]) {
        self.events
            .lock()
            .expect("lock")
            .push(format!("assigned {}", partitions.len()));
    }
}

fn kip848_config(group: &str) -> ConsumerConfig {
    ConsumerConfig {
        group_protocol: GroupProtocol::Consumer,
        remote_assignor: Some("uniform".into()),
        ..group_config(group)
    }
}

/// Records the partitions of every listener call, in order.
#[derive(Default)]
struct PartitionRecorder {
    revoked: std::sync::Mutex<Vec<Vec<TopicPartition>>>,
    assigned: std::sync::Mutex<Vec<Vec<TopicPartition>>>,
}

impl RebalanceListener for PartitionRecorder {
    fn on_revoked(&self, partitions: &[TopicPartition]) {
        self.revoked.lock().expect("lock").push(partitions.to_vec());
    }
    fn on_assigned(&self, partitions: &[TopicPartition]) {
        self.assigned.lock().expect("lock").push(partitions.to_vec());
    }
}

#[tokio::test]
async fn group_members_share_partitions_and_take_over_when_one_leaves() {
    const RECORDS: usize = 400;
    let broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    create_topic(&Admin::with_client(client.clone()), "shared", 4).await;
    produce_numbered(&client, "shared", 0..RECORDS).await;

    let recorder = std::sync::Arc::new(Recorder::default());
    let first = Consumer::new(
        config(&broker),
        ConsumerConfig {
            rebalance_listener: Some(recorder.clone()),
            ..group_config("sharing")
        },
    )
    .await
    .expect("consumer");
    let second = Consumer::new(
        config(&broker),
        ConsumerConfig {
            assignors: vec![Assignor::RoundRobin, Assignor::Range],
            ..group_config("sharing")
        },
    )
    .await
    .expect("consumer");
    first.subscribe(&["shared"]).await.expect("subscribe");
    second.subscribe(&["shared"]).await.expect("subscribe");
    let mut records = Vec::new();
    poll_until(&[&first, &second], &mut records, |records, assignments| {
        records.len() >= RECORDS && assignments.iter().all(|a| a.len() == 2)
    })
    .await;
    let values: std::collections::BTreeSet<String> = records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(values.len(), RECORDS, "every record read");
    let mut all: Vec<TopicPartition> = first.assignment().await;
    all.extend(second.assignment().await);
    all.sort();
    assert_eq!(
        all,
        (0..4).map(|p| TopicPartition::new("shared", p)).collect::<Vec<_>>()
    );
    let metadata = first.group_metadata().expect("group metadata");
    assert!(metadata.generation_id > 0 && !metadata.member_id.is_empty());

    second.close().await.expect("close");
    let mut more = Vec::new();
    poll_until(&[&first], &mut more, |_, assignments| assignments[0].len() == 4).await;
    let events = recorder.events.lock().expect("lock").clone();
    assert!(events.contains(&"assigned 4".to_string()), "{events:?}");
    assert!(
        events.contains(&"revoked 2".to_string()) || events.contains(&"revoked 4".to_string()),
        "{events:?}"
    );
    first.close().await.expect("close");
}

#[tokio::test]
async fn a_new_member_resumes_from_committed_offsets() {
    let broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    create_topic(&Admin::with_client(client.clone()), "resume", 2).await;
    produce_numbered(&client, "resume", 0..100).await;
    let manual = ConsumerConfig {
        enable_auto_commit: false,
        ..group_config("resumers")
    };

    let first = Consumer::new(config(&broker), manual.clone()).await.expect("consumer");
    first.subscribe(&["resume"]).await.expect("subscribe");
    let mut records = Vec::new();
    poll_until(&[&first], &mut records, |records, _| records.len() >= 100).await;
    first.commit_sync().await.expect("commit");
    let committed = first
        .committed(&[TopicPartition::new("resume", 0), TopicPartition::new("resume", 1)])
        .await
        .expect("committed");
    assert_eq!(committed.values().sum::<i64>(), 100);
    // An explicit commit rewinds partition 0 by 10 records.
    let rewound = committed[&TopicPartition::new("resume", 0)] - 10;
    first
        .commit(&BTreeMap::from([(TopicPartition::new("resume", 0), rewound)]))
        .await
        .expect("commit offsets");
    first.close().await.expect("close");

    produce_numbered(&client, "resume", 100..150).await;
    let second = Consumer::new(config(&broker), manual).await.expect("consumer");
    second.subscribe(&["resume"]).await.expect("subscribe");
    let mut resumed = Vec::new();
    poll_until(&[&second], &mut resumed, |records, _| records.len() >= 60).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    resumed.extend(second.poll(Duration::from_millis(300)).await.expect("poll"));
    assert_eq!(resumed.len(), 60, "10 rewound + 50 new, nothing else");
    let first_of_0 = resumed.iter().filter(|r| r.partition == 0).map(|r| r.offset).min();
    assert_eq!(first_of_0, Some(rewound));
    let handle = second.commit_async().await.expect("commit async");
    handle.await.expect("join").expect("committed");
    second.close().await.expect("close");
}

#[tokio::test]
async fn a_pattern_subscription_picks_up_topics_created_later() {
    let broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    let admin = Admin::with_client(client.clone());
    create_topic(&admin, "metrics-a", 1).await;
    create_topic(&admin, "other", 1).await;
    produce_numbered(&client, "metrics-a", 0..5).await;
    produce_numbered(&client, "other", 0..5).await;
    let consumer = Consumer::new(
        config(&broker),
        ConsumerConfig {
            metadata_max_age: Duration::from_millis(500),
            ..group_config("pattern")
        },
    )
    .await
    .expect("consumer");
    consumer.subscribe_pattern("metrics-.*").await.expect("subscribe");
    let mut records = Vec::new();
    poll_until(&[&consumer], &mut records, |records, _| records.len() >= 5).await;
    assert_eq!(consumer.assignment().await, vec![TopicPartition::new("metrics-a", 0)]);

    create_topic(&admin, "metrics-b", 2).await;
    produce_numbered(&client, "metrics-b", 5..15).await;
    poll_until(&[&consumer], &mut records, |records, _| records.len() >= 15).await;
    assert!(records.iter().all(|r| r.topic.starts_with("metrics-")));
    let mut assigned = consumer.assignment().await;
    assigned.sort();
    assert_eq!(
        assigned,
        vec![
            TopicPartition::new("metrics-a", 0),
            TopicPartition::new("metrics-b", 0),
            TopicPartition::new("metrics-b", 1)
        ]
    );
    consumer.close().await.expect("close");
    assert!(Consumer::new(config(&broker), group_config("pattern"))
        .await
        .expect("consumer")
        .subscribe_pattern("(")
        .await
        .is_err());
}

#[tokio::test]
async fn kip848_members_share_partitions_and_one_takes_over_when_the_other_closes() {
    const RECORDS: usize = 200;
    let broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    create_topic(&Admin::with_client(client.clone()), "kip848", 4).await;
    produce_numbered(&client, "kip848", 0..RECORDS).await;

    let recorder = std::sync::Arc::new(Recorder::default());
    let first = Consumer::new(
        config(&broker),
        ConsumerConfig {
            rebalance_listener: Some(recorder.clone()),
            ..kip848_config("kip848-group")
        },
    )
    .await
    .expect("consumer");
    let second = Consumer::new(config(&broker), kip848_config("kip848-group"))
        .await
        .expect("consumer");
    first.subscribe(&["kip848"]).await.expect("subscribe");
    second.subscribe(&["kip848"]).await.expect("subscribe");
    let mut records = Vec::new();
    poll_until(&[&first, &second], &mut records, |records, assignments| {
        records.len() >= RECORDS && assignments.iter().all(|a| a.len() == 2)
    })
    .await;
    let mut all = first.assignment().await;
    all.extend(second.assignment().await);
    all.sort();
    assert_eq!(
        all,
        (0..4).map(|p| TopicPartition::new("kip848", p)).collect::<Vec<_>>()
    );
    let unique: std::collections::BTreeSet<String> = values(&records).into_iter().collect();
    assert_eq!(unique.len(), RECORDS, "every record read");
    let metadata = first.group_metadata().expect("group metadata");
    assert!(metadata.generation_id > 0, "member epoch {metadata:?}");
    assert_eq!(metadata.member_id.len(), 36, "a UUID made by the client: {metadata:?}");

    second.close().await.expect("close");
    produce_numbered(&client, "kip848", RECORDS..RECORDS + 40).await;
    let mut more = Vec::new();
    poll_until(&[&first], &mut more, |_, assignments| assignments[0].len() == 4).await;
    let events = recorder.events.lock().expect("lock").clone();
    assert!(events.iter().any(|e| e.starts_with("assigned")), "{events:?}");
    first.close().await.expect("close");
    let events = recorder.events.lock().expect("lock").clone();
    assert_eq!(events.last().map(String::as_str), Some("revoked 4"), "{events:?}");
}

#[tokio::test]
async fn kip848_member_commits_and_a_new_member_resumes() {
    let broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    create_topic(&Admin::with_client(client.clone()), "kip848-resume", 2).await;
    produce_numbered(&client, "kip848-resume", 0..60).await;
    let manual = ConsumerConfig {
        enable_auto_commit: false,
        ..kip848_config("kip848-resumers")
    };
    let first = Consumer::new(config(&broker), manual.clone()).await.expect("consumer");
    first.subscribe(&["kip848-resume"]).await.expect("subscribe");
    let mut records = Vec::new();
    poll_until(&[&first], &mut records, |records, _| records.len() >= 60).await;
    first.commit_sync().await.expect("commit with the member epoch");
    let partitions = [
        TopicPartition::new("kip848-resume", 0),
        TopicPartition::new("kip848-resume", 1),
    ];
    let committed = first.committed(&partitions).await.expect("committed");
    assert_eq!(committed.values().sum::<i64>(), 60);
    first.close().await.expect("close");

    produce_numbered(&client, "kip848-resume", 60..80).await;
    let second = Consumer::new(config(&broker), manual).await.expect("consumer");
    second.subscribe(&["kip848-resume"]).await.expect("subscribe");
    let mut resumed = Vec::new();
    poll_until(&[&second], &mut resumed, |records, _| records.len() >= 20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    resumed.extend(second.poll(Duration::from_millis(300)).await.expect("poll"));
    let mut got: Vec<usize> = values(&resumed).iter().map(|v| v.parse().expect("number")).collect();
    got.sort_unstable();
    assert_eq!(got, (60..80).collect::<Vec<_>>(), "only the records after the commit");
    second.close().await.expect("close");
}

#[tokio::test]
async fn cooperative_sticky_members_give_up_only_what_moves() {
    const RECORDS: usize = 200;
    let broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    create_topic(&Admin::with_client(client.clone()), "cooperative", 4).await;
    produce_numbered(&client, "cooperative", 0..RECORDS).await;
    let cooperative = |recorder: Option<std::sync::Arc<PartitionRecorder>>| ConsumerConfig {
        assignors: vec![Assignor::CooperativeSticky],
        rebalance_listener: recorder.map(|r| r as std::sync::Arc<dyn RebalanceListener>),
        ..group_config("cooperators")
    };
    let all: Vec<TopicPartition> = (0..4).map(|p| TopicPartition::new("cooperative", p)).collect();

    let recorder = std::sync::Arc::new(PartitionRecorder::default());
    let first = Consumer::new(config(&broker), cooperative(Some(recorder.clone())))
        .await
        .expect("consumer");
    first.subscribe(&["cooperative"]).await.expect("subscribe");
    let mut records = Vec::new();
    poll_until(&[&first], &mut records, |_, assignments| assignments[0].len() == 4).await;

    let second = Consumer::new(config(&broker), cooperative(None))
        .await
        .expect("consumer");
    second.subscribe(&["cooperative"]).await.expect("subscribe");
    poll_until(&[&first, &second], &mut records, |records, assignments| {
        records.len() >= RECORDS && assignments.iter().all(|a| a.len() == 2)
    })
    .await;
    produce_numbered(&client, "cooperative", RECORDS..RECORDS + 40).await;
    poll_until(&[&first, &second], &mut records, |records, _| {
        values(records)
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= RECORDS + 40
    })
    .await;

    let kept = first.assignment().await;
    let mut split = kept.clone();
    split.extend(second.assignment().await);
    split.sort();
    assert_eq!(split, all, "the two members share the partitions");
    assert_eq!(kept.len(), 2);
    let revoked: Vec<TopicPartition> = recorder.revoked.lock().expect("lock").concat();
    assert!(
        !revoked.is_empty() && revoked.len() < all.len(),
        "revoked a strict subset: {revoked:?}"
    );
    assert!(
        revoked.iter().all(|p| !kept.contains(p)),
        "revoked {revoked:?}, kept {kept:?}"
    );
    let assigned = recorder.assigned.lock().expect("lock").concat();
    assert_eq!(assigned, all, "the first member was assigned each partition once");
    let generation = first.group_metadata().expect("group metadata").generation_id;
    assert!(
        generation >= 3,
        "a follow-up rebalance handed the revoked partitions over: {generation}"
    );

    second.close().await.expect("close");
    first.close().await.expect("close");
}

#[tokio::test]
async fn a_member_offering_an_eager_assignor_rebalances_eagerly() {
    let broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    create_topic(&Admin::with_client(client.clone()), "eager", 4).await;
    let recorder = std::sync::Arc::new(PartitionRecorder::default());
    let first = Consumer::new(
        config(&broker),
        ConsumerConfig {
            assignors: vec![Assignor::CooperativeSticky, Assignor::Range],
            rebalance_listener: Some(recorder.clone()),
            ..group_config("eager-members")
        },
    )
    .await
    .expect("consumer");
    first.subscribe(&["eager"]).await.expect("subscribe");
    let mut records = Vec::new();
    poll_until(&[&first], &mut records, |_, assignments| assignments[0].len() == 4).await;
    // The first member offers an eager assignor besides cooperative-sticky, so (as in the Java
    // client) it rebalances eagerly: when a range-only member joins, it gives up everything
    // before rejoining and never holds a partition the new leader may hand to someone else.
    let second = Consumer::new(
        config(&broker),
        ConsumerConfig {
            assignors: vec![Assignor::Range],
            ..group_config("eager-members")
        },
    )
    .await
    .expect("consumer");
    second.subscribe(&["eager"]).await.expect("subscribe");
    poll_until(&[&first, &second], &mut records, |_, assignments| {
        assignments.iter().all(|a| a.len() == 2)
    })
    .await;
    let kept = first.assignment().await;
    let revoked = recorder.revoked.lock().expect("lock").clone();
    assert_eq!(
        revoked.first().map(Vec::len),
        Some(4),
        "eager: everything revoked before the rejoin: {revoked:?}"
    );

    second.close().await.expect("close");
    poll_until(&[&first], &mut records, |_, assignments| assignments[0].len() == 4).await;
    let revoked = recorder.revoked.lock().expect("lock").clone();
    assert_eq!(
        revoked.last(),
        Some(&kept),
        "eager: everything revoked before the rejoin"
    );
    let assigned = recorder.assigned.lock().expect("lock").clone();
    assert_eq!(
        assigned.last().map(Vec::len),
        Some(4),
        "eager: everything assigned anew"
    );
    first.close().await.expect("close");
}
