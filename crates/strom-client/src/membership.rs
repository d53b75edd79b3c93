//! The background task that keeps a subscribed consumer in its group: join and sync
//! (eager rebalancing: everything is revoked before a rejoin), heartbeats, rejoins on
//! REBALANCE_IN_PROGRESS / ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID, auto-commit, and
//! LeaveGroup when the consumer closes.
//!
//! The task replaces the consumer's assignment; `poll` keeps fetching whatever is assigned.
//! A fatal error (a fenced static member, no committed offset with
//! [`AutoOffsetReset::None`]) stops the task and is returned by the next `poll`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::consumer::{resolve_offsets, Offset, SharedAssignment};
use crate::error::{Error, Result};
use crate::group::{GroupCoordinator, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID};

/// Where a group member starts reading a partition that has no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoOffsetReset {
    /// The log start offset.
    Earliest,
    /// The log end offset (Kafka's default).
    #[default]
    Latest,
    /// Fail: `poll` returns an error.
    None,
}

impl AutoOffsetReset {
    pub(crate) fn offset(self) -> Option<Offset> {
        match self {
            AutoOffsetReset::Earliest => Some(Offset::Beginning),
            AutoOffsetReset::Latest => Some(Offset::End),
            AutoOffsetReset::None => None,
        }
    }
}

/// Told about partitions taken from and given to this consumer by group rebalances. Called
/// from the consumer's background task; keep the work short.
///
/// ```
/// use strom_client::RebalanceListener;
///
/// struct Log;
/// impl RebalanceListener for Log {
///     fn on_assigned(&self, partitions: &[(String, i32)]) {
///         println!("now reading {partitions:?}");
///     }
/// }
/// ```
pub trait RebalanceListener: Send + Sync {
    /// Before a rejoin or close: these partitions are no longer this consumer's (their
    /// positions were auto-committed already, if auto-commit is on).
    fn on_revoked(&self, _partitions: &[(String, i32)]) {}
    /// After a rebalance: the consumer's new partitions, with positions set.
    fn on_assigned(&self, _partitions: &[(String, i32)]) {}
}

/// Settings of the membership task.
pub(crate) struct MemberOptions {
    pub heartbeat_interval: Duration,
    pub auto_commit_interval: Option<Duration>,
    pub auto_offset_reset: AutoOffsetReset,
    pub read_committed: bool,
    pub listener: Option<Arc<dyn RebalanceListener>>,
}

/// What the consumer and its membership task share.
pub(crate) struct Membership {
    pub coordinator: GroupCoordinator,
    pub options: MemberOptions,
    topics: Mutex<Vec<String>>,
    rejoin: AtomicBool,
    stopping: AtomicBool,
    wakeup: Notify,
    fatal: Mutex<Option<Error>>,
}

impl Membership {
    pub fn new(coordinator: GroupCoordinator, options: MemberOptions) -> Self {
        Membership {
            coordinator,
            options,
            topics: Mutex::new(Vec::new()),
            rejoin: AtomicBool::new(true),
            stopping: AtomicBool::new(false),
            wakeup: Notify::new(),
            fatal: Mutex::new(None),
        }
    }

    /// Changes the subscription; the task rejoins with it.
    pub fn subscribe(&self, topics: Vec<String>) {
        *lock(&self.topics) = topics;
        self.request_rejoin();
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
    let offsets: Vec<(String, i32, i64)> = assignment
        .lock()
        .await
        .iter()
        .map(|((topic, partition), state)| (topic.clone(), *partition, state.position))
        .collect();
    commit_offsets(membership, &offsets).await
}

/// Commits offsets as the current member, rejoining when the group moved on.
pub(crate) async fn commit_offsets(membership: &Membership, offsets: &[(String, i32, i64)]) -> Result<()> {
    let result = membership.coordinator.commit(offsets).await;
    if let Err(error) = &result {
        membership.on_group_error(error);
    }
    result
}

/// The membership task: runs until `stop`, then leaves the group.
pub(crate) async fn run(membership: Arc<Membership>, assignment: SharedAssignment) -> Result<()> {
    let options = &membership.options;
    let backoff = membership.coordinator.client().config().retry_backoff;
    let mut next_heartbeat = Instant::now() + options.heartbeat_interval;
    let mut next_commit = options.auto_commit_interval.map(|interval| Instant::now() + interval);
    loop {
        if membership.stopping.load(Ordering::Acquire) {
            return shut_down(&membership, &assignment).await;
        }
        if membership.rejoin.swap(false, Ordering::AcqRel) {
            match rebalance(&membership, &assignment).await {
                Ok(()) => next_heartbeat = Instant::now() + options.heartbeat_interval,
                Err(error) if is_fatal(&error) => {
                    warn!(%error, "group membership failed");
                    *lock(&membership.fatal) = Some(error.clone());
                    let _ = membership.coordinator.leave().await;
                    return Err(error);
                }
                Err(error) => {
                    debug!(%error, "rebalance failed, retrying");
                    membership.on_group_error(&error);
                    membership.rejoin.store(true, Ordering::Release);
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            }
        }
        let wake = next_commit.map_or(next_heartbeat, |at| at.min(next_heartbeat));
        tokio::select! {
            _ = membership.wakeup.notified() => continue,
            _ = tokio::time::sleep_until(wake) => {}
        }
        let now = Instant::now();
        if now >= next_heartbeat {
            next_heartbeat = now + options.heartbeat_interval;
            if let Err(error) = membership.coordinator.heartbeat().await {
                debug!(%error, "heartbeat failed");
                if is_fatal(&error) {
                    *lock(&membership.fatal) = Some(error.clone());
                    return Err(error);
                }
                membership.on_group_error(&error);
            }
        }
        if let (Some(at), Some(interval)) = (next_commit, options.auto_commit_interval) {
            if now >= at {
                next_commit = Some(now + interval);
                if let Err(error) = commit_positions(&membership, &assignment).await {
                    debug!(%error, "auto-commit failed");
                }
            }
        }
    }
}

/// Kafka's FENCED_INSTANCE_ID, GROUP_AUTHORIZATION_FAILED, INVALID_SESSION_TIMEOUT,
/// INCONSISTENT_GROUP_PROTOCOL, GROUP_MAX_SIZE_REACHED and the client's own errors end
/// membership; everything else is retried.
fn is_fatal(error: &Error) -> bool {
    match error {
        Error::Kafka { code, .. } => matches!(code, 82 | 30 | 26 | 23 | 81),
        Error::Config(_) | Error::Protocol(_) | Error::Fatal(_) => true,
        _ => false,
    }
}

/// Revokes everything, joins, syncs and takes the new assignment with starting positions.
async fn rebalance(membership: &Membership, assignment: &SharedAssignment) -> Result<()> {
    revoke_all(membership, assignment).await;
    let topics = lock(&membership.topics).clone();
    let coordinator = &membership.coordinator;
    let joined = coordinator.join(&topics).await?;
    let assignments = if joined.is_leader {
        coordinator.assign(&joined).await?
    } else {
        Vec::new()
    };
    let partitions = coordinator.sync(&joined, assignments).await?;
    let committed = coordinator.committed(&partitions).await?;
    let mut starts = Vec::with_capacity(partitions.len());
    for (topic, partition) in &partitions {
        let offset = match committed.get(&(topic.clone(), *partition)) {
            Some(offset) => Offset::At(*offset),
            None => membership.options.auto_offset_reset.offset().ok_or_else(|| {
                Error::Config(format!(
                    "{topic}-{partition} has no committed offset and auto_offset_reset is None"
                ))
            })?,
        };
        starts.push((topic.clone(), *partition, offset));
    }
    let client = coordinator.client();
    let resolved = resolve_offsets(client, membership.options.read_committed, &starts).await?;
    {
        let mut guard = assignment.lock().await;
        guard.clear();
        for (key, position) in resolved {
            guard.insert(
                key,
                crate::consumer::PartitionState {
                    position,
                    paused: false,
                },
            );
        }
    }
    debug!(generation = joined.generation_id, ?partitions, "assigned");
    if let Some(listener) = &membership.options.listener {
        listener.on_assigned(&partitions);
    }
    Ok(())
}

/// Commits (with auto-commit) and revokes the current assignment.
async fn revoke_all(membership: &Membership, assignment: &SharedAssignment) {
    let owned: Vec<(String, i32)> = assignment.lock().await.keys().cloned().collect();
    if owned.is_empty() {
        return;
    }
    if membership.options.auto_commit_interval.is_some() {
        if let Err(error) = commit_positions(membership, assignment).await {
            debug!(%error, "commit before revoking failed");
        }
    }
    if let Some(listener) = &membership.options.listener {
        listener.on_revoked(&owned);
    }
    assignment.lock().await.clear();
}

async fn shut_down(membership: &Membership, assignment: &SharedAssignment) -> Result<()> {
    revoke_all(membership, assignment).await;
    membership.coordinator.leave().await
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
