//! [`TopicPartition`]: one partition of one topic, the key of assignments, positions and
//! offsets throughout the client's API.

use std::fmt;

/// One partition of a topic. Orders by topic, then partition; displays as `topic-partition`.
///
/// ```
/// use strom_client::TopicPartition;
///
/// let partition = TopicPartition::new("events", 2);
/// assert_eq!(partition.to_string(), "events-2");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// The partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}
