//! Wire-level tests of authorized operations: Kafka's "not requested" value
//! (i32::MIN) unless the client asks, and then every operation of the resource type.

mod common;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::net::TcpStream;

use common::*;

const NOT_REQUESTED: i32 = i32::MIN;
/// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
const TOPIC: i32 = 1 << 3 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 8 | 1 << 10 | 1 << 11;
/// READ, DELETE, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
const GROUP: i32 = 1 << 3 | 1 << 6 | 1 << 8 | 1 << 10 | 1 << 11;
/// CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
const CLUSTER: i32 = 1 << 5 | 1 << 7 | 1 << 8 | 1 << 9 | 1 << 10 | 1 << 11 | 1 << 12;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn metadata(include: bool) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(s("t")))),
            MetadataRequestTopic::default().with_name(Some(TopicName(s("missing")))),
        ]))
        .with_allow_auto_topic_creation(false)
        .with_include_cluster_authorized_operations(include)
        .with_include_topic_authorized_operations(include)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_and_describe_cluster_return_operations_only_when_asked() {
    let h = start().await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    for (include, topic, cluster) in [(false, NOT_REQUESTED, NOT_REQUESTED), (true, TOPIC, CLUSTER)] {
        let response: MetadataResponse = call(&mut stream, ApiKey::Metadata, 10, &metadata(include)).await;
        assert_eq!(response.cluster_authorized_operations, cluster, "include={include}");
        let operations: Vec<(i16, i32)> = response
            .topics
            .iter()
            .map(|t| (t.error_code, t.topic_authorized_operations))
            .collect();
        assert_eq!(operations, [(0, topic), (3, topic)], "include={include}");

        let request = DescribeClusterRequest::default().with_include_cluster_authorized_operations(include);
        let response: DescribeClusterResponse = call(&mut stream, ApiKey::DescribeCluster, 1, &request).await;
        assert_eq!(response.cluster_authorized_operations, cluster, "include={include}");
    }
    // v12 has no cluster field any more; topics still carry theirs.
    let request = metadata(true).with_include_cluster_authorized_operations(false);
    let response: MetadataResponse = call(&mut stream, ApiKey::Metadata, 12, &request).await;
    assert_eq!(response.topics[0].topic_authorized_operations, TOPIC);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn described_groups_return_operations_only_when_asked() {
    let h = start().await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let heartbeat = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_member_id(s("member-1"))
        .with_rebalance_timeout_ms(5000)
        .with_subscribed_topic_names(Some(vec![TopicName(s("t"))]))
        .with_topic_partitions(Some(Vec::new()));
    let joined: ConsumerGroupHeartbeatResponse = call(&mut stream, ApiKey::ConsumerGroupHeartbeat, 1, &heartbeat).await;
    assert_eq!(joined.error_code, 0);
    let groups = vec![GroupId(s("g")), GroupId(s("missing"))];
    for (include, operations) in [(false, NOT_REQUESTED), (true, GROUP)] {
        let request = DescribeGroupsRequest::default()
            .with_groups(groups.clone())
            .with_include_authorized_operations(include);
        let response: DescribeGroupsResponse = call(&mut stream, ApiKey::DescribeGroups, 5, &request).await;
        let got: Vec<(&str, i32)> = response
            .groups
            .iter()
            .map(|g| (g.group_state.as_str(), g.authorized_operations))
            .collect();
        // Before v6 an unknown group is Dead without an error, so it gets them too.
        assert_eq!(got, [("Stable", operations), ("Dead", operations)], "include={include}");

        let request = DescribeGroupsRequest::default()
            .with_groups(groups.clone())
            .with_include_authorized_operations(include);
        let response: DescribeGroupsResponse = call(&mut stream, ApiKey::DescribeGroups, 6, &request).await;
        let got: Vec<(i16, i32)> = response
            .groups
            .iter()
            .map(|g| (g.error_code, g.authorized_operations))
            .collect();
        assert_eq!(got, [(0, operations), (69, NOT_REQUESTED)], "include={include}");

        let request = ConsumerGroupDescribeRequest::default()
            .with_group_ids(groups.clone())
            .with_include_authorized_operations(include);
        let response: ConsumerGroupDescribeResponse =
            call(&mut stream, ApiKey::ConsumerGroupDescribe, 0, &request).await;
        let got: Vec<(i16, i32)> = response
            .groups
            .iter()
            .map(|g| (g.error_code, g.authorized_operations))
            .collect();
        assert_eq!(got, [(0, operations), (69, NOT_REQUESTED)], "include={include}");
    }
}
