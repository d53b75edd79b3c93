//! How a broker starts in the cluster (the cluster id, batches retried while the quorum
//! forms) and where new partitions go (placement, checks of manual assignments).

use std::time::{Duration, Instant};

use strom_cluster::placement::{self, Candidate};
use strom_cluster::{ClusterError, MetadataImage, MetadataRecord, PartitionRecord, Quorum, Refusal};
use uuid::Uuid;

use std::sync::{Arc, Mutex, RwLock};

use strom_cluster::BrokerRegistration;
use strom_log::Clock;

use super::{Broker, BrokerConfig, FailureLog, TopicIndex};
use crate::constants::QUORUM_START_WAIT_MS;
use crate::error::{BrokerError, Result};
use crate::log_manager::{new_cluster_id, LogManager};
use crate::migration;
use crate::producer_id::ProducerIdManager;

impl Broker {
    /// The start after the quorum runs: cluster id, migration, registration, partitions.
    pub(super) fn join(
        config: BrokerConfig,
        clock: Arc<dyn Clock>,
        logs: LogManager,
        quorum: Arc<Quorum>,
    ) -> Result<Arc<Broker>> {
        let wait = Duration::from_millis(QUORUM_START_WAIT_MS);
        let cluster_id = establish_cluster_id(&quorum, logs.stored_cluster_id(), config.cluster_id.as_deref(), wait)?;
        logs.set_cluster_id(&cluster_id)?;
        if migration::pending(&config.data_dir) {
            // Built again from the image on every try: what an earlier try committed is
            // not proposed twice.
            let mut topics = 0;
            propose_at_start(&quorum, wait, |image| {
                let records = migration::records(&config.data_dir, config.node_id, image, |id| logs.was_deleted(id))?;
                topics = records.iter().filter(|r| matches!(r, MetadataRecord::Topic(_))).count();
                Ok(records)
            })?;
            migration::finish(&config.data_dir)?;
            tracing::info!(topics, "moved the single-node topic list into the metadata log");
        }
        if migration::configs_pending(&config.data_dir) {
            let mut scopes = 0;
            propose_at_start(&quorum, wait, |image| {
                let records = migration::config_records(&config.data_dir, config.node_id, image)?;
                scopes = records.len();
                Ok(records)
            })?;
            migration::finish_configs(&config.data_dir)?;
            tracing::info!(scopes, "moved the dynamic configs file into the metadata log");
        }
        let registration = BrokerRegistration {
            node_id: config.node_id,
            incarnation: Uuid::new_v4(),
            directory_id: logs.directory_id(),
            listeners: config.listeners.clone(),
            rack: config.rack.clone(),
        };
        // A registration whose outcome is unknown is simply made again: the last one
        // committed gives the broker epoch.
        // A restarted broker leaves the ISRs it was in (KIP-903): its disk may have lost
        // what it had (a replaced disk, lost unsynced writes), so it rejoins only by
        // catching up again, with its new broker epoch.
        let broker_epoch = propose_at_start(&quorum, wait, |image| {
            let mut records = vec![MetadataRecord::RegisterBroker(registration.clone())];
            records.extend(strom_cluster::controller::leave_isrs(
                image,
                config.node_id,
                registration.directory_id,
            ));
            Ok(records)
        })? as i64;
        let producer_ids = ProducerIdManager::new(config.node_id, quorum.clone());
        // The dynamic configs come from the image, with the first sync below.
        let defaults = config.topic_defaults.clone();
        let broker = Broker {
            clock,
            logs,
            quorum,
            broker_epoch,
            image: RwLock::new(Arc::new(MetadataImage::default())),
            metadata_sync: Mutex::new(()),
            topics: RwLock::new(TopicIndex::default()),
            admin: Mutex::new(()),
            producer_ids,
            topic_defaults: RwLock::new(Arc::new(defaults)),
            append_failures: FailureLog::default(),
            config,
        };
        let image = broker.quorum.applied().image.clone();
        broker.logs.set_aside_strays(|id| image.topic_by_id(id).is_some());
        broker.sync_metadata()?;
        tracing::info!(
            topics = broker.topics_read().by_name.len(),
            broker_epoch,
            %cluster_id,
            dir = %broker.config.data_dir.display(),
            "broker opened"
        );
        Ok(Arc::new(broker))
    }
}

/// Commits the batch `build` makes from the applied image, trying again (with a batch
/// built anew) while the quorum is not available or a try's outcome is unknown: a
/// start waits for its cluster. Nothing to commit is success.
pub(super) fn propose_at_start(
    quorum: &Quorum,
    wait: Duration,
    mut build: impl FnMut(&MetadataImage) -> Result<Vec<MetadataRecord>>,
) -> Result<u64> {
    let deadline = Instant::now() + wait;
    loop {
        let records = build(&quorum.applied().image)?;
        if records.is_empty() {
            return Ok(quorum.applied().index());
        }
        match quorum.propose(records) {
            Ok(index) => return Ok(index),
            Err(ClusterError::NotAvailable(why) | ClusterError::Timeout(why)) if Instant::now() < deadline => {
                tracing::info!(%why, "the metadata quorum is not ready; trying again");
                std::thread::sleep(Duration::from_millis(200));
            }
            // Built against an image that moved on meanwhile (a partition changed): build
            // it again.
            Err(ClusterError::Refused(strom_cluster::Refusal::Stale(why))) if Instant::now() < deadline => {
                tracing::info!(%why, "the metadata changed while this node registered; trying again");
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits until the quorum has a cluster id, proposing this node's (the configured one,
/// the data directory's, or a new one) while it has none: the first committed wins.
pub(super) fn establish_cluster_id(
    quorum: &Quorum,
    stored: Option<&str>,
    configured: Option<&str>,
    wait: Duration,
) -> Result<String> {
    if let (Some(stored), Some(configured)) = (stored, configured) {
        if stored != configured {
            return Err(BrokerError::Storage(format!(
                "the data directory belongs to cluster {stored}, but cluster.id is {configured}"
            )));
        }
    }
    let preferred = configured.or(stored).map_or_else(new_cluster_id, String::from);
    let deadline = Instant::now() + wait;
    let id = loop {
        if let Some(id) = quorum.applied().image.cluster_id() {
            break id.to_string();
        }
        match quorum.propose(vec![MetadataRecord::ClusterId { id: preferred.clone() }]) {
            Ok(_) | Err(ClusterError::Refused(Refusal::ClusterId(_))) => continue,
            Err(ClusterError::NotAvailable(why) | ClusterError::Timeout(why)) => {
                if Instant::now() >= deadline {
                    return Err(BrokerError::NotController(format!(
                        "no cluster id after {} s: {why}",
                        wait.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e.into()),
        }
    };
    if let Some(configured) = configured.filter(|c| *c != id) {
        return Err(BrokerError::Storage(format!(
            "cluster.id is {configured}, but the metadata quorum is cluster {id}"
        )));
    }
    Ok(id)
}

/// The brokers new replicas may go to: registered and not fenced.
pub(super) fn candidates(image: &MetadataImage) -> Vec<Candidate> {
    image
        .brokers()
        .values()
        .filter(|b| !b.fenced)
        .map(|b| Candidate {
            node_id: b.registration.node_id,
            rack: b.registration.rack.clone(),
        })
        .collect()
}

/// Replication above 1 waits for partition replication: refused, clearly.
pub(super) fn replicas_len(replicas: &[Vec<i32>]) -> i16 {
    replicas.first().map_or(0, |r| r.len() as i16)
}

/// Checks a manual assignment: registered brokers, no repeats, one replica count.
pub(super) fn check_replicas(image: &MetadataImage, replicas: &[i32], expected: usize) -> Result<()> {
    if replicas.is_empty() || replicas.len() != expected {
        return Err(BrokerError::InvalidReplicaAssignment(
            "every partition must have the same, non-zero number of replicas".into(),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for broker in replicas {
        if !seen.insert(*broker) {
            return Err(BrokerError::InvalidReplicaAssignment(format!(
                "broker {broker} appears twice in {replicas:?}"
            )));
        }
        if image.broker(*broker).is_none() {
            return Err(BrokerError::InvalidReplicaAssignment(format!(
                "Unknown broker {broker} in replica assignment {replicas:?}"
            )));
        }
    }
    Ok(())
}

/// Places `count` new partitions from `first` of topic `id` on the live brokers; the
/// round robin starts at a point derived from the topic id, so topics spread.
pub(super) fn place(
    image: &MetadataImage,
    id: Uuid,
    first: i32,
    count: i32,
    replication_factor: usize,
) -> Result<Vec<Vec<i32>>> {
    let bytes = id.as_bytes();
    let (start, shift) = (bytes[0] as usize, bytes[1] as usize);
    placement::place(&candidates(image), first, count, replication_factor, start, shift).map_err(|e| match e {
        placement::PlacementError::NotEnoughBrokers { .. } => BrokerError::InvalidReplicationFactor(e.to_string()),
        placement::PlacementError::PartialRacks(_) => BrokerError::InvalidReplicaAssignment(e.to_string()),
    })
}

/// Partition records for new partitions, the first replica leading, all in the ISR.
pub(super) fn partition_records(
    topic_id: Uuid,
    first: i32,
    replicas: Vec<Vec<i32>>,
) -> impl Iterator<Item = MetadataRecord> {
    replicas.into_iter().enumerate().map(move |(i, replicas)| {
        MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition: first + i as i32,
            leader: replicas[0],
            isr: replicas.clone(),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
        })
    })
}
