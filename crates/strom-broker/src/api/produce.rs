//! Produce: append each partition's batches in request order, then answer when they are
//! as durable as `acks` asks.
//!
//! The append happens inside [`BrokerApi::produce`], before it returns, so a front-end
//! that calls it for each request in turn keeps the connection's order. It runs on the
//! caller's thread: it validates headers and copies the batches into the page cache
//! (no fsync, no reads), which costs less than a hand-off to the blocking pool. The
//! wait for durability (the group-committed fsync today, the in-sync replicas later) is
//! the returned [`ProduceFuture`], so a connection can read and append its next
//! requests meanwhile and one fsync covers many pipelined batches.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{BrokerApi, TopicRef};
use crate::blocking::offload;
use crate::caller::{Caller, Operation, Resource};
use crate::coordinator_log::ProducerIdAndEpoch;
use crate::error::{BrokerError, Result};
use crate::group::TopicPartition;
use crate::partition::{AppendOrigin, Partition};
use crate::producer_state::TxnGuard;

/// How durable a produce must be before it is answered.
///
/// Durability policy (see docs/cluster.md): an acks=all batch is answered once every
/// in-sync replica has it on disk — the leader fsyncs it, and a follower fsyncs what it
/// fetched before its next fetch reports the new position, which is what moves the
/// high watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Not answered at all (Kafka's acks=0).
    None,
    /// Answered after the leader's append (acks=1).
    Leader,
    /// Answered once every in-sync replica has it; on one node, after the fsync (acks=-1).
    All,
}

impl TryFrom<i16> for Acks {
    type Error = BrokerError;

    fn try_from(acks: i16) -> Result<Acks> {
        match acks {
            0 => Ok(Acks::None),
            1 => Ok(Acks::Leader),
            -1 => Ok(Acks::All),
            _ => Err(BrokerError::InvalidRequiredAcks),
        }
    }
}

/// A produce request in the broker's terms.
#[derive(Debug)]
pub struct ProduceRequest {
    pub acks: Acks,
    /// How long to wait for replicas (`request.timeout.ms`); one node never waits for any.
    pub timeout: Duration,
    pub transactional_id: Option<String>,
    pub partitions: Vec<ProducePartition>,
    pub origin: AppendOrigin,
}

/// One partition's batches.
#[derive(Debug)]
pub struct ProducePartition {
    pub topic: TopicRef,
    pub partition: i32,
    /// Record batches as the client sent them (None or empty: nothing to append).
    pub records: Option<Bytes>,
    /// What [`BrokerApi::verify_transactions`] found (KIP-890); `NotChecked` before.
    pub txn: TxnCheck,
}

/// The coordinator's word on a transactional batch that opens a transaction in its
/// partition (KIP-890 part 1).
#[derive(Debug, Default)]
pub enum TxnCheck {
    /// Not asked: not transactional, the transaction is open here already, or
    /// verification is off.
    #[default]
    NotChecked,
    /// The partition is in the producer's open transaction; the partition's guard.
    Verified(u64),
    /// The coordinator said no, or could not be asked: the batch is refused with this.
    Refused(BrokerError),
}

/// Where a partition's batches went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    pub base_offset: i64,
    /// LogAppendTime topics: the time stamped on the batches; otherwise -1.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

/// The outcome of a produce, per partition in request order, once durable enough.
pub struct ProduceFuture {
    results: Vec<Result<Produced>>,
    /// Partitions to fsync before answering: (index in `results`, partition).
    to_flush: Vec<(usize, Arc<Partition>)>,
    /// acks=all: partitions whose high watermark must pass an offset before answering
    /// (index in `results`, partition, the offset after the appended batches).
    to_replicate: Vec<(usize, Arc<Partition>, i64)>,
    /// `request.timeout.ms`: how long the in-sync replicas may take.
    timeout: Duration,
}

impl ProduceFuture {
    /// The results now, when nothing waits for an fsync or for replicas; otherwise
    /// the future back.
    pub fn ready(self) -> std::result::Result<Vec<Result<Produced>>, ProduceFuture> {
        let replicated = self
            .to_replicate
            .iter()
            .all(|(_, partition, offset)| partition.replica().is_leader() && partition.high_watermark() >= *offset);
        if self.to_flush.is_empty() && replicated {
            Ok(self.results)
        } else {
            Err(self)
        }
    }

    /// Waits until every partition is as durable as asked: one group-committed fsync
    /// per partition, then for acks=all the in-sync replicas (the high watermark past
    /// the batches). A failed fsync fails its partition; replicas that do not catch up
    /// within the timeout give REQUEST_TIMED_OUT, a lost leadership NOT_LEADER_OR_FOLLOWER.
    pub async fn durable(self) -> Vec<Result<Produced>> {
        let ProduceFuture {
            mut results,
            to_flush,
            to_replicate,
            timeout,
        } = self;
        flush_all(&mut results, to_flush).await;
        let waits =
            to_replicate.iter().filter(|(index, ..)| results[*index].is_ok()).map(
                |(index, partition, offset)| async move {
                    (*index, partition.wait_for_high_watermark(*offset, timeout).await)
                },
            );
        for (index, outcome) in futures_util::future::join_all(waits).await {
            if let Err(e) = outcome {
                tracing::debug!(error = %e, "acks=all not satisfied");
                results[index] = Err(e);
            }
        }
        results
    }
}

/// fsyncs every partition in `to_flush` (one group commit each); a failure fails the
/// partition's result.
async fn flush_all(results: &mut [Result<Produced>], to_flush: Vec<(usize, Arc<Partition>)>) {
    if to_flush.is_empty() {
        return;
    }
    {
        let partitions: Vec<Arc<Partition>> = to_flush.iter().map(|(_, p)| p.clone()).collect();
        let flushed = offload("produce fsync", move || {
            partitions.iter().map(|p| p.flush()).collect::<Vec<_>>()
        })
        .await;
        match flushed {
            Ok(flushed) => {
                for ((index, partition), outcome) in to_flush.iter().zip(flushed) {
                    if let Err(e) = outcome {
                        tracing::error!(?partition, error = %e, "fsync failed");
                        results[*index] = Err(e);
                    }
                }
            }
            Err(e) => {
                for (index, _) in &to_flush {
                    results[*index] = Err(BrokerError::Internal(e.to_string()));
                }
            }
        }
    }
}

impl BrokerApi {
    /// KIP-890 part 1: for each partition of a transactional produce whose batch would
    /// open the producer's transaction there, takes the partition's guard and asks the
    /// transaction coordinator whether the partition is in that open transaction; the
    /// answer goes into [`ProducePartition::txn`] for [`BrokerApi::produce`]. One round
    /// trip per transaction and partition (later batches find it open). Retriable
    /// failures (no coordinator reachable) become NOT_ENOUGH_REPLICAS, which producers
    /// retry, as in Kafka.
    pub async fn verify_transactions(&self, caller: &Caller, request: &mut ProduceRequest) {
        let Some(transactional_id) = request.transactional_id.clone() else {
            return;
        };
        if !self.txns.config().partition_verification || request.origin != AppendOrigin::Client {
            return;
        }
        let mut producer = None;
        let mut asked: Vec<(usize, u64, TopicPartition)> = Vec::new();
        for (index, wanted) in request.partitions.iter().enumerate() {
            let Some(header) = wanted
                .records
                .as_deref()
                .and_then(|records| strom_log::BatchIter::new(records).next())
                .map(|(header, _)| header)
            else {
                continue;
            };
            if !header.is_transactional() || header.is_control() || header.producer_id < 0 {
                continue;
            }
            // Errors (unknown, not led here, not allowed) are the produce's to report.
            let Ok((topic, partition)) = self.partition(caller, Operation::Write, &wanted.topic, wanted.partition)
            else {
                continue;
            };
            if let Some(guard) = partition.partition_log().begin_txn_verification(header.producer_id) {
                producer = Some(ProducerIdAndEpoch {
                    producer_id: header.producer_id,
                    producer_epoch: header.producer_epoch,
                });
                asked.push((
                    index,
                    guard,
                    TopicPartition::new(topic.name().to_string(), wanted.partition),
                ));
            }
        }
        let Some(producer) = producer else {
            return;
        };
        let partitions: Vec<TopicPartition> = asked.iter().map(|(_, _, tp)| tp.clone()).collect();
        let txns = self.txns.clone();
        let answer = offload("transaction verification", move || {
            txns.verify_anywhere(&transactional_id, producer, &partitions)
        })
        .await
        .and_then(|answer| answer);
        match answer {
            Ok(results) => {
                for ((index, guard, _), result) in asked.into_iter().zip(results) {
                    request.partitions[index].txn = match result {
                        Ok(()) => TxnCheck::Verified(guard),
                        Err(e) => TxnCheck::Refused(verification_error(&e)),
                    };
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "transaction verification failed");
                for (index, ..) in asked {
                    request.partitions[index].txn = TxnCheck::Refused(verification_error(&e));
                }
            }
        }
    }

    /// Appends every partition's batches now, in order; the returned future resolves
    /// when they are as durable as `request.acks` asks (or `flush.messages` demands).
    pub fn produce(&self, caller: &Caller, request: ProduceRequest) -> ProduceFuture {
        let ProduceRequest {
            acks,
            transactional_id,
            partitions,
            origin,
            timeout,
        } = request;
        let transactional = match &transactional_id {
            Some(id) => self.authorize(caller, Operation::Write, Resource::TransactionalId(id)),
            None => Ok(()),
        };
        let verifying = transactional_id.is_some() && self.txns.config().partition_verification;
        let mut results = Vec::with_capacity(partitions.len());
        let mut to_flush = Vec::new();
        let mut to_replicate = Vec::new();
        for mut wanted in partitions {
            let txn_guard = match std::mem::take(&mut wanted.txn) {
                TxnCheck::Verified(guard) => Ok(TxnGuard::Verified(guard)),
                TxnCheck::Refused(e) => Err(e),
                TxnCheck::NotChecked if verifying && origin == AppendOrigin::Client => Ok(TxnGuard::Missing),
                TxnCheck::NotChecked => Ok(TxnGuard::Unchecked),
            };
            let appended = transactional
                .as_ref()
                .map_err(|_| BrokerError::TransactionalIdAuthorizationFailed)
                .and(txn_guard)
                .and_then(|txn_guard| self.append_one(caller, &wanted, origin, acks, txn_guard));
            results.push(match appended {
                Ok((partition, produced, flush_due, end)) => {
                    if acks == Acks::All {
                        to_replicate.push((results.len(), partition.clone(), end));
                    }
                    if acks == Acks::All || flush_due {
                        to_flush.push((results.len(), partition));
                    }
                    Ok(produced)
                }
                Err(e) => {
                    tracing::debug!(topic = ?wanted.topic, partition = wanted.partition, error = %e, "produce refused");
                    Err(e)
                }
            });
        }
        ProduceFuture {
            results,
            to_flush,
            to_replicate,
            timeout,
        }
    }

    /// Appends one partition's batches; returns the partition, where they went, whether
    /// `flush.messages` asks for an fsync and the offset after them.
    fn append_one(
        &self,
        caller: &Caller,
        wanted: &ProducePartition,
        origin: AppendOrigin,
        acks: Acks,
        txn_guard: TxnGuard,
    ) -> Result<(Arc<Partition>, Produced, bool, i64)> {
        let (topic, partition) = self.partition(caller, Operation::Write, &wanted.topic, wanted.partition)?;
        if acks == Acks::All && !partition.replica().has_min_isr() {
            // Checked before the append, as Kafka does: nothing is written.
            return Err(BrokerError::NotEnoughReplicas {
                isr: partition.replica().isr().len(),
                min: partition.replica().min_insync(),
            });
        }
        let records = wanted
            .records
            .as_ref()
            .filter(|r| !r.is_empty())
            .ok_or_else(|| BrokerError::InvalidRecord("no records".into()))?;
        let limits = topic.limits();
        if limits.key_schema.is_some() || limits.value_schema.is_some() {
            let validator = crate::sync::read(&self.validator).clone();
            crate::validation::validate(validator.as_deref(), topic.name(), &limits, records)?;
        }
        // No copy: the log writes patched copies of the batch headers and the records
        // straight from the request buffer.
        let appended = self
            .broker
            .append_guarded(&topic, &partition, records, origin, txn_guard)?;
        let produced = Produced {
            base_offset: appended.info.base_offset,
            log_append_time_ms: appended.info.log_append_time_ms,
            log_start_offset: partition.log_start_offset(),
        };
        Ok((partition, produced, appended.flush_due, appended.info.last_offset + 1))
    }
}

/// A coordinator's refusal as the producer should see it: its own verdicts (not in the
/// transaction, fenced) as they are; not reaching a coordinator, retriable.
fn verification_error(error: &BrokerError) -> BrokerError {
    match error {
        BrokerError::InvalidTxnState(m) => BrokerError::InvalidTxnState(m.clone()),
        BrokerError::ProducerFenced(m) => BrokerError::ProducerFenced(m.clone()),
        BrokerError::InvalidProducerEpoch(m) => BrokerError::InvalidProducerEpoch(m.clone()),
        BrokerError::InvalidProducerIdMapping => BrokerError::InvalidProducerIdMapping,
        BrokerError::TransactionalIdAuthorizationFailed => BrokerError::TransactionalIdAuthorizationFailed,
        other => BrokerError::TxnNotVerified(other.to_string()),
    }
}
