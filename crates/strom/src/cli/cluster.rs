//! `strom cluster status`: the nodes, whether each is alive (unfenced), the active
//! controller, and the metadata quorum's log positions and lag, from DescribeCluster
//! and DescribeQuorum (as `kafka-metadata-quorum.sh describe --status --replication`).
//! `strom cluster add-voter|remove-voter|unregister`: membership changes, with Kafka's
//! AddRaftVoter, RemoveRaftVoter (sent to the active controller) and UnregisterBroker.

use std::collections::BTreeMap;

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;
use strom_client::kafka_protocol::messages::add_raft_voter_request::Listener;
use strom_client::kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use strom_client::kafka_protocol::messages::{
    AddRaftVoterRequest, BrokerId, DescribeClusterRequest, DescribeQuorumRequest, RemoveRaftVoterRequest, TopicName,
    UnregisterBrokerRequest,
};
use strom_client::kafka_protocol::protocol::StrBytes;

use super::check_error_code as check;
use super::{explain, print_table, Common, Output};

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Show the nodes, their roles and liveness, the active controller and the
    /// metadata quorum's log positions.
    Status,
    /// Make a running node a voter of the metadata quorum (start it first, with a
    /// CONTROLLER listener and the current voters; it waits to be added).
    AddVoter {
        /// The new voter's node.id (never the id of a node whose data was lost).
        #[arg(long)]
        id: i32,
        /// Its controller listener, host:port.
        #[arg(long)]
        address: String,
    },
    /// Take a node out of the metadata quorum. Its id must never be used again.
    RemoveVoter {
        #[arg(long)]
        id: i32,
    },
    /// Forget a broker that is gone for good (it must be stopped and fenced first).
    Unregister {
        #[arg(long)]
        id: i32,
    },
    /// Move every partition replica off a node (to the live brokers with the fewest
    /// replicas), e.g. before removing it.
    Drain {
        #[arg(long)]
        id: i32,
        /// Wait until every move is done, showing progress.
        #[arg(long)]
        wait: bool,
    },
}

/// Partition counts over every topic (internal ones included), from Metadata.
struct PartitionHealth {
    total: usize,
    /// Led, with fewer in-sync replicas than replicas.
    under_replicated: usize,
    /// No leader.
    offline: usize,
}

async fn partition_health(admin: &strom_client::Admin) -> strom_client::Result<PartitionHealth> {
    let names: Vec<String> = admin.list_topics().await?.into_iter().map(|t| t.name).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut health = PartitionHealth {
        total: 0,
        under_replicated: 0,
        offline: 0,
    };
    if refs.is_empty() {
        return Ok(health);
    }
    for partition in admin.describe_topics(&refs).await?.iter().flat_map(|t| &t.partitions) {
        health.total += 1;
        if partition.leader < 0 {
            health.offline += 1;
        } else if partition.isr.len() < partition.replicas.len() {
            health.under_replicated += 1;
        }
    }
    Ok(health)
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
    match command {
        ClusterCommand::Status => status(common).await,
        ClusterCommand::Drain { id, wait } => super::reassign::drain(common, id, wait).await,
        ClusterCommand::AddVoter { id, address } => {
            let (host, port) = address
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| anyhow::anyhow!("--address must be host:port, not '{address}'"))?;
            let request = AddRaftVoterRequest::default()
                .with_voter_id(id)
                .with_timeout_ms(60_000)
                .with_listeners(vec![Listener::default()
                    .with_name(StrBytes::from_static_str("CONTROLLER"))
                    .with_host(StrBytes::from_string(host))
                    .with_port(port)]);
            let response = send_to_controller(common, &request).await?;
            check(response.error_code, response.error_message.as_deref())?;
            done(
                common,
                json!({"added_voter": id}),
                &format!("node {id} is a voter of the metadata quorum"),
            )
        }
        ClusterCommand::RemoveVoter { id } => {
            let response = send_to_controller(common, &RemoveRaftVoterRequest::default().with_voter_id(id)).await?;
            check(response.error_code, response.error_message.as_deref())?;
            done(
                common,
                json!({"removed_voter": id}),
                &format!("node {id} left the metadata quorum"),
            )
        }
        ClusterCommand::Unregister { id } => {
            let admin = common.admin().await?;
            let response = admin
                .client()
                .send_any(&UnregisterBrokerRequest::default().with_broker_id(BrokerId(id)))
                .await
                .map_err(|e| explain(e, &common.brokers))?;
            check(response.error_code, response.error_message.as_deref())?;
            done(
                common,
                json!({"unregistered": id}),
                &format!("broker {id} unregistered"),
            )
        }
    }
}

fn done(common: &Common, json: serde_json::Value, text: &str) -> Result<()> {
    match common.output {
        Output::Json => outln!("{json}")?,
        Output::Table => outln!("{text}")?,
    }
    Ok(())
}

/// Sends a membership change to the active controller's node (it runs them).
async fn send_to_controller<Req: strom_client::kafka_protocol::protocol::Request>(
    common: &Common,
    request: &Req,
) -> Result<Req::Response> {
    let admin = common.admin().await?;
    let client = admin.client();
    let fail = |e| explain(e, &common.brokers);
    let quorum = client.send_any(&quorum_request()).await.map_err(fail)?;
    let leader = quorum
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| p.leader_id.0)
        .filter(|l| *l >= 0)
        .ok_or_else(|| anyhow::anyhow!("the metadata quorum has no active controller now; try again"))?;
    client.send_to(leader, request).await.map_err(fail)
}

fn quorum_request() -> DescribeQuorumRequest {
    DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])])
}

async fn status(common: &Common) -> Result<()> {
    let admin = common.admin().await?;
    let client = admin.client();
    let fail = |e| explain(e, &common.brokers);
    let cluster = client
        .send_any(&DescribeClusterRequest::default().with_include_fenced_brokers(true))
        .await
        .map_err(fail)?;
    let quorum = client.send_any(&quorum_request()).await.map_err(fail)?;
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
    let health = partition_health(&admin).await.map_err(fail)?;
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
                "partitions": {"total": health.total, "under_replicated": health.under_replicated, "offline": health.offline},
            })
        )?,
        Output::Table => {
            outln!("cluster id         {}", cluster.cluster_id)?;
            outln!("active controller  {controller}")?;
            outln!("quorum term        {}", partition.leader_epoch)?;
            outln!("committed index    {high_watermark}")?;
            outln!(
                "partitions         {} ({} under-replicated, {} offline)\n",
                health.total,
                health.under_replicated,
                health.offline
            )?;
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
