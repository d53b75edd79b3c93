//! The controller's decisions, as functions of the image and of the time: which brokers
//! to fence (no heartbeat for `broker.session.timeout.ms`) or unfence, and who leads
//! each partition. The active controller runs them (see [`crate::quorum`]) and commits
//! what they return; keeping them pure makes them testable with an injected clock.
//!
//! Elections follow Kafka: a partition's leader comes from its ISR and must be alive
//! (registered and unfenced); when no ISR member is alive it comes from the eligible
//! leader replicas (KIP-966: replicas that left the ISR while it was below
//! `min.insync.replicas`, so they hold every committed record); when none of those is
//! alive either the partition goes offline (leader -1) and keeps its last ISR member,
//! so that replica leads again when it returns. Unclean election (an out-of-sync
//! replica leading) happens only when asked for. A broker that returns with another
//! disk (a new `directory.id`) holds nothing: it leaves every ISR and ELR at once.

use std::collections::HashMap;

use uuid::Uuid;

use crate::image::{MetadataImage, PartitionState};
use crate::records::{MetadataRecord, PartitionChange};

/// No leader: the partition is offline.
pub const NO_LEADER: i32 = -1;

/// Whether a broker can lead or stay in an ISR now.
pub fn is_alive(image: &MetadataImage, node_id: i32) -> bool {
    image.broker(node_id).is_some_and(|b| !b.fenced)
}

/// The leader a partition should have: the current one while it is alive and in the
/// ISR, otherwise the first alive ISR member in replica order (the preferred replica
/// first), otherwise the first alive eligible leader replica (KIP-966), otherwise —
/// only with `unclean` — the first alive replica.
pub fn elect(partition: &PartitionState, alive: impl Fn(i32) -> bool, unclean: bool) -> i32 {
    if partition.leader != NO_LEADER && alive(partition.leader) && partition.isr.contains(&partition.leader) {
        return partition.leader;
    }
    let in_order = |among: Option<&[i32]>| {
        partition
            .replicas
            .iter()
            .copied()
            .find(|r| alive(*r) && among.is_none_or(|among| among.contains(r)))
    };
    in_order(Some(&partition.isr))
        .or_else(|| in_order(Some(&partition.elr)))
        .or_else(|| if unclean { in_order(None) } else { None })
        .unwrap_or(NO_LEADER)
}

/// `unclean.leader.election.enable` for a topic: its own override, else the cluster's
/// dynamic default (off unless set).
pub fn unclean_enabled(image: &MetadataImage, topic: &crate::image::TopicImage) -> bool {
    const NAME: &str = "unclean.leader.election.enable";
    let value = topic.configs.get(NAME).or_else(|| {
        image
            .configs(&crate::records::ConfigScope::ClusterDefault)
            .and_then(|configs| configs.get(NAME))
    });
    value.is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The ISR after the dead members leave; the last member stays even when dead, since
/// it holds every committed record and must lead again first.
fn shrink_isr(partition: &PartitionState, alive: &impl Fn(i32) -> bool) -> Vec<i32> {
    let live: Vec<i32> = partition.isr.iter().copied().filter(|r| alive(*r)).collect();
    if live.is_empty() {
        partition.isr.iter().copied().take(1).collect()
    } else {
        live
    }
}

/// Partition changes that bring every partition's leader and ISR in line with which
/// brokers are alive per `alive`.
pub fn leadership_changes(image: &MetadataImage, alive: impl Fn(i32) -> bool) -> Vec<MetadataRecord> {
    let mut changes = Vec::new();
    for topic in image.topics() {
        for (index, partition) in &topic.partitions {
            let isr = shrink_isr(partition, &alive);
            // A returning ISR member can lead; others join the ISR only by catching up
            // (partition replication), never here.
            let state = PartitionState {
                isr: isr.clone(),
                ..partition.clone()
            };
            let leader = elect(&state, &alive, unclean_enabled(image, topic));
            // A leader from outside the ISR (an eligible or an unclean one) starts an
            // ISR of its own; the image derives the eligible replicas from the change.
            let isr = if leader != NO_LEADER && !isr.contains(&leader) {
                vec![leader]
            } else {
                isr
            };
            if leader != partition.leader || isr != partition.isr {
                changes.push(change(topic.id, *index, partition, Some(leader), Some(isr)));
            }
        }
    }
    changes
}

fn change(
    topic_id: Uuid,
    partition: i32,
    state: &PartitionState,
    leader: Option<i32>,
    isr: Option<Vec<i32>>,
) -> MetadataRecord {
    MetadataRecord::PartitionChange(PartitionChange {
        topic_id,
        partition,
        partition_epoch: state.partition_epoch,
        leader,
        isr,
        replicas: None,
        joining: Vec::new(),
        elr: None,
        reassignment: None,
    })
}

/// Brokers to fence now: unfenced, and not heard from for `session_timeout_ms` (a
/// broker never heard from since `since_ms`, when this controller took over, counts
/// from then). Returns the fencing records with the leadership changes they cause.
pub fn fence_expired(
    image: &MetadataImage,
    heard_ms: &HashMap<i32, i64>,
    since_ms: i64,
    now_ms: i64,
    session_timeout_ms: i64,
) -> Vec<MetadataRecord> {
    let expired: Vec<(i32, i64)> = image
        .brokers()
        .values()
        .filter(|b| !b.fenced)
        .filter(|b| {
            let last = heard_ms
                .get(&b.registration.node_id)
                .copied()
                .unwrap_or(since_ms)
                .max(since_ms);
            now_ms.saturating_sub(last) > session_timeout_ms
        })
        .map(|b| (b.registration.node_id, b.broker_epoch))
        .collect();
    fence(image, &expired)
}

/// Fencing records for `brokers` (node id, broker epoch) and the leadership changes.
pub fn fence(image: &MetadataImage, brokers: &[(i32, i64)]) -> Vec<MetadataRecord> {
    if brokers.is_empty() {
        return Vec::new();
    }
    let mut records: Vec<MetadataRecord> = brokers
        .iter()
        .map(|(node_id, broker_epoch)| MetadataRecord::BrokerFencing {
            node_id: *node_id,
            broker_epoch: *broker_epoch,
            fenced: true,
        })
        .collect();
    let fenced: Vec<i32> = brokers.iter().map(|(id, _)| *id).collect();
    records.extend(leadership_changes(image, |id| {
        !fenced.contains(&id) && is_alive(image, id)
    }));
    records
}

/// Unfencing a broker that heartbeats again, with the leaderless partitions it can lead.
pub fn unfence(image: &MetadataImage, node_id: i32, broker_epoch: i64) -> Vec<MetadataRecord> {
    match image.broker(node_id) {
        Some(b) if b.fenced && b.broker_epoch == broker_epoch => {}
        _ => return Vec::new(),
    }
    let mut records = vec![MetadataRecord::BrokerFencing {
        node_id,
        broker_epoch,
        fenced: false,
    }];
    records.extend(leadership_changes(image, |id| id == node_id || is_alive(image, id)));
    records
}

/// `auto.leader.rebalance.enable`: every partition whose preferred replica (the first)
/// is alive and in the ISR but does not lead gets it back as leader, so leadership
/// spreads again after a node returned.
pub fn rebalance_preferred(image: &MetadataImage) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics() {
        for (index, state) in &topic.partitions {
            let Some(&preferred) = state.replicas.first() else {
                continue;
            };
            if state.leader != preferred && is_alive(image, preferred) && state.isr.contains(&preferred) {
                records.push(change(topic.id, *index, state, Some(preferred), None));
            }
        }
    }
    records
}

/// A broker registering again (a new process) leaves every ISR it is in where other
/// members remain, and hands over the leadership of those partitions to them; where it
/// is the last ISR member it stays (it holds whatever there is, fsynced). With a new
/// disk (`directory_id` differs from its last registration's) it holds nothing: it
/// leaves every ISR, even as the last member (the partition then needs an eligible
/// replica, or an unclean election, to lead again), and every ELR.
pub fn leave_isrs(image: &MetadataImage, node_id: i32, directory_id: Uuid) -> Vec<MetadataRecord> {
    let new_disk = image
        .broker(node_id)
        .is_some_and(|b| b.registration.directory_id != directory_id);
    let mut changes = Vec::new();
    for topic in image.topics() {
        for (index, partition) in &topic.partitions {
            let in_isr = partition.isr.contains(&node_id);
            let in_elr = partition.elr.contains(&node_id);
            if !(in_isr && (new_disk || partition.isr.len() >= 2) || new_disk && in_elr) {
                continue;
            }
            let isr: Vec<i32> = partition.isr.iter().copied().filter(|r| *r != node_id).collect();
            let next = PartitionState {
                isr: isr.clone(),
                elr: partition.elr.iter().copied().filter(|r| *r != node_id).collect(),
                ..partition.clone()
            };
            let leader = elect(
                &next,
                |r| r != node_id && is_alive(image, r),
                unclean_enabled(image, topic),
            );
            // A leader from outside the ISR starts an ISR of its own.
            let isr = if leader != NO_LEADER && !isr.contains(&leader) {
                vec![leader]
            } else {
                isr
            };
            let elr = new_disk.then(|| {
                crate::image::eligible_leaders_after(
                    &partition.isr,
                    &partition.elr,
                    &isr,
                    &partition.replicas,
                    image.min_insync(topic),
                )
                .into_iter()
                .filter(|r| *r != node_id)
                .collect()
            });
            changes.push(MetadataRecord::PartitionChange(PartitionChange {
                topic_id: topic.id,
                partition: *index,
                partition_epoch: partition.partition_epoch,
                leader: (leader != partition.leader).then_some(leader),
                isr: (isr != partition.isr).then_some(isr),
                replicas: None,
                joining: Vec::new(),
                elr,
                reassignment: None,
            }));
        }
    }
    changes
}

/// Why a preferred-leader election did not happen (ElectLeaders' per-partition errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElectionError {
    UnknownPartition,
    /// The preferred replica already leads (ELECTION_NOT_NEEDED).
    NotNeeded,
    /// The preferred replica is not alive or not in the ISR (PREFERRED_LEADER_NOT_AVAILABLE).
    PreferredNotAvailable,
}

/// ElectLeaders (preferred): each partition's first replica takes over when it is alive
/// and in the ISR. Returns the changes and each partition's outcome.
pub fn elect_preferred(
    image: &MetadataImage,
    partitions: &[(Uuid, i32)],
) -> (Vec<MetadataRecord>, Vec<Result<(), ElectionError>>) {
    let mut records = Vec::new();
    let mut outcomes = Vec::with_capacity(partitions.len());
    for (topic_id, index) in partitions {
        let Some(state) = image.topic_by_id(*topic_id).and_then(|t| t.partitions.get(index)) else {
            outcomes.push(Err(ElectionError::UnknownPartition));
            continue;
        };
        let preferred = state.replicas[0];
        if state.leader == preferred {
            outcomes.push(Err(ElectionError::NotNeeded));
        } else if !is_alive(image, preferred) || !state.isr.contains(&preferred) {
            outcomes.push(Err(ElectionError::PreferredNotAvailable));
        } else {
            records.push(change(*topic_id, *index, state, Some(preferred), None));
            outcomes.push(Ok(()));
        }
    }
    (records, outcomes)
}

#[cfg(test)]
mod tests;

/// Why a reassignment request for a partition is refused (AlterPartitionReassignments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReassignmentError {
    UnknownPartition,
    /// Empty, repeated or unregistered replicas (INVALID_REPLICA_ASSIGNMENT).
    InvalidReplicas(String),
    /// A cancellation with no reassignment in progress (NO_REASSIGNMENT_IN_PROGRESS).
    NoneInProgress,
}

/// Begins a reassignment of a partition to `target` (Kafka's KIP-455), replacing one in
/// progress, or cancels the one in progress (`None`). While it runs the partition's
/// replicas are the target followed by the replicas leaving; the new ones fetch and
/// join the ISR as they catch up, and [`complete_reassignments`] then drops the leaving
/// ones. A cancellation goes back to the original replicas.
pub fn reassign(
    image: &MetadataImage,
    topic_id: Uuid,
    partition: i32,
    target: Option<&[i32]>,
) -> Result<MetadataRecord, ReassignmentError> {
    let state = image
        .topic_by_id(topic_id)
        .and_then(|t| t.partitions.get(&partition))
        .ok_or(ReassignmentError::UnknownPartition)?;
    let original: Vec<i32> = state
        .replicas
        .iter()
        .copied()
        .filter(|r| !state.adding.contains(r))
        .collect();
    let Some(target) = target else {
        if state.adding.is_empty() && state.removing.is_empty() {
            return Err(ReassignmentError::NoneInProgress);
        }
        return Ok(finish(image, topic_id, partition, state, original));
    };
    if target.is_empty() {
        return Err(ReassignmentError::InvalidReplicas("the replica list is empty".into()));
    }
    let mut seen = std::collections::BTreeSet::new();
    for replica in target {
        if !seen.insert(*replica) {
            return Err(ReassignmentError::InvalidReplicas(format!(
                "broker {replica} appears twice"
            )));
        }
        if image.broker(*replica).is_none() {
            return Err(ReassignmentError::InvalidReplicas(format!(
                "broker {replica} is not registered"
            )));
        }
    }
    let adding: Vec<i32> = target.iter().copied().filter(|r| !original.contains(r)).collect();
    let removing: Vec<i32> = original.iter().copied().filter(|r| !target.contains(r)).collect();
    let mut replicas = target.to_vec();
    replicas.extend(removing.iter().copied());
    // Replicas of a replaced reassignment that the new one drops leave the ISR now.
    let isr: Vec<i32> = state.isr.iter().copied().filter(|r| replicas.contains(r)).collect();
    Ok(MetadataRecord::PartitionChange(PartitionChange {
        topic_id,
        partition,
        partition_epoch: state.partition_epoch,
        leader: None,
        isr: (isr != state.isr && !isr.is_empty()).then_some(isr),
        replicas: Some(replicas),
        joining: Vec::new(),
        elr: None,
        reassignment: Some(crate::records::Reassignment { adding, removing }),
    }))
}

/// Reassignments whose added replicas are all in the ISR, completed: the replicas become
/// the target, the leaving ones leave the ISR, and a leaving leader hands over to the
/// first in-sync replica of the target that is alive.
pub fn complete_reassignments(image: &MetadataImage) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics() {
        for (index, state) in &topic.partitions {
            if state.adding.is_empty() && state.removing.is_empty() {
                continue;
            }
            if state.adding.iter().all(|r| state.isr.contains(r)) {
                records.push(finish(image, topic.id, *index, state, state.target_replicas()));
            }
        }
    }
    records
}

/// The change that sets a partition's replicas to `replicas` with no reassignment in
/// progress: the ISR cut to them, the leader kept if it is among them.
fn finish(
    image: &MetadataImage,
    topic_id: Uuid,
    partition: i32,
    state: &PartitionState,
    replicas: Vec<i32>,
) -> MetadataRecord {
    let isr: Vec<i32> = state.isr.iter().copied().filter(|r| replicas.contains(r)).collect();
    let next = PartitionState {
        replicas: replicas.clone(),
        isr: if isr.is_empty() { state.isr.clone() } else { isr.clone() },
        ..state.clone()
    };
    let leader = elect(&next, |r| replicas.contains(&r) && is_alive(image, r), false);
    MetadataRecord::PartitionChange(PartitionChange {
        topic_id,
        partition,
        partition_epoch: state.partition_epoch,
        leader: (leader != state.leader).then_some(leader),
        isr: (!isr.is_empty() && isr != state.isr).then_some(isr),
        replicas: Some(replicas),
        joining: Vec::new(),
        elr: None,
        reassignment: Some(crate::records::Reassignment::default()),
    })
}
