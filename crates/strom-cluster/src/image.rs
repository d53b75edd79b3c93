//! The metadata image: the cluster as the committed records say — its id, the brokers,
//! the topics with their partitions (replicas, leader, epochs, ISR), dynamic configs and
//! the next producer id. Every node builds the same image from the same log: applying
//! is deterministic, and a batch that does not fit the image at its place in the log
//! (a name taken, a stale partition epoch) is refused whole on every node alike.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Refusal;
use crate::records::{BrokerRegistration, ConfigScope, MetadataRecord, PartitionChange, PartitionRecord, TopicRecord};

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerState {
    pub registration: BrokerRegistration,
    /// The log index of its registration: one per process lifetime.
    pub broker_epoch: i64,
    /// Fenced brokers lead nothing and are not in any ISR.
    pub fenced: bool,
}

/// A partition's replicas and leadership.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionState {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// A reassignment in progress (KIP-455): replicas being added (catching up, not
    /// yet all in the ISR) and replicas to remove once they are; `replicas` holds both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding: Vec<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<i32>,
    /// KIP-966's eligible leader replicas: replicas that left the ISR while it was
    /// below `min.insync.replicas`. The high watermark cannot advance then, so they
    /// hold every committed record (fsynced, see docs/cluster.md) and may lead when no
    /// ISR member is alive. Emptied once the ISR is back at `min.insync.replicas`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elr: Vec<i32>,
}

/// The eligible leader replicas after the ISR went from `old_isr` to `new_isr`: none
/// while the new ISR has `min_insync` members; otherwise the previous ones and the
/// members that just left, less the new ISR and replicas no longer assigned.
pub fn eligible_leaders_after(
    old_isr: &[i32],
    old_elr: &[i32],
    new_isr: &[i32],
    replicas: &[i32],
    min_insync: usize,
) -> Vec<i32> {
    if new_isr.len() >= min_insync {
        return Vec::new();
    }
    let mut elr = Vec::new();
    for replica in old_elr.iter().chain(old_isr) {
        if !new_isr.contains(replica) && replicas.contains(replica) && !elr.contains(replica) {
            elr.push(*replica);
        }
    }
    elr
}

impl PartitionState {
    /// The replicas a reassignment in progress leads to (the replicas when none is).
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing.contains(r))
            .collect()
    }
}

/// A topic and its partitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub configs: BTreeMap<String, String>,
    pub partitions: BTreeMap<i32, PartitionState>,
}

impl TopicImage {
    pub fn partition_count(&self) -> i32 {
        self.partitions.len() as i32
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetadataImage {
    cluster_id: Option<String>,
    brokers: BTreeMap<i32, BrokerState>,
    topics: BTreeMap<Uuid, TopicImage>,
    #[serde(skip)]
    ids_by_name: HashMap<String, Uuid>,
    configs: BTreeMap<ConfigScope, BTreeMap<String, String>>,
    next_producer_id: i64,
}

impl MetadataImage {
    /// Rebuilds the name index after deserialising (snapshots do not store it).
    pub(crate) fn reindex(&mut self) {
        self.ids_by_name = self.topics.values().map(|t| (t.name.clone(), t.id)).collect();
    }

    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    pub fn brokers(&self) -> &BTreeMap<i32, BrokerState> {
        &self.brokers
    }

    pub fn broker(&self, node_id: i32) -> Option<&BrokerState> {
        self.brokers.get(&node_id)
    }

    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(self.ids_by_name.get(name)?)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&TopicImage> {
        self.topics.get(&id)
    }

    /// A topic's `min.insync.replicas`: its own override, else the cluster's dynamic
    /// default, else 1 (a broker's static setting is not in the metadata).
    pub fn min_insync(&self, topic: &TopicImage) -> usize {
        const NAME: &str = "min.insync.replicas";
        topic
            .configs
            .get(NAME)
            .or_else(|| {
                self.configs
                    .get(&ConfigScope::ClusterDefault)
                    .and_then(|configs| configs.get(NAME))
            })
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(1)
            .max(1)
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> Vec<&TopicImage> {
        let mut topics: Vec<_> = self.topics.values().collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    pub fn configs(&self, scope: &ConfigScope) -> Option<&BTreeMap<String, String>> {
        self.configs.get(scope)
    }

    /// Every scope with dynamic configs.
    pub fn all_configs(&self) -> &BTreeMap<ConfigScope, BTreeMap<String, String>> {
        &self.configs
    }

    /// The first producer id no broker has been handed yet.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// Applies a committed batch whole, or refuses it and changes nothing. `index` is
    /// the batch's log index (a registration's broker epoch).
    pub fn apply_batch(&mut self, records: &[MetadataRecord], index: u64) -> Result<(), Refusal> {
        let mut next = self.clone();
        for record in records {
            next.apply(record, index)?;
        }
        *self = next;
        Ok(())
    }

    /// Applies one record, or refuses it and changes nothing.
    pub fn apply(&mut self, record: &MetadataRecord, index: u64) -> Result<(), Refusal> {
        match record {
            MetadataRecord::ClusterId { id } => match &self.cluster_id {
                Some(current) if current != id => return Err(Refusal::ClusterId(current.clone())),
                _ => self.cluster_id = Some(id.clone()),
            },
            MetadataRecord::RegisterBroker(registration) => {
                self.brokers.insert(
                    registration.node_id,
                    BrokerState {
                        registration: registration.clone(),
                        broker_epoch: index as i64,
                        fenced: false,
                    },
                );
            }
            MetadataRecord::BrokerFencing {
                node_id,
                broker_epoch,
                fenced,
            } => {
                let broker = self.current_broker(*node_id, *broker_epoch)?;
                broker.fenced = *fenced;
            }
            MetadataRecord::UnregisterBroker { node_id, broker_epoch } => {
                self.current_broker(*node_id, *broker_epoch)?;
                self.brokers.remove(node_id);
            }
            MetadataRecord::Topic(topic) => self.add_topic(topic)?,
            MetadataRecord::Partition(partition) => self.add_partition(partition)?,
            MetadataRecord::PartitionChange(change) => self.change_partition(change)?,
            MetadataRecord::TopicConfigs { topic_id, configs } => {
                self.topic_mut(*topic_id)?.configs = configs.clone();
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let topic = self
                    .topics
                    .remove(topic_id)
                    .ok_or_else(|| Refusal::UnknownTopic(topic_id.to_string()))?;
                self.ids_by_name.remove(&topic.name);
            }
            MetadataRecord::Configs { resource, configs } => {
                if configs.is_empty() {
                    self.configs.remove(resource);
                } else {
                    self.configs.insert(resource.clone(), configs.clone());
                }
            }
            MetadataRecord::ProducerIds { first, next, .. } => {
                if *first != self.next_producer_id || next <= first {
                    return Err(Refusal::Stale(format!(
                        "producer ids from {first} are not the next block (next id {})",
                        self.next_producer_id
                    )));
                }
                self.next_producer_id = *next;
            }
        }
        Ok(())
    }

    fn current_broker(&mut self, node_id: i32, broker_epoch: i64) -> Result<&mut BrokerState, Refusal> {
        match self.brokers.get_mut(&node_id) {
            Some(broker) if broker.broker_epoch == broker_epoch => Ok(broker),
            Some(broker) => Err(Refusal::Stale(format!(
                "broker {node_id} has epoch {}, not {broker_epoch}",
                broker.broker_epoch
            ))),
            None => Err(Refusal::UnknownBroker(node_id)),
        }
    }

    fn topic_mut(&mut self, id: Uuid) -> Result<&mut TopicImage, Refusal> {
        self.topics
            .get_mut(&id)
            .ok_or_else(|| Refusal::UnknownTopic(id.to_string()))
    }

    fn add_topic(&mut self, topic: &TopicRecord) -> Result<(), Refusal> {
        if self.ids_by_name.contains_key(&topic.name) {
            return Err(Refusal::TopicExists(topic.name.clone()));
        }
        if self.topics.contains_key(&topic.id) {
            return Err(Refusal::Inconsistent(format!("topic id {} is taken", topic.id)));
        }
        self.ids_by_name.insert(topic.name.clone(), topic.id);
        self.topics.insert(
            topic.id,
            TopicImage {
                name: topic.name.clone(),
                id: topic.id,
                configs: topic.configs.clone(),
                partitions: BTreeMap::new(),
            },
        );
        Ok(())
    }

    fn add_partition(&mut self, record: &PartitionRecord) -> Result<(), Refusal> {
        let topic = self.topic_mut(record.topic_id)?;
        // Partitions are numbered densely: a new one is always the next index.
        if record.partition != topic.partition_count() || record.replicas.is_empty() {
            return Err(Refusal::Inconsistent(format!(
                "partition {} of topic {} does not follow its {} partitions",
                record.partition,
                topic.name,
                topic.partition_count()
            )));
        }
        topic.partitions.insert(
            record.partition,
            PartitionState {
                replicas: record.replicas.clone(),
                isr: record.isr.clone(),
                leader: record.leader,
                leader_epoch: record.leader_epoch,
                partition_epoch: record.partition_epoch,
                adding: Vec::new(),
                removing: Vec::new(),
                elr: Vec::new(),
            },
        );
        Ok(())
    }

    fn change_partition(&mut self, change: &PartitionChange) -> Result<(), Refusal> {
        let topic = self.topic_mut(change.topic_id)?;
        let name = topic.name.clone();
        let partition = topic
            .partitions
            .get_mut(&change.partition)
            .ok_or_else(|| Refusal::UnknownTopic(format!("{name}-{}", change.partition)))?;
        if partition.partition_epoch != change.partition_epoch {
            return Err(Refusal::Stale(format!(
                "partition {name}-{} is at partition epoch {}, not {}",
                change.partition, partition.partition_epoch, change.partition_epoch
            )));
        }
        for (node_id, broker_epoch) in &change.joining {
            let current = self.brokers.get(node_id);
            if !current.is_some_and(|b| b.broker_epoch == *broker_epoch && !b.fenced) {
                return Err(Refusal::Stale(format!(
                    "broker {node_id} cannot join the ISR of {name}-{}: it fetched with broker epoch {broker_epoch}, \
                     which is not its current unfenced one",
                    change.partition
                )));
            }
        }
        let min_insync = self
            .topics
            .get(&change.topic_id)
            .map_or(1, |topic| self.min_insync(topic));
        let topic = self.topic_mut(change.topic_id)?;
        let Some(partition) = topic.partitions.get_mut(&change.partition) else {
            return Err(Refusal::UnknownTopic(format!("{name}-{}", change.partition)));
        };
        let old_isr = partition.isr.clone();
        if let Some(replicas) = &change.replicas {
            partition.replicas = replicas.clone();
        }
        if let Some(isr) = &change.isr {
            partition.isr = isr.clone();
        }
        partition.elr = match &change.elr {
            Some(elr) => elr.clone(),
            None if change.isr.is_some() || change.replicas.is_some() => eligible_leaders_after(
                &old_isr,
                &partition.elr,
                &partition.isr,
                &partition.replicas,
                min_insync,
            ),
            None => partition.elr.clone(),
        };
        if let Some(reassignment) = &change.reassignment {
            partition.adding = reassignment.adding.clone();
            partition.removing = reassignment.removing.clone();
        }
        if let Some(leader) = change.leader {
            if leader != partition.leader {
                partition.leader = leader;
                partition.leader_epoch += 1;
            }
        }
        partition.partition_epoch += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
