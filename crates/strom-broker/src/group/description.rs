//! What DescribeGroups, ListGroups and ConsumerGroupDescribe report about groups.

use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

use super::consumer::Assignment;
use super::coordinator::{GroupCoordinator, GroupRef};
use super::GroupState;
use crate::error::{BrokerError, Result};

#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: &'static str,
    pub group_type: &'static str,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Debug, Clone)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
    pub group_type: &'static str,
}

/// A member of a KIP-848 group, for ConsumerGroupDescribe.
#[derive(Debug, Clone)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: Assignment,
    pub target_assignment: Assignment,
}

#[derive(Debug, Clone)]
pub struct ConsumerGroupDescription {
    pub group_id: String,
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<ConsumerMemberDescription>,
}

/// ListGroups' filters (KIP-518 states, KIP-848 types); an empty list lets all
/// through. Names compare case-insensitively, as Kafka does.
#[derive(Debug, Clone, Default)]
pub struct GroupListFilter {
    pub states: Vec<String>,
    pub types: Vec<String>,
}

impl GroupListFilter {
    fn matches(&self, listing: &GroupListing) -> bool {
        let any =
            |wanted: &[String], value: &str| wanted.is_empty() || wanted.iter().any(|w| w.eq_ignore_ascii_case(value));
        any(&self.states, listing.state) && any(&self.types, listing.group_type)
    }
}

impl GroupCoordinator {
    /// DescribeGroups: GROUP_ID_NOT_FOUND for a group this coordinator does not have.
    pub fn describe_group(self: &Arc<Self>, group_id: &str) -> Result<GroupDescription> {
        let group_ref = self.group(group_id)?.ok_or(BrokerError::GroupIdNotFound)?;
        let group = self.lock_at(&group_ref, Instant::now());
        if group.is_consumer_protocol() {
            let members = group
                .consumer
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: Bytes::new(),
                    assignment: Bytes::new(),
                })
                .collect();
            return Ok(GroupDescription {
                group_id: group.id.clone(),
                state: group.state_name(),
                group_type: group.group_type(),
                protocol_type: "consumer".to_string(),
                protocol_name: group.consumer.assignor.clone(),
                members,
            });
        }
        let protocol = group.classic.protocol_name.clone().unwrap_or_default();
        let members = group
            .classic
            .members
            .values()
            .map(|m| MemberDescription {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m
                    .protocols
                    .iter()
                    .find(|(n, _)| *n == protocol)
                    .map(|(_, b)| b.clone())
                    .unwrap_or_default(),
                assignment: m.assignment.clone(),
            })
            .collect();
        Ok(GroupDescription {
            group_id: group.id.clone(),
            state: group.state_name(),
            group_type: group.group_type(),
            protocol_type: group.classic.protocol_type.clone().unwrap_or_default(),
            protocol_name: if group.state() == GroupState::Stable {
                protocol
            } else {
                String::new()
            },
            members,
        })
    }

    /// ListGroups: the groups this node coordinates that pass the filter;
    /// COORDINATOR_LOAD_IN_PROGRESS while a partition is loading, as Kafka answers.
    pub fn list_groups(self: &Arc<Self>, filter: &GroupListFilter) -> Result<Vec<GroupListing>> {
        if self.log.any_loading() {
            return Err(BrokerError::CoordinatorLoadInProgress);
        }
        let groups: Vec<GroupRef> = self.groups().values().cloned().collect();
        let now = Instant::now();
        let mut listings: Vec<GroupListing> = groups
            .iter()
            .map(|g| {
                let group = self.lock_at(g, now);
                GroupListing {
                    group_id: group.id.clone(),
                    protocol_type: group
                        .classic
                        .protocol_type
                        .clone()
                        .unwrap_or_else(|| "consumer".to_string()),
                    state: group.state_name(),
                    group_type: group.group_type(),
                }
            })
            .filter(|listing| filter.matches(listing))
            .collect();
        listings.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(listings)
    }

    /// ConsumerGroupDescribe: a KIP-848 group's epochs, members and assignments.
    pub fn describe_consumer_group(self: &Arc<Self>, group_id: &str) -> Result<ConsumerGroupDescription> {
        let group_ref = self.group(group_id)?.ok_or(BrokerError::GroupIdNotFound)?;
        let group = self.lock_at(&group_ref, Instant::now());
        if !group.classic.is_empty() {
            return Err(BrokerError::GroupIdNotFound);
        }
        let consumer = &group.consumer;
        Ok(ConsumerGroupDescription {
            group_id: group.id.clone(),
            state: group.state_name(),
            group_epoch: consumer.group_epoch,
            assignment_epoch: consumer.assignment_epoch,
            assignor: consumer.assignor.clone(),
            members: consumer
                .members
                .values()
                .map(|m| ConsumerMemberDescription {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.member_epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_topic_names.iter().cloned().collect(),
                    subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                    assignment: m.assigned.clone(),
                    target_assignment: consumer.target_of(&m.member_id),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_filters_compare_names_case_insensitively_and_empty_lets_all_through() {
        let listing = GroupListing {
            group_id: "g".into(),
            protocol_type: "consumer".into(),
            state: "Stable",
            group_type: "classic",
        };
        let filter = |states: &[&str], types: &[&str]| GroupListFilter {
            states: states.iter().map(|s| s.to_string()).collect(),
            types: types.iter().map(|s| s.to_string()).collect(),
        };
        assert!(filter(&[], &[]).matches(&listing));
        assert!(filter(&["stable", "Empty"], &["Classic"]).matches(&listing));
        assert!(!filter(&["Empty"], &[]).matches(&listing));
        assert!(!filter(&[], &["consumer"]).matches(&listing));
    }
}
