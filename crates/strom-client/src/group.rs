//! Consumer group membership on the classic protocol: the requests a member sends to its
//! group coordinator (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch).
//!
//! The coordinator gets a connection of its own, as Kafka's Java client does: a JoinGroup
//! waits at the broker until every member has rejoined, and on a shared connection it would
//! hold up the fetches queued behind it. Its timeout covers the rebalance timeout.
//! The background loop that drives these calls lives in `membership.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest,
    SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use tracing::debug;

use crate::assignor::Assignor;
use crate::client::Client;
use crate::connection::Connection;
use crate::consumer_protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, MemberSubscription,
    CONSUMER_PROTOCOL_TYPE,
};
use crate::coordinator::{find_coordinator, is_coordinator_error, CoordinatorKind};
use crate::error::{Error, Result};
use crate::sync::lock;
use crate::topic_partition::TopicPartition;

/// Kafka's ILLEGAL_GENERATION error code.
pub(crate) const ILLEGAL_GENERATION: i16 = 22;
/// Kafka's UNKNOWN_MEMBER_ID error code.
pub(crate) const UNKNOWN_MEMBER_ID: i16 = 25;
/// Kafka's REBALANCE_IN_PROGRESS error code.
pub(crate) const REBALANCE_IN_PROGRESS: i16 = 27;
/// Kafka's FENCED_MEMBER_EPOCH error code (KIP-848 protocol).
pub(crate) const FENCED_MEMBER_EPOCH: i16 = 110;
/// Kafka's STALE_MEMBER_EPOCH error code (KIP-848 protocol).
pub(crate) const STALE_MEMBER_EPOCH: i16 = 113;
/// Kafka's MEMBER_ID_REQUIRED error code.
const MEMBER_ID_REQUIRED: i16 = 79;

/// The group, generation and member a consumer commits as; what
/// [`crate::Producer::send_offsets_to_transaction`] needs to commit offsets for a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    /// The group id.
    pub group_id: String,
    /// The generation of the group the member joined last (-1 when not joined).
    pub generation_id: i32,
    /// The member id given by the coordinator (empty when not joined).
    pub member_id: String,
    /// The static member id, if configured.
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// Metadata of a group the caller is not a member of (offsets committed without fencing).
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerGroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

/// Group settings taken from the consumer's configuration.
#[derive(Debug, Clone)]
pub(crate) struct GroupSettings {
    pub group_id: String,
    pub group_instance_id: Option<String>,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub assignors: Vec<Assignor>,
}

/// The result of a JoinGroup round.
#[derive(Debug)]
pub(crate) struct Joined {
    pub generation_id: i32,
    pub protocol: Option<String>,
    pub is_leader: bool,
    /// Member id → metadata, filled only for the leader.
    pub members: Vec<(String, Bytes)>,
}

impl Joined {
    /// The assignor the group chose, if this client knows it.
    pub fn assignor(&self) -> Option<Assignor> {
        self.protocol.as_deref().and_then(Assignor::from_name)
    }
}

/// One member's view of its group coordinator.
pub(crate) struct GroupCoordinator {
    client: Client,
    settings: GroupSettings,
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
    identity: Mutex<ConsumerGroupMetadata>,
}

impl GroupCoordinator {
    pub fn new(client: Client, settings: GroupSettings) -> Self {
        let mut identity = ConsumerGroupMetadata::new(settings.group_id.clone());
        identity.group_instance_id = settings.group_instance_id.clone();
        GroupCoordinator {
            client,
            settings,
            connection: tokio::sync::Mutex::new(None),
            identity: Mutex::new(identity),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The group, generation and member id as of now.
    pub fn metadata(&self) -> ConsumerGroupMetadata {
        lock(&self.identity).clone()
    }

    /// Forgets the member id (after UNKNOWN_MEMBER_ID) so the next join starts afresh.
    pub fn reset_member(&self) {
        let mut identity = lock(&self.identity);
        identity.member_id.clear();
        identity.generation_id = -1;
    }

    /// Sets the member id and the generation (the member epoch in the KIP-848 protocol) that
    /// commits are sent with.
    pub fn set_member(&self, member_id: &str, generation_id: i32) {
        let mut identity = lock(&self.identity);
        identity.member_id = member_id.to_string();
        identity.generation_id = generation_id;
    }

    pub fn settings(&self) -> &GroupSettings {
        &self.settings
    }

    /// The version `send` uses for request type `Req`.
    pub async fn version_for<Req: Request>(&self) -> Result<i16> {
        self.connection().await?.version_for::<Req>()
    }

    /// Forgets the generation (after ILLEGAL_GENERATION); the member id is kept.
    pub fn reset_generation(&self) {
        lock(&self.identity).generation_id = -1;
    }

    pub fn group_id(&self) -> GroupId {
        GroupId(StrBytes::from_string(self.settings.group_id.clone()))
    }

    pub fn instance_id(&self) -> Option<StrBytes> {
        self.settings.group_instance_id.clone().map(StrBytes::from_string)
    }

    async fn connection(&self) -> Result<Arc<Connection>> {
        let mut guard = self.connection.lock().await;
        if let Some(connection) = guard.as_ref().filter(|c| !c.is_closed()) {
            return Ok(connection.clone());
        }
        let coordinator = find_coordinator(&self.client, CoordinatorKind::Group, &self.settings.group_id).await?;
        let config = self.client.config();
        let timeout = config
            .request_timeout
            .max(self.settings.rebalance_timeout + Duration::from_secs(5));
        let connection = Arc::new(
            Connection::connect_within(
                &coordinator.address(),
                &config.client_id,
                config.connect_timeout,
                timeout,
            )
            .await?,
        );
        *guard = Some(connection.clone());
        Ok(connection)
    }

    /// Sends a request built for the negotiated version, forgetting the coordinator when the
    /// connection fails or the broker says it no longer is the coordinator.
    pub async fn send<Req: Request>(&self, build: impl Fn(i16) -> Req) -> Result<Req::Response> {
        let connection = self.connection().await?;
        let version = connection.version_for::<Req>()?;
        let result = connection.send_version(&build(version), version).await;
        if result.is_err() {
            self.forget_coordinator().await;
        }
        result
    }

    /// Drops the coordinator connection; the next request looks the coordinator up again.
    pub async fn forget_coordinator(&self) {
        *self.connection.lock().await = None;
    }

    /// Checks a response error code, forgetting the coordinator on coordinator errors.
    pub async fn check(&self, code: i16, message: Option<&str>) -> Result<()> {
        let result = Error::check(code, message);
        if result.as_ref().is_err_and(is_coordinator_error) {
            self.forget_coordinator().await;
        }
        result
    }

    /// JoinGroup with the given subscription and the partitions the member owns now,
    /// rejoining once with the id the coordinator hands out on MEMBER_ID_REQUIRED.
    pub async fn join(&self, topics: &[String], owned: &[TopicPartition]) -> Result<Joined> {
        let generation_id = self.metadata().generation_id;
        let owned: Vec<(String, i32)> = owned.iter().map(|p| (p.topic.clone(), p.partition)).collect();
        let mut protocols = Vec::with_capacity(self.settings.assignors.len());
        for assignor in &self.settings.assignors {
            protocols.push(
                JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str(assignor.name()))
                    .with_metadata(encode_subscription(
                        topics,
                        &owned,
                        generation_id,
                        assignor.user_data(generation_id),
                    )?),
            );
        }
        for _ in 0..2 {
            let member_id = self.metadata().member_id;
            let response = self
                .send(|version| {
                    let mut request = JoinGroupRequest::default()
                        .with_group_id(self.group_id())
                        .with_session_timeout_ms(millis(self.settings.session_timeout))
                        .with_member_id(StrBytes::from_string(member_id.clone()))
                        .with_protocol_type(StrBytes::from_static_str(CONSUMER_PROTOCOL_TYPE))
                        .with_protocols(protocols.clone());
                    if version >= 1 {
                        request.rebalance_timeout_ms = millis(self.settings.rebalance_timeout);
                    }
                    if version >= 5 {
                        request.group_instance_id = self.instance_id();
                    }
                    request
                })
                .await?;
            if response.error_code == MEMBER_ID_REQUIRED {
                debug!(member_id = %response.member_id, "member id required, rejoining");
                lock(&self.identity).member_id = response.member_id.to_string();
                continue;
            }
            if response.error_code == UNKNOWN_MEMBER_ID {
                self.reset_member();
            }
            self.check(response.error_code, None).await?;
            let mut identity = lock(&self.identity);
            identity.member_id = response.member_id.to_string();
            identity.generation_id = response.generation_id;
            let is_leader = response.leader == response.member_id;
            debug!(generation = response.generation_id, member_id = %identity.member_id, is_leader, "joined group");
            return Ok(Joined {
                generation_id: response.generation_id,
                protocol: response.protocol_name.map(|p| p.to_string()),
                is_leader,
                members: response
                    .members
                    .into_iter()
                    .map(|m| (m.member_id.to_string(), m.metadata))
                    .collect(),
            });
        }
        Err(Error::Protocol("JoinGroup asked for a member id twice".into()))
    }

    /// The leader's assignment of the joined members, computed with the chosen assignor.
    pub async fn assign(&self, joined: &Joined) -> Result<Vec<(String, Bytes)>> {
        let assignor = joined
            .assignor()
            .ok_or_else(|| Error::Protocol(format!("group chose unknown assignor {:?}", joined.protocol)))?;
        let mut members = BTreeMap::new();
        for (member_id, metadata) in &joined.members {
            members.insert(member_id.clone(), decode_subscription(metadata)?);
        }
        let mut partition_counts = BTreeMap::new();
        let mut topics: Vec<&String> = members.values().flat_map(|m: &MemberSubscription| &m.topics).collect();
        topics.sort();
        topics.dedup();
        for topic in topics {
            match self.client.fetch_topic_metadata(topic).await {
                Ok(metadata) => {
                    partition_counts.insert(topic.clone(), metadata.partition_count());
                }
                Err(Error::UnknownTopic(_)) => debug!(%topic, "subscribed topic does not exist"),
                Err(error) => return Err(error),
            }
        }
        let assignment = assignor.assign(&members, &partition_counts);
        let mut out = Vec::with_capacity(assignment.len());
        for (member_id, partitions) in assignment {
            out.push((member_id, encode_assignment(&partitions)?));
        }
        Ok(out)
    }

    /// SyncGroup: sends the leader's assignments (empty for followers), returns this member's.
    pub async fn sync(&self, joined: &Joined, assignments: Vec<(String, Bytes)>) -> Result<Vec<TopicPartition>> {
        let identity = self.metadata();
        let assignments: Vec<SyncGroupRequestAssignment> = assignments
            .into_iter()
            .map(|(member_id, assignment)| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member_id))
                    .with_assignment(assignment)
            })
            .collect();
        let response = self
            .send(|version| {
                let mut request = SyncGroupRequest::default()
                    .with_group_id(self.group_id())
                    .with_generation_id(joined.generation_id)
                    .with_member_id(StrBytes::from_string(identity.member_id.clone()))
                    .with_assignments(assignments.clone());
                if version >= 3 {
                    request.group_instance_id = self.instance_id();
                }
                if version >= 5 {
                    request.protocol_type = Some(StrBytes::from_static_str(CONSUMER_PROTOCOL_TYPE));
                    request.protocol_name = joined.protocol.clone().map(StrBytes::from_string);
                }
                request
            })
            .await?;
        self.check(response.error_code, None).await?;
        let assigned = decode_assignment(&response.assignment)?;
        Ok(assigned
            .into_iter()
            .map(|(topic, partition)| TopicPartition::new(topic, partition))
            .collect())
    }

    /// One Heartbeat for the current generation.
    pub async fn heartbeat(&self) -> Result<()> {
        let identity = self.metadata();
        let response = self
            .send(|version| {
                let mut request = HeartbeatRequest::default()
                    .with_group_id(self.group_id())
                    .with_generation_id(identity.generation_id)
                    .with_member_id(StrBytes::from_string(identity.member_id.clone()));
                if version >= 3 {
                    request.group_instance_id = self.instance_id();
                }
                request
            })
            .await?;
        self.check(response.error_code, None).await
    }

    /// LeaveGroup, so the others rebalance at once instead of after the session timeout.
    pub async fn leave(&self) -> Result<()> {
        let identity = self.metadata();
        if identity.member_id.is_empty() {
            return Ok(());
        }
        let response = self
            .send(|version| {
                let request = LeaveGroupRequest::default().with_group_id(self.group_id());
                if version >= 3 {
                    request.with_members(vec![MemberIdentity::default()
                        .with_member_id(StrBytes::from_string(identity.member_id.clone()))
                        .with_group_instance_id(self.instance_id())])
                } else {
                    request.with_member_id(StrBytes::from_string(identity.member_id.clone()))
                }
            })
            .await?;
        self.reset_member();
        self.check(response.error_code, None).await?;
        for member in response.members {
            Error::check(member.error_code, None)?;
        }
        Ok(())
    }

    /// OffsetCommit of `offsets` (the next offset to read per partition) as the current member.
    pub async fn commit(&self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let identity = self.metadata();
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (key, offset) in offsets {
            topics.entry(&key.topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(key.partition)
                    .with_committed_offset(*offset),
            );
        }
        let topics: Vec<OffsetCommitRequestTopic> = topics
            .into_iter()
            .map(|(name, partitions)| {
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(name.to_string())))
                    .with_partitions(partitions)
            })
            .collect();
        let response = self
            .send(|version| {
                let mut request = OffsetCommitRequest::default()
                    .with_group_id(self.group_id())
                    .with_generation_id_or_member_epoch(identity.generation_id)
                    .with_member_id(StrBytes::from_string(identity.member_id.clone()))
                    .with_topics(topics.clone());
                if version >= 7 {
                    request.group_instance_id = self.instance_id();
                }
                request
            })
            .await?;
        for topic in response.topics {
            for partition in topic.partitions {
                self.check(partition.error_code, None).await?;
            }
        }
        Ok(())
    }

    /// OffsetFetch: the committed offsets of these partitions; partitions without one are
    /// left out.
    pub async fn committed(&self, partitions: &[TopicPartition]) -> Result<HashMap<TopicPartition, i64>> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for key in partitions {
            by_topic.entry(&key.topic).or_default().push(key.partition);
        }
        let name = |topic: &str| TopicName(StrBytes::from_string(topic.to_string()));
        let response = self
            .send(|version| {
                if version >= 8 {
                    let topics = by_topic
                        .iter()
                        .map(|(topic, indexes)| {
                            OffsetFetchRequestTopics::default()
                                .with_name(name(topic))
                                .with_partition_indexes(indexes.clone())
                        })
                        .collect();
                    OffsetFetchRequest::default()
                        .with_group_id(GroupId(StrBytes::default()))
                        .with_topics(Some(Vec::new()))
                        .with_require_stable(true)
                        .with_groups(vec![OffsetFetchRequestGroup::default()
                            .with_group_id(self.group_id())
                            .with_topics(Some(topics))])
                } else {
                    let topics = by_topic
                        .iter()
                        .map(|(topic, indexes)| {
                            OffsetFetchRequestTopic::default()
                                .with_name(name(topic))
                                .with_partition_indexes(indexes.clone())
                        })
                        .collect();
                    OffsetFetchRequest::default()
                        .with_group_id(self.group_id())
                        .with_topics(Some(topics))
                        .with_require_stable(version >= 7)
                }
            })
            .await?;
        let mut out = HashMap::new();
        let mut entries = Vec::new();
        self.check(response.error_code, None).await?;
        for topic in response.topics {
            for p in topic.partitions {
                entries.push((
                    topic.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.error_code,
                ));
            }
        }
        for group in response.groups {
            self.check(group.error_code, None).await?;
            for topic in group.topics {
                for p in topic.partitions {
                    entries.push((
                        topic.name.0.to_string(),
                        p.partition_index,
                        p.committed_offset,
                        p.error_code,
                    ));
                }
            }
        }
        for (topic, partition, offset, code) in entries {
            self.check(code, None).await?;
            if offset >= 0 {
                out.insert(TopicPartition::new(topic, partition), offset);
            }
        }
        Ok(out)
    }
}

fn millis(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}
