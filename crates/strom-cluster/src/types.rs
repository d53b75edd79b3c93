//! The openraft type configuration of the metadata quorum.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::error::Refusal;
use crate::records::MetadataRecord;

/// One entry of the metadata log: a batch of records applied all or nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub records: Vec<MetadataRecord>,
}

/// What applying a [`Command`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    pub outcome: Result<(), Refusal>,
}

openraft::declare_raft_types!(
    /// The metadata quorum's types: node ids are Kafka's `node.id`, a node's address is
    /// its controller listener.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = openraft::BasicNode,
);

pub type NodeId = u64;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type Raft = openraft::Raft<TypeConfig>;
