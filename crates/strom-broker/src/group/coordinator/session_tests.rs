//! Session expiry on the (paused, so exact) tokio clock: members are gone at their
//! deadline, whether a request or the session timer gets there first.

use bytes::Bytes;

use super::*;
use crate::broker::{BrokerConfig, NewTopic};
use crate::group::GroupListFilter;

const CLASSIC_SESSION_MS: i32 = 10_050;
const CONSUMER_SESSION_MS: i32 = 7_777;

struct Setup {
    _dir: tempfile::TempDir,
    groups: Arc<GroupCoordinator>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(BrokerConfig::new(dir.path())).unwrap();
    broker
        .create_topic(
            NewTopic {
                name: "t".into(),
                num_partitions: 2,
                replication_factor: 1,
                ..Default::default()
            },
            false,
        )
        .unwrap();
    let config = GroupConfig {
        offsets_topic_partitions: 1,
        initial_rebalance_delay_ms: 0,
        min_session_timeout_ms: 1,
        consumer_session_timeout_ms: CONSUMER_SESSION_MS,
        ..Default::default()
    };
    let groups = GroupCoordinator::open(broker, config).unwrap();
    Setup { _dir: dir, groups }
}

/// A static classic member that joined and synced, then stopped heartbeating
/// (classic static members do not send LeaveGroup when they close).
async fn static_classic_member(groups: &Arc<GroupCoordinator>, group: &str) {
    let joined = groups
        .join_group(JoinGroup {
            group_id: group.into(),
            group_instance_id: Some("i1".into()),
            client_id: "c".into(),
            session_timeout_ms: CLASSIC_SESSION_MS,
            rebalance_timeout_ms: 60_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"r"))],
            ..Default::default()
        })
        .await;
    assert!(joined.error.is_none(), "{:?}", joined.error);
    let synced = groups
        .sync_group(SyncGroup {
            group_id: group.into(),
            generation_id: joined.generation_id,
            member_id: joined.member_id.clone(),
            group_instance_id: Some("i1".into()),
            ..Default::default()
        })
        .await;
    assert!(synced.error.is_none(), "{:?}", synced.error);
}

/// A static KIP-848 member that joined, then left with epoch -2.
fn static_consumer_member_that_left(groups: &Arc<GroupCoordinator>, group: &str) {
    let heartbeat = |epoch: i32| ConsumerHeartbeat {
        group_id: group.into(),
        member_id: "m1".into(),
        member_epoch: epoch,
        instance_id: Some("i1".into()),
        rebalance_timeout_ms: 60_000,
        subscribed_topic_names: (epoch == 0).then(|| vec!["t".to_string()]),
        ..Default::default()
    };
    let joined = groups.consumer_heartbeat(heartbeat(0));
    assert!(joined.error.is_none(), "{:?}", joined.error);
    let left = groups.consumer_heartbeat(heartbeat(-2));
    assert!(left.error.is_none(), "{:?}", left.error);
    assert_eq!(left.member_epoch, -2);
}

/// The group's deadline, read without applying the clock.
fn deadline_of(groups: &GroupCoordinator, group: &str) -> Option<Instant> {
    groups.group(group).unwrap().and_then(|g| lock(&g).next_deadline())
}

/// Both groups' deadlines, earliest first.
fn deadlines(groups: &GroupCoordinator) -> Vec<(Instant, &'static str)> {
    let mut deadlines: Vec<(Instant, &str)> = ["classic", "kip848"]
        .into_iter()
        .map(|g| (deadline_of(groups, g).expect("a member with a session"), g))
        .collect();
    deadlines.sort();
    deadlines
}

/// Members held now, read without applying the clock.
fn members_of(groups: &GroupCoordinator, group: &str) -> usize {
    groups.group(group).unwrap().map_or(0, |g| {
        let g = lock(&g);
        g.classic.members.len() + g.consumer.members.len()
    })
}

async fn advance_to(at: Instant) {
    tokio::time::advance(at.saturating_duration_since(Instant::now())).await;
}

#[tokio::test(start_paused = true)]
async fn delete_groups_at_the_session_deadline_finds_the_group_empty() {
    let Setup { _dir, groups } = setup();
    static_classic_member(&groups, "classic").await;
    static_consumer_member_that_left(&groups, "kip848");
    for (deadline, group) in deadlines(&groups) {
        advance_to(deadline - Duration::from_millis(1)).await;
        assert!(
            matches!(groups.delete_group(group).await, Err(BrokerError::NonEmptyGroup)),
            "{group}: the member stays until its session runs out, even after leaving"
        );
        advance_to(deadline).await;
        // No session timer runs here: the request itself applies the clock.
        assert_eq!(members_of(&groups, group), 1, "{group}: nothing expired it yet");
        groups.delete_group(group).await.unwrap();
        assert!(
            matches!(groups.describe_group(group), Err(BrokerError::GroupIdNotFound)),
            "{group} is deleted"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn describe_and_list_see_members_expire_at_their_deadline() {
    let Setup { _dir, groups } = setup();
    static_classic_member(&groups, "classic").await;
    let deadline = deadline_of(&groups, "classic").unwrap();
    advance_to(deadline - Duration::from_millis(1)).await;
    let described = groups.describe_group("classic").unwrap();
    assert_eq!((described.state, described.members.len()), ("Stable", 1));
    advance_to(deadline).await;
    let described = groups.describe_group("classic").unwrap();
    assert_eq!((described.state, described.members.len()), ("Empty", 0));
    let listed = groups.list_groups(&GroupListFilter::default()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, "Empty");
}

#[tokio::test(start_paused = true)]
async fn the_session_timer_fires_at_the_earliest_deadline() {
    let Setup { _dir, groups } = setup();
    let (_shutdown, rx) = watch::channel(false);
    tokio::spawn(groups.clone().run(rx));
    static_classic_member(&groups, "classic").await;
    static_consumer_member_that_left(&groups, "kip848");
    for (deadline, group) in deadlines(&groups) {
        advance_to(deadline - Duration::from_millis(1)).await;
        settle().await;
        assert_eq!(members_of(&groups, group), 1, "{group}: before its deadline");
        advance_to(deadline).await;
        settle().await;
        assert_eq!(
            members_of(&groups, group),
            0,
            "{group}: expired by the timer at its deadline"
        );
    }
}

/// Let the spawned timer task run.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}
