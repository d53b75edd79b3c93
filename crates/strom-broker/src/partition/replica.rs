//! The replica side of a partition: leader epoch, replicas, ISR and the high watermark.
//!
//! The high watermark moves by one rule only ([`ReplicaState::advance_high_watermark`]):
//! it is the smallest log end offset over the in-sync replicas, and it never moves back.
//! On one node the ISR is this node alone, so after an append it becomes the log end
//! offset; with replication the followers' fetch positions join the minimum, and no
//! caller changes. Appends never set it themselves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
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
}

/// Replicas, ISR and the followers' log end offsets, changed together.
#[derive(Debug, Clone)]
struct Membership {
    replicas: Vec<i32>,
    isr: Vec<i32>,
    /// Follower → its log end offset, as its last fetch showed.
    follower_log_end: HashMap<i32, i64>,
}

impl ReplicaState {
    /// This node leads with `replicas` all in sync; the high watermark starts at
    /// `high_watermark` (on one node: the recovered log end offset).
    pub fn new(node_id: i32, leader_epoch: i32, replicas: Vec<i32>, high_watermark: i64) -> ReplicaState {
        let (high_watermark, _) = watch::channel(high_watermark);
        ReplicaState {
            node_id,
            leader: AtomicI32::new(node_id),
            leader_epoch: AtomicI32::new(leader_epoch),
            membership: Mutex::new(Membership {
                isr: replicas.clone(),
                replicas,
                follower_log_end: HashMap::new(),
            }),
            high_watermark,
        }
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

    /// Takes the leadership the metadata gives: leader, leader epoch, replicas, ISR.
    /// Returns whether the leader or its epoch changed.
    pub fn set_leadership(&self, leader: i32, leader_epoch: i32, replicas: &[i32], isr: &[i32]) -> bool {
        let mut membership = lock(&self.membership);
        membership.replicas = replicas.to_vec();
        membership.isr = isr.to_vec();
        let leader_changed = self.leader.swap(leader, Ordering::AcqRel) != leader;
        let epoch_changed = self.leader_epoch.swap(leader_epoch, Ordering::AcqRel) != leader_epoch;
        leader_changed || epoch_changed
    }

    pub fn replicas(&self) -> Vec<i32> {
        lock(&self.membership).replicas.clone()
    }

    pub fn isr(&self) -> Vec<i32> {
        lock(&self.membership).isr.clone()
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// A receiver woken whenever the high watermark moves.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
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

    /// Records a follower's log end offset (from its fetch position).
    pub fn update_follower(&self, replica: i32, log_end_offset: i64) {
        lock(&self.membership).follower_log_end.insert(replica, log_end_offset);
    }

    /// The one rule: the high watermark becomes the smallest log end offset over the
    /// ISR (the leader's is `leader_log_end`), if that is higher. A follower in the ISR
    /// whose position is not known yet holds it where it is. Returns whether it moved.
    pub fn advance_high_watermark(&self, leader_log_end: i64) -> bool {
        let candidate = {
            let membership = lock(&self.membership);
            membership
                .isr
                .iter()
                .map(|replica| {
                    if *replica == self.node_id {
                        leader_log_end
                    } else {
                        membership.follower_log_end.get(replica).copied().unwrap_or(i64::MIN)
                    }
                })
                .min()
                .unwrap_or(leader_log_end)
        };
        let moved = self.high_watermark.send_if_modified(|hw| {
            if candidate > *hw {
                *hw = candidate;
                true
            } else {
                false
            }
        });
        debug_assert!(
            self.high_watermark() <= leader_log_end,
            "high watermark passed the log end"
        );
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_one_node_the_high_watermark_follows_the_log_end() {
        let replica = ReplicaState::new(1, 0, vec![1], 0);
        assert!(replica.advance_high_watermark(5));
        assert_eq!(replica.high_watermark(), 5);
        assert!(!replica.advance_high_watermark(5), "no change, no wake-up");
        assert!(replica.advance_high_watermark(9));
        assert_eq!(replica.high_watermark(), 9);
    }

    #[test]
    fn with_followers_the_high_watermark_is_the_isr_minimum() {
        let replica = ReplicaState::new(1, 3, vec![1, 2, 3], 0);
        assert!(!replica.advance_high_watermark(10), "followers' positions unknown");
        replica.update_follower(2, 7);
        replica.update_follower(3, 4);
        assert!(replica.advance_high_watermark(10));
        assert_eq!(replica.high_watermark(), 4);
        replica.update_follower(3, 12);
        assert!(replica.advance_high_watermark(10));
        assert_eq!(replica.high_watermark(), 7);
        replica.update_follower(2, 5);
        assert!(!replica.advance_high_watermark(10), "never backwards");
        assert_eq!(replica.high_watermark(), 7);
    }

    #[test]
    fn leader_epochs_are_checked_like_kafka() {
        let replica = ReplicaState::new(1, 4, vec![1], 0);
        assert!(replica.check_leader_epoch(-1).is_ok());
        assert!(replica.check_leader_epoch(4).is_ok());
        assert!(matches!(
            replica.check_leader_epoch(5),
            Err(BrokerError::UnknownLeaderEpoch { .. })
        ));
        assert!(matches!(
            replica.check_leader_epoch(3),
            Err(BrokerError::FencedLeaderEpoch { .. })
        ));
    }

    #[tokio::test]
    async fn subscribers_wake_when_it_moves() {
        let replica = ReplicaState::new(1, 0, vec![1], 0);
        let mut watcher = replica.subscribe();
        replica.advance_high_watermark(2);
        watcher.changed().await.unwrap();
        assert_eq!(*watcher.borrow(), 2);
    }
}
