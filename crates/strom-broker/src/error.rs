//! The broker's error type. Variants carry Kafka's meaning; the wire front-end
//! (`strom-kafka`) maps each to its protocol error code in one table.

use strom_log::LogError;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("unknown topic id")]
    UnknownTopicId,
    #[error("topic '{0}' already exists")]
    TopicAlreadyExists(String),
    #[error("invalid topic: {0}")]
    InvalidTopic(String),
    #[error("policy violation: {0}")]
    PolicyViolation(String),
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: usize },
    #[error("offset {offset} out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    #[error("corrupt record batch: {0}")]
    CorruptMessage(String),
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// Records of a batch refused one by one (Kafka's record errors, KIP-467): the
    /// batch is not stored; each entry is (index in its batch, why).
    #[error("{}", record_errors_message(.0))]
    InvalidRecords(Vec<(i32, String)>),
    #[error("leader epoch {requested} is newer than the current {current}")]
    UnknownLeaderEpoch { requested: i32, current: i32 },
    #[error("leader epoch {requested} is older than the current {current}")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    /// A storage failure described in words (a refused start, a full disk).
    #[error("storage error: {0}")]
    Storage(String),
    /// A failed system call; the `io::Error` is kept as the source.
    #[error("storage error: {0}")]
    Io(#[source] std::io::Error),
    /// A failure of the log below (disk I/O or data found damaged on disk).
    #[error("storage error: {0}")]
    Log(#[source] LogError),
    #[error("coordinator not available")]
    CoordinatorNotAvailable,
    /// This node does not lead the coordinator partition of the key (Kafka's NOT_COORDINATOR).
    #[error("not the coordinator")]
    NotCoordinator,
    /// The coordinator partition of the key is being loaded from its log.
    #[error("coordinator load in progress")]
    CoordinatorLoadInProgress,
    /// A transaction has an undecided offset commit for the partition.
    #[error("unstable offset commit")]
    UnstableOffsetCommit,
    #[error("invalid group id")]
    InvalidGroupId,
    #[error("unknown member id")]
    UnknownMemberId,
    #[error("illegal generation")]
    IllegalGeneration,
    #[error("rebalance in progress")]
    RebalanceInProgress,
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    #[error("session timeout {0} ms outside the allowed range")]
    InvalidSessionTimeout(i32),
    #[error("member id required")]
    MemberIdRequired,
    #[error("static member fenced by a newer instance")]
    FencedInstanceId,
    #[error("group not found")]
    GroupIdNotFound,
    #[error("group is not empty")]
    NonEmptyGroup,
    #[error("offset metadata of {0} bytes is too large")]
    OffsetMetadataTooLarge(usize),
    #[error("group is subscribed to the topic")]
    GroupSubscribedToTopic,
    #[error("group reached group.max.size")]
    GroupMaxSizeReached,
    #[error("the member epoch is stale")]
    StaleMemberEpoch,
    #[error("the member epoch is fenced")]
    FencedMemberEpoch,
    #[error("unsupported assignor {0}")]
    UnsupportedAssignor(String),
    #[error("unreleased instance id")]
    UnreleasedInstanceId,
    #[error("group {0} is of another type")]
    GroupTypeMismatch(String),
    #[error("out of order sequence: {0}")]
    OutOfOrderSequence(String),
    #[error("invalid producer epoch: {0}")]
    InvalidProducerEpoch(String),
    #[error("producer fenced: {0}")]
    ProducerFenced(String),
    #[error("unknown producer id {0}")]
    UnknownProducerId(i64),
    #[error("invalid transaction timeout {0} ms")]
    InvalidTransactionTimeout(i32),
    #[error("producer id does not match the transactional id")]
    InvalidProducerIdMapping,
    #[error("another operation on this transaction is in progress")]
    ConcurrentTransactions,
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    /// The transaction coordinator could not confirm that a transactional batch's
    /// partition is in its transaction (KIP-890); retriable (NOT_ENOUGH_REPLICAS).
    #[error("the transaction could not be verified with its coordinator: {0}")]
    TxnNotVerified(String),
    #[error("operation not attempted")]
    OperationNotAttempted,
    #[error("acks must be -1, 0 or 1")]
    InvalidRequiredAcks,
    #[error("not authorized to access the topic")]
    TopicAuthorizationFailed,
    #[error("not authorized to access the group")]
    GroupAuthorizationFailed,
    #[error("not authorized for the cluster operation")]
    ClusterAuthorizationFailed,
    #[error("not authorized to use the transactional id")]
    TransactionalIdAuthorizationFailed,
    /// This node does not lead the partition (another node does, or none now).
    #[error("this node is not the leader of the partition")]
    NotLeaderOrFollower,
    /// UnregisterBroker of a broker the metadata does not have.
    #[error("broker {0} is not registered")]
    BrokerIdNotRegistered(i32),
    /// A request for another cluster.
    #[error("{0}")]
    InconsistentClusterId(String),
    /// ElectLeaders: the wanted replica leads already.
    #[error("the leader is already the wanted replica")]
    ElectionNotNeeded,
    /// ElectLeaders: the preferred replica is not alive or not in sync.
    #[error("the preferred replica is not available")]
    PreferredLeaderNotAvailable,
    /// acks=all while the ISR is smaller than `min.insync.replicas`.
    #[error("the in-sync replicas ({isr}) are fewer than min.insync.replicas ({min})")]
    NotEnoughReplicas { isr: usize, min: usize },
    /// A cancellation of a reassignment that is not in progress.
    #[error("no reassignment is in progress for the partition")]
    NoReassignmentInProgress,
    /// A new leader's high watermark has not reached the start of its epoch yet
    /// (KIP-207): offsets derived from it are not answered.
    #[error("the leader's high watermark has not caught up with the start of its epoch yet")]
    OffsetNotAvailable,
    /// A replica fetch from a broker that is not a replica of the partition.
    #[error("broker {0} is not a replica of the partition")]
    NotReplica(i32),
    /// The partition has no leader now (its replicas are offline).
    #[error("the partition has no leader now")]
    LeaderNotAvailable,
    /// The metadata quorum has no active controller now, or it is not reachable:
    /// NOT_CONTROLLER, which clients retry after refreshing their metadata.
    #[error("the controller is not available: {0}")]
    NotController(String),
    /// The metadata change was not committed in time (REQUEST_TIMED_OUT).
    #[error("request timed out: {0}")]
    RequestTimedOut(String),
    /// A request to another node failed: it could not be reached, its answer could
    /// not be read, or it refused (NETWORK_EXCEPTION if it ever reaches a client).
    #[error("node {node}: {reason}")]
    Remote { node: i32, reason: String },
    /// A bug inside the broker (a panicked task): the request fails, the broker goes on.
    #[error("internal error: {0}")]
    Internal(String),
}

impl BrokerError {
    /// Whether the disk failed (as opposed to the request).
    pub fn is_storage(&self) -> bool {
        matches!(self, BrokerError::Storage(_) | BrokerError::Io(_) | BrokerError::Log(_))
    }
}

impl From<strom_cluster::ClusterError> for BrokerError {
    fn from(e: strom_cluster::ClusterError) -> Self {
        use strom_cluster::{ClusterError, Refusal};
        match e {
            ClusterError::Refused(Refusal::TopicExists(name)) => BrokerError::TopicAlreadyExists(name),
            ClusterError::Refused(Refusal::UnknownTopic(_)) => BrokerError::UnknownTopicOrPartition,
            // The image moved on while the change was built: the client retries.
            ClusterError::Refused(refusal) => BrokerError::NotController(refusal.to_string()),
            ClusterError::NotAvailable(why) | ClusterError::PeerRefused(why) => BrokerError::NotController(why),
            ClusterError::Shutdown => BrokerError::NotController("the metadata quorum is shut down".into()),
            ClusterError::Timeout(why) => BrokerError::RequestTimedOut(why),
            ClusterError::Storage(why) => BrokerError::Storage(why),
            ClusterError::Config(why) => BrokerError::Storage(why),
        }
    }
}

impl From<LogError> for BrokerError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::OffsetOutOfRange { offset, start, end } => BrokerError::OffsetOutOfRange { offset, start, end },
            LogError::BatchTooLarge { size, max } => BrokerError::MessageTooLarge {
                size: size as usize,
                max: max as usize,
            },
            // The producer's batch failed validation; damage found on disk
            // (`CorruptStorage`) stays a storage error.
            e if e.is_invalid_input() => BrokerError::CorruptMessage(e.to_string()),
            other => BrokerError::Log(other),
        }
    }
}

impl From<std::io::Error> for BrokerError {
    fn from(e: std::io::Error) -> Self {
        BrokerError::Io(e)
    }
}

pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

/// Kafka's top-level message for rejected records: the count and the first three.
fn record_errors_message(errors: &[(i32, String)]) -> String {
    let shown: Vec<String> = errors
        .iter()
        .take(3)
        .map(|(index, message)| format!("RecordError(batchIndex={index}, message='{message}')"))
        .collect();
    format!(
        "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
        errors.len(),
        shown.join(", ")
    )
}
