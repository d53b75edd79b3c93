//! Wire-level tests of the group APIs: Kafka's error codes for stale generations,
//! unknown members, fenced static members, bad session timeouts and oversized metadata;
//! static members that leave stay until their session deadline, and not longer.

mod common;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_broker::group::GroupConfig;
use tokio::net::TcpStream;

use common::*;

fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        min_session_timeout_ms: 100,
        offsets_topic_partitions: 3,
        ..Default::default()
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn join_request(member_id: &str, instance: Option<&str>, protocol_type: &str, session_ms: i32) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(5000)
        .with_member_id(s(member_id))
        .with_group_instance_id(instance.map(s))
        .with_protocol_type(s(protocol_type))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"m"))])
}

async fn join(stream: &mut TcpStream, member_id: &str, instance: Option<&str>) -> JoinGroupResponse {
    call(
        stream,
        ApiKey::JoinGroup,
        7,
        &join_request(member_id, instance, "consumer", 10_000),
    )
    .await
}

/// Join as a dynamic member (two round trips: MEMBER_ID_REQUIRED, then the join).
async fn join_new(stream: &mut TcpStream) -> JoinGroupResponse {
    let first = join(stream, "", None).await;
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    let joined = join(stream, &first.member_id, None).await;
    assert_eq!(joined.error_code, 0);
    joined
}

async fn sync(
    stream: &mut TcpStream,
    member_id: &StrBytes,
    generation: i32,
    assignment: &'static [u8],
) -> SyncGroupResponse {
    let request = SyncGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_generation_id(generation)
        .with_member_id(member_id.clone())
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(member_id.clone())
            .with_assignment(Bytes::from_static(assignment))]);
    call(stream, ApiKey::SyncGroup, 5, &request).await
}

fn commit_request(member_id: &StrBytes, generation: i32, metadata: String) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(member_id.clone())
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s("t")))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(5)
                .with_committed_metadata(Some(s(&metadata)))])])
}

async fn fetch_committed(stream: &mut TcpStream) -> (i64, Option<StrBytes>) {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s("t")))
            .with_partition_indexes(vec![0])]));
    let response: OffsetFetchResponse = call(stream, ApiKey::OffsetFetch, 7, &request).await;
    let partition = &response.topics[0].partitions[0];
    (partition.committed_offset, partition.metadata.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_are_checked_against_generation_member_and_metadata_size() {
    let h = start_with(config()).await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let joined = join_new(&mut stream).await;
    assert_eq!((joined.generation_id, &joined.leader), (1, &joined.member_id));
    let synced = sync(&mut stream, &joined.member_id, 1, b"assignment").await;
    assert_eq!((synced.error_code, synced.assignment.as_ref()), (0, &b"assignment"[..]));

    let stale: OffsetCommitResponse = call(
        &mut stream,
        ApiKey::OffsetCommit,
        8,
        &commit_request(&joined.member_id, 0, "x".into()),
    )
    .await;
    assert_eq!(stale.topics[0].partitions[0].error_code, 22, "ILLEGAL_GENERATION");
    let unknown: OffsetCommitResponse = call(
        &mut stream,
        ApiKey::OffsetCommit,
        8,
        &commit_request(&s("nobody"), 1, "x".into()),
    )
    .await;
    assert_eq!(unknown.topics[0].partitions[0].error_code, 25, "UNKNOWN_MEMBER_ID");
    let huge: OffsetCommitResponse = call(
        &mut stream,
        ApiKey::OffsetCommit,
        8,
        &commit_request(&joined.member_id, 1, "m".repeat(5000)),
    )
    .await;
    assert_eq!(huge.topics[0].partitions[0].error_code, 12, "OFFSET_METADATA_TOO_LARGE");
    assert_eq!(fetch_committed(&mut stream).await.0, -1, "nothing was committed");

    let ok: OffsetCommitResponse = call(
        &mut stream,
        ApiKey::OffsetCommit,
        8,
        &commit_request(&joined.member_id, 1, "meta".into()),
    )
    .await;
    assert_eq!(ok.topics[0].partitions[0].error_code, 0);
    assert_eq!(
        fetch_committed(&mut stream).await,
        (5, Some(s("meta"))),
        "metadata round-trips"
    );

    for (generation, member, expected) in [
        (0, joined.member_id.clone(), 22),
        (1, s("nobody"), 25),
        (1, joined.member_id.clone(), 0),
    ] {
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id(generation)
            .with_member_id(member);
        let response: HeartbeatResponse = call(&mut stream, ApiKey::Heartbeat, 4, &request).await;
        assert_eq!(response.error_code, expected);
    }
    still_serves(h.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_joins_get_kafka_errors() {
    let h = start_with(config()).await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let too_short: JoinGroupResponse = call(
        &mut stream,
        ApiKey::JoinGroup,
        7,
        &join_request("", None, "consumer", 10),
    )
    .await;
    assert_eq!(too_short.error_code, 26, "INVALID_SESSION_TIMEOUT");
    let empty_group = join_request("", None, "consumer", 10_000).with_group_id(GroupId(s("")));
    let response: JoinGroupResponse = call(&mut stream, ApiKey::JoinGroup, 7, &empty_group).await;
    assert_eq!(response.error_code, 24, "INVALID_GROUP_ID");
    let joined = join_new(&mut stream).await;
    sync(&mut stream, &joined.member_id, 1, b"a").await;
    let other_type: JoinGroupResponse = call(
        &mut stream,
        ApiKey::JoinGroup,
        7,
        &join_request("", None, "connect", 10_000),
    )
    .await;
    assert_eq!(other_type.error_code, 23, "INCONSISTENT_GROUP_PROTOCOL");
    let unknown: JoinGroupResponse = call(
        &mut stream,
        ApiKey::JoinGroup,
        7,
        &join_request("ghost", None, "consumer", 10_000),
    )
    .await;
    assert_eq!(unknown.error_code, 25, "UNKNOWN_MEMBER_ID");

    let delete = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g")), GroupId(s("missing"))]);
    let response: DeleteGroupsResponse = call(&mut stream, ApiKey::DeleteGroups, 2, &delete).await;
    assert_eq!(response.results[0].error_code, 68, "NON_EMPTY_GROUP");
    assert_eq!(response.results[1].error_code, 69, "GROUP_ID_NOT_FOUND");
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_member_id(joined.member_id.clone());
    let left: LeaveGroupResponse = call(&mut stream, ApiKey::LeaveGroup, 2, &leave).await;
    assert_eq!(left.error_code, 0);
    let response: DeleteGroupsResponse = call(&mut stream, ApiKey::DeleteGroups, 2, &delete).await;
    assert_eq!(response.results[0].error_code, 0);
    still_serves(h.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_that_rejoins_fences_its_old_id_without_a_rebalance() {
    let h = start_with(config()).await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let first = join(&mut stream, "", Some("instance-1")).await;
    assert_eq!(first.error_code, 0, "static members need no MEMBER_ID_REQUIRED round");
    sync(&mut stream, &first.member_id, 1, b"p0").await;
    let again = join(&mut stream, "", Some("instance-1")).await;
    assert_eq!(
        (again.error_code, again.generation_id),
        (0, 1),
        "same generation: no rebalance"
    );
    assert_ne!(again.member_id, first.member_id);
    let heartbeat = |member: &StrBytes| {
        HeartbeatRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id(1)
            .with_member_id(member.clone())
            .with_group_instance_id(Some(s("instance-1")))
    };
    let old: HeartbeatResponse = call(&mut stream, ApiKey::Heartbeat, 4, &heartbeat(&first.member_id)).await;
    assert_eq!(old.error_code, 82, "FENCED_INSTANCE_ID");
    let new: HeartbeatResponse = call(&mut stream, ApiKey::Heartbeat, 4, &heartbeat(&again.member_id)).await;
    assert_eq!(new.error_code, 0);
    let synced = sync(&mut stream, &again.member_id, 1, b"ignored").await;
    assert_eq!(synced.assignment.as_ref(), b"p0", "keeps its assignment");
}

/// DeleteGroups right after the session deadline of members that left. The harness
/// runs no session timer, so only the request applying the clock can empty the groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_members_that_left_are_gone_at_their_session_deadline() {
    const SESSION_MS: u64 = 300;
    let h = start_with(GroupConfig {
        consumer_session_timeout_ms: SESSION_MS as i32,
        ..config()
    })
    .await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();

    // Classic: a static member joins and syncs, then closes without LeaveGroup, as
    // Kafka's and librdkafka's static consumers do.
    let joined: JoinGroupResponse = call(
        &mut stream,
        ApiKey::JoinGroup,
        7,
        &join_request("", Some("instance-1"), "consumer", SESSION_MS as i32),
    )
    .await;
    assert_eq!(joined.error_code, 0);
    sync(&mut stream, &joined.member_id, 1, b"p0").await;
    let classic_deadline = tokio::time::Instant::now() + tokio::time::Duration::from_millis(SESSION_MS);

    // KIP-848: a static member joins, then leaves with member epoch -2.
    let heartbeat = |epoch: i32| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s("g848")))
            .with_member_id(s("member-848"))
            .with_member_epoch(epoch)
            .with_instance_id(Some(s("instance-848")))
            .with_rebalance_timeout_ms(5000)
            .with_subscribed_topic_names((epoch == 0).then(|| vec![TopicName(s("t"))]))
            .with_topic_partitions((epoch == 0).then(Vec::new))
    };
    let joined: ConsumerGroupHeartbeatResponse =
        call(&mut stream, ApiKey::ConsumerGroupHeartbeat, 1, &heartbeat(0)).await;
    assert_eq!((joined.error_code, joined.member_epoch), (0, 1));
    let consumer_deadline = tokio::time::Instant::now() + tokio::time::Duration::from_millis(SESSION_MS);
    let left: ConsumerGroupHeartbeatResponse =
        call(&mut stream, ApiKey::ConsumerGroupHeartbeat, 1, &heartbeat(-2)).await;
    assert_eq!((left.error_code, left.member_epoch), (0, -2));

    let delete = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g")), GroupId(s("g848"))]);
    let response: DeleteGroupsResponse = call(&mut stream, ApiKey::DeleteGroups, 2, &delete).await;
    let codes: Vec<i16> = response.results.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        [68, 68],
        "NON_EMPTY_GROUP: the members keep their place until the deadline"
    );
    let describe = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("g848"))]);
    let described: ConsumerGroupDescribeResponse = call(&mut stream, ApiKey::ConsumerGroupDescribe, 0, &describe).await;
    let members = &described.groups[0].members;
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].member_epoch, -2, "a static member that left temporarily");

    tokio::time::sleep_until(classic_deadline.max(consumer_deadline)).await;
    let response: DeleteGroupsResponse = call(&mut stream, ApiKey::DeleteGroups, 2, &delete).await;
    let codes: Vec<i16> = response.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [0, 0], "deleted as soon as the sessions ran out");
}
