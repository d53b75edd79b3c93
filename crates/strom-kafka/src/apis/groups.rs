//! Group membership APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, DescribeGroups, ListGroups and DeleteGroups (the classic protocol).

use std::collections::BTreeSet;

use bytes::{Buf, Bytes};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use strom_broker::api::CoordinatorKind;
use strom_broker::caller::Operation;
use strom_broker::group::{GroupListFilter, JoinGroup, JoinResult, LeavingMember, SyncGroup, SyncResult};
use strom_broker::BrokerError;

use super::cluster::{authorized_operations, AclResource};
use super::str_bytes;
use crate::context::{Context, Peer};
use crate::error_code::error_code;

const KEY_TYPE_GROUP: i8 = 0;

fn code(result: &Result<(), BrokerError>) -> i16 {
    result.as_ref().err().map_or(0, error_code)
}

pub async fn find_coordinator(
    context: &Context,
    peer: &Peer,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if version >= 4 {
        request.coordinator_keys.clone()
    } else {
        vec![request.key.clone()]
    };
    let kind = if request.key_type == KEY_TYPE_GROUP {
        CoordinatorKind::Group
    } else {
        CoordinatorKind::Transaction
    };
    let names: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    let found = context.api.find_coordinator(&peer.caller, kind, &names).await;
    let brokers = context.api.brokers();
    // Each key's coordinator node and where this listener's clients reach it.
    let answers: Vec<(i16, Option<StrBytes>, i32, StrBytes, i32)> = found
        .iter()
        .map(|result| {
            let endpoint =
                result
                    .as_ref()
                    .map_err(|e| e.clone())
                    .and_then(|node| match context.endpoint(*node, &brokers) {
                        Some((host, port)) => Ok((*node, host, port)),
                        None => Err(std::sync::Arc::new(BrokerError::CoordinatorNotAvailable)),
                    });
            match endpoint {
                Ok((node, host, port)) => (0, None, node, str_bytes(host), port),
                Err(e) => (
                    error_code(&e),
                    Some(str_bytes(e.to_string())),
                    -1,
                    StrBytes::default(),
                    -1,
                ),
            }
        })
        .collect();
    let answer = |index: usize| {
        answers
            .get(index)
            .cloned()
            .unwrap_or((-1, None, -1, StrBytes::default(), -1))
    };
    if version >= 4 {
        let coordinators = keys
            .iter()
            .enumerate()
            .map(|(index, key)| {
                let (error, message, node, host, port) = answer(index);
                Coordinator::default()
                    .with_key(key.clone())
                    .with_error_code(error)
                    .with_error_message(message)
                    .with_node_id(BrokerId(node))
                    .with_host(host)
                    .with_port(port)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let (error, message, node, host, port) = answer(0);
    let response = FindCoordinatorResponse::default().with_error_code(error);
    let response = if version >= 1 {
        response.with_error_message(message)
    } else {
        response
    };
    response.with_node_id(BrokerId(node)).with_host(host).with_port(port)
}

/// Topics in a consumer-protocol subscription (version-prefixed ConsumerProtocolSubscription).
fn subscribed_topics(protocol_type: &str, protocols: &[(String, Bytes)]) -> BTreeSet<String> {
    if protocol_type != "consumer" {
        return BTreeSet::new();
    }
    let Some((_, metadata)) = protocols.first() else {
        return BTreeSet::new();
    };
    let mut buf = metadata.clone();
    if buf.remaining() < 2 {
        return BTreeSet::new();
    }
    let version = buf.get_i16().clamp(0, 3);
    match ConsumerProtocolSubscription::decode(&mut buf, version) {
        Ok(subscription) => subscription.topics.iter().map(|t| t.to_string()).collect(),
        Err(_) => BTreeSet::new(),
    }
}

pub async fn join_group(context: &Context, peer: &Peer, request: JoinGroupRequest, version: i16) -> JoinGroupResponse {
    let protocols: Vec<(String, Bytes)> = request
        .protocols
        .iter()
        .map(|p| (p.name.to_string(), p.metadata.clone()))
        .collect();
    let protocol_type = request.protocol_type.to_string();
    let join = JoinGroup {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: peer.client_id.clone(),
        client_host: format!("/{}", peer.address.ip()),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: it equals the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        subscribed_topics: subscribed_topics(&protocol_type, &protocols),
        protocol_type,
        protocols,
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let result = match context
        .api
        .group_coordinator(&peer.caller, Operation::Read, &join.group_id)
    {
        Ok(groups) => groups.join_group(join).await,
        Err(e) => JoinResult::error(e, &join.member_id),
    };
    let error = result.error.as_ref().map_or(0, error_code);
    // Before v7 the protocol name is not nullable.
    let protocol_name = if version >= 7 {
        result.protocol_name
    } else {
        Some(result.protocol_name.unwrap_or_default())
    };
    JoinGroupResponse::default()
        .with_error_code(error)
        .with_generation_id(result.generation_id)
        .with_protocol_type(if version >= 7 {
            result.protocol_type.map(str_bytes)
        } else {
            None
        })
        .with_protocol_name(protocol_name.map(str_bytes))
        .with_leader(str_bytes(result.leader))
        .with_skip_assignment(result.skip_assignment && version >= 9)
        .with_member_id(str_bytes(result.member_id))
        .with_members(
            result
                .members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(str_bytes))
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}

pub async fn sync_group(context: &Context, peer: &Peer, request: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let sync = SyncGroup {
        group_id: request.group_id.0.to_string(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        protocol_type: request.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: request.protocol_name.as_ref().map(|s| s.to_string()),
        assignments: request
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    let result = match context
        .api
        .group_coordinator(&peer.caller, Operation::Read, &sync.group_id)
    {
        Ok(groups) => groups.sync_group(sync).await,
        Err(e) => SyncResult::error(e),
    };
    let response = SyncGroupResponse::default()
        .with_error_code(result.error.as_ref().map_or(0, error_code))
        .with_assignment(result.assignment);
    if version >= 5 {
        response
            .with_protocol_type(result.protocol_type.map(str_bytes))
            .with_protocol_name(result.protocol_name.map(str_bytes))
    } else {
        response
    }
}

pub fn heartbeat(context: &Context, peer: &Peer, request: HeartbeatRequest) -> HeartbeatResponse {
    let result = context
        .api
        .group_coordinator(&peer.caller, Operation::Read, &request.group_id.0)
        .and_then(|groups| {
            groups.heartbeat(
                &request.group_id.0,
                &request.member_id,
                request.group_instance_id.as_deref(),
                request.generation_id,
            )
        });
    HeartbeatResponse::default().with_error_code(code(&result))
}

pub fn leave_group(context: &Context, peer: &Peer, request: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let members: Vec<LeavingMember> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: request.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let left = context
        .api
        .group_coordinator(&peer.caller, Operation::Read, &request.group_id.0)
        .and_then(|groups| groups.leave_group(&request.group_id.0, &members));
    match left {
        Err(e) => LeaveGroupResponse::default().with_error_code(error_code(&e)),
        Ok(results) if version >= 3 => LeaveGroupResponse::default().with_members(
            members
                .into_iter()
                .zip(results)
                .map(|(member, result)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(member.member_id))
                        .with_group_instance_id(member.group_instance_id.map(str_bytes))
                        .with_error_code(code(&result))
                })
                .collect(),
        ),
        Ok(results) => LeaveGroupResponse::default().with_error_code(results.first().map_or(0, code)),
    }
}

pub fn describe_groups(
    context: &Context,
    peer: &Peer,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let requested = version >= 3 && request.include_authorized_operations;
    let groups = request
        .groups
        .iter()
        .map(|id| {
            let described = DescribedGroup::default().with_group_id(id.clone());
            let found = context
                .api
                .group_coordinator(&peer.caller, Operation::Describe, id)
                .and_then(|groups| groups.describe_group(id));
            let mut described = match found {
                Ok(g) => described
                    .with_group_state(str_bytes(g.state))
                    .with_protocol_type(str_bytes(g.protocol_type))
                    .with_protocol_data(str_bytes(g.protocol_name))
                    .with_members(
                        g.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(m.member_id))
                                    .with_group_instance_id(if version >= 4 {
                                        m.group_instance_id.map(str_bytes)
                                    } else {
                                        None
                                    })
                                    .with_client_id(str_bytes(m.client_id))
                                    .with_client_host(str_bytes(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
                // Kafka answers an unknown group as Dead; v6 adds GROUP_ID_NOT_FOUND.
                Err(BrokerError::GroupIdNotFound) if version >= 6 => described
                    .with_group_state(str_bytes("Dead"))
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(str_bytes(format!("Group {} not found.", id.0)))),
                Err(BrokerError::GroupIdNotFound) => described.with_group_state(str_bytes("Dead")),
                Err(e) => described.with_error_code(error_code(&e)),
            };
            // Kafka fills them in for every group answered without an error.
            described.authorized_operations =
                authorized_operations(requested && described.error_code == 0, AclResource::Group);
            described
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub fn list_groups(context: &Context, peer: &Peer, request: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let filter = GroupListFilter {
        states: request.states_filter.iter().map(|s| s.to_string()).collect(),
        types: request.types_filter.iter().map(|s| s.to_string()).collect(),
    };
    let listed = match context
        .api
        .group_listing(&peer.caller)
        .and_then(|groups| groups.list_groups(&filter))
    {
        Ok(listed) => listed,
        Err(e) => return ListGroupsResponse::default().with_error_code(error_code(&e)),
    };
    let groups = listed
        .into_iter()
        .map(|g| {
            let listed = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(g.group_id)))
                .with_protocol_type(str_bytes(g.protocol_type));
            let listed = if version >= 4 {
                listed.with_group_state(str_bytes(g.state))
            } else {
                listed
            };
            if version >= 5 {
                listed.with_group_type(str_bytes(g.group_type))
            } else {
                listed
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn delete_groups(context: &Context, peer: &Peer, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group in request.groups_names {
        let result = match context.api.group_coordinator(&peer.caller, Operation::Delete, &group.0) {
            Ok(groups) => groups.delete_group(&group.0).await,
            Err(e) => Err(e),
        };
        results.push(
            delete_groups_response::DeletableGroupResult::default()
                .with_group_id(group)
                .with_error_code(code(&result)),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
