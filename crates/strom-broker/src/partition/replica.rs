//! The replica side of a partition: leader epoch, replicas, ISR, the followers'
//! positions and the high watermark.
//!
//! On the leader the high watermark moves by one rule only
//! ([`ReplicaState::advance_high_watermark`]): it is the smallest log end offset over the
//! in-sync replicas — counting replicas a pending ISR change is adding — it advances
//! only while the ISR has at least `min.insync.replicas` members (KIP-966), and it never
//! moves back. On one node the ISR is this node alone, so after an append it becomes
//! the log end offset. A follower takes its high watermark from the leader's fetch
//! responses, bounded by its own log end ([`ReplicaState::follow_high_watermark`]).
//!
//! The ISR itself changes only through the controller: the leader proposes the ISR
//! [`ReplicaState::wanted_isr`] computes (followers that lag `replica.lag.time.max.ms`
//! leave, followers caught up in this leader epoch join) and marks it pending until the
//! metadata says what was committed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::Mutex;

use tokio::sync::watch;

use crate::error::{BrokerError, Result};
use crate::sync::lock;

/// Leadership and replication state of one partition on this node.
pub struct ReplicaState {
    node_id: i32,
    /// The leader as the metadata says (-1: none).
    leader: AtomicI32,
    leader_epoch: AtomicI32,
    membership: Mutex<Membership>,
    high_watermark: watch::Sender<i64>,
    /// The log end offset, published after each append: followers' fetches wait on it
    /// (the high watermark moves only once they have fetched).
    log_end: watch::Sender<i64>,
    /// On a follower: the leader's high watermark as its last fetch response said
    /// (-1: none yet), for the follower's lag.
    leader_high_watermark: AtomicI64,
}

/// Replicas, ISR and the followers' positions, changed together.
#[derive(Debug, Clone)]
struct Membership {
    replicas: Vec<i32>,
    isr: Vec<i32>,
    /// The metadata's partition epoch (the compare-and-set value of ISR changes).
    partition_epoch: i32,
    /// An ISR this leader proposed that the metadata does not show yet.
    pending_isr: Option<Vec<i32>>,
    /// Follower → its position, from its fetches in this leader epoch.
    followers: HashMap<i32, FollowerState>,
    /// `min.insync.replicas` of the topic.
    min_insync: usize,
    /// Where this leader's epoch began in its log (KIP-207: offsets derived from the
    /// high watermark wait until it gets there).
    epoch_start_offset: i64,
    /// When this node became leader (a follower never heard from lags from then).
    leader_since_ms: i64,
    /// Whether the metadata's leadership was applied yet: the first application is a
    /// role change even when it names the leader and epoch `new` assumed, so a new
    /// partition's followers get `replica.lag.time.max.ms` from then to catch up.
    applied: bool,
}

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy)]
pub struct FollowerState {
    /// Its log end offset: the offset of its last fetch.
    pub log_end: i64,
    /// The broker epoch it fetched with (-1: not sent).
    pub broker_epoch: i64,
    /// Last time it was caught up with the leader's log end (Kafka's `lastCaughtUpTimeMs`).
    pub last_caught_up_ms: i64,
    /// The leader's log end and the time at its previous fetch.
    last_fetch_leader_end: i64,
    last_fetch_ms: i64,
}

/// How a change of the metadata changed this node's role for the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    None,
    /// This node leads now, in a new leader epoch.
    BecameLeader,
    /// Another node leads now (or none), or the leader epoch moved.
    BecameFollower,
}

/// An ISR change the leader wants the controller to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
    /// The broker epochs of the replicas joining (KIP-903: a restarted replica with
    /// another epoch cannot be added by a proposal made before it restarted).
    pub joining: Vec<(i32, i64)>,
}

impl ReplicaState {
    /// This node leads with `replicas` all in sync; the high watermark starts at
    /// `high_watermark` (on one node: the recovered log end offset).
    pub fn new(node_id: i32, leader_epoch: i32, replicas: Vec<i32>, high_watermark: i64) -> ReplicaState {
        let (high_watermark, _) = watch::channel(high_watermark);
        let (log_end, _) = watch::channel(0);
        ReplicaState {
            node_id,
            leader: AtomicI32::new(node_id),
            leader_epoch: AtomicI32::new(leader_epoch),
            membership: Mutex::new(Membership {
                isr: replicas.clone(),
                replicas,
                partition_epoch: 0,
                pending_isr: None,
                followers: HashMap::new(),
                min_insync: 1,
                epoch_start_offset: 0,
                leader_since_ms: 0,
                applied: false,
            }),
            high_watermark,
            log_end,
            leader_high_watermark: AtomicI64::new(-1),
        }
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn leader(&self) -> i32 {
        self.leader.load(Ordering::Acquire)
    }

    /// Whether this node leads the partition now.
    pub fn is_leader(&self) -> bool {
        self.leader() == self.node_id
    }

    /// Takes the leadership the metadata gives. A new leader or leader epoch forgets
    /// the followers' positions (they must fetch in the new epoch to count) and any
    /// pending ISR change. Wakes whoever waits on the high watermark (acks=all produces
    /// must learn that this node no longer leads).
    pub fn set_leadership(
        &self,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        now_ms: i64,
    ) -> RoleChange {
        let mut membership = lock(&self.membership);
        let isr_changed = membership.isr != isr;
        membership.replicas = replicas.to_vec();
        membership.isr = isr.to_vec();
        membership.partition_epoch = partition_epoch;
        if membership.pending_isr.as_deref() == Some(isr) {
            membership.pending_isr = None;
        }
        let leader_changed = self.leader.swap(leader, Ordering::AcqRel) != leader;
        let epoch_changed = self.leader_epoch.swap(leader_epoch, Ordering::AcqRel) != leader_epoch;
        let first = !std::mem::replace(&mut membership.applied, true);
        let change = if !first && !leader_changed && !epoch_changed {
            RoleChange::None
        } else {
            membership.followers.clear();
            membership.pending_isr = None;
            membership.leader_since_ms = now_ms;
            if leader == self.node_id {
                RoleChange::BecameLeader
            } else {
                RoleChange::BecameFollower
            }
        };
        drop(membership);
        if change != RoleChange::None || isr_changed {
            self.high_watermark.send_modify(|_| {});
        }
        change
    }

    /// The topic's `min.insync.replicas`.
    pub fn set_min_insync(&self, min_insync: usize) {
        lock(&self.membership).min_insync = min_insync.max(1);
    }

    pub fn min_insync(&self) -> usize {
        lock(&self.membership).min_insync
    }

    /// Where this leader's epoch began in its log.
    pub fn set_epoch_start_offset(&self, offset: i64) {
        lock(&self.membership).epoch_start_offset = offset;
    }

    pub fn epoch_start_offset(&self) -> i64 {
        lock(&self.membership).epoch_start_offset
    }

    pub fn replicas(&self) -> Vec<i32> {
        lock(&self.membership).replicas.clone()
    }

    pub fn isr(&self) -> Vec<i32> {
        lock(&self.membership).isr.clone()
    }

    pub fn partition_epoch(&self) -> i32 {
        lock(&self.membership).partition_epoch
    }

    /// The followers' positions as this leader knows them.
    pub fn followers(&self) -> HashMap<i32, FollowerState> {
        lock(&self.membership).followers.clone()
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// A receiver woken whenever the high watermark moves (or the leadership changes).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// A receiver woken whenever the log end offset moves.
    pub fn subscribe_log_end(&self) -> watch::Receiver<i64> {
        self.log_end.subscribe()
    }

    /// Publishes the log end offset after an append (wakes followers' fetches).
    pub fn publish_log_end(&self, log_end: i64) {
        self.log_end.send_if_modified(|end| {
            let moved = *end != log_end;
            *end = log_end;
            moved
        });
    }

    /// Checks the leader epoch a client sent (-1 = not given).
    pub fn check_leader_epoch(&self, requested: i32) -> Result<()> {
        let current = self.leader_epoch();
        if requested < 0 || requested == current {
            Ok(())
        } else if requested > current {
            Err(BrokerError::UnknownLeaderEpoch { requested, current })
        } else {
            Err(BrokerError::FencedLeaderEpoch { requested, current })
        }
    }

    /// Records a follower's fetch: its log end offset is the fetch offset. It is caught
    /// up now when it reached the leader's log end, or as of its previous fetch when it
    /// reached the log end the leader had then (Kafka's rule, so a follower that keeps
    /// up with a busy leader is never "behind" by the records of one round trip).
    pub fn update_follower(&self, replica: i32, broker_epoch: i64, fetch_offset: i64, leader_end: i64, now_ms: i64) {
        let mut membership = lock(&self.membership);
        let since = membership.leader_since_ms;
        let state = membership.followers.entry(replica).or_insert(FollowerState {
            log_end: -1,
            broker_epoch,
            last_caught_up_ms: since,
            last_fetch_leader_end: -1,
            last_fetch_ms: now_ms,
        });
        if fetch_offset >= leader_end {
            state.last_caught_up_ms = now_ms;
        } else if fetch_offset >= state.last_fetch_leader_end && state.last_fetch_leader_end >= 0 {
            state.last_caught_up_ms = state.last_caught_up_ms.max(state.last_fetch_ms);
        }
        state.log_end = fetch_offset;
        state.broker_epoch = broker_epoch;
        state.last_fetch_leader_end = leader_end;
        state.last_fetch_ms = now_ms;
    }

    /// The one rule on the leader: the high watermark becomes the smallest log end
    /// offset over the ISR and the replicas a pending change adds (the leader's is
    /// `leader_log_end`), if that is higher, and only while the ISR has at least
    /// `min.insync.replicas` members. A member whose position is not known yet holds it
    /// where it is. Returns whether it moved.
    pub fn advance_high_watermark(&self, leader_log_end: i64) -> bool {
        let candidate = {
            let membership = lock(&self.membership);
            if membership.isr.len() < membership.min_insync {
                return false;
            }
            let pending = membership.pending_isr.iter().flatten();
            membership
                .isr
                .iter()
                .chain(pending)
                .map(|replica| {
                    if *replica == self.node_id {
                        leader_log_end
                    } else {
                        membership.followers.get(replica).map_or(i64::MIN, |f| f.log_end)
                    }
                })
                .min()
                .unwrap_or(leader_log_end)
        };
        debug_assert!(candidate <= leader_log_end, "high watermark candidate past the log end");
        // `leader_log_end` may be stale (a concurrent append already moved the high
        // watermark further): only ever raise it.
        self.high_watermark.send_if_modified(|hw| {
            if candidate > *hw {
                *hw = candidate;
                true
            } else {
                false
            }
        })
    }

    /// A follower's high watermark: the leader's, bounded by the local log end. It may
    /// move back (after a truncation), which only makes less visible.
    pub fn follow_high_watermark(&self, leader_high_watermark: i64, log_end: i64) {
        self.leader_high_watermark
            .store(leader_high_watermark, Ordering::Release);
        let value = leader_high_watermark.min(log_end);
        self.high_watermark.send_if_modified(|hw| {
            let moved = *hw != value;
            *hw = value;
            moved
        });
    }

    /// The leader's high watermark as this follower last heard it (-1: not yet).
    pub fn leader_high_watermark(&self) -> i64 {
        self.leader_high_watermark.load(Ordering::Acquire)
    }

    /// How far this replica's log end is behind what the leader has committed: on a
    /// follower, the leader's high watermark (as last heard) minus the log end; on the
    /// leader, 0 (Kafka's DescribeLogDirs `offset_lag`).
    pub fn offset_lag(&self, log_end: i64) -> i64 {
        if self.is_leader() {
            return 0;
        }
        (self.leader_high_watermark.load(Ordering::Acquire) - log_end).max(0)
    }

    /// Sets the high watermark where a restart or truncation leaves it (never above
    /// the log end).
    pub fn reset_high_watermark(&self, value: i64) {
        self.high_watermark.send_replace(value);
    }

    /// Whether the ISR holds at least `min.insync.replicas` members (acks=all appends
    /// are refused otherwise: NOT_ENOUGH_REPLICAS).
    pub fn has_min_isr(&self) -> bool {
        let membership = lock(&self.membership);
        membership.isr.len() >= membership.min_insync
    }

    /// The ISR this leader wants, when it differs from the metadata's and no change is
    /// pending: ISR followers not caught up within `lag_max_ms` leave (the leader and
    /// the last member never do); replicas that fetched in this leader epoch up to the
    /// high watermark and to the epoch's start offset join.
    pub fn wanted_isr(&self, now_ms: i64, lag_max_ms: i64, high_watermark: i64) -> Option<IsrProposal> {
        let membership = lock(&self.membership);
        if membership.pending_isr.is_some() || !self.is_leader() {
            return None;
        }
        let mut isr: Vec<i32> = membership
            .isr
            .iter()
            .copied()
            .filter(|replica| {
                *replica == self.node_id
                    || membership
                        .followers
                        .get(replica)
                        .map_or(membership.leader_since_ms, |f| f.last_caught_up_ms)
                        >= now_ms - lag_max_ms
            })
            .collect();
        let mut joining = Vec::new();
        for replica in &membership.replicas {
            if isr.contains(replica) {
                continue;
            }
            if let Some(f) = membership.followers.get(replica) {
                let caught_up = f.log_end >= high_watermark
                    && f.log_end >= membership.epoch_start_offset
                    && f.last_caught_up_ms >= now_ms - lag_max_ms;
                if caught_up {
                    isr.push(*replica);
                    joining.push((*replica, f.broker_epoch));
                }
            }
        }
        if !isr.contains(&self.node_id) {
            isr.insert(0, self.node_id);
        }
        let mut current = membership.isr.clone();
        current.sort_unstable();
        let mut wanted = isr.clone();
        wanted.sort_unstable();
        (wanted != current).then_some(IsrProposal {
            partition_epoch: membership.partition_epoch,
            isr,
            joining,
        })
    }

    /// Marks `isr` as proposed (the high watermark counts the replicas it adds).
    pub fn set_pending_isr(&self, isr: Option<Vec<i32>>) {
        lock(&self.membership).pending_isr = isr;
    }
}

#[cfg(test)]
mod tests;
