//! Group configs (Kafka 4.0's GROUP config resource): a consumer-protocol group takes its
//! heartbeat interval and session timeout from them.

mod common;

use common::*;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::net::TcpStream;

const GROUP_RESOURCE: i8 = 32;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn set(group: &str, name: &str, value: &str) -> IncrementalAlterConfigsRequest {
    IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(GROUP_RESOURCE)
        .with_resource_name(s(group))
        .with_configs(vec![AlterableConfig::default()
            .with_name(s(name))
            .with_config_operation(0)
            .with_value(Some(s(value)))])])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_group_takes_its_heartbeat_interval_from_its_group_config() {
    let h = start().await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let altered: IncrementalAlterConfigsResponse = call(
        &mut stream,
        ApiKey::IncrementalAlterConfigs,
        0,
        &set("configured", "consumer.heartbeat.interval.ms", "6000"),
    )
    .await;
    assert_eq!(altered.responses[0].error_code, 0);

    let join = |group: &str| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(s("m1"))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(5000)
            .with_subscribed_topic_names(Some(vec![TopicName(s("t"))]))
            .with_topic_partitions(Some(Vec::new()))
    };
    let joined: ConsumerGroupHeartbeatResponse =
        call(&mut stream, ApiKey::ConsumerGroupHeartbeat, 0, &join("configured")).await;
    assert_eq!((joined.error_code, joined.heartbeat_interval_ms), (0, 6000));
    let other: ConsumerGroupHeartbeatResponse =
        call(&mut stream, ApiKey::ConsumerGroupHeartbeat, 0, &join("plain")).await;
    assert_eq!(other.error_code, 0);
    assert_ne!(
        other.heartbeat_interval_ms, 1234,
        "other groups keep the broker's value"
    );

    // Described with its source (GROUP_CONFIG = 8), the rest from the broker.
    let describe = DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
        .with_resource_type(GROUP_RESOURCE)
        .with_resource_name(s("configured"))
        .with_configuration_keys(None)]);
    let described: DescribeConfigsResponse = call(&mut stream, ApiKey::DescribeConfigs, 4, &describe).await;
    let configs = &described.results[0].configs;
    let heartbeat = configs
        .iter()
        .find(|c| c.name.as_str() == "consumer.heartbeat.interval.ms")
        .unwrap();
    assert_eq!(
        (heartbeat.value.as_ref().unwrap().as_str(), heartbeat.config_source),
        ("6000", 8)
    );
    let session = configs
        .iter()
        .find(|c| c.name.as_str() == "consumer.session.timeout.ms")
        .unwrap();
    assert_eq!(session.config_source, 5);

    // Outside the broker's bounds (group.consumer.{min,max}.*), or an unknown name: INVALID_CONFIG.
    for (name, value) in [
        ("consumer.heartbeat.interval.ms", "999999999"),
        ("consumer.heartbeat.interval.ms", "1"),
        ("consumer.session.timeout.ms", "1"),
        ("consumer.nonsense", "1"),
    ] {
        let refused: IncrementalAlterConfigsResponse = call(
            &mut stream,
            ApiKey::IncrementalAlterConfigs,
            0,
            &set("configured", name, value),
        )
        .await;
        assert_eq!(refused.responses[0].error_code, 40, "{name}");
    }
}
