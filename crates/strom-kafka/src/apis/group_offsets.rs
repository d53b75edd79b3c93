//! Committed offsets: OffsetCommit, OffsetFetch (single and multi-group forms) and
//! OffsetDelete. Lag is what clients compute from these and ListOffsets.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use strom_broker::group::OffsetCommit;
use strom_broker::BrokerError;

use super::str_bytes;
use crate::error_code::error_code;
use crate::server::Context;

pub async fn offset_commit(context: &Context, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let mut offsets = Vec::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            offsets.push((
                topic.name.0.to_string(),
                p.partition_index,
                p.committed_offset,
                p.committed_leader_epoch,
                p.committed_metadata.as_ref().map(|m| m.to_string()),
            ));
        }
    }
    let commit = OffsetCommit {
        group_id: request.group_id.0.to_string(),
        generation_id: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        offsets,
    };
    let outcome = context.groups.commit_offsets(commit).await;
    let mut results = match &outcome {
        Ok(results) => results
            .iter()
            .map(|r| r.as_ref().err().map_or(0, error_code))
            .collect::<Vec<_>>()
            .into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let group_error = outcome.as_ref().err().map(error_code);
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let code = group_error.unwrap_or_else(|| results.next().unwrap_or(0));
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// (topic, partitions) requested, or None for every committed partition.
type Wanted = Option<Vec<(String, Vec<i32>)>>;

/// (partition, committed offset, leader epoch, metadata); -1 / "" when none.
type Committed = (i32, i64, i32, String);

fn lookup(context: &Context, group_id: &str, wanted: &Wanted) -> Vec<(String, Vec<Committed>)> {
    let mut topics: Vec<(String, Vec<Committed>)> = Vec::new();
    for (topic, partition, value) in context.groups.fetch_offsets(group_id, wanted.as_deref()) {
        let entry = match value {
            Some(v) => (partition, v.offset, v.leader_epoch, v.metadata),
            None => (partition, -1, -1, String::new()),
        };
        match topics.last_mut() {
            Some((name, partitions)) if *name == topic => partitions.push(entry),
            _ => topics.push((topic, vec![entry])),
        }
    }
    topics
}

pub fn offset_fetch(context: &Context, request: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    // require_stable (v7+): a partition with an undecided transactional commit answers
    // UNSTABLE_OFFSET_COMMIT, so read_committed consumers retry rather than start early.
    let require_stable = request.require_stable;
    let unstable = |group: &str, topic: &str, partition: i32| -> i16 {
        if require_stable && context.groups.has_pending_txn_offset(group, topic, partition) {
            ResponseError::UnstableOffsetCommit.code()
        } else {
            0
        }
    };
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|group| {
                let wanted: Wanted = group.topics.as_ref().map(|topics| {
                    topics
                        .iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                let topics = lookup(context, &group.group_id.0, &wanted)
                    .into_iter()
                    .map(|(name, partitions)| {
                        let partitions = partitions
                            .into_iter()
                            .map(|(index, offset, epoch, metadata)| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(index)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(epoch)
                                    .with_metadata(Some(str_bytes(metadata)))
                                    .with_error_code(unstable(&group.group_id.0, &name, index))
                            })
                            .collect();
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(str_bytes(name)))
                            .with_partitions(partitions)
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(group.group_id)
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted: Wanted = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let topics = lookup(context, &request.group_id.0, &wanted)
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, offset, epoch, metadata)| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(index)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(if version >= 5 { epoch } else { -1 })
                        .with_metadata(Some(str_bytes(metadata)))
                        .with_error_code(unstable(&request.group_id.0, &name, index))
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes(name)))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

pub async fn offset_delete(context: &Context, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    match context.groups.delete_offsets(&request.group_id.0, &partitions).await {
        Err(e) => OffsetDeleteResponse::default().with_error_code(error_code(&e)),
        Ok(results) => {
            let mut results = results.into_iter();
            let topics = request
                .topics
                .into_iter()
                .map(|topic| {
                    let partitions = topic
                        .partitions
                        .iter()
                        .map(|p| {
                            let code = results
                                .next()
                                .and_then(|r: Result<(), BrokerError>| r.err())
                                .map_or(0, |e| error_code(&e));
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect();
                    OffsetDeleteResponseTopic::default()
                        .with_name(topic.name)
                        .with_partitions(partitions)
                })
                .collect();
            OffsetDeleteResponse::default().with_topics(topics)
        }
    }
}
