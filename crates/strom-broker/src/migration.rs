//! First start of a data directory from an earlier version: its topics (`topics.json`)
//! and producer id block (`producer-ids`), then its dynamic broker and group configs
//! (`dynamic-configs.json`), move into the metadata log. Each file's records are
//! committed as one batch, then the file is renamed to `<file>.migrated`; a crash in
//! between commits nothing twice, since a topic id already in the metadata is skipped,
//! and configs are committed again only as they were (this node's own) or only where
//! the metadata has none.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Deserialize;
use strom_cluster::{ConfigScope, MetadataImage, MetadataRecord, PartitionRecord, TopicRecord};
use uuid::Uuid;

use crate::constants::{DYNAMIC_CONFIGS_FILE, DYNAMIC_CONFIGS_FILE_MIGRATED, TOPICS_FILE, TOPICS_FILE_MIGRATED};
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

/// `dynamic-configs.json` as the previous version wrote it.
#[derive(Debug, Deserialize)]
struct OldDynamicConfigs {
    /// This node's dynamic broker configs.
    #[serde(default)]
    broker: BTreeMap<String, String>,
    #[serde(default)]
    cluster_default: BTreeMap<String, String>,
    /// Group id → its group configs.
    #[serde(default)]
    groups: BTreeMap<String, BTreeMap<String, String>>,
}

/// Whether the directory still has a dynamic configs file to migrate.
pub fn configs_pending(data_dir: &Path) -> bool {
    data_dir.join(DYNAMIC_CONFIGS_FILE).exists()
}

/// The records that bring `dynamic-configs.json` into the log: this node's broker
/// configs; the cluster default and each group's configs only where `image` has none,
/// since another node may have set them in the metadata already.
pub fn config_records(data_dir: &Path, node_id: i32, image: &MetadataImage) -> Result<Vec<MetadataRecord>> {
    let path = data_dir.join(DYNAMIC_CONFIGS_FILE);
    let bytes = fs::read(&path)?;
    let file: OldDynamicConfigs =
        serde_json::from_slice(&bytes).map_err(|e| BrokerError::Storage(format!("{}: {e}", path.display())))?;
    let scopes = std::iter::once((ConfigScope::Broker(node_id), file.broker, true))
        .chain(std::iter::once((
            ConfigScope::ClusterDefault,
            file.cluster_default,
            false,
        )))
        .chain(
            file.groups
                .into_iter()
                .map(|(group, configs)| (ConfigScope::Group(group), configs, false)),
        );
    Ok(scopes
        .filter(|(scope, configs, own)| !configs.is_empty() && (*own || image.configs(scope).is_none()))
        .map(|(resource, configs, _)| MetadataRecord::Configs { resource, configs })
        .collect())
}

/// Marks the configs' migration done (after their records are committed).
pub fn finish_configs(data_dir: &Path) -> Result<()> {
    fs::rename(
        data_dir.join(DYNAMIC_CONFIGS_FILE),
        data_dir.join(DYNAMIC_CONFIGS_FILE_MIGRATED),
    )?;
    fs::File::open(data_dir)?.sync_all()?;
    Ok(())
}
