//! Produce: decode, call [`BrokerApi::produce`], encode. The broker appends in request
//! order before the call returns and resolves the durability wait (acks) itself; the
//! connection defers the response while it waits. acks=0 gets no response.

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use strom_broker::api::{Acks, ProduceFuture, ProducePartition, Produced};
use strom_broker::{AppendOrigin, BrokerError, Caller, TopicRef};

use crate::context::Context;
use crate::error_code::{error_code, error_message};

/// An appended request waiting to be answered: the request's shape (topic names and
/// ids, partition indexes) and the broker's outcome.
pub struct Appended {
    shape: Vec<(kafka_protocol::messages::TopicName, uuid::Uuid, Vec<i32>)>,
    /// None: the request's acks is not one Kafka defines.
    acks: Option<Acks>,
    /// None when acks was refused.
    outcome: Option<ProduceFuture>,
}

impl Appended {
    /// The response when nothing waits for durability (None for acks=0).
    pub fn ready(self) -> Result<Option<ProduceResponse>, Self> {
        let Appended { shape, acks, outcome } = self;
        match outcome.map(ProduceFuture::ready) {
            Some(Ok(results)) => Ok(respond(shape, acks, Some(results))),
            Some(Err(future)) => Err(Appended {
                shape,
                acks,
                outcome: Some(future),
            }),
            None => Ok(respond(shape, acks, None)),
        }
    }

    /// Waits until the broker says the batches are durable enough, then answers.
    pub async fn durable(self) -> Option<ProduceResponse> {
        let Appended { shape, acks, outcome } = self;
        let results = match outcome {
            Some(future) => Some(future.durable().await),
            None => None,
        };
        respond(shape, acks, results)
    }
}

/// Verifies a transactional request's new transactions with their coordinator
/// (KIP-890; nothing to do for other requests), then appends.
pub async fn append_all(context: &Context, caller: &Caller, request: ProduceRequest, version: i16) -> Appended {
    let acks = Acks::try_from(request.acks).ok();
    let mut shape = Vec::with_capacity(request.topic_data.len());
    let mut partitions = Vec::new();
    for topic in request.topic_data {
        let topic_ref = if version >= 13 {
            TopicRef::Id(topic.topic_id)
        } else {
            TopicRef::Name(topic.name.0.to_string())
        };
        let mut indexes = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            indexes.push(data.index);
            partitions.push(ProducePartition {
                topic: topic_ref.clone(),
                partition: data.index,
                records: data.records,
                txn: Default::default(),
            });
        }
        shape.push((topic.name, topic.topic_id, indexes));
    }
    let Some(acks) = acks else {
        return Appended {
            shape,
            acks,
            outcome: None,
        };
    };
    let mut produce = strom_broker::api::ProduceRequest {
        acks,
        timeout: std::time::Duration::from_millis(request.timeout_ms.max(0) as u64),
        transactional_id: request.transactional_id.map(|id| id.0.to_string()),
        partitions,
        origin: AppendOrigin::Client,
    };
    context.api.verify_transactions(caller, &mut produce).await;
    Appended {
        shape,
        acks: Some(acks),
        outcome: Some(context.api.produce(caller, produce)),
    }
}

fn respond(
    shape: Vec<(kafka_protocol::messages::TopicName, uuid::Uuid, Vec<i32>)>,
    acks: Option<Acks>,
    results: Option<Vec<Result<Produced, BrokerError>>>,
) -> Option<ProduceResponse> {
    if acks == Some(Acks::None) {
        return None;
    }
    let acks_refused = results.is_none();
    let mut results = results.unwrap_or_default().into_iter();
    let topics = shape
        .into_iter()
        .map(|(name, topic_id, indexes)| {
            let partitions = indexes
                .into_iter()
                .map(|index| {
                    let response = PartitionProduceResponse::default().with_index(index);
                    let result = if acks_refused {
                        Err(BrokerError::InvalidRequiredAcks)
                    } else {
                        results.next().unwrap_or_else(super::missing_result)
                    };
                    match result {
                        Ok(produced) => response
                            .with_base_offset(produced.base_offset)
                            .with_log_append_time_ms(produced.log_append_time_ms)
                            .with_log_start_offset(produced.log_start_offset),
                        Err(e) => response
                            .with_error_code(error_code(&e))
                            .with_error_message(error_message(&e))
                            .with_record_errors(record_errors(&e))
                            .with_base_offset(-1),
                    }
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(name)
                .with_topic_id(topic_id)
                .with_partition_responses(partitions)
        })
        .collect();
    Some(ProduceResponse::default().with_responses(topics))
}

/// Kafka's per-record errors (v8+; older versions do not encode them).
fn record_errors(e: &BrokerError) -> Vec<BatchIndexAndErrorMessage> {
    match e {
        BrokerError::InvalidRecords(errors) => errors
            .iter()
            .map(|(index, message)| {
                BatchIndexAndErrorMessage::default()
                    .with_batch_index(*index)
                    .with_batch_index_error_message(Some(super::str_bytes(message.clone())))
            })
            .collect(),
        _ => Vec::new(),
    }
}
