//! The shared client: bootstrap, cluster metadata cache, one connection per broker and retries.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::sync::Mutex;
use tracing::{debug, warn};
use uuid::Uuid;

use crate::connection::Connection;
use crate::constants::RETRY_BACKOFF_MAX;
use crate::error::{Error, Result};
use crate::offset::{ListedOffset, OffsetSpec};
use crate::topic_partition::TopicPartition;

/// Settings shared by producers, consumers and admin clients.
///
/// ```
/// use strom_client::ClientConfig;
///
/// let config = ClientConfig::new(["127.0.0.1:9092"]);
/// assert_eq!(config.client_id, "strom-client");
/// assert_eq!(config.retries, 5);
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` addresses tried in order to discover the cluster.
    pub bootstrap_servers: Vec<String>,
    /// Sent with every request; shows up in broker logs and quotas.
    pub client_id: String,
    /// How long to wait for any single response.
    pub request_timeout: Duration,
    /// How long setting up a connection may take: name lookup, TCP connect and the
    /// ApiVersions handshake (`socket.connection.setup.timeout.ms`).
    pub connect_timeout: Duration,
    /// Initial wait before a retry; doubles per attempt up to one second.
    pub retry_backoff: Duration,
    /// How many times a failed request is retried (connection failures and retriable errors).
    pub retries: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            bootstrap_servers: vec!["127.0.0.1:9092".to_string()],
            client_id: "strom-client".to_string(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry_backoff: Duration::from_millis(100),
            retries: 5,
        }
    }
}

impl ClientConfig {
    /// Default settings with the given bootstrap servers.
    pub fn new<I, S>(bootstrap_servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClientConfig {
            bootstrap_servers: bootstrap_servers.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    fn validate(&self) -> Result<()> {
        if self.bootstrap_servers.is_empty() {
            return Err(Error::Config("bootstrap_servers is empty".into()));
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::Config(
                "request_timeout and connect_timeout must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The wait before retry number `attempt` (0-based): `retry_backoff · 2^attempt`, at most 1 s.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        self.retry_backoff
            .saturating_mul(factor)
            .min(RETRY_BACKOFF_MAX.max(self.retry_backoff))
    }
}

/// A broker of the cluster, as listed by Metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMetadata {
    /// The broker's node id.
    pub id: i32,
    /// Host name clients connect to.
    pub host: String,
    /// Port clients connect to.
    pub port: u16,
    /// Rack, if configured.
    pub rack: Option<String>,
}

impl BrokerMetadata {
    /// `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// Partition index.
    pub partition: i32,
    /// Leader broker id, or -1 when there is none.
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Replica broker ids.
    pub replicas: Vec<i32>,
    /// In-sync replica broker ids.
    pub isr: Vec<i32>,
    /// The partition's error code in the last Metadata response (0 = fine).
    pub error_code: i16,
}

/// A topic and its partitions, sorted by partition index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// Topic name.
    pub name: String,
    /// Topic id (nil for brokers that do not have ids).
    pub topic_id: Uuid,
    /// Whether the topic is internal (`__consumer_offsets`, …).
    pub is_internal: bool,
    /// Partitions, index `i` at position `i`.
    pub partitions: Vec<PartitionMetadata>,
}

impl TopicMetadata {
    /// Number of partitions.
    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }

    /// The partition's metadata, if it exists.
    pub fn partition(&self, partition: i32) -> Option<&PartitionMetadata> {
        usize::try_from(partition)
            .ok()
            .and_then(|index| self.partitions.get(index))
    }
}

/// A snapshot of the cluster metadata cache.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// Cluster id, if the broker reports one.
    pub cluster_id: Option<String>,
    /// Controller broker id (-1 if unknown).
    pub controller_id: i32,
    /// Brokers by id.
    pub brokers: HashMap<i32, BrokerMetadata>,
    /// Topics by name (only those fetched so far).
    pub topics: HashMap<String, TopicMetadata>,
}

struct Inner {
    config: ClientConfig,
    metadata: RwLock<Arc<Metadata>>,
    connections: Mutex<HashMap<i32, Arc<Connection>>>,
    bootstrap: Mutex<Option<Arc<Connection>>>,
}

/// A connection to a cluster, cheap to clone and share between tasks.
///
/// ```no_run
/// # async fn demo() -> strom_client::Result<()> {
/// use strom_client::{Client, ClientConfig};
///
/// let client = Client::connect(ClientConfig::new(["127.0.0.1:9092"])).await?;
/// let topic = client.topic_metadata("events").await?;
/// println!("{} has {} partitions", topic.name, topic.partition_count());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("config", &self.inner.config).finish()
    }
}

impl Client {
    /// Connects to the first reachable bootstrap server and loads the broker list.
    pub async fn connect(config: ClientConfig) -> Result<Client> {
        config.validate()?;
        let client = Client {
            inner: Arc::new(Inner {
                config,
                metadata: RwLock::new(Arc::new(Metadata {
                    controller_id: -1,
                    ..Default::default()
                })),
                connections: Mutex::new(HashMap::new()),
                bootstrap: Mutex::new(None),
            }),
        };
        client.refresh_metadata(Some(&[])).await?;
        Ok(client)
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The current metadata snapshot (no request is sent).
    pub fn metadata(&self) -> Arc<Metadata> {
        crate::sync::read(&self.inner.metadata).clone()
    }

    /// Fetches metadata for `topics` (`None` = all topics) and merges it into the cache.
    /// Brokers are replaced by the response's list.
    pub async fn refresh_metadata(&self, topics: Option<&[&str]>) -> Result<Arc<Metadata>> {
        self.load_metadata(topics, false).await
    }

    async fn load_metadata(&self, topics: Option<&[&str]>, allow_auto_topic_creation: bool) -> Result<Arc<Metadata>> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|name| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(allow_auto_topic_creation);
        let response = self.send_any(&request).await?;
        let update = parse_metadata(response)?;
        let mut guard = crate::sync::write(&self.inner.metadata);
        let mut merged = (**guard).clone();
        merged.cluster_id = update.cluster_id;
        merged.controller_id = update.controller_id;
        merged.brokers = update.brokers;
        if topics.is_none() {
            merged.topics.clear();
        }
        for name in topics.unwrap_or_default() {
            merged.topics.remove(*name);
        }
        merged.topics.extend(update.topics);
        let merged = Arc::new(merged);
        *guard = merged.clone();
        Ok(merged)
    }

    /// A topic's metadata from the cache, fetched when missing. Fails with
    /// [`Error::UnknownTopic`] when the cluster does not have it.
    pub async fn topic_metadata(&self, topic: &str) -> Result<TopicMetadata> {
        if let Some(found) = self.metadata().topics.get(topic) {
            return Ok(found.clone());
        }
        self.fetch_topic_metadata(topic).await
    }

    /// A topic's metadata from the cache; when missing, asks the cluster and lets it create
    /// the topic if it creates topics on first use (`auto.create.topics.enable`), as
    /// Kafka's producers do. Fails with [`Error::UnknownTopic`] when it does not.
    pub async fn topic_metadata_or_create(&self, topic: &str) -> Result<TopicMetadata> {
        if let Some(found) = self.metadata().topics.get(topic).filter(|t| !t.partitions.is_empty()) {
            return Ok(found.clone());
        }
        self.retrying(|| async {
            let metadata = self.load_metadata(Some(&[topic]), true).await?;
            match metadata.topics.get(topic) {
                Some(found) if !found.partitions.is_empty() => Ok(found.clone()),
                // Kafka lists a topic it has just created without partitions until their
                // leaders are elected.
                Some(_) => Err(Error::kafka(5, Some("the new topic has no partitions yet"))),
                None => Err(Error::UnknownTopic(topic.to_string())),
            }
        })
        .await
    }

    /// Fetches a topic's metadata from the cluster, bypassing the cache.
    pub async fn fetch_topic_metadata(&self, topic: &str) -> Result<TopicMetadata> {
        let metadata = self.refresh_metadata(Some(&[topic])).await?;
        metadata
            .topics
            .get(topic)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic(topic.to_string()))
    }

    /// The leader broker of a partition, refreshing metadata once when it is unknown.
    pub async fn leader_for(&self, topic: &str, partition: i32) -> Result<i32> {
        let unknown = || Error::UnknownTopic(format!("{topic}-{partition}"));
        let cached = self.topic_metadata(topic).await?;
        let leader = cached.partition(partition).ok_or_else(unknown)?.leader;
        if leader >= 0 && self.metadata().brokers.contains_key(&leader) {
            return Ok(leader);
        }
        let fresh = self.fetch_topic_metadata(topic).await?;
        let leader = fresh.partition(partition).ok_or_else(unknown)?.leader;
        if leader < 0 {
            return Err(Error::kafka(5, Some("leader not available"))); // LEADER_NOT_AVAILABLE
        }
        Ok(leader)
    }

    /// Sends a request to a broker by id, reconnecting and retrying on connection failures.
    /// Kafka errors inside the response body are returned to the caller as they are.
    pub async fn send_to<Req: Request>(&self, broker_id: i32, request: &Req) -> Result<Req::Response> {
        self.retrying(|| async {
            let connection = self.connection(broker_id).await?;
            let result = connection.send(request).await;
            if result.is_err() && connection.is_closed() {
                self.drop_connection(broker_id, &connection).await;
            }
            result
        })
        .await
    }

    /// Sends a request to any broker (a known broker, else a bootstrap server), retrying on
    /// connection failures.
    pub async fn send_any<Req: Request>(&self, request: &Req) -> Result<Req::Response> {
        self.retrying(|| async {
            let connection = self.any_connection().await?;
            let result = connection.send(request).await;
            if result.is_err() && connection.is_closed() {
                let mut bootstrap = self.inner.bootstrap.lock().await;
                if bootstrap.as_ref().is_some_and(|c| Arc::ptr_eq(c, &connection)) {
                    *bootstrap = None;
                }
            }
            result
        })
        .await
    }

    /// The version [`Client::send_to`] (or, with `None`, [`Client::send_any`]) would use for
    /// request type `Req`, for requests whose fields differ between versions.
    pub async fn version_for<Req: Request>(&self, broker_id: Option<i32>) -> Result<i16> {
        let connection = match broker_id {
            Some(broker_id) => self.connection(broker_id).await?,
            None => self.any_connection().await?,
        };
        connection.version_for::<Req>()
    }

    /// Runs `operation` until it succeeds, fails with a non-retriable error or `retries` retries
    /// are used up, sleeping with exponential backoff in between.
    pub async fn retrying<T, F, Fut>(&self, mut operation: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            match operation().await {
                Ok(value) => return Ok(value),
                Err(error) if error.is_retriable() && attempt < self.inner.config.retries => {
                    let backoff = self.inner.config.backoff(attempt);
                    debug!(%error, attempt, ?backoff, "retrying");
                    tokio::time::sleep(backoff).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The pooled connection to a broker, opened (or reopened after a failure) on demand.
    pub async fn connection(&self, broker_id: i32) -> Result<Arc<Connection>> {
        let mut connections = self.inner.connections.lock().await;
        if let Some(connection) = connections.get(&broker_id) {
            if !connection.is_closed() {
                return Ok(connection.clone());
            }
        }
        let broker = self
            .metadata()
            .brokers
            .get(&broker_id)
            .cloned()
            .ok_or_else(|| Error::Protocol(format!("unknown broker id {broker_id}")))?;
        let config = &self.inner.config;
        let connection = Arc::new(
            Connection::connect_within(
                &broker.address(),
                &config.client_id,
                config.connect_timeout,
                config.request_timeout,
            )
            .await?,
        );
        connections.insert(broker_id, connection.clone());
        Ok(connection)
    }

    /// Looks up offsets with ListOffsets, asking each partition's leader: the earliest, the
    /// latest, or the first at or after a timestamp (offset -1 when no record is).
    /// `read_committed` makes "latest" the last stable offset.
    ///
    /// ```no_run
    /// # async fn demo(client: strom_client::Client) -> strom_client::Result<()> {
    /// use std::collections::BTreeMap;
    /// use strom_client::{OffsetSpec, TopicPartition};
    ///
    /// let partition = TopicPartition::new("events", 0);
    /// let query = BTreeMap::from([(partition.clone(), OffsetSpec::Latest)]);
    /// let offsets = client.list_offsets(&query, false).await?;
    /// println!("end offset of {partition}: {:?}", offsets.get(&partition));
    /// # Ok(()) }
    /// ```
    pub async fn list_offsets(
        &self,
        partitions: &BTreeMap<TopicPartition, OffsetSpec>,
        read_committed: bool,
    ) -> Result<HashMap<TopicPartition, ListedOffset>> {
        let mut by_leader: HashMap<i32, Vec<(&TopicPartition, OffsetSpec)>> = HashMap::new();
        for (key, spec) in partitions {
            let leader = self.leader_for(&key.topic, key.partition).await?;
            by_leader.entry(leader).or_default().push((key, *spec));
        }
        let mut out = HashMap::with_capacity(partitions.len());
        for (leader, entries) in by_leader {
            let mut topics: Vec<ListOffsetsTopic> = Vec::new();
            for (key, spec) in entries {
                let entry = ListOffsetsPartition::default()
                    .with_partition_index(key.partition)
                    .with_timestamp(spec.wire());
                match topics.iter_mut().find(|t| t.name.0.as_str() == key.topic) {
                    Some(found) => found.partitions.push(entry),
                    None => topics.push(
                        ListOffsetsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(key.topic.clone())))
                            .with_partitions(vec![entry]),
                    ),
                }
            }
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(i8::from(read_committed))
                .with_topics(topics);
            let response = self
                .retrying(|| async {
                    let response = self.send_to(leader, &request).await?;
                    for topic in &response.topics {
                        for partition in &topic.partitions {
                            let error = Error::check(partition.error_code, None);
                            if error.as_ref().is_err_and(Error::needs_metadata_refresh) {
                                let _ = self.fetch_topic_metadata(topic.name.0.as_str()).await;
                            }
                            error?;
                        }
                    }
                    Ok(response)
                })
                .await?;
            for topic in response.topics {
                for partition in topic.partitions {
                    out.insert(
                        TopicPartition::new(topic.name.0.to_string(), partition.partition_index),
                        ListedOffset {
                            offset: partition.offset,
                            timestamp: partition.timestamp,
                        },
                    );
                }
            }
        }
        for key in partitions.keys() {
            if !out.contains_key(key) {
                return Err(Error::Protocol(format!("ListOffsets response lacks {key}")));
            }
        }
        Ok(out)
    }

    async fn drop_connection(&self, broker_id: i32, connection: &Arc<Connection>) {
        let mut connections = self.inner.connections.lock().await;
        if connections.get(&broker_id).is_some_and(|c| Arc::ptr_eq(c, connection)) {
            connections.remove(&broker_id);
        }
    }

    async fn any_connection(&self) -> Result<Arc<Connection>> {
        {
            let connections = self.inner.connections.lock().await;
            if let Some(connection) = connections.values().find(|c| !c.is_closed()) {
                return Ok(connection.clone());
            }
        }
        let mut bootstrap = self.inner.bootstrap.lock().await;
        if let Some(connection) = bootstrap.as_ref().filter(|c| !c.is_closed()) {
            return Ok(connection.clone());
        }
        let config = &self.inner.config;
        let known: Vec<String> = self.metadata().brokers.values().map(BrokerMetadata::address).collect();
        let mut failures = Vec::new();
        for address in config.bootstrap_servers.iter().chain(known.iter()) {
            match Connection::connect_within(
                address,
                &config.client_id,
                config.connect_timeout,
                config.request_timeout,
            )
            .await
            {
                Ok(connection) => {
                    let connection = Arc::new(connection);
                    *bootstrap = Some(connection.clone());
                    return Ok(connection);
                }
                Err(error) => {
                    warn!(address, %error, "cannot connect");
                    failures.push(error);
                }
            }
        }
        Err(Error::NoBrokers(failures))
    }
}

fn parse_metadata(response: MetadataResponse) -> Result<Metadata> {
    Error::check(response.error_code, None)?;
    let mut brokers = HashMap::with_capacity(response.brokers.len());
    for broker in response.brokers {
        let port = u16::try_from(broker.port)
            .map_err(|_| Error::Protocol(format!("broker {} has port {}", broker.node_id.0, broker.port)))?;
        if broker.host.is_empty() {
            return Err(Error::Protocol(format!(
                "broker {} has an empty host",
                broker.node_id.0
            )));
        }
        brokers.insert(
            broker.node_id.0,
            BrokerMetadata {
                id: broker.node_id.0,
                host: broker.host.to_string(),
                port,
                rack: broker.rack.map(|r| r.to_string()),
            },
        );
    }
    let mut topics = HashMap::with_capacity(response.topics.len());
    for topic in response.topics {
        let Some(name) = topic.name else {
            return Err(Error::Protocol("metadata topic without a name".into()));
        };
        let name = name.0.to_string();
        match topic.error_code {
            0 => {}
            3 => continue, // UNKNOWN_TOPIC_OR_PARTITION: leave it out of the cache
            code => {
                debug!(topic = %name, code, "topic metadata error");
                if code != 5 {
                    continue; // not LEADER_NOT_AVAILABLE: nothing usable
                }
            }
        }
        let mut partitions: Vec<PartitionMetadata> = topic
            .partitions
            .into_iter()
            .map(|p| PartitionMetadata {
                partition: p.partition_index,
                leader: p.leader_id.0,
                leader_epoch: p.leader_epoch,
                replicas: ids(p.replica_nodes),
                isr: ids(p.isr_nodes),
                error_code: p.error_code,
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        let dense = partitions
            .iter()
            .enumerate()
            .all(|(index, p)| usize::try_from(p.partition) == Ok(index));
        if !dense {
            return Err(Error::Protocol(format!(
                "topic {name} has gaps in its partition indexes"
            )));
        }
        topics.insert(
            name.clone(),
            TopicMetadata {
                name,
                topic_id: topic.topic_id,
                is_internal: topic.is_internal,
                partitions,
            },
        );
    }
    Ok(Metadata {
        cluster_id: response.cluster_id.map(|c| c.to_string()),
        controller_id: response.controller_id.0,
        brokers,
        topics,
    })
}

fn ids(brokers: Vec<BrokerId>) -> Vec<i32> {
    brokers.into_iter().map(|b| b.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_one_second() {
        let config = ClientConfig::default();
        assert_eq!(config.backoff(0), Duration::from_millis(100));
        assert_eq!(config.backoff(1), Duration::from_millis(200));
        assert_eq!(config.backoff(3), Duration::from_millis(800));
        assert_eq!(config.backoff(4), Duration::from_secs(1));
        assert_eq!(config.backoff(40), Duration::from_secs(1));
    }

    #[test]
    fn config_defaults() {
        let config = ClientConfig::new(["a:1", "b:2"]);
        assert_eq!(config.bootstrap_servers, vec!["a:1".to_string(), "b:2".to_string()]);
        assert_eq!(config.request_timeout, Duration::from_secs(30));
        assert_eq!(config.connect_timeout, Duration::from_secs(10));
        assert!(config.validate().is_ok());
        assert!(ClientConfig::new(Vec::<String>::new()).validate().is_err());
    }
}
