//! What a subscribed consumer and its group membership task share, and the steps both group
//! protocols take: committing positions, revoking partitions and finding where newly assigned
//! partitions start.
//!
//! The task itself is `classic_group.rs` ([`GroupProtocol::Classic`]) or `consumer_group.rs`
//! ([`GroupProtocol::Consumer`]); the consumer starts the one its configuration names.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::debug;

use crate::assignment::{resolve_offsets, SharedAssignment};
use crate::error::{Error, Result};
use crate::group::{
    GroupCoordinator, FENCED_MEMBER_EPOCH, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, STALE_MEMBER_EPOCH,
    UNKNOWN_MEMBER_ID,
};
use crate::offset::{AutoOffsetReset, Offset};
use crate::subscription::Subscription;
use crate::sync::lock;
use crate::topic_partition::TopicPartition;

/// Which protocol a consumer group member speaks with its coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupProtocol {
    /// JoinGroup / SyncGroup / Heartbeat with client-side assignors; eager or incremental
    /// rebalancing as the chosen assignor says ([`Assignor::is_cooperative`]).
    #[default]
    Classic,
    /// KIP-848: ConsumerGroupHeartbeat, assignments computed by the broker and applied
    /// incrementally.
    Consumer,
}

/// Told about partitions taken from and given to this consumer by group rebalances. Called
/// from the consumer's background task; keep the work short.
///
/// ```
/// use strom_client::{RebalanceListener, TopicPartition};
///
/// struct Log;
/// impl RebalanceListener for Log {
///     fn on_assigned(&self, partitions: &[TopicPartition]) {
///         println!("now reading {partitions:?}");
///     }
/// }
/// ```
pub trait RebalanceListener: Send + Sync {
    /// These partitions are no longer this consumer's (their positions were auto-committed
    /// already, if auto-commit is on): all of them before an eager rejoin and on close, only
    /// those taken away after a cooperative rebalance.
    fn on_revoked(&self, _partitions: &[TopicPartition]) {}
    /// After a rebalance: the partitions new to the consumer, with positions set (all of them
    /// with an eager assignor; possibly none with a cooperative one).
    fn on_assigned(&self, _partitions: &[TopicPartition]) {}
}

/// Settings of the membership task.
pub(crate) struct MemberOptions {
    pub heartbeat_interval: Duration,
    pub auto_commit_interval: Option<Duration>,
    pub auto_offset_reset: AutoOffsetReset,
    pub read_committed: bool,
    pub listener: Option<Arc<dyn RebalanceListener>>,
    pub metadata_max_age: Duration,
    pub protocol: GroupProtocol,
    pub remote_assignor: Option<String>,
}

/// What the consumer and its membership task share.
pub(crate) struct Membership {
    pub coordinator: GroupCoordinator,
    pub options: MemberOptions,
    subscription: Mutex<Subscription>,
    pub(crate) rejoin: AtomicBool,
    /// Set by a commit that found the member fenced (KIP-848 protocol).
    pub(crate) fenced: AtomicBool,
    pub(crate) stopping: AtomicBool,
    pub(crate) wakeup: Notify,
    pub(crate) fatal: Mutex<Option<Error>>,
}

impl Membership {
    pub fn new(coordinator: GroupCoordinator, options: MemberOptions) -> Self {
        Membership {
            coordinator,
            options,
            subscription: Mutex::new(Subscription::Topics(Vec::new())),
            rejoin: AtomicBool::new(true),
            fenced: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            wakeup: Notify::new(),
            fatal: Mutex::new(None),
        }
    }

    /// Changes the subscription; the task rejoins with it.
    pub fn subscribe(&self, subscription: Subscription) {
        *lock(&self.subscription) = subscription;
        self.request_rejoin();
    }

    /// The current subscription.
    pub fn subscription(&self) -> Subscription {
        lock(&self.subscription).clone()
    }

    /// The subscribed topics; a pattern is matched against a fresh list of the cluster's
    /// topics.
    pub async fn subscribed_topics(&self) -> Result<Vec<String>> {
        let subscription = self.subscription();
        if let Subscription::Topics(topics) = &subscription {
            return Ok(topics.clone());
        }
        let metadata = self.coordinator.client().refresh_metadata(None).await?;
        let names = metadata
            .topics
            .values()
            .filter(|t| !t.is_internal)
            .map(|t| t.name.as_str());
        Ok(subscription.matching(names))
    }

    pub fn request_rejoin(&self) {
        self.rejoin.store(true, Ordering::Release);
        self.wakeup.notify_one();
    }

    /// Asks the task to commit, revoke, leave and stop.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.wakeup.notify_one();
    }

    /// The error that stopped the task, if any.
    pub fn fatal_error(&self) -> Option<Error> {
        lock(&self.fatal).clone()
    }

    /// Reacts to a group error of a commit or heartbeat: rejoin when the generation moved on.
    pub fn on_group_error(&self, error: &Error) {
        if self.options.protocol == GroupProtocol::Consumer {
            if matches!(error.code(), Some(UNKNOWN_MEMBER_ID | FENCED_MEMBER_EPOCH)) {
                self.fenced.store(true, Ordering::Release);
            }
            self.wakeup.notify_one();
            return;
        }
        match error.code() {
            Some(UNKNOWN_MEMBER_ID) => {
                self.coordinator.reset_member();
                self.request_rejoin();
            }
            Some(ILLEGAL_GENERATION) => {
                self.coordinator.reset_generation();
                self.request_rejoin();
            }
            Some(REBALANCE_IN_PROGRESS) => self.request_rejoin(),
            _ => {}
        }
    }
}

/// Commits the positions of the assigned partitions.
pub(crate) async fn commit_positions(membership: &Membership, assignment: &SharedAssignment) -> Result<()> {
    let offsets: BTreeMap<TopicPartition, i64> = assignment
        .lock()
        .await
        .iter()
        .map(|(key, state)| (key.clone(), state.position))
        .collect();
    commit_offsets(membership, &offsets).await
}

/// Commits offsets as the current member, rejoining when the group moved on. A
/// STALE_MEMBER_EPOCH (KIP-848 protocol) is retried once the heartbeat task has the new epoch.
pub(crate) async fn commit_offsets(membership: &Membership, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
    let backoff = membership.coordinator.client().config().retry_backoff;
    let mut attempts = 0;
    loop {
        let result = membership.coordinator.commit(offsets).await;
        if let Err(error) = &result {
            membership.on_group_error(error);
            if error.code() == Some(STALE_MEMBER_EPOCH) && attempts < STALE_EPOCH_RETRIES {
                attempts += 1;
                debug!(attempts, "stale member epoch, retrying the commit");
                tokio::time::sleep(backoff).await;
                continue;
            }
        }
        return result;
    }
}

/// Commit attempts after STALE_MEMBER_EPOCH before the error is returned.
const STALE_EPOCH_RETRIES: u32 = 5;

/// Kafka's FENCED_INSTANCE_ID, GROUP_AUTHORIZATION_FAILED, INVALID_SESSION_TIMEOUT,
/// INCONSISTENT_GROUP_PROTOCOL, GROUP_MAX_SIZE_REACHED, INVALID_REQUEST, UNSUPPORTED_ASSIGNOR
/// and the client's own errors end membership; everything else is retried.
pub(crate) fn is_fatal(error: &Error) -> bool {
    match error {
        Error::Kafka { code, .. } => matches!(code, 82 | 30 | 26 | 23 | 81 | 42 | 112),
        Error::Config(_) | Error::Protocol(_) | Error::Fatal(_) => true,
        _ => false,
    }
}

/// Where newly assigned partitions start: the committed offset, else `auto_offset_reset`.
pub(crate) async fn starting_positions(
    membership: &Membership,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, i64>> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let coordinator = &membership.coordinator;
    let committed = coordinator.committed(partitions).await?;
    let mut starts = BTreeMap::new();
    for key in partitions {
        let offset =
            match committed.get(key) {
                Some(offset) => Offset::At(*offset),
                None => membership.options.auto_offset_reset.offset().ok_or_else(|| {
                    Error::Config(format!("{key} has no committed offset and auto_offset_reset is None"))
                })?,
            };
        starts.insert(key.clone(), offset);
    }
    resolve_offsets(coordinator.client(), membership.options.read_committed, &starts).await
}

/// Commits (with auto-commit and `commit`) and drops these partitions, telling the listener.
pub(crate) async fn revoke(
    membership: &Membership,
    assignment: &SharedAssignment,
    partitions: &[TopicPartition],
    commit: bool,
) {
    if partitions.is_empty() {
        return;
    }
    if commit && membership.options.auto_commit_interval.is_some() {
        let offsets: BTreeMap<TopicPartition, i64> = {
            let guard = assignment.lock().await;
            partitions
                .iter()
                .filter_map(|key| guard.get(key).map(|state| (key.clone(), state.position)))
                .collect()
        };
        if let Err(error) = commit_offsets(membership, &offsets).await {
            debug!(%error, "commit before revoking failed");
        }
    }
    if let Some(listener) = &membership.options.listener {
        listener.on_revoked(partitions);
    }
    let mut guard = assignment.lock().await;
    for key in partitions {
        guard.remove(key);
    }
}
