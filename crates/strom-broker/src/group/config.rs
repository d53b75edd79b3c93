//! `GroupConfig`: the coordinator's settings, and the parts each state machine takes.

use super::classic::ClassicConfig;
use super::consumer::ConsumerConfig;

/// Settings of the coordinator, with Kafka's names in the binary's configuration.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `offsets.topic.num.partitions`
    pub offsets_topic_partitions: i32,
    /// `offsets.topic.segment.bytes`
    pub offsets_topic_segment_bytes: i64,
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// `group.max.size`
    pub max_size: usize,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes`, in ms
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`
    pub offsets_retention_check_interval_ms: u64,
    /// `group.consumer.heartbeat.interval.ms` (KIP-848 groups)
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.session.timeout.ms` (KIP-848 groups)
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.min.session.timeout.ms` / `group.consumer.max.session.timeout.ms`:
    /// the range a group config may set.
    pub consumer_min_session_timeout_ms: i32,
    pub consumer_max_session_timeout_ms: i32,
    /// `group.consumer.min.heartbeat.interval.ms` / `group.consumer.max.heartbeat.interval.ms`
    pub consumer_min_heartbeat_interval_ms: i32,
    pub consumer_max_heartbeat_interval_ms: i32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            offsets_topic_partitions: 50,
            offsets_topic_segment_bytes: 104_857_600,
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            offset_metadata_max_bytes: 4096,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            consumer_heartbeat_interval_ms: 5000,
            consumer_session_timeout_ms: 45_000,
            consumer_min_session_timeout_ms: 45_000,
            consumer_max_session_timeout_ms: 60_000,
            consumer_min_heartbeat_interval_ms: 5_000,
            consumer_max_heartbeat_interval_ms: 15_000,
        }
    }
}

impl GroupConfig {
    /// What consumer-protocol group configs fall back to and must stay within.
    pub fn group_config_bounds(&self) -> crate::dynamic_config::GroupConfigBounds {
        crate::dynamic_config::GroupConfigBounds {
            session_ms: (
                i64::from(self.consumer_session_timeout_ms),
                i64::from(self.consumer_min_session_timeout_ms),
                i64::from(self.consumer_max_session_timeout_ms),
            ),
            heartbeat_ms: (
                i64::from(self.consumer_heartbeat_interval_ms),
                i64::from(self.consumer_min_heartbeat_interval_ms),
                i64::from(self.consumer_max_heartbeat_interval_ms),
            ),
        }
    }

    pub(super) fn classic(&self) -> ClassicConfig {
        ClassicConfig {
            initial_rebalance_delay_ms: self.initial_rebalance_delay_ms,
            min_session_timeout_ms: self.min_session_timeout_ms,
            max_session_timeout_ms: self.max_session_timeout_ms,
            max_size: self.max_size,
        }
    }

    pub(super) fn consumer(&self) -> ConsumerConfig {
        ConsumerConfig {
            heartbeat_interval_ms: self.consumer_heartbeat_interval_ms,
            session_timeout_ms: self.consumer_session_timeout_ms,
            max_size: self.max_size,
        }
    }
}
