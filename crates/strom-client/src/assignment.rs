//! The consumer's assigned partitions and their positions, shared by `poll` and the group
//! membership task (which replaces the assignment at rebalances), and how a starting
//! [`Offset`] becomes a position.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::offset::{Offset, OffsetSpec};
use crate::topic_partition::TopicPartition;

/// A partition's fetch state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PartitionState {
    /// The next offset to fetch.
    pub position: i64,
    /// Not fetched while set.
    pub paused: bool,
}

/// The assigned partitions, shared by `poll` and the group membership task.
pub(crate) type SharedAssignment = Arc<Mutex<BTreeMap<TopicPartition, PartitionState>>>;

/// Turns starting offsets into positions, asking ListOffsets for all but exact offsets.
pub(crate) async fn resolve_offsets(
    client: &Client,
    read_committed: bool,
    partitions: &BTreeMap<TopicPartition, Offset>,
) -> Result<BTreeMap<TopicPartition, i64>> {
    let mut queries = BTreeMap::new();
    for (key, offset) in partitions {
        let spec = match offset {
            Offset::Beginning => OffsetSpec::Earliest,
            Offset::End => OffsetSpec::Latest,
            Offset::Timestamp(timestamp) => OffsetSpec::Timestamp(*timestamp),
            Offset::At(_) => continue,
        };
        queries.insert(key.clone(), spec);
    }
    let mut found = if queries.is_empty() {
        HashMap::new()
    } else {
        client.list_offsets(&queries, read_committed).await?
    };
    // No record at or after the timestamp: start at the end.
    let missing_timestamps: BTreeMap<TopicPartition, OffsetSpec> = partitions
        .iter()
        .filter(|(key, offset)| matches!(offset, Offset::Timestamp(_)) && found.get(*key).is_some_and(|f| f.offset < 0))
        .map(|(key, _)| (key.clone(), OffsetSpec::Latest))
        .collect();
    if !missing_timestamps.is_empty() {
        found.extend(client.list_offsets(&missing_timestamps, read_committed).await?);
    }
    let mut resolved = BTreeMap::new();
    for (key, offset) in partitions {
        let position = match offset {
            Offset::At(at) if *at >= 0 => *at,
            Offset::At(at) => return Err(Error::Config(format!("negative offset {at}"))),
            _ => found
                .get(key)
                .map(|f| f.offset)
                .filter(|o| *o >= 0)
                .ok_or_else(|| Error::Protocol(format!("no offset found for {key} ({offset:?})")))?,
        };
        resolved.insert(key.clone(), position);
    }
    Ok(resolved)
}
