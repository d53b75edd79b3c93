//! Errors of the cluster crate.

use serde::{Deserialize, Serialize};

/// Why the state machine refused a committed batch (every node refuses it alike).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Refusal {
    #[error("Topic '{0}' already exists.")]
    TopicExists(String),
    #[error("unknown topic or partition {0}")]
    UnknownTopic(String),
    #[error("unknown broker {0}")]
    UnknownBroker(i32),
    #[error("the cluster id is already {0}")]
    ClusterId(String),
    /// A compare-and-set lost: the image moved on since the batch was built.
    #[error("stale: {0}")]
    Stale(String),
    #[error("metadata record does not fit the metadata: {0}")]
    Inconsistent(String),
}

/// What can go wrong talking to the metadata quorum.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// No controller is reachable or elected now; the caller may retry.
    #[error("the controller is not available: {0}")]
    NotAvailable(String),
    /// The quorum did not answer in time; a proposal's outcome is then unknown.
    #[error("timed out waiting for the metadata quorum: {0}")]
    Timeout(String),
    /// A peer controller refused this node's call (it is another node than the one
    /// addressed, or of another cluster): a configuration error, not a passing failure.
    #[error("a peer controller refused the call: {0}")]
    PeerRefused(String),
    #[error("metadata storage failed: {0}")]
    Storage(String),
    #[error("invalid cluster configuration: {0}")]
    Config(String),
    #[error("the metadata quorum is shut down")]
    Shutdown,
}

pub type Result<T> = std::result::Result<T, ClusterError>;
