//! Partition assignors of the classic consumer group protocol and the member metadata they
//! read and write.
//!
//! Subscriptions (JoinGroup member metadata) and assignments (SyncGroup payloads) are Kafka's
//! `ConsumerProtocolSubscription` / `ConsumerProtocolAssignment`, each prefixed by its i16
//! version, exactly as the Java client writes them, so groups may mix this client with
//! librdkafka or Java members. A newer version than this client knows is read as the newest
//! it knows: later versions only append fields.
//!
//! Every subscription carries the partitions the member owns (v1+) and its generation (v2+),
//! which the cooperative-sticky assignor (`sticky.rs`) reads; like the Java client, that
//! assignor also puts the generation in the user data (one big-endian i32), for leaders that
//! read only v0.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedPartitions;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::error::{Error, Result};

/// Version of `ConsumerProtocolSubscription` / `ConsumerProtocolAssignment` written.
const CONSUMER_PROTOCOL_VERSION: i16 = 3;

/// How the group leader spreads partitions over the members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    /// Per topic, consecutive ranges of partitions to members sorted by id (`range`).
    Range,
    /// All partitions, sorted by topic and index, dealt to the members in turn (`roundrobin`).
    RoundRobin,
    /// Balanced, keeping each member's partitions as far as balance allows, with incremental
    /// rebalancing: members keep their partitions through a rebalance, and a partition moving
    /// to another member is first revoked by its owner, then assigned in a follow-up
    /// rebalance (`cooperative-sticky`, KIP-429).
    CooperativeSticky,
}

/// One member's JoinGroup subscription, as the leader reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MemberSubscription {
    /// The subscribed topics.
    pub topics: Vec<String>,
    /// The partitions the member owns now (v1+; empty before).
    pub owned: Vec<(String, i32)>,
    /// The generation the member last joined (v2+, else the cooperative-sticky user data,
    /// else -1).
    pub generation: i32,
}

impl Assignor {
    /// The protocol name members advertise in JoinGroup, as Kafka's clients spell it.
    ///
    /// ```
    /// assert_eq!(strom_client::Assignor::RoundRobin.name(), "roundrobin");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// Whether a group using this assignor rebalances incrementally: members keep their
    /// partitions while rejoining and give up only those the new assignment takes away.
    /// Otherwise (eager) every member revokes everything before it rejoins.
    ///
    /// ```
    /// assert!(strom_client::Assignor::CooperativeSticky.is_cooperative());
    /// assert!(!strom_client::Assignor::Range.is_cooperative());
    /// ```
    pub fn is_cooperative(self) -> bool {
        matches!(self, Assignor::CooperativeSticky)
    }

    /// The user data of this assignor's subscription: the generation for cooperative-sticky,
    /// as the Java client writes it.
    fn user_data(self, generation_id: i32) -> Option<Bytes> {
        self.is_cooperative()
            .then(|| Bytes::copy_from_slice(&generation_id.to_be_bytes()))
    }

    /// The assignor with this protocol name.
    pub fn from_name(name: &str) -> Option<Assignor> {
        [Assignor::Range, Assignor::RoundRobin, Assignor::CooperativeSticky]
            .into_iter()
            .find(|a| a.name() == name)
    }

    /// Assigns the partitions of the subscribed topics (`partition_counts`) to the members
    /// (member id → subscription). Every member gets an entry, possibly empty.
    pub(crate) fn assign(
        self,
        members: &BTreeMap<String, MemberSubscription>,
        partition_counts: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, Vec<(String, i32)>> {
        let mut out: BTreeMap<String, Vec<(String, i32)>> =
            members.keys().map(|member| (member.clone(), Vec::new())).collect();
        let subscribers = |topic: &str| -> Vec<&String> {
            members
                .iter()
                .filter(|(_, subscription)| subscription.topics.iter().any(|t| t == topic))
                .map(|(member, _)| member)
                .collect()
        };
        match self {
            Assignor::Range => {
                for (topic, count) in partition_counts {
                    let subscribed = subscribers(topic);
                    let Ok(member_count) = i32::try_from(subscribed.len()) else {
                        continue;
                    };
                    if member_count == 0 {
                        continue;
                    }
                    let per_member = count / member_count;
                    let extra = count % member_count;
                    for (index, member) in (0i32..).zip(subscribed) {
                        let start = index * per_member + index.min(extra);
                        let length = per_member + i32::from(index < extra);
                        let partitions = out.entry(member.clone()).or_default();
                        partitions.extend((start..start + length).map(|p| (topic.clone(), p)));
                    }
                }
            }
            Assignor::RoundRobin => {
                let all: Vec<&String> = members.keys().collect();
                let mut turn = 0usize;
                for (topic, count) in partition_counts {
                    for partition in 0..*count {
                        for _ in 0..all.len() {
                            let member = all[turn % all.len()];
                            turn += 1;
                            if members[member].topics.iter().any(|t| t == topic) {
                                out.entry(member.clone()).or_default().push((topic.clone(), partition));
                                break;
                            }
                        }
                    }
                }
            }
            Assignor::CooperativeSticky => out = crate::sticky::assign(members, partition_counts),
        }
        out
    }
}

/// A member's JoinGroup metadata for `assignor`: its topics, the partitions it owns now and
/// the generation it last joined.
pub(crate) fn encode_subscription(
    assignor: Assignor,
    topics: &[String],
    owned: &[(String, i32)],
    generation_id: i32,
) -> Result<Bytes> {
    let subscription = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| StrBytes::from_string(t.clone())).collect())
        .with_user_data(assignor.user_data(generation_id))
        .with_owned_partitions(
            group_by_topic(owned)
                .into_iter()
                .map(|(topic, partitions)| {
                    OwnedPartitions::default()
                        .with_topic(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(partitions)
                })
                .collect(),
        )
        .with_generation_id(generation_id);
    encode_versioned(&subscription)
}

/// A member's JoinGroup metadata. The generation is the v2+ field when set, else the
/// cooperative-sticky user data (exactly one i32), else -1, as the Java client reads it.
pub(crate) fn decode_subscription(metadata: &Bytes) -> Result<MemberSubscription> {
    let subscription: ConsumerProtocolSubscription = decode_versioned(metadata, "subscription")?;
    let from_user_data = subscription
        .user_data
        .as_ref()
        .and_then(|data| <[u8; 4]>::try_from(&data[..]).ok())
        .map(i32::from_be_bytes);
    let generation = match subscription.generation_id {
        generation if generation >= 0 => generation,
        _ => from_user_data.unwrap_or(-1),
    };
    let mut owned = Vec::new();
    for topic in &subscription.owned_partitions {
        owned.extend(topic.partitions.iter().map(|p| (topic.topic.0.to_string(), *p)));
    }
    Ok(MemberSubscription {
        topics: subscription.topics.iter().map(ToString::to_string).collect(),
        owned,
        generation,
    })
}

/// A SyncGroup assignment payload.
pub(crate) fn encode_assignment(partitions: &[(String, i32)]) -> Result<Bytes> {
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        group_by_topic(partitions)
            .into_iter()
            .map(|(topic, partitions)| {
                AssignedPartitions::default()
                    .with_topic(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(partitions)
            })
            .collect(),
    );
    encode_versioned(&assignment)
}

/// The partitions of a SyncGroup assignment payload; an empty payload assigns nothing.
pub(crate) fn decode_assignment(payload: &Bytes) -> Result<Vec<(String, i32)>> {
    if payload.is_empty() {
        return Ok(Vec::new());
    }
    let assignment: ConsumerProtocolAssignment = decode_versioned(payload, "assignment")?;
    let mut out = Vec::new();
    for topic in assignment.assigned_partitions {
        out.extend(topic.partitions.iter().map(|p| (topic.topic.0.to_string(), *p)));
    }
    out.sort();
    Ok(out)
}

fn group_by_topic(partitions: &[(String, i32)]) -> BTreeMap<String, Vec<i32>> {
    let mut by_topic: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic.clone()).or_default().insert(*partition);
    }
    by_topic
        .into_iter()
        .map(|(topic, partitions)| (topic, partitions.into_iter().collect()))
        .collect()
}

fn encode_versioned<M: Encodable>(message: &M) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(CONSUMER_PROTOCOL_VERSION);
    message
        .encode(&mut buf, CONSUMER_PROTOCOL_VERSION)
        .map_err(|e| Error::Protocol(format!("encoding consumer protocol metadata: {e}")))?;
    Ok(buf.freeze())
}

fn decode_versioned<M: Decodable>(bytes: &Bytes, what: &str) -> Result<M> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Err(Error::Protocol(format!(
            "consumer protocol {what} of {} bytes",
            bytes.len()
        )));
    }
    let version = buf.get_i16();
    if version < 0 {
        return Err(Error::Protocol(format!("consumer protocol {what} version {version}")));
    }
    M::decode(&mut buf, version.min(CONSUMER_PROTOCOL_VERSION))
        .map_err(|e| Error::Protocol(format!("malformed consumer protocol {what} (v{version}): {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(entries: &[(&str, &[&str])]) -> BTreeMap<String, MemberSubscription> {
        entries
            .iter()
            .map(|(member, topics)| {
                let topics = topics.iter().map(|t| t.to_string()).collect();
                (
                    member.to_string(),
                    MemberSubscription {
                        topics,
                        ..Default::default()
                    },
                )
            })
            .collect()
    }

    fn counts(entries: &[(&str, i32)]) -> BTreeMap<String, i32> {
        entries.iter().map(|(t, c)| (t.to_string(), *c)).collect()
    }

    fn names(assigned: &[(String, i32)]) -> Vec<String> {
        assigned.iter().map(|(t, p)| format!("{t}-{p}")).collect()
    }

    #[test]
    fn range_gives_consecutive_ranges_per_topic() {
        let assigned = Assignor::Range.assign(
            &members(&[("a", &["t", "u"]), ("b", &["t"])]),
            &counts(&[("t", 5), ("u", 2)]),
        );
        assert_eq!(names(&assigned["a"]), ["t-0", "t-1", "t-2", "u-0", "u-1"]);
        assert_eq!(names(&assigned["b"]), ["t-3", "t-4"]);
    }

    #[test]
    fn round_robin_deals_in_turn_skipping_unsubscribed_members() {
        let assigned = Assignor::RoundRobin.assign(
            &members(&[("a", &["t", "u"]), ("b", &["t"])]),
            &counts(&[("t", 3), ("u", 2)]),
        );
        assert_eq!(names(&assigned["a"]), ["t-0", "t-2", "u-0", "u-1"]);
        assert_eq!(names(&assigned["b"]), ["t-1"]);
        let idle = Assignor::RoundRobin.assign(&members(&[("a", &["t"]), ("b", &["t"])]), &counts(&[("t", 1)]));
        assert!(idle["b"].is_empty());
    }

    #[test]
    fn metadata_round_trips_with_the_java_version_prefix() {
        let subscription =
            encode_subscription(Assignor::Range, &["t".to_string()], &[("t".to_string(), 1)], 4).unwrap_or_default();
        assert_eq!(&subscription[..2], &[0, 3]);
        let expected = MemberSubscription {
            topics: vec!["t".to_string()],
            owned: vec![("t".to_string(), 1)],
            generation: 4,
        };
        assert_eq!(decode_subscription(&subscription).ok(), Some(expected));
        let assignment = encode_assignment(&[("t".to_string(), 2), ("s".to_string(), 0)]).unwrap_or_default();
        assert_eq!(
            decode_assignment(&assignment).ok(),
            Some(vec![("s".to_string(), 0), ("t".to_string(), 2)])
        );
        // A v0 subscription as older clients write it: version, topics, null user data.
        let mut v0 = BytesMut::new();
        v0.put_i16(0);
        v0.put_i32(1);
        v0.put_i16(1);
        v0.put_slice(b"x");
        v0.put_i32(-1);
        let v0 = decode_subscription(&v0.freeze()).unwrap_or_default();
        assert_eq!((v0.topics, v0.generation), (vec!["x".to_string()], -1));
        assert!(decode_assignment(&Bytes::new()).is_ok_and(|a| a.is_empty()));
        assert!(decode_subscription(&Bytes::from_static(&[0])).is_err());
    }

    #[test]
    fn cooperative_sticky_subscriptions_are_written_as_the_java_client_does() {
        let owned = [("t".to_string(), 2), ("s".to_string(), 0), ("t".to_string(), 0)];
        let bytes =
            encode_subscription(Assignor::CooperativeSticky, &["s".into(), "t".into()], &owned, 7).unwrap_or_default();
        let mut expected = BytesMut::new();
        expected.put_i16(3); // version
        expected.put_i32(2); // topics
        expected.put_i16(1);
        expected.put_slice(b"s");
        expected.put_i16(1);
        expected.put_slice(b"t");
        expected.put_i32(4); // user data: the generation
        expected.put_i32(7);
        expected.put_i32(2); // owned partitions by topic, sorted
        expected.put_i16(1);
        expected.put_slice(b"s");
        expected.put_i32(1);
        expected.put_i32(0);
        expected.put_i16(1);
        expected.put_slice(b"t");
        expected.put_i32(2);
        expected.put_i32(0);
        expected.put_i32(2);
        expected.put_i32(7); // generation
        expected.put_i16(-1); // no rack
        assert_eq!(bytes, expected.freeze());
        let decoded = decode_subscription(&bytes).unwrap_or_default();
        assert_eq!(decoded.generation, 7);
        assert_eq!(decoded.owned.len(), 3);

        // v1 (no generation field): the generation comes from the user data.
        let mut v1 = BytesMut::new();
        v1.put_i16(1);
        v1.put_i32(1);
        v1.put_i16(1);
        v1.put_slice(b"t");
        v1.put_i32(4);
        v1.put_i32(9);
        v1.put_i32(1);
        v1.put_i16(1);
        v1.put_slice(b"t");
        v1.put_i32(1);
        v1.put_i32(3);
        let v1 = decode_subscription(&v1.freeze()).unwrap_or_default();
        assert_eq!((v1.owned, v1.generation), (vec![("t".to_string(), 3)], 9));
        assert_eq!(
            Assignor::from_name("cooperative-sticky"),
            Some(Assignor::CooperativeSticky)
        );
    }
}
