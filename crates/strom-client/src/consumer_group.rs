//! The consumer group protocol of KIP-848 ([`GroupProtocol::Consumer`]): the background task
//! that heartbeats with ConsumerGroupHeartbeat and applies the broker's assignments
//! incrementally.
//!
//! Every heartbeat is a full one: member id and epoch, subscription (topic names, or the
//! pattern with v1), the broker-side assignor and the owned partitions by topic id. A
//! response carrying an assignment is reconciled at once: partitions no longer assigned are
//! committed (with auto-commit), handed to `on_revoked` and dropped; the new owned set is
//! acknowledged by the next heartbeat, sent right away; partitions new to the member start
//! from their committed offsets (or `auto_offset_reset`) and go to `on_assigned`.
//!
//! The member epoch is 0 to join and -1 to leave; FENCED_MEMBER_EPOCH and UNKNOWN_MEMBER_ID
//! lose every partition (no commit) and join again with epoch 0. With v1 the member id is a
//! UUID made here; with v0 the broker hands one out. Commits carry the member epoch as the
//! generation (`group.rs`; `membership.rs` retries STALE_MEMBER_EPOCH).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;
use tracing::{debug, warn};
use uuid::Uuid;

use crate::assignment::{PartitionState, SharedAssignment};
use crate::error::{Error, Result};
use crate::group::{FENCED_MEMBER_EPOCH, UNKNOWN_MEMBER_ID};
use crate::membership::{commit_positions, is_fatal, revoke, starting_positions, Membership};
use crate::subscription::Subscription;
use crate::sync::lock;
use crate::topic_partition::TopicPartition;

/// The member epoch that joins a group.
const JOIN_EPOCH: i32 = 0;
/// The member epoch that leaves a group.
const LEAVE_EPOCH: i32 = -1;

/// The member's identity as the coordinator knows it.
struct Member {
    id: String,
    epoch: i32,
    /// The negotiated ConsumerGroupHeartbeat version.
    version: i16,
}

/// The KIP-848 membership task: runs until `stop`, then leaves the group.
pub(crate) async fn run(membership: Arc<Membership>, assignment: SharedAssignment) -> Result<()> {
    let options = &membership.options;
    let backoff = membership.coordinator.client().config().retry_backoff;
    let mut member = Member {
        id: String::new(),
        epoch: JOIN_EPOCH,
        version: -1,
    };
    let mut interval = options.heartbeat_interval;
    let mut next_heartbeat = Instant::now();
    let mut next_commit = options.auto_commit_interval.map(|interval| Instant::now() + interval);
    let mut topics = None;
    let mut next_metadata = Instant::now();
    loop {
        if membership.stopping.load(Ordering::Acquire) {
            return shut_down(&membership, &assignment, &member).await;
        }
        if membership.fenced.swap(false, Ordering::AcqRel) {
            lose_all(&membership, &assignment, &mut member).await;
            next_heartbeat = Instant::now();
        }
        if membership.rejoin.swap(false, Ordering::AcqRel) {
            topics = None; // the subscription changed
            next_heartbeat = Instant::now();
        }
        let now = Instant::now();
        if topics.is_none() || now >= next_metadata {
            next_metadata = now + options.metadata_max_age;
            match membership.subscribed_topics().await {
                Ok(found) => topics = Some(found),
                Err(error) => debug!(%error, "resolving the subscription failed"),
            }
        }
        if now >= next_heartbeat {
            next_heartbeat = now + interval;
            let subscribed = topics.clone().unwrap_or_default();
            match heartbeat(&membership, &assignment, &mut member, &subscribed).await {
                Ok(response) => {
                    if response.heartbeat_interval_ms > 0 {
                        interval = Duration::from_millis(u64::try_from(response.heartbeat_interval_ms).unwrap_or(0));
                        next_heartbeat = now + interval;
                    }
                    if let Some(assigned) = response.assignment {
                        match reconcile(&membership, &assignment, assigned.topic_partitions).await {
                            Ok(()) => next_heartbeat = Instant::now(), // acknowledge the new owned set
                            Err(error) if is_fatal(&error) => return fail(&membership, &member, error).await,
                            Err(error) => {
                                debug!(%error, "applying the assignment failed, retrying");
                                next_heartbeat = Instant::now() + backoff;
                            }
                        }
                    }
                }
                Err(error) if matches!(error.code(), Some(FENCED_MEMBER_EPOCH | UNKNOWN_MEMBER_ID)) => {
                    debug!(%error, "fenced, joining again");
                    lose_all(&membership, &assignment, &mut member).await;
                    next_heartbeat = Instant::now() + backoff;
                }
                Err(error) if is_fatal(&error) => return fail(&membership, &member, error).await,
                Err(error) => {
                    debug!(%error, "heartbeat failed");
                    next_heartbeat = Instant::now() + backoff;
                }
            }
        }
        if let (Some(at), Some(every)) = (next_commit, options.auto_commit_interval) {
            if Instant::now() >= at {
                next_commit = Some(Instant::now() + every);
                if let Err(error) = commit_positions(&membership, &assignment).await {
                    debug!(%error, "auto-commit failed");
                }
            }
        }
        let wake = next_commit.map_or(next_heartbeat, |at| at.min(next_heartbeat));
        let wake = wake.min(next_metadata);
        tokio::select! {
            _ = membership.wakeup.notified() => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// Records a fatal error for `poll`, leaves the group and ends the task.
async fn fail(membership: &Membership, member: &Member, error: Error) -> Result<()> {
    warn!(%error, "group membership failed");
    *lock(&membership.fatal) = Some(error.clone());
    let _ = leave(membership, member).await;
    Err(error)
}

/// One full heartbeat; updates the member id and epoch from the response.
async fn heartbeat(
    membership: &Membership,
    assignment: &SharedAssignment,
    member: &mut Member,
    topics: &[String],
) -> Result<ConsumerGroupHeartbeatResponse> {
    let coordinator = &membership.coordinator;
    if member.version < 0 {
        member.version = coordinator.version_for::<ConsumerGroupHeartbeatRequest>().await?;
    }
    if member.id.is_empty() && member.version >= 1 {
        member.id = Uuid::new_v4().to_string();
    }
    let owned = owned_by_topic_id(membership, assignment).await?;
    let subscription = membership.subscription();
    let settings = coordinator.settings();
    let to_names = |names: &[String]| -> Vec<TopicName> {
        names
            .iter()
            .map(|name| TopicName(StrBytes::from_string(name.clone())))
            .collect()
    };
    let (names, regex) = match &subscription {
        Subscription::Pattern { source, .. } if member.version >= 1 => {
            (Vec::new(), Some(StrBytes::from_string(source.clone())))
        }
        _ => (to_names(topics), (member.version >= 1).then(StrBytes::default)),
    };
    let (id, epoch) = (member.id.clone(), member.epoch);
    let response = coordinator
        .send(|_| {
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(coordinator.group_id())
                .with_member_id(StrBytes::from_string(id.clone()))
                .with_member_epoch(epoch)
                .with_instance_id(coordinator.instance_id())
                .with_rebalance_timeout_ms(i32::try_from(settings.rebalance_timeout.as_millis()).unwrap_or(i32::MAX))
                .with_subscribed_topic_names(Some(names.clone()))
                .with_subscribed_topic_regex(regex.clone())
                .with_server_assignor(membership.options.remote_assignor.clone().map(StrBytes::from_string))
                .with_topic_partitions(Some(owned.clone()))
        })
        .await?;
    coordinator
        .check(response.error_code, response.error_message.as_deref())
        .await?;
    if let Some(id) = response.member_id.as_ref().filter(|id| !id.is_empty()) {
        member.id = id.to_string();
    }
    member.epoch = response.member_epoch;
    coordinator.set_member(&member.id, member.epoch);
    Ok(response)
}

/// The owned partitions by topic id, as heartbeats carry them.
async fn owned_by_topic_id(membership: &Membership, assignment: &SharedAssignment) -> Result<Vec<TopicPartitions>> {
    let owned: Vec<TopicPartition> = assignment.lock().await.keys().cloned().collect();
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for key in owned {
        by_topic.entry(key.topic).or_default().push(key.partition);
    }
    let client = membership.coordinator.client();
    let mut out = Vec::with_capacity(by_topic.len());
    for (topic, partitions) in by_topic {
        let metadata = client.topic_metadata(&topic).await?;
        out.push(
            TopicPartitions::default()
                .with_topic_id(metadata.topic_id)
                .with_partitions(partitions),
        );
    }
    Ok(out)
}

/// The assigned partitions by name; topic ids unknown even after a metadata refresh are left
/// out (the broker sends the assignment again while the owned set differs).
async fn resolve_names(
    membership: &Membership,
    assigned: &[kafka_protocol::messages::consumer_group_heartbeat_response::TopicPartitions],
) -> Result<BTreeSet<TopicPartition>> {
    let client = membership.coordinator.client();
    let known = |id: &Uuid| {
        client
            .metadata()
            .topics
            .values()
            .find(|t| t.topic_id == *id)
            .map(|t| t.name.clone())
    };
    if assigned.iter().any(|t| known(&t.topic_id).is_none()) {
        client.refresh_metadata(None).await?;
    }
    let mut out = BTreeSet::new();
    for topic in assigned {
        match known(&topic.topic_id) {
            Some(name) => out.extend(topic.partitions.iter().map(|p| TopicPartition::new(name.clone(), *p))),
            None => debug!(topic_id = %topic.topic_id, "assigned topic id not in metadata yet"),
        }
    }
    Ok(out)
}

/// Applies an assignment: revokes what is no longer assigned, then adds what is new.
async fn reconcile(
    membership: &Membership,
    assignment: &SharedAssignment,
    assigned: Vec<kafka_protocol::messages::consumer_group_heartbeat_response::TopicPartitions>,
) -> Result<()> {
    let target = resolve_names(membership, &assigned).await?;
    let owned: BTreeSet<TopicPartition> = assignment.lock().await.keys().cloned().collect();
    let revoked: Vec<TopicPartition> = owned.difference(&target).cloned().collect();
    let added: Vec<TopicPartition> = target.difference(&owned).cloned().collect();
    if !revoked.is_empty() {
        revoke(membership, assignment, &revoked, true).await;
    }
    if !added.is_empty() {
        let positions = starting_positions(membership, &added).await?;
        {
            let mut guard = assignment.lock().await;
            for (key, position) in positions {
                guard.insert(
                    key,
                    PartitionState {
                        position,
                        paused: false,
                    },
                );
            }
        }
        if let Some(listener) = &membership.options.listener {
            listener.on_assigned(&added);
        }
    }
    debug!(?revoked, ?added, "assignment applied");
    Ok(())
}

/// After fencing: every partition is lost (not committed) and the member joins again.
async fn lose_all(membership: &Membership, assignment: &SharedAssignment, member: &mut Member) {
    let owned: Vec<TopicPartition> = assignment.lock().await.keys().cloned().collect();
    if !owned.is_empty() {
        revoke(membership, assignment, &owned, false).await;
    }
    member.epoch = JOIN_EPOCH;
    if member.version < 1 {
        member.id.clear(); // v0: the broker hands out a new id
    }
    membership.coordinator.set_member(&member.id, -1);
}

async fn shut_down(membership: &Membership, assignment: &SharedAssignment, member: &Member) -> Result<()> {
    let owned: Vec<TopicPartition> = assignment.lock().await.keys().cloned().collect();
    if !owned.is_empty() {
        revoke(membership, assignment, &owned, true).await;
    }
    leave(membership, member).await
}

/// A heartbeat with epoch -1: the member leaves and its partitions go to the others at once.
async fn leave(membership: &Membership, member: &Member) -> Result<()> {
    if member.id.is_empty() || member.epoch <= JOIN_EPOCH {
        return Ok(());
    }
    let coordinator = &membership.coordinator;
    let response = coordinator
        .send(|_| {
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(coordinator.group_id())
                .with_member_id(StrBytes::from_string(member.id.clone()))
                .with_member_epoch(LEAVE_EPOCH)
                .with_instance_id(coordinator.instance_id())
        })
        .await?;
    coordinator.set_member("", -1);
    coordinator
        .check(response.error_code, response.error_message.as_deref())
        .await
}
