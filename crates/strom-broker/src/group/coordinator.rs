//! `GroupCoordinator`: owns every group on this node, routes requests to their state
//! machines, writes their records to `__consumer_offsets` and runs the timers
//! (rebalance deadlines, session expiry, offset retention). Membership requests are
//! here; committed offsets in `offsets.rs`, descriptions in `description.rs`, the
//! rebuild from the log in `loader.rs`.
//!
//! Locking: the group map and each group have their own `std::sync::Mutex`, never held
//! across an `.await`. Records of a group are appended while its lock is held, so the
//! log's order is the order in which the state changed; fsync happens after the lock
//! is released.
//!
//! Clocks: timestamps that are stored or compared with stored ones (commit
//! timestamps, when a group became empty, offset retention) are wall-clock
//! milliseconds from the broker's injected clock (`Broker::clock`), so tests move them
//! with a `ManualClock`. Session and rebalance deadlines are tokio `Instant`s: they are
//! never stored (a reload restarts them), the timers sleep until them with tokio, and
//! tests pause tokio's clock and advance it exactly to a deadline. Two clocks, each for
//! what it does deterministically in tests.
//!
//! Time: a request that looks at a group first applies what the clock says happened
//! (sessions that ran out, a due rebalance step) at the request's instant, so answers
//! never depend on when a timer task last ran. The session timer sleeps until the
//! earliest deadline of all groups; releasing a group's lock re-arms it when that
//! group now has an earlier one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tokio::time::{Duration, Instant};

use super::classic::{Effects, JoinGroup, JoinOutcome, JoinResult, SyncGroup, SyncOutcome, SyncResult};
use super::consumer::{ConsumerConfig, ConsumerHeartbeat, ConsumerHeartbeatResult, TopicInfo};
use super::offsets_record::{self, OffsetsKey};
use super::session_timer::{LockedGroup, SessionTimer};
use super::{Group, GroupConfig, GroupState};
use crate::broker::Broker;
use crate::coordinator_log::{CoordinatorLog, KeyValue, ProducerIdAndEpoch};
use crate::error::{BrokerError, Result};
use crate::partition::Partition;
use crate::topic::Topic;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// A member named in a LeaveGroup request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

pub(super) type GroupRef = Arc<Mutex<Group>>;

pub struct GroupCoordinator {
    pub(super) broker: Arc<Broker>,
    /// `__consumer_offsets`: its partitions, which of them this node coordinates, I/O.
    pub(super) log: CoordinatorLog,
    pub(super) config: GroupConfig,
    pub(super) groups: Mutex<HashMap<String, GroupRef>>,
    pub(super) sessions: SessionTimer,
}

pub(super) fn lock(group: &GroupRef) -> MutexGuard<'_, Group> {
    crate::sync::lock(group)
}

impl GroupCoordinator {
    /// Create the coordinator and load the groups of every `__consumer_offsets`
    /// partition: this node leads them all (see [`GroupCoordinator::on_elected`]).
    pub fn open(broker: Arc<Broker>, config: GroupConfig) -> Result<Arc<GroupCoordinator>> {
        let log = CoordinatorLog::new(
            broker.clone(),
            OFFSETS_TOPIC,
            config.offsets_topic_partitions,
            config.offsets_topic_segment_bytes,
        );
        let coordinator = Arc::new(GroupCoordinator {
            broker,
            log,
            config,
            groups: Mutex::new(HashMap::new()),
            sessions: SessionTimer::default(),
        });
        if let Some(topic) = coordinator.log.existing_topic() {
            coordinator.elect_all(&topic)?;
        }
        Ok(coordinator)
    }

    /// Elects the partitions this node leads, at their current leader epoch.
    fn elect_all(&self, topic: &Topic) -> Result<()> {
        for partition in topic.partitions().iter().filter(|p| p.replica().is_leader()) {
            self.on_elected(partition.index(), partition.leader_epoch())?;
        }
        Ok(())
    }

    /// The internal partition that coordinates `key` (a group id or transactional id).
    pub(crate) fn coordinator_partition(&self, key: &str) -> i32 {
        self.log.partition_for(key)
    }

    /// Takes the internal partitions this node came to lead and gives up those it no
    /// longer leads (after the metadata moved leadership). Blocking I/O (loading).
    pub fn follow_leadership(&self) {
        self.log.follow_leadership(
            |index, epoch| self.on_elected(index, epoch),
            |index, epoch| self.on_resigned(index, epoch),
        );
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    pub(super) fn groups(&self) -> MutexGuard<'_, HashMap<String, GroupRef>> {
        crate::sync::lock(&self.groups)
    }

    /// The `__consumer_offsets` partition of a group, when this node serves it now
    /// (else NOT_COORDINATOR, or COORDINATOR_LOAD_IN_PROGRESS while it loads).
    pub(super) fn owner(&self, group_id: &str) -> Result<i32> {
        self.offsets_topic()?;
        let index = self.log.partition_for(group_id);
        self.log.check(index)?;
        Ok(index)
    }

    /// A group of a partition this node serves; `None` when there is no such group.
    pub(super) fn group(&self, id: &str) -> Result<Option<GroupRef>> {
        self.owner(id)?;
        Ok(self.groups().get(id).cloned())
    }

    pub(super) fn group_or_create(&self, id: &str) -> Result<GroupRef> {
        self.owner(id)?;
        Ok(self
            .groups()
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(Group::new(id))))
            .clone())
    }

    pub(super) fn now_ms(&self) -> i64 {
        self.broker.clock().now_ms()
    }

    /// Lock a group as of `now`: members whose session deadline is at or before `now`
    /// are gone and a due rebalance step has run, exactly as if the timers had fired.
    pub(super) fn lock_at<'a>(self: &'a Arc<Self>, group_ref: &'a GroupRef, now: Instant) -> LockedGroup<'a> {
        let mut group = LockedGroup {
            group: lock(group_ref),
            sessions: &self.sessions,
        };
        self.expire_members(&mut group, now);
        group
    }

    /// Remove the members of one group whose session ran out by `now` (and rebalance
    /// the rest), then run the rebalance timer's step if it is due.
    pub(super) fn expire_members(self: &Arc<Self>, group: &mut Group, now: Instant) {
        let expired_consumers = group.consumer.expired(now);
        if !expired_consumers.is_empty() {
            tracing::info!(group = %group.id, members = ?expired_consumers, "session timed out");
            for member in &expired_consumers {
                group.consumer.remove(member);
            }
            if group.consumer.is_empty() {
                group.classic.state_timestamp_ms = self.now_ms();
            }
        }
        let expired = group.classic.expired(now);
        if !expired.is_empty() {
            tracing::info!(group = %group.id, members = ?expired, "session timed out");
            let effects = group
                .classic
                .remove_members(&expired, &self.config.classic(), now, self.now_ms());
            self.apply_effects(group, effects);
        }
        let effects = group.classic.on_clock(now, self.now_ms());
        self.apply_effects(group, effects);
    }

    /// The offsets topic, created (compacted) on first use as Kafka does; this node
    /// coordinates the partitions of a topic it created.
    pub fn offsets_topic(&self) -> Result<Arc<Topic>> {
        self.log.topic(|topic| self.elect_all(topic))
    }

    /// Append key/value records for a group (None = tombstone); returns the partition to flush.
    pub(super) fn append(&self, group_id: &str, records: &[(OffsetsKey, Option<Vec<u8>>)]) -> Result<Arc<Partition>> {
        self.append_as(group_id, records, None)
    }

    /// Append records, as part of a producer's transaction when `producer` is given.
    pub(super) fn append_as(
        &self,
        group_id: &str,
        records: &[(OffsetsKey, Option<Vec<u8>>)],
        producer: Option<ProducerIdAndEpoch>,
    ) -> Result<Arc<Partition>> {
        let records: Vec<KeyValue> = records
            .iter()
            .map(|(key, value)| KeyValue {
                key: offsets_record::encode_key(key),
                value: value.clone(),
            })
            .collect();
        self.log.append(self.log.partition_for(group_id), &records, producer)
    }

    fn group_record(group: &Group) -> (OffsetsKey, Option<Vec<u8>>) {
        let key = OffsetsKey::Group {
            group: group.id.clone(),
        };
        (key, Some(offsets_record::encode_group_value(&group.classic.to_value())))
    }

    /// Carry out what a transition asked for: persist metadata, start a timer.
    pub(super) fn apply_effects(self: &Arc<Self>, group: &Group, effects: Effects) {
        if effects.persist {
            match self.append(&group.id, &[Self::group_record(group)]) {
                Ok(partition) => {
                    tokio::spawn(async move {
                        if let Err(e) = CoordinatorLog::flush(partition).await {
                            tracing::warn!(error = %e, "flushing group metadata failed");
                        }
                    });
                }
                Err(e) => tracing::warn!(group = %group.id, error = %e, "writing group metadata failed"),
            }
        }
        if let Some((rebalance_id, wake_at)) = effects.timer {
            let coordinator = self.clone();
            let group_id = group.id.clone();
            tokio::spawn(async move { coordinator.rebalance_timer(group_id, rebalance_id, wake_at).await });
        }
    }

    async fn rebalance_timer(self: Arc<Self>, group_id: String, rebalance_id: u64, mut wake_at: Instant) {
        loop {
            tokio::time::sleep_until(wake_at).await;
            let Ok(Some(group_ref)) = self.group(&group_id) else {
                return;
            };
            let now = Instant::now();
            let mut group = self.lock_at(&group_ref, now);
            let (next, effects) = group.classic.on_timer(rebalance_id, now, self.now_ms());
            self.apply_effects(&group, effects);
            match next {
                Some(next) => wake_at = next,
                None => return,
            }
        }
    }

    pub async fn join_group(self: &Arc<Self>, request: JoinGroup) -> JoinResult {
        if request.group_id.is_empty() {
            return JoinResult::error(BrokerError::InvalidGroupId, &request.member_id);
        }
        let member_id = request.member_id.clone();
        let receiver = {
            let group_ref = match self.group_or_create(&request.group_id) {
                Ok(group_ref) => group_ref,
                Err(e) => return JoinResult::error(e, &member_id),
            };
            let now = Instant::now();
            let mut group = self.lock_at(&group_ref, now);
            if group.is_consumer_protocol() {
                return JoinResult::error(BrokerError::InconsistentGroupProtocol, &member_id);
            }
            let (outcome, effects) = group.classic.join(request, &self.config.classic(), now, self.now_ms());
            self.apply_effects(&group, effects);
            match outcome {
                JoinOutcome::Now(result) => return result,
                JoinOutcome::Wait(receiver) => receiver,
            }
        };
        receiver
            .await
            .unwrap_or_else(|_| JoinResult::error(BrokerError::RebalanceInProgress, &member_id))
    }

    pub async fn sync_group(self: &Arc<Self>, request: SyncGroup) -> SyncResult {
        let group_ref = match self.group(&request.group_id) {
            Ok(Some(group_ref)) => group_ref,
            Ok(None) => return SyncResult::error(BrokerError::UnknownMemberId),
            Err(e) => return SyncResult::error(e),
        };
        let receiver = {
            let now = Instant::now();
            let mut group = self.lock_at(&group_ref, now);
            let (outcome, effects) = group.classic.sync(request, now, self.now_ms());
            self.apply_effects(&group, effects);
            match outcome {
                SyncOutcome::Now(result) => return result,
                SyncOutcome::Wait(receiver) => receiver,
            }
        };
        receiver
            .await
            .unwrap_or_else(|_| SyncResult::error(BrokerError::RebalanceInProgress))
    }

    pub fn heartbeat(
        self: &Arc<Self>,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<()> {
        let group_ref = self.group(group_id)?.ok_or(BrokerError::UnknownMemberId)?;
        let now = Instant::now();
        let mut group = self.lock_at(&group_ref, now);
        group.classic.heartbeat(member_id, instance_id, generation_id, now)
    }

    /// LeaveGroup: each leaving member gets its own result.
    pub fn leave_group(self: &Arc<Self>, group_id: &str, members: &[LeavingMember]) -> Result<Vec<Result<()>>> {
        let group_ref = self.group(group_id)?.ok_or(BrokerError::UnknownMemberId)?;
        let now = Instant::now();
        let mut group = self.lock_at(&group_ref, now);
        let mut results = Vec::with_capacity(members.len());
        let mut leaving = Vec::new();
        for member in members {
            match group
                .classic
                .leave(&member.member_id, member.group_instance_id.as_deref())
            {
                Ok(resolved) => {
                    if !resolved.is_empty() {
                        leaving.push(resolved);
                    }
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        let effects = group
            .classic
            .remove_members(&leaving, &self.config.classic(), now, self.now_ms());
        self.apply_effects(&group, effects);
        Ok(results)
    }

    /// DeleteGroups: only groups without members; their records become tombstones.
    pub async fn delete_group(self: &Arc<Self>, group_id: &str) -> Result<()> {
        let group_ref = self.group(group_id)?.ok_or(BrokerError::GroupIdNotFound)?;
        let partition = {
            let mut group = self.lock_at(&group_ref, Instant::now());
            if !group.is_empty() {
                return Err(BrokerError::NonEmptyGroup);
            }
            let mut records: Vec<(OffsetsKey, Option<Vec<u8>>)> = group
                .offsets
                .keys()
                .map(|key| {
                    (
                        OffsetsKey::Offset {
                            group: group_id.to_string(),
                            topic: key.topic.clone(),
                            partition: key.partition,
                        },
                        None,
                    )
                })
                .collect();
            records.push((
                OffsetsKey::Group {
                    group: group_id.to_string(),
                },
                None,
            ));
            let partition = self.append(group_id, &records)?;
            group.offsets.clear();
            group.classic.state = GroupState::Dead;
            self.groups().remove(group_id);
            partition
        };
        CoordinatorLog::flush(partition).await
    }

    /// Every user topic, as the KIP-848 assignors see them.
    pub(super) fn topic_infos(&self) -> Vec<TopicInfo> {
        self.broker
            .topics()
            .iter()
            .filter(|t| !t.is_internal())
            .map(|t| TopicInfo {
                name: t.name().to_string(),
                id: t.id(),
                partitions: t.partition_count(),
            })
            .collect()
    }

    /// The consumer protocol's settings for one group: its group configs
    /// (`consumer.session.timeout.ms`, `consumer.heartbeat.interval.ms`) over the broker's.
    pub(super) fn consumer_config(&self, group: &str) -> ConsumerConfig {
        let mut config = self.config.consumer();
        let own = self.broker.group_configs(group);
        let number = |name: &str| own.get(name).and_then(|v| v.trim().parse::<i32>().ok());
        if let Some(ms) = number("consumer.session.timeout.ms") {
            config.session_timeout_ms = ms;
        }
        if let Some(ms) = number("consumer.heartbeat.interval.ms") {
            config.heartbeat_interval_ms = ms;
        }
        config
    }

    /// ConsumerGroupHeartbeat (KIP-848): join, stay, reconcile or leave.
    pub fn consumer_heartbeat(self: &Arc<Self>, request: ConsumerHeartbeat) -> ConsumerHeartbeatResult {
        let fail = |e: BrokerError| ConsumerHeartbeatResult {
            error: Some(e),
            member_id: request.member_id.clone(),
            member_epoch: request.member_epoch,
            heartbeat_interval_ms: self.config.consumer_heartbeat_interval_ms,
            assignment: None,
        };
        if request.group_id.is_empty() {
            return fail(BrokerError::InvalidGroupId);
        }
        let group_ref = match self.group_or_create(&request.group_id) {
            Ok(group_ref) => group_ref,
            Err(e) => return fail(e),
        };
        let topics = self.topic_infos();
        let now = Instant::now();
        let mut group = self.lock_at(&group_ref, now);
        if !group.classic.is_empty() {
            return fail(BrokerError::GroupIdNotFound);
        }
        let result = group
            .consumer
            .heartbeat(request.clone(), &topics, &self.consumer_config(&request.group_id), now);
        if group.consumer.is_empty() {
            group.classic.state_timestamp_ms = self.now_ms();
        }
        result
    }

    /// Remove members whose session ran out (and rebalance their groups), then re-arm
    /// the session timer with the earliest deadline left.
    pub fn expire_sessions(self: &Arc<Self>) {
        // Forget the old deadline first (before listing the groups, so a group armed in
        // between is listed): releasing each group below arms the timer with that
        // group's next one, and concurrent requests can only lower it.
        *self.sessions.next() = None;
        let groups: Vec<GroupRef> = self.groups().values().cloned().collect();
        let now = Instant::now();
        for group_ref in groups {
            drop(self.lock_at(&group_ref, now));
        }
    }

    /// Session expiry, at each deadline, and offset retention until shutdown.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let retention_every = Duration::from_millis(self.config.offsets_retention_check_interval_ms.max(10));
        let mut retention = tokio::time::interval(retention_every);
        retention.tick().await;
        loop {
            let next = *self.sessions.next();
            let deadline = async move {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = deadline => self.expire_sessions(),
                // An earlier deadline was armed: sleep again until that one.
                _ = self.sessions.wake.notified() => {}
                _ = retention.tick() => {
                    let expired = self.expire_offsets();
                    if expired > 0 {
                        tracing::info!(offsets = expired, "expired committed offsets");
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod session_tests;
