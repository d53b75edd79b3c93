//! `strom topic create|list|describe|delete|alter-config|add-partitions|reassign|reassignments`.

use std::collections::BTreeMap;

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;
use strom_client::{ConfigChange, NewTopic, OffsetSpec, TopicPartition};

use super::{explain_for, pairs, print_table, Common, Output};

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Number of partitions (-1 = the broker's num.partitions).
        #[arg(short, long, default_value_t = -1)]
        partitions: i32,
        /// Replication factor (-1 = the broker's default).
        #[arg(short, long, default_value_t = -1)]
        replication_factor: i16,
        /// Topic config, e.g. -c retention.ms=60000 (repeatable).
        #[arg(short, long = "config")]
        configs: Vec<String>,
    },
    /// List topics.
    List {
        /// Include internal topics (__consumer_offsets, __transaction_state).
        #[arg(long)]
        internal: bool,
    },
    /// Show a topic's partitions and configs.
    Describe { name: String },
    /// Delete a topic and its data.
    Delete { name: String },
    /// Set or remove topic configs.
    AlterConfig {
        name: String,
        /// key=value to set (repeatable).
        #[arg(long = "set")]
        set: Vec<String>,
        /// Config to reset to its default (repeatable).
        #[arg(long = "delete")]
        delete: Vec<String>,
    },
    /// Grow a topic to COUNT partitions.
    AddPartitions {
        name: String,
        #[arg(long)]
        count: i32,
    },
    /// Move a partition's replicas to other brokers (the new ones catch up first), or
    /// cancel a move in progress.
    Reassign {
        name: String,
        #[arg(long)]
        partition: i32,
        /// The new replicas, e.g. 2,3,4 (the first is the preferred leader).
        #[arg(long, value_delimiter = ',', required_unless_present = "cancel")]
        replicas: Option<Vec<i32>>,
        /// Cancel the move in progress: back to the original replicas.
        #[arg(long, conflicts_with = "replicas")]
        cancel: bool,
        /// Wait until the move is done, showing progress.
        #[arg(long)]
        wait: bool,
    },
    /// List partition moves in progress.
    Reassignments,
}

pub async fn run(common: &Common, command: TopicCommand) -> Result<()> {
    match command {
        TopicCommand::Reassign {
            name,
            partition,
            replicas,
            cancel,
            wait,
        } => return super::reassign::reassign(common, name, partition, replicas.filter(|_| !cancel), wait).await,
        TopicCommand::Reassignments => return super::reassign::list(common).await,
        _ => {}
    }
    let admin = common.admin().await?;
    let topic = match &command {
        TopicCommand::List { .. } | TopicCommand::Reassign { .. } | TopicCommand::Reassignments => None,
        TopicCommand::Create { name, .. }
        | TopicCommand::Describe { name }
        | TopicCommand::Delete { name }
        | TopicCommand::AlterConfig { name, .. }
        | TopicCommand::AddPartitions { name, .. } => Some(name.clone()),
    };
    let fail = |e| explain_for(e, &common.brokers, topic.as_deref());
    match command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let mut topic = NewTopic::new(name.clone(), partitions, replication_factor);
            for (k, v) in pairs(&configs, "--config")? {
                topic = topic.with_config(k, v);
            }
            admin.create_topics(&[topic]).await.map_err(fail)?;
            report(common.output, json!({"created": name}), || {
                outln!("created topic {name}")
            })?;
        }
        TopicCommand::List { internal } => {
            let mut topics = admin.list_topics().await.map_err(fail)?;
            topics.retain(|t| internal || !t.is_internal);
            topics.sort_by(|a, b| a.name.cmp(&b.name));
            match common.output {
                Output::Json => outln!(
                    "{}",
                    json!(topics
                        .iter()
                        .map(|t| json!({"name": t.name, "partitions": t.partitions, "internal": t.is_internal}))
                        .collect::<Vec<_>>())
                )?,
                Output::Table => {
                    let rows: Vec<Vec<String>> = topics
                        .iter()
                        .map(|t| vec![t.name.clone(), t.partitions.to_string()])
                        .collect();
                    print_table(&["NAME", "PARTITIONS"], &rows)?;
                }
            }
        }
        TopicCommand::Describe { name } => {
            let described = admin.describe_topics(&[name.as_str()]).await.map_err(fail)?;
            let Some(topic) = described.into_iter().next() else {
                anyhow::bail!("topic '{name}' not found; create it with `strom topic create {name}`");
            };
            // Offline partitions (no leader) have no end offset to ask for.
            let wanted: BTreeMap<_, _> = topic
                .partitions
                .iter()
                .filter(|p| p.leader >= 0)
                .map(|p| (TopicPartition::new(name.clone(), p.partition), OffsetSpec::Latest))
                .collect();
            let ends = admin.list_offsets(&wanted).await.map_err(fail)?;
            let end = |p: i32| {
                ends.get(&TopicPartition::new(name.clone(), p))
                    .map_or(-1, |found| found.offset)
            };
            let lags = replica_lags(&admin, &topic).await;
            let lag_of = |p: i32| -> BTreeMap<i32, i64> {
                lags.iter()
                    .filter(|((partition, _), _)| *partition == p)
                    .map(|((_, broker), lag)| (*broker, *lag))
                    .collect()
            };
            let under_replicated =
                |p: &strom_client::PartitionDescription| p.leader >= 0 && p.isr.len() < p.replicas.len();
            match common.output {
                Output::Json => outln!(
                    "{}",
                    json!({
                        "name": topic.name,
                        "id": topic.topic_id.to_string(),
                        "internal": topic.is_internal,
                        "partitions": topic.partitions.iter().map(|p| json!({
                            "partition": p.partition, "leader": p.leader, "leader_epoch": p.leader_epoch,
                            "replicas": p.replicas, "isr": p.isr, "end_offset": end(p.partition),
                            "under_replicated": under_replicated(p), "offline": p.leader < 0,
                            "replica_lag": lag_of(p.partition).iter().map(|(b, l)| (b.to_string(), json!(l))).collect::<serde_json::Map<_, _>>(),
                        })).collect::<Vec<_>>(),
                        "configs": topic.configs.iter().map(|(k, v)| (k.clone(), json!({"value": v.value, "default": v.is_default}))).collect::<serde_json::Map<_, _>>(),
                    })
                )?,
                Output::Table => {
                    outln!("name        {}", topic.name)?;
                    outln!("id          {}", topic.topic_id)?;
                    outln!("partitions  {}\n", topic.partitions.len())?;
                    let rows: Vec<Vec<String>> = topic
                        .partitions
                        .iter()
                        .map(|p| {
                            vec![
                                p.partition.to_string(),
                                if p.leader < 0 {
                                    "none (offline)".into()
                                } else {
                                    p.leader.to_string()
                                },
                                p.leader_epoch.to_string(),
                                format!("{:?}", p.replicas),
                                format!("{:?}", p.isr),
                                match end(p.partition) {
                                    -1 => "-".into(),
                                    end => end.to_string(),
                                },
                                if under_replicated(p) {
                                    "yes".into()
                                } else {
                                    String::new()
                                },
                                p.replicas
                                    .iter()
                                    .filter(|r| **r != p.leader)
                                    .map(|r| match lag_of(p.partition).get(r) {
                                        Some(lag) => format!("{r}:{lag}"),
                                        None => format!("{r}:?"),
                                    })
                                    .collect::<Vec<_>>()
                                    .join(" "),
                            ]
                        })
                        .collect();
                    print_table(
                        &[
                            "PARTITION",
                            "LEADER",
                            "EPOCH",
                            "REPLICAS",
                            "ISR",
                            "END OFFSET",
                            "UNDER-REPLICATED",
                            "FOLLOWER LAG",
                        ],
                        &rows,
                    )?;
                    outln!()?;
                    let rows: Vec<Vec<String>> = topic
                        .configs
                        .iter()
                        .map(|(k, v)| {
                            vec![
                                k.clone(),
                                v.value.clone().unwrap_or_default(),
                                if v.is_default { "default".into() } else { "topic".into() },
                            ]
                        })
                        .collect();
                    print_table(&["CONFIG", "VALUE", "SOURCE"], &rows)?;
                }
            }
        }
        TopicCommand::Delete { name } => {
            admin.delete_topics(&[name.as_str()]).await.map_err(fail)?;
            report(common.output, json!({"deleted": name}), || {
                outln!("deleted topic {name}")
            })?;
        }
        TopicCommand::AlterConfig { name, set, delete } => {
            let set = pairs(&set, "--set")?;
            if set.is_empty() && delete.is_empty() {
                anyhow::bail!("nothing to change: give --set key=value and/or --delete key");
            }
            let mut changes: Vec<ConfigChange> = set.iter().map(|(k, v)| ConfigChange::set(k, v)).collect();
            changes.extend(delete.iter().map(ConfigChange::delete));
            admin.incremental_alter_configs(&name, &changes).await.map_err(fail)?;
            report(common.output, json!({"altered": name}), || {
                outln!("updated configs of {name}")
            })?;
        }
        TopicCommand::AddPartitions { name, count } => {
            admin.create_partitions(&name, count).await.map_err(fail)?;
            report(common.output, json!({"topic": name, "partitions": count}), || {
                outln!("{name} now has {count} partitions")
            })?;
        }
        // Handled above.
        TopicCommand::Reassign { .. } | TopicCommand::Reassignments => {}
    }
    Ok(())
}

/// Each replica's lag behind its leader's high watermark, as the broker holding it
/// reports (DescribeLogDirs): (partition, broker) → records behind. Brokers that do
/// not answer within a few seconds are left out (shown as `?`).
async fn replica_lags(
    admin: &strom_client::Admin,
    topic: &strom_client::TopicDescription,
) -> BTreeMap<(i32, i32), i64> {
    use strom_client::kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    use strom_client::kafka_protocol::messages::{DescribeLogDirsRequest, TopicName};
    let brokers: std::collections::BTreeSet<i32> = topic.partitions.iter().flat_map(|p| p.replicas.clone()).collect();
    let request = DescribeLogDirsRequest::default().with_topics(Some(vec![DescribableLogDirTopic::default()
        .with_topic(TopicName(topic.name.clone().into()))
        .with_partitions(topic.partitions.iter().map(|p| p.partition).collect())]));
    let mut lags = BTreeMap::new();
    for broker in brokers {
        let asked = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            admin.client().send_to(broker, &request),
        )
        .await;
        let Ok(Ok(response)) = asked else { continue };
        for result in response.results {
            for t in result.topics.iter().filter(|t| t.name.0.as_str() == topic.name) {
                for p in &t.partitions {
                    lags.insert((p.partition_index, broker), p.offset_lag);
                }
            }
        }
    }
    lags
}

fn report(output: Output, value: serde_json::Value, text: impl FnOnce() -> Result<()>) -> Result<()> {
    match output {
        Output::Json => outln!("{value}"),
        Output::Table => text(),
    }
}
