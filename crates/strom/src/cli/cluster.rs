//! `strom cluster status`: the nodes, whether each is alive (unfenced), the active
//! controller, and the metadata quorum's log positions and lag, from DescribeCluster
//! and DescribeQuorum (as `kafka-metadata-quorum.sh describe --status --replication`).

use std::collections::BTreeMap;

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;
use strom_client::kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use strom_client::kafka_protocol::messages::{DescribeClusterRequest, DescribeQuorumRequest, TopicName};
use strom_client::kafka_protocol::protocol::StrBytes;

use super::{explain, print_table, Common, Output};

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Show the nodes, their roles and liveness, the active controller and the
    /// metadata quorum's log positions.
    Status,
}

/// One node as the status shows it.
struct NodeRow {
    node_id: i32,
    address: Option<String>,
    rack: Option<String>,
    broker: Option<&'static str>,
    voter: bool,
    observer: bool,
    log_end: Option<i64>,
}

pub async fn run(common: &Common, command: ClusterCommand) -> Result<()> {
    let ClusterCommand::Status = command;
    let admin = common.admin().await?;
    let client = admin.client();
    let fail = |e| explain(e, &common.brokers);
    let cluster = client
        .send_any(&DescribeClusterRequest::default().with_include_fenced_brokers(true))
        .await
        .map_err(fail)?;
    let quorum = client
        .send_any(&DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)])]))
        .await
        .map_err(fail)?;
    if quorum.error_code != 0 {
        anyhow::bail!(
            "the metadata quorum did not answer: {} (error {})",
            quorum.error_message.as_deref().unwrap_or(""),
            quorum.error_code
        );
    }
    let partition = quorum
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .cloned()
        .unwrap_or_default();
    let high_watermark = partition.high_watermark;
    let mut nodes: BTreeMap<i32, NodeRow> = BTreeMap::new();
    let row = |node_id: i32| NodeRow {
        node_id,
        address: None,
        rack: None,
        broker: None,
        voter: false,
        observer: false,
        log_end: None,
    };
    for broker in &cluster.brokers {
        let node = nodes
            .entry(broker.broker_id.0)
            .or_insert_with(|| row(broker.broker_id.0));
        node.address = Some(format!("{}:{}", broker.host, broker.port));
        node.rack = broker.rack.as_ref().map(|r| r.to_string());
        node.broker = Some(if broker.is_fenced { "fenced" } else { "alive" });
    }
    for (replicas, voter) in [(&partition.current_voters, true), (&partition.observers, false)] {
        for replica in replicas {
            let node = nodes
                .entry(replica.replica_id.0)
                .or_insert_with(|| row(replica.replica_id.0));
            node.voter |= voter;
            node.observer |= !voter;
            node.log_end = Some(replica.log_end_offset);
        }
    }
    let controller = partition.leader_id.0;
    let roles = |n: &NodeRow| {
        let mut roles = Vec::new();
        if n.broker.is_some() {
            roles.push("broker");
        }
        if n.voter {
            roles.push("controller");
        }
        if n.observer {
            roles.push("observer");
        }
        roles.join(",")
    };
    match common.output {
        Output::Json => outln!(
            "{}",
            json!({
                "cluster_id": cluster.cluster_id.to_string(),
                "active_controller": controller,
                "quorum": {"leader": controller, "term": partition.leader_epoch, "high_watermark": high_watermark},
                "nodes": nodes.values().map(|n| json!({
                    "node_id": n.node_id,
                    "address": n.address,
                    "rack": n.rack,
                    "roles": roles(n),
                    "broker": n.broker,
                    "log_end_offset": n.log_end,
                    "lag": n.log_end.map(|end| (high_watermark - end).max(0)),
                })).collect::<Vec<_>>(),
            })
        )?,
        Output::Table => {
            outln!("cluster id         {}", cluster.cluster_id)?;
            outln!("active controller  {controller}")?;
            outln!("quorum term        {}", partition.leader_epoch)?;
            outln!("committed index    {high_watermark}\n")?;
            let rows: Vec<Vec<String>> = nodes
                .values()
                .map(|n| {
                    vec![
                        n.node_id.to_string(),
                        roles(n),
                        n.address.clone().unwrap_or_else(|| "-".into()),
                        n.broker.unwrap_or("not registered").to_string(),
                        if n.node_id == controller {
                            "yes".into()
                        } else {
                            String::new()
                        },
                        n.log_end.map_or_else(|| "-".into(), |e| e.to_string()),
                        n.log_end
                            .map_or_else(|| "-".into(), |e| (high_watermark - e).max(0).to_string()),
                    ]
                })
                .collect();
            print_table(
                &["NODE", "ROLES", "ADDRESS", "BROKER", "CONTROLLER", "LOG END", "LAG"],
                &rows,
            )?;
        }
    }
    Ok(())
}
