//! The KIP-848 consumer group protocol: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe. Assignments travel as topic ids.

use kafka_protocol::messages::consumer_group_describe_response::{self as describe, DescribedGroup};
use kafka_protocol::messages::consumer_group_heartbeat_response::{self as heartbeat, Assignment as WireAssignment};
use kafka_protocol::messages::*;
use strom_broker::caller::Operation;
use strom_broker::group::{Assignment, ConsumerHeartbeat, ConsumerHeartbeatResult};

use super::cluster::{authorized_operations, AclResource};
use super::str_bytes;
use crate::context::{Context, Peer};
use crate::error_code::{error_code, error_message};

pub fn heartbeat(
    context: &Context,
    peer: &Peer,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
) -> ConsumerGroupHeartbeatResponse {
    // v0 lets the broker name a joining member; from v1 the client brings its own id.
    let member_id = if version == 0 && request.member_id.is_empty() && request.member_epoch == 0 {
        uuid::Uuid::new_v4().to_string()
    } else {
        request.member_id.to_string()
    };
    let owned = request.topic_partitions.as_ref().map(|topics| {
        let mut owned = Assignment::new();
        for t in topics {
            owned
                .entry(t.topic_id)
                .or_default()
                .extend(t.partitions.iter().copied());
        }
        owned
    });
    let group_id = request.group_id.0.to_string();
    let groups = context.api.group_coordinator(&peer.caller, Operation::Read, &group_id);
    let heartbeat = ConsumerHeartbeat {
        group_id,
        member_id,
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: request.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .as_ref()
            .map(|n| n.iter().map(|t| t.0.to_string()).collect()),
        subscribed_topic_regex: request.subscribed_topic_regex.as_ref().map(|s| s.to_string()),
        server_assignor: request.server_assignor.as_ref().map(|s| s.to_string()),
        owned,
        client_id: peer.client_id.clone(),
        client_host: format!("/{}", peer.address.ip()),
    };
    let result = match groups {
        Ok(groups) => groups.consumer_heartbeat(heartbeat),
        Err(e) => ConsumerHeartbeatResult {
            error: Some(e),
            member_id: heartbeat.member_id,
            ..Default::default()
        },
    };
    let response = ConsumerGroupHeartbeatResponse::default()
        .with_member_id(Some(str_bytes(result.member_id)))
        .with_member_epoch(result.member_epoch)
        .with_heartbeat_interval_ms(result.heartbeat_interval_ms);
    if let Some(e) = &result.error {
        return response
            .with_error_code(error_code(e))
            .with_error_message(error_message(e));
    }
    response.with_assignment(result.assignment.map(|a| {
        WireAssignment::default().with_topic_partitions(
            a.into_iter()
                .map(|(topic_id, partitions)| {
                    heartbeat::TopicPartitions::default()
                        .with_topic_id(topic_id)
                        .with_partitions(partitions.into_iter().collect())
                })
                .collect(),
        )
    }))
}

fn describe_assignment(context: &Context, assignment: &Assignment) -> describe::Assignment {
    describe::Assignment::default().with_topic_partitions(
        assignment
            .iter()
            .map(|(topic_id, partitions)| {
                let name = context
                    .api
                    .broker()
                    .topic_by_id(*topic_id)
                    .map(|t| t.name().to_string())
                    .unwrap_or_default();
                describe::TopicPartitions::default()
                    .with_topic_id(*topic_id)
                    .with_topic_name(TopicName(str_bytes(name)))
                    .with_partitions(partitions.iter().copied().collect())
            })
            .collect(),
    )
}

pub fn describe(
    context: &Context,
    peer: &Peer,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let requested = request.include_authorized_operations;
    let groups = request
        .group_ids
        .into_iter()
        .map(|id| {
            let described = DescribedGroup::default().with_group_id(id.clone());
            let found = context
                .api
                .group_coordinator(&peer.caller, Operation::Describe, &id.0)
                .and_then(|groups| groups.describe_consumer_group(&id.0));
            match found {
                Err(e) => described
                    .with_error_code(error_code(&e))
                    .with_error_message(error_message(&e)),
                Ok(g) => described
                    .with_authorized_operations(authorized_operations(requested, AclResource::Group))
                    .with_group_state(str_bytes(g.state))
                    .with_group_epoch(g.group_epoch)
                    .with_assignment_epoch(g.assignment_epoch)
                    .with_assignor_name(str_bytes(g.assignor))
                    .with_members(
                        g.members
                            .iter()
                            .map(|m| {
                                describe::Member::default()
                                    .with_member_id(str_bytes(m.member_id.clone()))
                                    .with_instance_id(m.instance_id.clone().map(str_bytes))
                                    .with_rack_id(m.rack_id.clone().map(str_bytes))
                                    .with_member_epoch(m.member_epoch)
                                    .with_client_id(str_bytes(m.client_id.clone()))
                                    .with_client_host(str_bytes(m.client_host.clone()))
                                    .with_subscribed_topic_names(
                                        m.subscribed_topic_names
                                            .iter()
                                            .map(|t| TopicName(str_bytes(t.clone())))
                                            .collect(),
                                    )
                                    .with_subscribed_topic_regex(m.subscribed_topic_regex.clone().map(str_bytes))
                                    .with_assignment(describe_assignment(context, &m.assignment))
                                    .with_target_assignment(describe_assignment(context, &m.target_assignment))
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
