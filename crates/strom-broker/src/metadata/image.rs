//! The metadata image: the topics, their ids, partition counts and config overrides,
//! as the records applied so far say. Applying checks each record against the image,
//! so a record that would make it inconsistent (a second topic of one name, a shrinking
//! partition count) is refused and changes nothing.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::record::{MetadataRecord, TopicRecord};
use crate::error::{BrokerError, Result};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataImage {
    topics: BTreeMap<Uuid, TopicRecord>,
    ids_by_name: HashMap<String, Uuid>,
}

impl MetadataImage {
    /// The image the records build, in order.
    pub fn from_records<'a>(records: impl IntoIterator<Item = &'a MetadataRecord>) -> Result<MetadataImage> {
        let mut image = MetadataImage::default();
        for record in records {
            image.apply(record)?;
        }
        Ok(image)
    }

    pub fn topic(&self, name: &str) -> Option<&TopicRecord> {
        self.topics.get(self.ids_by_name.get(name)?)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&TopicRecord> {
        self.topics.get(&id)
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> Vec<&TopicRecord> {
        let mut topics: Vec<_> = self.topics.values().collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    /// Applies one record, or refuses it and changes nothing.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<()> {
        match record {
            MetadataRecord::Topic(topic) => {
                if self.ids_by_name.contains_key(&topic.name) {
                    return Err(BrokerError::TopicAlreadyExists(topic.name.clone()));
                }
                if self.topics.contains_key(&topic.id) || topic.partitions <= 0 {
                    return Err(inconsistent(record));
                }
                self.ids_by_name.insert(topic.name.clone(), topic.id);
                self.topics.insert(topic.id, topic.clone());
            }
            MetadataRecord::PartitionCount { topic_id, count } => {
                let topic = self.topics.get_mut(topic_id).ok_or_else(|| inconsistent(record))?;
                if *count < topic.partitions {
                    return Err(inconsistent(record));
                }
                topic.partitions = *count;
            }
            MetadataRecord::TopicConfigs { topic_id, configs } => {
                let topic = self.topics.get_mut(topic_id).ok_or_else(|| inconsistent(record))?;
                topic.configs = configs.clone();
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let topic = self.topics.remove(topic_id).ok_or_else(|| inconsistent(record))?;
                self.ids_by_name.remove(&topic.name);
            }
        }
        Ok(())
    }

    /// The records that build this image from nothing (what a snapshot holds).
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        self.topics()
            .into_iter()
            .map(|t| MetadataRecord::Topic(t.clone()))
            .collect()
    }
}

fn inconsistent(record: &MetadataRecord) -> BrokerError {
    BrokerError::Storage(format!("metadata record does not fit the metadata: {record:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, partitions: i32) -> TopicRecord {
        TopicRecord {
            name: name.into(),
            id: Uuid::new_v4(),
            partitions,
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn records_build_the_image_and_inconsistent_ones_change_nothing() {
        let a = topic("a", 2);
        let mut image = MetadataImage::from_records(&[MetadataRecord::Topic(a.clone())]).unwrap();
        assert_eq!(image.topic("a").unwrap().partitions, 2);
        let before = image.clone();
        assert!(matches!(
            image.apply(&MetadataRecord::Topic(topic("a", 1))),
            Err(BrokerError::TopicAlreadyExists(_))
        ));
        assert!(image
            .apply(&MetadataRecord::PartitionCount {
                topic_id: a.id,
                count: 1
            })
            .is_err());
        assert!(image
            .apply(&MetadataRecord::RemoveTopic {
                topic_id: Uuid::new_v4()
            })
            .is_err());
        assert_eq!(image, before);

        image
            .apply(&MetadataRecord::PartitionCount {
                topic_id: a.id,
                count: 5,
            })
            .unwrap();
        let configs = BTreeMap::from([("retention.ms".to_string(), "1".to_string())]);
        image
            .apply(&MetadataRecord::TopicConfigs {
                topic_id: a.id,
                configs: configs.clone(),
            })
            .unwrap();
        assert_eq!(image.topic_by_id(a.id).unwrap().partitions, 5);
        assert_eq!(image.topic("a").unwrap().configs, configs);
        let rebuilt = MetadataImage::from_records(&image.to_records()).unwrap();
        assert_eq!(rebuilt, image);
        image.apply(&MetadataRecord::RemoveTopic { topic_id: a.id }).unwrap();
        assert!(image.topic("a").is_none());
        image.apply(&MetadataRecord::Topic(topic("a", 1))).unwrap();
    }
}
