//! `strom group list|describe`.

use std::collections::BTreeMap;

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

use strom_client::{OffsetSpec, TopicPartition};

use super::{explain, print_table, Common, Output};

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups with their state.
    List,
    /// Show a group's state, members, committed offsets and lag.
    Describe { group: String },
    /// Move a group's committed offsets (the group must have no members).
    ResetOffsets {
        group: String,
        #[arg(long)]
        topic: String,
        /// earliest, latest, offset:N or timestamp:MS.
        #[arg(long)]
        to: String,
        /// Apply the change; without it only the plan is shown.
        #[arg(long)]
        execute: bool,
    },
    /// Delete a group without members and its committed offsets.
    Delete { group: String },
}

/// Kafka's error codes for a commit to a group that has members.
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const NON_EMPTY_GROUP: i16 = 68;

/// One partition of a group: its committed offset (if any), end, lag and owner.
struct PartitionRow {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    end: i64,
    lag: Option<i64>,
    owner: Option<String>,
}

/// `orders(0,1) payments(3)`, as Kafka's `kafka-consumer-groups --members --verbose` shows it.
fn assignment_text(assignment: &[TopicPartition]) -> String {
    let mut by_topic: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for tp in assignment {
        by_topic.entry(&tp.topic).or_default().push(tp.partition.to_string());
    }
    by_topic
        .iter()
        .map(|(topic, partitions)| format!("{topic}({})", partitions.join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

pub async fn run(common: &Common, command: GroupCommand) -> Result<()> {
    let admin = common.admin().await?;
    let fail = |e| explain(e, &common.brokers);
    match command {
        GroupCommand::List => {
            let mut groups = admin.list_groups().await.map_err(fail)?;
            groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
            match common.output {
                Output::Json => outln!(
                    "{}",
                    json!(groups
                        .iter()
                        .map(|g| json!({"group": g.group_id, "state": g.state, "protocol_type": g.protocol_type}))
                        .collect::<Vec<_>>())
                )?,
                Output::Table => {
                    let rows: Vec<Vec<String>> = groups
                        .iter()
                        .map(|g| vec![g.group_id.clone(), g.state.clone(), g.protocol_type.clone()])
                        .collect();
                    print_table(&["GROUP", "STATE", "PROTOCOL TYPE"], &rows)?;
                }
            }
        }
        GroupCommand::Describe { group } => {
            let described = admin.describe_groups(&[group.as_str()]).await.map_err(fail)?;
            let Some(g) = described.into_iter().next() else {
                anyhow::bail!("group '{group}' not found; list groups with `strom group list`");
            };
            if g.state == "Dead" {
                anyhow::bail!("group '{group}' not found; list groups with `strom group list`");
            }
            let committed = admin.list_group_offsets(&group).await.map_err(fail)?;
            // Who owns each partition; owned partitions without a commit are listed too.
            let owners: BTreeMap<TopicPartition, &str> = g
                .members
                .iter()
                .flat_map(|m| m.assignment.iter().map(move |tp| (tp.clone(), m.member_id.as_str())))
                .collect();
            let mut partitions: BTreeMap<TopicPartition, Option<i64>> =
                owners.keys().map(|tp| (tp.clone(), None)).collect();
            partitions.extend(committed.iter().map(|(tp, found)| (tp.clone(), Some(found.offset))));
            let wanted: BTreeMap<_, _> = partitions.keys().map(|tp| (tp.clone(), OffsetSpec::Latest)).collect();
            let ends = if wanted.is_empty() {
                Default::default()
            } else {
                admin.list_offsets(&wanted).await.map_err(fail)?
            };
            // Lag = the partition's end (high watermark) minus the committed offset.
            let offsets: Vec<PartitionRow> = partitions
                .iter()
                .map(|(tp, committed)| {
                    let end = ends.get(tp).map_or(-1, |found| found.offset);
                    PartitionRow {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        committed: *committed,
                        end,
                        lag: committed.map(|c| (end - c).max(0)),
                        owner: owners.get(tp).map(|m| m.to_string()),
                    }
                })
                .collect();
            match common.output {
                Output::Json => outln!(
                    "{}",
                    json!({
                        "group": g.group_id, "state": g.state, "protocol_type": g.protocol_type, "protocol": g.protocol,
                        "members": g.members.iter().map(|m| json!({
                            "member_id": m.member_id, "instance_id": m.group_instance_id, "client_id": m.client_id,
                            "host": m.client_host,
                            "assignment": m.assignment.iter().map(|tp| json!({"topic": tp.topic, "partition": tp.partition})).collect::<Vec<_>>(),
                        })).collect::<Vec<_>>(),
                        "offsets": offsets.iter().map(|o| json!({
                            "topic": o.topic, "partition": o.partition, "committed": o.committed, "end": o.end,
                            "lag": o.lag, "member_id": o.owner,
                        })).collect::<Vec<_>>(),
                    })
                )?,
                Output::Table => {
                    outln!("group     {}", g.group_id)?;
                    outln!("state     {}", g.state)?;
                    outln!("protocol  {} {}\n", g.protocol_type, g.protocol)?;
                    let rows: Vec<Vec<String>> = g
                        .members
                        .iter()
                        .map(|m| {
                            vec![
                                m.member_id.clone(),
                                m.group_instance_id.clone().unwrap_or_default(),
                                m.client_id.clone(),
                                m.client_host.clone(),
                                assignment_text(&m.assignment),
                            ]
                        })
                        .collect();
                    print_table(&["MEMBER", "INSTANCE", "CLIENT", "HOST", "PARTITIONS"], &rows)?;
                    outln!()?;
                    let dash = |v: Option<i64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
                    let rows: Vec<Vec<String>> = offsets
                        .iter()
                        .map(|o| {
                            vec![
                                o.topic.clone(),
                                o.partition.to_string(),
                                dash(o.committed),
                                o.end.to_string(),
                                dash(o.lag),
                                o.owner.clone().unwrap_or_else(|| "-".to_string()),
                            ]
                        })
                        .collect();
                    print_table(&["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER"], &rows)?;
                }
            }
        }
        GroupCommand::ResetOffsets {
            group,
            topic,
            to,
            execute,
        } => {
            let partitions = admin
                .client()
                .fetch_topic_metadata(&topic)
                .await
                .map_err(fail)?
                .partition_count();
            let spec = match to.as_str() {
                "earliest" | "beginning" => OffsetSpec::Earliest,
                "latest" | "end" => OffsetSpec::Latest,
                other => match other.split_once(':') {
                    Some(("timestamp", t)) => {
                        OffsetSpec::Timestamp(t.parse().map_err(|_| anyhow::anyhow!("bad timestamp '{t}'"))?)
                    }
                    Some(("offset", _)) => OffsetSpec::Earliest,
                    _ => anyhow::bail!("--to expects earliest, latest, offset:N or timestamp:MS, not '{other}'"),
                },
            };
            let exact: Option<i64> = match to.split_once(':') {
                Some(("offset", n)) => Some(n.parse().map_err(|_| anyhow::anyhow!("bad offset '{n}'"))?),
                _ => None,
            };
            let wanted: BTreeMap<_, _> = (0..partitions)
                .map(|p| (TopicPartition::new(topic.clone(), p), spec))
                .collect();
            let found = admin.list_offsets(&wanted).await.map_err(fail)?;
            let plan: BTreeMap<TopicPartition, i64> = wanted
                .keys()
                .map(|tp| {
                    let offset = exact.unwrap_or_else(|| found.get(tp).map_or(0, |o| o.offset));
                    (tp.clone(), offset)
                })
                .collect();
            if execute {
                admin
                    .alter_group_offsets(&group, &plan)
                    .await
                    .map_err(|e| match e.code() {
                        // What Kafka answers a commit from outside a group that has members.
                        Some(UNKNOWN_MEMBER_ID | REBALANCE_IN_PROGRESS | NON_EMPTY_GROUP) => anyhow::anyhow!(
                            "group '{group}' has members, and offsets can only be reset while it has none; \
                             stop its consumers first (`strom group describe {group}` lists them)"
                        ),
                        _ => fail(e),
                    })?;
            }
            match common.output {
                Output::Json => outln!(
                    "{}",
                    json!({"group": group, "executed": execute, "offsets": plan.iter().map(|(tp, o)| json!({"topic": tp.topic, "partition": tp.partition, "offset": o})).collect::<Vec<_>>()})
                )?,
                Output::Table => {
                    let rows: Vec<Vec<String>> = plan
                        .iter()
                        .map(|(tp, o)| vec![tp.topic.clone(), tp.partition.to_string(), o.to_string()])
                        .collect();
                    print_table(&["TOPIC", "PARTITION", "NEW OFFSET"], &rows)?;
                    if !execute {
                        eprintln!("(dry run: add --execute to apply)");
                    }
                }
            }
        }
        GroupCommand::Delete { group } => {
            admin.delete_groups(&[group.as_str()]).await.map_err(fail)?;
            match common.output {
                Output::Json => outln!("{}", json!({"deleted": group}))?,
                Output::Table => outln!("deleted group {group}")?,
            }
        }
    }
    Ok(())
}
