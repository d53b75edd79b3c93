//! The consumer's assigned partitions and their positions, shared by `poll` and the group
//! membership task (which replaces the assignment at rebalances), and how a starting
//! [`Offset`] becomes a position.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::offset::Offset;

/// A partition's fetch state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PartitionState {
    /// The next offset to fetch.
    pub position: i64,
    /// Not fetched while set.
    pub paused: bool,
}

type TopicPartition = (String, i32);

/// The assigned partitions, shared by `poll` and the group membership task.
pub(crate) type SharedAssignment = Arc<Mutex<BTreeMap<TopicPartition, PartitionState>>>;

/// Turns starting offsets into positions, asking ListOffsets for all but exact offsets.
pub(crate) async fn resolve_offsets(
    client: &Client,
    read_committed: bool,
    partitions: &[(String, i32, Offset)],
) -> Result<Vec<(TopicPartition, i64)>> {
    let mut queries = Vec::new();
    for (topic, partition, offset) in partitions {
        let timestamp = match offset {
            Offset::Beginning => -2,
            Offset::End => -1,
            Offset::Timestamp(timestamp) => *timestamp,
            Offset::At(_) => continue,
        };
        queries.push((topic.clone(), *partition, timestamp));
    }
    let mut found = if queries.is_empty() {
        HashMap::new()
    } else {
        client.list_offsets(&queries, read_committed).await?
    };
    let mut missing_timestamps = Vec::new();
    for (topic, partition, offset) in partitions {
        if matches!(offset, Offset::Timestamp(_)) && found.get(&(topic.clone(), *partition)).is_some_and(|f| f.0 < 0) {
            missing_timestamps.push((topic.clone(), *partition, -1));
        }
    }
    if !missing_timestamps.is_empty() {
        found.extend(client.list_offsets(&missing_timestamps, read_committed).await?);
    }
    let mut resolved = Vec::with_capacity(partitions.len());
    for (topic, partition, offset) in partitions {
        let key = (topic.clone(), *partition);
        let position = match offset {
            Offset::At(at) if *at >= 0 => *at,
            Offset::At(at) => return Err(Error::Config(format!("negative offset {at}"))),
            _ => found
                .get(&key)
                .map(|f| f.0)
                .filter(|o| *o >= 0)
                .ok_or_else(|| Error::Protocol(format!("no offset found for {topic}-{partition} ({offset:?})")))?,
        };
        resolved.push((key, position));
    }
    Ok(resolved)
}
