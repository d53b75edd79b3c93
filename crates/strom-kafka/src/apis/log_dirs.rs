//! DescribeLogDirs: this node's data directory (Strom has one per node), its total and
//! usable bytes, and each hosted replica's size and lag behind the leader's high
//! watermark — what `kafka-log-dirs` and admin clients read, and where `strom topic
//! describe` finds followers' lag.

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::*;

use super::str_bytes;
use crate::context::{Context, Peer};
use crate::error_code::error_code;

pub fn describe(context: &Context, peer: &Peer, request: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let only = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    let described = match context.api.describe_log_dirs(&peer.caller, only) {
        Ok(described) => described,
        Err(e) => return DescribeLogDirsResponse::default().with_error_code(error_code(&e)),
    };
    let topics = described
        .topics
        .into_iter()
        .map(|(name, replicas)| {
            DescribeLogDirsTopic::default()
                .with_name(TopicName(str_bytes(name)))
                .with_partitions(
                    replicas
                        .into_iter()
                        .map(|r| {
                            DescribeLogDirsPartition::default()
                                .with_partition_index(r.partition)
                                .with_partition_size(r.size_bytes)
                                .with_offset_lag(r.offset_lag)
                                .with_is_future_key(false)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(described.dir))
        .with_topics(topics)
        .with_total_bytes(described.total_bytes)
        .with_usable_bytes(described.usable_bytes)])
}
