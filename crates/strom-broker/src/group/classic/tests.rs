use super::*;

fn config() -> ClassicConfig {
    ClassicConfig {
        initial_rebalance_delay_ms: 0,
        min_session_timeout_ms: 1,
        max_session_timeout_ms: 100_000,
        max_size: 100,
    }
}

fn join(member_id: &str, instance: Option<&str>) -> JoinGroup {
    JoinGroup {
        group_id: "g".into(),
        member_id: member_id.into(),
        group_instance_id: instance.map(String::from),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![
            ("range".into(), Bytes::from_static(b"r")),
            ("roundrobin".into(), Bytes::from_static(b"rr")),
        ],
        require_known_member_id: true,
        ..Default::default()
    }
}

fn joined(outcome: JoinOutcome) -> JoinResult {
    match outcome {
        JoinOutcome::Now(r) => r,
        JoinOutcome::Wait(mut rx) => rx.try_recv().expect("join completed"),
    }
}

#[tokio::test]
async fn two_members_join_sync_and_a_stale_generation_is_refused() {
    let mut g = ClassicGroup::default();
    let now = Instant::now();
    let first = joined(g.join(join("", None), &config(), now, 0).0);
    assert!(matches!(first.error, Some(BrokerError::MemberIdRequired)));
    let a = first.member_id;
    let result_a = joined(g.join(join(&a, None), &config(), now, 0).0);
    assert_eq!((result_b_gen(&result_a), result_a.leader.as_str()), (1, a.as_str()));
    assert_eq!(result_a.protocol_name.as_deref(), Some("range"));
    // The second member triggers a rebalance; A must rejoin.
    let b = joined(g.join(join("", None), &config(), now, 0).0).member_id;
    let (outcome_b, _) = g.join(join(&b, None), &config(), now, 0);
    assert_eq!(g.state, GroupState::PreparingRebalance);
    assert!(matches!(
        g.heartbeat(&a, None, 1, now),
        Err(BrokerError::RebalanceInProgress)
    ));
    let result_a = joined(g.join(join(&a, None), &config(), now, 0).0);
    let result_b = joined(outcome_b);
    assert_eq!((result_a.generation_id, result_b.generation_id), (2, 2));
    assert_eq!(result_a.members.len(), 2, "the leader sees every member");
    assert!(result_b.members.is_empty());
    let (sync_b, _) = g.sync(
        SyncGroup {
            group_id: "g".into(),
            generation_id: 2,
            member_id: b.clone(),
            ..Default::default()
        },
        now,
        0,
    );
    let assignments = vec![
        (a.clone(), Bytes::from_static(b"A")),
        (b.clone(), Bytes::from_static(b"B")),
    ];
    let (sync_a, effects) = g.sync(
        SyncGroup {
            group_id: "g".into(),
            generation_id: 2,
            member_id: a.clone(),
            assignments,
            ..Default::default()
        },
        now,
        0,
    );
    assert!(effects.persist);
    assert_eq!(g.state, GroupState::Stable);
    for (outcome, expected) in [(sync_a, "A"), (sync_b, "B")] {
        let result = match outcome {
            SyncOutcome::Wait(mut rx) => rx.try_recv().unwrap(),
            SyncOutcome::Now(r) => r,
        };
        assert_eq!(result.assignment.as_ref(), expected.as_bytes());
    }
    assert!(matches!(
        g.heartbeat(&a, None, 1, now),
        Err(BrokerError::IllegalGeneration)
    ));
    assert!(matches!(
        g.heartbeat("nobody", None, 2, now),
        Err(BrokerError::UnknownMemberId)
    ));
    assert!(matches!(
        g.check_commit(&a, None, 1, now),
        Err(BrokerError::IllegalGeneration)
    ));
    assert!(g.check_commit(&a, None, 2, now).is_ok());
    assert!(
        g.check_commit("", None, -1, now).is_err(),
        "simple commits only into empty groups"
    );
}

fn result_b_gen(r: &JoinResult) -> i32 {
    r.generation_id
}

#[tokio::test]
async fn expired_member_is_removed_and_the_rest_rebalance() {
    let mut g = ClassicGroup::default();
    let now = Instant::now();
    let mut request = join("", None);
    request.require_known_member_id = false;
    let a = joined(g.join(request.clone(), &config(), now, 0).0).member_id;
    g.sync(
        SyncGroup {
            generation_id: 1,
            member_id: a.clone(),
            ..Default::default()
        },
        now,
        0,
    );
    assert_eq!(g.state, GroupState::Stable);
    let later = now + Duration::from_secs(11);
    let expired = g.expired(later);
    assert_eq!(expired, vec![a.clone()]);
    let effects = g.remove_members(&expired, &config(), later, 0);
    assert!(effects.persist);
    assert_eq!(g.state, GroupState::Empty);
    assert_eq!(g.generation_id, 2);
}

#[tokio::test]
async fn static_member_rejoins_without_rebalance_and_fences_the_old_id() {
    let mut g = ClassicGroup::default();
    let now = Instant::now();
    let first = joined(g.join(join("", Some("i1")), &config(), now, 0).0);
    assert!(first.error.is_none(), "static members get an id at once");
    g.sync(
        SyncGroup {
            generation_id: 1,
            member_id: first.member_id.clone(),
            assignments: vec![(first.member_id.clone(), Bytes::from_static(b"A"))],
            ..Default::default()
        },
        now,
        0,
    );
    let again = joined(g.join(join("", Some("i1")), &config(), now, 0).0);
    assert!(again.error.is_none());
    assert_eq!(again.generation_id, 1, "no new generation");
    assert_ne!(again.member_id, first.member_id);
    assert_eq!(g.state, GroupState::Stable);
    assert!(matches!(
        g.heartbeat(&first.member_id, Some("i1"), 1, now),
        Err(BrokerError::FencedInstanceId)
    ));
    assert!(g.heartbeat(&again.member_id, Some("i1"), 1, now).is_ok());
    assert_eq!(g.members.get(&again.member_id).unwrap().assignment.as_ref(), b"A");
}
