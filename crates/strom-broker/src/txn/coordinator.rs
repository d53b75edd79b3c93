//! `TxnCoordinator`: Kafka's transaction coordinator on one node. Each transactional
//! id has metadata (producer id and epoch, state, partitions, timeout) persisted to
//! `__transaction_state` on every state change, fsync'ed before the client is
//! answered. Ending a transaction is two-phase, as in Kafka: the Prepare state is
//! made durable, then a marker is written (and fsync'ed) to every partition of the
//! transaction, then the Complete state is written. Loading a partition finds any
//! transaction left in a Prepare state and writes its markers again, so every
//! transaction ends committed or aborted in all of its partitions. Markers for
//! partitions led by other nodes go to their leader (`markers.rs`); when one cannot be
//! written the transaction stays in its Prepare state, and the client's EndTxn retry or
//! the periodic check ([`TxnCoordinator::retry_unfinished`]) writes the rest. Loading
//! and unloading per partition is in `loader.rs`, ListTransactions' filter in
//! `listing.rs`.
//!
//! Time: transaction start, last update and timeouts are wall-clock milliseconds from
//! the broker's injected clock (`Broker::clock`), so tests move them with a
//! `ManualClock`; the periodic abort/expiry check is driven by its caller.
//!
//! All operations but TxnOffsetCommit do blocking I/O: callers run them on the
//! blocking pool. Each transactional id has its own mutex; the map lock is never held
//! during I/O.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::remote::RemoteMarkers;
use super::state_record::{self, TxnMetadata, TxnState};
use crate::broker::Broker;
use crate::coordinator_log::{CoordinatorLog, KeyValue, ProducerIdAndEpoch};
use crate::error::{BrokerError, Result};
use crate::group::{GroupCoordinator, OffsetCommit, TopicPartition, OFFSETS_TOPIC};
use crate::topic::Topic;

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
    /// `transaction.partition.verification.enable`: a partition leader asks the
    /// coordinator before a transaction opens in its partition (KIP-890).
    pub partition_verification: bool,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            state_topic_partitions: 50,
            state_segment_bytes: 104_857_600,
            max_timeout_ms: 900_000,
            abort_check_interval_ms: 10_000,
            id_expiration_ms: 604_800_000,
            partition_verification: true,
        }
    }
}

/// An InitProducerId request in the broker's terms.
#[derive(Debug, Clone, Default)]
pub struct InitProducerId {
    /// `None` for an idempotent producer outside transactions.
    pub transactional_id: Option<String>,
    pub transaction_timeout_ms: i32,
    /// The producer's current id and epoch (KIP-360), or -1 / -1.
    pub producer_id: i64,
    pub producer_epoch: i16,
}

pub(super) type TxnRef = Arc<Mutex<TxnMetadata>>;

pub struct TxnCoordinator {
    pub(super) broker: Arc<Broker>,
    pub(super) groups: Arc<GroupCoordinator>,
    pub(super) config: TxnConfig,
    /// `__transaction_state`: its partitions, which of them this node coordinates, I/O.
    pub(super) log: CoordinatorLog,
    pub(super) txns: Mutex<HashMap<String, TxnRef>>,
    /// Writes markers on the nodes that lead the other partitions of a transaction.
    pub(super) remote: Arc<dyn RemoteMarkers>,
}

pub(super) fn lock(txn: &TxnRef) -> MutexGuard<'_, TxnMetadata> {
    crate::sync::lock(txn)
}

impl TxnCoordinator {
    /// Create the coordinator and load every `__transaction_state` partition: this node
    /// leads them all (see [`TxnCoordinator::on_elected`]). Transactions a crash left
    /// between Prepare and Complete are finished (or retried later, see
    /// [`TxnCoordinator::retry_unfinished`]). `remote` reaches the other nodes.
    pub fn open(
        broker: Arc<Broker>,
        groups: Arc<GroupCoordinator>,
        config: TxnConfig,
        remote: Arc<dyn RemoteMarkers>,
    ) -> Result<Arc<TxnCoordinator>> {
        let log = CoordinatorLog::new(
            broker.clone(),
            TRANSACTION_STATE_TOPIC,
            config.state_topic_partitions,
            config.state_segment_bytes,
        );
        let coordinator = Arc::new(TxnCoordinator {
            broker,
            groups,
            config,
            log,
            txns: Mutex::new(HashMap::new()),
            remote,
        });
        if let Some(topic) = coordinator.log.existing_topic() {
            coordinator.elect_all(&topic)?;
        }
        Ok(coordinator)
    }

    /// Elects the partitions this node leads, at their current leader epoch.
    fn elect_all(&self, topic: &Topic) -> Result<()> {
        for partition in topic.partitions().iter().filter(|p| p.replica().is_leader()) {
            self.on_elected(partition.index(), partition.leader_epoch())?;
        }
        Ok(())
    }

    /// The internal partition that coordinates `key` (a group id or transactional id).
    pub(crate) fn coordinator_partition(&self, key: &str) -> i32 {
        self.log.partition_for(key)
    }

    /// Takes the internal partitions this node came to lead and gives up those it no
    /// longer leads (after the metadata moved leadership). Blocking I/O (loading).
    pub fn follow_leadership(&self) {
        self.log.follow_leadership(
            |index, epoch| self.on_elected(index, epoch),
            |index, epoch| self.on_resigned(index, epoch),
        );
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    pub(super) fn txns(&self) -> MutexGuard<'_, HashMap<String, TxnRef>> {
        crate::sync::lock(&self.txns)
    }

    pub(super) fn now_ms(&self) -> i64 {
        self.broker.clock().now_ms()
    }

    /// The state topic, created (compacted) on first use; this node coordinates the
    /// partitions of a topic it created.
    pub fn state_topic(&self) -> Result<Arc<Topic>> {
        self.log.topic(|topic| self.elect_all(topic))
    }

    /// The state partition of a transactional id, when this node serves it now.
    fn owner(&self, transactional_id: &str) -> Result<i32> {
        self.state_topic()?;
        let index = self.log.partition_for(transactional_id);
        self.log.check(index)?;
        Ok(index)
    }

    /// Make a state change durable: append the metadata record and fsync.
    pub(super) fn persist(&self, meta: &TxnMetadata) -> Result<()> {
        let record = KeyValue {
            key: state_record::encode_key(&meta.transactional_id),
            value: Some(state_record::encode_value(meta)),
        };
        let index = self.log.partition_for(&meta.transactional_id);
        self.log.append_durably(index, &[record])
    }

    /// A transactional id's metadata, when this node coordinates it.
    fn lookup(&self, transactional_id: &str) -> Result<Option<TxnRef>> {
        self.owner(transactional_id)?;
        Ok(self.txns().get(transactional_id).cloned())
    }

    /// InitProducerId. With a transactional id: a producer id and a new epoch, which
    /// fences every older producer of that id (an open transaction is aborted first).
    /// Without: an idempotent producer gets a new id, or (KIP-360) its epoch bumped.
    pub fn init_producer_id(&self, request: &InitProducerId) -> Result<ProducerIdAndEpoch> {
        let Some(transactional_id) = &request.transactional_id else {
            let (id, epoch) = (request.producer_id, request.producer_epoch);
            if id >= 0 && (0..i16::MAX - 1).contains(&epoch) {
                return Ok(ProducerIdAndEpoch {
                    producer_id: id,
                    producer_epoch: epoch + 1,
                });
            }
            return Ok(ProducerIdAndEpoch {
                producer_id: self.broker.next_producer_id()?,
                producer_epoch: 0,
            });
        };
        self.init_transactional(transactional_id, request.transaction_timeout_ms)
    }

    fn init_transactional(&self, transactional_id: &str, timeout_ms: i32) -> Result<ProducerIdAndEpoch> {
        if transactional_id.is_empty() {
            return Err(BrokerError::InvalidRequest("empty transactional id".into()));
        }
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(BrokerError::InvalidTransactionTimeout(timeout_ms));
        }
        let now = self.now_ms();
        let txn = match self.lookup(transactional_id)? {
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
                return Ok(producer_of(&meta));
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
        Ok(producer_of(&meta))
    }

    /// The next epoch; a new producer id when the epoch would overflow.
    pub(super) fn bump_epoch(&self, meta: &mut TxnMetadata) -> Result<()> {
        if meta.producer_epoch >= i16::MAX - 1 {
            meta.producer_id = self.broker.next_producer_id()?;
            meta.producer_epoch = 0;
        } else {
            meta.producer_epoch += 1;
        }
        Ok(())
    }

    /// The metadata of a transactional id, checked against the producer's id and
    /// epoch: INVALID_PRODUCER_ID_MAPPING for another producer (or an unknown id),
    /// PRODUCER_FENCED for an older epoch of this one.
    fn checked(&self, transactional_id: &str, producer: ProducerIdAndEpoch) -> Result<TxnRef> {
        let txn = self
            .lookup(transactional_id)?
            .ok_or(BrokerError::InvalidProducerIdMapping)?;
        {
            let meta = lock(&txn);
            if meta.producer_id != producer.producer_id {
                return Err(BrokerError::InvalidProducerIdMapping);
            }
            if meta.producer_epoch != producer.producer_epoch {
                return Err(BrokerError::ProducerFenced(format!(
                    "epoch {} is not the current {}",
                    producer.producer_epoch, meta.producer_epoch
                )));
            }
        }
        Ok(txn)
    }

    fn add(&self, meta: &mut TxnMetadata, partitions: impl IntoIterator<Item = TopicPartition>) -> Result<()> {
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
        producer: ProducerIdAndEpoch,
        partitions: &[TopicPartition],
    ) -> Result<Vec<Result<()>>> {
        let txn = self.checked(transactional_id, producer)?;
        let missing: Vec<bool> = partitions
            .iter()
            .map(|tp| !self.broker.partition_exists(&tp.topic, tp.partition))
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
    pub fn add_offsets(&self, transactional_id: &str, producer: ProducerIdAndEpoch, group_id: &str) -> Result<()> {
        let txn = self.checked(transactional_id, producer)?;
        let index = self.groups.offsets_partition_index(group_id)?;
        let mut meta = lock(&txn);
        self.add(&mut meta, [TopicPartition::new(OFFSETS_TOPIC, index)])
    }

    /// TxnOffsetCommit: the producer must own the transactional id at its current
    /// epoch; then the group coordinator writes the offsets into the transaction.
    pub async fn txn_offset_commit(
        &self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        commit: OffsetCommit,
    ) -> Result<Vec<Result<()>>> {
        self.checked(transactional_id, producer)?;
        self.groups.txn_offset_commit(commit, producer).await
    }

    /// EndTxn: commit or abort the open transaction.
    pub fn end_txn(&self, transactional_id: &str, producer: ProducerIdAndEpoch, commit: bool) -> Result<()> {
        let txn = self.checked(transactional_id, producer)?;
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
    pub(super) fn complete(&self, meta: &mut TxnMetadata, commit: bool) -> Result<()> {
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
        self.write_markers(meta, commit)?;
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

    /// Finishes transactions left in a Prepare state because a marker could not be
    /// written (a leader was down or unreachable) and whose client did not retry.
    /// Returns how many were finished.
    pub fn retry_unfinished(&self) -> usize {
        let txns: Vec<TxnRef> = self.txns().values().cloned().collect();
        let mut finished = 0;
        for txn in txns {
            let mut meta = lock(&txn);
            let commit = match meta.state {
                TxnState::PrepareCommit => true,
                TxnState::PrepareAbort | TxnState::PrepareEpochFence => false,
                _ => continue,
            };
            match self.complete(&mut meta, commit) {
                Ok(()) => finished += 1,
                Err(e) => {
                    tracing::debug!(transactional_id = %meta.transactional_id, error = %e, "transaction still unfinished")
                }
            }
        }
        finished
    }

    /// Which of `partitions` are part of the transaction (AddPartitionsToTxn
    /// `verify_only`, KIP-890): each gets Ok or INVALID_TXN_STATE.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer: ProducerIdAndEpoch,
        partitions: &[TopicPartition],
    ) -> Result<Vec<Result<()>>> {
        let txn = self.checked(transactional_id, producer)?;
        let meta = lock(&txn);
        Ok(partitions
            .iter()
            .map(|tp| {
                if meta.state == TxnState::Ongoing && meta.partitions.contains(tp) {
                    Ok(())
                } else {
                    Err(BrokerError::InvalidTxnState(format!(
                        "{}-{} is not in the transaction",
                        tp.topic, tp.partition
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
            let tombstone = KeyValue {
                key: state_record::encode_key(&id),
                value: None,
            };
            if let Err(e) = self.log.append_durably(self.log.partition_for(&id), &[tombstone]) {
                tracing::warn!(transactional_id = %id, error = %e, "expiring transactional id failed");
                continue;
            }
            drop(meta);
            self.txns().remove(&id);
            expired += 1;
        }
        expired
    }

    /// DescribeTransactions: `None` for an id this coordinator does not know.
    pub fn describe(&self, transactional_id: &str) -> Result<Option<TxnMetadata>> {
        Ok(self.lookup(transactional_id)?.map(|txn| lock(&txn).clone()))
    }
}

fn producer_of(meta: &TxnMetadata) -> ProducerIdAndEpoch {
    ProducerIdAndEpoch {
        producer_id: meta.producer_id,
        producer_epoch: meta.producer_epoch,
    }
}

#[cfg(test)]
mod tests;
