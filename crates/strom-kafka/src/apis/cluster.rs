//! DescribeCluster: this node as the only broker and controller. Also the
//! authorized-operations bit fields that Metadata, DescribeCluster, DescribeGroups and
//! ConsumerGroupDescribe return when a client asks for them.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::constants::AUTHORIZED_OPERATIONS_NOT_REQUESTED;
use crate::context::Context;

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
    let node = BrokerId(context.api.broker().node_id());
    DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(context.api.broker().cluster_id()))
        .with_controller_id(node)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(node)
            .with_host(str_bytes(context.config.advertised_host.clone()))
            .with_port(context.config.advertised_port)])
        .with_cluster_authorized_operations(authorized_operations(
            request.include_cluster_authorized_operations,
            AclResource::Cluster,
        ))
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
