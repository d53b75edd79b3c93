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

/// DescribeLogDirs: this node's data directory and the replicas in it.
#[derive(Debug, Clone)]
pub struct LogDirDescription {
    pub dir: String,
    pub total_bytes: i64,
    pub usable_bytes: i64,
    /// Topic → its replicas here.
    pub topics: Vec<(String, Vec<ReplicaDescription>)>,
}

/// One replica in a [`LogDirDescription`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaDescription {
    pub partition: i32,
    pub size_bytes: i64,
    /// How far its log end is behind the leader's high watermark (0 on the leader).
    pub offset_lag: i64,
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

    /// The node clients should send controller-bound requests (CreateTopics, ...) to:
    /// this one. Any broker takes them and proposes the change to the metadata quorum
    /// (forwarded to the active controller), so, as KRaft brokers do, each answers with
    /// a live broker rather than the controller, which a failover would make stale.
    pub fn controller_id(&self) -> i32 {
        self.node_id()
    }

    /// DescribeQuorum: the metadata quorum as its leader sees it.
    pub async fn describe_quorum(&self, caller: &Caller) -> Result<strom_cluster::QuorumStatus> {
        self.authorize(caller, Operation::Describe, Resource::Cluster)?;
        let quorum = self.broker.quorum().clone();
        // The leader's view has every node's position; while it cannot be reached (an
        // election, say) this node's own view answers.
        crate::blocking::offload("describe quorum", move || {
            quorum.leader_status().unwrap_or_else(|_| quorum.status())
        })
        .await
    }

    /// AddRaftVoter: adds node `voter_id`, running and reachable at its controller
    /// address `addr`, to the metadata quorum as a voter (once it has caught up).
    /// Runs on the active controller; elsewhere NOT_CONTROLLER names it.
    pub async fn add_voter(
        &self,
        caller: &Caller,
        cluster_id: Option<&str>,
        voter_id: i32,
        addr: String,
    ) -> Result<()> {
        self.authorize(caller, Operation::Alter, Resource::Cluster)?;
        self.check_cluster_id(cluster_id)?;
        let quorum = self.broker.quorum().clone();
        let id =
            u64::try_from(voter_id).map_err(|_| BrokerError::InvalidRequest(format!("bad voter id {voter_id}")))?;
        crate::blocking::offload_result("add voter", move || Ok(quorum.add_voter(id, &addr)?)).await
    }

    /// RemoveRaftVoter: removes node `voter_id` from the metadata quorum. Its id must
    /// never be given to another node.
    pub async fn remove_voter(&self, caller: &Caller, cluster_id: Option<&str>, voter_id: i32) -> Result<()> {
        self.authorize(caller, Operation::Alter, Resource::Cluster)?;
        self.check_cluster_id(cluster_id)?;
        let quorum = self.broker.quorum().clone();
        let id =
            u64::try_from(voter_id).map_err(|_| BrokerError::InvalidRequest(format!("bad voter id {voter_id}")))?;
        crate::blocking::offload_result("remove voter", move || Ok(quorum.remove_voter(id)?)).await
    }

    /// UnregisterBroker: forgets a broker that is gone for good (it must be fenced:
    /// stopped, or not heard from). Its partitions stay offline until reassigned.
    pub async fn unregister_broker(&self, caller: &Caller, broker_id: i32) -> Result<()> {
        self.authorize(caller, Operation::Alter, Resource::Cluster)?;
        let broker = self.broker.clone();
        crate::blocking::offload_result("unregister broker", move || broker.unregister(broker_id)).await
    }

    fn check_cluster_id(&self, cluster_id: Option<&str>) -> Result<()> {
        match cluster_id {
            Some(id) if !id.is_empty() && id != self.cluster_id() => Err(BrokerError::InconsistentClusterId(format!(
                "the request is for cluster {id}, this is cluster {}",
                self.cluster_id()
            ))),
            _ => Ok(()),
        }
    }

    /// ElectLeaders: a new leader for each partition, the preferred replica (or, with
    /// `unclean`, the first live replica when no ISR member is alive), committed by the
    /// active controller. Per partition: Ok, or why not.
    pub async fn elect_leaders(
        &self,
        caller: &Caller,
        partitions: Vec<(String, i32)>,
        unclean: bool,
    ) -> Result<crate::broker::Elections> {
        self.authorize(caller, Operation::Alter, Resource::Cluster)?;
        let broker = self.broker.clone();
        crate::blocking::offload_result("elect leaders", move || broker.elect_leaders(partitions, unclean)).await
    }

    /// AlterPartitionReassignments: per (topic, partition, target or `None` to cancel),
    /// the outcome (see [`Broker::alter_reassignments`]).
    pub async fn alter_partition_reassignments(
        &self,
        caller: &Caller,
        wanted: Vec<(String, i32, Option<Vec<i32>>)>,
    ) -> Result<Vec<Result<()>>> {
        self.authorize(caller, Operation::Alter, Resource::Cluster)?;
        let broker = self.broker.clone();
        crate::blocking::offload("reassign partitions", move || broker.alter_reassignments(wanted)).await
    }

    /// ListPartitionReassignments: those in progress (of `only`, or all).
    pub fn list_partition_reassignments(
        &self,
        caller: &Caller,
        only: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<Vec<crate::broker::OngoingReassignment>> {
        self.authorize(caller, Operation::Describe, Resource::Cluster)?;
        Ok(self.broker.list_reassignments(only))
    }

    /// DescribeLogDirs: this node's data directory with the size and lag of each replica
    /// it hosts (of `only`, or all), and the directory's total and usable bytes.
    pub fn describe_log_dirs(
        &self,
        caller: &Caller,
        only: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<LogDirDescription> {
        self.authorize(caller, Operation::Describe, Resource::Cluster)?;
        let mut topics = Vec::new();
        for topic in self.broker.topics() {
            let wanted: Option<&Vec<i32>> = match &only {
                Some(only) => match only.iter().find(|(name, _)| name == topic.name()) {
                    Some((_, partitions)) => Some(partitions),
                    None => continue,
                },
                None => None,
            };
            let replicas: Vec<ReplicaDescription> = topic
                .partitions()
                .iter()
                .filter(|p| wanted.is_none_or(|w| w.contains(&p.index())))
                .map(|p| ReplicaDescription {
                    partition: p.index(),
                    size_bytes: p.log().size_bytes() as i64,
                    offset_lag: p.replica().offset_lag(p.log_end_offset()),
                })
                .collect();
            if !replicas.is_empty() {
                topics.push((topic.name().to_string(), replicas));
            }
        }
        let dir = self.broker.config().data_dir.clone();
        let (total_bytes, usable_bytes) = rustix::fs::statvfs(&dir).map_or((-1, -1), |stat| {
            let block = stat.f_frsize as i64;
            (
                (stat.f_blocks as i64).saturating_mul(block),
                (stat.f_bavail as i64).saturating_mul(block),
            )
        });
        Ok(LogDirDescription {
            dir: dir.display().to_string(),
            total_bytes,
            usable_bytes,
            topics,
        })
    }

    /// OffsetForLeaderEpoch (KIP-101, KIP-320): where `leader_epoch` ends in this
    /// leader's log, as `(epoch, end offset)` — the latest epoch ends at the log end, an
    /// older one where the next begins; `(-1, -1)` when unknown. Followers and consumers
    /// (checking for truncation after a leader change) ask the leader, with their
    /// current leader epoch checked. Only the leader answers (as Kafka does): a follower
    /// shares the leader epoch but its log may end behind, and a consumer told that its
    /// epoch ends there seeks back to it.
    pub fn offset_for_leader_epoch(
        &self,
        caller: &Caller,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
        leader_epoch: i32,
    ) -> Result<(i32, i64)> {
        let (_, partition) = self.partition(
            caller,
            Operation::Describe,
            &TopicRef::Name(topic.to_string()),
            partition,
        )?;
        partition.check_leader_epoch(current_leader_epoch)?;
        let answer = partition.log().end_offset_for_leader_epoch(leader_epoch);
        tracing::debug!(
            partition = ?partition,
            current_leader_epoch,
            leader_epoch,
            ?answer,
            log_end = partition.log_end_offset(),
            high_watermark = partition.high_watermark(),
            "offset for leader epoch"
        );
        Ok(answer)
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
