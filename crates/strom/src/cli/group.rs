//! `strom group list|describe`.

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

use strom_client::OffsetSpec;

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

pub async fn run(common: &Common, command: GroupCommand) -> Result<()> {
    let admin = common.admin().await?;
    let fail = |e| explain(e, &common.brokers);
    match command {
        GroupCommand::List => {
            let mut groups = admin.list_groups().await.map_err(fail)?;
            groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
            match common.output {
                Output::Json => println!(
                    "{}",
                    json!(groups
                        .iter()
                        .map(|g| json!({"group": g.group_id, "state": g.state, "protocol_type": g.protocol_type}))
                        .collect::<Vec<_>>())
                ),
                Output::Table => {
                    let rows: Vec<Vec<String>> = groups
                        .iter()
                        .map(|g| vec![g.group_id.clone(), g.state.clone(), g.protocol_type.clone()])
                        .collect();
                    print_table(&["GROUP", "STATE", "PROTOCOL TYPE"], &rows);
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
            let wanted: Vec<_> = committed
                .keys()
                .map(|(t, p)| (t.clone(), *p, OffsetSpec::Latest))
                .collect();
            let ends = if wanted.is_empty() {
                Default::default()
            } else {
                admin.list_offsets(&wanted).await.map_err(fail)?
            };
            // Lag = the partition's end (high watermark) minus the committed offset.
            let offsets: Vec<(String, i32, i64, i64, i64)> = committed
                .iter()
                .map(|((t, p), (offset, _))| {
                    let end = ends.get(&(t.clone(), *p)).map_or(-1, |(o, _)| *o);
                    (t.clone(), *p, *offset, end, (end - offset).max(0))
                })
                .collect();
            match common.output {
                Output::Json => println!(
                    "{}",
                    json!({
                        "group": g.group_id, "state": g.state, "protocol_type": g.protocol_type, "protocol": g.protocol,
                        "members": g.members.iter().map(|m| json!({"member_id": m.member_id, "instance_id": m.group_instance_id, "client_id": m.client_id, "host": m.client_host})).collect::<Vec<_>>(),
                        "offsets": offsets.iter().map(|(t, p, o, e, l)| json!({"topic": t, "partition": p, "committed": o, "end": e, "lag": l})).collect::<Vec<_>>(),
                    })
                ),
                Output::Table => {
                    println!("group     {}", g.group_id);
                    println!("state     {}", g.state);
                    println!("protocol  {} {}\n", g.protocol_type, g.protocol);
                    let rows: Vec<Vec<String>> = g
                        .members
                        .iter()
                        .map(|m| {
                            vec![
                                m.member_id.clone(),
                                m.group_instance_id.clone().unwrap_or_default(),
                                m.client_id.clone(),
                                m.client_host.clone(),
                            ]
                        })
                        .collect();
                    print_table(&["MEMBER", "INSTANCE", "CLIENT", "HOST"], &rows);
                    println!();
                    let rows: Vec<Vec<String>> = offsets
                        .iter()
                        .map(|(t, p, o, e, l)| {
                            vec![t.clone(), p.to_string(), o.to_string(), e.to_string(), l.to_string()]
                        })
                        .collect();
                    print_table(&["TOPIC", "PARTITION", "COMMITTED", "END", "LAG"], &rows);
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
            let wanted: Vec<_> = (0..partitions).map(|p| (topic.clone(), p, spec)).collect();
            let found = admin.list_offsets(&wanted).await.map_err(fail)?;
            let plan: Vec<(String, i32, i64)> = (0..partitions)
                .map(|p| {
                    let offset = exact.unwrap_or_else(|| found.get(&(topic.clone(), p)).map_or(0, |(o, _)| *o));
                    (topic.clone(), p, offset)
                })
                .collect();
            if execute {
                admin
                    .alter_group_offsets(&group, &plan)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}; a group's offsets can only be reset while it has no members"))?;
            }
            match common.output {
                Output::Json => println!(
                    "{}",
                    json!({"group": group, "executed": execute, "offsets": plan.iter().map(|(t, p, o)| json!({"topic": t, "partition": p, "offset": o})).collect::<Vec<_>>()})
                ),
                Output::Table => {
                    let rows: Vec<Vec<String>> = plan
                        .iter()
                        .map(|(t, p, o)| vec![t.clone(), p.to_string(), o.to_string()])
                        .collect();
                    print_table(&["TOPIC", "PARTITION", "NEW OFFSET"], &rows);
                    if !execute {
                        eprintln!("(dry run: add --execute to apply)");
                    }
                }
            }
        }
        GroupCommand::Delete { group } => {
            admin.delete_groups(&[group.as_str()]).await.map_err(fail)?;
            match common.output {
                Output::Json => println!("{}", json!({"deleted": group})),
                Output::Table => println!("deleted group {group}"),
            }
        }
    }
    Ok(())
}
