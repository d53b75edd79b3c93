//! Partition assignors of the classic consumer group protocol: the one a member offers and
//! the group leader runs. Range and round-robin are computed here; cooperative-sticky in
//! `sticky.rs`. The subscriptions they read are `consumer_protocol.rs`'s.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::consumer_protocol::MemberSubscription;
use crate::sticky;

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
    pub(crate) fn user_data(self, generation_id: i32) -> Option<Bytes> {
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
            Assignor::CooperativeSticky => out = sticky::assign(members, partition_counts),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};

    use super::*;
    use crate::consumer_protocol::{decode_subscription, encode_subscription};

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
    fn cooperative_sticky_subscriptions_are_written_as_the_java_client_does() {
        let owned = [("t".to_string(), 2), ("s".to_string(), 0), ("t".to_string(), 0)];
        let bytes = encode_subscription(
            &["s".into(), "t".into()],
            &owned,
            7,
            Assignor::CooperativeSticky.user_data(7),
        )
        .unwrap_or_default();
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
