//! The leader's side of the ISR (Kafka's AlterPartition, through the metadata quorum):
//! every [`ISR_CHECK_INTERVAL`] each partition this node leads with other replicas is
//! checked; a follower not caught up for `replica.lag.time.max.ms` leaves, a follower
//! that fetched up to the high watermark in this leader epoch joins. The change is a
//! partition change with the partition epoch as compare-and-set and the joining
//! replicas' broker epochs, so a leader deposed meanwhile, or a replica restarted
//! meanwhile, gets it refused. While it is pending the high watermark counts the
//! joining replicas too.

use std::sync::Arc;
use std::time::Duration;

use strom_cluster::{MetadataRecord, PartitionChange};
use tokio::sync::watch;

use super::ReplicationConfig;
use crate::blocking::offload;
use crate::broker::Broker;

/// How often the leader checks its partitions' ISRs.
pub const ISR_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// How long one ISR change may take to commit before the leader gives up on it.
const ISR_COMMIT_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs [`maintain_isr`] until the broker shuts down.
pub async fn run_isr_upkeep(broker: Arc<Broker>, config: ReplicationConfig, mut closing: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(ISR_CHECK_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = closing.changed() => return,
        }
        let broker = broker.clone();
        let upkeep = offload("ISR upkeep", move || maintain_isr(&broker, config.lag_time_max_ms));
        tokio::select! {
            _ = upkeep => {}
            _ = closing.changed() => return,
        }
    }
}

/// Proposes the ISR each led partition wants; returns how many changes committed.
pub fn maintain_isr(broker: &Broker, lag_time_max_ms: i64) -> usize {
    let now_ms = broker.clock().now_ms();
    let mut committed = 0;
    for (topic, partition) in broker.led_replicated() {
        let replica = partition.replica();
        let Some(proposal) = replica.wanted_isr(now_ms, lag_time_max_ms, partition.high_watermark()) else {
            continue;
        };
        replica.set_pending_isr(Some(proposal.isr.clone()));
        let change = MetadataRecord::PartitionChange(PartitionChange {
            topic_id: topic.id(),
            partition: partition.index(),
            partition_epoch: proposal.partition_epoch,
            leader: None,
            isr: Some(proposal.isr.clone()),
            replicas: None,
            joining: proposal.joining.clone(),
            elr: None,
            reassignment: None,
        });
        match broker.commit_partition_changes(vec![change], ISR_COMMIT_TIMEOUT) {
            Ok(()) => {
                committed += 1;
                tracing::info!(partition = ?partition, isr = ?proposal.isr, "ISR changed");
            }
            Err(e) => {
                replica.set_pending_isr(None);
                tracing::info!(partition = ?partition, isr = ?proposal.isr, error = %e, "ISR change not committed");
            }
        }
    }
    committed
}
