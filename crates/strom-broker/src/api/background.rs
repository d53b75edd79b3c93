//! The broker's periodic work, started by the broker itself: segment rolls by time and
//! retention every `log.retention.check.interval.ms`, compaction every
//! `log.cleaner.backoff.ms`, `flush.ms` checks every [`FLUSH_CHECK_INTERVAL`], the group
//! coordinator's timers, and transaction timeouts (and markers still to write) every
//! `transaction.abort.timed.out.transaction.cleanup.interval.ms`, and bringing the live
//! topics in line with each change of the applied metadata (changes other nodes
//! committed). The file work runs on the blocking pool; everything stops when the
//! broker begins to shut down.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::BrokerApi;
use crate::blocking::offload;
use crate::broker::Broker;
use crate::txn::TxnCoordinator;

/// How often partitions are checked against their topic's `flush.ms`.
const FLUSH_CHECK_INTERVAL: Duration = Duration::from_millis(100);

pub(super) fn spawn_all(api: &Arc<BrokerApi>) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(log_maintenance(api.broker.clone(), api.closing())),
        tokio::spawn(api.groups.clone().run(api.closing())),
        tokio::spawn(transaction_timeouts(api.txns.clone(), api.closing())),
        tokio::spawn(follow_metadata(api.clone(), api.closing())),
        tokio::spawn(heartbeats(api.broker.clone(), api.closing())),
        tokio::spawn(crate::replication::run_followers(
            api.broker.clone(),
            api.leader_client.clone(),
            api.broker.config().replication,
            api.closing(),
        )),
        tokio::spawn(crate::replication::isr::run_isr_upkeep(
            api.broker.clone(),
            api.broker.config().replication,
            api.closing(),
        )),
    ]
}

/// Tells the active controller, every `broker.heartbeat.interval.ms`, that this broker
/// is alive (else it is fenced after `broker.session.timeout.ms`).
async fn heartbeats(broker: Arc<Broker>, mut closing: tokio::sync::watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(Duration::from_millis(broker.config().heartbeat_interval_ms.max(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_fenced = false;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = closing.changed() => return,
        }
        let beat = broker.clone();
        match offload("heartbeat", move || beat.heartbeat()).await {
            Ok(Ok(fenced)) => {
                if fenced != was_fenced {
                    tracing::info!(
                        fenced,
                        "the active controller has this broker {}",
                        if fenced { "fenced" } else { "unfenced" }
                    );
                }
                was_fenced = fenced;
            }
            Ok(Err(e)) | Err(e) => tracing::debug!(error = %e, "heartbeat not delivered"),
        }
    }
}

/// Applies each change of the metadata this node applied to the live topics, then
/// hands the coordinators the internal partitions this node gained or lost.
async fn follow_metadata(api: Arc<BrokerApi>, mut closing: tokio::sync::watch::Receiver<bool>) {
    let mut applied = api.broker.quorum().subscribe();
    loop {
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return },
            _ = closing.changed() => return,
        }
        let api = api.clone();
        // A failure is logged by `sync_metadata` and `offload`; the next change retries.
        let _ = offload("apply metadata", move || {
            let synced = api.broker.sync_metadata();
            api.groups.follow_leadership();
            api.txns.follow_leadership();
            synced
        })
        .await;
    }
}

async fn log_maintenance(broker: Arc<Broker>, mut closing: tokio::sync::watch::Receiver<bool>) {
    let mut retention = tokio::time::interval(Duration::from_millis(
        broker.config().retention_check_interval_ms.max(10),
    ));
    let mut cleaner = tokio::time::interval(Duration::from_millis(broker.config().cleaner_backoff_ms.max(10)));
    let mut flusher = tokio::time::interval(FLUSH_CHECK_INTERVAL);
    flusher.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    retention.tick().await;
    cleaner.tick().await;
    flusher.tick().await;
    loop {
        let (what, work): (&'static str, fn(&Broker)) = tokio::select! {
            _ = retention.tick() => ("retention", Broker::maintain),
            _ = cleaner.tick() => ("compaction", Broker::compact),
            _ = flusher.tick() => ("flush.ms", Broker::flush_stale),
            _ = closing.changed() => return,
        };
        let broker = broker.clone();
        // A failure is logged by `offload`; the next tick tries again.
        let _ = offload(what, move || work(&broker)).await;
    }
}

async fn transaction_timeouts(txns: Arc<TxnCoordinator>, mut closing: tokio::sync::watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(Duration::from_millis(txns.config().abort_check_interval_ms.max(10)));
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = closing.changed() => return,
        }
        let txns = txns.clone();
        let _ = offload("transaction timeouts", move || {
            txns.retry_unfinished();
            txns.abort_timed_out();
            txns.expire_ids();
        })
        .await;
    }
}
