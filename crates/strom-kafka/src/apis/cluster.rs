//! DescribeCluster (the live brokers and the active controller), DescribeQuorum (the
//! metadata quorum), ElectLeaders, AddRaftVoter / RemoveRaftVoter and UnregisterBroker.
//! Also the
//! authorized-operations bit fields that Metadata, DescribeCluster, DescribeGroups and
//! ConsumerGroupDescribe return when a client asks for them.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_quorum_response::{Listener, Node, PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, BrokerId, DescribeClusterRequest, DescribeClusterResponse,
    DescribeQuorumRequest, DescribeQuorumResponse, ElectLeadersRequest, ElectLeadersResponse, RemoveRaftVoterRequest,
    RemoveRaftVoterResponse, TopicName, UnregisterBrokerRequest, UnregisterBrokerResponse,
};

use super::str_bytes;
use crate::constants::AUTHORIZED_OPERATIONS_NOT_REQUESTED;
use crate::context::{Context, Peer};
use crate::error_code::error_code;

/// Kafka's ACL operation codes (`AclOperation`); an authorized-operations field has
/// bit `1 << code` set for each allowed operation.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
enum AclOperation {
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
}

/// The resource types whose authorized operations clients ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclResource {
    Topic,
    Group,
    Cluster,
}

impl AclResource {
    /// The operations that apply to this resource type, as Kafka 4's
    /// `AclEntry.supportedOperations` lists them.
    fn operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            AclResource::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            AclResource::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            AclResource::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
        }
    }
}

/// The authorized-operations field for a resource: Kafka's "not requested" value
/// unless the client asked. Strom has no authorizer, so, as Kafka does without one,
/// every operation that applies to the resource type is allowed.
pub fn authorized_operations(requested: bool, resource: AclResource) -> i32 {
    if !requested {
        return AUTHORIZED_OPERATIONS_NOT_REQUESTED;
    }
    resource
        .operations()
        .iter()
        .fold(0, |bits, operation| bits | 1 << *operation as u8)
}

pub fn describe_cluster(context: &Context, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let brokers = context.api.brokers();
    let described = brokers
        .iter()
        // Fenced brokers only when asked (v2's include_fenced_brokers), as Kafka.
        .filter(|b| b.alive || request.include_fenced_brokers)
        .filter_map(|b| {
            let (host, port) = context.endpoint(b.node_id, &brokers)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.node_id))
                    .with_host(str_bytes(host))
                    .with_port(port)
                    .with_rack(b.rack.clone().map(str_bytes))
                    .with_is_fenced(!b.alive),
            )
        })
        .collect();
    DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(context.api.broker().cluster_id()))
        .with_controller_id(BrokerId(context.api.controller_id()))
        .with_brokers(described)
        .with_cluster_authorized_operations(authorized_operations(
            request.include_cluster_authorized_operations,
            AclResource::Cluster,
        ))
}

/// The metadata log's name in DescribeQuorum, as KRaft's.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// DescribeQuorum: the metadata quorum's leader, term and each voter's and observer's
/// replicated log position, as the leader sees them.
pub async fn describe_quorum(context: &Context, peer: &Peer, request: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let asked = request
        .topics
        .iter()
        .any(|t| t.topic_name.0.as_str() == METADATA_TOPIC && t.partitions.iter().any(|p| p.partition_index == 0));
    if !asked {
        return DescribeQuorumResponse::default().with_error_code(ResponseError::UnknownTopicOrPartition.code());
    }
    let status = match context.api.describe_quorum(&peer.caller).await {
        Ok(status) => status,
        Err(e) => {
            return DescribeQuorumResponse::default()
                .with_error_code(error_code(&e))
                .with_error_message(Some(str_bytes(e.to_string())))
        }
    };
    let replica = |id: u64| {
        let end = status
            .replication
            .get(&id)
            .copied()
            .unwrap_or(if Some(id) == status.leader {
                status.last_log_index
            } else {
                0
            });
        ReplicaState::default()
            .with_replica_id(BrokerId(id as i32))
            .with_log_end_offset(end as i64)
            .with_last_fetch_timestamp(-1)
            .with_last_caught_up_timestamp(-1)
    };
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(status.leader.map_or(-1, |l| l as i32)))
        .with_leader_epoch(status.term as i32)
        .with_high_watermark(status.last_applied as i64)
        .with_current_voters(status.voters.iter().map(|id| replica(*id)).collect())
        .with_observers(status.learners.iter().map(|id| replica(*id)).collect());
    let brokers = context.api.brokers();
    let nodes = status
        .voters
        .iter()
        .chain(&status.learners)
        .filter_map(|id| {
            let (host, port) = context.endpoint(*id as i32, &brokers)?;
            Some(
                Node::default()
                    .with_node_id(BrokerId(*id as i32))
                    .with_listeners(vec![Listener::default()
                        .with_name(str_bytes(context.config.listener_name.clone()))
                        .with_host(str_bytes(host))
                        .with_port(u16::try_from(port).unwrap_or(0))]),
            )
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(str_bytes(METADATA_TOPIC.to_string())))
            .with_partitions(vec![partition])])
        .with_nodes(nodes)
}

fn outcome(result: strom_broker::Result<()>) -> (i16, Option<kafka_protocol::protocol::StrBytes>) {
    match result {
        Ok(()) => (0, None),
        Err(e) => (error_code(&e), Some(str_bytes(e.to_string()))),
    }
}

/// AddRaftVoter (KIP-853): a running node joins the metadata quorum as a voter. The
/// controller address is its listener named like the controller listener, else its
/// first listener.
pub async fn add_raft_voter(context: &Context, peer: &Peer, request: AddRaftVoterRequest) -> AddRaftVoterResponse {
    let listener = request
        .listeners
        .iter()
        .find(|l| l.name.as_str() == "CONTROLLER")
        .or_else(|| request.listeners.first());
    let result = match listener {
        Some(l) => {
            let addr = format!("{}:{}", l.host, l.port);
            context
                .api
                .add_voter(&peer.caller, request.cluster_id.as_deref(), request.voter_id, addr)
                .await
        }
        None => Err(strom_broker::BrokerError::InvalidRequest(
            "the new voter has no listener".into(),
        )),
    };
    let (code, message) = outcome(result);
    AddRaftVoterResponse::default()
        .with_error_code(code)
        .with_error_message(message)
}

/// RemoveRaftVoter (KIP-853).
pub async fn remove_raft_voter(
    context: &Context,
    peer: &Peer,
    request: RemoveRaftVoterRequest,
) -> RemoveRaftVoterResponse {
    let result = context
        .api
        .remove_voter(&peer.caller, request.cluster_id.as_deref(), request.voter_id)
        .await;
    let (code, message) = outcome(result);
    RemoveRaftVoterResponse::default()
        .with_error_code(code)
        .with_error_message(message)
}

/// UnregisterBroker: forget a broker that is gone for good.
pub async fn unregister_broker(
    context: &Context,
    peer: &Peer,
    request: UnregisterBrokerRequest,
) -> UnregisterBrokerResponse {
    let (code, message) = outcome(context.api.unregister_broker(&peer.caller, request.broker_id.0).await);
    UnregisterBrokerResponse::default()
        .with_error_code(code)
        .with_error_message(message)
}

/// ElectLeaders: preferred (type 0) or unclean (type 1) elections, committed by the
/// active controller; null partitions mean every partition.
pub async fn elect_leaders(context: &Context, peer: &Peer, request: ElectLeadersRequest) -> ElectLeadersResponse {
    let partitions: Vec<(String, i32)> = request
        .topic_partitions
        .unwrap_or_default()
        .into_iter()
        .flat_map(|t| {
            let topic = t.topic.0.to_string();
            t.partitions.into_iter().map(move |p| (topic.clone(), p))
        })
        .collect();
    let unclean = request.election_type == 1;
    let results = match context.api.elect_leaders(&peer.caller, partitions, unclean).await {
        Ok(results) => results,
        Err(e) => return ElectLeadersResponse::default().with_error_code(error_code(&e)),
    };
    let mut by_topic: std::collections::BTreeMap<String, Vec<PartitionResult>> = std::collections::BTreeMap::new();
    for ((topic, partition), outcome) in results {
        let (code, message) = match &outcome {
            Ok(()) => (0, None),
            Err(e) => (error_code(e), Some(str_bytes(e.to_string()))),
        };
        by_topic.entry(topic).or_default().push(
            PartitionResult::default()
                .with_partition_id(partition)
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    ElectLeadersResponse::default().with_replica_election_results(
        by_topic
            .into_iter()
            .map(|(topic, results)| {
                ReplicaElectionResult::default()
                    .with_topic(TopicName(str_bytes(topic)))
                    .with_partition_result(results)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_kafkas_bit_fields() {
        // READ..ALTER_CONFIGS without CLUSTER_ACTION (9): 0b1101_1111_1000.
        assert_eq!(authorized_operations(true, AclResource::Topic), 3576);
        // READ, DELETE, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
        assert_eq!(authorized_operations(true, AclResource::Group), 3400);
        // CREATE, ALTER..IDEMPOTENT_WRITE.
        assert_eq!(authorized_operations(true, AclResource::Cluster), 8096);
        for resource in [AclResource::Topic, AclResource::Group, AclResource::Cluster] {
            assert_eq!(authorized_operations(false, resource), i32::MIN);
        }
    }
}
