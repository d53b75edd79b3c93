//! ListOffsets (earliest, latest, by timestamp, max timestamp) and DeleteRecords.

use super::{BrokerApi, TopicRef};
use crate::blocking::offload_each;
use crate::caller::{Caller, Operation};
use crate::error::{BrokerError, Result};
use crate::partition::{FetchIsolation, Partition};

/// Which offset ListOffsets asks for (Kafka's special timestamps, or a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// -1: the end a reader with this isolation sees.
    Latest,
    /// -2: the log start.
    Earliest,
    /// -3: the record with the largest timestamp.
    MaxTimestamp,
    /// -4: the first offset on local disk (the log start: Strom has no tiered storage).
    EarliestLocal,
    /// -5: the last offset in tiered storage (none: -1).
    LatestTiered,
    /// The first record with a timestamp at or after this one (ms).
    Timestamp(i64),
    /// A negative value Kafka does not define: refused with INVALID_REQUEST.
    Unknown(i64),
}

impl OffsetSpec {
    /// Kafka's `timestamp` field: a special negative value or a time.
    pub fn from_timestamp(timestamp: i64) -> OffsetSpec {
        match timestamp {
            -1 => OffsetSpec::Latest,
            -2 => OffsetSpec::Earliest,
            -3 => OffsetSpec::MaxTimestamp,
            -4 => OffsetSpec::EarliestLocal,
            -5 => OffsetSpec::LatestTiered,
            t if t >= 0 => OffsetSpec::Timestamp(t),
            other => OffsetSpec::Unknown(other),
        }
    }
}

/// One partition's answer: (timestamp, offset) with the leader epoch, or -1s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    pub timestamp: i64,
    pub offset: i64,
    pub leader_epoch: i32,
}

/// One partition to look up.
#[derive(Debug, Clone)]
pub struct ListOffsetsPartition {
    pub topic: TopicRef,
    pub partition: i32,
    pub current_leader_epoch: i32,
    pub spec: OffsetSpec,
}

/// One partition whose records before `offset` go (-1: the high watermark).
#[derive(Debug, Clone)]
pub struct DeleteRecordsPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl BrokerApi {
    /// ListOffsets for each partition, in order. Reading the time index is file I/O:
    /// it runs on the blocking pool.
    pub async fn list_offsets(
        &self,
        caller: &Caller,
        isolation: FetchIsolation,
        partitions: Vec<ListOffsetsPartition>,
    ) -> Vec<Result<ListedOffset>> {
        let resolved: Vec<_> = partitions
            .into_iter()
            .map(|p| {
                self.partition(caller, Operation::Describe, &p.topic, p.partition)
                    .map(|(_, partition)| (partition, p.current_leader_epoch, p.spec))
            })
            .collect();
        offload_each("list offsets", resolved, move |(partition, epoch, spec)| {
            lookup(&partition, epoch, spec, isolation)
        })
        .await
    }

    /// DeleteRecords for each `(topic, partition, offset)`; -1 means the high watermark.
    /// Returns the new log start offsets. Refused on internal topics, as in Kafka.
    pub async fn delete_records(&self, caller: &Caller, partitions: Vec<DeleteRecordsPartition>) -> Vec<Result<i64>> {
        let resolved: Vec<_> = partitions
            .into_iter()
            .map(|p| {
                self.partition(caller, Operation::Delete, &TopicRef::Name(p.topic.clone()), p.partition)
                    .map(|_| (p.topic, p.partition, p.offset))
            })
            .collect();
        let broker = self.broker.clone();
        offload_each("delete records", resolved, move |(topic, index, offset)| {
            broker.delete_records(&topic, index, offset)
        })
        .await
    }
}

fn lookup(partition: &Partition, epoch: i32, spec: OffsetSpec, isolation: FetchIsolation) -> Result<ListedOffset> {
    partition.check_leader_epoch(epoch)?;
    let leader_epoch = partition.leader_epoch();
    let high_watermark = partition.high_watermark();
    let derived_from_high_watermark = !matches!(
        spec,
        OffsetSpec::Earliest | OffsetSpec::EarliestLocal | OffsetSpec::LatestTiered
    ) && isolation != FetchIsolation::LogEnd;
    if derived_from_high_watermark && high_watermark < partition.replica().epoch_start_offset() {
        // KIP-207: a new leader's high watermark may lag what the previous leader had
        // published; answering from it could move a reader's offsets back.
        return Err(BrokerError::OffsetNotAvailable);
    }
    let (timestamp, offset) = match spec {
        OffsetSpec::Latest => match isolation {
            FetchIsolation::TxnCommitted => (-1, partition.last_stable_offset()),
            FetchIsolation::HighWatermark => (-1, high_watermark),
            FetchIsolation::LogEnd => (-1, partition.log_end_offset()),
        },
        OffsetSpec::Earliest | OffsetSpec::EarliestLocal => (-1, partition.log_start_offset()),
        OffsetSpec::LatestTiered => (-1, -1),
        OffsetSpec::MaxTimestamp => match partition.log().max_timestamp() {
            Some((offset, ts)) if offset < high_watermark => (ts, offset),
            _ => (-1, -1),
        },
        OffsetSpec::Timestamp(t) => match partition.log().offset_for_timestamp(t)? {
            Some((offset, ts)) if offset < high_watermark => (ts, offset),
            _ => (-1, -1),
        },
        OffsetSpec::Unknown(other) => {
            return Err(BrokerError::InvalidRequest(format!(
                "unknown special timestamp {other}"
            )))
        }
    };
    Ok(ListedOffset {
        timestamp,
        offset,
        leader_epoch,
    })
}
