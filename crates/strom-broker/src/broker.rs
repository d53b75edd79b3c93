//! The broker: the set of topics on this node and the operations the protocol
//! front-ends call (create/delete topics, partitions and configs, produce, maintenance).
//!
//! Layout of the data directory (`log.dirs`):
//! - `meta.properties`: `cluster.id` and `node.id`, written once.
//! - `topics.json`: the topic list (see `topic_store`).
//! - `dynamic-configs.json`: dynamic broker configs and group configs (see `dynamic_config`).
//! - `<topic>-<partition>.<topic id>-delete/`: a deleted topic's partition, renamed (the
//!   deletion's commit point) and then removed; a start removes leftovers and drops the
//!   topic from `topics.json` if it is still listed.
//! - `<topic>-<partition>/`: one partition's log (see `strom_log::Log`), with a
//!   `partition.metadata` file naming the topic id it belongs to.
//! - `.lock`: held while a broker runs, so two cannot share a directory.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use strom_log::{AppendInfo, Clock, SystemClock};
use uuid::Uuid;

use crate::constants::{
    APPEND_FAILURE_LOG_INTERVAL_MS, DELETE_DIR_SUFFIX, META_PROPERTIES_FILE, PARTITIONS_PER_TOPIC_MAX,
};
use crate::dynamic_config::DynamicConfigStore;
use crate::error::{BrokerError, Result};
use crate::partition::Partition;
use crate::producer_id::ProducerIdManager;
use crate::topic::{is_internal_topic, validate_topic_name, Topic, INTERNAL_TOPIC_FIXED_CONFIGS};
use crate::topic_config::{self, ConfigEntry, TopicDefaults, TOPIC_CONFIGS};
use crate::topic_store::{write_atomically, TopicRecord, TopicStore};

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

/// Who appends (Kafka's `AppendOrigin`): clients may not write to internal topics,
/// the coordinators that own them do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    Client,
    Coordinator,
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
    cluster_id: String,
    clock: Arc<dyn Clock>,
    topics: RwLock<TopicIndex>,
    /// Serialises changes to the topic list and configs, and writes of `topics.json`.
    pub(crate) admin: Mutex<()>,
    store: TopicStore,
    producer_ids: ProducerIdManager,
    /// Static topic defaults with the dynamic broker configs applied.
    pub(crate) topic_defaults: RwLock<Arc<TopicDefaults>>,
    /// Group id → its group configs (GROUP resource).
    pub(crate) group_configs: RwLock<BTreeMap<String, BTreeMap<String, String>>>,
    pub(crate) dynamic_store: DynamicConfigStore,
    append_failures: FailureLog,
    _lock: fs::File,
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
        fs::create_dir_all(&config.data_dir)?;
        let lock = fs::File::create(config.data_dir.join(".lock"))?;
        if lock.try_lock().is_err() {
            return Err(BrokerError::Storage(format!(
                "data directory {} is in use by another process",
                config.data_dir.display()
            )));
        }
        let cluster_id = load_or_create_meta(&config.data_dir, config.node_id)?;
        let deleted = remove_deleted_dirs(&config.data_dir);
        let store = TopicStore::new(&config.data_dir);
        let producer_ids = ProducerIdManager::open(&config.data_dir)?;
        let dynamic_store = DynamicConfigStore::new(&config.data_dir);
        let dynamic = dynamic_store.load()?;
        let mut defaults = config.topic_defaults.clone();
        defaults.dynamic_broker = dynamic.broker;
        defaults.dynamic_default = dynamic.cluster_default;
        let group_configs = dynamic.groups;
        let broker = Broker {
            cluster_id,
            clock,
            topics: RwLock::new(TopicIndex::default()),
            admin: Mutex::new(()),
            store,
            producer_ids,
            topic_defaults: RwLock::new(Arc::new(defaults)),
            group_configs: RwLock::new(group_configs),
            dynamic_store,
            append_failures: FailureLog::default(),
            _lock: lock,
            config,
        };
        let mut unfinished_deletions = false;
        for record in broker.store.load()? {
            if deleted.contains(&record.id) {
                // Deleted (its directories were renamed) before `topics.json` could be
                // rewritten, e.g. on a full disk: finish the deletion.
                for index in 0..record.partitions {
                    let dir = broker.partition_dir(&record.name, index);
                    if let Err(e) = fs::remove_dir_all(&dir) {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            tracing::warn!(dir = %dir.display(), error = %e, "could not remove partition directory");
                        }
                    }
                }
                tracing::info!(topic = %record.name, "finished deleting topic");
                unfinished_deletions = true;
                continue;
            }
            let topic = broker.open_topic(&record)?;
            broker.topics_write().insert(topic);
        }
        if unfinished_deletions {
            if let Err(e) = broker.save_topics() {
                tracing::warn!(error = %e, "could not rewrite topics.json; the next start finishes the deletion again");
            }
        }
        tracing::info!(topics = broker.topics_read().by_name.len(), dir = %broker.config.data_dir.display(), "broker opened");
        Ok(Arc::new(broker))
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn topics_read(&self) -> std::sync::RwLockReadGuard<'_, TopicIndex> {
        self.topics.read().unwrap_or_else(|e| e.into_inner())
    }

    fn topics_write(&self) -> std::sync::RwLockWriteGuard<'_, TopicIndex> {
        self.topics.write().unwrap_or_else(|e| e.into_inner())
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

    fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.config.data_dir.join(format!("{topic}-{partition}"))
    }

    fn open_partition(
        &self,
        name: &Arc<str>,
        id: Uuid,
        index: i32,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Arc<Partition>> {
        let dir = self.partition_dir(name, index);
        let marker = dir.join("partition.metadata");
        let expected = format!("version: 0\ntopic_id: {id}\n");
        let mut write_marker = !marker.exists();
        match fs::read_to_string(&marker) {
            Ok(found) if found != expected => match parse_partition_metadata(&found) {
                Some(found_id) if found_id == id => {
                    // Ours, written differently (blank lines, spacing): keep the data.
                    write_marker = true;
                }
                Some(found_id) => {
                    // A well-formed marker naming another topic id: left over from an
                    // earlier topic of the same name whose deletion was cut short.
                    tracing::warn!(dir = %dir.display(), %found_id, topic_id = %id, "removing the partition directory of an earlier topic of this name");
                    fs::remove_dir_all(&dir)?;
                    write_marker = true;
                }
                None => {
                    // Never delete data because a marker does not parse.
                    return Err(BrokerError::Storage(format!(
                        "{} does not parse, so it is not known which topic the data in {} belongs to; \
                         if it is topic {name} (id {id}), delete that file and start again; \
                         otherwise move the directory away",
                        marker.display(),
                        dir.display()
                    )));
                }
            },
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        fs::create_dir_all(&dir)?;
        if write_marker {
            write_atomically(&marker, expected.as_bytes())?;
        }
        let log_config = self.defaults().log_config(overrides);
        Ok(Arc::new(Partition::open(
            name.clone(),
            index,
            &dir,
            log_config,
            self.clock.clone(),
        )?))
    }

    fn open_topic(&self, record: &TopicRecord) -> Result<Arc<Topic>> {
        let name: Arc<str> = Arc::from(record.name.as_str());
        let partitions = (0..record.partitions)
            .map(|i| self.open_partition(&name, record.id, i, &record.configs))
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

    fn save_topics(&self) -> Result<()> {
        let records = self
            .topics()
            .iter()
            .map(|t| TopicRecord {
                name: t.name().to_string(),
                id: t.id(),
                partitions: t.partition_count(),
                configs: t.overrides(),
            })
            .collect();
        self.store.save(records)
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
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
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
        self.topics_write().insert(topic);
        if let Err(e) = self.save_topics() {
            self.topics_write().remove(new.name.as_str());
            return Err(e);
        }
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
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let topic = self
            .topics_write()
            .remove(name)
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        // Renaming the partition directories to `*.<id>-delete` commits the deletion:
        // it needs no free space, and a start that finds them finishes the deletion
        // even if `topics.json` still lists the topic. So a full disk can delete.
        let mut renamed = Vec::new();
        for partition in topic.partitions() {
            let dir = self.partition_dir(name, partition.index());
            let gone = self.config.data_dir.join(format!(
                "{name}-{}.{}{DELETE_DIR_SUFFIX}",
                partition.index(),
                topic.id().simple()
            ));
            match fs::rename(&dir, &gone) {
                Ok(()) => renamed.push((dir, gone)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    let undone = renamed.iter().rev().all(|(dir, gone)| fs::rename(gone, dir).is_ok());
                    if undone {
                        self.topics_write().insert(topic);
                        return Err(e.into());
                    }
                    // A renamed directory that stays renamed is a committed deletion
                    // (the next start finishes it): go on deleting.
                    tracing::error!(topic = %name, error = %e, "could not rename a partition directory; deleting the topic anyway");
                    break;
                }
            }
        }
        // Make the renames (the commit) durable before any data goes.
        if let Err(e) = fs::File::open(&self.config.data_dir).and_then(|d| d.sync_all()) {
            tracing::warn!(error = %e, "could not sync the data directory");
        }
        let id = topic.id();
        drop(topic);
        for (_, gone) in &renamed {
            // Readers may still hold the files open; emptying them frees the space now.
            release_space(gone);
            if let Err(e) = fs::remove_dir_all(gone) {
                tracing::warn!(dir = %gone.display(), error = %e, "could not remove partition directory");
            }
        }
        if let Err(e) = self.save_topics() {
            tracing::warn!(topic = %name, error = %e, "could not rewrite topics.json; the next start finishes the deletion");
        }
        tracing::info!(topic = %name, "topic deleted");
        Ok(id)
    }

    /// CreatePartitions: grow a topic to `count` partitions.
    pub fn create_partitions(&self, name: &str, count: i32, validate_only: bool) -> Result<()> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
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
        let overrides = topic.overrides();
        let name_arc = topic.name_arc();
        let added = (current..count)
            .map(|i| self.open_partition(&name_arc, topic.id(), i, &overrides))
            .collect::<Result<Vec<_>>>()?;
        topic.add_partitions(added);
        self.save_topics()
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
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
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
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
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
        let previous = topic.overrides();
        let defaults = self.defaults();
        topic.set_overrides(overrides.clone(), defaults.limits(&overrides));
        if let Err(e) = self.save_topics() {
            topic.set_overrides(previous.clone(), defaults.limits(&previous));
            return Err(e);
        }
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
        let info = partition
            .append(batches, limits.max_message_bytes, limits.compact)
            .inspect_err(|error| {
                if matches!(error, BrokerError::Storage(_)) {
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
        for topic in self.topics() {
            let flush_ms = topic.limits().flush_ms;
            if flush_ms == i64::MAX {
                continue;
            }
            for partition in topic.partitions() {
                if let Err(error) = partition.flush_if_older_than(flush_ms) {
                    tracing::error!(?partition, %error, "scheduled fsync failed");
                }
            }
        }
    }

    /// A producer id never used before (InitProducerId).
    pub fn next_producer_id(&self) -> Result<i64> {
        self.producer_ids.next_id()
    }

    /// Time-based work: roll segments past `segment.ms`, apply retention, forget idle
    /// producers. Blocking I/O.
    pub fn maintain(&self) {
        let now = self.clock.now_ms();
        for topic in self.topics() {
            let delete = topic.limits().delete;
            for partition in topic.partitions() {
                partition.expire_producers(now, self.config.producer_id_expiration_ms);
                let log = partition.log();
                if let Err(e) = log.roll_if_due() {
                    tracing::warn!(partition = ?partition, error = %e, "segment roll failed");
                }
                if !delete {
                    continue;
                }
                match log.apply_retention() {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(partition = ?partition, segments = n, "retention deleted segments"),
                    Err(e) => tracing::warn!(partition = ?partition, error = %e, "retention failed"),
                }
            }
        }
    }

    /// Compact the closed segments of every `cleanup.policy=compact` topic. Blocking I/O.
    pub fn compact(&self) {
        for topic in self.topics() {
            let limits = topic.limits();
            if !limits.compact {
                continue;
            }
            for partition in topic.partitions() {
                match partition.log().compact(limits.compaction) {
                    Ok(stats) if stats.records_removed > 0 => tracing::info!(
                        partition = ?partition,
                        removed = stats.records_removed,
                        bytes_before = stats.bytes_before,
                        bytes_after = stats.bytes_after,
                        "compacted"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(partition = ?partition, error = %e, "compaction failed"),
                }
            }
        }
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

/// The topic id in a `partition.metadata` file (`version: 0` and `topic_id: <uuid>` lines,
/// in any order, blank lines and spacing ignored), or `None` unless it is well formed.
fn parse_partition_metadata(text: &str) -> Option<Uuid> {
    let mut version = None;
    let mut topic_id = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (key, value) = line.split_once(':')?;
        let slot = match key.trim() {
            "version" => &mut version,
            "topic_id" => &mut topic_id,
            _ => return None,
        };
        if slot.replace(value.trim()).is_some() {
            return None;
        }
    }
    if version? != "0" {
        return None;
    }
    Uuid::parse_str(topic_id?).ok()
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

/// Removes `<topic>-<partition>.<topic id>-delete` directories; returns the ids of
/// the topics they belonged to.
fn remove_deleted_dirs(data_dir: &Path) -> std::collections::HashSet<Uuid> {
    let mut ids = std::collections::HashSet::new();
    let Ok(entries) = fs::read_dir(data_dir) else {
        return ids;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(DELETE_DIR_SUFFIX) else {
            continue;
        };
        if let Some(id) = stem.rsplit_once('.').and_then(|(_, id)| Uuid::parse_str(id).ok()) {
            ids.insert(id);
        }
        if let Err(e) = fs::remove_dir_all(entry.path()) {
            tracing::warn!(dir = %entry.path().display(), error = %e, "could not remove deleted partition");
        }
    }
    ids
}

/// Empties the files of a deleted partition directory (best effort).
fn release_space(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if let Ok(file) = fs::OpenOptions::new().write(true).open(entry.path()) {
            let _ = file.set_len(0);
        }
    }
}

/// Read `cluster.id` from `meta.properties`, creating the file on first start.
fn load_or_create_meta(data_dir: &Path, node_id: i32) -> Result<String> {
    let path = data_dir.join(META_PROPERTIES_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let props: HashMap<&str, &str> = text
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim(), v.trim()))
                .collect();
            if let Some(stored) = props.get("node.id") {
                if *stored != node_id.to_string() {
                    return Err(BrokerError::Storage(format!(
                        "{} belongs to node.id {stored}, but this broker is node.id {node_id}",
                        path.display()
                    )));
                }
            }
            props
                .get("cluster.id")
                .map(|s| s.to_string())
                .ok_or_else(|| BrokerError::Storage(format!("{} has no cluster.id", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cluster_id = new_cluster_id();
            let text = format!("version=1\ncluster.id={cluster_id}\nnode.id={node_id}\n");
            write_atomically(&path, text.as_bytes())?;
            Ok(cluster_id)
        }
        Err(e) => Err(e.into()),
    }
}

/// What [`Broker::append`] did.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub info: AppendInfo,
    /// The partition holds `flush.messages` unflushed records: the produce that got
    /// there waits for an fsync, as in Kafka.
    pub flush_due: bool,
}

/// A Kafka-style cluster id: a random UUID in URL-safe base64 without padding (22 chars).
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let value = u128::from_be_bytes(*Uuid::new_v4().as_bytes());
    // 22 base64 digits cover 132 bits; the top 4 are zero padding.
    (0..22)
        .rev()
        .map(|i| ALPHABET[((value >> (i * 6)) & 63) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(dir: &Path) -> Arc<Broker> {
        Broker::open(BrokerConfig::new(dir)).unwrap()
    }

    #[test]
    fn topics_survive_reopen_and_names_collide_like_kafka() {
        let dir = tempfile::tempdir().unwrap();
        let cluster_id;
        {
            let b = broker(dir.path());
            cluster_id = b.cluster_id().to_string();
            assert_eq!(cluster_id.len(), 22);
            let new = NewTopic {
                name: "a.b".into(),
                num_partitions: 3,
                replication_factor: -1,
                ..Default::default()
            };
            b.create_topic(new, false).unwrap();
            let clash = NewTopic {
                name: "a_b".into(),
                num_partitions: 1,
                replication_factor: 1,
                ..Default::default()
            };
            assert!(matches!(
                b.create_topic(clash, false),
                Err(BrokerError::InvalidTopic(_))
            ));
            b.incremental_alter_topic_configs(
                "a.b",
                &[("retention.ms".into(), AlterOp::Set, Some("1000".into()))],
                false,
            )
            .unwrap();
            b.shutdown().unwrap();
        }
        let b = broker(dir.path());
        assert_eq!(b.cluster_id(), cluster_id);
        let t = b.topic("a.b").unwrap();
        assert_eq!(t.partition_count(), 3);
        assert_eq!(t.overrides().get("retention.ms").map(String::as_str), Some("1000"));
    }

    #[test]
    fn flush_messages_and_flush_ms_fsync_unflushed_records() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        b.create_topic(
            NewTopic {
                name: "f".into(),
                num_partitions: 1,
                replication_factor: 1,
                ..Default::default()
            },
            false,
        )
        .unwrap();
        let topic = b.topic("f").unwrap();
        let partition = topic.partition(0).unwrap();
        let record = || {
            let mut builder = strom_log::RecordBatchBuilder::new();
            builder.push(1, Some(b"k"), Some(b"v"));
            builder.build().unwrap()
        };
        // Defaults: nothing forces an fsync.
        b.append(&topic, &partition, &record(), AppendOrigin::Coordinator)
            .unwrap();
        assert!(!b.flush_due(&topic, &partition));
        b.flush_stale();
        assert_eq!(partition.unflushed_messages(), 1);

        let set = |name: &str, value: &str| {
            b.incremental_alter_topic_configs("f", &[(name.into(), AlterOp::Set, Some(value.into()))], false)
                .unwrap();
        };
        set("flush.messages", "3");
        b.append(&topic, &partition, &record(), AppendOrigin::Coordinator)
            .unwrap();
        assert!(!b.flush_due(&topic, &partition), "2 of 3 records wait");
        b.append(&topic, &partition, &record(), AppendOrigin::Coordinator)
            .unwrap();
        assert!(b.flush_due(&topic, &partition));
        partition.flush().unwrap();
        assert_eq!(partition.unflushed_messages(), 0);

        set("flush.ms", "0");
        b.append(&topic, &partition, &record(), AppendOrigin::Coordinator)
            .unwrap();
        assert_eq!(partition.unflushed_messages(), 1);
        b.flush_stale();
        assert_eq!(partition.unflushed_messages(), 0);
        set("flush.ms", "3600000");
        b.append(&topic, &partition, &record(), AppendOrigin::Coordinator)
            .unwrap();
        b.flush_stale();
        assert_eq!(partition.unflushed_messages(), 1, "the last fsync is recent");
    }

    #[test]
    fn a_partition_metadata_file_that_does_not_parse_never_deletes_data() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("m-0").join("partition.metadata");
        let id = {
            let b = broker(dir.path());
            let summary = b
                .create_topic(
                    NewTopic {
                        name: "m".into(),
                        num_partitions: 1,
                        replication_factor: 1,
                        ..Default::default()
                    },
                    false,
                )
                .unwrap();
            let topic = b.topic("m").unwrap();
            let partition = topic.partition(0).unwrap();
            for _ in 0..10 {
                let mut builder = strom_log::RecordBatchBuilder::new();
                builder.push(1, Some(b"k"), Some(b"v"));
                b.append(&topic, &partition, &builder.build().unwrap(), AppendOrigin::Client)
                    .unwrap();
            }
            b.shutdown().unwrap();
            summary.id
        };
        let end = |dir: &Path| broker(dir).partition("m", 0).unwrap().log_end_offset();
        // One extra newline (and spacing): still ours, the data stays.
        std::fs::write(&marker, format!("version: 0\n\ntopic_id:  {id}\n\n")).unwrap();
        assert_eq!(end(dir.path()), 10);
        assert_eq!(
            std::fs::read_to_string(&marker).unwrap(),
            format!("version: 0\ntopic_id: {id}\n"),
            "the marker is rewritten in its canonical form"
        );
        // Garbage: refuse to start, say which file, and keep the data.
        std::fs::write(&marker, "version: 0\ntopic_id: 12\x00garbage\n").unwrap();
        let error = Broker::open(BrokerConfig::new(dir.path())).err().unwrap().to_string();
        assert!(
            error.contains("partition.metadata") && error.contains("does not parse"),
            "{error}"
        );
        assert!(dir.path().join("m-0").join("00000000000000000000.log").exists());
        // Deleting the damaged file is the documented fix: the data is adopted again.
        std::fs::remove_file(&marker).unwrap();
        assert_eq!(end(dir.path()), 10);
        // A well-formed marker of another topic id: an earlier topic's leftovers.
        std::fs::write(&marker, format!("version: 0\ntopic_id: {}\n", Uuid::new_v4())).unwrap();
        assert_eq!(end(dir.path()), 0);
    }

    #[test]
    fn a_start_finishes_a_deletion_committed_by_renaming_the_directories() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let b = broker(dir.path());
            let summary = b
                .create_topic(
                    NewTopic {
                        name: "gone".into(),
                        num_partitions: 2,
                        replication_factor: 1,
                        ..Default::default()
                    },
                    false,
                )
                .unwrap();
            b.shutdown().unwrap();
            summary.id
        };
        // As a delete on a full disk leaves it: directories renamed, topics.json not
        // rewritten (partition 1 not renamed yet either).
        std::fs::rename(
            dir.path().join("gone-0"),
            dir.path().join(format!("gone-0.{}{DELETE_DIR_SUFFIX}", id.simple())),
        )
        .unwrap();
        let b = broker(dir.path());
        assert!(b.topic("gone").is_none());
        assert!(!dir.path().join("gone-1").exists());
        assert!(!std::fs::read_to_string(dir.path().join("topics.json"))
            .unwrap()
            .contains("gone"));
    }

    #[test]
    fn a_second_broker_cannot_open_the_same_directory() {
        let dir = tempfile::tempdir().unwrap();
        let _first = broker(dir.path());
        assert!(Broker::open(BrokerConfig::new(dir.path())).is_err());
    }

    #[test]
    fn partitions_only_grow_and_deleted_topics_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        b.create_topic(
            NewTopic {
                name: "t".into(),
                num_partitions: 2,
                replication_factor: 1,
                ..Default::default()
            },
            false,
        )
        .unwrap();
        assert!(matches!(
            b.create_partitions("t", 1, false),
            Err(BrokerError::InvalidPartitions(_))
        ));
        b.create_partitions("t", 4, false).unwrap();
        assert_eq!(b.topic("t").unwrap().partition_count(), 4);
        b.delete_topic("t").unwrap();
        assert!(b.topic("t").is_none());
        assert!(!dir.path().join("t-0").exists());
        let rf3 = NewTopic {
            name: "x".into(),
            num_partitions: 1,
            replication_factor: 3,
            ..Default::default()
        };
        assert!(matches!(
            b.create_topic(rf3, false),
            Err(BrokerError::InvalidReplicationFactor(_))
        ));
    }
}
