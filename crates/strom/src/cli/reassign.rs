//! Partition reassignment from the command line: `strom topic reassign` (move one
//! partition's replicas, or cancel a move), `strom topic reassignments` (those in
//! progress) and `strom cluster drain` (move every replica off a node before removing
//! it). With `--wait`, progress is shown until the moves are done.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;
use strom_client::kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use strom_client::kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, DescribeClusterRequest, ListPartitionReassignmentsRequest, TopicName,
};
use strom_client::kafka_protocol::protocol::StrBytes;

use super::{explain, print_table, Common, Output};

/// How long `--wait` waits for moves to finish.
const WAIT_LIMIT: Duration = Duration::from_secs(3600);
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// One partition's move: (topic, partition, target replicas or None to cancel).
type Move = (String, i32, Option<Vec<i32>>);

/// `strom topic reassign NAME --partition P (--replicas 1,2,3 | --cancel) [--wait]`.
pub async fn reassign(
    common: &Common,
    name: String,
    partition: i32,
    replicas: Option<Vec<i32>>,
    wait: bool,
) -> Result<()> {
    let moves = vec![(name.clone(), partition, replicas.clone())];
    submit(common, &moves).await?;
    let what = match &replicas {
        Some(r) => format!("{name}-{partition} moving to replicas {r:?}"),
        None => format!("{name}-{partition}: reassignment cancelled"),
    };
    if wait && replicas.is_some() {
        wait_done(common, &moves).await?;
    }
    match common.output {
        Output::Json => outln!(
            "{}",
            json!({"topic": name, "partition": partition, "replicas": replicas, "done": wait})
        )?,
        Output::Table => outln!("{what}{}", if wait && replicas.is_some() { ": done" } else { "" })?,
    }
    Ok(())
}

/// `strom topic reassignments`: the moves in progress.
pub async fn list(common: &Common) -> Result<()> {
    let ongoing = ongoing(common).await?;
    match common.output {
        Output::Json => outln!(
            "{}",
            json!(ongoing
                .iter()
                .map(|((topic, partition), (replicas, adding, removing))| json!({
                    "topic": topic, "partition": partition, "replicas": replicas,
                    "adding": adding, "removing": removing,
                }))
                .collect::<Vec<_>>())
        )?,
        Output::Table => {
            let rows: Vec<Vec<String>> = ongoing
                .iter()
                .map(|((topic, partition), (replicas, adding, removing))| {
                    vec![
                        topic.clone(),
                        partition.to_string(),
                        format!("{replicas:?}"),
                        format!("{adding:?}"),
                        format!("{removing:?}"),
                    ]
                })
                .collect();
            print_table(&["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"], &rows)?;
        }
    }
    Ok(())
}

/// `strom cluster drain --id N [--wait]`: every replica on node N moves to the live
/// broker (not already a replica of that partition) with the fewest replicas, keeping
/// its place in the replica list (so preferred leadership moves with it).
pub async fn drain(common: &Common, node: i32, wait: bool) -> Result<()> {
    let admin = common.admin().await?;
    let fail = |e| explain(e, &common.brokers);
    let cluster = admin
        .client()
        .send_any(&DescribeClusterRequest::default().with_include_fenced_brokers(true))
        .await
        .map_err(fail)?;
    let live: Vec<i32> = cluster
        .brokers
        .iter()
        .filter(|b| !b.is_fenced && b.broker_id.0 != node)
        .map(|b| b.broker_id.0)
        .collect();
    let names: Vec<String> = admin
        .list_topics()
        .await
        .map_err(fail)?
        .into_iter()
        .map(|t| t.name)
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let topics = admin.describe_topics(&refs).await.map_err(fail)?;
    let mut load: BTreeMap<i32, usize> = live.iter().map(|b| (*b, 0)).collect();
    for partition in topics.iter().flat_map(|t| &t.partitions) {
        for replica in &partition.replicas {
            if let Some(count) = load.get_mut(replica) {
                *count += 1;
            }
        }
    }
    let mut moves: Vec<Move> = Vec::new();
    let mut stuck = Vec::new();
    for topic in &topics {
        for partition in topic.partitions.iter().filter(|p| p.replicas.contains(&node)) {
            let replacement = load
                .iter()
                .filter(|(b, _)| !partition.replicas.contains(b))
                .min_by_key(|(b, count)| (**count, **b))
                .map(|(b, _)| *b);
            match replacement {
                Some(to) => {
                    *load.entry(to).or_default() += 1;
                    let target = partition
                        .replicas
                        .iter()
                        .map(|r| if *r == node { to } else { *r })
                        .collect();
                    moves.push((topic.name.clone(), partition.partition, Some(target)));
                }
                None => stuck.push(format!("{}-{}", topic.name, partition.partition)),
            }
        }
    }
    if !stuck.is_empty() {
        anyhow::bail!(
            "no live broker can take the replicas of {} (every live broker has them already); add a broker first",
            stuck.join(", ")
        );
    }
    if !moves.is_empty() {
        submit(common, &moves).await?;
        if wait {
            wait_done(common, &moves).await?;
        }
    }
    match common.output {
        Output::Json => outln!(
            "{}",
            json!({"node": node, "moved": moves.iter().map(|(t, p, r)| json!({"topic": t, "partition": p, "replicas": r})).collect::<Vec<_>>(), "done": wait})
        )?,
        Output::Table => outln!(
            "node {node}: {} replica(s) {}",
            moves.len(),
            if wait {
                "moved away"
            } else {
                "moving away (see `strom topic reassignments`)"
            }
        )?,
    }
    Ok(())
}

async fn submit(common: &Common, moves: &[Move]) -> Result<()> {
    let mut topics: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
    for (topic, partition, replicas) in moves {
        topics.entry(topic).or_default().push(
            ReassignablePartition::default()
                .with_partition_index(*partition)
                .with_replicas(replicas.as_ref().map(|r| r.iter().map(|b| BrokerId(*b)).collect())),
        );
    }
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(60_000)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    ReassignableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(name.to_string())))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let admin = common.admin().await?;
    let response = admin
        .client()
        .send_any(&request)
        .await
        .map_err(|e| explain(e, &common.brokers))?;
    super::check_error_code(response.error_code, response.error_message.as_deref())?;
    for topic in &response.responses {
        for p in &topic.partitions {
            if p.error_code != 0 {
                super::check_error_code(p.error_code, p.error_message.as_deref())
                    .map_err(|e| e.context(format!("{}-{}", topic.name.0, p.partition_index)))?;
            }
        }
    }
    Ok(())
}

/// Reassignments in progress: (topic, partition) → (replicas, adding, removing).
async fn ongoing(common: &Common) -> Result<BTreeMap<(String, i32), (Vec<i32>, Vec<i32>, Vec<i32>)>> {
    let admin = common.admin().await?;
    let response = admin
        .client()
        .send_any(&ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000))
        .await
        .map_err(|e| explain(e, &common.brokers))?;
    super::check_error_code(response.error_code, response.error_message.as_deref())?;
    let ids = |ids: &[BrokerId]| ids.iter().map(|b| b.0).collect::<Vec<_>>();
    Ok(response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    (t.name.0.to_string(), p.partition_index),
                    (ids(&p.replicas), ids(&p.adding_replicas), ids(&p.removing_replicas)),
                )
            })
        })
        .collect())
}

/// Waits until none of `moves` is in progress, printing progress (to stderr, so JSON
/// output stays clean) whenever it changes.
async fn wait_done(common: &Common, moves: &[Move]) -> Result<()> {
    let wanted: BTreeSet<(String, i32)> = moves.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
    let deadline = Instant::now() + WAIT_LIMIT;
    let mut last = usize::MAX;
    loop {
        let ongoing = ongoing(common).await?;
        let left: Vec<_> = ongoing.iter().filter(|(key, _)| wanted.contains(key)).collect();
        if left.is_empty() {
            return Ok(());
        }
        if left.len() != last {
            last = left.len();
            eprintln!(
                "{}/{} moves done; waiting for {}",
                wanted.len() - left.len(),
                wanted.len(),
                left.iter()
                    .take(5)
                    .map(|((t, p), (_, adding, _))| format!("{t}-{p} (adding {adding:?})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if Instant::now() > deadline {
            anyhow::bail!("the moves did not finish within {} s", WAIT_LIMIT.as_secs());
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
