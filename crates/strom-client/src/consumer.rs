//! The consumer: manually assigned partitions, or a subscription managed by a consumer group
//! (`membership.rs` runs the group protocol in the background and replaces the assignment).
//!
//! `poll` sends one Fetch per leader broker for the assigned, unpaused partitions, decodes
//! the returned batches (skipping control batches, and aborted transactions under
//! read_committed) and advances each partition's position past what it returned.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::Stream;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::assignment::{resolve_offsets, PartitionState, SharedAssignment};
use crate::assignor::Assignor;
use crate::client::{Client, ClientConfig};
use crate::error::{Error, Result};
use crate::fetch_buffer::FetchBuffer;
use crate::group::{ConsumerGroupMetadata, GroupCoordinator, GroupSettings};
use crate::membership::{
    commit_offsets, commit_positions, GroupProtocol, MemberOptions, Membership, RebalanceListener,
};
use crate::offset::{AutoOffsetReset, Offset};
use crate::record::{decode_batches, AbortedTransaction, ConsumerRecord};
use crate::subscription::Subscription;
use crate::topic_partition::TopicPartition;
use crate::{classic_group, consumer_group};

/// Kafka's OFFSET_OUT_OF_RANGE error code.
const OFFSET_OUT_OF_RANGE: i16 = 1;

/// Which records a consumer sees of transactional producers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Everything, including open and aborted transactions.
    #[default]
    ReadUncommitted,
    /// Only committed transactions, up to the last stable offset.
    ReadCommitted,
}

/// Consumer settings; the defaults are Kafka's.
///
/// ```
/// use strom_client::{ConsumerConfig, IsolationLevel};
///
/// let config = ConsumerConfig { isolation_level: IsolationLevel::ReadCommitted, ..Default::default() };
/// assert_eq!(config.fetch_min_bytes, 1);
/// ```
#[derive(Clone)]
pub struct ConsumerConfig {
    /// The broker answers a fetch once it has this many bytes (or the wait is over).
    pub fetch_min_bytes: i32,
    /// Upper bound on the bytes of one fetch response (the broker returns at least one batch).
    pub fetch_max_bytes: i32,
    /// Longest time the broker holds a fetch waiting for `fetch_min_bytes`.
    pub fetch_max_wait: Duration,
    /// Upper bound on the bytes per partition in one fetch response.
    pub max_partition_fetch_bytes: i32,
    /// Which transactional records are visible.
    pub isolation_level: IsolationLevel,
    /// The consumer group joined by [`Consumer::subscribe`]; `None` allows manual assignment only.
    pub group_id: Option<String>,
    /// Static membership: a stable id for this member across restarts (`group.instance.id`).
    pub group_instance_id: Option<String>,
    /// The coordinator drops a member that sends no heartbeat for this long.
    pub session_timeout: Duration,
    /// How long the coordinator waits for every member to rejoin during a rebalance
    /// (`max.poll.interval.ms` in Kafka's clients).
    pub rebalance_timeout: Duration,
    /// Time between heartbeats; well below the session timeout.
    pub heartbeat_interval: Duration,
    /// Assignors offered to the group in order of preference; the leader uses the one the
    /// coordinator picks among those every member supports, and that one decides whether
    /// rebalances are eager or cooperative.
    pub assignors: Vec<Assignor>,
    /// Commit the positions of the assigned partitions every `auto_commit_interval`, before a
    /// rebalance and on close.
    pub enable_auto_commit: bool,
    /// Period of the automatic commits.
    pub auto_commit_interval: Duration,
    /// Where to start partitions without a committed offset (and after OFFSET_OUT_OF_RANGE).
    pub auto_offset_reset: AutoOffsetReset,
    /// Told about partitions revoked and assigned by rebalances.
    pub rebalance_listener: Option<Arc<dyn RebalanceListener>>,
    /// Most records one `poll` returns; the rest stay buffered for the next polls.
    pub max_poll_records: usize,
    /// Period of the metadata refresh that re-evaluates a pattern subscription
    /// ([`Consumer::subscribe_pattern`]).
    pub metadata_max_age: Duration,
    /// The group membership protocol.
    pub group_protocol: GroupProtocol,
    /// With [`GroupProtocol::Consumer`]: the broker-side assignor to use (`uniform`, `range`, …);
    /// `None` leaves the choice to the broker.
    pub remote_assignor: Option<String>,
}

impl std::fmt::Debug for ConsumerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerConfig")
            .field("fetch_min_bytes", &self.fetch_min_bytes)
            .field("fetch_max_bytes", &self.fetch_max_bytes)
            .field("fetch_max_wait", &self.fetch_max_wait)
            .field("max_partition_fetch_bytes", &self.max_partition_fetch_bytes)
            .field("isolation_level", &self.isolation_level)
            .field("group_id", &self.group_id)
            .field("group_instance_id", &self.group_instance_id)
            .field("session_timeout", &self.session_timeout)
            .field("rebalance_timeout", &self.rebalance_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("assignors", &self.assignors)
            .field("enable_auto_commit", &self.enable_auto_commit)
            .field("auto_commit_interval", &self.auto_commit_interval)
            .field("auto_offset_reset", &self.auto_offset_reset)
            .field("max_poll_records", &self.max_poll_records)
            .field("metadata_max_age", &self.metadata_max_age)
            .field("group_protocol", &self.group_protocol)
            .field("remote_assignor", &self.remote_assignor)
            .finish_non_exhaustive()
    }
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 * 1024 * 1024,
            fetch_max_wait: Duration::from_millis(500),
            max_partition_fetch_bytes: 1024 * 1024,
            isolation_level: IsolationLevel::ReadUncommitted,
            group_id: None,
            group_instance_id: None,
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(300),
            heartbeat_interval: Duration::from_secs(3),
            assignors: vec![Assignor::Range, Assignor::RoundRobin],
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            auto_offset_reset: AutoOffsetReset::Latest,
            rebalance_listener: None,
            max_poll_records: 500,
            metadata_max_age: Duration::from_secs(30),
            group_protocol: GroupProtocol::Classic,
            remote_assignor: None,
        }
    }
}

impl ConsumerConfig {
    fn validate(&self) -> Result<()> {
        if self.fetch_max_bytes <= 0 || self.max_partition_fetch_bytes <= 0 || self.fetch_min_bytes < 0 {
            return Err(Error::Config("fetch byte limits must be positive".into()));
        }
        if self.max_poll_records == 0 {
            return Err(Error::Config("max_poll_records must be positive".into()));
        }
        if self.metadata_max_age.is_zero() {
            return Err(Error::Config("metadata_max_age must be positive".into()));
        }
        if self.group_id.is_some() {
            if self.assignors.is_empty() {
                return Err(Error::Config("assignors is empty".into()));
            }
            if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.session_timeout {
                return Err(Error::Config(
                    "heartbeat_interval must be positive and below session_timeout".into(),
                ));
            }
            if self.enable_auto_commit && self.auto_commit_interval.is_zero() {
                return Err(Error::Config("auto_commit_interval must be positive".into()));
            }
        }
        Ok(())
    }

    fn read_committed(&self) -> bool {
        self.isolation_level == IsolationLevel::ReadCommitted
    }
}

/// A consumer of manually assigned partitions.
///
/// ```no_run
/// # async fn demo() -> strom_client::Result<()> {
/// use std::time::Duration;
/// use std::collections::BTreeMap;
/// use strom_client::{ClientConfig, Consumer, ConsumerConfig, Offset, TopicPartition};
///
/// let consumer = Consumer::new(ClientConfig::new(["127.0.0.1:9092"]), ConsumerConfig::default()).await?;
/// consumer.assign(BTreeMap::from([(TopicPartition::new("events", 0), Offset::Beginning)])).await?;
/// loop {
///     for record in consumer.poll(Duration::from_secs(1)).await? {
///         println!("{}: {:?}", record.offset, record.value);
///     }
/// }
/// # }
/// ```
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    assignment: SharedAssignment,
    buffer: Mutex<FetchBuffer>,
    group: Option<Arc<Membership>>,
    membership_task: Mutex<Option<JoinHandle<Result<()>>>>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// Connects a new client and creates a consumer on it.
    pub async fn new(client_config: ClientConfig, config: ConsumerConfig) -> Result<Consumer> {
        Consumer::with_client(Client::connect(client_config).await?, config)
    }

    /// Creates a consumer on an existing client.
    pub fn with_client(client: Client, config: ConsumerConfig) -> Result<Consumer> {
        config.validate()?;
        let group = config.group_id.clone().map(|group_id| {
            let settings = GroupSettings {
                group_id,
                group_instance_id: config.group_instance_id.clone(),
                session_timeout: config.session_timeout,
                rebalance_timeout: config.rebalance_timeout,
                assignors: config.assignors.clone(),
            };
            let options = MemberOptions {
                heartbeat_interval: config.heartbeat_interval,
                auto_commit_interval: config.enable_auto_commit.then_some(config.auto_commit_interval),
                auto_offset_reset: config.auto_offset_reset,
                read_committed: config.read_committed(),
                listener: config.rebalance_listener.clone(),
                metadata_max_age: config.metadata_max_age,
                protocol: config.group_protocol,
                remote_assignor: config.remote_assignor.clone(),
            };
            Arc::new(Membership::new(
                GroupCoordinator::new(client.clone(), settings),
                options,
            ))
        });
        Ok(Consumer {
            client,
            config,
            assignment: Arc::new(Mutex::new(BTreeMap::new())),
            buffer: Mutex::new(FetchBuffer::default()),
            group,
            membership_task: Mutex::new(None),
        })
    }

    fn membership(&self) -> Result<&Arc<Membership>> {
        self.group
            .as_ref()
            .ok_or_else(|| Error::Config("group_id is not set".into()))
    }

    /// Joins the consumer group (`group_id`) with a subscription to these topics; the group
    /// assigns the partitions, which `poll` then reads. Membership (heartbeats, rebalances,
    /// auto-commit) runs in the background until [`Consumer::close`]. Calling it again changes
    /// the subscription.
    ///
    /// ```no_run
    /// # async fn demo() -> strom_client::Result<()> {
    /// use std::time::Duration;
    /// use strom_client::{ClientConfig, Consumer, ConsumerConfig};
    ///
    /// let config = ConsumerConfig { group_id: Some("billing".into()), ..Default::default() };
    /// let consumer = Consumer::new(ClientConfig::new(["127.0.0.1:9092"]), config).await?;
    /// consumer.subscribe(&["events"]).await?;
    /// for record in consumer.poll(Duration::from_secs(1)).await? {
    ///     println!("{}-{}@{}", record.topic, record.partition, record.offset);
    /// }
    /// consumer.close().await?;
    /// # Ok(()) }
    /// ```
    pub async fn subscribe(&self, topics: &[&str]) -> Result<()> {
        self.membership()?;
        if topics.is_empty() {
            return Err(Error::Config("subscribe needs at least one topic".into()));
        }
        self.start_membership(Subscription::Topics(topics.iter().map(ToString::to_string).collect()))
            .await
    }

    /// Joins the consumer group (`group_id`) with a subscription to every topic whose whole
    /// name matches `pattern` (a `regex` crate pattern, anchored at both ends as Java's
    /// `Pattern.matches`; internal topics are left out). The pattern is matched again every
    /// `metadata_max_age` and at every rebalance, so topics created later join the
    /// subscription. With [`GroupProtocol::Consumer`] and ConsumerGroupHeartbeat v1 the broker
    /// matches the pattern itself.
    ///
    /// ```no_run
    /// # async fn demo(consumer: strom_client::Consumer) -> strom_client::Result<()> {
    /// consumer.subscribe_pattern("events-.*").await?;
    /// # Ok(()) }
    /// ```
    pub async fn subscribe_pattern(&self, pattern: &str) -> Result<()> {
        self.membership()?;
        self.start_membership(Subscription::pattern(pattern)?).await
    }

    async fn start_membership(&self, subscription: Subscription) -> Result<()> {
        let membership = self.membership()?;
        membership.subscribe(subscription);
        let mut task = self.membership_task.lock().await;
        if task.is_none() {
            let assignment = self.assignment.clone();
            *task = Some(match membership.options.protocol {
                GroupProtocol::Classic => tokio::spawn(classic_group::run(membership.clone(), assignment)),
                GroupProtocol::Consumer => tokio::spawn(consumer_group::run(membership.clone(), assignment)),
            });
        }
        Ok(())
    }

    /// The group, generation and member id, for
    /// [`crate::Producer::send_offsets_to_transaction`].
    pub fn group_metadata(&self) -> Result<ConsumerGroupMetadata> {
        Ok(self.membership()?.coordinator.metadata())
    }

    /// Commits the positions of all assigned partitions and waits for the coordinator.
    pub async fn commit_sync(&self) -> Result<()> {
        commit_positions(self.membership()?, &self.assignment).await
    }

    /// Commits the positions of all assigned partitions in the background; the returned
    /// handle yields the outcome.
    pub async fn commit_async(&self) -> Result<JoinHandle<Result<()>>> {
        let membership = self.membership()?.clone();
        let offsets = self.positions().await;
        Ok(tokio::spawn(async move { commit_offsets(&membership, &offsets).await }))
    }

    /// Commits these offsets (the next offset to read of each partition) for the group.
    pub async fn commit(&self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        commit_offsets(self.membership()?, offsets).await
    }

    /// The group's committed offsets of these partitions; partitions without one are absent.
    pub async fn committed(&self, partitions: &[TopicPartition]) -> Result<HashMap<TopicPartition, i64>> {
        self.membership()?.coordinator.committed(partitions).await
    }

    /// The positions (next offsets) of all assigned partitions.
    pub async fn positions(&self) -> BTreeMap<TopicPartition, i64> {
        self.assignment
            .lock()
            .await
            .iter()
            .map(|(key, state)| (key.clone(), state.position))
            .collect()
    }

    /// Leaves the group (after committing with auto-commit and revoking the partitions).
    /// Without a subscription there is nothing to do.
    pub async fn close(&self) -> Result<()> {
        let Some(membership) = &self.group else { return Ok(()) };
        let Some(task) = self.membership_task.lock().await.take() else {
            return Ok(());
        };
        membership.stop();
        match task.await {
            Ok(result) => result.or_else(|error| match membership.fatal_error() {
                Some(_) => Ok(()), // already reported by poll
                None => Err(error),
            }),
            Err(error) => Err(Error::Config(format!("group membership task failed: {error}"))),
        }
    }

    /// The client this consumer fetches with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Replaces the assignment with these partitions, each starting at the given offset.
    pub async fn assign(&self, partitions: BTreeMap<TopicPartition, Offset>) -> Result<()> {
        let resolved = self.resolve(&partitions).await?;
        let mut assignment = self.assignment.lock().await;
        assignment.clear();
        for (partition, position) in resolved {
            assignment.insert(
                partition,
                PartitionState {
                    position,
                    paused: false,
                },
            );
        }
        Ok(())
    }

    /// Moves an assigned partition's position.
    pub async fn seek(&self, partition: &TopicPartition, offset: Offset) -> Result<()> {
        let resolved = self.resolve(&BTreeMap::from([(partition.clone(), offset)])).await?;
        let mut assignment = self.assignment.lock().await;
        for (key, position) in resolved {
            let state = assignment.get_mut(&key).ok_or_else(|| not_assigned(&key))?;
            state.position = position;
        }
        Ok(())
    }

    /// The next offset `poll` returns for an assigned partition.
    pub async fn position(&self, partition: &TopicPartition) -> Option<i64> {
        self.assignment.lock().await.get(partition).map(|s| s.position)
    }

    /// The assigned partitions, sorted.
    pub async fn assignment(&self) -> Vec<TopicPartition> {
        self.assignment.lock().await.keys().cloned().collect()
    }

    /// Stops fetching these partitions until resumed (positions are kept).
    pub async fn pause(&self, partitions: &[TopicPartition]) -> Result<()> {
        self.set_paused(partitions, true).await
    }

    /// Fetches paused partitions again.
    pub async fn resume(&self, partitions: &[TopicPartition]) -> Result<()> {
        self.set_paused(partitions, false).await
    }

    async fn set_paused(&self, partitions: &[TopicPartition], paused: bool) -> Result<()> {
        let mut assignment = self.assignment.lock().await;
        for key in partitions {
            assignment.get_mut(key).ok_or_else(|| not_assigned(key))?.paused = paused;
        }
        Ok(())
    }

    async fn resolve(&self, partitions: &BTreeMap<TopicPartition, Offset>) -> Result<BTreeMap<TopicPartition, i64>> {
        resolve_offsets(&self.client, self.config.read_committed(), partitions).await
    }

    /// Fetches records of the assigned, unpaused partitions, waiting up to `timeout` for at
    /// least one. Returns at most `max_poll_records` records (the rest stay buffered for the
    /// next polls), or an empty list when none arrived in time.
    pub async fn poll(&self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        if let Some(error) = self.group.as_ref().and_then(|g| g.fatal_error()) {
            return Err(error);
        }
        let deadline = Instant::now() + timeout;
        let mut assignment = self.assignment.lock().await;
        let mut buffer = self.buffer.lock().await;
        loop {
            let records = buffer.drain(&mut assignment, self.config.max_poll_records);
            if !records.is_empty() || Instant::now() >= deadline {
                return Ok(records);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            self.fetch_once(&mut assignment, &mut buffer, remaining).await?;
        }
    }

    /// An endless stream of records (polling in a loop); errors are yielded, not fatal.
    ///
    /// ```no_run
    /// # async fn demo(consumer: strom_client::Consumer) {
    /// use futures_util::StreamExt;
    ///
    /// let mut records = std::pin::pin!(consumer.stream());
    /// while let Some(record) = records.next().await {
    ///     println!("{:?}", record.map(|r| r.offset));
    /// }
    /// # }
    /// ```
    pub fn stream(&self) -> impl Stream<Item = Result<ConsumerRecord>> + '_ {
        futures_util::stream::unfold((self, VecDeque::new()), |(consumer, mut buffered)| async move {
            loop {
                if let Some(record) = buffered.pop_front() {
                    return Some((Ok(record), (consumer, buffered)));
                }
                match consumer
                    .poll(consumer.config.fetch_max_wait.max(Duration::from_millis(100)))
                    .await
                {
                    Ok(records) => buffered.extend(records),
                    Err(error) => return Some((Err(error), (consumer, buffered))),
                }
            }
        })
    }

    /// One round of fetches for the partitions without buffered records; what arrives goes
    /// into the buffer.
    async fn fetch_once(
        &self,
        assignment: &mut BTreeMap<TopicPartition, PartitionState>,
        buffer: &mut FetchBuffer,
        wait: Duration,
    ) -> Result<()> {
        let mut by_leader: HashMap<i32, Vec<(TopicPartition, i64)>> = HashMap::new();
        let fetchable = assignment
            .iter()
            .filter(|(key, state)| !state.paused && !buffer.has_records_for(key, state.position));
        for (key, state) in fetchable {
            match self.client.leader_for(&key.topic, key.partition).await {
                Ok(leader) => by_leader.entry(leader).or_default().push((key.clone(), state.position)),
                Err(error) if error.is_retriable() => {
                    debug!(topic = %key.topic, partition = key.partition, %error, "no leader")
                }
                Err(error) => return Err(error),
            }
        }
        if by_leader.is_empty() {
            tokio::time::sleep(wait.min(self.client.config().retry_backoff.max(Duration::from_millis(10)))).await;
            return Ok(());
        }
        let fetches = by_leader.into_iter().map(|(leader, partitions)| async move {
            let request = self.fetch_request(&partitions, wait);
            (partitions, self.client.send_to(leader, &request).await)
        });
        for (partitions, response) in futures_util::future::join_all(fetches).await {
            match response {
                Ok(response) => self.absorb(assignment, buffer, &partitions, response).await?,
                Err(error) if error.is_retriable() => {
                    warn!(%error, "fetch failed");
                    let _ = self.client.refresh_metadata(Some(&[])).await;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    fn fetch_request(&self, partitions: &[(TopicPartition, i64)], wait: Duration) -> FetchRequest {
        let mut topics: Vec<FetchTopic> = Vec::new();
        for (key, position) in partitions {
            let (topic, partition) = (&key.topic, key.partition);
            let entry = FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(*position)
                .with_partition_max_bytes(self.config.max_partition_fetch_bytes);
            match topics.iter_mut().find(|t| t.topic.0.as_str() == topic) {
                Some(found) => found.partitions.push(entry),
                None => topics.push(
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                        .with_partitions(vec![entry]),
                ),
            }
        }
        FetchRequest::default()
            .with_max_wait_ms(i32::try_from(wait.as_millis()).unwrap_or(i32::MAX))
            .with_min_bytes(self.config.fetch_min_bytes)
            .with_max_bytes(self.config.fetch_max_bytes)
            .with_isolation_level(i8::from(self.config.isolation_level == IsolationLevel::ReadCommitted))
            .with_topics(topics)
    }

    async fn absorb(
        &self,
        assignment: &mut BTreeMap<TopicPartition, PartitionState>,
        buffer: &mut FetchBuffer,
        requested: &[(TopicPartition, i64)],
        response: FetchResponse,
    ) -> Result<()> {
        Error::check(response.error_code, None)?;
        let read_committed = self.config.isolation_level == IsolationLevel::ReadCommitted;
        for topic in response.responses {
            let name = topic.topic.0.to_string();
            for partition in topic.partitions {
                let key = TopicPartition::new(name.clone(), partition.partition_index);
                let Some((_, fetch_offset)) = requested.iter().find(|(k, _)| *k == key) else {
                    return Err(Error::Protocol(format!("fetch response for unrequested {key}")));
                };
                match partition.error_code {
                    0 => {}
                    OFFSET_OUT_OF_RANGE => {
                        let reset = self.config.auto_offset_reset.offset().ok_or_else(|| {
                            Error::kafka(OFFSET_OUT_OF_RANGE, Some(&format!("{key} at {fetch_offset}")))
                        })?;
                        warn!(topic = %key.topic, partition = key.partition, offset = fetch_offset, ?reset, "offset out of range, resetting");
                        let resolved = self.resolve(&BTreeMap::from([(key.clone(), reset)])).await?;
                        if let (Some(position), Some(state)) = (resolved.get(&key), assignment.get_mut(&key)) {
                            state.position = *position;
                        }
                        continue;
                    }
                    code => {
                        let error = Error::kafka(code, None);
                        if error.needs_metadata_refresh() {
                            debug!(topic = %key.topic, partition = key.partition, %error, "refreshing metadata");
                            let _ = self.client.fetch_topic_metadata(&key.topic).await;
                            continue;
                        }
                        return Err(error);
                    }
                }
                let Some(raw) = partition.records.filter(|r| !r.is_empty()) else {
                    continue;
                };
                let aborted: Option<Vec<AbortedTransaction>> = read_committed.then(|| {
                    partition
                        .aborted_transactions
                        .unwrap_or_default()
                        .into_iter()
                        .map(|a| AbortedTransaction {
                            producer_id: a.producer_id.0,
                            first_offset: a.first_offset,
                        })
                        .collect()
                });
                let decoded = decode_batches(&key.topic, key.partition, raw, *fetch_offset, aborted.as_deref())?;
                if assignment
                    .get(&key)
                    .is_some_and(|state| state.position == *fetch_offset)
                {
                    buffer.insert(key, *fetch_offset, decoded.records, decoded.next_offset);
                }
            }
        }
        Ok(())
    }
}

fn not_assigned(key: &TopicPartition) -> Error {
    Error::Config(format!("{key} is not assigned"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_are_kafkas() {
        let config = ConsumerConfig::default();
        assert_eq!(config.fetch_min_bytes, 1);
        assert_eq!(config.fetch_max_bytes, 52_428_800);
        assert_eq!(config.fetch_max_wait, Duration::from_millis(500));
        assert_eq!(config.max_partition_fetch_bytes, 1_048_576);
        assert_eq!(config.isolation_level, IsolationLevel::ReadUncommitted);
    }
}
