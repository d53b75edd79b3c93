//! Fetch: stored batches, byte for byte, as far as the isolation lets the reader see.
//!
//! A fetch that finds fewer than `min_bytes` waits on the partitions' high-watermark
//! notifications (never by sleeping in a loop) until data arrives, `max_wait` passes or
//! the broker shuts down. The response budget is KIP-74's: partitions are filled in
//! request order up to `max_bytes`; only the first partition with data may exceed it
//! (one whole batch, so a consumer can always make progress), later ones leave an
//! oversized batch for the next fetch.
//!
//! Reads run on the caller's thread and read no data: each is an offset-index lookup and
//! a few batch headers, giving a file range the front-end sends from the page cache.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::select_all;
use strom_log::FileRange;
use tokio::time::Instant;

use super::{BrokerApi, TopicRef};
use crate::caller::{Caller, Operation};
use crate::constants::FETCH_WAIT_MS_MAX;
use crate::error::{BrokerError, Result};
use crate::partition::{FetchIsolation, Partition};
use crate::producer_state::AbortedTxn;

/// A fetch in the broker's terms.
#[derive(Debug, Clone)]
pub struct FetchParams {
    /// A follower replicating the partitions (Kafka's replica id / ReplicaState); None
    /// for consumers.
    pub replica: Option<FetchingReplica>,
    pub isolation: FetchIsolation,
    pub min_bytes: usize,
    pub max_wait: Duration,
    /// Response budget over all partitions (usize::MAX: none).
    pub max_bytes: usize,
    pub partitions: Vec<FetchPartition>,
    /// A consumer that may read from followers (Fetch v11+, KIP-392), with its
    /// `client.rack` (None: not given).
    pub follower_reads: Option<ClientRack>,
}

/// A consumer's rack, for rack-aware reads from the nearest replica (KIP-392).
#[derive(Debug, Clone, Default)]
pub struct ClientRack(pub Option<String>);

/// The follower behind a replica fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchingReplica {
    pub node_id: i32,
    /// Its broker epoch (-1: not sent, before Fetch v15).
    pub broker_epoch: i64,
}

/// One partition to read.
#[derive(Debug, Clone)]
pub struct FetchPartition {
    pub topic: TopicRef,
    pub partition: i32,
    pub fetch_offset: i64,
    pub max_bytes: usize,
    /// The leader epoch the reader knows (-1: not given).
    pub current_leader_epoch: i32,
    /// Replica fetches: the epoch of the last batch the follower has (-1: none), checked
    /// against the leader's epochs (`divergingEpoch`).
    pub last_fetched_epoch: i32,
}

/// What one partition gave, in request order.
#[derive(Debug, Clone)]
pub struct FetchedPartition {
    pub error: Option<Arc<BrokerError>>,
    /// The stored batches as a file range (None: nothing to send), for the front-end to
    /// send without copying (`sendfile`) or to read into a buffer.
    pub records: Option<FileRange>,
    /// -1 when the partition failed, except after OFFSET_OUT_OF_RANGE, which tells the
    /// client where the log is.
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// read_committed: aborted transactions overlapping the records.
    pub aborted: Option<Vec<AbortedTxn>>,
    /// Replica fetches: where the follower's log leaves the leader's, `(epoch, end
    /// offset)` of the last epoch both have; it truncates there and fetches again.
    pub diverging_epoch: Option<(i32, i64)>,
    /// KIP-392: the replica this consumer should read from instead (no records then).
    pub preferred_read_replica: Option<i32>,
}

impl BrokerApi {
    /// Reads every partition, long-polling until `min_bytes` are there or `max_wait`
    /// passes; a failed partition answers at once, as Kafka does.
    pub async fn fetch(&self, caller: &Caller, params: FetchParams) -> Vec<FetchedPartition> {
        let operation = match params.replica {
            Some(_) => Operation::ClusterAction,
            None => Operation::Read,
        };
        let resolved: Vec<Resolved> = params
            .partitions
            .iter()
            .map(|p| {
                let (_, partition) = match params.follower_reads {
                    Some(_) => self.hosted_partition(caller, operation, &p.topic, p.partition)?,
                    None => self.partition(caller, operation, &p.topic, p.partition)?,
                };
                match params.replica {
                    Some(replica) if !partition.replica().replicas().contains(&replica.node_id) => {
                        Err(BrokerError::NotReplica(replica.node_id))
                    }
                    _ => Ok(partition),
                }
            })
            .map(|resolved| resolved.map_err(Arc::new))
            .collect();
        let preferred: Vec<Option<i32>> = match &params.follower_reads {
            Some(ClientRack(Some(rack))) if self.broker.config().rack_aware_reads => resolved
                .iter()
                .map(|p| p.as_ref().ok().and_then(|p| self.nearest_replica(p, rack)))
                .collect(),
            _ => vec![None; resolved.len()],
        };
        let clock = self.broker.clock().clone();
        let max_wait = params.max_wait.min(Duration::from_millis(FETCH_WAIT_MS_MAX));
        let deadline = Instant::now() + max_wait;
        let mut closing = self.closing();
        loop {
            // Subscribe before reading, so an append in between still wakes us.
            // Followers wait for the log end to move (the high watermark moves only
            // after they fetch), consumers for the high watermark.
            let mut watchers: Vec<_> = resolved
                .iter()
                .filter_map(|p| p.as_ref().ok())
                .map(|p| match params.replica {
                    Some(_) => p.replica().subscribe_log_end(),
                    None => p.subscribe(),
                })
                .collect();
            let now_ms = clock.now_ms();
            let (fetched, bytes, failed) = read_all(&params, &resolved, &preferred, now_ms);
            if bytes >= params.min_bytes || failed || Instant::now() >= deadline || watchers.is_empty() {
                return fetched;
            }
            if *closing.borrow() {
                return fetched;
            }
            let changes = watchers.iter_mut().map(|w| Box::pin(w.changed()));
            tokio::select! {
                _ = select_all(changes) => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = closing.changed() => return fetched,
            }
        }
    }
}

type Resolved = std::result::Result<Arc<Partition>, Arc<BrokerError>>;

impl BrokerApi {
    /// KIP-392's RackAwareReplicaSelector, on the leader: when the leader is not in
    /// the consumer's rack, an in-sync replica that is alive and in that rack, the most
    /// caught up first; None to read here.
    fn nearest_replica(&self, partition: &Partition, rack: &str) -> Option<i32> {
        let replica = partition.replica();
        if !replica.is_leader() {
            return None;
        }
        let image = self.broker.image();
        let rack_of = |id: i32| image.broker(id).and_then(|b| b.registration.rack.clone());
        if rack_of(replica.node_id()).as_deref() == Some(rack) {
            return None;
        }
        let followers = replica.followers();
        replica
            .isr()
            .into_iter()
            .filter(|id| *id != replica.node_id())
            .filter(|id| strom_cluster::controller::is_alive(&image, *id) && rack_of(*id).as_deref() == Some(rack))
            .max_by_key(|id| followers.get(id).map_or(-1, |f| f.log_end))
    }
}

/// Reads every partition once; returns the results, their record bytes and whether any
/// partition failed.
fn read_all(
    params: &FetchParams,
    resolved: &[Resolved],
    preferred: &[Option<i32>],
    now_ms: i64,
) -> (Vec<FetchedPartition>, usize, bool) {
    let mut total = 0usize;
    let mut failed = false;
    let mut out = Vec::with_capacity(resolved.len());
    for ((wanted, partition), preferred) in params.partitions.iter().zip(resolved).zip(preferred) {
        let remaining = params.max_bytes.saturating_sub(total);
        let fetched = match partition {
            // Told where to read instead: answered at once, like an error.
            Ok(partition) if preferred.is_some() => FetchedPartition {
                preferred_read_replica: *preferred,
                ..offsets_only(partition, params.isolation)
            },
            Ok(partition) => {
                let read = match params.replica {
                    Some(replica) => read_for_replica(partition, wanted, remaining, total == 0, replica, now_ms),
                    None => read_one(partition, wanted, remaining, total == 0, params.isolation),
                };
                read.unwrap_or_else(|e| failure(Some(partition), e.into()))
            }
            Err(e) => failure(None, e.clone()),
        };
        // A divergence is answered at once, like an error: the follower must truncate.
        failed |= fetched.error.is_some() || fetched.diverging_epoch.is_some() || preferred.is_some();
        total += fetched.records.as_ref().map_or(0, |r| r.len() as usize);
        out.push(fetched);
    }
    (out, total, failed)
}

fn failure(partition: Option<&Arc<Partition>>, error: Arc<BrokerError>) -> FetchedPartition {
    let offsets = match error.as_ref() {
        BrokerError::OffsetOutOfRange { .. } => partition,
        _ => None,
    };
    FetchedPartition {
        error: Some(error),
        records: None,
        high_watermark: offsets.map_or(-1, |p| p.high_watermark()),
        last_stable_offset: offsets.map_or(-1, |p| p.high_watermark()),
        log_start_offset: offsets.map_or(-1, |p| p.log_start_offset()),
        aborted: None,
        diverging_epoch: None,
        preferred_read_replica: None,
    }
}

/// The partition's offsets and no records.
fn offsets_only(partition: &Partition, isolation: FetchIsolation) -> FetchedPartition {
    FetchedPartition {
        error: None,
        records: None,
        high_watermark: partition.high_watermark(),
        last_stable_offset: partition.last_stable_offset(),
        log_start_offset: partition.log_start_offset(),
        aborted: (isolation == FetchIsolation::TxnCommitted).then(Vec::new),
        diverging_epoch: None,
        preferred_read_replica: None,
    }
}

/// A follower's fetch: the leader epoch checked, then its last fetched epoch against
/// the leader's epochs — where they part, the answer is the diverging epoch and no
/// records; otherwise its position is recorded (the high watermark may move) and the
/// log is read to its end.
fn read_for_replica(
    partition: &Partition,
    wanted: &FetchPartition,
    remaining: usize,
    first: bool,
    replica: FetchingReplica,
    now_ms: i64,
) -> Result<FetchedPartition> {
    partition.check_leader_epoch(wanted.current_leader_epoch)?;
    let diverging =
        crate::replication::diverging_epoch(partition.log(), wanted.last_fetched_epoch, wanted.fetch_offset);
    if let Some((epoch, end)) = diverging {
        {
            return Ok(FetchedPartition {
                error: None,
                records: None,
                high_watermark: partition.high_watermark(),
                last_stable_offset: partition.last_stable_offset(),
                log_start_offset: partition.log_start_offset(),
                aborted: None,
                diverging_epoch: Some((epoch, end)),
                preferred_read_replica: None,
            });
        }
    }
    let log_end = partition.log_end_offset();
    if wanted.fetch_offset <= log_end {
        partition.replica().update_follower(
            replica.node_id,
            replica.broker_epoch,
            wanted.fetch_offset,
            log_end,
            now_ms,
        );
        partition.replica().advance_high_watermark(log_end);
    }
    let mut fetched = read_one(partition, wanted, remaining, first, FetchIsolation::LogEnd)?;
    // The high watermark as it is after this follower's position counted.
    fetched.high_watermark = partition.high_watermark();
    Ok(fetched)
}

fn read_one(
    partition: &Partition,
    wanted: &FetchPartition,
    remaining: usize,
    first: bool,
    isolation: FetchIsolation,
) -> Result<FetchedPartition> {
    partition.check_leader_epoch(wanted.current_leader_epoch)?;
    let limit = wanted.max_bytes.min(remaining);
    if limit == 0 && !first {
        // The response is full: report the offsets, read nothing.
        return Ok(offsets_only(partition, isolation));
    }
    let replica = partition.replica();
    if !replica.is_leader() && wanted.fetch_offset > partition.log_end_offset() {
        if wanted.fetch_offset <= replica.leader_high_watermark() {
            // A follower that has not caught up to where the leader already let the
            // reader go: nothing here yet, not out of range.
            return Ok(offsets_only(partition, isolation));
        }
        // A follower behind the reader (just restarted, say) cannot tell whether the
        // offset exists: the reader goes to the leader instead of resetting its offset.
        return Err(BrokerError::NotLeaderOrFollower);
    }
    let mut data = partition.read_range(wanted.fetch_offset, limit, isolation)?;
    if !first && data.records.as_ref().is_some_and(|r| r.len() as usize > limit) {
        data.records = None;
    }
    Ok(FetchedPartition {
        error: None,
        records: data.records,
        high_watermark: data.high_watermark,
        last_stable_offset: data.last_stable_offset,
        log_start_offset: data.log_start_offset,
        aborted: data.aborted,
        diverging_epoch: None,
        preferred_read_replica: None,
    })
}
