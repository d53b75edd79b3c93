//! The broker's part in the cluster: heartbeats, controlled shutdown, unregistering
//! brokers and leader elections, each committed through the metadata quorum.

use std::sync::Arc;
use std::time::Duration;

use strom_cluster::MetadataRecord;
use uuid::Uuid;

use super::{Broker, Elections, CONTROLLED_SHUTDOWN_WAIT};
use crate::error::{BrokerError, Result};
use crate::partition::Partition;
use crate::sync::lock;
use crate::topic::Topic;

impl Broker {
    /// ElectLeaders (see [`crate::api::BrokerApi::elect_leaders`]); an empty list means
    /// every partition. One committed batch.
    pub fn elect_leaders(&self, mut partitions: Vec<(String, i32)>, unclean: bool) -> Result<Elections> {
        use strom_cluster::controller::{self, ElectionError};
        let _admin = lock(&self.admin);
        let image = self.quorum.applied().image.clone();
        if partitions.is_empty() {
            partitions = image
                .topics()
                .into_iter()
                .flat_map(|t| t.partitions.keys().map(move |p| (t.name.clone(), *p)))
                .collect();
        }
        let ids: Vec<(Uuid, i32)> = partitions
            .iter()
            .map(|(topic, p)| (image.topic(topic).map_or(Uuid::nil(), |t| t.id), *p))
            .collect();
        let (mut records, outcomes) = if unclean {
            let mut records = Vec::new();
            let outcomes = ids
                .iter()
                .map(|(id, index)| {
                    let state = image
                        .topic_by_id(*id)
                        .and_then(|t| t.partitions.get(index))
                        .ok_or(ElectionError::UnknownPartition)?;
                    if state.leader >= 0 && controller::is_alive(&image, state.leader) {
                        return Err(ElectionError::NotNeeded);
                    }
                    let leader = controller::elect(state, |r| controller::is_alive(&image, r), true);
                    if leader < 0 {
                        return Err(ElectionError::PreferredNotAvailable);
                    }
                    records.push(MetadataRecord::PartitionChange(strom_cluster::PartitionChange {
                        topic_id: *id,
                        partition: *index,
                        partition_epoch: state.partition_epoch,
                        leader: Some(leader),
                        isr: Some(vec![leader]),
                        replicas: None,
                        joining: Vec::new(),
                        elr: None,
                        reassignment: None,
                    }));
                    Ok(())
                })
                .collect();
            (records, outcomes)
        } else {
            controller::elect_preferred(&image, &ids)
        };
        if !records.is_empty() {
            self.commit(std::mem::take(&mut records))?;
        }
        Ok(partitions
            .into_iter()
            .zip(outcomes)
            .map(|(tp, outcome)| {
                let outcome = outcome.map_err(|e| match e {
                    ElectionError::UnknownPartition => BrokerError::UnknownTopicOrPartition,
                    ElectionError::NotNeeded => BrokerError::ElectionNotNeeded,
                    ElectionError::PreferredNotAvailable => BrokerError::PreferredLeaderNotAvailable,
                });
                (tp, outcome)
            })
            .collect())
    }

    /// Forgets broker `node_id` (UnregisterBroker): refused while it is alive.
    pub fn unregister(&self, node_id: i32) -> Result<()> {
        let _admin = lock(&self.admin);
        let image = self.quorum.applied().image.clone();
        let broker = image
            .broker(node_id)
            .ok_or(BrokerError::BrokerIdNotRegistered(node_id))?;
        if !broker.fenced {
            return Err(BrokerError::InvalidRequest(format!(
                "broker {node_id} is alive; stop it (or wait until it is fenced) before unregistering it"
            )));
        }
        let mut records = vec![MetadataRecord::UnregisterBroker {
            node_id,
            broker_epoch: broker.broker_epoch,
        }];
        // Leadership as if it never comes back (its fencing already did most of this).
        records.extend(strom_cluster::controller::leadership_changes(&image, |id| {
            id != node_id && strom_cluster::controller::is_alive(&image, id)
        }));
        self.commit(records)
    }

    /// Tells the active controller this broker is alive; answers whether it is fenced.
    pub fn heartbeat(&self) -> Result<bool> {
        let heartbeat = strom_cluster::Heartbeat {
            node_id: self.config.node_id,
            broker_epoch: self.broker_epoch,
        };
        let timeout = Duration::from_millis(self.config.heartbeat_interval_ms.max(1000));
        Ok(self.quorum.heartbeat(heartbeat, timeout)?.fenced)
    }

    /// Controlled shutdown: this broker is fenced now rather than after its session
    /// times out, so its partitions move (or show as offline) at once. Skipped when no
    /// other broker is alive: nobody could take over, and a lone node keeps its leader
    /// epochs across restarts.
    pub fn leave(&self) {
        let image = self.quorum.applied().image.clone();
        let others_alive = image
            .brokers()
            .values()
            .any(|b| b.registration.node_id != self.config.node_id && !b.fenced);
        if !others_alive {
            return;
        }
        let records = strom_cluster::controller::fence(&image, &[(self.config.node_id, self.broker_epoch)]);
        match self.quorum.propose_within(records, CONTROLLED_SHUTDOWN_WAIT) {
            Ok(_) => tracing::info!("controlled shutdown: fenced, partitions moved"),
            Err(e) => {
                tracing::warn!(error = %e, "controlled shutdown could not fence this broker; its session times out instead")
            }
        }
    }
}

impl Broker {
    /// Commits partition changes (ISR changes of partitions this node leads), then
    /// brings the live topics in line.
    /// Bounded by `timeout`: without a quorum the change waits for nothing (the
    /// leader proposes again on its next check) and shutdown is not held up.
    pub(crate) fn commit_partition_changes(&self, records: Vec<MetadataRecord>, timeout: Duration) -> Result<()> {
        self.quorum.propose_within(records, timeout)?;
        self.sync_metadata()
    }

    /// The nodes leading partitions this node follows.
    pub fn leaders_followed(&self) -> std::collections::BTreeSet<i32> {
        self.hosted()
            .map(|(_, partition)| partition.replica().leader())
            .filter(|leader| *leader >= 0 && *leader != self.config.node_id)
            .collect()
    }

    /// The partitions this node follows whose leader is `leader`.
    pub fn followed_from(&self, leader: i32) -> Vec<(Arc<Topic>, Arc<Partition>)> {
        if leader == self.config.node_id {
            return Vec::new();
        }
        self.hosted()
            .filter(|(_, partition)| partition.replica().leader() == leader)
            .collect()
    }

    /// The partitions this node leads that have other replicas.
    pub fn led_replicated(&self) -> Vec<(Arc<Topic>, Arc<Partition>)> {
        self.hosted()
            .filter(|(_, partition)| partition.replica().is_leader() && partition.replica().replicas().len() > 1)
            .collect()
    }

    /// Every partition hosted here, with its topic.
    fn hosted(&self) -> impl Iterator<Item = (Arc<Topic>, Arc<Partition>)> {
        self.topics().into_iter().flat_map(|topic| {
            topic
                .partitions()
                .into_iter()
                .map(move |partition| (topic.clone(), partition))
        })
    }
}
