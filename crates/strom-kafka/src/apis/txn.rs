//! Transaction APIs: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit,
//! DescribeTransactions and ListTransactions: decode, call the broker (which authorizes
//! the transactional id and runs the coordinator's blocking work on its pool), encode.
//! And the inter-broker WriteTxnMarkers, which coordinators on other nodes send.

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{self as describe, TopicData};
use kafka_protocol::messages::list_transactions_response;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::*;
use strom_broker::group::{OffsetCommit, OffsetCommitEntry, TopicPartition};
use strom_broker::txn::{InitProducerId, MarkerRequest, ProducerIdAndEpoch, TxnListFilter};
use strom_broker::BrokerError;

use super::str_bytes;
use crate::context::{Context, Peer};
use crate::error_code::error_code;

fn code(result: &Result<(), BrokerError>) -> i16 {
    result.as_ref().err().map_or(0, error_code)
}

/// InitProducerId, transactional or idempotent.
pub async fn init_producer_id(context: &Context, peer: &Peer, request: InitProducerId) -> InitProducerIdResponse {
    let id = request.transactional_id.clone();
    let outcome = context
        .api
        .transactions(&peer.caller, id.as_deref(), move |txns| txns.init_producer_id(&request))
        .await;
    match outcome {
        Ok(producer) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(producer.producer_id))
            .with_producer_epoch(producer.producer_epoch),
        Err(e) => InitProducerIdResponse::default()
            .with_error_code(error_code(&e))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

fn topic_results(topics: &[AddPartitionsToTxnTopic], codes: Vec<i16>) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut codes = codes.into_iter();
    topics
        .iter()
        .map(|topic| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name.clone())
                .with_results_by_partition(
                    topic
                        .partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(codes.next().unwrap_or(0))
                        })
                        .collect(),
                )
        })
        .collect()
}

/// Add (or, with `verify_only`, check) one transaction's partitions; one code each.
async fn add_one(
    context: &Context,
    peer: &Peer,
    id: String,
    producer_id: i64,
    producer_epoch: i16,
    verify_only: bool,
    topics: &[AddPartitionsToTxnTopic],
) -> Vec<i16> {
    let partitions: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| TopicPartition::new(t.name.0.to_string(), *p))
        })
        .collect();
    let count = partitions.len();
    let producer = ProducerIdAndEpoch {
        producer_id,
        producer_epoch,
    };
    let transactional_id = id.clone();
    let outcome = context
        .api
        .transactions(&peer.caller, Some(&transactional_id), move |txns| {
            if verify_only {
                txns.verify_partitions(&id, producer, &partitions)
            } else {
                txns.add_partitions(&id, producer, &partitions)
            }
        })
        .await;
    match outcome {
        Ok(results) => results.iter().map(code).collect(),
        Err(e) => vec![error_code(&e); count],
    }
}

/// AddPartitionsToTxn: v0–3 carry one transaction (clients); v4+ a batch of them
/// (KIP-890), possibly only to verify membership.
pub async fn add_partitions(
    context: &Context,
    peer: &Peer,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if version >= 4 {
        let mut results = Vec::with_capacity(request.transactions.len());
        for txn in &request.transactions {
            let codes = add_one(
                context,
                peer,
                txn.transactional_id.0.to_string(),
                txn.producer_id.0,
                txn.producer_epoch,
                txn.verify_only,
                &txn.topics,
            )
            .await;
            results.push(
                AddPartitionsToTxnResult::default()
                    .with_transactional_id(txn.transactional_id.clone())
                    .with_topic_results(topic_results(&txn.topics, codes)),
            );
        }
        return AddPartitionsToTxnResponse::default().with_results_by_transaction(results);
    }
    let codes = add_one(
        context,
        peer,
        request.v3_and_below_transactional_id.0.to_string(),
        request.v3_and_below_producer_id.0,
        request.v3_and_below_producer_epoch,
        false,
        &request.v3_and_below_topics,
    )
    .await;
    AddPartitionsToTxnResponse::default()
        .with_results_by_topic_v3_and_below(topic_results(&request.v3_and_below_topics, codes))
}

pub async fn add_offsets(context: &Context, peer: &Peer, request: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let id = request.transactional_id.0.to_string();
    let group = request.group_id.0.to_string();
    let producer = ProducerIdAndEpoch {
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
    };
    let transactional_id = id.clone();
    let result = context
        .api
        .transactions(&peer.caller, Some(&transactional_id), move |txns| {
            txns.add_offsets(&id, producer, &group)
        })
        .await;
    AddOffsetsToTxnResponse::default().with_error_code(code(&result))
}

pub async fn end_txn(context: &Context, peer: &Peer, request: EndTxnRequest) -> EndTxnResponse {
    let id = request.transactional_id.0.to_string();
    let producer = ProducerIdAndEpoch {
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
    };
    let commit = request.committed;
    let transactional_id = id.clone();
    let result = context
        .api
        .transactions(&peer.caller, Some(&transactional_id), move |txns| {
            txns.end_txn(&id, producer, commit)
        })
        .await;
    EndTxnResponse::default().with_error_code(code(&result))
}

pub async fn txn_offset_commit(
    context: &Context,
    peer: &Peer,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let mut offsets = Vec::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            offsets.push(OffsetCommitEntry {
                topic: topic.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            });
        }
    }
    let producer = ProducerIdAndEpoch {
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
    };
    let commit = OffsetCommit {
        group_id: request.group_id.0.to_string(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        offsets,
    };
    let outcome = context
        .api
        .txn_offset_commit(&peer.caller, &request.transactional_id.0, producer, commit)
        .await;
    let group_error = outcome.as_ref().err().map(error_code);
    let mut results = outcome.unwrap_or_default().into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let code = group_error.unwrap_or_else(|| results.next().map_or(0, |r| code(&r)));
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

fn topic_data(partitions: &std::collections::BTreeSet<TopicPartition>) -> Vec<TopicData> {
    let mut out: Vec<TopicData> = Vec::new();
    for tp in partitions {
        match out.last_mut() {
            Some(t) if t.topic.0.as_str() == tp.topic => t.partitions.push(tp.partition),
            _ => out.push(
                TopicData::default()
                    .with_topic(TopicName(str_bytes(tp.topic.clone())))
                    .with_partitions(vec![tp.partition]),
            ),
        }
    }
    out
}

pub fn describe_transactions(
    context: &Context,
    peer: &Peer,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = request
        .transactional_ids
        .into_iter()
        .map(|id| {
            let state = describe::TransactionState::default().with_transactional_id(id.clone());
            let described = context
                .api
                .transaction_view(&peer.caller, Some(&id.0))
                .and_then(|txns| txns.describe(&id.0));
            match described {
                Err(e) => state.with_error_code(error_code(&e)),
                Ok(None) => state.with_error_code(kafka_protocol::error::ResponseError::TransactionalIdNotFound.code()),
                Ok(Some(meta)) => state
                    .with_transaction_state(str_bytes(meta.state.name()))
                    .with_transaction_timeout_ms(meta.timeout_ms)
                    .with_transaction_start_time_ms(meta.start_ms)
                    .with_producer_id(ProducerId(meta.producer_id))
                    .with_producer_epoch(meta.producer_epoch)
                    .with_topics(topic_data(&meta.partitions)),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub fn list_transactions(context: &Context, peer: &Peer, request: ListTransactionsRequest) -> ListTransactionsResponse {
    let filter = TxnListFilter {
        states: request.state_filters.iter().map(|s| s.to_string()).collect(),
        producer_ids: request.producer_id_filters.iter().map(|p| p.0).collect(),
        min_duration_ms: request.duration_filter,
        transactional_id_pattern: request.transactional_id_pattern.as_ref().map(|p| p.to_string()),
    };
    let listing = match context.api.transaction_view(&peer.caller, None) {
        Ok(txns) => txns.list(&filter),
        Err(e) => return ListTransactionsResponse::default().with_error_code(error_code(&e)),
    };
    let listed = listing
        .transactions
        .into_iter()
        .map(|m| {
            list_transactions_response::TransactionState::default()
                .with_transactional_id(TransactionalId(str_bytes(m.transactional_id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(str_bytes(m.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(listing.unknown_states.into_iter().map(str_bytes).collect())
        .with_transaction_states(listed)
}

/// WriteTxnMarkers: one error code per marker and partition, in request order.
pub async fn write_txn_markers(
    context: &Context,
    peer: &Peer,
    request: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let markers: Vec<MarkerRequest> = request
        .markers
        .iter()
        .map(|m| MarkerRequest {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            commit: m.transaction_result,
            coordinator_epoch: m.coordinator_epoch,
            partitions: m
                .topics
                .iter()
                .flat_map(|t| {
                    t.partition_indexes
                        .iter()
                        .map(move |p| TopicPartition::new(t.name.0.to_string(), *p))
                })
                .collect(),
        })
        .collect();
    let outcome = context.api.write_txn_markers(&peer.caller, markers).await;
    let refused = outcome.as_ref().err().map(error_code);
    let mut results = outcome.unwrap_or_default().into_iter();
    let markers = request
        .markers
        .into_iter()
        .map(|marker| {
            let mut codes = results.next().unwrap_or_default().into_iter();
            let topics = marker
                .topics
                .into_iter()
                .map(|topic| {
                    let partitions = topic
                        .partition_indexes
                        .iter()
                        .map(|p| {
                            let code = refused.unwrap_or_else(|| {
                                codes
                                    .next()
                                    .unwrap_or_else(super::missing_result)
                                    .err()
                                    .map_or(0, |e| error_code(&e))
                            });
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(*p)
                                .with_error_code(code)
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default()
                        .with_name(topic.name)
                        .with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics)
        })
        .collect();
    WriteTxnMarkersResponse::default().with_markers(markers)
}
