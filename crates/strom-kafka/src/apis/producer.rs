//! InitProducerId (idempotent and transactional producers) and DescribeProducers.

use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::*;

use crate::context::{Context, Peer};
use crate::error_code::{error_code, error_message};
use strom_broker::txn::InitProducerId;

pub async fn init_producer_id(
    context: &Context,
    peer: &Peer,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let request = InitProducerId {
        transactional_id: request.transactional_id.map(|id| id.0.to_string()),
        transaction_timeout_ms: request.transaction_timeout_ms,
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
    };
    super::txn::init_producer_id(context, peer, request).await
}

pub fn describe_producers(
    context: &Context,
    peer: &Peer,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|index| {
                    let response = PartitionResponse::default().with_partition_index(*index);
                    match context.api.describe_producers(&peer.caller, &topic.name.0, *index) {
                        Err(e) => response
                            .with_error_code(error_code(&e))
                            .with_error_message(error_message(&e)),
                        Ok(producers) => response.with_active_producers(
                            producers
                                .into_iter()
                                .map(|p| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(p.producer_id))
                                        .with_producer_epoch(i32::from(p.producer_epoch))
                                        .with_last_sequence(p.last_sequence)
                                        .with_last_timestamp(p.last_timestamp)
                                        .with_coordinator_epoch(-1)
                                        .with_current_txn_start_offset(p.current_txn_start_offset)
                                })
                                .collect(),
                        ),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
