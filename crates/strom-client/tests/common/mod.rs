//! What every integration test file shares: the real Strom binary started on a free port
//! (`target/release/strom`, or `STROM_BIN`), client settings and a few helpers.

// Each test file compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strom_client::{
    Admin, AutoOffsetReset, Client, ClientConfig, Consumer, ConsumerConfig, ConsumerRecord, NewTopic, Producer,
    ProducerConfig, ProducerRecord, TopicPartition,
};

/// A broker process on a free port with its own data directory, killed on drop.
pub struct Broker {
    child: Child,
    pub address: String,
    _data: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn binary() -> PathBuf {
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

pub fn start_broker() -> Broker {
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
pub fn restart_broker(broker: &mut Broker) {
    let _ = broker.child.kill();
    let _ = broker.child.wait();
    broker.child = spawn_broker(&broker.address, broker._data.path());
    wait_until_listening(broker);
}

pub fn spawn_broker(address: &str, data: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.join("broker.log"))
        .expect("log file");
    Command::new(binary())
        .arg("serve")
        // Many brokers at once here: none serves the schema registry (it would want 8081).
        .env("STROM_SCHEMA_REGISTRY_LISTENERS", "")
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

pub fn wait_until_listening(broker: &mut Broker) {
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

pub fn config(broker: &Broker) -> ClientConfig {
    ClientConfig {
        request_timeout: Duration::from_secs(20),
        ..ClientConfig::new([broker.address.clone()])
    }
}

pub async fn create_topic(admin: &Admin, name: &str, partitions: i32) {
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
pub async fn consume(consumer: &Consumer, count: usize) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut records = Vec::new();
    while records.len() < count && Instant::now() < deadline {
        records.extend(consumer.poll(Duration::from_millis(500)).await.expect("poll"));
    }
    records
}

pub fn group_config(group: &str) -> ConsumerConfig {
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
pub async fn poll_until(
    consumers: &[&Consumer],
    records: &mut Vec<ConsumerRecord>,
    mut done: impl FnMut(&[ConsumerRecord], &[Vec<TopicPartition>]) -> bool,
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

pub async fn produce_numbered(client: &Client, topic: &str, range: std::ops::Range<usize>) {
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

pub fn values(records: &[ConsumerRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect()
}
