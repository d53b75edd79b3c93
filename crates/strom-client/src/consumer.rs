//! The consumer, with manually assigned partitions (no group membership yet).
//!
//! `poll` sends one Fetch per leader broker for the assigned, unpaused partitions, decodes
//! the returned batches (skipping control batches, and aborted transactions under
//! read_committed) and advances each partition's position past what it returned.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use futures_util::stream::Stream;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::client::{Client, ClientConfig};
use crate::error::{Error, Result};
use crate::record::{decode_batches, AbortedTransaction, ConsumerRecord};

/// Kafka's OFFSET_OUT_OF_RANGE error code.
const OFFSET_OUT_OF_RANGE: i16 = 1;

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// The log start offset (earliest record still stored).
    Beginning,
    /// The log end offset: only records produced from now on.
    End,
    /// An exact offset.
    At(i64),
    /// The first record with a timestamp at or after this one (ms since the epoch); the end
    /// when there is none.
    Timestamp(i64),
}

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
#[derive(Debug, Clone)]
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
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 * 1024 * 1024,
            fetch_max_wait: Duration::from_millis(500),
            max_partition_fetch_bytes: 1024 * 1024,
            isolation_level: IsolationLevel::ReadUncommitted,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct PartitionState {
    position: i64,
    paused: bool,
}

type TopicPartition = (String, i32);

/// A consumer of manually assigned partitions.
///
/// ```no_run
/// # async fn demo() -> strom_client::Result<()> {
/// use std::time::Duration;
/// use strom_client::{ClientConfig, Consumer, ConsumerConfig, Offset};
///
/// let consumer = Consumer::new(ClientConfig::new(["127.0.0.1:9092"]), ConsumerConfig::default()).await?;
/// consumer.assign(vec![("events".to_string(), 0, Offset::Beginning)]).await?;
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
    assignment: Mutex<BTreeMap<TopicPartition, PartitionState>>,
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
        if config.fetch_max_bytes <= 0 || config.max_partition_fetch_bytes <= 0 || config.fetch_min_bytes < 0 {
            return Err(Error::Config("fetch byte limits must be positive".into()));
        }
        Ok(Consumer {
            client,
            config,
            assignment: Mutex::new(BTreeMap::new()),
        })
    }

    /// The client this consumer fetches with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Replaces the assignment with these partitions, each starting at the given offset.
    pub async fn assign(&self, partitions: Vec<(String, i32, Offset)>) -> Result<()> {
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
    pub async fn seek(&self, topic: &str, partition: i32, offset: Offset) -> Result<()> {
        let resolved = self.resolve(&[(topic.to_string(), partition, offset)]).await?;
        let mut assignment = self.assignment.lock().await;
        for (key, position) in resolved {
            let state = assignment.get_mut(&key).ok_or_else(|| not_assigned(&key))?;
            state.position = position;
        }
        Ok(())
    }

    /// The next offset `poll` returns for an assigned partition.
    pub async fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.assignment
            .lock()
            .await
            .get(&(topic.to_string(), partition))
            .map(|s| s.position)
    }

    /// The assigned partitions, sorted.
    pub async fn assignment(&self) -> Vec<(String, i32)> {
        self.assignment.lock().await.keys().cloned().collect()
    }

    /// Stops fetching these partitions until resumed (positions are kept).
    pub async fn pause(&self, partitions: &[(String, i32)]) -> Result<()> {
        self.set_paused(partitions, true).await
    }

    /// Fetches paused partitions again.
    pub async fn resume(&self, partitions: &[(String, i32)]) -> Result<()> {
        self.set_paused(partitions, false).await
    }

    async fn set_paused(&self, partitions: &[(String, i32)], paused: bool) -> Result<()> {
        let mut assignment = self.assignment.lock().await;
        for key in partitions {
            assignment.get_mut(key).ok_or_else(|| not_assigned(key))?.paused = paused;
        }
        Ok(())
    }

    async fn resolve(&self, partitions: &[(String, i32, Offset)]) -> Result<Vec<(TopicPartition, i64)>> {
        let mut queries = Vec::new();
        for (topic, partition, offset) in partitions {
            let timestamp = match offset {
                Offset::Beginning => -2,
                Offset::End => -1,
                Offset::Timestamp(timestamp) => *timestamp,
                Offset::At(_) => continue,
            };
            queries.push((topic.clone(), *partition, timestamp));
        }
        let read_committed = self.config.isolation_level == IsolationLevel::ReadCommitted;
        let mut found = if queries.is_empty() {
            HashMap::new()
        } else {
            self.client.list_offsets(&queries, read_committed).await?
        };
        let mut missing_timestamps = Vec::new();
        for (topic, partition, offset) in partitions {
            if matches!(offset, Offset::Timestamp(_))
                && found.get(&(topic.clone(), *partition)).is_some_and(|f| f.0 < 0)
            {
                missing_timestamps.push((topic.clone(), *partition, -1));
            }
        }
        if !missing_timestamps.is_empty() {
            found.extend(self.client.list_offsets(&missing_timestamps, read_committed).await?);
        }
        let mut resolved = Vec::with_capacity(partitions.len());
        for (topic, partition, offset) in partitions {
            let key = (topic.clone(), *partition);
            let position =
                match offset {
                    Offset::At(at) if *at >= 0 => *at,
                    Offset::At(at) => return Err(Error::Config(format!("negative offset {at}"))),
                    _ => found.get(&key).map(|f| f.0).filter(|o| *o >= 0).ok_or_else(|| {
                        Error::Protocol(format!("no offset found for {topic}-{partition} ({offset:?})"))
                    })?,
                };
            resolved.push((key, position));
        }
        Ok(resolved)
    }

    /// Fetches records of the assigned, unpaused partitions, waiting up to `timeout` for at
    /// least one. Returns an empty list when none arrived in time.
    pub async fn poll(&self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let deadline = Instant::now() + timeout;
        let mut assignment = self.assignment.lock().await;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let records = self.fetch_once(&mut assignment, remaining).await?;
            if !records.is_empty() || Instant::now() >= deadline {
                return Ok(records);
            }
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

    async fn fetch_once(
        &self,
        assignment: &mut BTreeMap<TopicPartition, PartitionState>,
        wait: Duration,
    ) -> Result<Vec<ConsumerRecord>> {
        let mut by_leader: HashMap<i32, Vec<(TopicPartition, i64)>> = HashMap::new();
        for (key, state) in assignment.iter().filter(|(_, s)| !s.paused) {
            match self.client.leader_for(&key.0, key.1).await {
                Ok(leader) => by_leader.entry(leader).or_default().push((key.clone(), state.position)),
                Err(error) if error.is_retriable() => debug!(topic = %key.0, partition = key.1, %error, "no leader"),
                Err(error) => return Err(error),
            }
        }
        if by_leader.is_empty() {
            tokio::time::sleep(wait.min(self.client.config().retry_backoff.max(Duration::from_millis(10)))).await;
            return Ok(Vec::new());
        }
        let fetches = by_leader.into_iter().map(|(leader, partitions)| async move {
            let request = self.fetch_request(&partitions, wait);
            (partitions, self.client.send_to(leader, &request).await)
        });
        let mut records = Vec::new();
        for (partitions, response) in futures_util::future::join_all(fetches).await {
            match response {
                Ok(response) => self.absorb(assignment, &partitions, response, &mut records).await?,
                Err(error) if error.is_retriable() => {
                    warn!(%error, "fetch failed");
                    let _ = self.client.refresh_metadata(Some(&[])).await;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(records)
    }

    fn fetch_request(&self, partitions: &[(TopicPartition, i64)], wait: Duration) -> FetchRequest {
        let mut topics: Vec<FetchTopic> = Vec::new();
        for ((topic, partition), position) in partitions {
            let entry = FetchPartition::default()
                .with_partition(*partition)
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
        requested: &[(TopicPartition, i64)],
        response: FetchResponse,
        records: &mut Vec<ConsumerRecord>,
    ) -> Result<()> {
        Error::check(response.error_code, None)?;
        let read_committed = self.config.isolation_level == IsolationLevel::ReadCommitted;
        for topic in response.responses {
            let name = topic.topic.0.to_string();
            for partition in topic.partitions {
                let key = (name.clone(), partition.partition_index);
                let Some((_, fetch_offset)) = requested.iter().find(|(k, _)| *k == key) else {
                    return Err(Error::Protocol(format!(
                        "fetch response for unrequested {}-{}",
                        key.0, key.1
                    )));
                };
                match partition.error_code {
                    0 => {}
                    OFFSET_OUT_OF_RANGE => {
                        warn!(topic = %key.0, partition = key.1, offset = fetch_offset, "offset out of range, resetting to the beginning");
                        let resolved = self.resolve(&[(key.0.clone(), key.1, Offset::Beginning)]).await?;
                        if let (Some((_, position)), Some(state)) = (resolved.first(), assignment.get_mut(&key)) {
                            state.position = *position;
                        }
                        continue;
                    }
                    code => {
                        let error = Error::kafka(code, None);
                        if error.needs_metadata_refresh() {
                            debug!(topic = %key.0, partition = key.1, %error, "refreshing metadata");
                            let _ = self.client.fetch_topic_metadata(&key.0).await;
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
                let decoded = decode_batches(&key.0, key.1, raw, *fetch_offset, aborted.as_deref())?;
                if let Some(state) = assignment.get_mut(&key) {
                    if state.position == *fetch_offset {
                        state.position = decoded.next_offset;
                        records.extend(decoded.records);
                    }
                }
            }
        }
        Ok(())
    }
}

fn not_assigned(key: &TopicPartition) -> Error {
    Error::Config(format!("{}-{} is not assigned", key.0, key.1))
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
