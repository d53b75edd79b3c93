//! Metadata records: the only way the topic catalog changes. Today they are applied
//! to the image and saved by the single-node store (`topics.json`); the cluster's
//! metadata log (Raft) will carry the same records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One change to the metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A new topic with its partitions and config overrides.
    Topic(TopicRecord),
    /// A topic grown to `count` partitions.
    PartitionCount { topic_id: Uuid, count: i32 },
    /// A topic's whole set of config overrides replaced.
    TopicConfigs {
        topic_id: Uuid,
        configs: BTreeMap<String, String>,
    },
    /// A topic removed.
    RemoveTopic { topic_id: Uuid },
}

/// A topic as the metadata knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicRecord {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}
