use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::*;
use crate::records::{BrokerRegistration, PartitionRecord, TopicRecord};

/// Brokers 1..=n registered at indexes 1..=n, and topic "t" with the given replicas.
fn image(brokers: i32, replicas: &[&[i32]]) -> (MetadataImage, Uuid) {
    let mut image = MetadataImage::default();
    for node_id in 1..=brokers {
        let registration = MetadataRecord::RegisterBroker(BrokerRegistration {
            node_id,
            incarnation: Uuid::new_v4(),
            directory_id: Uuid::new_v4(),
            listeners: Vec::new(),
            rack: None,
        });
        image.apply_batch(&[registration], node_id as u64).unwrap();
    }
    let id = Uuid::new_v4();
    let mut batch = vec![MetadataRecord::Topic(TopicRecord {
        name: "t".into(),
        id,
        configs: BTreeMap::new(),
    })];
    for (partition, replicas) in replicas.iter().enumerate() {
        batch.push(MetadataRecord::Partition(PartitionRecord {
            topic_id: id,
            partition: partition as i32,
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
            leader: replicas[0],
            leader_epoch: 0,
            partition_epoch: 0,
        }));
    }
    image.apply_batch(&batch, 100).unwrap();
    (image, id)
}

fn state(image: &MetadataImage, partition: i32) -> PartitionState {
    image.topic("t").unwrap().partitions[&partition].clone()
}

#[test]
fn elections_pick_from_the_isr_and_unclean_only_when_asked() {
    let partition = PartitionState {
        replicas: vec![1, 2, 3],
        isr: vec![2, 3],
        leader: 1,
        leader_epoch: 4,
        partition_epoch: 7,
        adding: Vec::new(),
        removing: Vec::new(),
        elr: Vec::new(),
    };
    // The leader is out of the ISR: the first alive ISR member in replica order.
    assert_eq!(elect(&partition, |_| true, false), 2);
    assert_eq!(elect(&partition, |id| id != 2, false), 3);
    // No alive ISR member: offline, unless unclean election is on.
    assert_eq!(elect(&partition, |id| id == 1, false), NO_LEADER);
    assert_eq!(elect(&partition, |id| id == 1, true), 1);
    // An alive leader in the ISR stays.
    let led = PartitionState { leader: 3, ..partition };
    assert_eq!(elect(&led, |_| true, false), 3);
}

#[test]
fn a_broker_that_stops_heartbeating_is_fenced_and_its_partitions_go_offline() {
    let (mut image, _) = image(3, &[&[1], &[2], &[3], &[2, 3]]);
    let session = 9_000;
    // Controller took over at t=1000; 2 was last heard at 2000, the others at 9500.
    let heard = HashMap::from([(1, 9_500), (2, 2_000), (3, 9_500)]);
    assert!(fence_expired(&image, &heard, 1_000, 11_000, session).is_empty());
    let records = fence_expired(&image, &heard, 1_000, 11_001, session);
    assert!(matches!(
        records[0],
        MetadataRecord::BrokerFencing {
            node_id: 2,
            broker_epoch: 2,
            fenced: true
        }
    ));
    image.apply_batch(&records, 200).unwrap();
    assert!(image.broker(2).unwrap().fenced);
    // Its RF=1 partition is offline and keeps it as the last ISR member.
    let offline = state(&image, 1);
    assert_eq!(
        (offline.leader, offline.isr.clone(), offline.leader_epoch),
        (NO_LEADER, vec![2], 1)
    );
    // The RF=2 partition it led moves to 3, and 2 leaves the ISR.
    let moved = state(&image, 3);
    assert_eq!((moved.leader, moved.isr.clone()), (3, vec![3]));
    // Others are untouched.
    assert_eq!(state(&image, 0).partition_epoch, 0);
    // Fencing again changes nothing.
    assert!(fence_expired(&image, &heard, 1_000, 20_000, session)
        .iter()
        .all(|r| !matches!(r, MetadataRecord::BrokerFencing { node_id: 2, .. })));

    // Heard of again: unfenced, and it leads its RF=1 partition again.
    let records = unfence(&image, 2, 2);
    image.apply_batch(&records, 300).unwrap();
    assert!(!image.broker(2).unwrap().fenced);
    let back = state(&image, 1);
    assert_eq!((back.leader, back.leader_epoch), (2, 2));
    // A stale epoch (an earlier process of broker 2) unfences nothing.
    assert!(unfence(&image, 2, 1).is_empty());
}

#[test]
fn a_new_controller_gives_every_broker_a_full_session_before_fencing() {
    let (image, _) = image(2, &[&[1]]);
    // Nothing heard yet (new controller at t=50_000): no fencing until the session passes.
    assert!(fence_expired(&image, &HashMap::new(), 50_000, 58_000, 9_000).is_empty());
    assert_eq!(fence_expired(&image, &HashMap::new(), 50_000, 59_001, 9_000).len(), 3);
}

#[test]
fn preferred_leader_election() {
    let (mut image, id) = image(3, &[&[1, 2], &[2, 3]]);
    let (records, outcomes) = elect_preferred(&image, &[(id, 0), (id, 5)]);
    assert!(records.is_empty());
    assert_eq!(
        outcomes,
        vec![Err(ElectionError::NotNeeded), Err(ElectionError::UnknownPartition)]
    );
    // Fence 1: partition 0 moves to 2; the preferred replica (1) is not available.
    image.apply_batch(&fence(&image, &[(1, 1)]), 200).unwrap();
    assert_eq!(state(&image, 0).leader, 2);
    let (_, outcomes) = elect_preferred(&image, &[(id, 0)]);
    assert_eq!(outcomes, vec![Err(ElectionError::PreferredNotAvailable)]);
    // Partition 1 moved by hand to 3 (still in the ISR): the election moves it back.
    let current = state(&image, 1);
    image
        .apply(
            &MetadataRecord::PartitionChange(PartitionChange {
                topic_id: id,
                partition: 1,
                partition_epoch: current.partition_epoch,
                leader: Some(3),
                isr: None,
                replicas: None,
                joining: Vec::new(),
                elr: None,
                reassignment: None,
            }),
            300,
        )
        .unwrap();
    let (records, outcomes) = elect_preferred(&image, &[(id, 1)]);
    assert_eq!(outcomes, vec![Ok(())]);
    image.apply_batch(&records, 301).unwrap();
    assert_eq!(state(&image, 1).leader, 2);
}

#[test]
fn preferred_replicas_get_their_leadership_back() {
    let (mut image, id) = image(3, &[&[1, 2], &[2, 3], &[3, 1]]);
    assert!(rebalance_preferred(&image).is_empty(), "every preferred replica leads");
    image.apply_batch(&fence(&image, &[(1, 1)]), 200).unwrap();
    assert_eq!(state(&image, 0).leader, 2);
    // Back, but not in the ISR yet: nothing moves.
    image.apply_batch(&unfence(&image, 1, 1), 201).unwrap();
    assert!(rebalance_preferred(&image).is_empty());
    let current = state(&image, 0);
    image
        .apply(
            &MetadataRecord::PartitionChange(PartitionChange {
                topic_id: id,
                partition: 0,
                partition_epoch: current.partition_epoch,
                leader: None,
                isr: Some(vec![2, 1]),
                replicas: None,
                joining: vec![(1, 1)],
                elr: None,
                reassignment: None,
            }),
            202,
        )
        .unwrap();
    let records = rebalance_preferred(&image);
    assert_eq!(records.len(), 1);
    image.apply_batch(&records, 203).unwrap();
    assert_eq!(state(&image, 0).leader, 1);
    assert_eq!(state(&image, 0).leader_epoch, current.leader_epoch + 1);
}

#[test]
fn a_replica_joins_the_isr_only_with_its_current_broker_epoch() {
    let (mut image, id) = image(3, &[&[1, 2, 3]]);
    image.apply_batch(&fence(&image, &[(3, 3)]), 200).unwrap();
    assert_eq!(state(&image, 0).isr, vec![1, 2]);
    let join = |partition_epoch: i32, broker_epoch: i64| {
        MetadataRecord::PartitionChange(PartitionChange {
            topic_id: id,
            partition: 0,
            partition_epoch,
            leader: None,
            isr: Some(vec![1, 2, 3]),
            replicas: None,
            joining: vec![(3, broker_epoch)],
            elr: None,
            reassignment: None,
        })
    };
    let epoch = state(&image, 0).partition_epoch;
    // Fenced: refused whatever the epoch.
    assert!(image.apply(&join(epoch, 3), 201).is_err());
    // Restarted (a new registration, a new broker epoch): the old epoch is refused.
    let registration = MetadataRecord::RegisterBroker(BrokerRegistration {
        node_id: 3,
        incarnation: Uuid::new_v4(),
        directory_id: Uuid::new_v4(),
        listeners: Vec::new(),
        rack: None,
    });
    image.apply_batch(&[registration], 300).unwrap();
    image.apply_batch(&unfence(&image, 3, 300), 301).unwrap();
    let epoch = state(&image, 0).partition_epoch;
    assert!(
        image.apply(&join(epoch, 3), 302).is_err(),
        "the epoch it fetched with before"
    );
    image.apply(&join(epoch, 300), 303).unwrap();
    assert_eq!(state(&image, 0).isr, vec![1, 2, 3]);
}

#[test]
fn unclean_election_follows_the_topic_config() {
    let (mut image, id) = image(3, &[&[1, 2]]);
    let current = state(&image, 0);
    image
        .apply(
            &MetadataRecord::PartitionChange(PartitionChange {
                topic_id: id,
                partition: 0,
                partition_epoch: current.partition_epoch,
                leader: None,
                isr: Some(vec![1]),
                replicas: None,
                joining: Vec::new(),
                elr: None,
                reassignment: None,
            }),
            200,
        )
        .unwrap();
    let mut clean = image.clone();
    clean.apply_batch(&fence(&clean, &[(1, 1)]), 201).unwrap();
    assert_eq!(state(&clean, 0).leader, NO_LEADER, "offline rather than unclean");
    image
        .apply(
            &MetadataRecord::TopicConfigs {
                topic_id: id,
                configs: BTreeMap::from([("unclean.leader.election.enable".to_string(), "true".to_string())]),
            },
            202,
        )
        .unwrap();
    image.apply_batch(&fence(&image, &[(1, 1)]), 203).unwrap();
    assert_eq!(state(&image, 0).leader, 2);
    assert_eq!(state(&image, 0).isr, vec![2]);
}

#[test]
fn a_reassignment_adds_catches_up_then_removes() {
    let (mut image, id) = image(4, &[&[1, 2, 3]]);
    assert_eq!(reassign(&image, id, 0, None), Err(ReassignmentError::NoneInProgress));
    assert!(matches!(
        reassign(&image, id, 0, Some(&[2, 2, 4])),
        Err(ReassignmentError::InvalidReplicas(_))
    ));
    assert!(matches!(
        reassign(&image, id, 0, Some(&[2, 9])),
        Err(ReassignmentError::InvalidReplicas(_))
    ));
    assert_eq!(
        reassign(&image, id, 7, Some(&[1])),
        Err(ReassignmentError::UnknownPartition)
    );
    let begin = reassign(&image, id, 0, Some(&[2, 3, 4])).unwrap();
    image.apply(&begin, 200).unwrap();
    let s = state(&image, 0);
    assert_eq!(
        (s.replicas.clone(), s.adding.clone(), s.removing.clone()),
        (vec![2, 3, 4, 1], vec![4], vec![1])
    );
    assert_eq!(s.leader, 1, "leadership stays until the reassignment completes");
    assert!(complete_reassignments(&image).is_empty(), "broker 4 is not in sync yet");
    // Broker 4 caught up: the leader adds it to the ISR.
    let join = MetadataRecord::PartitionChange(PartitionChange {
        topic_id: id,
        partition: 0,
        partition_epoch: s.partition_epoch,
        leader: None,
        isr: Some(vec![1, 2, 3, 4]),
        replicas: None,
        joining: vec![(4, 4)],
        elr: None,
        reassignment: None,
    });
    image.apply(&join, 201).unwrap();
    let done = complete_reassignments(&image);
    assert_eq!(done.len(), 1);
    image.apply_batch(&done, 202).unwrap();
    let s = state(&image, 0);
    assert_eq!(s.replicas, vec![2, 3, 4]);
    assert_eq!(s.isr, vec![2, 3, 4]);
    assert_eq!(s.leader, 2, "the leaving leader hands over");
    assert!(s.adding.is_empty() && s.removing.is_empty());
}

#[test]
fn a_cancelled_reassignment_goes_back_to_the_original_replicas() {
    let (mut image, id) = image(4, &[&[1, 2]]);
    image
        .apply(&reassign(&image, id, 0, Some(&[3, 4])).unwrap(), 200)
        .unwrap();
    assert_eq!(state(&image, 0).replicas, vec![3, 4, 1, 2]);
    // Replaced by another target: the original replicas are still 1 and 2.
    image
        .apply(&reassign(&image, id, 0, Some(&[1, 4])).unwrap(), 201)
        .unwrap();
    let s = state(&image, 0);
    assert_eq!(
        (s.replicas.clone(), s.adding.clone(), s.removing.clone()),
        (vec![1, 4, 2], vec![4], vec![2])
    );
    image.apply(&reassign(&image, id, 0, None).unwrap(), 202).unwrap();
    let s = state(&image, 0);
    assert_eq!(
        (s.replicas.clone(), s.isr.clone(), s.leader),
        (vec![1, 2], vec![1, 2], 1)
    );
    assert!(s.adding.is_empty() && s.removing.is_empty());
}

#[test]
fn a_restarted_broker_leaves_the_isrs_it_shares_and_hands_over_leadership() {
    let (mut image, _) = image(3, &[&[1, 2, 3], &[2, 1], &[1]]);
    let directory = image.broker(1).unwrap().registration.directory_id;
    let records = leave_isrs(&image, 1, directory);
    assert_eq!(records.len(), 2, "partition 2 has no other member: untouched");
    image.apply_batch(&records, 200).unwrap();
    let p0 = state(&image, 0);
    assert_eq!(
        (p0.isr.clone(), p0.leader),
        (vec![2, 3], 2),
        "a new leader from the rest"
    );
    let p1 = state(&image, 1);
    assert_eq!((p1.isr.clone(), p1.leader), (vec![2], 2));
    let p2 = state(&image, 2);
    assert_eq!((p2.isr.clone(), p2.leader), (vec![1], 1));
    assert!(leave_isrs(&image, 1, directory).is_empty(), "nothing left to leave");
}

/// `t` with min.insync.replicas=2 on brokers 1..=n.
fn with_min_insync(brokers: i32, replicas: &[&[i32]]) -> (MetadataImage, Uuid) {
    let (mut image, id) = image(brokers, replicas);
    let configs = BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]);
    image
        .apply_batch(&[MetadataRecord::TopicConfigs { topic_id: id, configs }], 150)
        .unwrap();
    (image, id)
}

fn isr_change(image: &MetadataImage, id: Uuid, isr: &[i32]) -> MetadataRecord {
    let s = state(image, 0);
    MetadataRecord::PartitionChange(PartitionChange {
        topic_id: id,
        partition: 0,
        partition_epoch: s.partition_epoch,
        leader: None,
        isr: Some(isr.to_vec()),
        replicas: None,
        joining: Vec::new(),
        elr: None,
        reassignment: None,
    })
}

/// KIP-966: replicas that leave the ISR while it is below min.insync.replicas keep every
/// committed record (the high watermark is stuck), so one of them leads when no ISR
/// member is alive; the list empties once the ISR is back at min.insync.replicas.
#[test]
fn replicas_leaving_an_isr_below_min_insync_are_eligible_leaders() {
    let (mut image, id) = with_min_insync(3, &[&[1, 2, 3]]);
    image.apply(&isr_change(&image, id, &[1, 2]), 200).unwrap();
    assert!(
        state(&image, 0).elr.is_empty(),
        "3 left while the ISR kept two: not eligible"
    );
    image.apply(&isr_change(&image, id, &[1]), 201).unwrap();
    assert_eq!(
        state(&image, 0).elr,
        vec![2],
        "2 left the ISR below min.insync.replicas"
    );

    // 1 dies: no ISR member alive, 2 is eligible and takes over with an ISR of its own.
    let records = fence(&image, &[(1, 1)]);
    image.apply_batch(&records, 202).unwrap();
    let s = state(&image, 0);
    assert_eq!((s.leader, s.isr.clone(), s.elr.clone()), (2, vec![2], vec![1]));

    // 3 catches up and joins: the ISR is at min.insync.replicas again, the list empties.
    image.apply(&isr_change(&image, id, &[2, 3]), 203).unwrap();
    assert!(state(&image, 0).elr.is_empty());
}

#[test]
fn without_an_eligible_replica_alive_the_partition_stays_offline() {
    let (mut image, id) = with_min_insync(3, &[&[1, 2, 3]]);
    image.apply(&isr_change(&image, id, &[1, 2]), 200).unwrap();
    let records = fence(&image, &[(1, 1)]);
    image.apply_batch(&records, 201).unwrap();
    assert_eq!(state(&image, 0).leader, 2, "from the ISR");
    let records = fence(&image, &[(2, 2)]);
    image.apply_batch(&records, 202).unwrap();
    let s = state(&image, 0);
    assert_eq!(
        (s.leader, s.isr.clone()),
        (NO_LEADER, vec![2]),
        "3 is neither in sync nor eligible"
    );
}

/// A broker back with another disk holds nothing: it leaves every ISR, even as the last
/// member, and every ELR, so it cannot lead what it lost.
#[test]
fn a_broker_back_with_an_empty_disk_leaves_every_isr_and_elr() {
    let (mut image, id) = with_min_insync(3, &[&[1, 2, 3], &[1, 2], &[1]]);
    image.apply(&isr_change(&image, id, &[1]), 200).unwrap();
    assert_eq!(state(&image, 0).elr, vec![2, 3]);
    let new_disk = Uuid::new_v4();
    let records = leave_isrs(&image, 2, new_disk);
    assert_eq!(records.len(), 2, "partition 0's ELR and partition 1's ISR");
    image.apply_batch(&records, 201).unwrap();
    assert_eq!(state(&image, 0).elr, vec![3]);
    assert_eq!(state(&image, 1).isr, vec![1]);
    let records = leave_isrs(&image, 1, new_disk);
    image.apply_batch(&records, 202).unwrap();
    let p2 = state(&image, 2);
    assert_eq!(
        (p2.leader, p2.isr.clone()),
        (NO_LEADER, vec![]),
        "its last member lost it all"
    );
    let p0 = state(&image, 0);
    assert_eq!((p0.leader, p0.isr.clone()), (3, vec![3]), "the eligible replica leads");
    // The same disk coming back again: it was the last member and stays.
    let (single, _) = self::image(1, &[&[1]]);
    let directory = single.broker(1).unwrap().registration.directory_id;
    assert!(leave_isrs(&single, 1, directory).is_empty());
}
