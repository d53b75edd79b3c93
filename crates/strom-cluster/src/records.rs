//! Metadata records: the only way the cluster's metadata changes (Kafka's KRaft
//! records). The controller quorum commits them in batches ([`crate::Command`]); every
//! node applies the committed batches, in log order, to its [`crate::MetadataImage`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One change to the metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// The cluster's id, fixed by the first committed one.
    ClusterId { id: String },
    /// A broker (re-)registered; its broker epoch is the log index of this record.
    RegisterBroker(BrokerRegistration),
    /// A broker fenced (stopped heartbeating) or unfenced, for the given broker epoch.
    BrokerFencing {
        node_id: i32,
        broker_epoch: i64,
        fenced: bool,
    },
    /// A broker left in a controlled shutdown.
    UnregisterBroker { node_id: i32, broker_epoch: i64 },
    /// A new topic (its partitions follow as [`MetadataRecord::Partition`] records).
    Topic(TopicRecord),
    /// A new partition of a topic: its replicas and first leader.
    Partition(PartitionRecord),
    /// A partition's leader, ISR or replicas changed (compare-and-set on the partition epoch).
    PartitionChange(PartitionChange),
    /// A topic's whole set of config overrides replaced.
    TopicConfigs {
        topic_id: Uuid,
        configs: BTreeMap<String, String>,
    },
    /// A topic removed.
    RemoveTopic { topic_id: Uuid },
    /// Dynamic configs of a broker, of the cluster default or of a group, replaced whole.
    Configs {
        resource: ConfigScope,
        configs: BTreeMap<String, String>,
    },
    /// Producer ids `[first, next)` handed to a broker; `first` must be the image's next id.
    ProducerIds { node_id: i32, first: i64, next: i64 },
}

/// A broker as it registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub node_id: i32,
    /// New on every process start: tells a restarted broker from the one before it.
    pub incarnation: Uuid,
    /// The id of the broker's data directory, new when the directory is created: a
    /// broker whose disk was replaced comes back with another one.
    pub directory_id: Uuid,
    pub listeners: Vec<Listener>,
    pub rack: Option<String>,
}

/// One of a broker's advertised listeners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// A topic as its record creates it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    pub id: Uuid,
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// A partition as its record creates it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub topic_id: Uuid,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// -1 when no replica can lead.
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// A change of a partition's leadership or membership. Applies only when
/// `partition_epoch` is the partition's current one; bumps the partition epoch, and the
/// leader epoch when the leader changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionChange {
    pub topic_id: Uuid,
    pub partition: i32,
    pub partition_epoch: i32,
    pub leader: Option<i32>,
    pub isr: Option<Vec<i32>>,
    pub replicas: Option<Vec<i32>>,
    /// Replicas the change adds to the ISR, with the broker epoch each fetched with:
    /// refused unless each is that broker's current, unfenced epoch (KIP-903: a replica
    /// that restarted since, perhaps with an empty disk, must catch up again first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub joining: Vec<(i32, i64)>,
    /// The eligible leader replicas from now on; `None`: derived from the ISR change
    /// ([`crate::image::eligible_leaders_after`]), or kept when the ISR is unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elr: Option<Vec<i32>>,
    /// A reassignment begun, finished or cancelled: the replicas being added and
    /// removed from now on (both empty: none in progress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassignment: Option<Reassignment>,
}

/// The replicas a reassignment adds and removes (KIP-455).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Reassignment {
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// Whose dynamic configs a [`MetadataRecord::Configs`] replaces.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConfigScope {
    /// The cluster-wide default of broker configs.
    ClusterDefault,
    Broker(i32),
    Group(String),
}
