//! InitProducerId (idempotent producers) and DescribeProducers.

use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::*;

use super::blocking;
use crate::error_code::{error_code, error_message};
use crate::server::Context;

pub async fn init_producer_id(context: &Context, request: InitProducerIdRequest) -> InitProducerIdResponse {
    if let Some(id) = &request.transactional_id {
        return super::txn::init_producer_id(context, id.0.to_string(), request.transaction_timeout_ms).await;
    }
    // KIP-360: an idempotent producer may ask for its epoch to be bumped.
    let (pid, epoch) = (request.producer_id.0, request.producer_epoch);
    if pid >= 0 && (0..i16::MAX - 1).contains(&epoch) {
        return InitProducerIdResponse::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch + 1);
    }
    match blocking(context, |broker| broker.next_producer_id()).await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => InitProducerIdResponse::default()
            .with_error_code(error_code(&e))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

pub fn describe_producers(context: &Context, request: DescribeProducersRequest) -> DescribeProducersResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|index| {
                    let response = PartitionResponse::default().with_partition_index(*index);
                    match context.broker.partition(&topic.name.0, *index) {
                        Err(e) => response
                            .with_error_code(error_code(&e))
                            .with_error_message(error_message(&e)),
                        Ok(partition) => response.with_active_producers(
                            partition
                                .producer_states()
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
