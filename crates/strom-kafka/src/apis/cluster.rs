//! DescribeCluster: this node as the only broker and controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::constants::CLUSTER_AUTHORIZED_OPERATIONS_OMITTED;
use crate::server::Context;

pub fn describe_cluster(context: &Context, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let node = BrokerId(context.broker.node_id());
    DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(context.broker.cluster_id()))
        .with_controller_id(node)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(node)
            .with_host(str_bytes(context.config.advertised_host.clone()))
            .with_port(context.config.advertised_port)])
        .with_cluster_authorized_operations(CLUSTER_AUTHORIZED_OPERATIONS_OMITTED)
}
