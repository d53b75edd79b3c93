//! Partition replication, Kafka's protocol: followers fetch from the leader with
//! Fetch (their replica id and broker epoch, the current leader epoch, the last fetched
//! epoch), append what they get with the leader's offsets and epochs, and truncate where
//! the leader says their logs diverge; the leader counts their fetch positions into the
//! high watermark and proposes ISR changes to the controller.
//!
//! - [`follower`]: one fetch loop per leader node this node follows partitions of,
//!   started and ended as the metadata moves leadership ([`run_followers`]).
//! - [`isr`]: the leader's side of the ISR: lagging followers leave, caught-up ones
//!   join, each change committed through the metadata quorum as a partition change with
//!   the partition epoch as compare-and-set.
//!
//! The wire is a front-end's business: the fetch loop calls a [`LeaderClient`]
//! (strom-kafka implements it with Kafka's Fetch), so the logic here is tested without
//! sockets.
//!
//! Durability: a follower fsyncs what it appended before its next fetch, and that
//! fetch's offset is what the leader counts, so a high watermark (and an acks=all
//! answer) covers only records on the disk of every in-sync replica.

mod client;
pub mod follower;
pub mod isr;

pub use client::{LeaderClient, NoLeaderClient, ReplicaFetch, ReplicaFetchPartition, ReplicaFetched};
pub use follower::run_followers;

/// The leader's check of a follower's fetch: where the follower's last fetched epoch
/// (its latest) and fetch offset leave the leader's log, the `(epoch, end offset)` of
/// the leader's last epoch at or below it; None when the follower's log is a prefix of
/// the leader's.
pub fn diverging_epoch(leader: &strom_log::Log, last_fetched_epoch: i32, fetch_offset: i64) -> Option<(i32, i64)> {
    if last_fetched_epoch < 0 {
        return None;
    }
    let (epoch, end) = leader.end_offset_for_leader_epoch(last_fetched_epoch);
    (epoch != last_fetched_epoch || end < fetch_offset).then_some((epoch, end))
}

/// Settings of replication (Kafka's names).
#[derive(Debug, Clone, Copy)]
pub struct ReplicationConfig {
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub lag_time_max_ms: i64,
    /// `replica.fetch.wait.max.ms`.
    pub fetch_wait_max_ms: i32,
    /// `replica.fetch.max.bytes`: per partition.
    pub fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`.
    pub fetch_response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`: the pause after a failed fetch.
    pub fetch_backoff_ms: u64,
}

impl Default for ReplicationConfig {
    fn default() -> ReplicationConfig {
        ReplicationConfig {
            lag_time_max_ms: 30_000,
            fetch_wait_max_ms: 500,
            fetch_max_bytes: 1_048_576,
            fetch_response_max_bytes: 10_485_760,
            fetch_backoff_ms: 1000,
        }
    }
}
