//! Topic administration and the metadata view: Metadata (with auto-creation),
//! CreateTopics, DeleteTopics, CreatePartitions. Directory and file work runs on the
//! blocking pool.

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use super::{BrokerApi, TopicRef};
use crate::blocking::{offload, offload_each};
use crate::broker::{NewTopic, TopicSummary};
use crate::caller::{Caller, Operation, Resource};
use crate::error::{BrokerError, Result};
use crate::partition::ProducerSummary;
use strom_cluster::{MetadataImage, TopicImage};

/// A topic as Metadata describes it.
#[derive(Debug, Clone)]
pub struct TopicMetadata {
    /// None when asked by an id that is unknown.
    pub name: Option<String>,
    pub id: Uuid,
    pub is_internal: bool,
    pub partitions: Vec<PartitionMetadata>,
    pub error: Option<Arc<BrokerError>>,
}

/// Leadership of one partition, as the metadata says.
#[derive(Debug, Clone)]
pub struct PartitionMetadata {
    pub index: i32,
    /// -1 when the partition is offline (then `error` is LeaderNotAvailable).
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Replicas on brokers that are fenced or gone.
    pub offline_replicas: Vec<i32>,
    pub error: Option<Arc<BrokerError>>,
}

/// A registered broker and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub node_id: i32,
    pub rack: Option<String>,
    pub listeners: Vec<strom_cluster::Listener>,
    /// Unfenced: it heartbeats, so clients may be sent to it.
    pub alive: bool,
}

/// A CreatePartitions request for one topic.
#[derive(Debug, Clone)]
pub struct NewPartitions {
    pub topic: String,
    /// The partition count wanted.
    pub count: i32,
    /// Replicas of each new partition, when the client chose them.
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// A deleted topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedTopic {
    pub name: String,
    pub id: Uuid,
}

impl BrokerApi {
    /// Describes `wanted` topics (None: all), creating missing names on first use when
    /// `auto_create` and `auto.create.topics.enable` allow.
    pub async fn metadata(
        &self,
        caller: &Caller,
        wanted: Option<Vec<TopicRef>>,
        auto_create: bool,
    ) -> Vec<TopicMetadata> {
        let Some(wanted) = wanted else {
            let image = self.broker.image();
            return image
                .topics()
                .into_iter()
                .filter(|t| {
                    self.authorize(caller, Operation::Describe, Resource::Topic(&t.name))
                        .is_ok()
                })
                .map(|t| describe(&image, t))
                .collect();
        };
        let mut described = Vec::with_capacity(wanted.len());
        for topic in wanted {
            described.push(self.describe_one(caller, topic, auto_create).await);
        }
        described
    }

    async fn describe_one(&self, caller: &Caller, wanted: TopicRef, auto_create: bool) -> TopicMetadata {
        let missing = |name: Option<String>, id: Uuid, error: BrokerError| TopicMetadata {
            name,
            id,
            is_internal: false,
            partitions: Vec::new(),
            error: Some(Arc::new(error)),
        };
        let name = match wanted {
            TopicRef::Id(id) => {
                let image = self.broker.image();
                return match image.topic_by_id(id) {
                    Some(topic) => match self.authorize(caller, Operation::Describe, Resource::Topic(&topic.name)) {
                        Ok(()) => describe(&image, topic),
                        Err(e) => missing(None, id, e),
                    },
                    None => missing(None, id, BrokerError::UnknownTopicId),
                };
            }
            TopicRef::Name(name) => name,
        };
        if let Err(e) = self.authorize(caller, Operation::Describe, Resource::Topic(&name)) {
            return missing(Some(name), Uuid::nil(), e);
        }
        let image = self.broker.image();
        if let Some(topic) = image.topic(&name) {
            return describe(&image, topic);
        }
        if !auto_create
            || self
                .authorize(caller, Operation::Create, Resource::Topic(&name))
                .is_err()
        {
            return missing(Some(name), Uuid::nil(), BrokerError::UnknownTopicOrPartition);
        }
        let broker = self.broker.clone();
        let wanted = name.clone();
        match offload("auto-create topic", move || broker.auto_create_topic(&wanted)).await {
            Ok(Ok(Some(_))) => {
                let image = self.broker.image();
                match image.topic(&name) {
                    Some(topic) => describe(&image, topic),
                    None => missing(Some(name), Uuid::nil(), BrokerError::UnknownTopicOrPartition),
                }
            }
            Ok(Ok(None)) => missing(Some(name), Uuid::nil(), BrokerError::UnknownTopicOrPartition),
            Ok(Err(e)) | Err(e) => {
                if !matches!(e, BrokerError::InvalidTopic(_)) {
                    tracing::warn!(topic = %name, error = %e, "auto-create failed");
                }
                missing(Some(name), Uuid::nil(), e)
            }
        }
    }

    /// CreateTopics: each topic created (or only checked, with `validate_only`), in
    /// order. A name listed twice is refused for both, as Kafka does.
    pub async fn create_topics(
        &self,
        caller: &Caller,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<Result<TopicSummary>> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for topic in &topics {
            *counts.entry(topic.name.clone()).or_default() += 1;
        }
        let checked: Vec<Result<NewTopic>> = topics
            .into_iter()
            .map(|topic| {
                if counts.get(&topic.name).copied().unwrap_or(0) > 1 {
                    return Err(BrokerError::InvalidRequest(format!(
                        "Create topics request from client contains multiple entries for topic {}",
                        topic.name
                    )));
                }
                self.authorize(caller, Operation::Create, Resource::Topic(&topic.name))?;
                Ok(topic)
            })
            .collect();
        let broker = self.broker.clone();
        offload_each("create topics", checked, move |topic| {
            let name = topic.name.clone();
            broker.create_topic(topic, validate_only).inspect_err(|e| {
                if !matches!(e, BrokerError::TopicAlreadyExists(_)) {
                    tracing::info!(topic = %name, error = %e, "create topic refused");
                }
            })
        })
        .await
    }

    /// DeleteTopics, by name or id, in order.
    pub async fn delete_topics(&self, caller: &Caller, topics: Vec<TopicRef>) -> Vec<Result<DeletedTopic>> {
        let resolved: Vec<Result<String>> = topics
            .into_iter()
            .map(|topic| {
                let name = match topic {
                    TopicRef::Name(name) => name,
                    TopicRef::Id(id) => self
                        .broker
                        .topic_by_id(id)
                        .map(|t| t.name().to_string())
                        .ok_or(BrokerError::UnknownTopicId)?,
                };
                self.authorize(caller, Operation::Delete, Resource::Topic(&name))?;
                Ok(name)
            })
            .collect();
        let broker = self.broker.clone();
        offload_each("delete topics", resolved, move |name| {
            let id = broker.delete_topic(&name)?;
            Ok(DeletedTopic { name, id })
        })
        .await
    }

    /// CreatePartitions, in order. Replicas can only be this node until the cluster
    /// places partitions.
    pub async fn create_partitions(
        &self,
        caller: &Caller,
        topics: Vec<NewPartitions>,
        validate_only: bool,
    ) -> Vec<Result<()>> {
        let node = self.node_id();
        let checked: Vec<Result<NewPartitions>> = topics
            .into_iter()
            .map(|topic| {
                self.authorize(caller, Operation::Alter, Resource::Topic(&topic.topic))?;
                let assignment_ok = topic.assignments.as_ref().is_none_or(|a| {
                    a.iter()
                        .all(|replicas| !replicas.is_empty() && replicas.iter().all(|b| *b == node))
                });
                if !assignment_ok {
                    return Err(BrokerError::InvalidReplicaAssignment(format!(
                        "replicas must be [{node}] on this single-node cluster"
                    )));
                }
                Ok(topic)
            })
            .collect();
        let broker = self.broker.clone();
        offload_each("create partitions", checked, move |topic| {
            broker.create_partitions(&topic.topic, topic.count, validate_only)
        })
        .await
    }
}

impl BrokerApi {
    /// The registered brokers, by node id.
    pub fn brokers(&self) -> Vec<BrokerEndpoint> {
        broker_endpoints(&self.broker.image())
    }

    /// The node clients should send controller-bound requests to: the active
    /// controller when it is a live broker (it always is, while every node runs both
    /// roles), else any live broker (this one).
    pub fn controller_id(&self) -> i32 {
        let image = self.broker.image();
        self.broker
            .quorum()
            .status()
            .leader
            .map(|id| id as i32)
            .filter(|id| strom_cluster::controller::is_alive(&image, *id))
            .unwrap_or_else(|| self.node_id())
    }

    /// DescribeProducers: the producers with state in a partition.
    pub fn describe_producers(&self, caller: &Caller, topic: &str, partition: i32) -> Result<Vec<ProducerSummary>> {
        let (_, partition) = self.partition(caller, Operation::Read, &TopicRef::Name(topic.to_string()), partition)?;
        Ok(partition.producer_states())
    }
}

fn describe(image: &MetadataImage, topic: &TopicImage) -> TopicMetadata {
    let partitions = topic
        .partitions
        .iter()
        .map(|(index, state)| PartitionMetadata {
            index: *index,
            leader: state.leader,
            leader_epoch: state.leader_epoch,
            replicas: state.replicas.clone(),
            isr: state.isr.clone(),
            offline_replicas: state
                .replicas
                .iter()
                .copied()
                .filter(|r| !strom_cluster::controller::is_alive(image, *r))
                .collect(),
            error: (state.leader < 0).then(|| Arc::new(BrokerError::LeaderNotAvailable)),
        })
        .collect();
    TopicMetadata {
        name: Some(topic.name.clone()),
        id: topic.id,
        is_internal: crate::topic::is_internal_topic(&topic.name),
        partitions,
        error: None,
    }
}

/// The brokers registered in `image`, with their listeners.
pub(crate) fn broker_endpoints(image: &MetadataImage) -> Vec<BrokerEndpoint> {
    image
        .brokers()
        .values()
        .map(|b| BrokerEndpoint {
            node_id: b.registration.node_id,
            rack: b.registration.rack.clone(),
            listeners: b.registration.listeners.clone(),
            alive: !b.fenced,
        })
        .collect()
}
