//! First start of a data directory from the single-node version: its topics
//! (`topics.json`) and producer id block (`producer-ids`) move into the metadata log.
//! The records are committed as one batch, then `topics.json` is renamed to
//! `topics.json.migrated`; a crash in between commits nothing twice, since a topic id
//! already in the metadata is skipped.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Deserialize;
use strom_cluster::{MetadataImage, MetadataRecord, PartitionRecord, TopicRecord};
use uuid::Uuid;

use crate::constants::{TOPICS_FILE, TOPICS_FILE_MIGRATED};
use crate::error::{BrokerError, Result};
use crate::producer_id::PRODUCER_IDS_FILE;

/// A topic as `topics.json` listed it.
#[derive(Debug, Deserialize)]
struct OldTopic {
    name: String,
    id: Uuid,
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct OldTopicsFile {
    topics: Vec<OldTopic>,
}

/// Whether the directory still has single-node metadata to migrate.
pub fn pending(data_dir: &Path) -> bool {
    data_dir.join(TOPICS_FILE).exists()
}

/// The records that bring the single-node metadata into the log: each topic not yet in
/// `image` (and not deleted, per `was_deleted`) with its partitions on `node_id`, and
/// the producer ids handed out so far.
pub fn records(
    data_dir: &Path,
    node_id: i32,
    image: &MetadataImage,
    was_deleted: impl Fn(Uuid) -> bool,
) -> Result<Vec<MetadataRecord>> {
    let path = data_dir.join(TOPICS_FILE);
    let bytes = fs::read(&path)?;
    let file: OldTopicsFile =
        serde_json::from_slice(&bytes).map_err(|e| BrokerError::Storage(format!("{}: {e}", path.display())))?;
    let mut records = Vec::new();
    for topic in file.topics {
        if image.topic_by_id(topic.id).is_some() || was_deleted(topic.id) {
            continue;
        }
        records.push(MetadataRecord::Topic(TopicRecord {
            name: topic.name,
            id: topic.id,
            configs: topic.configs,
        }));
        for partition in 0..topic.partitions {
            records.push(MetadataRecord::Partition(PartitionRecord {
                topic_id: topic.id,
                partition,
                replicas: vec![node_id],
                isr: vec![node_id],
                leader: node_id,
                leader_epoch: 0,
                partition_epoch: 0,
            }));
        }
    }
    let block_end = match fs::read_to_string(data_dir.join(PRODUCER_IDS_FILE)) {
        Ok(text) => text.trim().parse::<i64>().unwrap_or(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e.into()),
    };
    if block_end > image.next_producer_id() {
        // Ids below the old block's end may be in use by producers: never hand them out.
        records.push(MetadataRecord::ProducerIds {
            node_id,
            first: image.next_producer_id(),
            next: block_end,
        });
    }
    Ok(records)
}

/// Marks the migration done (after its records are committed).
pub fn finish(data_dir: &Path) -> Result<()> {
    fs::rename(data_dir.join(TOPICS_FILE), data_dir.join(TOPICS_FILE_MIGRATED))?;
    let _ = fs::remove_file(data_dir.join(PRODUCER_IDS_FILE));
    fs::File::open(data_dir)?.sync_all()?;
    Ok(())
}
