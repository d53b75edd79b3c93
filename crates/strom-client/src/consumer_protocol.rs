//! Kafka's consumer protocol, the payloads the classic group protocol carries for consumers:
//! subscriptions (JoinGroup member metadata) and assignments (SyncGroup payloads).
//!
//! They are Kafka's `ConsumerProtocolSubscription` / `ConsumerProtocolAssignment`, each
//! prefixed by its i16 version, exactly as the Java client writes them, so groups may mix this
//! client with librdkafka or Java members. A newer version than this client knows is read as
//! the newest it knows: later versions only append fields.
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

/// Protocol type of consumer groups in JoinGroup, SyncGroup and DescribeGroups.
pub(crate) const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Version of `ConsumerProtocolSubscription` / `ConsumerProtocolAssignment` written.
const CONSUMER_PROTOCOL_VERSION: i16 = 3;

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

/// A member's JoinGroup metadata: its topics, the partitions it owns now, the generation it
/// last joined and its assignor's user data.
pub(crate) fn encode_subscription(
    topics: &[String],
    owned: &[(String, i32)],
    generation_id: i32,
    user_data: Option<Bytes>,
) -> Result<Bytes> {
    let subscription = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| StrBytes::from_string(t.clone())).collect())
        .with_user_data(user_data)
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

    #[test]
    fn metadata_round_trips_with_the_java_version_prefix() {
        let subscription =
            encode_subscription(&["t".to_string()], &[("t".to_string(), 1)], 4, None).unwrap_or_default();
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
}
