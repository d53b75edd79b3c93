use std::collections::BTreeMap;

use uuid::Uuid;

use super::*;
use crate::records::{BrokerRegistration, Listener};

fn topic(name: &str) -> TopicRecord {
    TopicRecord {
        name: name.into(),
        id: Uuid::new_v4(),
        configs: BTreeMap::new(),
    }
}

fn partition(topic_id: Uuid, partition: i32, replicas: &[i32]) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        topic_id,
        partition,
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        leader: replicas[0],
        leader_epoch: 0,
        partition_epoch: 0,
    })
}

fn registration(node_id: i32) -> MetadataRecord {
    MetadataRecord::RegisterBroker(BrokerRegistration {
        node_id,
        incarnation: Uuid::new_v4(),
        directory_id: Uuid::new_v4(),
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092,
        }],
        rack: None,
    })
}

#[test]
fn the_same_log_builds_the_same_image() {
    let a = topic("a");
    let log: Vec<(Vec<MetadataRecord>, u64)> = vec![
        (vec![MetadataRecord::ClusterId { id: "c1".into() }], 1),
        (vec![registration(1)], 2),
        (vec![registration(2)], 3),
        (
            vec![
                MetadataRecord::Topic(a.clone()),
                partition(a.id, 0, &[1]),
                partition(a.id, 1, &[2]),
            ],
            4,
        ),
        // Refused whole: a second topic named "a" (its partition is not applied either).
        (
            vec![MetadataRecord::Topic(topic("a")), partition(Uuid::new_v4(), 0, &[1])],
            5,
        ),
        (
            vec![MetadataRecord::ProducerIds {
                node_id: 1,
                first: 0,
                next: 1000,
            }],
            6,
        ),
        (
            vec![MetadataRecord::BrokerFencing {
                node_id: 2,
                broker_epoch: 3,
                fenced: true,
            }],
            7,
        ),
    ];
    let build = || {
        let mut image = MetadataImage::default();
        let outcomes: Vec<bool> = log
            .iter()
            .map(|(batch, index)| image.apply_batch(batch, *index).is_ok())
            .collect();
        (image, outcomes)
    };
    let (first, outcomes) = build();
    let (second, _) = build();
    assert_eq!(first, second);
    assert_eq!(outcomes, vec![true, true, true, true, false, true, true]);
    assert_eq!(first.cluster_id(), Some("c1"));
    assert_eq!(first.topic("a").unwrap().partition_count(), 2);
    assert_eq!(first.broker(1).unwrap().broker_epoch, 2);
    assert!(first.broker(2).unwrap().fenced);
    assert_eq!(first.next_producer_id(), 1000);

    // A snapshot (serialised image) rebuilds the same image.
    let mut restored: MetadataImage = serde_json::from_slice(&serde_json::to_vec(&first).unwrap()).unwrap();
    restored.reindex();
    assert_eq!(restored, first);
}

#[test]
fn refused_records_change_nothing() {
    let a = topic("a");
    let mut image = MetadataImage::default();
    image
        .apply_batch(&[MetadataRecord::Topic(a.clone()), partition(a.id, 0, &[1])], 1)
        .unwrap();
    image.apply_batch(&[registration(1)], 2).unwrap();
    let before = image.clone();
    let refused = [
        vec![MetadataRecord::Topic(topic("a"))],
        // Partitions are dense: index 2 cannot follow 1 partition.
        vec![partition(a.id, 2, &[1])],
        vec![MetadataRecord::RemoveTopic {
            topic_id: Uuid::new_v4(),
        }],
        vec![MetadataRecord::ProducerIds {
            node_id: 1,
            first: 5,
            next: 10,
        }],
        // A stale broker epoch (registered at 2).
        vec![MetadataRecord::BrokerFencing {
            node_id: 1,
            broker_epoch: 1,
            fenced: true,
        }],
        vec![
            MetadataRecord::ClusterId { id: "x".into() },
            MetadataRecord::ClusterId { id: "y".into() },
        ],
    ];
    for batch in refused {
        assert!(image.apply_batch(&batch, 3).is_err(), "{batch:?}");
        assert_eq!(image, before);
    }
    assert_eq!(
        image.apply(&MetadataRecord::Topic(topic("a")), 3),
        Err(Refusal::TopicExists("a".into()))
    );
}

#[test]
fn partition_changes_are_compare_and_set_on_the_partition_epoch() {
    let a = topic("a");
    let mut image = MetadataImage::default();
    image
        .apply_batch(&[MetadataRecord::Topic(a.clone()), partition(a.id, 0, &[1, 2, 3])], 1)
        .unwrap();
    let change = |epoch, leader: Option<i32>, isr: Option<Vec<i32>>| {
        MetadataRecord::PartitionChange(PartitionChange {
            topic_id: a.id,
            partition: 0,
            partition_epoch: epoch,
            leader,
            isr,
            replicas: None,
            joining: Vec::new(),
            elr: None,
            reassignment: None,
        })
    };
    image.apply(&change(0, None, Some(vec![1, 2])), 2).unwrap();
    let state = &image.topic("a").unwrap().partitions[&0];
    assert_eq!((state.leader, state.leader_epoch, state.partition_epoch), (1, 0, 1));
    assert_eq!(state.isr, vec![1, 2]);
    // Built from an older image: refused.
    assert!(matches!(
        image.apply(&change(0, Some(2), None), 3),
        Err(Refusal::Stale(_))
    ));
    image.apply(&change(1, Some(2), None), 3).unwrap();
    let state = &image.topic("a").unwrap().partitions[&0];
    assert_eq!((state.leader, state.leader_epoch, state.partition_epoch), (2, 1, 2));
}
