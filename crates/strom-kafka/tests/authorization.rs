//! The one authorization point: every request passes the broker's authorizer, and a
//! refusal reaches the client as Kafka's *_AUTHORIZATION_FAILED code. (Strom has no ACLs
//! yet; these tests plug in an authorizer that refuses one topic, one group and one
//! transactional id.)

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_broker::caller::{Authorizer, Caller, Operation, Resource};
use strom_broker::NewTopic;
use strom_log::RecordBatchBuilder;
use tokio::net::TcpStream;

struct RefuseSecrets;

impl Authorizer for RefuseSecrets {
    fn authorize(&self, caller: &Caller, _: Operation, resource: Resource<'_>) -> bool {
        assert_eq!(caller.principal.to_string(), "User:ANONYMOUS");
        assert_eq!(&*caller.listener, "PLAINTEXT");
        !matches!(
            resource,
            Resource::Topic("secret") | Resource::Group("secret-group") | Resource::TransactionalId("secret-txn")
        )
    }
}

fn name(s: &'static str) -> StrBytes {
    StrBytes::from_static_str(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_get_kafkas_authorization_errors_and_others_go_on() {
    let h = start_authorized(Arc::new(RefuseSecrets)).await;
    for topic in ["secret", "open"] {
        let new = NewTopic {
            name: topic.into(),
            num_partitions: 1,
            replication_factor: 1,
            ..Default::default()
        };
        h.api.broker().create_topic(new, false).unwrap();
    }
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let mut builder = RecordBatchBuilder::new();
    builder.push(1, Some(b"k"), Some(b"v"));
    let batch = Bytes::from(builder.build().unwrap());
    let produce = |topic: &'static str| {
        ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(name(topic)))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch.clone()))])])
    };
    let refused: ProduceResponse = call(&mut stream, ApiKey::Produce, 9, &produce("secret")).await;
    assert_eq!(
        refused.responses[0].partition_responses[0].error_code,
        ResponseError::TopicAuthorizationFailed.code()
    );
    let allowed: ProduceResponse = call(&mut stream, ApiKey::Produce, 9, &produce("open")).await;
    assert_eq!(allowed.responses[0].partition_responses[0].error_code, 0);

    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(name("secret")))
            .with_partitions(vec![
                FetchPartition::default().with_partition_max_bytes(1 << 20)
            ])]);
    let fetched: FetchResponse = call(&mut stream, ApiKey::Fetch, 12, &fetch).await;
    assert_eq!(
        fetched.responses[0].partitions[0].error_code,
        ResponseError::TopicAuthorizationFailed.code()
    );

    let metadata: MetadataResponse = call(
        &mut stream,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    )
    .await;
    let names: Vec<_> = metadata
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert!(
        names.contains(&"open".to_string()) && !names.contains(&"secret".to_string()),
        "{names:?}"
    );

    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(name("secret-group")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(name("consumer"));
    let joined: JoinGroupResponse = call(&mut stream, ApiKey::JoinGroup, 5, &join).await;
    assert_eq!(joined.error_code, ResponseError::GroupAuthorizationFailed.code());

    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(name("secret-txn"))))
        .with_transaction_timeout_ms(10_000);
    let init: InitProducerIdResponse = call(&mut stream, ApiKey::InitProducerId, 4, &init).await;
    assert_eq!(
        init.error_code,
        ResponseError::TransactionalIdAuthorizationFailed.code()
    );

    let find = FindCoordinatorRequest::default().with_key(name("secret-group"));
    let found: FindCoordinatorResponse = call(&mut stream, ApiKey::FindCoordinator, 3, &find).await;
    assert_eq!(found.error_code, ResponseError::GroupAuthorizationFailed.code());
    still_serves(h.addr).await;
}
