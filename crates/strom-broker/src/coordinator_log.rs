//! `CoordinatorLog`: the I/O shell every coordinator shares. A coordinator keeps its
//! state in a compacted internal topic (`__consumer_offsets`, `__transaction_state`);
//! this shell owns that topic's handle and everything a coordinator does with it:
//! create it on first use, place a key on a partition (Kafka's `abs(hash) % partitions`),
//! replay a partition record by record, append records and fsync them. It also keeps
//! which partitions this node coordinates (elected, loading or loaded), so requests
//! for keys elsewhere answer NOT_COORDINATOR and keys still loading
//! COORDINATOR_LOAD_IN_PROGRESS.
//!
//! The shell knows no record format: keys and values are bytes. Coordinators decode
//! them (`group::offsets_record`, `txn::state_record`) and keep the state machines
//! pure.
//!
//! Appends do not take a lock of their own: a coordinator appends while it holds the
//! lock of the state that changed, so the log's order is the order of the changes,
//! and flushes after releasing it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use strom_log::RecordBatchBuilder;

use crate::broker::{AppendOrigin, Broker};
use crate::constants::COORDINATOR_REPLICATION_TIMEOUT;
use crate::error::{BrokerError, Result};
use crate::partition::Partition;
use crate::topic::Topic;

/// A producer writing records as part of its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdAndEpoch {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// One keyed record to append; a `None` value is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyValue {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// What a replay finds in a coordinator partition, in log order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replayed<'a> {
    /// A keyed record. `transaction` names the producer when the record belongs to
    /// a transaction, which a later marker commits or aborts.
    Record {
        key: &'a [u8],
        value: Option<&'a [u8]>,
        offset: i64,
        transaction: Option<i64>,
    },
    /// A COMMIT (`commit`) or ABORT marker ending `producer_id`'s transaction.
    Marker {
        producer_id: i64,
        commit: bool,
        offset: i64,
    },
}

/// Where this node stands with one coordinator partition.
/// Partitions to elect and to resign, each with its leader epoch.
pub(crate) type LeadershipMoves = (Vec<(i32, i32)>, Vec<(i32, i32)>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ownership {
    Loading { leader_epoch: i32 },
    Loaded { leader_epoch: i32 },
}

impl Ownership {
    fn leader_epoch(self) -> i32 {
        match self {
            Ownership::Loading { leader_epoch } | Ownership::Loaded { leader_epoch } => leader_epoch,
        }
    }
}

pub(crate) struct CoordinatorLog {
    broker: Arc<Broker>,
    topic_name: &'static str,
    partitions: i32,
    segment_bytes: i64,
    owned: Mutex<HashMap<i32, Ownership>>,
    /// Held while the topic is created and its partitions first elected, so no request
    /// sees the new topic before this node coordinates it.
    creating: Mutex<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    crate::sync::lock(mutex)
}

impl CoordinatorLog {
    pub(crate) fn new(broker: Arc<Broker>, topic_name: &'static str, partitions: i32, segment_bytes: i64) -> Self {
        CoordinatorLog {
            broker,
            topic_name,
            partitions,
            segment_bytes,
            owned: Mutex::new(HashMap::new()),
            creating: Mutex::new(()),
        }
    }

    /// The internal topic if it exists.
    pub(crate) fn existing_topic(&self) -> Option<Arc<Topic>> {
        self.broker.topic(self.topic_name)
    }

    /// The internal topic, created (compacted) on first use as Kafka does. The first
    /// caller that finds it missing runs `on_created` with the new topic, under a
    /// lock that makes concurrent callers wait for it.
    pub(crate) fn topic(&self, on_created: impl FnOnce(&Topic) -> Result<()>) -> Result<Arc<Topic>> {
        if let Some(topic) = self.existing_topic() {
            if !self.is_creating() {
                return Ok(topic);
            }
        }
        let _creating = lock(&self.creating);
        if let Some(topic) = self.existing_topic() {
            return Ok(topic);
        }
        let topic = self
            .broker
            .internal_topic(self.topic_name, self.partitions, self.segment_bytes)?;
        on_created(&topic)?;
        Ok(topic)
    }

    fn is_creating(&self) -> bool {
        self.creating.try_lock().is_err()
    }

    /// The partition a key belongs to: Kafka's `abs(String.hashCode) % partitions`
    /// over the topic's partition count (the configured one before it exists).
    pub(crate) fn partition_for(&self, key: &str) -> i32 {
        let count = self.existing_topic().map_or(self.partitions, |t| t.partition_count());
        partition_for(key, count)
    }

    fn partition(&self, index: i32) -> Result<(Arc<Topic>, Arc<Partition>)> {
        let topic = self.existing_topic().ok_or(BrokerError::CoordinatorNotAvailable)?;
        let partition = topic.partition(index).ok_or(BrokerError::CoordinatorNotAvailable)?;
        Ok((topic, partition))
    }

    /// Start coordinating partition `index` at `leader_epoch`: it is loading until
    /// [`CoordinatorLog::loaded`]. False when an election at this or a newer epoch
    /// already happened (a late or repeated call changes nothing).
    pub(crate) fn elect(&self, index: i32, leader_epoch: i32) -> bool {
        let mut owned = lock(&self.owned);
        if owned.get(&index).is_some_and(|o| o.leader_epoch() >= leader_epoch) {
            return false;
        }
        owned.insert(index, Ownership::Loading { leader_epoch });
        true
    }

    /// The partition's state is loaded: serve it (unless it was resigned meanwhile).
    pub(crate) fn loaded(&self, index: i32, leader_epoch: i32) {
        let mut owned = lock(&self.owned);
        if owned.get(&index) == Some(&Ownership::Loading { leader_epoch }) {
            owned.insert(index, Ownership::Loaded { leader_epoch });
        }
    }

    /// Stop coordinating partition `index`. False when this node does not own it or
    /// owns it at a newer epoch than `leader_epoch`.
    pub(crate) fn resign(&self, index: i32, leader_epoch: i32) -> bool {
        let mut owned = lock(&self.owned);
        match owned.get(&index) {
            Some(o) if o.leader_epoch() <= leader_epoch => {
                owned.remove(&index);
                true
            }
            _ => false,
        }
    }

    /// How this node's leadership of the internal partitions moved since the
    /// coordinator last took or gave them up: partitions led here now that it does not
    /// own at this leader epoch (to elect), and owned ones no longer led here (to
    /// resign), each with its leader epoch.
    pub(crate) fn leadership_moves(&self) -> LeadershipMoves {
        let led: HashMap<i32, i32> = self
            .existing_topic()
            .map(|topic| {
                topic
                    .partitions()
                    .iter()
                    .filter(|p| p.replica().is_leader())
                    .map(|p| (p.index(), p.leader_epoch()))
                    .collect()
            })
            .unwrap_or_default();
        let owned = lock(&self.owned);
        let elect = led
            .iter()
            .filter(|(index, epoch)| owned.get(index).is_none_or(|o| o.leader_epoch() < **epoch))
            .map(|(index, epoch)| (*index, *epoch))
            .collect();
        let resign = owned
            .iter()
            .filter(|(index, _)| !led.contains_key(index))
            .map(|(index, o)| (*index, o.leader_epoch()))
            .collect();
        (elect, resign)
    }

    /// Follows the leadership moves ([`CoordinatorLog::leadership_moves`]): resigns what
    /// this node no longer leads, then elects what it now leads (loading it).
    pub(crate) fn follow_leadership(&self, elected: impl Fn(i32, i32) -> Result<()>, resigned: impl Fn(i32, i32)) {
        let (elect, resign) = self.leadership_moves();
        for (index, leader_epoch) in resign {
            resigned(index, leader_epoch);
        }
        for (index, leader_epoch) in elect {
            if let Err(e) = elected(index, leader_epoch) {
                tracing::error!(topic = self.topic_name, partition = index, error = %e, "could not load a coordinator partition");
            }
        }
    }

    /// True while some partition is loading.
    pub(crate) fn any_loading(&self) -> bool {
        lock(&self.owned)
            .values()
            .any(|o| matches!(o, Ownership::Loading { .. }))
    }

    /// Ok when this node serves partition `index` now.
    pub(crate) fn check(&self, index: i32) -> Result<()> {
        match lock(&self.owned).get(&index) {
            Some(Ownership::Loaded { .. }) => Ok(()),
            Some(Ownership::Loading { .. }) => Err(BrokerError::CoordinatorLoadInProgress),
            None => Err(BrokerError::NotCoordinator),
        }
    }

    /// Visit every record and transaction marker of partition `index`, from the log
    /// start to the high watermark. Records without a key are not a coordinator's and
    /// are skipped.
    pub(crate) fn for_each_record(&self, index: i32, mut visit: impl FnMut(Replayed<'_>)) -> Result<()> {
        let (_, partition) = self.partition(index)?;
        partition.for_each_batch(|header, batch| {
            if header.is_control() {
                if let Some(marker) = strom_log::control::marker(batch) {
                    visit(Replayed::Marker {
                        producer_id: header.producer_id,
                        commit: marker.is_commit(),
                        offset: header.base_offset,
                    });
                }
                return Ok(());
            }
            let transaction = header.is_transactional().then_some(header.producer_id);
            let (_, records) = strom_log::record::decode_batch(batch)?;
            for record in &records {
                let Some(key) = record.key.as_deref() else {
                    continue;
                };
                let value = record.value.as_deref();
                visit(Replayed::Record {
                    key,
                    value,
                    offset: record.offset,
                    transaction,
                });
            }
            Ok(())
        })
    }

    /// Append `records` to partition `index` in one batch (transactional when a
    /// producer is given), timestamped by the broker's clock. Returns the partition
    /// to flush; nothing is appended for no records.
    pub(crate) fn append(
        &self,
        index: i32,
        records: &[KeyValue],
        producer: Option<ProducerIdAndEpoch>,
    ) -> Result<Arc<Partition>> {
        let (topic, partition) = self.partition(index)?;
        if records.is_empty() {
            return Ok(partition);
        }
        let now_ms = self.broker.clock().now_ms();
        let mut builder = match producer {
            Some(p) => RecordBatchBuilder::new()
                .producer(p.producer_id, p.producer_epoch, -1)
                .flags(true, false),
            None => RecordBatchBuilder::new(),
        };
        for record in records {
            builder.push(now_ms, Some(&record.key), record.value.as_deref());
        }
        let batch = builder.build()?;
        self.broker
            .append(&topic, &partition, &batch, AppendOrigin::Coordinator)?;
        Ok(partition)
    }

    /// Append, fsync and wait for the in-sync replicas, for callers already on the
    /// blocking pool.
    pub(crate) fn append_durably(&self, index: i32, records: &[KeyValue]) -> Result<()> {
        let partition = self.append(index, records, None).map_err(as_coordinator_error)?;
        let end = partition.log_end_offset();
        partition.flush()?;
        partition
            .wait_for_high_watermark_blocking(end, COORDINATOR_REPLICATION_TIMEOUT)
            .map_err(as_coordinator_error)
    }

    /// fsync a partition on the blocking pool, off the I/O threads, then wait until
    /// every in-sync replica has what was appended (a coordinator's write is acks=all,
    /// as in Kafka, so it survives the failover of its partition).
    pub(crate) async fn flush(partition: Arc<Partition>) -> Result<()> {
        let end = partition.log_end_offset();
        let synced = partition.clone();
        match tokio::task::spawn_blocking(move || synced.flush()).await {
            Ok(result) => result.map(|_| ())?,
            Err(e) => return Err(BrokerError::Storage(e.to_string())),
        }
        partition
            .wait_for_high_watermark(end, COORDINATOR_REPLICATION_TIMEOUT)
            .await
            .map_err(as_coordinator_error)
    }
}

/// A coordinator's write that failed in its partition, in the errors clients expect
/// from a coordinator (Kafka's mapping): the partition led elsewhere now is
/// NOT_COORDINATOR (look it up again), replicas that did not follow in time are
/// COORDINATOR_NOT_AVAILABLE (retry). A partition's own errors would be fatal or
/// meaningless to a producer's EndTxn or a consumer's OffsetCommit.
fn as_coordinator_error(error: BrokerError) -> BrokerError {
    match error {
        BrokerError::NotLeaderOrFollower | BrokerError::FencedLeaderEpoch { .. } => BrokerError::NotCoordinator,
        BrokerError::RequestTimedOut(_)
        | BrokerError::NotEnoughReplicas { .. }
        | BrokerError::UnknownTopicOrPartition => BrokerError::CoordinatorNotAvailable,
        other => other,
    }
}

/// Java's `String.hashCode` over UTF-16 code units, as Kafka uses to place a key.
pub(crate) fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The partition of a key among `partitions` (Kafka: `abs(hashCode) % partitions`).
pub(crate) fn partition_for(key: &str, partitions: i32) -> i32 {
    let hash = java_string_hash(key);
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::BrokerConfig;

    #[test]
    fn placement_matches_kafka() {
        // Values printed by Java's String.hashCode.
        assert_eq!(java_string_hash("my-group"), -1906497762);
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(java_string_hash("grüppe-😀"), -1039948164);
        assert_eq!(java_string_hash(""), 0);
    }

    fn shell(dir: &std::path::Path) -> CoordinatorLog {
        let broker = Broker::open(BrokerConfig::new(dir)).unwrap();
        CoordinatorLog::new(broker, "__consumer_offsets", 2, 1 << 20)
    }

    #[test]
    fn ownership_follows_elections_and_resignations_by_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let log = shell(dir.path());
        assert!(matches!(log.check(0), Err(BrokerError::NotCoordinator)));
        assert!(log.elect(0, 3));
        assert!(matches!(log.check(0), Err(BrokerError::CoordinatorLoadInProgress)));
        assert!(!log.elect(0, 3), "a repeated election does not reload");
        log.loaded(0, 3);
        assert!(log.check(0).is_ok());
        assert!(!log.resign(0, 2), "an older epoch's resignation is stale");
        assert!(log.check(0).is_ok());
        assert!(log.resign(0, 3));
        assert!(matches!(log.check(0), Err(BrokerError::NotCoordinator)));
        assert!(log.elect(0, 4));
        assert!(log.resign(0, 4));
        log.loaded(0, 4);
        assert!(
            matches!(log.check(0), Err(BrokerError::NotCoordinator)),
            "a load that finishes after its resignation does not serve"
        );
    }

    #[test]
    fn records_and_markers_replay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = shell(dir.path());
        let mut created = 0;
        let topic = log
            .topic(|t| {
                created = t.partition_count();
                Ok(())
            })
            .unwrap();
        assert_eq!(created, 2, "the creator sees the new topic");
        log.topic(|_| panic!("created once")).unwrap();
        let kv = |k: &str, v: Option<&str>| KeyValue {
            key: k.as_bytes().to_vec(),
            value: v.map(|v| v.as_bytes().to_vec()),
        };
        log.append_durably(1, &[kv("a", Some("1")), kv("b", None)]).unwrap();
        let producer = ProducerIdAndEpoch {
            producer_id: 7,
            producer_epoch: 0,
        };
        log.append(1, &[kv("c", Some("3"))], Some(producer)).unwrap();
        topic.partition(1).unwrap().append_marker(7, 0, true, 0).unwrap();
        let mut seen = Vec::new();
        log.for_each_record(1, |r| seen.push(format!("{r:?}"))).unwrap();
        assert_eq!(
            seen,
            [
                r#"Record { key: [97], value: Some([49]), offset: 0, transaction: None }"#,
                r#"Record { key: [98], value: None, offset: 1, transaction: None }"#,
                r#"Record { key: [99], value: Some([51]), offset: 2, transaction: Some(7) }"#,
                r#"Marker { producer_id: 7, commit: true, offset: 3 }"#,
            ]
        );
        let mut other = 0;
        log.for_each_record(0, |_| other += 1).unwrap();
        assert_eq!(other, 0);
    }
}
