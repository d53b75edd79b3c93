//! Committed offsets: OffsetCommit, OffsetFetch (single and multi-group forms) and
//! OffsetDelete. Lag is what clients compute from these and ListOffsets.

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use strom_broker::caller::Operation;
use strom_broker::group::{
    FetchedOffset, OffsetCommit, OffsetCommitEntry, OffsetFetch, TopicPartition, TopicPartitions,
};
use strom_broker::BrokerError;

use super::str_bytes;
use crate::context::{Context, Peer};
use crate::error_code::error_code;

pub async fn offset_commit(context: &Context, peer: &Peer, request: OffsetCommitRequest) -> OffsetCommitResponse {
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
    let commit = OffsetCommit {
        group_id: request.group_id.0.to_string(),
        generation_id: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        offsets,
    };
    let outcome = match context
        .api
        .group_coordinator(&peer.caller, Operation::Read, &commit.group_id)
    {
        Ok(groups) => groups.commit_offsets(commit).await,
        Err(e) => Err(e),
    };
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

/// The group's answer, grouped by topic in the broker's order; or the group's error.
fn fetch(
    context: &Context,
    peer: &Peer,
    group_id: &str,
    topics: Option<Vec<TopicPartitions>>,
    require_stable: bool,
) -> Result<Vec<(String, Vec<FetchedOffset>)>, i16> {
    let request = OffsetFetch {
        group_id: group_id.to_string(),
        topics,
        require_stable,
    };
    let fetched = context
        .api
        .group_coordinator(&peer.caller, Operation::Describe, group_id)
        .and_then(|groups| groups.fetch_offsets(&request))
        .map_err(|e| error_code(&e))?;
    let mut topics: Vec<(String, Vec<FetchedOffset>)> = Vec::new();
    for offset in fetched {
        match topics.last_mut() {
            Some((name, partitions)) if *name == offset.topic => partitions.push(offset),
            _ => topics.push((offset.topic.clone(), vec![offset])),
        }
    }
    Ok(topics)
}

/// (committed offset, leader epoch, metadata, error code); -1 / "" when none.
fn committed(offset: FetchedOffset) -> (i64, i32, String, i16) {
    let code = offset.error.as_ref().map_or(0, error_code);
    match offset.committed {
        Some(v) => (v.offset, v.leader_epoch, v.metadata, code),
        None => (-1, -1, String::new(), code),
    }
}

fn wanted<'a>(names: impl Iterator<Item = (&'a TopicName, &'a Vec<i32>)>) -> Vec<TopicPartitions> {
    names
        .map(|(name, partitions)| TopicPartitions {
            topic: name.0.to_string(),
            partitions: partitions.clone(),
        })
        .collect()
}

pub fn offset_fetch(context: &Context, peer: &Peer, request: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|group| {
                let topics = group
                    .topics
                    .as_ref()
                    .map(|topics| wanted(topics.iter().map(|t| (&t.name, &t.partition_indexes))));
                let response = OffsetFetchResponseGroup::default().with_group_id(group.group_id.clone());
                match fetch(context, peer, &group.group_id.0, topics, request.require_stable) {
                    Err(code) => response.with_error_code(code),
                    Ok(found) => response.with_topics(
                        found
                            .into_iter()
                            .map(|(name, partitions)| {
                                let partitions = partitions
                                    .into_iter()
                                    .map(|p| {
                                        let index = p.partition;
                                        let (offset, epoch, metadata, code) = committed(p);
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(index)
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(epoch)
                                            .with_metadata(Some(str_bytes(metadata)))
                                            .with_error_code(code)
                                    })
                                    .collect();
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(str_bytes(name)))
                                    .with_partitions(partitions)
                            })
                            .collect(),
                    ),
                }
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = request
        .topics
        .as_ref()
        .map(|topics| wanted(topics.iter().map(|t| (&t.name, &t.partition_indexes))));
    let found = match fetch(context, peer, &request.group_id.0, topics, request.require_stable) {
        Ok(found) => found,
        // v2+ carries the group's error; before, each requested partition does.
        Err(code) if version >= 2 => return OffsetFetchResponse::default().with_error_code(code),
        Err(code) => {
            let topics = request.topics.unwrap_or_default().into_iter().map(|t| {
                let partitions = t
                    .partition_indexes
                    .iter()
                    .map(|index| {
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(*index)
                            .with_committed_offset(-1)
                            .with_error_code(code)
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            });
            return OffsetFetchResponse::default().with_topics(topics.collect());
        }
    };
    let topics = found
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|p| {
                    let index = p.partition;
                    let (offset, epoch, metadata, code) = committed(p);
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(index)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(if version >= 5 { epoch } else { -1 })
                        .with_metadata(Some(str_bytes(metadata)))
                        .with_error_code(code)
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes(name)))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

pub async fn offset_delete(context: &Context, peer: &Peer, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let partitions: Vec<TopicPartition> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| TopicPartition::new(t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let deleted = match context
        .api
        .group_coordinator(&peer.caller, Operation::Delete, &request.group_id.0)
    {
        Ok(groups) => groups.delete_offsets(&request.group_id.0, &partitions).await,
        Err(e) => Err(e),
    };
    match deleted {
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
