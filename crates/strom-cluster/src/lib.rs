//! Strom's cluster: the metadata quorum (openraft, like Kafka's KRaft), the metadata
//! records it commits and the image every node builds from them.
//!
//! - [`records`]: `MetadataRecord`, the only way the metadata changes.
//! - [`image`]: `MetadataImage`, what the committed records say, applied deterministically.
//! - [`storage`]: the durable metadata log (redb) and the state machine with snapshots.
//! - [`quorum`]: this node's part of the quorum on its own runtime; proposals and the
//!   applied image for the broker.
//! - [`network`]: the transport between controllers.
//! - [`controller`]: the active controller's decisions: fencing, elections.
//! - [`placement`]: where new partitions' replicas go (Kafka's rack-aware round robin).

pub mod controller;
pub mod error;
pub mod image;
pub mod network;
pub mod placement;
pub mod quorum;
pub mod records;
pub mod storage;
pub mod types;

pub use error::{ClusterError, Refusal};
pub use image::{BrokerState, MetadataImage, PartitionState, TopicImage};
pub use quorum::{Quorum, QuorumConfig, QuorumStatus, METADATA_DIR};
pub use records::{
    BrokerRegistration, ConfigScope, Listener, MetadataRecord, PartitionChange, PartitionRecord, TopicRecord,
};
pub use storage::Applied;
pub use types::{Command, CommandResult, TypeConfig};
