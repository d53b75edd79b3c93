//! The one table from broker errors to Kafka error codes.

use kafka_protocol::error::ResponseError;
use strom_broker::BrokerError;

pub fn error_code(e: &BrokerError) -> i16 {
    let kind = match e {
        BrokerError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        BrokerError::UnknownTopicId => ResponseError::UnknownTopicId,
        BrokerError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
        BrokerError::InvalidTopic(_) => ResponseError::InvalidTopicException,
        BrokerError::PolicyViolation(_) => ResponseError::PolicyViolation,
        BrokerError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        BrokerError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        BrokerError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        BrokerError::InvalidConfig(_) => ResponseError::InvalidConfig,
        BrokerError::InvalidRequest(_) => ResponseError::InvalidRequest,
        BrokerError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
        BrokerError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        BrokerError::CorruptMessage(_) => ResponseError::CorruptMessage,
        BrokerError::InvalidRecord(_) | BrokerError::InvalidRecords(_) => ResponseError::InvalidRecord,
        BrokerError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
        BrokerError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
        BrokerError::Storage(_) | BrokerError::Io(_) | BrokerError::Log(_) => ResponseError::KafkaStorageError,
        BrokerError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        BrokerError::NotCoordinator => ResponseError::NotCoordinator,
        BrokerError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
        BrokerError::UnstableOffsetCommit => ResponseError::UnstableOffsetCommit,
        BrokerError::InvalidGroupId => ResponseError::InvalidGroupId,
        BrokerError::UnknownMemberId => ResponseError::UnknownMemberId,
        BrokerError::IllegalGeneration => ResponseError::IllegalGeneration,
        BrokerError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        BrokerError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        BrokerError::InvalidSessionTimeout(_) => ResponseError::InvalidSessionTimeout,
        BrokerError::MemberIdRequired => ResponseError::MemberIdRequired,
        BrokerError::FencedInstanceId => ResponseError::FencedInstanceId,
        BrokerError::GroupIdNotFound => ResponseError::GroupIdNotFound,
        BrokerError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        BrokerError::OffsetMetadataTooLarge(_) => ResponseError::OffsetMetadataTooLarge,
        BrokerError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
        BrokerError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
        BrokerError::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
        BrokerError::FencedMemberEpoch => ResponseError::FencedMemberEpoch,
        BrokerError::UnsupportedAssignor(_) => ResponseError::UnsupportedAssignor,
        BrokerError::UnreleasedInstanceId => ResponseError::UnreleasedInstanceId,
        BrokerError::GroupTypeMismatch(_) => ResponseError::GroupIdNotFound,
        BrokerError::OutOfOrderSequence(_) => ResponseError::OutOfOrderSequenceNumber,
        BrokerError::InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
        BrokerError::ProducerFenced(_) => ResponseError::ProducerFenced,
        BrokerError::UnknownProducerId(_) => ResponseError::UnknownProducerId,
        BrokerError::InvalidTransactionTimeout(_) => ResponseError::InvalidTransactionTimeout,
        BrokerError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
        BrokerError::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
        BrokerError::InvalidTxnState(_) => ResponseError::InvalidTxnState,
        BrokerError::OperationNotAttempted => ResponseError::OperationNotAttempted,
        BrokerError::InvalidRequiredAcks => ResponseError::InvalidRequiredAcks,
        BrokerError::TopicAuthorizationFailed => ResponseError::TopicAuthorizationFailed,
        BrokerError::GroupAuthorizationFailed => ResponseError::GroupAuthorizationFailed,
        BrokerError::ClusterAuthorizationFailed => ResponseError::ClusterAuthorizationFailed,
        BrokerError::TransactionalIdAuthorizationFailed => ResponseError::TransactionalIdAuthorizationFailed,
        BrokerError::NotController(_) => ResponseError::NotController,
        BrokerError::NotLeaderOrFollower => ResponseError::NotLeaderOrFollower,
        BrokerError::LeaderNotAvailable => ResponseError::LeaderNotAvailable,
        BrokerError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
        BrokerError::NotReplica(_) => ResponseError::NotLeaderOrFollower,
        BrokerError::OffsetNotAvailable => ResponseError::OffsetNotAvailable,
        BrokerError::ElectionNotNeeded => ResponseError::ElectionNotNeeded,
        BrokerError::BrokerIdNotRegistered(_) => ResponseError::BrokerIdNotRegistered,
        BrokerError::InconsistentClusterId(_) => ResponseError::InconsistentClusterId,
        BrokerError::PreferredLeaderNotAvailable => ResponseError::PreferredLeaderNotAvailable,
        BrokerError::RequestTimedOut(_) => ResponseError::RequestTimedOut,
        BrokerError::Remote { .. } => ResponseError::NetworkException,
        BrokerError::Internal(_) => ResponseError::UnknownServerError,
    };
    kind.code()
}

/// The human message Kafka sends beside the code (None where Kafka sends none).
pub fn error_message(e: &BrokerError) -> Option<kafka_protocol::protocol::StrBytes> {
    match e {
        BrokerError::UnknownTopicOrPartition | BrokerError::UnknownTopicId => None,
        other => Some(kafka_protocol::protocol::StrBytes::from_string(other.to_string())),
    }
}
