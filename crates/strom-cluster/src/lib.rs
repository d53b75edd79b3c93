//! Strom's cluster: the metadata quorum (openraft, like Kafka's KRaft), the metadata
//! records it commits and the image every node builds from them.
//!
//! - [`records`]: `MetadataRecord`, the only way the metadata changes.
//! - [`image`]: `MetadataImage`, what the committed records say, applied deterministically.
//! - [`storage`]: the durable metadata log (redb) and the state machine with snapshots.
//! - [`quorum`]: this node's part of the quorum on its own runtime; proposals (from any
//!   node: a follower forwards them to the leader), membership changes, and the applied
//!   image for the broker.
//! - [`network`]: the transport between controllers: gRPC with openraft's messages as
//!   JSON inside protobuf envelopes (`proto/quorum.proto`); every call names its sender,
//!   its intended receiver and its cluster, and the receiver refuses a call meant for
//!   another node or from another cluster.
//! - [`active`]: the active controller's task: broker liveness from heartbeats,
//!   fencing, unfencing and elections, acting only while this node leads the quorum.
//! - [`controller`]: the active controller's decisions: fencing, elections.
//! - [`placement`]: where new partitions' replicas go (Kafka's rack-aware round robin).
//!
//! A quorum of one voter (the zero-config node) opens no port. A node id names one
//! node's metadata log for ever: a removed node's id is never given to another node.

pub mod active;
pub mod controller;
pub mod error;
pub mod image;
pub mod network;
pub mod placement;
pub mod quorum;
pub mod records;
pub mod status;
pub mod storage;
pub mod types;

pub use active::{Heartbeat, HeartbeatReply};
pub use error::{ClusterError, Refusal};
pub use image::{BrokerState, MetadataImage, PartitionState, TopicImage};
pub use quorum::{Quorum, QuorumConfig, QuorumStatus, METADATA_DIR};
pub use records::{
    BrokerRegistration, ConfigScope, Listener, MetadataRecord, PartitionChange, PartitionRecord, Reassignment,
    TopicRecord,
};
pub use storage::Applied;
pub use types::{Command, CommandResult, TypeConfig};
