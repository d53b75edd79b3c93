//! Cluster administration: topics, partitions, configs, offsets and groups.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest,
    DeleteTopicsRequest, DescribeConfigsRequest, DescribeGroupsRequest, GroupId, IncrementalAlterConfigsRequest,
    ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use uuid::Uuid;

use crate::client::{Client, ClientConfig, PartitionMetadata};
use crate::consumer_protocol::{decode_assignment, CONSUMER_PROTOCOL_TYPE};
use crate::error::{Error, Result};
use crate::offset::{CommittedOffset, ListedOffset, OffsetSpec};
use crate::topic_partition::TopicPartition;

fn sorted(partitions: impl Iterator<Item = (String, i32)>) -> Vec<TopicPartition> {
    let mut partitions: Vec<TopicPartition> = partitions
        .map(|(topic, partition)| TopicPartition::new(topic, partition))
        .collect();
    partitions.sort();
    partitions
}

/// Kafka's config resource type of topics.
const RESOURCE_TOPIC: i8 = 2;
/// Kafka's NOT_COORDINATOR error code.
const NOT_COORDINATOR: i16 = 16;

/// A topic to create.
///
/// ```
/// let topic = strom_client::NewTopic::new("events", 6, 1).with_config("retention.ms", "86400000");
/// assert_eq!(topic.configs.get("retention.ms").map(String::as_str), Some("86400000"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Number of partitions (-1 = broker default).
    pub partitions: i32,
    /// Replication factor (-1 = broker default).
    pub replication_factor: i16,
    /// Topic configs by Kafka name (`retention.ms`, `cleanup.policy`, …).
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    /// A topic with no config overrides.
    pub fn new(name: impl Into<String>, partitions: i32, replication_factor: i16) -> Self {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor,
            configs: BTreeMap::new(),
        }
    }

    /// Adds a config override.
    pub fn with_config(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(name.into(), value.into());
        self
    }
}

/// A topic as listed by [`Admin::list_topics`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicListing {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// Whether the topic is internal.
    pub is_internal: bool,
}

/// One partition of a described topic.
pub type PartitionDescription = PartitionMetadata;

/// One config entry of a described resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Kafka's config name.
    pub name: String,
    /// Value, `None` when sensitive or unset.
    pub value: Option<String>,
    /// Whether the value is the default (no override on the topic).
    pub is_default: bool,
    /// Whether the config cannot be changed.
    pub read_only: bool,
    /// Whether the value is hidden.
    pub is_sensitive: bool,
}

/// A change of one topic config for [`Admin::incremental_alter_configs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// Overrides the config with this value.
    Set {
        /// Kafka's config name.
        name: String,
        /// The new value.
        value: String,
    },
    /// Removes the override: the config goes back to its default.
    Delete {
        /// Kafka's config name.
        name: String,
    },
}

impl ConfigChange {
    /// Sets `name` to `value`.
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> Self {
        ConfigChange::Set {
            name: name.into(),
            value: value.into(),
        }
    }

    /// Removes the override of `name`.
    pub fn delete(name: impl Into<String>) -> Self {
        ConfigChange::Delete { name: name.into() }
    }
}

/// A topic as described by [`Admin::describe_topics`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub topic_id: Uuid,
    /// Whether the topic is internal.
    pub is_internal: bool,
    /// Partitions with leaders and replicas.
    pub partitions: Vec<PartitionDescription>,
    /// Configs (from DescribeConfigs) by name.
    pub configs: BTreeMap<String, ConfigEntry>,
}

/// A group as listed by [`Admin::list_groups`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type (`consumer` for consumer groups; empty for KIP-848 groups on old versions).
    pub protocol_type: String,
    /// State (`Stable`, `Empty`, …) when the broker reports it.
    pub state: String,
}

/// A member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Member id.
    pub member_id: String,
    /// Static membership id, if any.
    pub group_instance_id: Option<String>,
    /// The member's client id.
    pub client_id: String,
    /// The member's host.
    pub client_host: String,
    /// The partitions the member owns, sorted (empty when the group's protocol is not
    /// Kafka's consumer protocol).
    pub assignment: Vec<TopicPartition>,
}

/// A group as described by [`Admin::describe_groups`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// State.
    pub state: String,
    /// Protocol type.
    pub protocol_type: String,
    /// Chosen protocol (assignor) name.
    pub protocol: String,
    /// Members.
    pub members: Vec<GroupMember>,
}

/// An admin client.
///
/// ```no_run
/// # async fn demo() -> strom_client::Result<()> {
/// use strom_client::{Admin, ClientConfig, NewTopic};
///
/// let admin = Admin::new(ClientConfig::new(["127.0.0.1:9092"])).await?;
/// admin.create_topics(&[NewTopic::new("events", 3, 1)]).await?;
/// for topic in admin.list_topics().await? {
///     println!("{} ({} partitions)", topic.name, topic.partitions);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    /// Connects a new client.
    pub async fn new(config: ClientConfig) -> Result<Admin> {
        Ok(Admin {
            client: Client::connect(config).await?,
        })
    }

    /// An admin client on an existing client.
    pub fn with_client(client: Client) -> Admin {
        Admin { client }
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn timeout_ms(&self) -> i32 {
        i32::try_from(self.client.config().request_timeout.as_millis()).unwrap_or(i32::MAX)
    }

    fn controller(&self) -> Option<i32> {
        let metadata = self.client.metadata();
        metadata
            .brokers
            .contains_key(&metadata.controller_id)
            .then_some(metadata.controller_id)
    }

    /// Sends to the controller when it is known, else to any broker.
    async fn send_to_controller<Req: Request>(&self, request: &Req) -> Result<Req::Response> {
        match self.controller() {
            Some(controller) => self.client.send_to(controller, request).await,
            None => self.client.send_any(request).await,
        }
    }

    /// Creates topics; fails with the first topic's error (e.g. TOPIC_ALREADY_EXISTS, code 36).
    pub async fn create_topics(&self, topics: &[NewTopic]) -> Result<()> {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(
                topics
                    .iter()
                    .map(|topic| {
                        CreatableTopic::default()
                            .with_name(topic_name(&topic.name))
                            .with_num_partitions(topic.partitions)
                            .with_replication_factor(topic.replication_factor)
                            .with_configs(
                                topic
                                    .configs
                                    .iter()
                                    .map(|(name, value)| {
                                        CreatableTopicConfig::default()
                                            .with_name(str_bytes(name))
                                            .with_value(Some(str_bytes(value)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let response = self.send_to_controller(&request).await?;
        for topic in topics {
            let result = response
                .topics
                .iter()
                .find(|r| r.name.0.as_str() == topic.name)
                .ok_or_else(|| missing("CreateTopics", &topic.name))?;
            Error::check(result.error_code, result.error_message.as_deref())?;
        }
        let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
        let _ = self.client.refresh_metadata(Some(&names)).await;
        Ok(())
    }

    /// Deletes topics by name.
    pub async fn delete_topics(&self, names: &[&str]) -> Result<()> {
        let request = DeleteTopicsRequest::default().with_timeout_ms(self.timeout_ms());
        // Version 6 names topics in `topics` (which may carry ids instead); older ones in `topic_names`.
        let request = if self
            .client
            .version_for::<DeleteTopicsRequest>(self.controller())
            .await?
            >= 6
        {
            request.with_topics(
                names
                    .iter()
                    .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                    .collect(),
            )
        } else {
            request.with_topic_names(names.iter().map(|n| topic_name(n)).collect())
        };
        let response = self.send_to_controller(&request).await?;
        for name in names {
            let result = response
                .responses
                .iter()
                .find(|r| r.name.as_ref().is_some_and(|n| n.0.as_str() == *name))
                .ok_or_else(|| missing("DeleteTopics", name))?;
            Error::check(result.error_code, result.error_message.as_deref())?;
        }
        let _ = self.client.refresh_metadata(Some(names)).await;
        Ok(())
    }

    /// Lists all topics with their partition counts, sorted by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicListing>> {
        let metadata = self.client.refresh_metadata(None).await?;
        let mut topics: Vec<TopicListing> = metadata
            .topics
            .values()
            .map(|t| TopicListing {
                name: t.name.clone(),
                partitions: t.partition_count(),
                is_internal: t.is_internal,
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// Describes topics: partitions, leaders, replicas and configs.
    pub async fn describe_topics(&self, names: &[&str]) -> Result<Vec<TopicDescription>> {
        let metadata = self.client.refresh_metadata(Some(names)).await?;
        let mut configs = self.describe_topic_configs(names).await?;
        names
            .iter()
            .map(|name| {
                let topic = metadata
                    .topics
                    .get(*name)
                    .ok_or_else(|| Error::UnknownTopic(name.to_string()))?;
                Ok(TopicDescription {
                    name: topic.name.clone(),
                    topic_id: topic.topic_id,
                    is_internal: topic.is_internal,
                    partitions: topic.partitions.clone(),
                    configs: configs.remove(*name).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The configs of topics (DescribeConfigs), by topic and config name.
    pub async fn describe_topic_configs(
        &self,
        names: &[&str],
    ) -> Result<HashMap<String, BTreeMap<String, ConfigEntry>>> {
        let request = DescribeConfigsRequest::default().with_resources(
            names
                .iter()
                .map(|n| {
                    DescribeConfigsResource::default()
                        .with_resource_type(RESOURCE_TOPIC)
                        .with_resource_name(str_bytes(n))
                        .with_configuration_keys(None)
                })
                .collect(),
        );
        let response = self.client.send_any(&request).await?;
        let mut out = HashMap::new();
        for result in response.results {
            Error::check(result.error_code, result.error_message.as_deref())?;
            let entries = result
                .configs
                .into_iter()
                .map(|c| {
                    let entry = ConfigEntry {
                        name: c.name.to_string(),
                        value: c.value.map(|v| v.to_string()),
                        // Source 5 is DEFAULT_CONFIG (v1+); -1/unknown counts as not default.
                        is_default: c.config_source == 5,
                        read_only: c.read_only,
                        is_sensitive: c.is_sensitive,
                    };
                    (entry.name.clone(), entry)
                })
                .collect();
            out.insert(result.resource_name.to_string(), entries);
        }
        for name in names {
            if !out.contains_key(*name) {
                return Err(missing("DescribeConfigs", name));
            }
        }
        Ok(out)
    }

    /// Raises a topic's partition count to `total`.
    pub async fn create_partitions(&self, topic: &str, total: i32) -> Result<()> {
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(total)]);
        let response = self.send_to_controller(&request).await?;
        let result = response
            .results
            .iter()
            .find(|r| r.name.0.as_str() == topic)
            .ok_or_else(|| missing("CreatePartitions", topic))?;
        Error::check(result.error_code, result.error_message.as_deref())?;
        let _ = self.client.refresh_metadata(Some(&[topic])).await;
        Ok(())
    }

    /// Sets or removes topic config overrides, leaving the others alone.
    ///
    /// ```no_run
    /// # async fn demo(admin: strom_client::Admin) -> strom_client::Result<()> {
    /// use strom_client::ConfigChange;
    ///
    /// let changes = [ConfigChange::set("retention.ms", "3600000"), ConfigChange::delete("cleanup.policy")];
    /// admin.incremental_alter_configs("events", &changes).await?;
    /// # Ok(()) }
    /// ```
    pub async fn incremental_alter_configs(&self, topic: &str, changes: &[ConfigChange]) -> Result<()> {
        let configs = changes
            .iter()
            .map(|change| {
                let (name, operation, value) = match change {
                    ConfigChange::Set { name, value } => (name, 0, Some(str_bytes(value))), // SET
                    ConfigChange::Delete { name } => (name, 1, None),                       // DELETE
                };
                AlterableConfig::default()
                    .with_name(str_bytes(name))
                    .with_config_operation(operation)
                    .with_value(value)
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(str_bytes(topic))
            .with_configs(configs)]);
        let response = self.client.send_any(&request).await?;
        let result = response
            .responses
            .iter()
            .find(|r| r.resource_name.as_str() == topic)
            .ok_or_else(|| missing("IncrementalAlterConfigs", topic))?;
        Error::check(result.error_code, result.error_message.as_deref())
    }

    /// Offsets of partitions: earliest, latest or by timestamp (offset -1 when no record has
    /// a timestamp at or after the one asked for).
    pub async fn list_offsets(
        &self,
        partitions: &BTreeMap<TopicPartition, OffsetSpec>,
    ) -> Result<HashMap<TopicPartition, ListedOffset>> {
        self.client.list_offsets(partitions, false).await
    }

    /// Lists the groups of every broker, sorted by id.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let metadata = self.client.refresh_metadata(Some(&[])).await?;
        let mut groups = Vec::new();
        for broker in metadata.brokers.keys() {
            let response = self.client.send_to(*broker, &ListGroupsRequest::default()).await?;
            Error::check(response.error_code, None)?;
            groups.extend(response.groups.into_iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
            }));
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        groups.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(groups)
    }

    /// The broker that coordinates `group_id` (FindCoordinator).
    pub async fn group_coordinator(&self, group_id: &str) -> Result<i32> {
        crate::coordinator::coordinator_id(&self.client, crate::coordinator::CoordinatorKind::Group, group_id).await
    }

    /// A group's committed offsets, by partition.
    ///
    /// ```no_run
    /// # async fn demo(admin: strom_client::Admin) -> strom_client::Result<()> {
    /// for (partition, committed) in admin.list_group_offsets("my-group").await? {
    ///     println!("{partition}: {}", committed.offset);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_group_offsets(&self, group_id: &str) -> Result<BTreeMap<TopicPartition, CommittedOffset>> {
        let coordinator = self.group_coordinator(group_id).await?;
        // v8+ asks for several groups at once; earlier versions for one.
        let version = self.client.version_for::<OffsetFetchRequest>(Some(coordinator)).await?;
        let request = if version >= 8 {
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(str_bytes(group_id)))
                .with_topics(None)])
        } else {
            OffsetFetchRequest::default()
                .with_group_id(GroupId(str_bytes(group_id)))
                .with_topics(None)
        };
        let response = self.client.send_to(coordinator, &request).await?;
        let mut committed: Vec<(String, i32, i64, Option<StrBytes>, i16)> = Vec::new();
        if version >= 8 {
            for group in response.groups {
                Error::check(group.error_code, None)?;
                for topic in group.topics {
                    for p in topic.partitions {
                        committed.push((
                            topic.name.0.to_string(),
                            p.partition_index,
                            p.committed_offset,
                            p.metadata,
                            p.error_code,
                        ));
                    }
                }
            }
        } else {
            Error::check(response.error_code, None)?;
            for topic in response.topics {
                for p in topic.partitions {
                    committed.push((
                        topic.name.0.to_string(),
                        p.partition_index,
                        p.committed_offset,
                        p.metadata,
                        p.error_code,
                    ));
                }
            }
        }
        let mut out = BTreeMap::new();
        for (topic, partition, offset, metadata, error_code) in committed {
            Error::check(error_code, None)?;
            if offset >= 0 {
                out.insert(
                    TopicPartition::new(topic, partition),
                    CommittedOffset {
                        offset,
                        metadata: metadata.map(|m| m.to_string()).unwrap_or_default(),
                    },
                );
            }
        }
        Ok(out)
    }

    /// Set a group's committed offsets (the group must have no members, as with
    /// `kafka-consumer-groups.sh --reset-offsets`).
    pub async fn alter_group_offsets(&self, group_id: &str, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        let coordinator = self.group_coordinator(group_id).await?;
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (key, offset) in offsets {
            topics.entry(key.topic.as_str()).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(key.partition)
                    .with_committed_offset(*offset),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(str_bytes(group_id)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(str_bytes(name)))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let response = self.client.send_to(coordinator, &request).await?;
        for topic in response.topics {
            for p in topic.partitions {
                Error::check(p.error_code, None)?;
            }
        }
        Ok(())
    }

    /// Delete groups that have no members (and their committed offsets).
    pub async fn delete_groups(&self, group_ids: &[&str]) -> Result<()> {
        for group_id in group_ids {
            let coordinator = self.group_coordinator(group_id).await?;
            let request = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes(group_id))]);
            let response = self.client.send_to(coordinator, &request).await?;
            for result in response.results {
                Error::check(result.error_code, None)?;
            }
        }
        Ok(())
    }

    /// Describes groups (state and members), asking every broker and keeping the answer of
    /// the group's coordinator.
    pub async fn describe_groups(&self, group_ids: &[&str]) -> Result<Vec<GroupDescription>> {
        let metadata = self.client.refresh_metadata(Some(&[])).await?;
        let request =
            DescribeGroupsRequest::default().with_groups(group_ids.iter().map(|g| GroupId(str_bytes(g))).collect());
        let mut found: HashMap<String, GroupDescription> = HashMap::new();
        let mut coordinators: HashMap<String, i32> = HashMap::new();
        let mut last_error = None;
        for broker in metadata.brokers.keys() {
            let response = self.client.send_to(*broker, &request).await?;
            for group in response.groups {
                if group.error_code == NOT_COORDINATOR {
                    continue;
                }
                if let Err(error) = Error::check(group.error_code, group.error_message.as_deref()) {
                    last_error = Some(error);
                    continue;
                }
                let consumer_protocol = group.protocol_type.as_str() == CONSUMER_PROTOCOL_TYPE;
                let description = GroupDescription {
                    group_id: group.group_id.0.to_string(),
                    state: group.group_state.to_string(),
                    protocol_type: group.protocol_type.to_string(),
                    protocol: group.protocol_data.to_string(),
                    members: group
                        .members
                        .into_iter()
                        .map(|m| GroupMember {
                            member_id: m.member_id.to_string(),
                            group_instance_id: m.group_instance_id.map(|i| i.to_string()),
                            client_id: m.client_id.to_string(),
                            client_host: m.client_host.to_string(),
                            // Another protocol's assignment is opaque; an undecodable one is
                            // shown as none rather than failing the whole description.
                            assignment: match consumer_protocol && !m.member_assignment.is_empty() {
                                true => sorted(decode_assignment(&m.member_assignment).unwrap_or_default().into_iter()),
                                false => Vec::new(),
                            },
                        })
                        .collect(),
                };
                coordinators.insert(description.group_id.clone(), *broker);
                found.insert(description.group_id.clone(), description);
            }
        }
        for (group_id, description) in found.iter_mut() {
            let unassigned = description.members.iter().all(|m| m.assignment.is_empty());
            if description.protocol_type == CONSUMER_PROTOCOL_TYPE && !description.members.is_empty() && unassigned {
                if let Some(coordinator) = coordinators.get(group_id) {
                    self.add_consumer_group_assignments(*coordinator, description).await;
                }
            }
        }
        group_ids
            .iter()
            .map(|id| {
                found.remove(*id).ok_or_else(|| {
                    last_error
                        .clone()
                        .unwrap_or_else(|| Error::kafka(NOT_COORDINATOR, Some("no coordinator found")))
                })
            })
            .collect()
    }

    /// KIP-848 groups report their assignments only through ConsumerGroupDescribe; a broker
    /// without it, or a group that is not such a group, leaves the description as it is.
    async fn add_consumer_group_assignments(&self, coordinator: i32, description: &mut GroupDescription) {
        let supported = self
            .client
            .version_for::<ConsumerGroupDescribeRequest>(Some(coordinator))
            .await
            .is_ok();
        if !supported {
            return;
        }
        let request =
            ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(str_bytes(&description.group_id))]);
        let Ok(response) = self.client.send_to(coordinator, &request).await else {
            return;
        };
        for group in response.groups.into_iter().filter(|g| g.error_code == 0) {
            for member in group.members {
                let owned = member
                    .assignment
                    .topic_partitions
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| (t.topic_name.0.to_string(), *p)));
                if let Some(described) = description
                    .members
                    .iter_mut()
                    .find(|m| m.member_id == member.member_id.as_str())
                {
                    described.assignment = sorted(owned);
                }
            }
        }
    }

    /// Waits until a topic's metadata shows a leader for every partition (after creation).
    pub async fn wait_for_topic(&self, name: &str, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(topic) = self.client.fetch_topic_metadata(name).await {
                if !topic.partitions.is_empty() && topic.partitions.iter().all(|p| p.leader >= 0) {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout(format!("topic {name} has no leaders after {timeout:?}")));
            }
            tokio::time::sleep(self.client.config().retry_backoff).await;
        }
    }
}

fn str_bytes(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn topic_name(value: &str) -> TopicName {
    TopicName(str_bytes(value))
}

fn missing(api: &str, name: &str) -> Error {
    Error::Protocol(format!("{api} response has no result for {name}"))
}
