//! Limits of the broker, kept together.

/// Kafka's limit on topic name length (249, so `name-partition` fits a file name).
pub const TOPIC_NAME_LENGTH_MAX: usize = 249;
/// Most partitions one topic may have; a bound on memory and open files.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;
/// Name of the file that lists topics, their ids, partition counts and configs.
pub const TOPICS_FILE: &str = "topics.json";
/// Name of the file in the data directory that holds the cluster id and node id.
pub const META_PROPERTIES_FILE: &str = "meta.properties";
/// Suffix of a partition directory renamed for deletion (as in Kafka).
pub const DELETE_DIR_SUFFIX: &str = "-delete";

/// Failed appends are logged at most once per this interval (with a count).
pub const APPEND_FAILURE_LOG_INTERVAL_MS: i64 = 10_000;
/// Longest a fetch long-polls, whatever `max_wait` the request asks.
pub const FETCH_WAIT_MS_MAX: u64 = 60_000;
/// Bytes read per step when a log is replayed (producer state on open, coordinators
/// loading their partitions).
pub const REPLAY_READ_BYTES: usize = 1 << 20;
