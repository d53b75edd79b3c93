//! Transactions across a cluster of three nodes in this process, each with its quorum
//! voter, broker and Kafka listener on 127.0.0.1: the coordinator writes markers into
//! partitions led by the other nodes with WriteTxnMarkers over their listeners, so a
//! transaction commits or aborts in every partition.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_broker::caller::AllowAll;
use strom_broker::group::{GroupConfig, TopicPartition};
use strom_broker::txn::{InitProducerId, ProducerIdAndEpoch, TxnConfig};
use strom_broker::{AppendOrigin, Broker, BrokerApi, BrokerConfig, Caller, Listener, NewTopic, QuorumConfig};
use strom_kafka::{PeerAddresses, ReplicaFetchClient};
use strom_kafka::{Server, ServerConfig, TxnMarkerClient};
use strom_log::RecordBatchBuilder;
use tokio::net::TcpStream;

use common::call;

const WAIT: Duration = Duration::from_secs(30);

/// A port on 127.0.0.1 that binds now, outside Linux's ephemeral range (32768–60999):
/// a port from that range can be taken by an outgoing connection (the nodes' own, to
/// each other) between this check and the node binding it, which failed cluster starts
/// with AddrInUse.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let seed = std::process::id().wrapping_mul(2_654_435_761) ^ nanos;
    for _ in 0..COUNT {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + seed.wrapping_add(step.wrapping_mul(7_919)) % COUNT;
        let port = u16::try_from(port).expect("below 32000");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + COUNT);
}

struct Node {
    api: Arc<BrokerApi>,
    kafka: std::net::SocketAddr,
}

struct Cluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
    /// One cluster at a time: three quorums and brokers per test on two cores would
    /// make elections and heartbeats race the tests' deadlines.
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Cluster {
    /// Three voters from empty directories; every broker registered and listening.
    async fn start() -> Cluster {
        let serial = SERIAL.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let voters: BTreeMap<u64, String> = (1..=3).map(|id| (id, format!("127.0.0.1:{}", free_port()))).collect();
        let kafka_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        // The brokers open together: each waits for the quorum to form.
        let opening: Vec<_> = (1..=3)
            .map(|id: i32| {
                let mut config = BrokerConfig::new(dir.path().join(format!("n{id}")));
                config.node_id = id;
                let mut quorum = QuorumConfig::single(id as u64, &config.data_dir);
                quorum.voters = voters.clone();
                quorum.heartbeat_interval_ms = 50;
                quorum.election_timeout_min_ms = 300;
                quorum.election_timeout_max_ms = 600;
                config.quorum = Some(quorum);
                config.heartbeat_interval_ms = 200;
                config.listeners = vec![Listener {
                    name: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: kafka_ports[id as usize - 1],
                }];
                tokio::task::spawn_blocking(move || Broker::open(config).unwrap())
            })
            .collect();
        let mut nodes = Vec::new();
        for (i, opened) in opening.into_iter().enumerate() {
            let broker = opened.await.unwrap();
            let txns = TxnConfig {
                state_topic_partitions: 3,
                ..Default::default()
            };
            let markers = Arc::new(TxnMarkerClient::new("PLAINTEXT"));
            let fetcher = Arc::new(ReplicaFetchClient::new(PeerAddresses::new("PLAINTEXT")));
            let api = BrokerApi::start_opened(
                broker,
                GroupConfig::default(),
                txns,
                Arc::new(AllowAll),
                markers,
                fetcher,
            )
            .await
            .unwrap();
            let kafka: std::net::SocketAddr = format!("127.0.0.1:{}", kafka_ports[i]).parse().unwrap();
            let config = ServerConfig {
                listener_name: "PLAINTEXT".into(),
                bind: kafka,
                advertised_host: "127.0.0.1".into(),
                advertised_port: i32::from(kafka.port()),
                socket_request_max_bytes: 8 << 20,
                max_connections: 100,
                max_connections_per_ip: usize::MAX,
                connections_max_idle_ms: 600_000,
                queued_max_request_bytes: 200 << 20,
            };
            let server = Server::bind(config, api.clone()).await.unwrap();
            tokio::spawn(server.run());
            nodes.push(Node { api, kafka });
        }
        let cluster = Cluster {
            nodes,
            _dir: dir,
            _serial: serial,
        };
        cluster
            .until("every broker is registered everywhere", |api| api.brokers().len() == 3)
            .await;
        cluster
    }

    fn node(&self, id: i32) -> &Node {
        &self.nodes[id as usize - 1]
    }

    /// Waits until `ready` holds on every node.
    async fn until(&self, what: &str, ready: impl Fn(&BrokerApi) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !self.nodes.iter().all(|n| ready(&n.api)) {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn shutdown(self) {
        for node in &self.nodes {
            node.api.begin_shutdown();
        }
        for node in &self.nodes {
            let _ = node.api.shutdown().await;
        }
    }
}

/// Two records of `producer`'s open transaction, appended on the partition's leader.
fn append_open_txn(api: &BrokerApi, partition: i32, producer: ProducerIdAndEpoch, sequence: i32) {
    let broker = api.broker();
    let mut batch = RecordBatchBuilder::new()
        .producer(producer.producer_id, producer.producer_epoch, sequence)
        .flags(true, false);
    batch.push(1, Some(b"k"), Some(b"v"));
    batch.push(2, Some(b"k"), Some(b"v"));
    let (topic, hosted) = (broker.topic("t").unwrap(), broker.partition("t", partition).unwrap());
    broker
        .append(&topic, &hosted, &batch.build().unwrap(), AppendOrigin::Client)
        .unwrap();
}

/// High watermark and last stable offset of `t`-`partition`, on its leader.
fn offsets(api: &BrokerApi, partition: i32) -> (i64, i64) {
    let hosted = api.broker().partition("t", partition).unwrap();
    (hosted.high_watermark(), hosted.last_stable_offset())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_over_three_leaders_commits_and_aborts_in_every_partition() {
    let cluster = Cluster::start().await;
    // `t`-i on node i+1: every node leads one partition.
    cluster
        .node(1)
        .api
        .broker()
        .create_topic(
            NewTopic {
                name: "t".into(),
                num_partitions: -1,
                replication_factor: -1,
                assignments: (0..3).map(|p| (p, vec![p + 1])).collect(),
                ..Default::default()
            },
            false,
        )
        .unwrap();
    cluster
        .until("every leader has its partition", |api| {
            let index = api.node_id() - 1;
            api.broker()
                .partition("t", index)
                .is_ok_and(|p| p.replica().is_leader())
        })
        .await;

    // The coordinator of "app" leads its `__transaction_state` partition: on any node.
    let caller = Caller::internal();
    let kind = strom_broker::api::CoordinatorKind::Transaction;
    let deadline = Instant::now() + WAIT;
    let (coordinator, producer) = loop {
        let found = cluster
            .node(1)
            .api
            .find_coordinator(&caller, kind, &["app".into()])
            .await;
        if let Ok(id) = &found[0] {
            let api = cluster.node(*id).api.clone();
            let init = InitProducerId {
                transactional_id: Some("app".into()),
                transaction_timeout_ms: 60_000,
                producer_id: -1,
                producer_epoch: -1,
            };
            // COORDINATOR_LOAD_IN_PROGRESS / NOT_COORDINATOR until the election settles.
            if let Ok(producer) = api
                .transactions(&caller, Some("app"), move |t| t.init_producer_id(&init))
                .await
            {
                break (api, producer);
            }
        }
        assert!(Instant::now() < deadline, "no transaction coordinator");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let partitions: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new("t", p)).collect();

    // Committed: one marker in each partition, wherever it is led.
    add_and_append(&cluster, &coordinator, producer, &partitions, 0).await;
    for p in 0..3 {
        assert_eq!(offsets(&cluster.node(p + 1).api, p), (2, 0), "t-{p} open");
    }
    coordinator
        .transactions(&caller, Some("app"), move |t| t.end_txn("app", producer, true))
        .await
        .unwrap();
    for p in 0..3 {
        assert_eq!(offsets(&cluster.node(p + 1).api, p), (3, 3), "t-{p} committed");
    }

    // Aborted: the records are listed as aborted to read_committed readers everywhere.
    add_and_append(&cluster, &coordinator, producer, &partitions, 2).await;
    coordinator
        .transactions(&caller, Some("app"), move |t| t.end_txn("app", producer, false))
        .await
        .unwrap();
    for p in 0..3 {
        let hosted = cluster.node(p + 1).api.broker().partition("t", p).unwrap();
        assert_eq!((hosted.high_watermark(), hosted.last_stable_offset()), (6, 6));
        let read = hosted
            .read(0, 1 << 20, strom_broker::FetchIsolation::TxnCommitted)
            .unwrap();
        let aborted = read.aborted.unwrap();
        assert_eq!(
            aborted
                .iter()
                .map(|a| (a.producer_id, a.first_offset))
                .collect::<Vec<_>>(),
            vec![(producer.producer_id, 3)],
            "t-{p}"
        );
    }

    // WriteTxnMarkers on the wire, to node 1: it leads t-0 only.
    let mut stream = TcpStream::connect(cluster.node(1).kafka).await.unwrap();
    let request = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(producer.producer_id))
        .with_producer_epoch(producer.producer_epoch)
        .with_transaction_result(false)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_indexes(vec![0, 1, 3])])]);
    let response: WriteTxnMarkersResponse = call(&mut stream, ApiKey::WriteTxnMarkers, 1, &request).await;
    let codes: Vec<i16> = response.markers[0].topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(
        codes,
        vec![0, 6, 3],
        "led here; NOT_LEADER_OR_FOLLOWER; UNKNOWN_TOPIC_OR_PARTITION"
    );

    // KIP-890: a transactional Produce after its transaction ended (a request delayed
    // past the abort) is refused by every leader, which asks the coordinator, here or
    // on another node (AddPartitionsToTxn v4, verify only); nothing is stored.
    // (The marker WriteTxnMarkers wrote at t-0's offset 6 closed nothing.)
    let ends = [7, 6, 6];
    for p in 0..3 {
        let code = produce_transactional(cluster.node(p + 1).kafka, p, producer, 4).await;
        assert_eq!(code, 48, "t-{p}: INVALID_TXN_STATE");
        let end = ends[p as usize];
        assert_eq!(
            offsets(&cluster.node(p + 1).api, p),
            (end, end),
            "t-{p}: nothing appended"
        );
    }
    // Added to a new transaction, the same batches are taken.
    let add = partitions.clone();
    coordinator
        .transactions(&caller, Some("app"), move |t| {
            t.add_partitions("app", producer, &add).map(drop)
        })
        .await
        .unwrap();
    for p in 0..3 {
        let code = produce_transactional(cluster.node(p + 1).kafka, p, producer, 4).await;
        assert_eq!(code, 0, "t-{p}");
        let end = ends[p as usize];
        assert_eq!(
            offsets(&cluster.node(p + 1).api, p),
            (end + 1, end),
            "t-{p}: open again"
        );
    }
    cluster.shutdown().await;
}

/// Produces one record of `producer`'s transaction to `t`-`partition` on the wire (acks=1);
/// the partition's error code.
async fn produce_transactional(
    address: std::net::SocketAddr,
    partition: i32,
    producer: ProducerIdAndEpoch,
    sequence: i32,
) -> i16 {
    let mut batch = RecordBatchBuilder::new()
        .producer(producer.producer_id, producer.producer_epoch, sequence)
        .flags(true, false);
    batch.push(3, Some(b"k"), Some(b"late"));
    let request = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("app"))))
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(vec![produce_request::PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(bytes::Bytes::from(batch.build().unwrap())))])]);
    let mut stream = TcpStream::connect(address).await.unwrap();
    let response: ProduceResponse = call(&mut stream, ApiKey::Produce, 9, &request).await;
    response.responses[0].partition_responses[0].error_code
}

/// Adds `t`-0..2 to the transaction and appends two records to each on its leader.
async fn add_and_append(
    cluster: &Cluster,
    coordinator: &BrokerApi,
    producer: ProducerIdAndEpoch,
    partitions: &[TopicPartition],
    sequence: i32,
) {
    let add = partitions.to_vec();
    coordinator
        .transactions(&Caller::internal(), Some("app"), move |t| {
            t.add_partitions("app", producer, &add).map(drop)
        })
        .await
        .unwrap();
    for p in 0..3 {
        append_open_txn(&cluster.node(p + 1).api, p, producer, sequence);
    }
}

/// KIP-951: a Produce or Fetch for a partition another node leads is answered with
/// NOT_LEADER_OR_FOLLOWER naming the leader, its epoch and its endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_a_node_that_does_not_lead_names_the_leader() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let cluster = Cluster::start().await;
    let topic = NewTopic {
        name: "hints".into(),
        num_partitions: 3,
        replication_factor: 1,
        ..Default::default()
    };
    let node1 = cluster.node(1).api.broker().clone();
    tokio::task::spawn_blocking(move || node1.create_topic(topic, false).unwrap())
        .await
        .unwrap();
    cluster
        .until("the topic is everywhere", |api| {
            api.broker().image().topic("hints").is_some()
        })
        .await;
    let image = cluster.node(1).api.broker().image();
    let (partition, state) = image
        .topic("hints")
        .unwrap()
        .partitions
        .iter()
        .find(|(_, s)| s.leader != 1)
        .map(|(p, s)| (*p, s.clone()))
        .unwrap();
    let leader = cluster.node(state.leader);
    let mut stream = TcpStream::connect(cluster.node(1).kafka).await.unwrap();
    let mut batch = RecordBatchBuilder::new();
    batch.push(1, Some(b"k"), Some(b"v"));
    let produce = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("hints")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(bytes::Bytes::from(batch.build().unwrap())))])]);
    let response: ProduceResponse = call(&mut stream, ApiKey::Produce, 11, &produce).await;
    let answered = &response.responses[0].partition_responses[0];
    assert_eq!(answered.error_code, 6, "NOT_LEADER_OR_FOLLOWER");
    assert_eq!(answered.current_leader.leader_id.0, state.leader);
    assert_eq!(answered.current_leader.leader_epoch, state.leader_epoch);
    assert_eq!(response.node_endpoints.len(), 1);
    assert_eq!(response.node_endpoints[0].node_id.0, state.leader);
    assert_eq!(response.node_endpoints[0].port, i32::from(leader.kafka.port()));

    let topic_id = image.topic("hints").unwrap().id;
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(vec![FetchPartition::default().with_partition(partition)])]);
    let response: FetchResponse = call(&mut stream, ApiKey::Fetch, 16, &fetch).await;
    let answered = &response.responses[0].partitions[0];
    assert_eq!(answered.error_code, 6);
    assert_eq!(answered.current_leader.leader_id.0, state.leader);
    assert_eq!(response.node_endpoints[0].port, i32::from(leader.kafka.port()));
    cluster.shutdown().await;
}

/// OffsetForLeaderEpoch is answered by the leader only: a follower knows the same
/// leader epoch, but its log may end behind the leader's, and a consumer validating its
/// position (KIP-320) seeks back to the end offset it is told. librdkafka sends v2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_for_leader_epoch_is_answered_by_the_leader_only() {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
    let cluster = Cluster::start().await;
    let topic = NewTopic {
        name: "epochs".into(),
        num_partitions: -1,
        replication_factor: -1,
        assignments: vec![(0, vec![2, 1, 3])],
        ..Default::default()
    };
    let node1 = cluster.node(1).api.broker().clone();
    tokio::task::spawn_blocking(move || node1.create_topic(topic, false).unwrap())
        .await
        .unwrap();
    cluster
        .until("every replica knows the leader", |api| {
            api.broker()
                .partition("epochs", 0)
                .is_ok_and(|p| p.replica().leader() == 2)
        })
        .await;
    let epoch = cluster
        .node(2)
        .api
        .broker()
        .partition("epochs", 0)
        .unwrap()
        .leader_epoch();
    let ask = |version: i16| {
        let request = OffsetForLeaderEpochRequest::default().with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("epochs")))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(epoch)
                .with_leader_epoch(epoch)])]);
        if version >= 3 {
            request.with_replica_id(BrokerId(-1))
        } else {
            request
        }
    };
    for version in [2, 4] {
        let mut leader = TcpStream::connect(cluster.node(2).kafka).await.unwrap();
        let answer: OffsetForLeaderEpochResponse =
            call(&mut leader, ApiKey::OffsetForLeaderEpoch, version, &ask(version)).await;
        let answered = &answer.topics[0].partitions[0];
        assert_eq!((answered.error_code, answered.leader_epoch), (0, epoch), "v{version}");
        for follower in [1, 3] {
            let mut stream = TcpStream::connect(cluster.node(follower).kafka).await.unwrap();
            let answer: OffsetForLeaderEpochResponse =
                call(&mut stream, ApiKey::OffsetForLeaderEpoch, version, &ask(version)).await;
            let answered = &answer.topics[0].partitions[0];
            assert_eq!(
                (answered.error_code, answered.end_offset),
                (6, -1),
                "v{version} on follower {follower}: NOT_LEADER_OR_FOLLOWER"
            );
        }
    }
    cluster.shutdown().await;
}

/// ElectLeaders over the wire: a partition led by its preferred replica needs no
/// election; one whose only replica left (controlled shutdown) cannot get it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elect_leaders_answers_per_partition() {
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    let cluster = Cluster::start().await;
    let topic = NewTopic {
        name: "elect".into(),
        num_partitions: 3,
        replication_factor: 1,
        ..Default::default()
    };
    let node1 = cluster.node(1).api.broker().clone();
    tokio::task::spawn_blocking(move || node1.create_topic(topic, false).unwrap())
        .await
        .unwrap();
    cluster
        .until("the topic is everywhere", |api| {
            api.broker().image().topic("elect").is_some()
        })
        .await;
    let on_3 = cluster
        .node(1)
        .api
        .broker()
        .image()
        .topic("elect")
        .unwrap()
        .partitions
        .iter()
        .find(|(_, s)| s.leader == 3)
        .map(|(p, _)| *p)
        .unwrap();
    // Node 3 leaves: a controlled shutdown fences it, its partition goes offline.
    cluster.node(3).api.shutdown().await.unwrap();
    cluster
        .until("node 3's partition is offline", |api| {
            api.node_id() == 3 || api.broker().image().topic("elect").unwrap().partitions[&on_3].leader == -1
        })
        .await;
    let led_by_1 = cluster
        .node(1)
        .api
        .broker()
        .image()
        .topic("elect")
        .unwrap()
        .partitions
        .iter()
        .find(|(_, s)| s.leader == 1)
        .map(|(p, _)| *p)
        .unwrap();
    let request = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_timeout_ms(10_000)
        .with_topic_partitions(Some(vec![TopicPartitions::default()
            .with_topic(TopicName(StrBytes::from_static_str("elect")))
            .with_partitions(vec![led_by_1, on_3, 99])]));
    let mut stream = TcpStream::connect(cluster.node(1).kafka).await.unwrap();
    let response: ElectLeadersResponse = call(&mut stream, ApiKey::ElectLeaders, 2, &request).await;
    assert_eq!(response.error_code, 0);
    let codes: BTreeMap<i32, i16> = response.replica_election_results[0]
        .partition_result
        .iter()
        .map(|r| (r.partition_id, r.error_code))
        .collect();
    // ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION.
    assert_eq!(codes, BTreeMap::from([(led_by_1, 84), (on_3, 80), (99, 3)]));
    cluster.shutdown().await;
}
