use super::*;

/// Node 1 leading replicas 1, 2, 3 with all in sync, in leader epoch 3.
fn leading(min_insync: usize) -> ReplicaState {
    let replica = ReplicaState::new(1, 0, vec![1], 0);
    assert_eq!(
        replica.set_leadership(1, 3, 7, &[1, 2, 3], &[1, 2, 3], 0),
        RoleChange::BecameLeader
    );
    replica.set_min_insync(min_insync);
    replica
}

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
    let replica = leading(1);
    assert!(!replica.advance_high_watermark(10), "followers' positions unknown");
    replica.update_follower(2, 1, 7, 10, 0);
    replica.update_follower(3, 1, 4, 10, 0);
    assert!(replica.advance_high_watermark(10));
    assert_eq!(replica.high_watermark(), 4);
    replica.update_follower(3, 1, 12, 12, 0);
    assert!(replica.advance_high_watermark(10));
    assert_eq!(replica.high_watermark(), 7);
    replica.update_follower(2, 1, 5, 10, 0);
    assert!(!replica.advance_high_watermark(10), "never backwards");
    assert_eq!(replica.high_watermark(), 7);
}

#[test]
fn below_min_insync_the_high_watermark_stays() {
    let replica = leading(2);
    replica.set_leadership(1, 3, 8, &[1, 2, 3], &[1], 0);
    assert!(!replica.has_min_isr());
    assert!(
        !replica.advance_high_watermark(10),
        "ISR of one < min.insync.replicas 2"
    );
    assert_eq!(replica.high_watermark(), 0);
    replica.set_leadership(1, 3, 9, &[1, 2, 3], &[1, 2], 0);
    assert!(replica.has_min_isr());
    replica.update_follower(2, 1, 10, 10, 0);
    assert!(replica.advance_high_watermark(10));
    assert_eq!(replica.high_watermark(), 10);
}

#[test]
fn a_pending_isr_expansion_counts_the_joining_replica() {
    let replica = leading(1);
    replica.set_leadership(1, 3, 8, &[1, 2, 3], &[1, 2], 0);
    replica.update_follower(2, 1, 10, 10, 0);
    replica.update_follower(3, 1, 6, 10, 0);
    replica.set_pending_isr(Some(vec![1, 2, 3]));
    assert!(replica.advance_high_watermark(10));
    assert_eq!(replica.high_watermark(), 6, "the joining replica holds it");
    replica.set_leadership(1, 3, 9, &[1, 2, 3], &[1, 2, 3], 0);
    assert_eq!(replica.partition_epoch(), 9);
    assert!(replica.wanted_isr(0, 1000, 6).is_none(), "committed: nothing pending");
}

#[test]
fn a_lagging_follower_leaves_and_a_caught_up_one_joins() {
    let replica = leading(1);
    replica.update_follower(2, 11, 10, 10, 900);
    replica.update_follower(3, 12, 3, 10, 900);
    replica.advance_high_watermark(10);
    // Follower 3 has not caught up since the leader took over at 0.
    let proposal = replica.wanted_isr(900, 1000, replica.high_watermark());
    assert!(proposal.is_none(), "within replica.lag.time.max.ms");
    replica.update_follower(2, 11, 10, 10, 2000);
    let proposal = replica.wanted_isr(2500, 1000, replica.high_watermark()).unwrap();
    assert_eq!(proposal.isr, vec![1, 2]);
    assert_eq!(proposal.partition_epoch, 7);
    assert!(proposal.joining.is_empty());
    replica.set_pending_isr(Some(proposal.isr.clone()));
    assert!(replica.wanted_isr(2500, 1000, 10).is_none(), "one change at a time");
    replica.set_leadership(1, 3, 8, &[1, 2, 3], &[1, 2], 2500);
    // Follower 3 catches up to the high watermark: it joins with its broker epoch.
    replica.update_follower(2, 11, 10, 10, 2600);
    replica.update_follower(3, 12, 10, 10, 2600);
    let proposal = replica.wanted_isr(2600, 1000, replica.high_watermark()).unwrap();
    assert_eq!(proposal.isr, vec![1, 2, 3]);
    assert_eq!(proposal.joining, vec![(3, 12)]);
}

/// A new partition's metadata names this node leader in epoch 0, which `new` assumed
/// already: its followers still get the lag time from then, not from the clock's zero.
#[test]
fn a_new_partitions_followers_are_not_dropped_before_they_could_fetch() {
    let replica = ReplicaState::new(1, 0, vec![1], 0);
    assert_eq!(
        replica.set_leadership(1, 0, 0, &[1, 2, 3], &[1, 2, 3], 50_000),
        RoleChange::BecameLeader,
        "the first leadership applied is a change"
    );
    assert!(
        replica.wanted_isr(50_500, 2000, 0).is_none(),
        "nobody fetched yet, within the lag time"
    );
    assert_eq!(
        replica.set_leadership(1, 0, 0, &[1, 2, 3], &[1, 2, 3], 50_600),
        RoleChange::None
    );
    let proposal = replica.wanted_isr(52_100, 2000, 0).unwrap();
    assert_eq!(proposal.isr, vec![1], "silent for longer than the lag time");
}

#[test]
fn a_follower_joins_only_past_the_start_of_the_leaders_epoch() {
    let replica = leading(1);
    replica.set_leadership(1, 3, 8, &[1, 2, 3], &[1, 2], 0);
    replica.set_epoch_start_offset(20);
    replica.update_follower(2, 1, 25, 25, 100);
    replica.advance_high_watermark(25);
    replica.update_follower(3, 1, 15, 15, 100);
    assert!(
        replica.wanted_isr(100, 1000, 15).is_none(),
        "at the high watermark but before this epoch began"
    );
    replica.update_follower(3, 1, 25, 25, 200);
    assert_eq!(replica.wanted_isr(200, 1000, 25).unwrap().isr, vec![1, 2, 3]);
}

#[test]
fn a_new_leader_epoch_forgets_the_followers() {
    let replica = leading(1);
    replica.update_follower(2, 1, 10, 10, 0);
    assert_eq!(replica.followers().len(), 1);
    assert_eq!(
        replica.set_leadership(2, 4, 8, &[1, 2, 3], &[1, 2, 3], 0),
        RoleChange::BecameFollower
    );
    assert!(replica.followers().is_empty());
    assert!(!replica.is_leader());
    assert_eq!(
        replica.set_leadership(2, 4, 9, &[1, 2, 3], &[2, 3], 0),
        RoleChange::None,
        "an ISR change alone changes no role"
    );
}

#[test]
fn a_follower_takes_the_leaders_high_watermark_up_to_its_log_end() {
    let replica = ReplicaState::new(2, 0, vec![2], 0);
    replica.set_leadership(1, 1, 1, &[1, 2], &[1, 2], 0);
    replica.follow_high_watermark(10, 4);
    assert_eq!(replica.high_watermark(), 4);
    replica.follow_high_watermark(10, 12);
    assert_eq!(replica.high_watermark(), 10);
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
async fn subscribers_wake_when_it_moves_or_the_leader_changes() {
    let replica = ReplicaState::new(1, 0, vec![1], 0);
    let mut watcher = replica.subscribe();
    replica.advance_high_watermark(2);
    watcher.changed().await.unwrap();
    assert_eq!(*watcher.borrow_and_update(), 2);
    replica.set_leadership(2, 1, 1, &[1, 2], &[1, 2], 0);
    watcher.changed().await.unwrap();
}
