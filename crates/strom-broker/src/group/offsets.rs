//! Committed offsets: OffsetCommit (plain and transactional), OffsetFetch,
//! OffsetDelete and retention. Each change is appended to `__consumer_offsets` while
//! the group is locked and fsync'ed before the request is answered.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::time::Instant;

use super::coordinator::{lock, GroupCoordinator, GroupRef, OFFSETS_TOPIC};
use super::offsets_record::{self, OffsetValue, OffsetsKey};
use super::GroupState;
use crate::error::{BrokerError, Result};

/// An OffsetCommit in the broker's terms.
#[derive(Debug, Clone, Default)]
pub struct OffsetCommit {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// (topic, partition, offset, leader epoch, metadata)
    pub offsets: Vec<(String, i32, i64, i32, Option<String>)>,
}

impl GroupCoordinator {
    /// OffsetCommit: group-level checks, then per-partition results; durable on return.
    pub async fn commit_offsets(self: &Arc<Self>, commit: OffsetCommit) -> Result<Vec<Result<()>>> {
        self.commit(&commit, None).await
    }

    /// Write committed offsets: directly (OffsetCommit), or as part of a producer's
    /// transaction (TxnOffsetCommit), pending until the transaction ends.
    async fn commit(self: &Arc<Self>, commit: &OffsetCommit, producer: Option<(i64, i16)>) -> Result<Vec<Result<()>>> {
        if commit.group_id.is_empty() {
            return Err(BrokerError::InvalidGroupId);
        }
        let outside_group = commit.generation_id < 0 && commit.member_id.is_empty();
        let (partition, results) = {
            let group_ref = if outside_group || producer.is_some() {
                self.group_or_create(&commit.group_id)
            } else {
                self.group(&commit.group_id).ok_or(BrokerError::IllegalGeneration)?
            };
            let now_instant = Instant::now();
            let mut group = self.lock_at(&group_ref, now_instant);
            // Transactional commits name a member only when the producer sends one.
            if !(producer.is_some() && outside_group) {
                if group.is_consumer_protocol() {
                    group.consumer.check_commit(&commit.member_id, commit.generation_id)?;
                } else {
                    group.classic.check_commit(
                        &commit.member_id,
                        commit.group_instance_id.as_deref(),
                        commit.generation_id,
                        now_instant,
                    )?;
                }
            }
            let now = self.now_ms();
            let mut results = Vec::with_capacity(commit.offsets.len());
            let mut records = Vec::new();
            let mut accepted = Vec::new();
            for (topic, partition, offset, leader_epoch, metadata) in &commit.offsets {
                let metadata = metadata.clone().unwrap_or_default();
                let result = if metadata.len() > self.config.offset_metadata_max_bytes {
                    Err(BrokerError::OffsetMetadataTooLarge(metadata.len()))
                } else if self.broker.partition(topic, *partition).is_err() {
                    Err(BrokerError::UnknownTopicOrPartition)
                } else {
                    let value = OffsetValue {
                        offset: *offset,
                        leader_epoch: *leader_epoch,
                        metadata,
                        commit_timestamp: now,
                    };
                    let key = OffsetsKey::Offset {
                        group: commit.group_id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                    };
                    records.push((key, Some(offsets_record::encode_offset_value(&value))));
                    accepted.push(((topic.clone(), *partition), value));
                    Ok(())
                };
                results.push(result);
            }
            let partition = self.append_as(&commit.group_id, &records, producer)?;
            match producer {
                Some((producer_id, _)) => group
                    .pending_txn_offsets
                    .entry(producer_id)
                    .or_default()
                    .extend(accepted),
                None => group.offsets.extend(accepted),
            }
            (partition, results)
        };
        Self::flush(partition).await?;
        Ok(results)
    }

    /// OffsetFetch: committed offsets of the given partitions, or of all when `None`.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<(String, i32, Option<OffsetValue>)> {
        let group = self.group(group_id);
        let guard = group.as_ref().map(lock);
        let offsets = guard.as_ref().map(|g| &g.offsets);
        match topics {
            Some(topics) => topics
                .iter()
                .flat_map(|(topic, partitions)| {
                    partitions.iter().map(move |p| {
                        let value = offsets.and_then(|o| o.get(&(topic.clone(), *p))).cloned();
                        (topic.clone(), *p, value)
                    })
                })
                .collect(),
            None => offsets
                .map(|o| o.iter().map(|((t, p), v)| (t.clone(), *p, Some(v.clone()))).collect())
                .unwrap_or_default(),
        }
    }

    /// TxnOffsetCommit: offsets written as part of a transaction, visible on its commit.
    pub async fn txn_offset_commit(
        self: &Arc<Self>,
        commit: OffsetCommit,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<Vec<Result<()>>> {
        self.commit(&commit, Some((producer_id, producer_epoch))).await
    }

    /// After the transaction coordinator wrote a marker to `__consumer_offsets`
    /// partition `index`: apply or drop the producer's pending offsets there.
    pub fn complete_txn_offsets(&self, index: i32, producer_id: i64, commit: bool) {
        let partitions = self.config.offsets_topic_partitions;
        let groups: Vec<GroupRef> = self.groups().values().cloned().collect();
        for group_ref in groups {
            let mut group = lock(&group_ref);
            let here = self
                .broker
                .topic(OFFSETS_TOPIC)
                .map_or(partitions, |t| t.partition_count());
            if offsets_record::partition_for(&group.id, here) == index {
                group.complete_txn(producer_id, commit);
            }
        }
    }

    /// True when a transaction has an undecided commit for this partition (OffsetFetch
    /// with require_stable answers UNSTABLE_OFFSET_COMMIT then).
    pub fn has_pending_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        let Some(group_ref) = self.group(group_id) else {
            return false;
        };
        let group = lock(&group_ref);
        let key = (topic.to_string(), partition);
        group
            .pending_txn_offsets
            .values()
            .any(|offsets| offsets.contains_key(&key))
    }

    /// The `__consumer_offsets` partition index of a group.
    pub fn offsets_partition_index(&self, group_id: &str) -> Result<i32> {
        Ok(self.partition_of(group_id)?.1.index())
    }

    /// OffsetDelete: refused for topics the group's members subscribe to.
    pub async fn delete_offsets(
        self: &Arc<Self>,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Result<()>>> {
        let group_ref = self.group(group_id).ok_or(BrokerError::GroupIdNotFound)?;
        let (flush, results) = {
            let mut group = self.lock_at(&group_ref, Instant::now());
            let subscribed = if group.is_consumer_protocol() {
                group.consumer.subscribed_topics(&self.topic_infos())
            } else if group.state() == GroupState::Empty {
                BTreeSet::new()
            } else {
                group.classic.subscribed_topics()
            };
            let unknown_subscriptions =
                !group.is_consumer_protocol() && group.state() != GroupState::Empty && subscribed.is_empty();
            let mut records = Vec::new();
            let mut results = Vec::new();
            for (topic, partition) in partitions {
                if subscribed.contains(topic) || unknown_subscriptions {
                    results.push(Err(BrokerError::GroupSubscribedToTopic));
                    continue;
                }
                if group.offsets.remove(&(topic.clone(), *partition)).is_some() {
                    let key = OffsetsKey::Offset {
                        group: group_id.to_string(),
                        topic: topic.clone(),
                        partition: *partition,
                    };
                    records.push((key, None));
                }
                results.push(Ok(()));
            }
            (self.append(group_id, &records)?, results)
        };
        Self::flush(flush).await?;
        Ok(results)
    }

    /// Drop committed offsets of empty groups older than `offsets.retention.minutes`
    /// (counted from when the group became empty and from the commit), as Kafka does.
    pub fn expire_offsets(self: &Arc<Self>) -> usize {
        let now = self.now_ms();
        let retention = self.config.offsets_retention_ms;
        let groups: Vec<GroupRef> = self.groups().values().cloned().collect();
        let mut expired_total = 0;
        let now_instant = Instant::now();
        for group_ref in groups {
            let mut group = self.lock_at(&group_ref, now_instant);
            if !group.is_empty()
                || group.state() != GroupState::Empty
                || group.classic.state_timestamp_ms + retention > now
            {
                continue;
            }
            let expired: Vec<(String, i32)> = group
                .offsets
                .iter()
                .filter(|(_, v)| v.commit_timestamp + retention <= now)
                .map(|(k, _)| k.clone())
                .collect();
            let mut records: Vec<(OffsetsKey, Option<Vec<u8>>)> = expired
                .iter()
                .map(|(t, p)| {
                    (
                        OffsetsKey::Offset {
                            group: group.id.clone(),
                            topic: t.clone(),
                            partition: *p,
                        },
                        None,
                    )
                })
                .collect();
            for key in &expired {
                group.offsets.remove(key);
            }
            let drop_group = group.offsets.is_empty();
            if drop_group {
                records.push((
                    OffsetsKey::Group {
                        group: group.id.clone(),
                    },
                    None,
                ));
            }
            if records.is_empty() {
                continue;
            }
            if let Err(e) = self.append(&group.id, &records) {
                tracing::warn!(group = %group.id, error = %e, "writing expired offsets failed");
                continue;
            }
            expired_total += expired.len();
            if drop_group {
                let id = group.id.clone();
                group.classic.state = GroupState::Dead;
                drop(group);
                self.groups().remove(&id);
            }
        }
        expired_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{Broker, BrokerConfig, NewTopic};
    use crate::group::GroupConfig;
    use strom_log::ManualClock;

    fn commit(group: &str, offset: i64, metadata: &str) -> OffsetCommit {
        OffsetCommit {
            group_id: group.into(),
            generation_id: -1,
            offsets: vec![("t".into(), 0, offset, -1, Some(metadata.into()))],
            ..Default::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn offsets_survive_reload_and_expire_after_retention() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let config = GroupConfig {
            offsets_topic_partitions: 2,
            offsets_retention_ms: 60_000,
            ..Default::default()
        };
        {
            let broker = Broker::open_with_clock(BrokerConfig::new(dir.path()), clock.clone()).unwrap();
            broker
                .create_topic(
                    NewTopic {
                        name: "t".into(),
                        num_partitions: 1,
                        replication_factor: 1,
                        ..Default::default()
                    },
                    false,
                )
                .unwrap();
            let groups = GroupCoordinator::open(broker.clone(), config.clone()).unwrap();
            for (group, offset) in [("old", 5), ("kept", 7), ("old", 9)] {
                let results = groups.commit_offsets(commit(group, offset, "m")).await.unwrap();
                assert!(results[0].is_ok());
            }
            broker.shutdown().unwrap();
        }
        let broker = Broker::open_with_clock(BrokerConfig::new(dir.path()), clock.clone()).unwrap();
        let groups = GroupCoordinator::open(broker.clone(), config).unwrap();
        let fetched = groups.fetch_offsets("old", None);
        assert_eq!(fetched.len(), 1);
        assert_eq!(
            fetched[0].2.as_ref().map(|v| (v.offset, v.metadata.as_str())),
            Some((9, "m")),
            "latest commit wins"
        );

        clock.advance_ms(30_000);
        groups.commit_offsets(commit("kept", 8, "")).await.unwrap();
        clock.advance_ms(40_000);
        assert_eq!(groups.expire_offsets(), 1, "only the commit older than retention");
        assert!(groups.fetch_offsets("old", None).is_empty());
        assert_eq!(groups.fetch_offsets("kept", None).len(), 1);
        assert!(
            groups.describe_group("old").is_none(),
            "a group with no offsets left is deleted"
        );
    }
}
