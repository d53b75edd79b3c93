//! Where metadata records are kept. [`MetadataStore`] is the seam the cluster's
//! metadata log (Raft) plugs into; [`TopicsJsonStore`] is today's single-node store:
//! `topics.json` in the data directory, holding each topic's name, id, partition count
//! and config overrides, rewritten whole from the image after each change (temporary
//! file, fsync, rename), so a crash leaves either the old or the new list.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::image::MetadataImage;
use super::record::{MetadataRecord, TopicRecord};
use crate::constants::TOPICS_FILE;
use crate::error::{BrokerError, Result};
use crate::files::write_atomically;

/// Keeps the metadata records durable.
pub trait MetadataStore: Send + Sync {
    /// The records that rebuild the metadata, in order.
    fn load(&self) -> Result<Vec<MetadataRecord>>;

    /// Makes `records` durable; `after` is the image with them applied (a store that
    /// keeps a snapshot instead of a log writes that). Returns once they survive a crash.
    fn append(&self, records: &[MetadataRecord], after: &MetadataImage) -> Result<()>;
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TopicsFile {
    topics: Vec<TopicRecord>,
}

/// `topics.json`: a snapshot of the image, the single-node store.
pub struct TopicsJsonStore {
    path: PathBuf,
}

impl TopicsJsonStore {
    pub fn new(data_dir: &Path) -> TopicsJsonStore {
        TopicsJsonStore {
            path: data_dir.join(TOPICS_FILE),
        }
    }
}

impl MetadataStore for TopicsJsonStore {
    fn load(&self) -> Result<Vec<MetadataRecord>> {
        match fs::read(&self.path) {
            Ok(bytes) => {
                let file: TopicsFile = serde_json::from_slice(&bytes)
                    .map_err(|e| BrokerError::Storage(format!("{}: {e}", self.path.display())))?;
                Ok(file.topics.into_iter().map(MetadataRecord::Topic).collect())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    fn append(&self, _records: &[MetadataRecord], after: &MetadataImage) -> Result<()> {
        let topics = after.topics().into_iter().cloned().collect();
        let bytes =
            serde_json::to_vec_pretty(&TopicsFile { topics }).map_err(|e| BrokerError::Storage(e.to_string()))?;
        write_atomically(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = TopicsJsonStore::new(dir.path());
        assert!(store.load().unwrap().is_empty());
        let record = MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            id: Uuid::new_v4(),
            partitions: 3,
            configs: [("retention.ms".to_string(), "5".to_string())].into(),
        });
        let image = MetadataImage::from_records([&record]).unwrap();
        store.append(std::slice::from_ref(&record), &image).unwrap();
        assert_eq!(store.load().unwrap(), vec![record]);
    }
}
