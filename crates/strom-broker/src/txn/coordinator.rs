//! `TxnCoordinator`: Kafka's transaction coordinator on one node. Each transactional
//! id has metadata (producer id and epoch, state, partitions, timeout) persisted to
//! `__transaction_state` on every state change, fsync'ed before the client is
//! answered. Ending a transaction is two-phase, as in Kafka: the Prepare state is
//! made durable, then a marker is written (and fsync'ed) to every partition of the
//! transaction, then the Complete state is written. A restart finds any transaction
//! left in a Prepare state and writes its markers again, so every transaction ends
//! committed or aborted in all of its partitions.
//!
//! All operations do blocking I/O: callers run them on the blocking pool. Each
//! transactional id has its own mutex; the map lock is never held during I/O.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use strom_log::RecordBatchBuilder;

use super::state_record::{self, TxnMetadata, TxnState};
use crate::broker::{AppendOrigin, Broker};
use crate::error::{BrokerError, Result};
use crate::group::{offsets_record, GroupCoordinator, OFFSETS_TOPIC};
use crate::partition::Partition;

pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// `transaction.state.log.num.partitions`
    pub state_topic_partitions: i32,
    /// `transaction.state.log.segment.bytes`
    pub state_segment_bytes: i64,
    /// `transaction.max.timeout.ms`
    pub max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`
    pub abort_check_interval_ms: u64,
    /// `transactional.id.expiration.ms`
    pub id_expiration_ms: i64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            state_topic_partitions: 50,
            state_segment_bytes: 104_857_600,
            max_timeout_ms: 900_000,
            abort_check_interval_ms: 10_000,
            id_expiration_ms: 604_800_000,
        }
    }
}

type TxnRef = Arc<Mutex<TxnMetadata>>;

pub struct TxnCoordinator {
    broker: Arc<Broker>,
    groups: Arc<GroupCoordinator>,
    config: TxnConfig,
    txns: Mutex<HashMap<String, TxnRef>>,
}

fn lock(txn: &TxnRef) -> MutexGuard<'_, TxnMetadata> {
    txn.lock().unwrap_or_else(|e| e.into_inner())
}

impl TxnCoordinator {
    /// Load every transaction from `__transaction_state` and finish those a crash
    /// left between Prepare and Complete.
    pub fn open(broker: Arc<Broker>, groups: Arc<GroupCoordinator>, config: TxnConfig) -> Result<Arc<TxnCoordinator>> {
        let coordinator = Arc::new(TxnCoordinator {
            broker,
            groups,
            config,
            txns: Mutex::new(HashMap::new()),
        });
        coordinator.load()?;
        Ok(coordinator)
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    fn txns(&self) -> MutexGuard<'_, HashMap<String, TxnRef>> {
        self.txns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> i64 {
        self.broker.clock().now_ms()
    }

    /// The state topic, created (compacted) on first use.
    pub fn state_topic(&self) -> Result<Arc<crate::topic::Topic>> {
        let partitions = self.config.state_topic_partitions;
        self.broker
            .internal_topic(TRANSACTION_STATE_TOPIC, partitions, self.config.state_segment_bytes)
    }

    /// Make a state change durable: append the metadata record and fsync.
    fn persist(&self, meta: &TxnMetadata) -> Result<()> {
        let topic = self.state_topic()?;
        let index = offsets_record::partition_for(&meta.transactional_id, topic.partition_count());
        let partition = topic.partition(index).ok_or(BrokerError::CoordinatorNotAvailable)?;
        let mut builder = RecordBatchBuilder::new();
        let value = state_record::encode_value(meta);
        builder.push(
            self.now_ms(),
            Some(&state_record::encode_key(&meta.transactional_id)),
            Some(&value),
        );
        let batch = builder.build()?;
        self.broker
            .append(&topic, &partition, &batch, AppendOrigin::Coordinator)?;
        partition.flush()?;
        Ok(())
    }

    fn lookup(&self, transactional_id: &str) -> Option<TxnRef> {
        self.txns().get(transactional_id).cloned()
    }

    /// InitProducerId with a transactional id: a producer id and a new epoch, which
    /// fences every older producer of that id. An open transaction is aborted first.
    pub fn init_producer_id(&self, transactional_id: &str, timeout_ms: i32) -> Result<(i64, i16)> {
        if transactional_id.is_empty() {
            return Err(BrokerError::InvalidRequest("empty transactional id".into()));
        }
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(BrokerError::InvalidTransactionTimeout(timeout_ms));
        }
        self.state_topic()?;
        let now = self.now_ms();
        let txn = match self.lookup(transactional_id) {
            Some(txn) => txn,
            None => {
                let meta = TxnMetadata {
                    transactional_id: transactional_id.to_string(),
                    producer_id: self.broker.next_producer_id()?,
                    producer_epoch: -1,
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    last_update_ms: now,
                    start_ms: -1,
                };
                self.txns()
                    .entry(transactional_id.to_string())
                    .or_insert_with(|| Arc::new(Mutex::new(meta)))
                    .clone()
            }
        };
        let mut meta = lock(&txn);
        match meta.state {
            TxnState::Ongoing => {
                // A new instance of the producer: abort what the old one left open,
                // with a bumped epoch so the old one is fenced.
                self.bump_epoch(&mut meta)?;
                self.complete(&mut meta, false)?;
                meta.state = TxnState::Empty;
                meta.partitions.clear();
                meta.timeout_ms = timeout_ms;
                meta.last_update_ms = self.now_ms();
                self.persist(&meta)?;
                return Ok((meta.producer_id, meta.producer_epoch));
            }
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                let commit = meta.state == TxnState::PrepareCommit;
                self.complete(&mut meta, commit)?;
            }
            _ => {}
        }
        self.bump_epoch(&mut meta)?;
        meta.state = TxnState::Empty;
        meta.partitions.clear();
        meta.timeout_ms = timeout_ms;
        meta.start_ms = -1;
        meta.last_update_ms = self.now_ms();
        self.persist(&meta)?;
        Ok((meta.producer_id, meta.producer_epoch))
    }

    /// The next epoch; a new producer id when the epoch would overflow.
    fn bump_epoch(&self, meta: &mut TxnMetadata) -> Result<()> {
        if meta.producer_epoch >= i16::MAX - 1 {
            meta.producer_id = self.broker.next_producer_id()?;
            meta.producer_epoch = 0;
        } else {
            meta.producer_epoch += 1;
        }
        Ok(())
    }

    /// The metadata of a transactional id, checked against the producer's id and epoch.
    fn checked(&self, transactional_id: &str, producer_id: i64, producer_epoch: i16) -> Result<TxnRef> {
        let txn = self
            .lookup(transactional_id)
            .ok_or(BrokerError::InvalidProducerIdMapping)?;
        {
            let meta = lock(&txn);
            if meta.producer_id != producer_id {
                return Err(BrokerError::InvalidProducerIdMapping);
            }
            if meta.producer_epoch != producer_epoch {
                return Err(BrokerError::ProducerFenced(format!(
                    "epoch {producer_epoch} is not the current {}",
                    meta.producer_epoch
                )));
            }
        }
        Ok(txn)
    }

    fn add(&self, meta: &mut TxnMetadata, partitions: impl IntoIterator<Item = (String, i32)>) -> Result<()> {
        match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return Err(BrokerError::ConcurrentTransactions)
            }
            TxnState::Dead => return Err(BrokerError::InvalidTxnState("the transactional id is dead".into())),
            _ => {}
        }
        let before = meta.partitions.len();
        meta.partitions.extend(partitions);
        if meta.state != TxnState::Ongoing {
            meta.state = TxnState::Ongoing;
            meta.start_ms = self.now_ms();
        } else if meta.partitions.len() == before {
            return Ok(());
        }
        meta.last_update_ms = self.now_ms();
        self.persist(meta)
    }

    /// AddPartitionsToTxn: every partition must exist; then all are added at once.
    pub fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Result<()>>> {
        let txn = self.checked(transactional_id, producer_id, producer_epoch)?;
        let missing: Vec<bool> = partitions
            .iter()
            .map(|(t, p)| self.broker.partition(t, *p).is_err())
            .collect();
        if missing.iter().any(|m| *m) {
            return Ok(missing
                .iter()
                .map(|m| {
                    if *m {
                        Err(BrokerError::UnknownTopicOrPartition)
                    } else {
                        Err(BrokerError::OperationNotAttempted)
                    }
                })
                .collect());
        }
        let mut meta = lock(&txn);
        self.add(&mut meta, partitions.iter().cloned())?;
        Ok(partitions.iter().map(|_| Ok(())).collect())
    }

    /// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction.
    pub fn add_offsets(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group_id: &str,
    ) -> Result<()> {
        let txn = self.checked(transactional_id, producer_id, producer_epoch)?;
        let index = self.groups.offsets_partition_index(group_id)?;
        let mut meta = lock(&txn);
        self.add(&mut meta, [(OFFSETS_TOPIC.to_string(), index)])
    }

    /// EndTxn: commit or abort the open transaction.
    pub fn end_txn(&self, transactional_id: &str, producer_id: i64, producer_epoch: i16, commit: bool) -> Result<()> {
        let txn = self.checked(transactional_id, producer_id, producer_epoch)?;
        let mut meta = lock(&txn);
        match (meta.state, commit) {
            (TxnState::Ongoing, _) => self.complete(&mut meta, commit),
            // A retried EndTxn whose first attempt succeeded.
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(()),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => self.complete(&mut meta, commit),
            (state, _) => Err(BrokerError::InvalidTxnState(format!(
                "cannot {} a transaction in state {}",
                if commit { "commit" } else { "abort" },
                state.name()
            ))),
        }
    }

    /// Prepare, write the markers, complete. Idempotent from the Prepare state on.
    fn complete(&self, meta: &mut TxnMetadata, commit: bool) -> Result<()> {
        let prepare = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        if meta.state != prepare {
            meta.state = prepare;
            meta.last_update_ms = self.now_ms();
            self.persist(meta)?;
        }
        for (topic, index) in &meta.partitions {
            let partition = match self.broker.partition(topic, *index) {
                Ok(p) => p,
                // A deleted topic takes its part of the transaction with it.
                Err(_) => continue,
            };
            write_marker(&partition, meta.producer_id, meta.producer_epoch, commit)?;
            if topic == OFFSETS_TOPIC {
                self.groups.complete_txn_offsets(*index, meta.producer_id, commit);
            }
        }
        meta.state = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        meta.partitions.clear();
        meta.last_update_ms = self.now_ms();
        self.persist(meta)
    }

    /// Abort transactions open longer than their timeout, fencing their producer
    /// (its next request gets a fencing error). Returns how many were aborted.
    pub fn abort_timed_out(&self) -> usize {
        let now = self.now_ms();
        let txns: Vec<TxnRef> = self.txns().values().cloned().collect();
        let mut aborted = 0;
        for txn in txns {
            let mut meta = lock(&txn);
            if meta.state != TxnState::Ongoing || meta.start_ms + i64::from(meta.timeout_ms) > now {
                continue;
            }
            tracing::info!(transactional_id = %meta.transactional_id, "aborting timed-out transaction");
            let result = self.bump_epoch(&mut meta).and_then(|_| self.complete(&mut meta, false));
            match result {
                Ok(()) => aborted += 1,
                Err(e) => tracing::warn!(transactional_id = %meta.transactional_id, error = %e, "abort failed"),
            }
        }
        aborted
    }

    /// Which of `partitions` are part of the transaction (AddPartitionsToTxn
    /// `verify_only`, KIP-890): each gets Ok or INVALID_TXN_STATE.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Result<()>>> {
        let txn = self.checked(transactional_id, producer_id, producer_epoch)?;
        let meta = lock(&txn);
        Ok(partitions
            .iter()
            .map(|p| {
                if meta.state == TxnState::Ongoing && meta.partitions.contains(p) {
                    Ok(())
                } else {
                    Err(BrokerError::InvalidTxnState(format!(
                        "{}-{} is not in the transaction",
                        p.0, p.1
                    )))
                }
            })
            .collect())
    }

    /// Forget transactional ids idle for `transactional.id.expiration.ms` (a tombstone
    /// in `__transaction_state`); open transactions are never expired.
    pub fn expire_ids(&self) -> usize {
        let now = self.now_ms();
        let txns: Vec<(String, TxnRef)> = self.txns().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut expired = 0;
        for (id, txn) in txns {
            let meta = lock(&txn);
            let idle = matches!(
                meta.state,
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
            );
            if !idle || meta.last_update_ms + self.config.id_expiration_ms > now {
                continue;
            }
            if let Err(e) = self.write_tombstone(&id) {
                tracing::warn!(transactional_id = %id, error = %e, "expiring transactional id failed");
                continue;
            }
            drop(meta);
            self.txns().remove(&id);
            expired += 1;
        }
        expired
    }

    fn write_tombstone(&self, transactional_id: &str) -> Result<()> {
        let topic = self.state_topic()?;
        let index = offsets_record::partition_for(transactional_id, topic.partition_count());
        let partition = topic.partition(index).ok_or(BrokerError::CoordinatorNotAvailable)?;
        let mut builder = RecordBatchBuilder::new();
        builder.push(self.now_ms(), Some(&state_record::encode_key(transactional_id)), None);
        let batch = builder.build()?;
        self.broker
            .append(&topic, &partition, &batch, AppendOrigin::Coordinator)?;
        partition.flush()?;
        Ok(())
    }

    pub fn describe(&self, transactional_id: &str) -> Option<TxnMetadata> {
        self.lookup(transactional_id).map(|txn| lock(&txn).clone())
    }

    /// All transactional ids' metadata, sorted by id.
    pub fn list(&self) -> Vec<TxnMetadata> {
        let txns: Vec<TxnRef> = self.txns().values().cloned().collect();
        let mut all: Vec<TxnMetadata> = txns.iter().map(|t| lock(t).clone()).collect();
        all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        all
    }

    fn load(&self) -> Result<()> {
        let Some(topic) = self.broker.topic(TRANSACTION_STATE_TOPIC) else {
            return Ok(());
        };
        let mut loaded: HashMap<String, TxnMetadata> = HashMap::new();
        for partition in topic.partitions() {
            partition.for_each_batch(|header, batch| {
                if header.is_control() {
                    return Ok(());
                }
                let (header, section) = strom_log::record::decompress_records_section(batch)?;
                for record in strom_log::record::decode_record_entries(&header, &section)? {
                    let key = record
                        .key
                        .and_then(|k| section.get(k))
                        .and_then(state_record::decode_key);
                    let Some(id) = key else { continue };
                    match record
                        .value
                        .and_then(|v| section.get(v))
                        .and_then(|v| state_record::decode_value(&id, v))
                    {
                        Some(meta) => loaded.insert(id, meta),
                        None => loaded.remove(&id),
                    };
                }
                Ok(())
            })?;
        }
        let unfinished: Vec<String> = loaded
            .values()
            .filter(|m| {
                matches!(
                    m.state,
                    TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence
                )
            })
            .map(|m| m.transactional_id.clone())
            .collect();
        tracing::info!(
            transactions = loaded.len(),
            unfinished = unfinished.len(),
            "loaded transactions"
        );
        {
            let mut txns = self.txns();
            for (id, meta) in loaded {
                txns.insert(id, Arc::new(Mutex::new(meta)));
            }
        }
        for id in unfinished {
            if let Some(txn) = self.lookup(&id) {
                let mut meta = lock(&txn);
                let commit = meta.state == TxnState::PrepareCommit;
                self.complete(&mut meta, commit)?;
            }
        }
        Ok(())
    }
}

/// Write a COMMIT or ABORT marker to one partition and make it durable.
fn write_marker(partition: &Partition, producer_id: i64, producer_epoch: i16, commit: bool) -> Result<()> {
    partition.append_marker(producer_id, producer_epoch, commit, 0)?;
    partition.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{BrokerConfig, NewTopic};
    use crate::group::GroupConfig;

    struct Node {
        broker: Arc<Broker>,
        txns: Arc<TxnCoordinator>,
    }

    fn open(dir: &std::path::Path) -> Node {
        let broker = Broker::open(BrokerConfig::new(dir)).unwrap();
        let groups_config = GroupConfig {
            offsets_topic_partitions: 2,
            ..Default::default()
        };
        let groups = GroupCoordinator::open(broker.clone(), groups_config).unwrap();
        let config = TxnConfig {
            state_topic_partitions: 2,
            ..Default::default()
        };
        let txns = TxnCoordinator::open(broker.clone(), groups, config).unwrap();
        Node { broker, txns }
    }

    fn transactional_batch(pid: i64, epoch: i16, sequence: i32) -> Vec<u8> {
        let mut builder = RecordBatchBuilder::new()
            .producer(pid, epoch, sequence)
            .flags(true, false);
        builder.push(1, Some(b"k"), Some(b"v"));
        builder.push(2, Some(b"k"), Some(b"v"));
        builder.build().unwrap()
    }

    #[test]
    fn an_aborted_transaction_is_fenced_listed_and_skipped_by_read_committed() {
        let dir = tempfile::tempdir().unwrap();
        let node = open(dir.path());
        node.broker
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
        let (pid, epoch) = node.txns.init_producer_id("app", 60_000).unwrap();
        assert!(matches!(
            node.txns.init_producer_id("app", 1_000_000_000),
            Err(BrokerError::InvalidTransactionTimeout(_))
        ));
        node.txns.add_partitions("app", pid, epoch, &[("t".into(), 0)]).unwrap();
        let partition = node.broker.partition("t", 0).unwrap();
        let topic = node.broker.topic("t").unwrap();
        node.broker
            .append(
                &topic,
                &partition,
                &transactional_batch(pid, epoch, 0),
                AppendOrigin::Client,
            )
            .unwrap();
        assert_eq!((partition.high_watermark(), partition.last_stable_offset()), (2, 0));
        assert!(
            partition.read_isolated(0, 1 << 20, true).unwrap().records.is_empty(),
            "nothing stable yet"
        );

        // A second instance fences the first and aborts its open transaction.
        let (pid2, epoch2) = node.txns.init_producer_id("app", 60_000).unwrap();
        assert_eq!((pid2, epoch2), (pid, epoch + 1));
        assert!(matches!(
            node.txns.end_txn("app", pid, epoch, true),
            Err(BrokerError::ProducerFenced(_))
        ));
        assert_eq!(
            (partition.high_watermark(), partition.last_stable_offset()),
            (3, 3),
            "abort marker at 2"
        );
        let read = partition.read_isolated(0, 1 << 20, true).unwrap();
        let aborted = read.aborted.unwrap();
        assert_eq!(
            (aborted.len(), aborted[0].producer_id, aborted[0].first_offset),
            (1, pid, 0)
        );
        let stale = transactional_batch(pid, epoch, 2);
        assert!(matches!(
            node.broker
                .append(&topic, &partition, &stale.clone(), AppendOrigin::Client),
            Err(BrokerError::InvalidProducerEpoch(_))
        ));
        assert_eq!(node.txns.describe("app").unwrap().state, TxnState::Empty);
    }

    #[test]
    fn a_transaction_left_in_prepare_commit_is_finished_on_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (pid, epoch) = {
            let node = open(dir.path());
            node.broker
                .create_topic(
                    NewTopic {
                        name: "t".into(),
                        num_partitions: 2,
                        replication_factor: 1,
                        ..Default::default()
                    },
                    false,
                )
                .unwrap();
            let (pid, epoch) = node.txns.init_producer_id("app", 60_000).unwrap();
            node.txns
                .add_partitions("app", pid, epoch, &[("t".into(), 0), ("t".into(), 1)])
                .unwrap();
            let topic = node.broker.topic("t").unwrap();
            for index in 0..2 {
                let partition = topic.partition(index).unwrap();
                node.broker
                    .append(
                        &topic,
                        &partition,
                        &transactional_batch(pid, epoch, 0),
                        AppendOrigin::Client,
                    )
                    .unwrap();
            }
            // The coordinator dies right after making PrepareCommit durable.
            let txn = node.txns.lookup("app").unwrap();
            let mut meta = lock(&txn);
            meta.state = TxnState::PrepareCommit;
            node.txns.persist(&meta).unwrap();
            (pid, epoch)
        };
        let node = open(dir.path());
        let meta = node.txns.describe("app").unwrap();
        assert_eq!(
            (meta.state, meta.producer_id, meta.producer_epoch),
            (TxnState::CompleteCommit, pid, epoch)
        );
        for index in 0..2 {
            let partition = node.broker.partition("t", index).unwrap();
            assert_eq!(partition.last_stable_offset(), 3, "committed in every partition");
            let read = partition.read_isolated(0, 1 << 20, true).unwrap();
            assert!(read.aborted.unwrap().is_empty());
            assert_eq!(strom_log::BatchIter::new(&read.records).count(), 2, "data and marker");
        }
    }
}
