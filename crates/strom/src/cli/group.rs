//! `strom group list|describe`.

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

use super::{explain, print_table, Common, Output};

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups with their state.
    List,
    /// Show a group's state, protocol and members.
    Describe { group: String },
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
            match common.output {
                Output::Json => println!(
                    "{}",
                    json!({
                        "group": g.group_id, "state": g.state, "protocol_type": g.protocol_type, "protocol": g.protocol,
                        "members": g.members.iter().map(|m| json!({"member_id": m.member_id, "instance_id": m.group_instance_id, "client_id": m.client_id, "host": m.client_host})).collect::<Vec<_>>(),
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
                }
            }
        }
    }
    Ok(())
}
