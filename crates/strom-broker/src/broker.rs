//! The broker: the topic catalog (a metadata image changed only by committing metadata
//! records, kept by a [`MetadataStore`]), the live topics and partitions it hosts, and
//! the log manager below them. Front-ends do not call it directly: they call the
//! façade ([`crate::api::BrokerApi`]), which checks the caller and calls this.
//!
//! The data directory's layout is described in [`crate::log_manager`].

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use strom_log::{AppendInfo, Clock, SystemClock};
use uuid::Uuid;

use crate::constants::{APPEND_FAILURE_LOG_INTERVAL_MS, PARTITIONS_PER_TOPIC_MAX};
use crate::dynamic_config::DynamicConfigStore;
use crate::error::{BrokerError, Result};
use crate::log_manager::LogManager;
use crate::metadata::{MetadataImage, MetadataRecord, MetadataStore, TopicRecord, TopicsJsonStore};
pub use crate::partition::AppendOrigin;
use crate::partition::{AppendLimits, Partition};
use crate::producer_id::ProducerIdManager;
use crate::sync::{lock, read, write};
use crate::topic::{is_internal_topic, validate_topic_name, Topic, INTERNAL_TOPIC_FIXED_CONFIGS};
use crate::topic_config::{self, ConfigEntry, TopicDefaults, TOPIC_CONFIGS};

/// Settings of the broker core (the binary fills this from its configuration).
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub data_dir: PathBuf,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub topic_defaults: TopicDefaults,
    pub retention_check_interval_ms: u64,
    /// `log.cleaner.backoff.ms`: pause between compaction passes.
    pub cleaner_backoff_ms: u64,
    /// `producer.id.expiration.ms`: idle producers' state is dropped after this.
    pub producer_id_expiration_ms: i64,
}

impl BrokerConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> BrokerConfig {
        BrokerConfig {
            node_id: 1,
            data_dir: data_dir.into(),
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics_enable: true,
            topic_defaults: TopicDefaults::default(),
            retention_check_interval_ms: 300_000,
            cleaner_backoff_ms: 15_000,
            producer_id_expiration_ms: 86_400_000,
        }
    }
}

/// A CreateTopics request for one topic, in the broker's terms.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    pub name: String,
    /// -1 = `num.partitions`.
    pub num_partitions: i32,
    /// -1 = `default.replication.factor`.
    pub replication_factor: i16,
    /// Manual assignment: partition index → replica broker ids.
    pub assignments: Vec<(i32, Vec<i32>)>,
    pub configs: BTreeMap<String, String>,
}

/// What a created (or validated) topic looks like.
#[derive(Debug, Clone)]
pub struct TopicSummary {
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: Vec<ConfigEntry>,
}

/// One IncrementalAlterConfigs operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterOp {
    Set,
    Delete,
    Append,
    Subtract,
}

pub struct Broker {
    config: BrokerConfig,
    clock: Arc<dyn Clock>,
    logs: LogManager,
    /// The topic catalog as committed metadata records built it.
    image: RwLock<Arc<MetadataImage>>,
    store: Box<dyn MetadataStore>,
    /// The live topics (with their open partitions), by name and id.
    topics: RwLock<TopicIndex>,
    /// Serialises changes to the topic catalog and configs.
    pub(crate) admin: Mutex<()>,
    producer_ids: ProducerIdManager,
    /// Static topic defaults with the dynamic broker configs applied.
    pub(crate) topic_defaults: RwLock<Arc<TopicDefaults>>,
    /// Group id → its group configs (GROUP resource).
    pub(crate) group_configs: RwLock<BTreeMap<String, BTreeMap<String, String>>>,
    pub(crate) dynamic_store: DynamicConfigStore,
    append_failures: FailureLog,
}

/// Logs failed appends (a full or failing disk) at most once per
/// [`APPEND_FAILURE_LOG_INTERVAL_MS`], with the number not logged since: one line per
/// failed produce would flood the log exactly when the disk is full.
#[derive(Default)]
struct FailureLog {
    last_ms: std::sync::atomic::AtomicI64,
    unlogged: std::sync::atomic::AtomicU64,
}

impl FailureLog {
    fn record(&self, now_ms: i64, topic: &str, partition: i32, error: &BrokerError) {
        use std::sync::atomic::Ordering;
        let last = self.last_ms.load(Ordering::Acquire);
        let due = last == 0 || now_ms.saturating_sub(last) >= APPEND_FAILURE_LOG_INTERVAL_MS;
        if !due
            || self
                .last_ms
                .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            self.unlogged.fetch_add(1, Ordering::AcqRel);
            return;
        }
        let unlogged = self.unlogged.swap(0, Ordering::AcqRel);
        tracing::error!(topic, partition, %error, failures_since_last_line = unlogged, "append failed");
    }
}

impl Broker {
    /// Open (or create) the data directory, recover every partition log and load topics.
    pub fn open(config: BrokerConfig) -> Result<Arc<Broker>> {
        Self::open_with_clock(config, Arc::new(SystemClock))
    }

    pub fn open_with_clock(config: BrokerConfig, clock: Arc<dyn Clock>) -> Result<Arc<Broker>> {
        let logs = LogManager::open(&config.data_dir, config.node_id, clock.clone())?;
        let store: Box<dyn MetadataStore> = Box::new(TopicsJsonStore::new(&config.data_dir));
        let image = MetadataImage::from_records(&store.load()?)?;
        let producer_ids = ProducerIdManager::open(&config.data_dir)?;
        let dynamic_store = DynamicConfigStore::new(&config.data_dir);
        let dynamic = dynamic_store.load()?;
        let mut defaults = config.topic_defaults.clone();
        defaults.dynamic_broker = dynamic.broker;
        defaults.dynamic_default = dynamic.cluster_default;
        let broker = Broker {
            clock,
            logs,
            image: RwLock::new(Arc::new(image)),
            store,
            topics: RwLock::new(TopicIndex::default()),
            admin: Mutex::new(()),
            producer_ids,
            topic_defaults: RwLock::new(Arc::new(defaults)),
            group_configs: RwLock::new(dynamic.groups),
            dynamic_store,
            append_failures: FailureLog::default(),
            config,
        };
        let mut finished = Vec::new();
        for record in broker.image().topics() {
            if broker.logs.was_deleted(record.id) {
                // Deleted (its directories were renamed) before the metadata could be
                // rewritten, e.g. on a full disk: finish the deletion.
                broker.logs.finish_deletion(&record.name, record.partitions);
                tracing::info!(topic = %record.name, "finished deleting topic");
                finished.push(MetadataRecord::RemoveTopic { topic_id: record.id });
                continue;
            }
            let topic = broker.open_topic(record)?;
            broker.topics_write().insert(topic);
        }
        if !finished.is_empty() {
            broker.commit_removals(&finished);
        }
        tracing::info!(topics = broker.topics_read().by_name.len(), dir = %broker.config.data_dir.display(), "broker opened");
        Ok(Arc::new(broker))
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    pub fn cluster_id(&self) -> &str {
        self.logs.cluster_id()
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The committed topic catalog.
    pub fn image(&self) -> Arc<MetadataImage> {
        read(&self.image).clone()
    }

    /// Checks `records` against the image, makes them durable, then publishes the new
    /// image. Callers hold the admin lock.
    fn commit(&self, records: &[MetadataRecord]) -> Result<()> {
        let mut next = (*self.image()).clone();
        for record in records {
            next.apply(record)?;
        }
        self.store.append(records, &next)?;
        *write(&self.image) = Arc::new(next);
        Ok(())
    }

    /// Removals of topics whose directories were already renamed (the deletion's commit
    /// point): the image drops them even when the store cannot be written now, since the
    /// next start finds the renamed directories and finishes the deletion.
    fn commit_removals(&self, records: &[MetadataRecord]) {
        let mut next = (*self.image()).clone();
        for record in records {
            if let Err(e) = next.apply(record) {
                tracing::warn!(error = %e, "removal does not fit the metadata");
            }
        }
        if let Err(e) = self.store.append(records, &next) {
            tracing::warn!(error = %e, "could not rewrite the topic list; the next start finishes the deletion");
        }
        *write(&self.image) = Arc::new(next);
    }

    fn topics_read(&self) -> std::sync::RwLockReadGuard<'_, TopicIndex> {
        read(&self.topics)
    }

    fn topics_write(&self) -> std::sync::RwLockWriteGuard<'_, TopicIndex> {
        write(&self.topics)
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics_read().by_name.get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics_read().by_id.get(&id).cloned()
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut topics: Vec<_> = self.topics_read().by_name.values().cloned().collect();
        topics.sort_by(|a, b| a.name().cmp(b.name()));
        topics
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Result<Arc<Partition>> {
        self.topic(topic)
            .and_then(|t| t.partition(partition))
            .ok_or(BrokerError::UnknownTopicOrPartition)
    }

    /// The live topic for a committed topic record: its partitions opened.
    fn open_topic(&self, record: &TopicRecord) -> Result<Arc<Topic>> {
        let name: Arc<str> = Arc::from(record.name.as_str());
        let log_config = self.defaults().log_config(&record.configs);
        let partitions = (0..record.partitions)
            .map(|i| self.logs.open_partition(&name, record.id, i, log_config))
            .collect::<Result<Vec<_>>>()?;
        let limits = self.defaults().limits(&record.configs);
        Ok(Arc::new(Topic::new(
            name,
            record.id,
            record.configs.clone(),
            partitions,
            limits,
        )))
    }

    /// Resolved configs of a topic with these overrides, every known name.
    pub fn resolve_configs(&self, overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
        TOPIC_CONFIGS
            .iter()
            .map(|def| self.defaults().resolve(def, overrides))
            .collect()
    }

    /// CreateTopics for one topic. With `validate_only` nothing is created.
    pub fn create_topic(&self, mut new: NewTopic, validate_only: bool) -> Result<TopicSummary> {
        validate_topic_name(&new.name).map_err(BrokerError::InvalidTopic)?;
        new.configs.retain(|name, _| !topic_config::is_ignored(name));
        let (partitions, replication_factor) = self.check_layout(&new)?;
        for (name, value) in &new.configs {
            topic_config::validate(name, value)?;
        }
        let _admin = lock(&self.admin);
        if self.topic(&new.name).is_some() {
            return Err(BrokerError::TopicAlreadyExists(new.name));
        }
        if let Some(clash) = self
            .topics_read()
            .by_name
            .keys()
            .find(|t| collides(t, &new.name))
            .cloned()
        {
            return Err(BrokerError::InvalidTopic(format!(
                "Topic '{}' collides with existing topic: {clash}",
                new.name
            )));
        }
        let id = Uuid::new_v4();
        let summary = TopicSummary {
            id,
            partitions,
            replication_factor,
            configs: self.resolve_configs(&new.configs),
        };
        if validate_only {
            return Ok(summary);
        }
        let record = TopicRecord {
            name: new.name.clone(),
            id,
            partitions,
            configs: new.configs,
        };
        let topic = self.open_topic(&record)?;
        self.commit(&[MetadataRecord::Topic(record)])?;
        self.topics_write().insert(topic);
        tracing::info!(topic = %new.name, partitions, "topic created");
        Ok(summary)
    }

    fn check_layout(&self, new: &NewTopic) -> Result<(i32, i16)> {
        if !new.assignments.is_empty() {
            if new.num_partitions != -1 || new.replication_factor != -1 {
                return Err(BrokerError::InvalidRequest(
                    "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
                ));
            }
            let mut indexes: Vec<i32> = new.assignments.iter().map(|(p, _)| *p).collect();
            indexes.sort_unstable();
            if indexes.iter().enumerate().any(|(i, p)| *p != i as i32) {
                return Err(BrokerError::InvalidReplicaAssignment(
                    "partitions must be numbered 0..n".into(),
                ));
            }
            let node = self.config.node_id;
            let replicas = new.assignments[0].1.len();
            for (_, brokers) in &new.assignments {
                if brokers.len() != replicas || brokers.iter().any(|b| *b != node) || brokers.is_empty() {
                    return Err(BrokerError::InvalidReplicaAssignment(format!(
                        "replicas must be [{node}] on this single-node cluster"
                    )));
                }
            }
            return Ok((indexes.len() as i32, replicas as i16));
        }
        let partitions = match new.num_partitions {
            -1 => self.config.num_partitions,
            n => n,
        };
        if partitions <= 0 || partitions > PARTITIONS_PER_TOPIC_MAX {
            return Err(BrokerError::InvalidPartitions(format!(
                "Number of partitions must be between 1 and {PARTITIONS_PER_TOPIC_MAX}"
            )));
        }
        let replication_factor = match new.replication_factor {
            -1 => self.config.default_replication_factor,
            n => n,
        };
        if replication_factor <= 0 {
            return Err(BrokerError::InvalidReplicationFactor(
                "Replication factor must be larger than 0.".into(),
            ));
        }
        if replication_factor > 1 {
            return Err(BrokerError::InvalidReplicationFactor(format!(
                "Replication factor: {replication_factor} larger than available brokers: 1."
            )));
        }
        Ok((partitions, replication_factor))
    }

    /// An internal compacted topic (`__consumer_offsets`, `__transaction_state`),
    /// created on first use as Kafka does.
    pub fn internal_topic(&self, name: &str, partitions: i32, segment_bytes: i64) -> Result<Arc<Topic>> {
        if let Some(topic) = self.topic(name) {
            return Ok(topic);
        }
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), segment_bytes.to_string()),
        ]);
        let new = NewTopic {
            name: name.to_string(),
            num_partitions: partitions,
            replication_factor: 1,
            assignments: Vec::new(),
            configs,
        };
        match self.create_topic(new, false) {
            Ok(_) | Err(BrokerError::TopicAlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        self.topic(name).ok_or(BrokerError::CoordinatorNotAvailable)
    }

    /// Create a topic on first use (Metadata), if `auto.create.topics.enable`.
    pub fn auto_create_topic(&self, name: &str) -> Result<Option<Arc<Topic>>> {
        if !self.config.auto_create_topics_enable {
            return Ok(None);
        }
        let new = NewTopic {
            name: name.to_string(),
            num_partitions: -1,
            replication_factor: -1,
            ..Default::default()
        };
        match self.create_topic(new, false) {
            Ok(_) | Err(BrokerError::TopicAlreadyExists(_)) => Ok(self.topic(name)),
            Err(e) => Err(e),
        }
    }

    pub fn delete_topic(&self, name: &str) -> Result<Uuid> {
        if is_internal_topic(name) {
            return Err(BrokerError::InvalidTopic(format!(
                "Cannot delete internal topic {name}"
            )));
        }
        let _admin = lock(&self.admin);
        let topic = self
            .topics_write()
            .remove(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        let indexes: Vec<i32> = topic.partitions().iter().map(|p| p.index()).collect();
        let renamed = match self.logs.commit_deletion(name, topic.id(), &indexes) {
            Ok(renamed) => renamed,
            Err(e) => {
                self.topics_write().insert(topic);
                return Err(e);
            }
        };
        let id = topic.id();
        drop(topic);
        self.logs.remove_deleted(&renamed);
        self.commit_removals(&[MetadataRecord::RemoveTopic { topic_id: id }]);
        tracing::info!(topic = %name, "topic deleted");
        Ok(id)
    }

    /// CreatePartitions: grow a topic to `count` partitions.
    pub fn create_partitions(&self, name: &str, count: i32, validate_only: bool) -> Result<()> {
        let _admin = lock(&self.admin);
        let topic = self.topic(name).ok_or(BrokerError::UnknownTopicOrPartition)?;
        if topic.is_internal() {
            return Err(BrokerError::InvalidPartitions(format!(
                "Cannot change the partition count of internal topic {name}: groups and transactions are placed by it"
            )));
        }
        let current = topic.partition_count();
        if count < current {
            return Err(BrokerError::InvalidPartitions(format!(
                "Topic currently has {current} partitions, which is higher than the requested {count}."
            )));
        }
        if count == current {
            return Err(BrokerError::InvalidPartitions(format!(
                "Topic already has {current} partitions."
            )));
        }
        if count > PARTITIONS_PER_TOPIC_MAX {
            return Err(BrokerError::InvalidPartitions(format!(
                "Number of partitions must be at most {PARTITIONS_PER_TOPIC_MAX}"
            )));
        }
        if validate_only {
            return Ok(());
        }
        let log_config = self.defaults().log_config(&topic.overrides());
        let name = topic.name_arc();
        let added = (current..count)
            .map(|i| self.logs.open_partition(&name, topic.id(), i, log_config))
            .collect::<Result<Vec<_>>>()?;
        self.commit(&[MetadataRecord::PartitionCount {
            topic_id: topic.id(),
            count,
        }])?;
        topic.add_partitions(added);
        Ok(())
    }

    /// Replace a topic's whole set of overrides (AlterConfigs).
    pub fn alter_topic_configs(
        &self,
        name: &str,
        mut configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<()> {
        configs.retain(|name, _| !topic_config::is_ignored(name));
        for (key, value) in &configs {
            topic_config::validate(key, value)?;
        }
        let _admin = lock(&self.admin);
        let topic = self.topic(name).ok_or(BrokerError::UnknownTopicOrPartition)?;
        check_internal_overrides(&topic, &configs)?;
        if validate_only {
            return Ok(());
        }
        self.apply_overrides(&topic, configs)
    }

    /// IncrementalAlterConfigs on a topic.
    pub fn incremental_alter_topic_configs(
        &self,
        name: &str,
        ops: &[(String, AlterOp, Option<String>)],
        validate_only: bool,
    ) -> Result<()> {
        let _admin = lock(&self.admin);
        let topic = self.topic(name).ok_or(BrokerError::UnknownTopicOrPartition)?;
        let mut overrides = topic.overrides();
        for (key, op, value) in ops.iter().filter(|(key, ..)| !topic_config::is_ignored(key)) {
            let def = topic_config::config_def(key)
                .ok_or_else(|| BrokerError::InvalidConfig(format!("Unknown topic config name: {key}")))?;
            let value = value.clone().unwrap_or_default();
            match op {
                AlterOp::Set => {
                    topic_config::validate(key, &value)?;
                    overrides.insert(key.clone(), value);
                }
                AlterOp::Delete => {
                    overrides.remove(key);
                }
                AlterOp::Append | AlterOp::Subtract => {
                    if def.kind != topic_config::ConfigType::List {
                        return Err(BrokerError::InvalidConfig(format!(
                            "Config value append/subtract is not allowed for config key {key}"
                        )));
                    }
                    let current = self.defaults().value(key, &overrides);
                    let mut items: Vec<String> = current
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect();
                    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        if *op == AlterOp::Append && !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        } else if *op == AlterOp::Subtract {
                            items.retain(|i| i != item);
                        }
                    }
                    let joined = items.join(",");
                    topic_config::validate(key, &joined)?;
                    overrides.insert(key.clone(), joined);
                }
            }
        }
        check_internal_overrides(&topic, &overrides)?;
        if validate_only {
            return Ok(());
        }
        self.apply_overrides(&topic, overrides)
    }

    /// DeleteRecords on one partition; refused on internal topics as in Kafka.
    pub fn delete_records(&self, topic: &str, partition: i32, offset: i64) -> Result<i64> {
        let partition = self.partition(topic, partition)?;
        if is_internal_topic(topic) {
            return Err(BrokerError::InvalidTopic(format!(
                "Cannot delete records of internal topic {topic}"
            )));
        }
        partition.delete_records(offset)
    }

    fn apply_overrides(&self, topic: &Topic, overrides: BTreeMap<String, String>) -> Result<()> {
        self.commit(&[MetadataRecord::TopicConfigs {
            topic_id: topic.id(),
            configs: overrides.clone(),
        }])?;
        let defaults = self.defaults();
        topic.set_overrides(overrides.clone(), defaults.limits(&overrides));
        let log_config = defaults.log_config(&overrides);
        for partition in topic.partitions() {
            partition.set_config(log_config);
        }
        Ok(())
    }

    /// Append produced batches to a partition, enforcing the topic's limits; says whether
    /// `flush.messages` now asks for an fsync.
    pub fn append(
        &self,
        topic: &Topic,
        partition: &Partition,
        batches: &[u8],
        origin: AppendOrigin,
    ) -> Result<Appended> {
        if origin == AppendOrigin::Client && topic.is_internal() {
            return Err(BrokerError::InvalidTopic(format!(
                "Cannot append to internal topic {}",
                topic.name()
            )));
        }
        let limits = topic.limits();
        let append_limits = AppendLimits {
            max_message_bytes: limits.max_message_bytes,
            require_keys: limits.compact,
        };
        let info = partition.append(batches, origin, append_limits).inspect_err(|error| {
            if error.is_storage() {
                self.append_failures
                    .record(self.clock.now_ms(), topic.name(), partition.index(), error);
            }
        })?;
        Ok(Appended {
            info,
            flush_due: partition.flush_due(limits.flush_messages),
        })
    }

    /// `flush.messages`: whether the partition now holds as many unflushed records as its
    /// topic allows (the produce that got there then waits for an fsync, as in Kafka).
    pub fn flush_due(&self, topic: &Topic, partition: &Partition) -> bool {
        partition.flush_due(topic.limits().flush_messages)
    }

    /// `flush.ms`: fsyncs every partition whose records have waited past its topic's
    /// `flush.ms` since the last fsync. Blocking I/O.
    pub fn flush_stale(&self) {
        self.logs.flush_stale(&self.topics());
    }

    /// A producer id never used before (InitProducerId).
    pub fn next_producer_id(&self) -> Result<i64> {
        self.producer_ids.next_id()
    }

    /// Time-based work: roll segments past `segment.ms`, apply retention, forget idle
    /// producers. Blocking I/O.
    pub fn maintain(&self) {
        self.logs
            .maintain(&self.topics(), self.config.producer_id_expiration_ms);
    }

    /// Compact the closed segments of every `cleanup.policy=compact` topic. Blocking I/O.
    pub fn compact(&self) {
        self.logs.compact(&self.topics());
    }

    /// Flush every log and mark it cleanly closed.
    pub fn shutdown(&self) -> Result<()> {
        let mut first_error = None;
        for topic in self.topics() {
            for partition in topic.partitions() {
                if let Err(e) = partition.close() {
                    tracing::error!(partition = ?partition, error = %e, "close failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        tracing::info!("broker closed");
        first_error.map_or(Ok(()), Err)
    }
}

/// The topics, by name and by id (Fetch and Produce from v13 name topics by id).
#[derive(Default)]
struct TopicIndex {
    by_name: HashMap<Arc<str>, Arc<Topic>>,
    by_id: HashMap<Uuid, Arc<Topic>>,
}

impl TopicIndex {
    fn insert(&mut self, topic: Arc<Topic>) {
        self.by_id.insert(topic.id(), topic.clone());
        self.by_name.insert(topic.name_arc(), topic);
    }

    fn remove(&mut self, name: &str) -> Option<Arc<Topic>> {
        let topic = self.by_name.remove(name)?;
        self.by_id.remove(&topic.id());
        Some(topic)
    }
}

/// Kafka forbids topics whose names differ only by '.' vs '_' (metric names collide).
fn collides(existing: &str, new: &str) -> bool {
    existing != new && existing.replace('.', "_") == new.replace('.', "_")
}

/// Refuses overrides that change what keeps an internal topic's data.
fn check_internal_overrides(topic: &Topic, wanted: &BTreeMap<String, String>) -> Result<()> {
    if !topic.is_internal() {
        return Ok(());
    }
    let current = topic.overrides();
    for key in INTERNAL_TOPIC_FIXED_CONFIGS {
        if current.get(*key) != wanted.get(*key) {
            return Err(BrokerError::PolicyViolation(format!(
                "{key} of internal topic {} cannot be changed: committed offsets or transaction state would be lost",
                topic.name()
            )));
        }
    }
    Ok(())
}

/// What [`Broker::append`] did.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub info: AppendInfo,
    /// The partition holds `flush.messages` unflushed records: the produce that got
    /// there waits for an fsync, as in Kafka.
    pub flush_due: bool,
}

mod dynamic_configs;
#[cfg(test)]
mod tests;
