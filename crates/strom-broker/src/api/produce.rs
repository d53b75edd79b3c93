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
use crate::error::{BrokerError, Result};
use crate::partition::{AppendOrigin, Partition};

/// How durable a produce must be before it is answered.
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
#[derive(Debug, Clone)]
pub struct ProduceRequest {
    pub acks: Acks,
    /// How long to wait for replicas (`request.timeout.ms`); one node never waits for any.
    pub timeout: Duration,
    pub transactional_id: Option<String>,
    pub partitions: Vec<ProducePartition>,
    pub origin: AppendOrigin,
}

/// One partition's batches.
#[derive(Debug, Clone)]
pub struct ProducePartition {
    pub topic: TopicRef,
    pub partition: i32,
    /// Record batches as the client sent them (None or empty: nothing to append).
    pub records: Option<Bytes>,
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
}

impl ProduceFuture {
    /// The results now, when nothing waits for an fsync; otherwise the future back.
    pub fn ready(self) -> std::result::Result<Vec<Result<Produced>>, ProduceFuture> {
        if self.to_flush.is_empty() {
            Ok(self.results)
        } else {
            Err(self)
        }
    }

    /// Waits until every partition is as durable as asked (one group-committed fsync per
    /// partition); a failed fsync fails its partition.
    pub async fn durable(self) -> Vec<Result<Produced>> {
        let ProduceFuture { mut results, to_flush } = self;
        if to_flush.is_empty() {
            return results;
        }
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
        results
    }
}

impl BrokerApi {
    /// Appends every partition's batches now, in order; the returned future resolves
    /// when they are as durable as `request.acks` asks (or `flush.messages` demands).
    pub fn produce(&self, caller: &Caller, request: ProduceRequest) -> ProduceFuture {
        let ProduceRequest {
            acks,
            transactional_id,
            partitions,
            origin,
            timeout: _,
        } = request;
        let transactional = match &transactional_id {
            Some(id) => self.authorize(caller, Operation::Write, Resource::TransactionalId(id)),
            None => Ok(()),
        };
        let mut results = Vec::with_capacity(partitions.len());
        let mut to_flush = Vec::new();
        for wanted in partitions {
            let appended = transactional
                .as_ref()
                .map_err(|_| BrokerError::TransactionalIdAuthorizationFailed)
                .and_then(|()| self.append_one(caller, &wanted, origin));
            results.push(match appended {
                Ok((partition, produced, flush_due)) => {
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
        ProduceFuture { results, to_flush }
    }

    fn append_one(
        &self,
        caller: &Caller,
        wanted: &ProducePartition,
        origin: AppendOrigin,
    ) -> Result<(Arc<Partition>, Produced, bool)> {
        let (topic, partition) = self.partition(caller, Operation::Write, &wanted.topic, wanted.partition)?;
        let records = wanted
            .records
            .as_ref()
            .filter(|r| !r.is_empty())
            .ok_or_else(|| BrokerError::InvalidRecord("no records".into()))?;
        // No copy: the log writes patched copies of the batch headers and the records
        // straight from the request buffer.
        let appended = self.broker.append(&topic, &partition, records, origin)?;
        let produced = Produced {
            base_offset: appended.info.base_offset,
            log_append_time_ms: appended.info.log_append_time_ms,
            log_start_offset: partition.log_start_offset(),
        };
        Ok((partition, produced, appended.flush_due))
    }
}
