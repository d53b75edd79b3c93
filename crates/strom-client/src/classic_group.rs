//! The member task of the classic group protocol ([`GroupProtocol::Classic`]): join and sync,
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
//! A fatal error (a fenced static member, no committed offset with
//! [`AutoOffsetReset::None`]) stops the task and is returned by the next `poll`.
//!
//! [`GroupProtocol::Classic`]: crate::GroupProtocol::Classic
//! [`AutoOffsetReset::None`]: crate::AutoOffsetReset::None

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::time::Instant;
use tracing::{debug, warn};

use crate::assignment::{PartitionState, SharedAssignment};
use crate::assignor::Assignor;
use crate::error::Result;
use crate::membership::{commit_positions, is_fatal, revoke, starting_positions, Membership};
use crate::subscription::Subscription;
use crate::sync::lock;
use crate::topic_partition::TopicPartition;

/// The classic membership task: runs until `stop`, then leaves the group.
pub(crate) async fn run(membership: Arc<Membership>, assignment: SharedAssignment) -> Result<()> {
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
        let unsubscribed: Vec<TopicPartition> = owned.into_iter().filter(|key| !topics.contains(&key.topic)).collect();
        revoke(membership, assignment, &unsubscribed, true).await;
    }
}

async fn shut_down(membership: &Membership, assignment: &SharedAssignment) -> Result<()> {
    let owned: Vec<TopicPartition> = assignment.lock().await.keys().cloned().collect();
    revoke(membership, assignment, &owned, true).await;
    membership.coordinator.leave().await
}
