//! KIP-951 leader hints: a Produce (v10+) or Fetch (v12+) partition answered with
//! NOT_LEADER_OR_FOLLOWER names the current leader and its epoch, and the response
//! carries that leader's endpoint (Produce v10+, Fetch v16+), so clients move to it
//! without a Metadata round trip.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{BrokerId, FetchResponse, ProduceResponse};
use strom_broker::api::BrokerEndpoint;
use strom_broker::{BrokerApi, TopicRef};

use super::str_bytes;

/// The leader and leader epoch the metadata names for a partition (leader -1: none).
fn leader_of(api: &BrokerApi, topic: &TopicRef, partition: i32) -> Option<(i32, i32)> {
    let image = api.broker().image();
    let topic = match topic {
        TopicRef::Name(name) => image.topic(name),
        TopicRef::Id(id) => image.topic_by_id(*id),
    }?;
    let state = topic.partitions.get(&partition)?;
    Some((state.leader, state.leader_epoch))
}

/// The endpoints of `leaders` on the listener named `listener` (each response type has
/// its own endpoint struct: `make` builds it from id, host, port and rack).
fn endpoints<E>(
    api: &BrokerApi,
    leaders: BTreeSet<i32>,
    listener: &str,
    make: impl Fn(i32, String, i32, Option<String>) -> E,
) -> Vec<E> {
    let brokers: Vec<BrokerEndpoint> = api.brokers();
    leaders
        .into_iter()
        .filter_map(|id| {
            let broker = brokers.iter().find(|b| b.node_id == id && b.alive)?;
            let l = broker.listeners.iter().find(|l| l.name == listener)?;
            Some(make(id, l.host.clone(), i32::from(l.port), broker.rack.clone()))
        })
        .collect()
}

const NOT_LEADER: i16 = ResponseError::NotLeaderOrFollower.code();

/// Adds the hints to a Produce response.
pub fn produce(api: &BrokerApi, listener: &str, response: &mut ProduceResponse, version: i16) {
    use kafka_protocol::messages::produce_response::{LeaderIdAndEpoch, NodeEndpoint};
    if version < 10 {
        return;
    }
    let mut leaders = BTreeSet::new();
    for topic in &mut response.responses {
        let topic_ref = if version >= 13 {
            TopicRef::Id(topic.topic_id)
        } else {
            TopicRef::Name(topic.name.0.to_string())
        };
        for partition in topic
            .partition_responses
            .iter_mut()
            .filter(|p| p.error_code == NOT_LEADER)
        {
            if let Some((leader, epoch)) = leader_of(api, &topic_ref, partition.index) {
                partition.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
                if leader >= 0 {
                    leaders.insert(leader);
                }
            }
        }
    }
    if leaders.is_empty() {
        return;
    }
    response.node_endpoints = endpoints(api, leaders, listener, |id, host, port, rack| {
        NodeEndpoint::default()
            .with_node_id(BrokerId(id))
            .with_host(str_bytes(host))
            .with_port(port)
            .with_rack(rack.map(str_bytes))
    });
}

/// Adds the hints to a Fetch response.
pub fn fetch(api: &BrokerApi, listener: &str, response: &mut FetchResponse, version: i16) {
    use kafka_protocol::messages::fetch_response::{LeaderIdAndEpoch, NodeEndpoint};
    if version < 12 {
        return;
    }
    let mut leaders = BTreeSet::new();
    for topic in &mut response.responses {
        let topic_ref = if version >= 13 {
            TopicRef::Id(topic.topic_id)
        } else {
            TopicRef::Name(topic.topic.0.to_string())
        };
        for partition in topic.partitions.iter_mut().filter(|p| p.error_code == NOT_LEADER) {
            if let Some((leader, epoch)) = leader_of(api, &topic_ref, partition.partition_index) {
                partition.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
                if leader >= 0 {
                    leaders.insert(leader);
                }
            }
        }
    }
    if version < 16 || leaders.is_empty() {
        return;
    }
    response.node_endpoints = endpoints(api, leaders, listener, |id, host, port, rack| {
        NodeEndpoint::default()
            .with_node_id(BrokerId(id))
            .with_host(str_bytes(host))
            .with_port(port)
            .with_rack(rack.map(str_bytes))
    });
}
