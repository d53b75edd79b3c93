//! The active controller: a task on every controller's quorum runtime that acts only
//! while its node leads the quorum. It keeps the brokers' liveness from their
//! heartbeats and, one committed step per tick, fences brokers past
//! `broker.session.timeout.ms`, unfences brokers that heartbeat again, and elects
//! leaders where a partition's leader is gone (the decisions are in
//! [`crate::controller`]). A new active controller gives every broker a full session
//! before fencing it: it has not heard anyone yet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::controller;
use crate::storage::Applied;
use crate::types::{Command, NodeId, Raft};

/// How often the active controller looks at the brokers and partitions.
const TICK: Duration = Duration::from_millis(250);

/// A broker's heartbeat: it is alive in this broker epoch (process lifetime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node_id: i32,
    pub broker_epoch: i64,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// The broker is fenced now (it leads nothing until it is unfenced).
    pub fenced: bool,
}

/// When each broker was last heard from, on this node's monotonic clock.
pub(crate) struct Liveness {
    base: Instant,
    heard: Mutex<HashMap<i32, (i64, i64)>>,
}

impl Liveness {
    pub fn new() -> Liveness {
        Liveness {
            base: Instant::now(),
            heard: Mutex::new(HashMap::new()),
        }
    }

    fn now_ms(&self) -> i64 {
        self.base.elapsed().as_millis() as i64
    }

    fn heard(&self) -> std::sync::MutexGuard<'_, HashMap<i32, (i64, i64)>> {
        self.heard.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a heartbeat; answers whether the image has the broker fenced.
    pub fn record(&self, heartbeat: Heartbeat, applied: &Applied) -> HeartbeatReply {
        let now = self.now_ms();
        self.heard().insert(heartbeat.node_id, (heartbeat.broker_epoch, now));
        let fenced = applied
            .image
            .broker(heartbeat.node_id)
            .is_none_or(|b| b.fenced || b.broker_epoch != heartbeat.broker_epoch);
        HeartbeatReply { fenced }
    }

    /// Last heard, per broker (for its current epoch only).
    fn heard_ms(&self, image: &crate::MetadataImage) -> HashMap<i32, i64> {
        self.heard()
            .iter()
            .filter(|(node, (epoch, _))| image.broker(**node).is_some_and(|b| b.broker_epoch == *epoch))
            .map(|(node, (_, at))| (*node, *at))
            .collect()
    }
}

/// Runs the active controller until the quorum shuts down.
/// The active controller's timing settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// `broker.session.timeout.ms`.
    pub session_timeout_ms: i64,
    /// How often preferred replicas get their leadership back (None: never).
    pub rebalance_interval_ms: Option<i64>,
}

pub(crate) async fn run(
    node_id: NodeId,
    raft: Raft,
    applied: watch::Receiver<Arc<Applied>>,
    liveness: Arc<Liveness>,
    timing: Timing,
) {
    let session_timeout_ms = timing.session_timeout_ms;
    let mut leading_since: Option<i64> = None;
    let mut last_rebalance = liveness.now_ms();
    let mut metrics = raft.metrics();
    let mut last_tick = liveness.now_ms();
    loop {
        tokio::time::sleep(TICK).await;
        let now = liveness.now_ms();
        if now - last_tick > session_timeout_ms / 2 {
            // This process was paused (SIGSTOP, a suspended machine): it cannot tell
            // who stopped heartbeating meanwhile, so every broker gets a new session.
            leading_since = None;
        }
        last_tick = now;
        if metrics.has_changed().is_err() {
            return;
        }
        let leader = metrics.borrow_and_update().current_leader;
        if leader != Some(node_id) {
            leading_since = None;
            continue;
        }
        if leading_since.is_none() {
            // Act on the whole committed log: wait until it is applied here.
            if raft.ensure_linearizable().await.is_err() {
                continue;
            }
            leading_since = Some(liveness.now_ms());
        }
        let since = leading_since.unwrap_or_default();
        let image = applied.borrow().image.clone();
        let mut records = next_step(&image, &liveness, since, session_timeout_ms);
        if records.is_empty() {
            let due = timing
                .rebalance_interval_ms
                .is_some_and(|interval| now - last_rebalance >= interval);
            if !due {
                continue;
            }
            last_rebalance = now;
            records = controller::rebalance_preferred(&image);
            if records.is_empty() {
                continue;
            }
            tracing::info!(
                partitions = records.len(),
                "preferred replicas take their leadership back"
            );
        }
        match raft.client_write(Command { records }).await {
            Ok(response) => {
                if let Err(refusal) = response.data.outcome {
                    // The image moved on meanwhile: the next tick decides again.
                    tracing::debug!(%refusal, "controller step refused");
                }
            }
            Err(e) => tracing::debug!(error = %e, "controller step not committed"),
        }
    }
}

/// One step: fence the expired brokers, else unfence one that heartbeats again, else
/// elect leaders where they are missing, else complete reassignments whose new replicas
/// are all in sync.
fn next_step(
    image: &crate::MetadataImage,
    liveness: &Liveness,
    since: i64,
    session_timeout_ms: i64,
) -> Vec<crate::MetadataRecord> {
    let now = liveness.now_ms();
    let heard = liveness.heard_ms(image);
    let fenced = controller::fence_expired(image, &heard, since, now, session_timeout_ms);
    if !fenced.is_empty() {
        for record in &fenced {
            if let crate::MetadataRecord::BrokerFencing { node_id, .. } = record {
                tracing::warn!(
                    node_id,
                    session_timeout_ms,
                    "broker fenced: no heartbeat within the session timeout"
                );
            }
        }
        return fenced;
    }
    for broker in image.brokers().values().filter(|b| b.fenced) {
        let node_id = broker.registration.node_id;
        if heard.get(&node_id).is_some_and(|at| now - at <= session_timeout_ms) {
            tracing::info!(node_id, "broker unfenced: it heartbeats again");
            return controller::unfence(image, node_id, broker.broker_epoch);
        }
    }
    let elections = controller::leadership_changes(image, |id| controller::is_alive(image, id));
    if !elections.is_empty() {
        return elections;
    }
    controller::complete_reassignments(image)
}
