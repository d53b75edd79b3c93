//! Consumer groups: the group coordinator, its state machines and the records it
//! keeps in the internal compacted topic `__consumer_offsets` (committed offsets and
//! group metadata, in Kafka's formats). On start the coordinator rebuilds its state
//! by reading that log; there is no second store.

pub mod classic;
pub mod consumer;
pub mod coordinator;
pub mod offsets_record;

pub use classic::{JoinGroup, JoinResult, JoinedMember, SyncGroup, SyncResult};
pub use consumer::{Assignment, ConsumerHeartbeat, ConsumerHeartbeatResult};
pub use coordinator::{
    ConsumerGroupDescription, ConsumerMemberDescription, GroupConfig, GroupCoordinator, GroupDescription, GroupListing,
    MemberDescription, OffsetCommit, OFFSETS_TOPIC,
};

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
