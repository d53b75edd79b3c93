//! Loading and unloading groups per `__consumer_offsets` partition, as Kafka's
//! `onElection` / `onResignation`: a partition's groups are rebuilt from its log
//! (the latest record per key wins; offsets committed in a transaction wait for its
//! marker) when this node becomes its leader, and dropped when it stops being it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::classic::ClassicGroup;
use super::coordinator::GroupCoordinator;
use super::offsets::TopicPartition;
use super::offsets_record::{self, OffsetsKey};
use super::Group;
use crate::coordinator_log::Replayed;
use crate::error::Result;

impl GroupCoordinator {
    /// This node now leads `__consumer_offsets` partition `index` at `leader_epoch`:
    /// load its groups from the log, then serve them. Until loaded, requests for them
    /// answer COORDINATOR_LOAD_IN_PROGRESS. A repeated or older election is ignored.
    pub fn on_elected(&self, index: i32, leader_epoch: i32) -> Result<()> {
        if !self.log.elect(index, leader_epoch) {
            return Ok(());
        }
        let groups = match self.load_partition(index) {
            Ok(groups) => groups,
            Err(e) => {
                self.log.resign(index, leader_epoch);
                return Err(e);
            }
        };
        {
            let mut map = self.groups();
            for (id, group) in groups {
                self.sessions.arm(group.next_deadline());
                map.insert(id, Arc::new(Mutex::new(group)));
            }
        }
        self.log.loaded(index, leader_epoch);
        Ok(())
    }

    /// This node no longer leads partition `index` (as of `leader_epoch`): drop its
    /// groups; requests for them answer NOT_COORDINATOR. Waiting JoinGroup/SyncGroup
    /// requests of those groups are answered REBALANCE_IN_PROGRESS, and their clients
    /// rejoin through the new coordinator.
    pub fn on_resigned(&self, index: i32, leader_epoch: i32) {
        if !self.log.resign(index, leader_epoch) {
            return;
        }
        let dropped: Vec<_> = {
            let mut map = self.groups();
            let ids: Vec<String> = map
                .keys()
                .filter(|id| self.log.partition_for(id) == index)
                .cloned()
                .collect();
            ids.iter().filter_map(|id| map.remove(id)).collect()
        };
        tracing::info!(partition = index, groups = dropped.len(), "unloaded consumer groups");
    }

    /// The groups of one partition, rebuilt from its records.
    fn load_partition(&self, index: i32) -> Result<HashMap<String, Group>> {
        let now = Instant::now();
        let mut groups: HashMap<String, Group> = HashMap::new();
        let mut records = 0usize;
        self.log.for_each_record(index, |replayed| match replayed {
            Replayed::Marker {
                producer_id, commit, ..
            } => {
                for group in groups.values_mut() {
                    group.complete_txn(producer_id, commit);
                }
            }
            Replayed::Record {
                key,
                value,
                transaction,
                ..
            } => {
                records += 1;
                apply_record(&mut groups, key, value, now, transaction);
            }
        })?;
        groups.retain(|_, g| !(g.classic.is_empty() && g.offsets.is_empty() && g.classic.generation_id == 0));
        tracing::info!(
            partition = index,
            groups = groups.len(),
            records,
            "loaded consumer groups"
        );
        Ok(groups)
    }
}

fn apply_record(
    groups: &mut HashMap<String, Group>,
    key: &[u8],
    value: Option<&[u8]>,
    now: Instant,
    pending_txn: Option<i64>,
) {
    let Some(key) = offsets_record::decode_key(key) else {
        return;
    };
    match key {
        OffsetsKey::Offset {
            group,
            topic,
            partition,
        } => {
            let entry = groups.entry(group.clone()).or_insert_with(|| Group::new(&group));
            if let Some(producer_id) = pending_txn {
                if let Some(v) = value.and_then(offsets_record::decode_offset_value) {
                    entry
                        .pending_txn_offsets
                        .entry(producer_id)
                        .or_default()
                        .insert(TopicPartition::new(topic, partition), v);
                }
                return;
            }
            match value.and_then(offsets_record::decode_offset_value) {
                Some(v) => {
                    entry.offsets.insert(TopicPartition::new(topic, partition), v);
                }
                None => {
                    entry.offsets.remove(&TopicPartition::new(topic, partition));
                }
            }
        }
        OffsetsKey::Group { group } => match value.and_then(offsets_record::decode_group_value) {
            Some(v) => {
                let entry = groups.entry(group.clone()).or_insert_with(|| Group::new(&group));
                entry.classic = ClassicGroup::restore(&v, now);
            }
            None => {
                if let Some(entry) = groups.get_mut(&group) {
                    entry.classic = ClassicGroup::default();
                }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{Broker, BrokerConfig, NewTopic};
    use crate::error::BrokerError;
    use crate::group::{GroupConfig, JoinGroup, OffsetCommit, OffsetCommitEntry, OffsetFetch};

    fn open(dir: &std::path::Path) -> Arc<GroupCoordinator> {
        let broker = Broker::open(BrokerConfig::new(dir)).unwrap();
        let topic = NewTopic {
            name: "t".into(),
            num_partitions: 1,
            replication_factor: 1,
            ..Default::default()
        };
        broker.create_topic(topic, false).unwrap();
        let config = GroupConfig {
            offsets_topic_partitions: 2,
            ..Default::default()
        };
        GroupCoordinator::open(broker, config).unwrap()
    }

    async fn commit(groups: &Arc<GroupCoordinator>, group: &str, offset: i64) -> Result<()> {
        let commit = OffsetCommit {
            group_id: group.into(),
            generation_id: -1,
            offsets: vec![OffsetCommitEntry {
                topic: "t".into(),
                offset,
                ..Default::default()
            }],
            ..Default::default()
        };
        groups.commit_offsets(commit).await.map(|_| ())
    }

    fn fetch(groups: &GroupCoordinator, group: &str) -> Result<Option<i64>> {
        let request = OffsetFetch {
            group_id: group.into(),
            ..Default::default()
        };
        let fetched = groups.fetch_offsets(&request)?;
        Ok(fetched.first().and_then(|f| f.committed.as_ref()).map(|v| v.offset))
    }

    /// Two group ids whose `__consumer_offsets` partitions differ.
    fn groups_in_both_partitions(groups: &GroupCoordinator) -> (String, String) {
        let first = "g0".to_string();
        let index = groups.log.partition_for(&first);
        let other = (1..100)
            .map(|n| format!("g{n}"))
            .find(|g| groups.log.partition_for(g) != index)
            .unwrap();
        (first, other)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_resigned_partition_answers_not_coordinator_until_elected_again() {
        let dir = tempfile::tempdir().unwrap();
        let groups = open(dir.path());
        groups.offsets_topic().unwrap();
        let (moved, stays) = groups_in_both_partitions(&groups);
        commit(&groups, &moved, 5).await.unwrap();
        commit(&groups, &stays, 7).await.unwrap();
        let index = groups.offsets_partition_index(&moved).unwrap();
        let epoch = groups
            .log
            .existing_topic()
            .unwrap()
            .partition(index)
            .unwrap()
            .leader_epoch();

        groups.on_resigned(index, epoch);
        assert!(matches!(fetch(&groups, &moved), Err(BrokerError::NotCoordinator)));
        assert!(matches!(
            commit(&groups, &moved, 6).await,
            Err(BrokerError::NotCoordinator)
        ));
        assert!(matches!(
            groups.describe_group(&moved),
            Err(BrokerError::NotCoordinator)
        ));
        let join = groups
            .join_group(JoinGroup {
                group_id: moved.clone(),
                ..Default::default()
            })
            .await;
        assert!(matches!(join.error, Some(BrokerError::NotCoordinator)));
        assert_eq!(
            fetch(&groups, &stays).unwrap(),
            Some(7),
            "the other partition still serves"
        );

        groups.on_elected(index, epoch + 1).unwrap();
        assert_eq!(fetch(&groups, &moved).unwrap(), Some(5), "reloaded from the log");
        groups.on_resigned(index, epoch);
        assert_eq!(
            fetch(&groups, &moved).unwrap(),
            Some(5),
            "a resignation older than the election changes nothing"
        );
    }

    #[tokio::test]
    async fn a_loading_partition_answers_load_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let groups = open(dir.path());
        groups.offsets_topic().unwrap();
        let index = groups.log.partition_for("g");
        groups.on_resigned(index, i32::MAX);
        // Elected, but the load has not finished.
        assert!(groups.log.elect(index, 1));
        assert!(matches!(
            fetch(&groups, "g"),
            Err(BrokerError::CoordinatorLoadInProgress)
        ));
        assert!(matches!(
            groups.list_groups(&Default::default()),
            Err(BrokerError::CoordinatorLoadInProgress)
        ));
        groups.log.loaded(index, 1);
        assert_eq!(fetch(&groups, "g").unwrap(), None);
    }
}
