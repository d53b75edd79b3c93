//! A topic: its name, id, config overrides and the partitions this node hosts (the
//! metadata places each partition's replicas; a node opens only its own).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use uuid::Uuid;

use crate::partition::Partition;
use crate::topic_config::TopicLimits;

pub struct Topic {
    name: Arc<str>,
    id: Uuid,
    overrides: RwLock<BTreeMap<String, String>>,
    /// By index; `None` where this node holds no replica.
    partitions: RwLock<Vec<Option<Arc<Partition>>>>,
    /// Settings read on every produce and by maintenance, resolved once per change.
    limits: RwLock<TopicLimits>,
}

impl Topic {
    pub(crate) fn new(
        name: Arc<str>,
        id: Uuid,
        overrides: BTreeMap<String, String>,
        partitions: Vec<Option<Arc<Partition>>>,
        limits: TopicLimits,
    ) -> Topic {
        Topic {
            name,
            id,
            overrides: RwLock::new(overrides),
            partitions: RwLock::new(partitions),
            limits: RwLock::new(limits),
        }
    }

    pub fn limits(&self) -> TopicLimits {
        *crate::sync::read(&self.limits)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn name_arc(&self) -> Arc<str> {
        self.name.clone()
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    /// `__consumer_offsets` and `__transaction_state` (see [`is_internal_topic`]).
    pub fn is_internal(&self) -> bool {
        is_internal_topic(&self.name)
    }

    pub fn overrides(&self) -> BTreeMap<String, String> {
        crate::sync::read(&self.overrides).clone()
    }

    pub(crate) fn set_overrides(&self, overrides: BTreeMap<String, String>, limits: TopicLimits) {
        *crate::sync::write(&self.overrides) = overrides;
        *crate::sync::write(&self.limits) = limits;
    }

    /// How many partitions the topic has (on every node).
    pub fn partition_count(&self) -> i32 {
        crate::sync::read(&self.partitions).len() as i32
    }

    /// Partition `index`, if this node hosts it.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let partitions = crate::sync::read(&self.partitions);
        usize::try_from(index)
            .ok()
            .and_then(|i| partitions.get(i).cloned().flatten())
    }

    /// The partitions this node hosts.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        crate::sync::read(&self.partitions).iter().flatten().cloned().collect()
    }

    /// Hosts partition `index` here from now on (`Some`), or no longer (`None`): a
    /// reassignment moved a replica to or away from this node.
    pub(crate) fn set_partition(&self, index: i32, partition: Option<Arc<Partition>>) {
        let mut partitions = crate::sync::write(&self.partitions);
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| partitions.get_mut(i)) {
            *slot = partition;
        }
    }

    /// New partitions (hosted ones opened, the others `None`) after the existing ones.
    pub(crate) fn add_partitions(&self, added: Vec<Option<Arc<Partition>>>) {
        crate::sync::write(&self.partitions).extend(added);
    }
}

/// Kafka's topic name rule: 1..=249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > crate::constants::TOPIC_NAME_LENGTH_MAX {
        return Err(format!(
            "Topic name is illegal, it can't be longer than {} characters",
            crate::constants::TOPIC_NAME_LENGTH_MAX
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// The topics the coordinators own. Clients may read them but not write to them, delete
/// them or their records, change their partition count, or change the configs that keep
/// their data (`cleanup.policy`, `retention.ms`, `retention.bytes`): committed offsets
/// and transaction state would be lost or misplaced. Other names starting with `__` are
/// ordinary topics, as in Kafka.
pub fn is_internal_topic(name: &str) -> bool {
    INTERNAL_TOPICS.contains(&name)
}

pub const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// Configs of internal topics that clients may not change.
pub const INTERNAL_TOPIC_FIXED_CONFIGS: &[&str] = &["cleanup.policy", "retention.ms", "retention.bytes"];

#[cfg(test)]
mod tests {
    use super::validate_topic_name;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "ü", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
    }
}
