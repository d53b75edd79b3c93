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
    pub isolation: FetchIsolation,
    pub min_bytes: usize,
    pub max_wait: Duration,
    /// Response budget over all partitions (usize::MAX: none).
    pub max_bytes: usize,
    pub partitions: Vec<FetchPartition>,
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
}

impl BrokerApi {
    /// Reads every partition, long-polling until `min_bytes` are there or `max_wait`
    /// passes; a failed partition answers at once, as Kafka does.
    pub async fn fetch(&self, caller: &Caller, params: FetchParams) -> Vec<FetchedPartition> {
        let resolved: Vec<Resolved> = params
            .partitions
            .iter()
            .map(|p| {
                self.partition(caller, Operation::Read, &p.topic, p.partition)
                    .map(|(_, partition)| partition)
                    .map_err(Arc::new)
            })
            .collect();
        let max_wait = params.max_wait.min(Duration::from_millis(FETCH_WAIT_MS_MAX));
        let deadline = Instant::now() + max_wait;
        let mut closing = self.closing();
        loop {
            // Subscribe before reading, so an append in between still wakes us.
            let mut watchers: Vec<_> = resolved
                .iter()
                .filter_map(|p| p.as_ref().ok())
                .map(|p| p.subscribe())
                .collect();
            let (fetched, bytes, failed) = read_all(&params, &resolved);
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

/// Reads every partition once; returns the results, their record bytes and whether any
/// partition failed.
fn read_all(params: &FetchParams, resolved: &[Resolved]) -> (Vec<FetchedPartition>, usize, bool) {
    let mut total = 0usize;
    let mut failed = false;
    let mut out = Vec::with_capacity(resolved.len());
    for (wanted, partition) in params.partitions.iter().zip(resolved) {
        let remaining = params.max_bytes.saturating_sub(total);
        let fetched = match partition {
            Ok(partition) => read_one(partition, wanted, remaining, total == 0, params.isolation)
                .unwrap_or_else(|e| failure(Some(partition), e.into())),
            Err(e) => failure(None, e.clone()),
        };
        failed |= fetched.error.is_some();
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
    }
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
    let read_committed = isolation == FetchIsolation::TxnCommitted;
    if limit == 0 && !first {
        // The response is full: report the offsets, read nothing.
        return Ok(FetchedPartition {
            error: None,
            records: None,
            high_watermark: partition.high_watermark(),
            last_stable_offset: partition.last_stable_offset(),
            log_start_offset: partition.log_start_offset(),
            aborted: read_committed.then(Vec::new),
        });
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
    })
}
