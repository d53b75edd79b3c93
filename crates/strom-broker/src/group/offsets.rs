//! Committed offsets: OffsetCommit (plain and transactional), OffsetFetch,
//! OffsetDelete and retention. Each change is appended to `__consumer_offsets` while
//! the group is locked and fsync'ed before the request is answered.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::time::Instant;

use super::coordinator::{lock, GroupCoordinator, GroupRef};
use super::offsets_record::{self, OffsetValue, OffsetsKey};
use super::GroupState;
use crate::coordinator_log::{CoordinatorLog, ProducerIdAndEpoch};
use crate::error::{BrokerError, Result};

/// A partition of a topic: what committed offsets are keyed by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

/// One partition's offset in an OffsetCommit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetCommitEntry {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// An OffsetCommit in the broker's terms.
#[derive(Debug, Clone, Default)]
pub struct OffsetCommit {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub offsets: Vec<OffsetCommitEntry>,
}

/// Some partitions of one topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicPartitions {
    pub topic: String,
    pub partitions: Vec<i32>,
}

/// An OffsetFetch for one group.
#[derive(Debug, Clone, Default)]
pub struct OffsetFetch {
    pub group_id: String,
    /// The partitions asked for; `None` for every partition with a committed offset.
    pub topics: Option<Vec<TopicPartitions>>,
    /// Answer UNSTABLE_OFFSET_COMMIT for a partition a transaction has an undecided
    /// commit for (read_committed consumers then retry rather than start early).
    pub require_stable: bool,
}

/// One partition's answer to an OffsetFetch.
#[derive(Debug)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    /// `None` when nothing is committed.
    pub committed: Option<OffsetValue>,
    pub error: Option<BrokerError>,
}

impl GroupCoordinator {
    /// OffsetCommit: group-level checks, then per-partition results; durable on return.
    pub async fn commit_offsets(self: &Arc<Self>, commit: OffsetCommit) -> Result<Vec<Result<()>>> {
        self.commit(&commit, None).await
    }

    /// TxnOffsetCommit, once the transaction coordinator checked that the producer
    /// owns its transactional id: offsets visible when the transaction commits.
    pub(crate) async fn txn_offset_commit(
        self: &Arc<Self>,
        commit: OffsetCommit,
        producer: ProducerIdAndEpoch,
    ) -> Result<Vec<Result<()>>> {
        self.commit(&commit, Some(producer)).await
    }

    /// Write committed offsets: directly (OffsetCommit), or as part of a producer's
    /// transaction (TxnOffsetCommit), pending until the transaction ends.
    async fn commit(
        self: &Arc<Self>,
        commit: &OffsetCommit,
        producer: Option<ProducerIdAndEpoch>,
    ) -> Result<Vec<Result<()>>> {
        if commit.group_id.is_empty() {
            return Err(BrokerError::InvalidGroupId);
        }
        let outside_group = commit.generation_id < 0 && commit.member_id.is_empty();
        let (partition, results) = {
            let group_ref = if outside_group || producer.is_some() {
                self.group_or_create(&commit.group_id)?
            } else {
                self.group(&commit.group_id)?.ok_or(BrokerError::IllegalGeneration)?
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
            for entry in &commit.offsets {
                let metadata = entry.metadata.clone().unwrap_or_default();
                let result = if metadata.len() > self.config.offset_metadata_max_bytes {
                    Err(BrokerError::OffsetMetadataTooLarge(metadata.len()))
                } else if !self.broker.partition_exists(&entry.topic, entry.partition) {
                    Err(BrokerError::UnknownTopicOrPartition)
                } else {
                    let value = OffsetValue {
                        offset: entry.offset,
                        leader_epoch: entry.leader_epoch,
                        metadata,
                        commit_timestamp: now,
                    };
                    let key = OffsetsKey::Offset {
                        group: commit.group_id.clone(),
                        topic: entry.topic.clone(),
                        partition: entry.partition,
                    };
                    records.push((key, Some(offsets_record::encode_offset_value(&value))));
                    accepted.push((TopicPartition::new(entry.topic.clone(), entry.partition), value));
                    Ok(())
                };
                results.push(result);
            }
            let partition = self.append_as(&commit.group_id, &records, producer)?;
            match producer {
                Some(producer) => group
                    .pending_txn_offsets
                    .entry(producer.producer_id)
                    .or_default()
                    .extend(accepted),
                None => group.offsets.extend(accepted),
            }
            (partition, results)
        };
        CoordinatorLog::flush(partition).await?;
        Ok(results)
    }

    /// OffsetFetch: committed offsets of the given partitions, or of all when `None`;
    /// an unknown group has none.
    pub fn fetch_offsets(&self, request: &OffsetFetch) -> Result<Vec<FetchedOffset>> {
        let group = self.group(&request.group_id)?;
        let guard = group.as_ref().map(lock);
        let fetched = |key: TopicPartition, committed: Option<OffsetValue>| {
            let pending = guard
                .as_ref()
                .is_some_and(|g| g.pending_txn_offsets.values().any(|offsets| offsets.contains_key(&key)));
            FetchedOffset {
                error: (request.require_stable && pending).then_some(BrokerError::UnstableOffsetCommit),
                topic: key.topic,
                partition: key.partition,
                committed,
            }
        };
        Ok(match &request.topics {
            Some(topics) => topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| TopicPartition::new(t.topic.clone(), *p)))
                .map(|key| {
                    let committed = guard.as_ref().and_then(|g| g.offsets.get(&key)).cloned();
                    fetched(key, committed)
                })
                .collect(),
            None => guard
                .as_ref()
                .map(|g| g.offsets.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|(key, value)| fetched(key, Some(value)))
                .collect(),
        })
    }

    /// After the transaction coordinator wrote a marker to `__consumer_offsets`
    /// partition `index`: apply or drop the producer's pending offsets there.
    pub(crate) fn complete_txn_offsets(&self, index: i32, producer_id: i64, commit: bool) {
        let groups: Vec<GroupRef> = self.groups().values().cloned().collect();
        for group_ref in groups {
            let mut group = lock(&group_ref);
            if self.log.partition_for(&group.id) == index {
                group.complete_txn(producer_id, commit);
            }
        }
    }

    /// The `__consumer_offsets` partition of a group (AddOffsetsToTxn adds it to the
    /// transaction), when this node coordinates the group.
    pub(crate) fn offsets_partition_index(&self, group_id: &str) -> Result<i32> {
        self.owner(group_id)
    }

    /// OffsetDelete: refused for topics the group's members subscribe to.
    pub async fn delete_offsets(
        self: &Arc<Self>,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> Result<Vec<Result<()>>> {
        let group_ref = self.group(group_id)?.ok_or(BrokerError::GroupIdNotFound)?;
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
            for key in partitions {
                if subscribed.contains(&key.topic) || unknown_subscriptions {
                    results.push(Err(BrokerError::GroupSubscribedToTopic));
                    continue;
                }
                if group.offsets.remove(key).is_some() {
                    let key = OffsetsKey::Offset {
                        group: group_id.to_string(),
                        topic: key.topic.clone(),
                        partition: key.partition,
                    };
                    records.push((key, None));
                }
                results.push(Ok(()));
            }
            (self.append(group_id, &records)?, results)
        };
        CoordinatorLog::flush(flush).await?;
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
            let expired: Vec<TopicPartition> = group
                .offsets
                .iter()
                .filter(|(_, v)| v.commit_timestamp + retention <= now)
                .map(|(k, _)| k.clone())
                .collect();
            let mut records: Vec<(OffsetsKey, Option<Vec<u8>>)> = expired
                .iter()
                .map(|key| {
                    (
                        OffsetsKey::Offset {
                            group: group.id.clone(),
                            topic: key.topic.clone(),
                            partition: key.partition,
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
            offsets: vec![OffsetCommitEntry {
                topic: "t".into(),
                partition: 0,
                offset,
                leader_epoch: -1,
                metadata: Some(metadata.into()),
            }],
            ..Default::default()
        }
    }

    fn fetch_all(groups: &GroupCoordinator, group: &str) -> Vec<FetchedOffset> {
        groups
            .fetch_offsets(&OffsetFetch {
                group_id: group.into(),
                ..Default::default()
            })
            .unwrap()
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
        let fetched = fetch_all(&groups, "old");
        assert_eq!(fetched.len(), 1);
        assert_eq!(
            fetched[0].committed.as_ref().map(|v| (v.offset, v.metadata.as_str())),
            Some((9, "m")),
            "latest commit wins"
        );

        clock.advance_ms(30_000);
        groups.commit_offsets(commit("kept", 8, "")).await.unwrap();
        clock.advance_ms(40_000);
        assert_eq!(groups.expire_offsets(), 1, "only the commit older than retention");
        assert!(fetch_all(&groups, "old").is_empty());
        assert_eq!(fetch_all(&groups, "kept").len(), 1);
        assert!(
            matches!(groups.describe_group("old"), Err(BrokerError::GroupIdNotFound)),
            "a group with no offsets left is deleted"
        );
    }
}
