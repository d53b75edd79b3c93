//! The seam between the fetch loops and the wire: a follower's fetch in the broker's
//! terms and the [`LeaderClient`] a front-end implements to send it.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use uuid::Uuid;

use crate::api::BrokerEndpoint;
use crate::error::{BrokerError, Result};

/// A follower's fetch from one leader, in the broker's terms.
#[derive(Debug, Clone)]
pub struct ReplicaFetch {
    pub replica_id: i32,
    pub broker_epoch: i64,
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partitions: Vec<ReplicaFetchPartition>,
}

/// One partition of a [`ReplicaFetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaFetchPartition {
    pub topic_id: Uuid,
    pub topic: String,
    pub partition: i32,
    pub current_leader_epoch: i32,
    pub fetch_offset: i64,
    /// The epoch of the follower's last batch (-1: none).
    pub last_fetched_epoch: i32,
    pub log_start_offset: i64,
    pub max_bytes: i32,
}

/// The leader's answer for one partition.
#[derive(Debug)]
pub struct ReplicaFetched {
    pub topic_id: Uuid,
    pub partition: i32,
    pub error: Option<BrokerError>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Where the follower's log leaves the leader's: `(epoch, end offset)`.
    pub diverging_epoch: Option<(i32, i64)>,
    pub records: Bytes,
}

/// Sends a follower's fetch to the leader and returns its answer per partition.
pub trait LeaderClient: Send + Sync + std::fmt::Debug {
    fn fetch<'a>(
        &'a self,
        leader: &'a BrokerEndpoint,
        request: ReplicaFetch,
    ) -> BoxFuture<'a, Result<Vec<ReplicaFetched>>>;
}

/// What a broker has when no front-end gave it a way to reach other nodes
/// (single-node tests): partitions led elsewhere do not replicate.
#[derive(Debug, Default)]
pub struct NoLeaderClient;

impl LeaderClient for NoLeaderClient {
    fn fetch<'a>(&'a self, leader: &'a BrokerEndpoint, _: ReplicaFetch) -> BoxFuture<'a, Result<Vec<ReplicaFetched>>> {
        let node = leader.node_id;
        Box::pin(async move {
            Err(BrokerError::Remote {
                node,
                reason: "no client for other nodes was given to the broker".into(),
            })
        })
    }
}
