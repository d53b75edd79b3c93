//! Consumer groups: the group coordinator, its state machines and the records it
//! keeps in the internal compacted topic `__consumer_offsets` (committed offsets and
//! group metadata, in Kafka's formats). When this node is elected leader of one of
//! its partitions the coordinator rebuilds that partition's groups by reading the log
//! (`loader.rs`); there is no second store.

use std::collections::BTreeMap;

use tokio::time::Instant;

use classic::ClassicGroup;
use consumer::ConsumerGroup;
use offsets_record::OffsetValue;

pub(crate) mod classic;
mod config;
// The coordinators' shared shell sits at the crate root beside them; it is declared
// here until `lib.rs` lists it.
pub(crate) mod consumer;
pub(crate) mod coordinator;
mod description;
mod loader;
mod offsets;
pub(crate) mod offsets_record;
mod session_timer;

pub use classic::{JoinGroup, JoinResult, JoinedMember, SyncGroup, SyncResult};
pub use config::GroupConfig;
pub use consumer::{Assignment, ConsumerHeartbeat, ConsumerHeartbeatResult};
pub use coordinator::{GroupCoordinator, LeavingMember, OFFSETS_TOPIC};
pub use description::{
    ConsumerGroupDescription, ConsumerMemberDescription, GroupDescription, GroupListFilter, GroupListing,
    MemberDescription,
};
pub use offsets::{FetchedOffset, OffsetCommit, OffsetCommitEntry, OffsetFetch, TopicPartition, TopicPartitions};

/// Group states, named as Kafka's DescribeGroups and ListGroups report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// One group: its membership state and its committed offsets.
#[derive(Debug)]
pub(crate) struct Group {
    pub id: String,
    pub classic: ClassicGroup,
    pub consumer: ConsumerGroup,
    pub offsets: BTreeMap<offsets::TopicPartition, OffsetValue>,
    /// Offsets committed inside open transactions, by producer id: applied when the
    /// transaction commits, dropped when it aborts.
    pub pending_txn_offsets: BTreeMap<i64, BTreeMap<offsets::TopicPartition, OffsetValue>>,
}

impl Group {
    fn new(id: &str) -> Group {
        Group {
            id: id.to_string(),
            classic: ClassicGroup::default(),
            consumer: ConsumerGroup::default(),
            offsets: BTreeMap::new(),
            pending_txn_offsets: BTreeMap::new(),
        }
    }

    /// A group with members speaks one protocol; KIP-848 when its consumer side has members.
    fn is_consumer_protocol(&self) -> bool {
        !self.consumer.is_empty()
    }

    fn is_empty(&self) -> bool {
        self.classic.is_empty() && self.consumer.is_empty()
    }

    fn state(&self) -> GroupState {
        self.classic.state
    }

    /// When the clock next changes this group's membership on its own.
    fn next_deadline(&self) -> Option<Instant> {
        match (self.classic.next_deadline(), self.consumer.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Apply (commit) or drop (abort) the offsets a transaction committed.
    fn complete_txn(&mut self, producer_id: i64, commit: bool) {
        if let Some(offsets) = self.pending_txn_offsets.remove(&producer_id) {
            if commit {
                self.offsets.extend(offsets);
            }
        }
    }

    /// The state as DescribeGroups and ListGroups name it.
    pub fn state_name(&self) -> &'static str {
        if self.is_consumer_protocol() {
            self.consumer.state_name()
        } else {
            self.classic.state.name()
        }
    }

    pub fn group_type(&self) -> &'static str {
        if self.is_consumer_protocol() {
            "consumer"
        } else {
            "classic"
        }
    }
}
