//! Produce: validate and append each partition's batches as they arrived (only their
//! headers patched, in copies; the records go from the request buffer to the file), then, for acks=all, wait for the group-committed
//! fsync before answering. acks=0 gets no response.
//!
//! The append runs in request order on the connection; the fsync wait does not hold the
//! connection: the connection reads and appends the next requests meanwhile (so one
//! fsync covers many pipelined batches) and answers in order.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use strom_broker::{BrokerError, Partition, Topic};

use super::blocking_on;
use crate::error_code::{error_code, error_message};
use crate::server::Context;

/// What an appended Produce request still needs before it is answered.
pub struct Appended {
    /// The response, with the outcome of every append.
    response: Option<ProduceResponse>,
    /// acks=all partitions to fsync: (topic index, partition index, partition).
    to_flush: Vec<(usize, usize, Arc<Partition>)>,
}

impl Appended {
    /// The response when nothing waits for an fsync.
    pub fn ready(self) -> Result<Option<ProduceResponse>, Self> {
        if self.to_flush.is_empty() {
            Ok(self.response)
        } else {
            Err(self)
        }
    }

    /// Waits for the fsync of every acks=all partition (group commit), then answers;
    /// a failed fsync fails its partition.
    pub async fn durable(self, broker: Arc<strom_broker::Broker>) -> Option<ProduceResponse> {
        let Appended { mut response, to_flush } = self;
        if to_flush.is_empty() {
            return response;
        }
        let partitions: Vec<Arc<Partition>> = to_flush.iter().map(|(_, _, p)| p.clone()).collect();
        let results = blocking_on(broker, move |_| {
            partitions.iter().map(|p| p.flush()).collect::<Vec<_>>()
        })
        .await;
        let responses = response.as_mut().map(|r| &mut r.responses);
        if let Some(responses) = responses {
            for ((topic, partition, _), result) in to_flush.iter().zip(results) {
                if let Err(e) = result {
                    tracing::error!(error = %e, "fsync failed");
                    let response = &mut responses[*topic].partition_responses[*partition];
                    response.error_code = error_code(&e);
                    response.error_message = error_message(&e);
                }
            }
        }
        response
    }
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

/// Appends every partition's batches (synchronously, in request order).
pub fn append_all(context: &Context, request: ProduceRequest, version: i16) -> Appended {
    let acks = request.acks;
    let valid_acks = matches!(acks, -1..=1);
    let mut to_flush: Vec<(usize, usize, Arc<Partition>)> = Vec::new();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic_data in request.topic_data {
        let topic = if version >= 13 {
            context.broker.topic_by_id(topic_data.topic_id)
        } else {
            context.broker.topic(&topic_data.name.0)
        };
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let index = data.index;
            let result = if valid_acks {
                append(context, topic.as_deref(), index, data.records, version)
            } else {
                Err(None)
            };
            let response = PartitionProduceResponse::default().with_index(index);
            partitions.push(match result {
                Ok((partition, strom_broker::Appended { info, flush_due })) => {
                    if acks == -1 || flush_due {
                        to_flush.push((responses.len(), partitions.len(), partition.clone()));
                    }
                    response
                        .with_base_offset(info.base_offset)
                        .with_log_append_time_ms(info.log_append_time_ms)
                        .with_log_start_offset(partition.log_start_offset())
                }
                Err(Some(e)) => {
                    tracing::debug!(partition = index, error = %e, "produce rejected");
                    response
                        .with_error_code(error_code(&e))
                        .with_error_message(error_message(&e))
                        .with_record_errors(record_errors(&e))
                        .with_base_offset(-1)
                }
                Err(None) => response
                    .with_error_code(ResponseError::InvalidRequiredAcks.code())
                    .with_base_offset(-1),
            });
        }
        let unknown_id = version >= 13 && topic.is_none();
        partitions
            .iter_mut()
            .filter(|p| unknown_id && p.error_code != 0)
            .for_each(|p| {
                p.error_code = ResponseError::UnknownTopicId.code();
            });
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_topic_id(topic_data.topic_id)
                .with_partition_responses(partitions),
        );
    }
    let response = (acks != 0).then(|| ProduceResponse::default().with_responses(responses));
    Appended { response, to_flush }
}

type AppendResult = Result<(Arc<Partition>, strom_broker::Appended), Option<BrokerError>>;

fn append(
    context: &Context,
    topic: Option<&Topic>,
    index: i32,
    records: Option<bytes::Bytes>,
    version: i16,
) -> AppendResult {
    let topic = topic.ok_or(BrokerError::UnknownTopicOrPartition)?;
    let partition = topic.partition(index).ok_or(BrokerError::UnknownTopicOrPartition)?;
    let records = records
        .filter(|r| !r.is_empty())
        .ok_or_else(|| BrokerError::InvalidRecord("no records".into()))?;
    let _ = version;
    // No copy: the log writes patched copies of the batch headers and the records
    // straight from the request buffer.
    let appended = context
        .broker
        .append(topic, &partition, &records, strom_broker::AppendOrigin::Client)?;
    Ok((partition, appended))
}
