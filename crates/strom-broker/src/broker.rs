//! The broker: the live topics and partitions it hosts, kept in line with the metadata
//! its node applied from the metadata quorum ([`Quorum`]), and the log manager below
//! them. Admin changes are records proposed to the quorum; once committed and applied,
//! [`Broker::sync_metadata`] opens, grows, reconfigures or deletes the local logs, so a
//! change acts the same whichever node proposed it. Front-ends do not call it directly: they call the
//! façade ([`crate::api::BrokerApi`]), which checks the caller and calls this.
//!
//! The data directory's layout is described in [`crate::log_manager`].

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use strom_cluster::{Listener, MetadataImage, MetadataRecord, Quorum, QuorumConfig, TopicImage, TopicRecord};
use strom_log::{AppendInfo, Clock, SystemClock};
use uuid::Uuid;

use crate::constants::{APPEND_FAILURE_LOG_INTERVAL_MS, INTERNAL_TOPIC_REPLICATION_FACTOR, PARTITIONS_PER_TOPIC_MAX};
use crate::error::{BrokerError, Result};
use crate::log_manager::LogManager;
pub use crate::partition::AppendOrigin;
use crate::partition::{AppendLimits, Partition};
use crate::producer_id::ProducerIdManager;
use crate::producer_state::TxnGuard;
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
    /// The metadata quorum this node runs; `None`: a quorum of one voter, this node,
    /// with its files in the data directory.
    pub quorum: Option<QuorumConfig>,
    /// `cluster.id`: when set, the cluster must have this id.
    pub cluster_id: Option<String>,
    /// The advertised listeners this broker registers.
    pub listeners: Vec<Listener>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// `replica.selector.class` is the rack-aware selector: leaders send consumers of
    /// another rack to an in-sync replica in theirs (KIP-392).
    pub rack_aware_reads: bool,
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: u64,
    /// Partition replication (`replica.*`).
    pub replication: crate::replication::ReplicationConfig,
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
            quorum: None,
            cluster_id: None,
            listeners: Vec::new(),
            rack: None,
            rack_aware_reads: false,
            heartbeat_interval_ms: 2000,
            replication: crate::replication::ReplicationConfig::default(),
        }
    }
}

/// ElectLeaders' outcome per (topic, partition).
pub type Elections = Vec<((String, i32), Result<()>)>;

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
    quorum: Arc<Quorum>,
    /// This broker's epoch: the log index of its registration, one per process lifetime.
    broker_epoch: i64,
    /// The metadata the live topics were last brought in line with.
    image: RwLock<Arc<MetadataImage>>,
    /// Serialises [`Broker::sync_metadata`].
    metadata_sync: Mutex<()>,
    /// The live topics (with their open partitions), by name and id.
    topics: RwLock<TopicIndex>,
    /// Serialises changes to the topic catalog and configs.
    pub(crate) admin: Mutex<()>,
    producer_ids: ProducerIdManager,
    /// Static topic defaults with the dynamic broker configs of the synced image applied.
    pub(crate) topic_defaults: RwLock<Arc<TopicDefaults>>,
    append_failures: FailureLog,
}

/// How long a controlled shutdown waits for its fencing to commit (the quorum may be
/// gone: then the session times out instead).
const CONTROLLED_SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

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
    /// Opens (or creates) the data directory, joins the metadata quorum, registers,
    /// and opens the partitions the metadata places on this node.
    pub fn open(config: BrokerConfig) -> Result<Arc<Broker>> {
        Self::open_with_clock(config, Arc::new(SystemClock))
    }

    pub fn open_with_clock(config: BrokerConfig, clock: Arc<dyn Clock>) -> Result<Arc<Broker>> {
        let logs = LogManager::open(&config.data_dir, config.node_id, clock.clone())?;
        let quorum_config = config
            .quorum
            .clone()
            .unwrap_or_else(|| QuorumConfig::single(config.node_id as u64, &config.data_dir));
        let quorum = Quorum::start(quorum_config)?;
        let opened = Self::join(config, clock, logs, quorum.clone());
        if opened.is_err() {
            quorum.shutdown();
        }
        opened
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    pub fn cluster_id(&self) -> &str {
        self.logs.cluster_id()
    }

    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch
    }

    pub fn quorum(&self) -> &Arc<Quorum> {
        &self.quorum
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The metadata the live topics are in line with.
    pub fn image(&self) -> Arc<MetadataImage> {
        read(&self.image).clone()
    }

    /// Commits `records` through the quorum, then brings the live topics in line.
    fn commit(&self, records: Vec<MetadataRecord>) -> Result<()> {
        self.quorum.propose(records)?;
        self.sync_metadata()
    }

    /// Brings the live topics in line with the metadata this node applied: puts the
    /// dynamic configs in force, opens the partitions of new topics and new partitions,
    /// applies changed topic configs and deletes the logs of removed topics.
    /// Idempotent; called after each local commit and whenever the applied metadata
    /// changes. Returns the first failure after trying everything.
    pub fn sync_metadata(&self) -> Result<()> {
        let _sync = lock(&self.metadata_sync);
        let image = self.quorum.applied().image.clone();
        if Arc::ptr_eq(&image, &self.image()) {
            return Ok(());
        }
        // First, so that topics opened below start with the new defaults.
        let defaults_changed = self.sync_dynamic_configs(&image);
        let mut first_error = None;
        for topic in self.topics() {
            if image.topic_by_id(topic.id()).is_none() {
                self.delete_local(&topic);
            }
        }
        for record in image.topics() {
            let synced = match self.topic_by_id(record.id) {
                None => self.open_topic(record).map(|topic| self.topics_write().insert(topic)),
                Some(live) => self.update_topic(&live, record),
            };
            if let Err(e) = synced {
                tracing::error!(topic = %record.name, error = %e, "could not apply the topic's metadata");
                first_error.get_or_insert(e);
            }
        }
        if defaults_changed {
            self.reconfigure_topics();
        }
        *write(&self.image) = image;
        first_error.map_or(Ok(()), Err)
    }

    /// A live topic brought in line with its metadata: new partitions, new configs.
    fn update_topic(&self, live: &Topic, record: &TopicImage) -> Result<()> {
        let current = live.partition_count();
        self.move_replicas(live, record, current)?;
        if current < record.partition_count() {
            let added = self.open_hosted(&live.name_arc(), record, current)?;
            live.add_partitions(added);
        }
        self.apply_leadership(live, record);
        if live.overrides() != record.configs {
            let defaults = self.defaults();
            live.set_overrides(record.configs.clone(), defaults.limits(&record.configs));
            let log_config = defaults.log_config(&record.configs);
            for partition in live.partitions() {
                partition.set_config(log_config);
            }
        }
        Ok(())
    }

    /// Deletes the local logs of a topic the metadata removed.
    fn delete_local(&self, topic: &Arc<Topic>) {
        self.topics_write().remove(topic.name());
        let indexes: Vec<i32> = topic.partitions().iter().map(|p| p.index()).collect();
        match self.logs.commit_deletion(topic.name(), topic.id(), &indexes) {
            Ok(renamed) => self.logs.remove_deleted(&renamed),
            // Left in place: the next start sets the directories aside as strays.
            Err(e) => tracing::error!(topic = %topic.name(), error = %e, "could not delete the topic's logs"),
        }
        tracing::info!(topic = %topic.name(), "topic deleted");
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

    /// Whether the metadata has this partition (on whichever node).
    pub fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        self.image()
            .topic(topic)
            .is_some_and(|t| t.partitions.contains_key(&partition))
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Result<Arc<Partition>> {
        self.topic(topic)
            .and_then(|t| t.partition(partition))
            .ok_or(BrokerError::UnknownTopicOrPartition)
    }

    /// The live topic for a committed topic: the partitions placed here opened.
    fn open_topic(&self, record: &TopicImage) -> Result<Arc<Topic>> {
        let name: Arc<str> = Arc::from(record.name.as_str());
        let partitions = self.open_hosted(&name, record, 0)?;
        let limits = self.defaults().limits(&record.configs);
        let topic = Arc::new(Topic::new(name, record.id, record.configs.clone(), partitions, limits));
        self.apply_leadership(&topic, record);
        Ok(topic)
    }

    /// Opens the partitions from `first` on that have a replica on this node; `None`
    /// for the others.
    fn open_hosted(&self, name: &Arc<str>, record: &TopicImage, first: i32) -> Result<Vec<Option<Arc<Partition>>>> {
        let log_config = self.defaults().log_config(&record.configs);
        record
            .partitions
            .range(first..)
            .map(|(index, state)| {
                if state.replicas.contains(&self.config.node_id) {
                    self.open_replica(name, record.id, *index, state, log_config).map(Some)
                } else {
                    Ok(None)
                }
            })
            .collect()
    }

    /// Opens this node's replica of a partition.
    fn open_replica(
        &self,
        name: &Arc<str>,
        id: Uuid,
        index: i32,
        state: &strom_cluster::PartitionState,
        log_config: strom_log::LogConfig,
    ) -> Result<Arc<Partition>> {
        let partition = self.logs.open_partition(name, id, index, log_config)?;
        if state.replicas.len() > 1 {
            // What of the log the other replicas have is not known yet: the high
            // watermark rises from the start as they fetch (or, on a follower, as the
            // leader says), never exposing an unreplicated tail.
            partition.replica().reset_high_watermark(partition.log_start_offset());
        }
        Ok(partition)
    }

    /// Gives each hosted partition the leadership the metadata says, and its topic's
    /// `min.insync.replicas`. A partition this node now leads begins its leader epoch.
    fn apply_leadership(&self, topic: &Topic, record: &TopicImage) {
        use crate::partition::RoleChange;
        let min_insync = topic.limits().min_insync_replicas;
        let now_ms = self.clock.now_ms();
        for partition in topic.partitions() {
            let Some(state) = record.partitions.get(&partition.index()) else {
                continue;
            };
            let replica = partition.replica();
            replica.set_min_insync(min_insync);
            let change = replica.set_leadership(
                state.leader,
                state.leader_epoch,
                state.partition_epoch,
                &state.replicas,
                &state.isr,
                now_ms,
            );
            if change == RoleChange::BecameLeader {
                if let Err(e) = partition.become_leader(state.leader_epoch) {
                    tracing::error!(topic = %topic.name(), partition = partition.index(), error = %e, "could not begin the leader epoch");
                }
            }
            if change != RoleChange::None {
                tracing::info!(
                    topic = %topic.name(),
                    partition = partition.index(),
                    leader = state.leader,
                    leader_epoch = state.leader_epoch,
                    isr = ?state.isr,
                    "leadership changed"
                );
            }
        }
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
        let image = self.quorum.applied().image.clone();
        let id = Uuid::new_v4();
        let (assignments, replication_factor) = self.check_layout(&new, &image, id)?;
        let partitions = assignments.len() as i32;
        for (name, value) in &new.configs {
            topic_config::validate(name, value)?;
        }
        let _admin = lock(&self.admin);
        if image.topic(&new.name).is_some() {
            return Err(BrokerError::TopicAlreadyExists(new.name));
        }
        if let Some(clash) = image
            .topics()
            .into_iter()
            .map(|t| t.name.as_str())
            .find(|t| collides(t, &new.name))
        {
            return Err(BrokerError::InvalidTopic(format!(
                "Topic '{}' collides with existing topic: {clash}",
                new.name
            )));
        }
        let summary = TopicSummary {
            id,
            partitions,
            replication_factor,
            configs: self.resolve_configs(&new.configs),
        };
        if validate_only {
            return Ok(summary);
        }
        let mut records = vec![MetadataRecord::Topic(TopicRecord {
            name: new.name.clone(),
            id,
            configs: new.configs,
        })];
        records.extend(partition_records(id, 0, assignments));
        self.commit(records)?;
        tracing::info!(topic = %new.name, partitions, "topic created");
        Ok(summary)
    }

    /// The replicas of each new partition (given, or placed on the live brokers) and
    /// the replication factor.
    fn check_layout(&self, new: &NewTopic, image: &MetadataImage, id: Uuid) -> Result<(Vec<Vec<i32>>, i16)> {
        if !new.assignments.is_empty() {
            if new.num_partitions != -1 || new.replication_factor != -1 {
                return Err(BrokerError::InvalidRequest(
                    "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
                ));
            }
            let mut assignments = new.assignments.clone();
            assignments.sort_by_key(|(p, _)| *p);
            if assignments.iter().enumerate().any(|(i, (p, _))| *p != i as i32) {
                return Err(BrokerError::InvalidReplicaAssignment(
                    "partitions must be numbered 0..n".into(),
                ));
            }
            let replicas: Vec<Vec<i32>> = assignments.into_iter().map(|(_, r)| r).collect();
            for brokers in &replicas {
                check_replicas(image, brokers, replicas[0].len())?;
            }
            let replication_factor = replicas_len(&replicas);
            return Ok((replicas, replication_factor));
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
        let replicas = place(image, id, 0, partitions, replication_factor as usize)?;
        Ok((replicas, replication_factor))
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
        // Kafka's default of 3 (`offsets.topic.replication.factor`), or every broker
        // there is: group and transaction state survive a node's loss.
        let alive = self
            .quorum
            .applied()
            .image
            .brokers()
            .values()
            .filter(|b| !b.fenced)
            .count();
        let new = NewTopic {
            name: name.to_string(),
            num_partitions: partitions,
            replication_factor: alive.clamp(1, INTERNAL_TOPIC_REPLICATION_FACTOR) as i16,
            assignments: Vec::new(),
            configs,
        };
        match self.create_topic(new, false) {
            Ok(_) | Err(BrokerError::TopicAlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        // Created by another node and committed, but perhaps not opened here yet.
        self.sync_metadata()?;
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
        let id = self
            .quorum
            .applied()
            .image
            .topic(name)
            .map(|t| t.id)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        self.commit(vec![MetadataRecord::RemoveTopic { topic_id: id }])?;
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
        let image = self.quorum.applied().image.clone();
        let replication_factor = image
            .topic_by_id(topic.id())
            .and_then(|t| t.partitions.values().next())
            .map_or(1, |p| p.replicas.len());
        let replicas = place(&image, topic.id(), current, count - current, replication_factor)?;
        if validate_only {
            return Ok(());
        }
        self.commit(partition_records(topic.id(), current, replicas).collect())
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
        self.commit(vec![MetadataRecord::TopicConfigs {
            topic_id: topic.id(),
            configs: overrides,
        }])
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
        self.append_guarded(topic, partition, batches, origin, TxnGuard::Unchecked)
    }

    /// [`Broker::append`] with the transaction check of a client's transactional
    /// batches (KIP-890).
    pub fn append_guarded(
        &self,
        topic: &Topic,
        partition: &Partition,
        batches: &[u8],
        origin: AppendOrigin,
        txn_guard: TxnGuard,
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
            txn_guard,
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
        self.quorum.shutdown();
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

mod cluster;
mod dynamic_configs;
mod reassign;
mod start;

pub use reassign::OngoingReassignment;

use start::{check_replicas, partition_records, place, replicas_len};
#[cfg(test)]
mod tests;
