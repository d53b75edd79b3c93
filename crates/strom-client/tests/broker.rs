//! Tests against the real Strom binary (`target/release/strom`, or `STROM_BIN`).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::partitioner::murmur2_partition;
use strom_client::{
    Acks, Admin, Assignor, AutoOffsetReset, Client, ClientConfig, Compression, Consumer, ConsumerConfig,
    ConsumerRecord, GroupProtocol, IsolationLevel, NewTopic, Offset, OffsetSpec, Producer, ProducerConfig,
    ProducerRecord, RebalanceListener,
};

/// A broker process on a free port with its own data directory, killed on drop.
struct Broker {
    child: Child,
    address: String,
    _data: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> PathBuf {
    let path = std::env::var_os("STROM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/strom"));
    assert!(
        path.exists(),
        "{} does not exist: build the release binary first (cargo build --release)",
        path.display()
    );
    path
}

fn start_broker() -> Broker {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let data = tempfile::tempdir().expect("temp dir");
    let address = format!("127.0.0.1:{port}");
    let child = spawn_broker(&address, data.path());
    let mut broker = Broker {
        child,
        address,
        _data: data,
    };
    wait_until_listening(&mut broker);
    broker
}

/// Kills the broker process (no clean shutdown) and starts it again on the same port and data.
fn restart_broker(broker: &mut Broker) {
    let _ = broker.child.kill();
    let _ = broker.child.wait();
    broker.child = spawn_broker(&broker.address, broker._data.path());
    wait_until_listening(broker);
}

fn spawn_broker(address: &str, data: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.join("broker.log"))
        .expect("log file");
    Command::new(binary())
        .arg("serve")
        .arg("--set")
        .arg(format!("listeners=PLAINTEXT://{address}"))
        .arg("--set")
        .arg(format!("log.dirs={}", data.join("data").display()))
        .arg("--set")
        .arg("group.initial.rebalance.delay.ms=0")
        .arg("--set")
        .arg("offsets.topic.num.partitions=3")
        .arg("--set")
        .arg("transaction.state.log.num.partitions=3")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn strom")
}

fn wait_until_listening(broker: &mut Broker) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&broker.address).is_err() {
        if let Ok(Some(status)) = broker.child.try_wait() {
            panic!("strom exited with {status}");
        }
        assert!(
            Instant::now() < deadline,
            "strom did not listen on {} within 30 s",
            broker.address
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn config(broker: &Broker) -> ClientConfig {
    ClientConfig {
        request_timeout: Duration::from_secs(20),
        ..ClientConfig::new([broker.address.clone()])
    }
}

async fn create_topic(admin: &Admin, name: &str, partitions: i32) {
    admin
        .create_topics(&[NewTopic::new(name, partitions, 1)])
        .await
        .expect("create topic");
    admin
        .wait_for_topic(name, Duration::from_secs(10))
        .await
        .expect("topic ready");
}

/// Reads until `count` records arrived (or 60 s passed).
async fn consume(consumer: &Consumer, count: usize) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut records = Vec::new();
    while records.len() < count && Instant::now() < deadline {
        records.extend(consumer.poll(Duration::from_millis(500)).await.expect("poll"));
    }
    records
}

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
        .incremental_alter_configs("admin-topic", &[("retention.ms", Some("7200000"))])
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
        .list_offsets(&[
            ("admin-topic".to_string(), 0, OffsetSpec::Earliest),
            ("admin-topic".to_string(), 1, OffsetSpec::Latest),
        ])
        .await
        .expect("list offsets");
    assert_eq!(offsets.get(&("admin-topic".to_string(), 0)).map(|o| o.0), Some(0));
    assert_eq!(offsets.get(&("admin-topic".to_string(), 1)).map(|o| o.0), Some(0));
    admin.list_groups().await.expect("list groups");

    admin.delete_topics(&["admin-topic"]).await.expect("delete");
    let listed = admin.list_topics().await.expect("list after delete");
    assert!(listed.iter().all(|t| t.name != "admin-topic"));
    let missing = admin.describe_topics(&["admin-topic"]).await;
    assert!(missing.is_err());
}

#[tokio::test]
async fn produces_and_consumes_keyed_records_with_every_codec() {
    const RECORDS: usize = 10_000;
    const PARTITIONS: i32 = 3;
    let broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    let admin = Admin::with_client(client.clone());
    for compression in Compression::ALL {
        let topic = format!("codec-{compression:?}").to_lowercase();
        create_topic(&admin, &topic, PARTITIONS).await;
        let producer = Producer::with_client(
            client.clone(),
            ProducerConfig {
                acks: Acks::All,
                compression,
                ..Default::default()
            },
        )
        .await
        .expect("producer");
        let mut deliveries = Vec::with_capacity(RECORDS);
        for i in 0..RECORDS {
            let record =
                ProducerRecord::new(&topic, format!("value-{i}-{}", "x".repeat(i % 50))).with_key(format!("key-{i}"));
            deliveries.push(producer.send(record).await.expect("send"));
        }
        let mut expected = BTreeMap::new();
        for (i, delivery) in deliveries.into_iter().enumerate() {
            let metadata = delivery.await.expect("delivered");
            let key = format!("key-{i}");
            assert_eq!(
                metadata.partition,
                murmur2_partition(key.as_bytes(), PARTITIONS),
                "{key}"
            );
            assert!(metadata.offset >= 0);
            expected.insert(
                (metadata.partition, metadata.offset),
                (key, format!("value-{i}-{}", "x".repeat(i % 50))),
            );
        }
        producer.close().await.expect("close");

        let consumer = Consumer::with_client(client.clone(), ConsumerConfig::default()).expect("consumer");
        consumer
            .assign((0..PARTITIONS).map(|p| (topic.clone(), p, Offset::Beginning)).collect())
            .await
            .expect("assign");
        let records = consume(&consumer, RECORDS).await;
        assert_eq!(records.len(), RECORDS, "{compression:?}");
        for record in &records {
            let (key, value) = expected
                .get(&(record.partition, record.offset))
                .expect("expected record");
            assert_eq!(record.key.as_deref(), Some(key.as_bytes()));
            assert_eq!(record.value.as_deref(), Some(value.as_bytes()));
        }
        for partition in 0..PARTITIONS {
            let offsets: Vec<i64> = records
                .iter()
                .filter(|r| r.partition == partition)
                .map(|r| r.offset)
                .collect();
            assert!(offsets.windows(2).all(|w| w[0] + 1 == w[1]), "dense, in order");
        }
    }
}

#[tokio::test]
async fn idempotent_producer_gets_a_producer_id() {
    let broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    create_topic(&Admin::with_client(client.clone()), "idempotent", 1).await;
    let producer = Producer::with_client(client.clone(), ProducerConfig::default())
        .await
        .expect("producer");
    let (producer_id, epoch) = producer.producer_id().expect("idempotent producer has an id");
    assert!(producer_id >= 0 && epoch >= 0);
    let first = producer
        .send(ProducerRecord::new("idempotent", "a"))
        .await
        .expect("send")
        .await
        .expect("delivered");
    let second = producer
        .send(ProducerRecord::new("idempotent", "b"))
        .await
        .expect("send")
        .await
        .expect("delivered");
    assert_eq!(second.offset, first.offset + 1);
    producer.close().await.expect("close");

    let plain = Producer::with_client(
        client,
        ProducerConfig {
            acks: Acks::Leader,
            ..Default::default()
        },
    )
    .await
    .expect("producer");
    assert_eq!(plain.producer_id(), None);
}

#[tokio::test]
async fn offset_timestamp_resolves_with_list_offsets() {
    let broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    create_topic(&Admin::with_client(client.clone()), "timestamps", 1).await;
    let producer = Producer::with_client(client.clone(), ProducerConfig::default())
        .await
        .expect("producer");
    for (i, timestamp) in [1_000i64, 2_000, 3_000].into_iter().enumerate() {
        let record = ProducerRecord::new("timestamps", format!("{i}"))
            .with_partition(0)
            .with_timestamp(timestamp);
        producer.send(record).await.expect("send").await.expect("delivered");
    }
    producer.close().await.expect("close");

    let consumer = Consumer::with_client(client, ConsumerConfig::default()).expect("consumer");
    consumer
        .assign(vec![("timestamps".to_string(), 0, Offset::Timestamp(1_500))])
        .await
        .expect("assign");
    assert_eq!(consumer.position("timestamps", 0).await, Some(1));
    let records = consume(&consumer, 2).await;
    assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(records.first().map(|r| r.timestamp), Some(2_000));
    assert_eq!(
        records.first().and_then(|r| r.value.clone()),
        Some(Bytes::from_static(b"1"))
    );

    consumer
        .seek("timestamps", 0, Offset::Timestamp(10_000))
        .await
        .expect("seek");
    assert_eq!(
        consumer.position("timestamps", 0).await,
        Some(3),
        "no later record: the end"
    );
    consumer.seek("timestamps", 0, Offset::At(0)).await.expect("seek");
    consumer.pause(&[("timestamps".to_string(), 0)]).await.expect("pause");
    assert!(consumer
        .poll(Duration::from_millis(200))
        .await
        .expect("poll")
        .is_empty());
    consumer.resume(&[("timestamps".to_string(), 0)]).await.expect("resume");
    assert_eq!(consume(&consumer, 3).await.len(), 3);
}

#[tokio::test]
async fn acks_zero_and_unkeyed_records_are_delivered() {
    let broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    create_topic(&Admin::with_client(client.clone()), "fire-and-forget", 4).await;
    let producer = Producer::with_client(
        client.clone(),
        ProducerConfig {
            acks: Acks::None,
            ..Default::default()
        },
    )
    .await
    .expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..500 {
        deliveries.push(
            producer
                .send(ProducerRecord::new("fire-and-forget", format!("{i}")))
                .await
                .expect("send"),
        );
    }
    for delivery in deliveries {
        assert_eq!(delivery.await.expect("written").offset, -1);
    }
    producer.close().await.expect("close");
    let consumer = Consumer::with_client(client, ConsumerConfig::default()).expect("consumer");
    consumer
        .assign(
            (0..4)
                .map(|p| ("fire-and-forget".to_string(), p, Offset::Beginning))
                .collect(),
        )
        .await
        .expect("assign");
    assert_eq!(consume(&consumer, 500).await.len(), 500);
}

fn group_config(group: &str) -> ConsumerConfig {
    ConsumerConfig {
        group_id: Some(group.to_string()),
        heartbeat_interval: Duration::from_millis(200),
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(10),
        auto_offset_reset: AutoOffsetReset::Earliest,
        fetch_max_wait: Duration::from_millis(100),
        ..Default::default()
    }
}

/// Polls every consumer (so none holds up the others) until `done` says so, or 60 s passed.
async fn poll_until(
    consumers: &[&Consumer],
    records: &mut Vec<ConsumerRecord>,
    mut done: impl FnMut(&[ConsumerRecord], &[Vec<(String, i32)>]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut assignments = Vec::new();
        for consumer in consumers {
            records.extend(consumer.poll(Duration::from_millis(50)).await.expect("poll"));
            assignments.push(consumer.assignment().await);
        }
        if done(records, &assignments) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out: {} records, assignments {assignments:?}",
            records.len()
        );
    }
}

async fn produce_numbered(client: &Client, topic: &str, range: std::ops::Range<usize>) {
    let producer = Producer::with_client(client.clone(), ProducerConfig::default())
        .await
        .expect("producer");
    let mut deliveries = Vec::new();
    for i in range {
        deliveries.push(
            producer
                .send(ProducerRecord::new(topic, format!("{i}")).with_key(format!("key-{i}")))
                .await
                .expect("send"),
        );
    }
    for delivery in deliveries {
        delivery.await.expect("delivered");
    }
    producer.close().await.expect("close");
}

#[derive(Default)]
struct Recorder {
    events: std::sync::Mutex<Vec<String>>,
}

impl RebalanceListener for Recorder {
    fn on_revoked(&self, partitions: &[(String, i32)]) {
        self.events
            .lock()
            .expect("lock")
            .push(format!("revoked {}", partitions.len()));
    }
    fn on_assigned(&self, partitions: &[(String, i32)]) {
        self.events
            .lock()
            .expect("lock")
            .push(format!("assigned {}", partitions.len()));
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
    let mut all: Vec<(String, i32)> = first.assignment().await;
    all.extend(second.assignment().await);
    all.sort();
    assert_eq!(all, (0..4).map(|p| ("shared".to_string(), p)).collect::<Vec<_>>());
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
        .committed(&[("resume".to_string(), 0), ("resume".to_string(), 1)])
        .await
        .expect("committed");
    assert_eq!(committed.values().sum::<i64>(), 100);
    // An explicit commit rewinds partition 0 by 10 records.
    let rewound = committed[&("resume".to_string(), 0)] - 10;
    first
        .commit(&[("resume".to_string(), 0, rewound)])
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

fn values(records: &[ConsumerRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

#[tokio::test]
async fn aborted_transactions_are_invisible_to_read_committed_consumers() {
    let broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    let admin = Admin::with_client(client.clone());
    create_topic(&admin, "txn-data", 2).await;
    create_topic(&admin, "txn-input", 1).await;
    let transactional = |id: &str| ProducerConfig {
        transactional_id: Some(id.to_string()),
        ..Default::default()
    };
    let producer = Producer::with_client(client.clone(), transactional("mover"))
        .await
        .expect("producer");
    assert!(producer.begin_transaction().is_err(), "init_transactions comes first");
    producer.init_transactions().await.expect("init");
    assert!(producer.producer_id().is_some());

    producer.begin_transaction().expect("begin");
    for i in 0..10 {
        producer
            .send(ProducerRecord::new("txn-data", format!("aborted-{i}")))
            .await
            .expect("send");
    }
    producer.abort_transaction().await.expect("abort");

    producer.begin_transaction().expect("begin");
    for i in 0..10 {
        producer
            .send(ProducerRecord::new("txn-data", format!("committed-{i}")))
            .await
            .expect("send");
    }
    let group = strom_client::ConsumerGroupMetadata::new("txn-group");
    producer
        .send_offsets_to_transaction(&[("txn-input".to_string(), 0, 42)], &group)
        .await
        .expect("send offsets");
    producer.commit_transaction().await.expect("commit");

    // An open transaction: read_committed consumers stop before it.
    producer.begin_transaction().expect("begin");
    producer
        .send(ProducerRecord::new("txn-data", "open").with_partition(0))
        .await
        .expect("send");
    producer.flush().await.expect("flush");

    let consumer = Consumer::with_client(
        client.clone(),
        ConsumerConfig {
            isolation_level: IsolationLevel::ReadCommitted,
            ..group_config("txn-group")
        },
    )
    .expect("consumer");
    consumer
        .assign((0..2).map(|p| ("txn-data".to_string(), p, Offset::Beginning)).collect())
        .await
        .expect("assign");
    let mut records = consume(&consumer, 10).await;
    records.extend(consumer.poll(Duration::from_millis(500)).await.expect("poll"));
    let mut seen = values(&records);
    seen.sort();
    let mut expected: Vec<String> = (0..10).map(|i| format!("committed-{i}")).collect();
    expected.sort();
    assert_eq!(seen, expected);
    let committed = consumer
        .committed(&[("txn-input".to_string(), 0)])
        .await
        .expect("committed");
    assert_eq!(committed.get(&("txn-input".to_string(), 0)), Some(&42));

    // A second producer with the same id fences the first and aborts its open transaction.
    let successor = Producer::with_client(client.clone(), transactional("mover"))
        .await
        .expect("producer");
    successor.init_transactions().await.expect("init");
    let fenced = producer.commit_transaction().await;
    assert!(matches!(fenced, Err(strom_client::Error::Fatal(_))), "{fenced:?}");
    let uncommitted = Consumer::with_client(client, ConsumerConfig::default()).expect("consumer");
    uncommitted
        .assign(vec![("txn-data".to_string(), 0, Offset::Beginning)])
        .await
        .expect("assign");
    let mut everything = Vec::new();
    poll_until(&[&uncommitted], &mut everything, |records, _| {
        records.iter().any(|r| r.value.as_deref() == Some(b"open".as_slice()))
    })
    .await;
    let everything = values(&everything);
    assert!(
        everything.iter().any(|v| v == "open"),
        "read_uncommitted sees the open transaction"
    );
    successor.close().await.expect("close");
}

#[tokio::test]
async fn idempotent_producer_does_not_duplicate_across_a_broker_restart() {
    let mut broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    create_topic(&Admin::with_client(client.clone()), "restarts", 1).await;
    let producer = Producer::with_client(client.clone(), ProducerConfig::default())
        .await
        .expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..200 {
        deliveries.push(
            producer
                .send(ProducerRecord::new("restarts", format!("{i}")))
                .await
                .expect("send"),
        );
        if i == 100 {
            // Kill the broker with records in flight: their connections drop mid-request.
            restart_broker(&mut broker);
        }
    }
    for delivery in deliveries {
        delivery.await.expect("delivered after the restart");
    }
    producer.close().await.expect("close");
    let consumer = Consumer::with_client(client, ConsumerConfig::default()).expect("consumer");
    consumer
        .assign(vec![("restarts".to_string(), 0, Offset::Beginning)])
        .await
        .expect("assign");
    let mut records = consume(&consumer, 200).await;
    records.extend(consumer.poll(Duration::from_millis(500)).await.expect("poll"));
    let mut seen: Vec<usize> = values(&records).iter().map(|v| v.parse().expect("number")).collect();
    assert_eq!(seen.len(), 200, "no duplicates, nothing lost");
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 200);
}

#[tokio::test]
async fn max_poll_records_bounds_each_poll_and_keeps_the_rest() {
    let broker = start_broker();
    let client = Client::connect(config(&broker)).await.expect("client");
    create_topic(&Admin::with_client(client.clone()), "bounded", 1).await;
    produce_numbered(&client, "bounded", 0..25).await;
    let consumer = Consumer::with_client(
        client,
        ConsumerConfig {
            max_poll_records: 10,
            ..Default::default()
        },
    )
    .expect("consumer");
    consumer
        .assign(vec![("bounded".to_string(), 0, Offset::Beginning)])
        .await
        .expect("assign");
    let mut offsets = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while offsets.len() < 25 && Instant::now() < deadline {
        let records = consumer.poll(Duration::from_millis(500)).await.expect("poll");
        assert!(records.len() <= 10, "{} records in one poll", records.len());
        if let Some(last) = records.last() {
            assert_eq!(
                consumer.position("bounded", 0).await,
                Some(last.offset + 1),
                "the position follows the returned records only"
            );
        }
        offsets.extend(records.iter().map(|r| r.offset));
    }
    assert_eq!(
        offsets,
        (0..25).collect::<Vec<i64>>(),
        "in order, none lost or repeated"
    );
    // A seek drops what is buffered past the new position.
    consumer.seek("bounded", 0, Offset::At(5)).await.expect("seek");
    let again = consume(&consumer, 20).await;
    assert_eq!(again.first().map(|r| r.offset), Some(5));
    assert_eq!(again.len(), 20);
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
    assert_eq!(consumer.assignment().await, vec![("metrics-a".to_string(), 0)]);

    create_topic(&admin, "metrics-b", 2).await;
    produce_numbered(&client, "metrics-b", 5..15).await;
    poll_until(&[&consumer], &mut records, |records, _| records.len() >= 15).await;
    assert!(records.iter().all(|r| r.topic.starts_with("metrics-")));
    let mut assigned = consumer.assignment().await;
    assigned.sort();
    assert_eq!(
        assigned,
        vec![
            ("metrics-a".to_string(), 0),
            ("metrics-b".to_string(), 0),
            ("metrics-b".to_string(), 1)
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

fn kip848_config(group: &str) -> ConsumerConfig {
    ConsumerConfig {
        group_protocol: GroupProtocol::Consumer,
        remote_assignor: Some("uniform".into()),
        ..group_config(group)
    }
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
    assert_eq!(all, (0..4).map(|p| ("kip848".to_string(), p)).collect::<Vec<_>>());
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
    let partitions = [("kip848-resume".to_string(), 0), ("kip848-resume".to_string(), 1)];
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

/// Records the partitions of every listener call, in order.
#[derive(Default)]
struct PartitionRecorder {
    revoked: std::sync::Mutex<Vec<Vec<(String, i32)>>>,
    assigned: std::sync::Mutex<Vec<Vec<(String, i32)>>>,
}

impl RebalanceListener for PartitionRecorder {
    fn on_revoked(&self, partitions: &[(String, i32)]) {
        self.revoked.lock().expect("lock").push(partitions.to_vec());
    }
    fn on_assigned(&self, partitions: &[(String, i32)]) {
        self.assigned.lock().expect("lock").push(partitions.to_vec());
    }
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
    let all: Vec<(String, i32)> = (0..4).map(|p| ("cooperative".to_string(), p)).collect();

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
    let revoked: Vec<(String, i32)> = recorder.revoked.lock().expect("lock").concat();
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
