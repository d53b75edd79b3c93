use super::*;

fn config() -> ConsumerConfig {
    ConsumerConfig {
        heartbeat_interval_ms: 100,
        session_timeout_ms: 10_000,
        max_size: 100,
    }
}

fn topic(partitions: i32) -> Vec<TopicInfo> {
    vec![TopicInfo {
        name: "t".into(),
        id: Uuid::from_u128(7),
        partitions,
    }]
}

fn hb(member: &str, epoch: i32, owned: Option<Assignment>) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        subscribed_topic_names: (epoch == 0).then(|| vec!["t".to_string()]),
        owned,
        ..Default::default()
    }
}

fn owned(a: &Option<Assignment>) -> Option<Assignment> {
    a.clone()
}

#[test]
fn partitions_move_only_after_they_are_released() {
    let mut g = ConsumerGroup::default();
    let now = Instant::now();
    let topics = topic(4);
    let a = g.heartbeat(hb("a", 0, None), &topics, &config(), now);
    assert_eq!(count(a.assignment.as_ref().unwrap()), 4);
    assert_eq!(a.member_epoch, 1);
    let b = g.heartbeat(hb("b", 0, None), &topics, &config(), now);
    assert_eq!(count(b.assignment.as_ref().unwrap()), 0, "a still holds everything");
    // a is told to give up two partitions.
    let a2 = g.heartbeat(hb("a", a.member_epoch, owned(&a.assignment)), &topics, &config(), now);
    let kept = a2.assignment.clone().unwrap();
    assert_eq!(count(&kept), 2);
    assert_eq!(g.state_name(), "Reconciling");
    // Until a reports them released, b gets nothing.
    let b2 = g.heartbeat(
        hb("b", b.member_epoch, Some(Assignment::new())),
        &topics,
        &config(),
        now,
    );
    assert_eq!(b2.assignment.as_ref().map_or(0, count), 0);
    let a3 = g.heartbeat(hb("a", a2.member_epoch, Some(kept.clone())), &topics, &config(), now);
    assert_eq!(a3.member_epoch, 2);
    let b3 = g.heartbeat(
        hb("b", b2.member_epoch, Some(Assignment::new())),
        &topics,
        &config(),
        now,
    );
    let got = b3.assignment.unwrap();
    assert_eq!(count(&got), 2);
    assert!(intersect(&got, &kept).is_empty(), "never owned twice");
    assert_eq!(b3.member_epoch, 2);
    assert_eq!(g.state_name(), "Stable");
}

#[test]
fn stale_epochs_are_fenced_and_leaving_releases() {
    let mut g = ConsumerGroup::default();
    let now = Instant::now();
    let topics = topic(2);
    let a = g.heartbeat(hb("a", 0, None), &topics, &config(), now);
    let fenced = g.heartbeat(hb("a", a.member_epoch + 5, None), &topics, &config(), now);
    assert!(matches!(fenced.error, Some(BrokerError::FencedMemberEpoch)));
    assert!(matches!(
        g.heartbeat(hb("x", 3, None), &topics, &config(), now).error,
        Some(BrokerError::UnknownMemberId)
    ));
    assert!(matches!(
        g.check_commit("a", a.member_epoch - 1),
        Err(BrokerError::StaleMemberEpoch)
    ));
    assert!(g.check_commit("a", a.member_epoch).is_ok());
    let left = g.heartbeat(hb("a", -1, None), &topics, &config(), now);
    assert_eq!(left.member_epoch, -1);
    assert!(g.is_empty());
    let b = g.heartbeat(hb("b", 0, None), &topics, &config(), now);
    assert_eq!(count(b.assignment.as_ref().unwrap()), 2);
}

#[test]
fn a_static_member_that_leaves_keeps_its_partitions_until_its_session_ends() {
    let mut g = ConsumerGroup::default();
    let now = Instant::now();
    let topics = topic(2);
    let static_hb = |member: &str, epoch: i32| ConsumerHeartbeat {
        instance_id: Some("i".into()),
        ..hb(member, epoch, None)
    };
    let a = g.heartbeat(static_hb("a", 0), &topics, &config(), now);
    let partitions = a.assignment.clone().unwrap();
    assert_eq!(count(&partitions), 2);
    let wrong = g.heartbeat(static_hb("x", -2), &topics, &config(), now);
    assert!(matches!(wrong.error, Some(BrokerError::FencedInstanceId)));
    let anonymous = g.heartbeat(hb("a", -2, None), &topics, &config(), now);
    assert!(matches!(anonymous.error, Some(BrokerError::InvalidRequest(_))));
    let left = g.heartbeat(static_hb("a", -2), &topics, &config(), now);
    assert!(left.error.is_none());
    assert_eq!(left.member_epoch, -2);
    assert_eq!(g.members["a"].assigned, partitions, "still a member, still owning");
    let epoch = g.group_epoch;
    let b = g.heartbeat(hb("b", 0, None), &topics, &config(), now);
    assert_eq!(b.assignment.as_ref().map_or(0, count), 0, "nothing is free for b");
    // The same instance comes back under a new member id and takes over.
    let back = g.heartbeat(static_hb("a2", 0), &topics, &config(), now);
    assert!(back.error.is_none());
    assert!(back.member_epoch > 0);
    assert!(g.group_epoch > epoch, "b joined");
    assert!(!g.members.contains_key("a"));
    let owned_back = back.assignment.unwrap();
    assert!(
        count(&owned_back) > 0 && minus(&owned_back, &partitions).is_empty(),
        "gets (part of) its partitions back: {owned_back:?}"
    );
    // While it is a member, another member id cannot take its instance id.
    let taken = g.heartbeat(static_hb("a3", 0), &topics, &config(), now);
    assert!(matches!(taken.error, Some(BrokerError::UnreleasedInstanceId)));
    assert!(g.members.contains_key("a2") && !g.members.contains_key("a3"));
    // Left again and not back: gone exactly at the session deadline.
    g.heartbeat(static_hb("a2", -2), &topics, &config(), now);
    let deadline = g.members["a2"].session_deadline;
    assert!(g.expired(deadline - Duration::from_millis(1)).is_empty());
    assert!(g.expired(deadline).contains(&"a2".to_string()));
}

#[test]
fn range_and_uniform_spread_partitions() {
    let now = Instant::now();
    for assignor in ASSIGNORS {
        let mut g = ConsumerGroup::default();
        let topics = topic(5);
        for m in ["a", "b", "c"] {
            let mut request = hb(m, 0, None);
            request.server_assignor = Some(assignor.to_string());
            g.heartbeat(request, &topics, &config(), now);
        }
        let counts: Vec<usize> = ["a", "b", "c"].iter().map(|m| count(&g.target_of(m))).collect();
        assert_eq!(counts.iter().sum::<usize>(), 5, "{assignor}");
        assert!(counts.iter().all(|c| (1..=2).contains(c)), "{assignor}: {counts:?}");
    }
    let mut g = ConsumerGroup::default();
    let mut request = hb("a", 0, None);
    request.server_assignor = Some("magic".into());
    assert!(matches!(
        g.heartbeat(request, &topic(1), &config(), now).error,
        Some(BrokerError::UnsupportedAssignor(_))
    ));
}
