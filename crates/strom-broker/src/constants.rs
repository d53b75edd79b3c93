//! Limits of the broker, kept together.

/// Kafka's limit on topic name length (249, so `name-partition` fits a file name).
pub const TOPIC_NAME_LENGTH_MAX: usize = 249;
/// Most partitions one topic may have; a bound on memory and open files.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;
/// The single-node version's topic list, migrated into the metadata log on first start.
pub const TOPICS_FILE: &str = "topics.json";
/// What [`TOPICS_FILE`] is renamed to once its topics are in the metadata log.
pub const TOPICS_FILE_MIGRATED: &str = "topics.json.migrated";
/// The previous version's dynamic broker and group configs, migrated into the metadata
/// log on first start.
pub const DYNAMIC_CONFIGS_FILE: &str = "dynamic-configs.json";
/// What [`DYNAMIC_CONFIGS_FILE`] is renamed to once its configs are in the metadata log.
pub const DYNAMIC_CONFIGS_FILE_MIGRATED: &str = "dynamic-configs.json.migrated";
/// Name of the file in the data directory that holds the cluster id and node id.
pub const META_PROPERTIES_FILE: &str = "meta.properties";
/// Suffix of a partition directory renamed for deletion (as in Kafka).
pub const DELETE_DIR_SUFFIX: &str = "-delete";
/// Suffix of a partition directory set aside because the metadata does not know its topic.
pub const STRAY_DIR_SUFFIX: &str = "-stray";
/// How long a broker start waits for the metadata quorum (cluster id, registration).
pub const QUORUM_START_WAIT_MS: u64 = 120_000;

/// Failed appends are logged at most once per this interval (with a count).
pub const APPEND_FAILURE_LOG_INTERVAL_MS: i64 = 10_000;
/// Longest a fetch long-polls, whatever `max_wait` the request asks.
pub const FETCH_WAIT_MS_MAX: u64 = 60_000;
/// Bytes read per step when a log is replayed (producer state on open, coordinators
/// loading their partitions).
pub const REPLAY_READ_BYTES: usize = 1 << 20;

/// How long a coordinator's write waits for the in-sync replicas (Kafka's
/// `offsets.commit.timeout.ms` default).
pub const COORDINATOR_REPLICATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Replication factor of internal topics when that many brokers are alive (Kafka's
/// `offsets.topic.replication.factor` and `transaction.state.log.replication.factor`).
pub const INTERNAL_TOPIC_REPLICATION_FACTOR: usize = 3;
