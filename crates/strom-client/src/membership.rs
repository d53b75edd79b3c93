//! The background task that keeps a subscribed consumer in its group: join and sync,
//! heartbeats, rejoins on REBALANCE_IN_PROGRESS / ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID,
//! auto-commit, and LeaveGroup when the consumer closes.
//!
//! The assignor the group chose at the last rebalance decides how the next one goes. Eager
//! (range, roundrobin): everything is revoked before the rejoin. Cooperative
//! (cooperative-sticky, KIP-429): the member rejoins owning its partitions (revoking only
//! those of topics it no longer subscribes to, or all of them, uncommitted, when it lost its
//! generation); after SyncGroup it revokes what it owns but was not assigned, adds what is
//! new, and rejoins at once if it revoked anything, so that the follow-up rebalance hands
//! the revoked partitions to their new members.
//!
//! The task replaces the consumer's assignment; `poll` keeps fetching whatever is assigned.
//! A pattern subscription is matched against the cluster's topics at every rebalance and
//! every `metadata_max_age`; a change of the matched set rejoins the group.
//! With [`GroupProtocol::Consumer`] the task of `consumer_group.rs` runs instead.
//! A fatal error (a fenced static member, no committed offset with
//! [`AutoOffsetReset::None`]) stops the task and is returned by the next `poll`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::assignor::Assignor;
use crate::consumer::{resolve_offsets, GroupProtocol, Offset, PartitionState, SharedAssignment};
use crate::error::{Error, Result};
use crate::group::{
    GroupCoordinator, FENCED_MEMBER_EPOCH, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, STALE_MEMBER_EPOCH,
    UNKNOWN_MEMBER_ID,
};

type TopicPartition = (String, i32);

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
    /// These partitions are no longer this consumer's (their positions were auto-committed
    /// already, if auto-commit is on): all of them before an eager rejoin and on close, only
    /// those taken away after a cooperative rebalance.
    fn on_revoked(&self, _partitions: &[(String, i32)]) {}
    /// After a rebalance: the partitions new to the consumer, with positions set (all of them
    /// with an eager assignor; possibly none with a cooperative one).
    fn on_assigned(&self, _partitions: &[(String, i32)]) {}
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

/// What a member subscribes to.
#[derive(Debug, Clone)]
pub(crate) enum Subscription {
    /// These topics.
    Topics(Vec<String>),
    /// Every topic whose whole name matches the pattern (Java's `Pattern.matcher().matches()`).
    Pattern {
        /// The pattern as given.
        source: String,
        /// The pattern anchored at both ends.
        regex: regex::Regex,
    },
}

impl Subscription {
    /// A pattern subscription; the pattern must match whole topic names.
    pub fn pattern(source: &str) -> Result<Self> {
        let regex = regex::Regex::new(&format!("^(?:{source})$"))
            .map_err(|error| Error::Config(format!("invalid topic pattern {source:?}: {error}")))?;
        Ok(Subscription::Pattern {
            source: source.to_string(),
            regex,
        })
    }

    /// The subscribed topics among `topics` (names of the cluster's non-internal topics for
    /// a pattern), sorted.
    pub fn matching<'a>(&self, topics: impl Iterator<Item = &'a str>) -> Vec<String> {
        let mut out: Vec<String> = match self {
            Subscription::Topics(names) => names.clone(),
            Subscription::Pattern { regex, .. } => {
                topics.filter(|name| regex.is_match(name)).map(str::to_string).collect()
            }
        };
        out.sort();
        out.dedup();
        out
    }
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
    let offsets: Vec<(String, i32, i64)> = assignment
        .lock()
        .await
        .iter()
        .map(|((topic, partition), state)| (topic.clone(), *partition, state.position))
        .collect();
    commit_offsets(membership, &offsets).await
}

/// Commits offsets as the current member, rejoining when the group moved on. A
/// STALE_MEMBER_EPOCH (KIP-848 protocol) is retried once the heartbeat task has the new epoch.
pub(crate) async fn commit_offsets(membership: &Membership, offsets: &[(String, i32, i64)]) -> Result<()> {
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

/// The membership task: runs until `stop`, then leaves the group.
pub(crate) async fn run(membership: Arc<Membership>, assignment: SharedAssignment) -> Result<()> {
    match membership.options.protocol {
        GroupProtocol::Classic => run_classic(membership, assignment).await,
        GroupProtocol::Consumer => crate::consumer_group::run(membership, assignment).await,
    }
}

async fn run_classic(membership: Arc<Membership>, assignment: SharedAssignment) -> Result<()> {
    let options = &membership.options;
    let backoff = membership.coordinator.client().config().retry_backoff;
    let mut next_heartbeat = Instant::now() + options.heartbeat_interval;
    let mut next_commit = options.auto_commit_interval.map(|interval| Instant::now() + interval);
    let mut next_metadata = Instant::now() + options.metadata_max_age;
    let mut joined_topics: Vec<String> = Vec::new();
    // Whether the assignor the group chose last rebalances incrementally.
    let mut cooperative = false;
    loop {
        if membership.stopping.load(Ordering::Acquire) {
            return shut_down(&membership, &assignment).await;
        }
        if membership.rejoin.swap(false, Ordering::AcqRel) {
            match rebalance(&membership, &assignment, &mut cooperative).await {
                Ok(topics) => {
                    joined_topics = topics;
                    next_heartbeat = Instant::now() + options.heartbeat_interval;
                    next_metadata = Instant::now() + options.metadata_max_age;
                }
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
        let wake = wake.min(next_metadata);
        tokio::select! {
            _ = membership.wakeup.notified() => continue,
            _ = tokio::time::sleep_until(wake) => {}
        }
        let now = Instant::now();
        if now >= next_metadata {
            next_metadata = now + options.metadata_max_age;
            if matches!(membership.subscription(), Subscription::Pattern { .. }) {
                match membership.subscribed_topics().await {
                    Ok(topics) if topics != joined_topics => {
                        debug!(?topics, "pattern matches other topics now, rejoining");
                        membership.request_rejoin();
                    }
                    Ok(_) => {}
                    Err(error) => debug!(%error, "metadata refresh failed"),
                }
            }
        }
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
/// INCONSISTENT_GROUP_PROTOCOL, GROUP_MAX_SIZE_REACHED, INVALID_REQUEST, UNSUPPORTED_ASSIGNOR
/// and the client's own errors end membership; everything else is retried.
pub(crate) fn is_fatal(error: &Error) -> bool {
    match error {
        Error::Kafka { code, .. } => matches!(code, 82 | 30 | 26 | 23 | 81 | 42 | 112),
        Error::Config(_) | Error::Protocol(_) | Error::Fatal(_) => true,
        _ => false,
    }
}

/// Prepares (`prepare_join`), joins, syncs and applies the new assignment: revokes what is
/// owned but no longer assigned, adds what is new with starting positions, and with a
/// cooperative assignor rejoins at once when it revoked anything. `cooperative` tells how the
/// group rebalanced last and is updated to the assignor chosen now. Returns the topics joined
/// with.
async fn rebalance(
    membership: &Membership,
    assignment: &SharedAssignment,
    cooperative: &mut bool,
) -> Result<Vec<String>> {
    let topics = membership.subscribed_topics().await?;
    prepare_join(membership, assignment, &topics, *cooperative).await;
    let owned: BTreeSet<TopicPartition> = assignment.lock().await.keys().cloned().collect();
    let coordinator = &membership.coordinator;
    let joined = coordinator
        .join(&topics, &owned.iter().cloned().collect::<Vec<_>>())
        .await?;
    let assignments = if joined.is_leader {
        coordinator.assign(&joined).await?
    } else {
        Vec::new()
    };
    let assigned: BTreeSet<TopicPartition> = coordinator.sync(&joined, assignments).await?.into_iter().collect();
    // As in the Java client: rebalances are cooperative only when every assignor this member
    // offers is; one eager assignor in the list makes them eager, so a member never keeps
    // partitions across a join in which an eager leader may hand them to someone else.
    let all_cooperative = coordinator.settings().assignors.iter().all(|a| a.is_cooperative());
    *cooperative = all_cooperative && joined.assignor().is_some_and(Assignor::is_cooperative);
    let revoked: Vec<TopicPartition> = owned.difference(&assigned).cloned().collect();
    let added: Vec<TopicPartition> = assigned.difference(&owned).cloned().collect();
    if !revoked.is_empty() {
        revoke(membership, assignment, &revoked, true).await;
    }
    let resolved = starting_positions(membership, &added).await?;
    {
        let mut guard = assignment.lock().await;
        for (key, position) in resolved {
            guard.insert(
                key,
                PartitionState {
                    position,
                    paused: false,
                },
            );
        }
    }
    debug!(generation = joined.generation_id, protocol = ?joined.protocol, ?revoked, ?added, "assigned");
    if let Some(listener) = &membership.options.listener {
        listener.on_assigned(&added);
    }
    if *cooperative && !revoked.is_empty() {
        debug!("revoked partitions for other members, rejoining");
        membership.request_rejoin();
    }
    Ok(topics)
}

/// What a member gives up before JoinGroup. Eager: everything (committed first, with
/// auto-commit). Cooperative: without a generation (reset after an error) everything, not
/// committed, as it may be another member's already; else only the partitions of topics no
/// longer subscribed to.
async fn prepare_join(membership: &Membership, assignment: &SharedAssignment, topics: &[String], cooperative: bool) {
    let owned: Vec<TopicPartition> = assignment.lock().await.keys().cloned().collect();
    let identity = membership.coordinator.metadata();
    if !cooperative {
        revoke(membership, assignment, &owned, true).await;
    } else if identity.generation_id < 0 || identity.member_id.is_empty() {
        revoke(membership, assignment, &owned, false).await;
    } else {
        let unsubscribed: Vec<TopicPartition> =
            owned.into_iter().filter(|(topic, _)| !topics.contains(topic)).collect();
        revoke(membership, assignment, &unsubscribed, true).await;
    }
}

/// Where newly assigned partitions start: the committed offset, else `auto_offset_reset`.
pub(crate) async fn starting_positions(
    membership: &Membership,
    partitions: &[(String, i32)],
) -> Result<Vec<((String, i32), i64)>> {
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let coordinator = &membership.coordinator;
    let committed = coordinator.committed(partitions).await?;
    let mut starts = Vec::with_capacity(partitions.len());
    for (topic, partition) in partitions {
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
        let offsets: Vec<(String, i32, i64)> = {
            let guard = assignment.lock().await;
            partitions
                .iter()
                .filter_map(|key| guard.get(key).map(|state| (key.0.clone(), key.1, state.position)))
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

async fn shut_down(membership: &Membership, assignment: &SharedAssignment) -> Result<()> {
    let owned: Vec<TopicPartition> = assignment.lock().await.keys().cloned().collect();
    revoke(membership, assignment, &owned, true).await;
    membership.coordinator.leave().await
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_matches_whole_topic_names_only() {
        let subscription = Subscription::pattern("metrics-.*|logs").expect("valid pattern");
        let topics = ["metrics-a", "metrics-", "old-metrics-a", "logs", "logs-2", "other"];
        assert_eq!(
            subscription.matching(topics.into_iter()),
            ["logs", "metrics-", "metrics-a"]
        );
        assert!(Subscription::pattern("(").is_err());
        let names = Subscription::Topics(vec!["b".into(), "a".into(), "b".into()]);
        assert_eq!(names.matching(std::iter::empty()), ["a", "b"]);
    }
}
