//! The durable list of topics: `topics.json` in the data directory, holding each
//! topic's name, id, partition count and config overrides. Written whole to a
//! temporary file, fsync'ed, then renamed over the old one, so a crash leaves either
//! the old or the new list. (In a cluster this becomes the metadata log.)

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::constants::TOPICS_FILE;
use crate::error::{BrokerError, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicRecord {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TopicsFile {
    topics: Vec<TopicRecord>,
}

pub struct TopicStore {
    path: PathBuf,
}

impl TopicStore {
    pub fn new(data_dir: &Path) -> TopicStore {
        TopicStore {
            path: data_dir.join(TOPICS_FILE),
        }
    }

    pub fn load(&self) -> Result<Vec<TopicRecord>> {
        match fs::read(&self.path) {
            Ok(bytes) => {
                let file: TopicsFile = serde_json::from_slice(&bytes)
                    .map_err(|e| BrokerError::Storage(format!("{}: {e}", self.path.display())))?;
                Ok(file.topics)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    pub fn save(&self, topics: Vec<TopicRecord>) -> Result<()> {
        let mut topics = topics;
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        let bytes =
            serde_json::to_vec_pretty(&TopicsFile { topics }).map_err(|e| BrokerError::Storage(e.to_string()))?;
        write_atomically(&self.path, &bytes)
    }
}

/// Replace `path` with `bytes` so that a crash leaves the old or the new contents.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let written = fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    });
    if let Err(e) = written {
        // Leave no half-written file behind (a full disk, say).
        let _ = fs::remove_file(&tmp);
        return Err(e.into());
    }
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = TopicStore::new(dir.path());
        assert!(store.load().unwrap().is_empty());
        let record = TopicRecord {
            name: "t".into(),
            id: Uuid::new_v4(),
            partitions: 3,
            configs: [("retention.ms".to_string(), "5".to_string())].into(),
        };
        store.save(vec![record.clone()]).unwrap();
        assert_eq!(store.load().unwrap(), vec![record]);
    }
}
