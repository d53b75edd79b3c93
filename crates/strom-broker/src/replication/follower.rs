//! The follower side: one fetch loop per leader node, like Kafka's replica fetcher
//! threads. Each round fetches every partition this node follows from that leader in
//! one request, then (on the blocking pool) truncates where the leader says the logs
//! diverge, appends what came with the leader's offsets and epochs, fsyncs, and takes
//! the leader's high watermark. The next round's fetch offsets report the new
//! positions; a loop ends when this node no longer follows anything from its leader.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{LeaderClient, ReplicaFetch, ReplicaFetchPartition, ReplicaFetched, ReplicationConfig};
use crate::api::broker_endpoints;
use crate::blocking::offload;
use crate::broker::{AppendOrigin, Broker};
use crate::error::BrokerError;
use crate::partition::Partition;
use crate::topic::Topic;

/// How often the set of leaders to fetch from is brought in line with the metadata.
const LEADERS_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Keeps one fetch loop running per leader node this node follows partitions of,
/// until the broker shuts down.
pub async fn run_followers(
    broker: Arc<Broker>,
    client: Arc<dyn LeaderClient>,
    config: ReplicationConfig,
    mut closing: watch::Receiver<bool>,
) {
    let mut loops: HashMap<i32, JoinHandle<()>> = HashMap::new();
    let mut ticks = tokio::time::interval(LEADERS_CHECK_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        loops.retain(|_, task| !task.is_finished());
        for leader in broker.leaders_followed() {
            loops.entry(leader).or_insert_with(|| {
                tracing::debug!(leader, "replica fetcher started");
                tokio::spawn(fetch_loop(
                    broker.clone(),
                    client.clone(),
                    config,
                    leader,
                    closing.clone(),
                ))
            });
        }
        tokio::select! {
            _ = ticks.tick() => {}
            _ = closing.changed() => break,
        }
    }
    for (_, task) in loops {
        let _ = task.await;
    }
}

/// Fetches from `leader` until this node follows nothing of it or shuts down.
async fn fetch_loop(
    broker: Arc<Broker>,
    client: Arc<dyn LeaderClient>,
    config: ReplicationConfig,
    leader: i32,
    mut closing: watch::Receiver<bool>,
) {
    let backoff = Duration::from_millis(config.fetch_backoff_ms.max(1));
    loop {
        if *closing.borrow() {
            return;
        }
        let followed = broker.followed_from(leader);
        if followed.is_empty() {
            tracing::debug!(leader, "replica fetcher stopped: nothing to follow");
            return;
        }
        let endpoint = broker_endpoints(&broker.image())
            .into_iter()
            .find(|e| e.node_id == leader);
        let backing_off = match endpoint {
            None => true,
            Some(endpoint) => {
                let request = fetch_request(&broker, &config, &followed);
                let fetched = tokio::select! {
                    fetched = client.fetch(&endpoint, request.clone()) => fetched,
                    _ = closing.changed() => return,
                };
                match fetched {
                    Err(e) => {
                        tracing::debug!(leader, error = %e, "replica fetch failed");
                        true
                    }
                    Ok(answers) => {
                        let broker = broker.clone();
                        let applied = offload("replica fetch", move || {
                            apply_fetched(&broker, leader, &followed, &request, answers)
                        })
                        .await;
                        // Only errors everywhere back off: a divergence or records go on at once.
                        applied.unwrap_or(true)
                    }
                }
            }
        };
        if backing_off {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = closing.changed() => return,
            }
        }
    }
}

fn fetch_request(
    broker: &Broker,
    config: &ReplicationConfig,
    followed: &[(Arc<Topic>, Arc<Partition>)],
) -> ReplicaFetch {
    let partitions = followed
        .iter()
        .map(|(topic, partition)| {
            let log = partition.log();
            ReplicaFetchPartition {
                topic_id: topic.id(),
                topic: topic.name().to_string(),
                partition: partition.index(),
                current_leader_epoch: partition.leader_epoch(),
                fetch_offset: log.log_end_offset(),
                last_fetched_epoch: log.latest_leader_epoch().unwrap_or(-1),
                log_start_offset: log.log_start_offset(),
                max_bytes: config.fetch_max_bytes,
            }
        })
        .collect();
    ReplicaFetch {
        replica_id: broker.node_id(),
        broker_epoch: broker.broker_epoch(),
        max_wait_ms: config.fetch_wait_max_ms,
        min_bytes: 1,
        max_bytes: config.fetch_response_max_bytes,
        partitions,
    }
}

/// Applies the leader's answers; returns whether every partition failed (back off).
fn apply_fetched(
    broker: &Broker,
    leader: i32,
    followed: &[(Arc<Topic>, Arc<Partition>)],
    request: &ReplicaFetch,
    answers: Vec<ReplicaFetched>,
) -> bool {
    let mut failures = 0usize;
    let mut appended = Vec::new();
    for answer in &answers {
        let found = followed
            .iter()
            .zip(&request.partitions)
            .find(|((topic, partition), _)| topic.id() == answer.topic_id && partition.index() == answer.partition);
        let Some(((topic, partition), asked)) = found else {
            continue;
        };
        // The leadership moved while the fetch was out: its answer is stale.
        if partition.replica().leader() != leader || partition.leader_epoch() != asked.current_leader_epoch {
            continue;
        }
        match apply_one(broker, topic, partition, asked, answer) {
            Ok(true) => appended.push(partition.clone()),
            Ok(false) => {}
            Err(e) => {
                failures += 1;
                tracing::debug!(partition = ?partition, leader, error = %e, "replica fetch not applied");
            }
        }
    }
    // Durable before the next fetch reports the new positions.
    for partition in &appended {
        if let Err(e) = partition.flush() {
            failures += 1;
            tracing::error!(partition = ?partition, error = %e, "follower fsync failed");
        }
    }
    for answer in &answers {
        if let Some((_, partition)) = followed
            .iter()
            .find(|(topic, partition)| topic.id() == answer.topic_id && partition.index() == answer.partition)
        {
            if answer.error.is_none() && answer.high_watermark >= 0 {
                partition.follow_high_watermark(answer.high_watermark);
                follow_log_start(partition, answer.log_start_offset);
            }
        }
    }
    !answers.is_empty() && failures == answers.len()
}

/// A follower's log start follows the leader's (DeleteRecords, retention there), so
/// records deleted on the leader do not come back if this replica leads later.
fn follow_log_start(partition: &Partition, leader_log_start: i64) {
    if leader_log_start > partition.log_start_offset() && leader_log_start <= partition.log_end_offset() {
        if let Err(e) = partition.partition_log().delete_records(leader_log_start) {
            tracing::warn!(partition = ?partition, error = %e, "could not follow the leader's log start offset");
        }
    }
}

/// One partition's answer: truncation, append or the error's remedy. Returns whether
/// records were appended.
fn apply_one(
    broker: &Broker,
    topic: &Topic,
    partition: &Partition,
    asked: &ReplicaFetchPartition,
    answer: &ReplicaFetched,
) -> crate::error::Result<bool> {
    if let Some(error) = &answer.error {
        return match error {
            BrokerError::OffsetOutOfRange { .. } if asked.fetch_offset < answer.log_start_offset => {
                // Behind the leader's log start (retention): start over where it begins.
                tracing::info!(partition = ?partition, from = answer.log_start_offset, "follower restarts its log at the leader's log start");
                partition.truncate_fully_and_start_at(answer.log_start_offset)?;
                Ok(false)
            }
            BrokerError::OffsetOutOfRange { .. } if answer.high_watermark >= 0 => {
                // Ahead of the leader's log end with no epoch to compare: what the leader
                // has committed is common to both, the rest is refetched.
                tracing::warn!(partition = ?partition, to = answer.high_watermark, "follower ahead of the leader truncates to its high watermark");
                partition.truncate_to(answer.high_watermark)?;
                Ok(false)
            }
            other => Err(BrokerError::Remote {
                node: partition.replica().leader(),
                reason: other.to_string(),
            }),
        };
    }
    if let Some(diverging) = answer.diverging_epoch {
        let log = partition.log();
        let local = log.end_offset_for_leader_epoch(diverging.0);
        let offset = truncation_offset(diverging, local, log.log_end_offset(), partition.high_watermark());
        tracing::info!(
            partition = ?partition,
            diverging_epoch = diverging.0,
            leader_end_offset = diverging.1,
            truncate_to = offset,
            "follower truncates where its log diverges from the leader's"
        );
        partition.truncate_to(offset)?;
        return Ok(false);
    }
    if answer.records.is_empty() {
        return Ok(false);
    }
    broker.append(topic, partition, &answer.records, AppendOrigin::Replication)?;
    Ok(true)
}

/// Where a follower truncates when the leader answers that their logs diverge after
/// `diverging = (epoch, end offset)` — the last epoch the leader has at or below the
/// follower's, and where it ends on the leader. `local` is the follower's own end of
/// that epoch (`end_offset_for_leader_epoch`). The follower keeps what both have:
/// up to the smaller of the two ends. If it does not have that epoch itself, its
/// next fetch names an older one and the leader answers again (KIP-279's iteration),
/// until both name the same epoch. Unknown to the leader (`-1`): keep only what the
/// leader committed (the high watermark), as Kafka does.
pub fn truncation_offset(diverging: (i32, i64), local: (i32, i64), log_end: i64, high_watermark: i64) -> i64 {
    let (epoch, end) = diverging;
    if epoch < 0 || end < 0 {
        return high_watermark.min(log_end).max(0);
    }
    let (_, local_end) = local;
    let kept = if local_end < 0 { end } else { end.min(local_end) };
    kept.min(log_end)
}

#[cfg(test)]
mod tests;
