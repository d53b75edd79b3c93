//! `GroupCoordinator`: owns every group on this node, routes requests to their state
//! machines, writes their records to `__consumer_offsets` and runs the timers
//! (rebalance deadlines, session expiry, offset retention).
//!
//! Locking: the group map and each group have their own `std::sync::Mutex`, never held
//! across an `.await`. Records of a group are appended while its lock is held, so the
//! log's order is the order in which the state changed; fsync happens after the lock
//! is released.
//!
//! Time: a request that looks at a group first applies what the clock says happened
//! (sessions that ran out, a due rebalance step) at the request's instant, so answers
//! never depend on when a timer task last ran. The session timer sleeps until the
//! earliest deadline of all groups; releasing a group's lock re-arms it when that
//! group now has an earlier one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use strom_log::RecordBatchBuilder;
use tokio::sync::{watch, Notify};
use tokio::time::{Duration, Instant};

use super::classic::{
    ClassicConfig, ClassicGroup, Effects, JoinGroup, JoinOutcome, JoinResult, SyncGroup, SyncOutcome, SyncResult,
};
use super::consumer::{
    Assignment, ConsumerConfig, ConsumerGroup, ConsumerHeartbeat, ConsumerHeartbeatResult, TopicInfo,
};
use super::offsets_record::{self, OffsetValue, OffsetsKey};
use super::GroupState;
use crate::broker::{AppendOrigin, Broker};
use crate::error::{BrokerError, Result};
use crate::partition::Partition;
use crate::topic::Topic;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Settings of the coordinator, with Kafka's names in the binary's configuration.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `offsets.topic.num.partitions`
    pub offsets_topic_partitions: i32,
    /// `offsets.topic.segment.bytes`
    pub offsets_topic_segment_bytes: i64,
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// `group.max.size`
    pub max_size: usize,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes`, in ms
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`
    pub offsets_retention_check_interval_ms: u64,
    /// `group.consumer.heartbeat.interval.ms` (KIP-848 groups)
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.session.timeout.ms` (KIP-848 groups)
    pub consumer_session_timeout_ms: i32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            offsets_topic_partitions: 50,
            offsets_topic_segment_bytes: 104_857_600,
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            offset_metadata_max_bytes: 4096,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            consumer_heartbeat_interval_ms: 5000,
            consumer_session_timeout_ms: 45_000,
        }
    }
}

impl GroupConfig {
    fn classic(&self) -> ClassicConfig {
        ClassicConfig {
            initial_rebalance_delay_ms: self.initial_rebalance_delay_ms,
            min_session_timeout_ms: self.min_session_timeout_ms,
            max_session_timeout_ms: self.max_session_timeout_ms,
            max_size: self.max_size,
        }
    }

    fn consumer(&self) -> ConsumerConfig {
        ConsumerConfig {
            heartbeat_interval_ms: self.consumer_heartbeat_interval_ms,
            session_timeout_ms: self.consumer_session_timeout_ms,
            max_size: self.max_size,
        }
    }
}

/// One group: its membership state and its committed offsets.
#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub classic: ClassicGroup,
    pub consumer: ConsumerGroup,
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
    /// Offsets committed inside open transactions, by producer id: applied when the
    /// transaction commits, dropped when it aborts.
    pub pending_txn_offsets: BTreeMap<i64, BTreeMap<(String, i32), OffsetValue>>,
}

impl Group {
    fn new(id: &str) -> Group {
        Group {
            id: id.to_string(),
            classic: ClassicGroup::default(),
            consumer: ConsumerGroup::default(),
            offsets: BTreeMap::new(),
            pending_txn_offsets: BTreeMap::new(),
        }
    }

    /// A group with members speaks one protocol; KIP-848 when its consumer side has members.
    fn is_consumer_protocol(&self) -> bool {
        !self.consumer.is_empty()
    }

    fn is_empty(&self) -> bool {
        self.classic.is_empty() && self.consumer.is_empty()
    }

    fn state(&self) -> GroupState {
        self.classic.state
    }

    /// When the clock next changes this group's membership on its own.
    fn next_deadline(&self) -> Option<Instant> {
        match (self.classic.next_deadline(), self.consumer.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Apply (commit) or drop (abort) the offsets a transaction committed.
    fn complete_txn(&mut self, producer_id: i64, commit: bool) {
        if let Some(offsets) = self.pending_txn_offsets.remove(&producer_id) {
            if commit {
                self.offsets.extend(offsets);
            }
        }
    }

    /// The state as DescribeGroups and ListGroups name it.
    pub fn state_name(&self) -> &'static str {
        if self.is_consumer_protocol() {
            self.consumer.state_name()
        } else {
            self.classic.state.name()
        }
    }

    pub fn group_type(&self) -> &'static str {
        if self.is_consumer_protocol() {
            "consumer"
        } else {
            "classic"
        }
    }
}

/// An OffsetCommit in the broker's terms.
#[derive(Debug, Clone, Default)]
pub struct OffsetCommit {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// (topic, partition, offset, leader epoch, metadata)
    pub offsets: Vec<(String, i32, i64, i32, Option<String>)>,
}

#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: &'static str,
    pub group_type: &'static str,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Debug, Clone)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
    pub group_type: &'static str,
}

/// A member of a KIP-848 group, for ConsumerGroupDescribe.
#[derive(Debug, Clone)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: Assignment,
    pub target_assignment: Assignment,
}

#[derive(Debug, Clone)]
pub struct ConsumerGroupDescription {
    pub group_id: String,
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<ConsumerMemberDescription>,
}

type GroupRef = Arc<Mutex<Group>>;

pub struct GroupCoordinator {
    broker: Arc<Broker>,
    config: GroupConfig,
    groups: Mutex<HashMap<String, GroupRef>>,
    sessions: SessionTimer,
}

fn lock(group: &GroupRef) -> MutexGuard<'_, Group> {
    group.lock().unwrap_or_else(|e| e.into_inner())
}

/// The instant the session timer sleeps until: the earliest deadline it was told of.
#[derive(Default)]
struct SessionTimer {
    next: Mutex<Option<Instant>>,
    wake: Notify,
}

impl SessionTimer {
    fn next(&self) -> MutexGuard<'_, Option<Instant>> {
        self.next.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wake earlier when `deadline` comes before the instant the timer sleeps until.
    fn arm(&self, deadline: Option<Instant>) {
        let Some(deadline) = deadline else { return };
        let mut next = self.next();
        if next.is_none_or(|at| deadline < at) {
            *next = Some(deadline);
            self.wake.notify_one();
        }
    }
}

/// A locked group; releasing it hands the group's next deadline to the session
/// timer, whatever the request did to its members.
struct LockedGroup<'a> {
    group: MutexGuard<'a, Group>,
    sessions: &'a SessionTimer,
}

impl Deref for LockedGroup<'_> {
    type Target = Group;

    fn deref(&self) -> &Group {
        &self.group
    }
}

impl DerefMut for LockedGroup<'_> {
    fn deref_mut(&mut self) -> &mut Group {
        &mut self.group
    }
}

impl Drop for LockedGroup<'_> {
    fn drop(&mut self) {
        self.sessions.arm(self.group.next_deadline());
    }
}

impl GroupCoordinator {
    /// Create the coordinator and rebuild its state from `__consumer_offsets`.
    pub fn open(broker: Arc<Broker>, config: GroupConfig) -> Result<Arc<GroupCoordinator>> {
        let coordinator = Arc::new(GroupCoordinator {
            broker,
            config,
            groups: Mutex::new(HashMap::new()),
            sessions: SessionTimer::default(),
        });
        coordinator.load()?;
        Ok(coordinator)
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    fn groups(&self) -> MutexGuard<'_, HashMap<String, GroupRef>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn group(&self, id: &str) -> Option<GroupRef> {
        self.groups().get(id).cloned()
    }

    fn group_or_create(&self, id: &str) -> GroupRef {
        self.groups()
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(Group::new(id))))
            .clone()
    }

    fn now_ms(&self) -> i64 {
        self.broker.clock().now_ms()
    }

    /// Lock a group as of `now`: members whose session deadline is at or before `now`
    /// are gone and a due rebalance step has run, exactly as if the timers had fired.
    fn lock_at<'a>(self: &'a Arc<Self>, group_ref: &'a GroupRef, now: Instant) -> LockedGroup<'a> {
        let mut group = LockedGroup {
            group: lock(group_ref),
            sessions: &self.sessions,
        };
        self.expire_members(&mut group, now);
        group
    }

    /// Remove the members of one group whose session ran out by `now` (and rebalance
    /// the rest), then run the rebalance timer's step if it is due.
    fn expire_members(self: &Arc<Self>, group: &mut Group, now: Instant) {
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

    /// The offsets topic, created (compacted) on first use as Kafka does.
    pub fn offsets_topic(&self) -> Result<Arc<Topic>> {
        let partitions = self.config.offsets_topic_partitions;
        self.broker
            .internal_topic(OFFSETS_TOPIC, partitions, self.config.offsets_topic_segment_bytes)
    }

    fn partition_of(&self, group_id: &str) -> Result<(Arc<Topic>, Arc<Partition>)> {
        let topic = self.offsets_topic()?;
        let index = offsets_record::partition_for(group_id, topic.partition_count());
        let partition = topic.partition(index).ok_or(BrokerError::CoordinatorNotAvailable)?;
        Ok((topic, partition))
    }

    /// Append key/value records for a group (None = tombstone); returns the partition to flush.
    fn append(&self, group_id: &str, records: &[(OffsetsKey, Option<Vec<u8>>)]) -> Result<Arc<Partition>> {
        self.append_as(group_id, records, None)
    }

    /// Append records, as part of a producer's transaction when `producer` is given.
    fn append_as(
        &self,
        group_id: &str,
        records: &[(OffsetsKey, Option<Vec<u8>>)],
        producer: Option<(i64, i16)>,
    ) -> Result<Arc<Partition>> {
        let (topic, partition) = self.partition_of(group_id)?;
        if records.is_empty() {
            return Ok(partition);
        }
        let now = self.now_ms();
        let mut builder = match producer {
            Some((id, epoch)) => RecordBatchBuilder::new().producer(id, epoch, -1).flags(true, false),
            None => RecordBatchBuilder::new(),
        };
        for (key, value) in records {
            builder.push(now, Some(&offsets_record::encode_key(key)), value.as_deref());
        }
        let batch = builder.build()?;
        self.broker
            .append(&topic, &partition, &batch, AppendOrigin::Coordinator)?;
        Ok(partition)
    }

    async fn flush(partition: Arc<Partition>) -> Result<()> {
        match tokio::task::spawn_blocking(move || partition.flush()).await {
            Ok(result) => result.map(|_| ()),
            Err(e) => Err(BrokerError::Storage(e.to_string())),
        }
    }

    fn group_record(group: &Group) -> (OffsetsKey, Option<Vec<u8>>) {
        let key = OffsetsKey::Group {
            group: group.id.clone(),
        };
        (key, Some(offsets_record::encode_group_value(&group.classic.to_value())))
    }

    /// Carry out what a transition asked for: persist metadata, start a timer.
    fn apply_effects(self: &Arc<Self>, group: &Group, effects: Effects) {
        if effects.persist {
            match self.append(&group.id, &[Self::group_record(group)]) {
                Ok(partition) => {
                    tokio::spawn(async move {
                        if let Err(e) = Self::flush(partition).await {
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
            let Some(group_ref) = self.group(&group_id) else { return };
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
        if let Err(e) = self.partition_of(&request.group_id) {
            return JoinResult::error(e, &request.member_id);
        }
        let member_id = request.member_id.clone();
        let receiver = {
            let group_ref = self.group_or_create(&request.group_id);
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
        let Some(group_ref) = self.group(&request.group_id) else {
            return SyncResult::error(BrokerError::UnknownMemberId);
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
        let group_ref = self.group(group_id).ok_or(BrokerError::UnknownMemberId)?;
        let now = Instant::now();
        let mut group = self.lock_at(&group_ref, now);
        group.classic.heartbeat(member_id, instance_id, generation_id, now)
    }

    /// LeaveGroup: each (member id, instance id) gets its own result.
    pub fn leave_group(
        self: &Arc<Self>,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<()>>> {
        let group_ref = self.group(group_id).ok_or(BrokerError::UnknownMemberId)?;
        let now = Instant::now();
        let mut group = self.lock_at(&group_ref, now);
        let mut results = Vec::with_capacity(members.len());
        let mut leaving = Vec::new();
        for (member_id, instance_id) in members {
            match group.classic.leave(member_id, instance_id.as_deref()) {
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

    /// OffsetCommit: group-level checks, then per-partition results; durable on return.
    pub async fn commit_offsets(self: &Arc<Self>, commit: OffsetCommit) -> Result<Vec<Result<()>>> {
        self.commit(&commit, None).await
    }

    /// Write committed offsets: directly (OffsetCommit), or as part of a producer's
    /// transaction (TxnOffsetCommit), pending until the transaction ends.
    async fn commit(self: &Arc<Self>, commit: &OffsetCommit, producer: Option<(i64, i16)>) -> Result<Vec<Result<()>>> {
        if commit.group_id.is_empty() {
            return Err(BrokerError::InvalidGroupId);
        }
        let outside_group = commit.generation_id < 0 && commit.member_id.is_empty();
        let (partition, results) = {
            let group_ref = if outside_group || producer.is_some() {
                self.group_or_create(&commit.group_id)
            } else {
                self.group(&commit.group_id).ok_or(BrokerError::IllegalGeneration)?
            };
            let now_instant = Instant::now();
            let mut group = self.lock_at(&group_ref, now_instant);
            // Transactional commits name a member only when the producer sends one.
            if !(producer.is_some() && outside_group) {
                if group.is_consumer_protocol() {
                    group.consumer.check_commit(&commit.member_id, commit.generation_id)?;
                } else {
                    group.classic.check_commit(
                        &commit.member_id,
                        commit.group_instance_id.as_deref(),
                        commit.generation_id,
                        now_instant,
                    )?;
                }
            }
            let now = self.now_ms();
            let mut results = Vec::with_capacity(commit.offsets.len());
            let mut records = Vec::new();
            let mut accepted = Vec::new();
            for (topic, partition, offset, leader_epoch, metadata) in &commit.offsets {
                let metadata = metadata.clone().unwrap_or_default();
                let result = if metadata.len() > self.config.offset_metadata_max_bytes {
                    Err(BrokerError::OffsetMetadataTooLarge(metadata.len()))
                } else if self.broker.partition(topic, *partition).is_err() {
                    Err(BrokerError::UnknownTopicOrPartition)
                } else {
                    let value = OffsetValue {
                        offset: *offset,
                        leader_epoch: *leader_epoch,
                        metadata,
                        commit_timestamp: now,
                    };
                    let key = OffsetsKey::Offset {
                        group: commit.group_id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                    };
                    records.push((key, Some(offsets_record::encode_offset_value(&value))));
                    accepted.push(((topic.clone(), *partition), value));
                    Ok(())
                };
                results.push(result);
            }
            let partition = self.append_as(&commit.group_id, &records, producer)?;
            match producer {
                Some((producer_id, _)) => group
                    .pending_txn_offsets
                    .entry(producer_id)
                    .or_default()
                    .extend(accepted),
                None => group.offsets.extend(accepted),
            }
            (partition, results)
        };
        Self::flush(partition).await?;
        Ok(results)
    }

    /// OffsetFetch: committed offsets of the given partitions, or of all when `None`.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<(String, i32, Option<OffsetValue>)> {
        let group = self.group(group_id);
        let guard = group.as_ref().map(lock);
        let offsets = guard.as_ref().map(|g| &g.offsets);
        match topics {
            Some(topics) => topics
                .iter()
                .flat_map(|(topic, partitions)| {
                    partitions.iter().map(move |p| {
                        let value = offsets.and_then(|o| o.get(&(topic.clone(), *p))).cloned();
                        (topic.clone(), *p, value)
                    })
                })
                .collect(),
            None => offsets
                .map(|o| o.iter().map(|((t, p), v)| (t.clone(), *p, Some(v.clone()))).collect())
                .unwrap_or_default(),
        }
    }

    /// TxnOffsetCommit: offsets written as part of a transaction, visible on its commit.
    pub async fn txn_offset_commit(
        self: &Arc<Self>,
        commit: OffsetCommit,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<Vec<Result<()>>> {
        self.commit(&commit, Some((producer_id, producer_epoch))).await
    }

    /// After the transaction coordinator wrote a marker to `__consumer_offsets`
    /// partition `index`: apply or drop the producer's pending offsets there.
    pub fn complete_txn_offsets(&self, index: i32, producer_id: i64, commit: bool) {
        let partitions = self.config.offsets_topic_partitions;
        let groups: Vec<GroupRef> = self.groups().values().cloned().collect();
        for group_ref in groups {
            let mut group = lock(&group_ref);
            let here = self
                .broker
                .topic(OFFSETS_TOPIC)
                .map_or(partitions, |t| t.partition_count());
            if offsets_record::partition_for(&group.id, here) == index {
                group.complete_txn(producer_id, commit);
            }
        }
    }

    /// True when a transaction has an undecided commit for this partition (OffsetFetch
    /// with require_stable answers UNSTABLE_OFFSET_COMMIT then).
    pub fn has_pending_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        let Some(group_ref) = self.group(group_id) else {
            return false;
        };
        let group = lock(&group_ref);
        let key = (topic.to_string(), partition);
        group
            .pending_txn_offsets
            .values()
            .any(|offsets| offsets.contains_key(&key))
    }

    /// The `__consumer_offsets` partition index of a group.
    pub fn offsets_partition_index(&self, group_id: &str) -> Result<i32> {
        Ok(self.partition_of(group_id)?.1.index())
    }

    /// OffsetDelete: refused for topics the group's members subscribe to.
    pub async fn delete_offsets(
        self: &Arc<Self>,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Result<()>>> {
        let group_ref = self.group(group_id).ok_or(BrokerError::GroupIdNotFound)?;
        let (flush, results) = {
            let mut group = self.lock_at(&group_ref, Instant::now());
            let subscribed = if group.is_consumer_protocol() {
                group.consumer.subscribed_topics(&self.topic_infos())
            } else if group.state() == GroupState::Empty {
                BTreeSet::new()
            } else {
                group.classic.subscribed_topics()
            };
            let unknown_subscriptions =
                !group.is_consumer_protocol() && group.state() != GroupState::Empty && subscribed.is_empty();
            let mut records = Vec::new();
            let mut results = Vec::new();
            for (topic, partition) in partitions {
                if subscribed.contains(topic) || unknown_subscriptions {
                    results.push(Err(BrokerError::GroupSubscribedToTopic));
                    continue;
                }
                if group.offsets.remove(&(topic.clone(), *partition)).is_some() {
                    let key = OffsetsKey::Offset {
                        group: group_id.to_string(),
                        topic: topic.clone(),
                        partition: *partition,
                    };
                    records.push((key, None));
                }
                results.push(Ok(()));
            }
            (self.append(group_id, &records)?, results)
        };
        Self::flush(flush).await?;
        Ok(results)
    }

    pub fn describe_group(self: &Arc<Self>, group_id: &str) -> Option<GroupDescription> {
        let group_ref = self.group(group_id)?;
        let group = self.lock_at(&group_ref, Instant::now());
        if group.is_consumer_protocol() {
            let members = group
                .consumer
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: Bytes::new(),
                    assignment: Bytes::new(),
                })
                .collect();
            return Some(GroupDescription {
                group_id: group.id.clone(),
                state: group.state_name(),
                group_type: group.group_type(),
                protocol_type: "consumer".to_string(),
                protocol_name: group.consumer.assignor.clone(),
                members,
            });
        }
        let protocol = group.classic.protocol_name.clone().unwrap_or_default();
        let members = group
            .classic
            .members
            .values()
            .map(|m| MemberDescription {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m
                    .protocols
                    .iter()
                    .find(|(n, _)| *n == protocol)
                    .map(|(_, b)| b.clone())
                    .unwrap_or_default(),
                assignment: m.assignment.clone(),
            })
            .collect();
        Some(GroupDescription {
            group_id: group.id.clone(),
            state: group.state_name(),
            group_type: group.group_type(),
            protocol_type: group.classic.protocol_type.clone().unwrap_or_default(),
            protocol_name: if group.state() == GroupState::Stable {
                protocol
            } else {
                String::new()
            },
            members,
        })
    }

    pub fn list_groups(self: &Arc<Self>) -> Vec<GroupListing> {
        let groups: Vec<GroupRef> = self.groups().values().cloned().collect();
        let now = Instant::now();
        let mut listings: Vec<GroupListing> = groups
            .iter()
            .map(|g| {
                let group = self.lock_at(g, now);
                GroupListing {
                    group_id: group.id.clone(),
                    protocol_type: group
                        .classic
                        .protocol_type
                        .clone()
                        .unwrap_or_else(|| "consumer".to_string()),
                    state: group.state_name(),
                    group_type: group.group_type(),
                }
            })
            .collect();
        listings.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listings
    }

    /// DeleteGroups: only groups without members; their records become tombstones.
    pub async fn delete_group(self: &Arc<Self>, group_id: &str) -> Result<()> {
        let group_ref = self.group(group_id).ok_or(BrokerError::GroupIdNotFound)?;
        let partition = {
            let mut group = self.lock_at(&group_ref, Instant::now());
            if !group.is_empty() {
                return Err(BrokerError::NonEmptyGroup);
            }
            let mut records: Vec<(OffsetsKey, Option<Vec<u8>>)> = group
                .offsets
                .keys()
                .map(|(topic, partition)| {
                    (
                        OffsetsKey::Offset {
                            group: group_id.to_string(),
                            topic: topic.clone(),
                            partition: *partition,
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
        Self::flush(partition).await
    }

    /// Every user topic, as the KIP-848 assignors see them.
    fn topic_infos(&self) -> Vec<TopicInfo> {
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

    /// ConsumerGroupHeartbeat (KIP-848): join, stay, reconcile or leave.
    /// The consumer protocol's settings for one group: its group configs
    /// (`consumer.session.timeout.ms`, `consumer.heartbeat.interval.ms`) over the broker's.
    fn consumer_config(&self, group: &str) -> ConsumerConfig {
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
        if let Err(e) = self.partition_of(&request.group_id) {
            return fail(e);
        }
        let topics = self.topic_infos();
        let group_ref = self.group_or_create(&request.group_id);
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

    /// ConsumerGroupDescribe: a KIP-848 group's epochs, members and assignments.
    pub fn describe_consumer_group(self: &Arc<Self>, group_id: &str) -> Result<ConsumerGroupDescription> {
        let group_ref = self.group(group_id).ok_or(BrokerError::GroupIdNotFound)?;
        let group = self.lock_at(&group_ref, Instant::now());
        if !group.classic.is_empty() {
            return Err(BrokerError::GroupIdNotFound);
        }
        let consumer = &group.consumer;
        Ok(ConsumerGroupDescription {
            group_id: group.id.clone(),
            state: group.state_name(),
            group_epoch: consumer.group_epoch,
            assignment_epoch: consumer.assignment_epoch,
            assignor: consumer.assignor.clone(),
            members: consumer
                .members
                .values()
                .map(|m| ConsumerMemberDescription {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.member_epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_topic_names.iter().cloned().collect(),
                    subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                    assignment: m.assigned.clone(),
                    target_assignment: consumer.target_of(&m.member_id),
                })
                .collect(),
        })
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

    /// Drop committed offsets of empty groups older than `offsets.retention.minutes`
    /// (counted from when the group became empty and from the commit), as Kafka does.
    pub fn expire_offsets(self: &Arc<Self>) -> usize {
        let now = self.now_ms();
        let retention = self.config.offsets_retention_ms;
        let groups: Vec<GroupRef> = self.groups().values().cloned().collect();
        let mut expired_total = 0;
        let now_instant = Instant::now();
        for group_ref in groups {
            let mut group = self.lock_at(&group_ref, now_instant);
            if !group.is_empty()
                || group.state() != GroupState::Empty
                || group.classic.state_timestamp_ms + retention > now
            {
                continue;
            }
            let expired: Vec<(String, i32)> = group
                .offsets
                .iter()
                .filter(|(_, v)| v.commit_timestamp + retention <= now)
                .map(|(k, _)| k.clone())
                .collect();
            let mut records: Vec<(OffsetsKey, Option<Vec<u8>>)> = expired
                .iter()
                .map(|(t, p)| {
                    (
                        OffsetsKey::Offset {
                            group: group.id.clone(),
                            topic: t.clone(),
                            partition: *p,
                        },
                        None,
                    )
                })
                .collect();
            for key in &expired {
                group.offsets.remove(key);
            }
            let drop_group = group.offsets.is_empty();
            if drop_group {
                records.push((
                    OffsetsKey::Group {
                        group: group.id.clone(),
                    },
                    None,
                ));
            }
            if records.is_empty() {
                continue;
            }
            if let Err(e) = self.append(&group.id, &records) {
                tracing::warn!(group = %group.id, error = %e, "writing expired offsets failed");
                continue;
            }
            expired_total += expired.len();
            if drop_group {
                let id = group.id.clone();
                group.classic.state = GroupState::Dead;
                drop(group);
                self.groups().remove(&id);
            }
        }
        expired_total
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

    /// Rebuild every group from `__consumer_offsets` (latest record per key wins).
    fn load(&self) -> Result<()> {
        let Some(topic) = self.broker.topic(OFFSETS_TOPIC) else {
            return Ok(());
        };
        let now = Instant::now();
        let mut groups: HashMap<String, Group> = HashMap::new();
        let mut records = 0usize;
        for partition in topic.partitions() {
            partition.for_each_batch(|header, batch| {
                if header.is_control() {
                    if let Some(commit) = crate::partition::marker_type(batch) {
                        for group in groups.values_mut() {
                            group.complete_txn(header.producer_id, commit);
                        }
                    }
                    return Ok(());
                }
                let pending = header.is_transactional().then_some(header.producer_id);
                for (key, value) in key_values(batch)? {
                    records += 1;
                    apply_record(&mut groups, Some(&key), value.as_deref(), now, pending);
                }
                Ok(())
            })?;
        }
        groups.retain(|_, g| !(g.classic.is_empty() && g.offsets.is_empty() && g.classic.generation_id == 0));
        tracing::info!(groups = groups.len(), records, "loaded consumer groups");
        let mut map = self.groups();
        for (id, group) in groups {
            self.sessions.arm(group.next_deadline());
            map.insert(id, Arc::new(Mutex::new(group)));
        }
        Ok(())
    }
}

/// A record's key and value (None = tombstone).
type KeyValue = (Vec<u8>, Option<Vec<u8>>);

/// The keyed records of one stored batch (records without a key are not ours).
fn key_values(batch: &[u8]) -> Result<Vec<KeyValue>> {
    let (header, section) = strom_log::record::decompress_records_section(batch)?;
    let entries = strom_log::record::decode_record_entries(&header, &section)?;
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some(key) = entry.key else { continue };
        let key_bytes = section.get(key.clone()).unwrap_or_default().to_vec();
        let value = match entry.value {
            Some(range) => Some(
                section
                    .get(range)
                    .ok_or_else(|| BrokerError::CorruptMessage("record value".into()))?
                    .to_vec(),
            ),
            None => None,
        };
        out.push((key_bytes, value));
    }
    Ok(out)
}

fn apply_record(
    groups: &mut HashMap<String, Group>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    now: Instant,
    pending_txn: Option<i64>,
) {
    let Some(key) = key.and_then(offsets_record::decode_key) else {
        return;
    };
    match key {
        OffsetsKey::Offset {
            group,
            topic,
            partition,
        } => {
            let entry = groups.entry(group.clone()).or_insert_with(|| Group::new(&group));
            if let Some(producer_id) = pending_txn {
                if let Some(v) = value.and_then(offsets_record::decode_offset_value) {
                    entry
                        .pending_txn_offsets
                        .entry(producer_id)
                        .or_default()
                        .insert((topic, partition), v);
                }
                return;
            }
            match value.and_then(offsets_record::decode_offset_value) {
                Some(v) => {
                    entry.offsets.insert((topic, partition), v);
                }
                None => {
                    entry.offsets.remove(&(topic, partition));
                }
            }
        }
        OffsetsKey::Group { group } => match value.and_then(offsets_record::decode_group_value) {
            Some(v) => {
                let entry = groups.entry(group.clone()).or_insert_with(|| Group::new(&group));
                entry.classic = ClassicGroup::restore(&v, now);
            }
            None => {
                if let Some(entry) = groups.get_mut(&group) {
                    entry.classic = ClassicGroup::default();
                }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{BrokerConfig, NewTopic};
    use strom_log::ManualClock;

    fn commit(group: &str, offset: i64, metadata: &str) -> OffsetCommit {
        OffsetCommit {
            group_id: group.into(),
            generation_id: -1,
            offsets: vec![("t".into(), 0, offset, -1, Some(metadata.into()))],
            ..Default::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn offsets_survive_reload_and_expire_after_retention() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let config = GroupConfig {
            offsets_topic_partitions: 2,
            offsets_retention_ms: 60_000,
            ..Default::default()
        };
        {
            let broker = Broker::open_with_clock(BrokerConfig::new(dir.path()), clock.clone()).unwrap();
            broker
                .create_topic(
                    NewTopic {
                        name: "t".into(),
                        num_partitions: 1,
                        replication_factor: 1,
                        ..Default::default()
                    },
                    false,
                )
                .unwrap();
            let groups = GroupCoordinator::open(broker.clone(), config.clone()).unwrap();
            for (group, offset) in [("old", 5), ("kept", 7), ("old", 9)] {
                let results = groups.commit_offsets(commit(group, offset, "m")).await.unwrap();
                assert!(results[0].is_ok());
            }
            broker.shutdown().unwrap();
        }
        let broker = Broker::open_with_clock(BrokerConfig::new(dir.path()), clock.clone()).unwrap();
        let groups = GroupCoordinator::open(broker.clone(), config).unwrap();
        let fetched = groups.fetch_offsets("old", None);
        assert_eq!(fetched.len(), 1);
        assert_eq!(
            fetched[0].2.as_ref().map(|v| (v.offset, v.metadata.as_str())),
            Some((9, "m")),
            "latest commit wins"
        );

        clock.advance_ms(30_000);
        groups.commit_offsets(commit("kept", 8, "")).await.unwrap();
        clock.advance_ms(40_000);
        assert_eq!(groups.expire_offsets(), 1, "only the commit older than retention");
        assert!(groups.fetch_offsets("old", None).is_empty());
        assert_eq!(groups.fetch_offsets("kept", None).len(), 1);
        assert!(
            groups.describe_group("old").is_none(),
            "a group with no offsets left is deleted"
        );
    }
}

#[cfg(test)]
mod session_tests {
    //! Session expiry on the (paused, so exact) tokio clock: members are gone at their
    //! deadline, whether a request or the session timer gets there first.

    use super::*;
    use crate::broker::{BrokerConfig, NewTopic};

    const CLASSIC_SESSION_MS: i32 = 10_050;
    const CONSUMER_SESSION_MS: i32 = 7_777;

    struct Setup {
        _dir: tempfile::TempDir,
        groups: Arc<GroupCoordinator>,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(BrokerConfig::new(dir.path())).unwrap();
        broker
            .create_topic(
                NewTopic {
                    name: "t".into(),
                    num_partitions: 2,
                    replication_factor: 1,
                    ..Default::default()
                },
                false,
            )
            .unwrap();
        let config = GroupConfig {
            offsets_topic_partitions: 1,
            initial_rebalance_delay_ms: 0,
            min_session_timeout_ms: 1,
            consumer_session_timeout_ms: CONSUMER_SESSION_MS,
            ..Default::default()
        };
        let groups = GroupCoordinator::open(broker, config).unwrap();
        Setup { _dir: dir, groups }
    }

    /// A static classic member that joined and synced, then stopped heartbeating
    /// (classic static members do not send LeaveGroup when they close).
    async fn static_classic_member(groups: &Arc<GroupCoordinator>, group: &str) {
        let joined = groups
            .join_group(JoinGroup {
                group_id: group.into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                session_timeout_ms: CLASSIC_SESSION_MS,
                rebalance_timeout_ms: 60_000,
                protocol_type: "consumer".into(),
                protocols: vec![("range".into(), Bytes::from_static(b"r"))],
                ..Default::default()
            })
            .await;
        assert!(joined.error.is_none(), "{:?}", joined.error);
        let synced = groups
            .sync_group(SyncGroup {
                group_id: group.into(),
                generation_id: joined.generation_id,
                member_id: joined.member_id.clone(),
                group_instance_id: Some("i1".into()),
                ..Default::default()
            })
            .await;
        assert!(synced.error.is_none(), "{:?}", synced.error);
    }

    /// A static KIP-848 member that joined, then left with epoch -2.
    fn static_consumer_member_that_left(groups: &Arc<GroupCoordinator>, group: &str) {
        let heartbeat = |epoch: i32| ConsumerHeartbeat {
            group_id: group.into(),
            member_id: "m1".into(),
            member_epoch: epoch,
            instance_id: Some("i1".into()),
            rebalance_timeout_ms: 60_000,
            subscribed_topic_names: (epoch == 0).then(|| vec!["t".to_string()]),
            ..Default::default()
        };
        let joined = groups.consumer_heartbeat(heartbeat(0));
        assert!(joined.error.is_none(), "{:?}", joined.error);
        let left = groups.consumer_heartbeat(heartbeat(-2));
        assert!(left.error.is_none(), "{:?}", left.error);
        assert_eq!(left.member_epoch, -2);
    }

    /// The group's deadline, read without applying the clock.
    fn deadline_of(groups: &GroupCoordinator, group: &str) -> Option<Instant> {
        groups.group(group).and_then(|g| lock(&g).next_deadline())
    }

    /// Both groups' deadlines, earliest first.
    fn deadlines(groups: &GroupCoordinator) -> Vec<(Instant, &'static str)> {
        let mut deadlines: Vec<(Instant, &str)> = ["classic", "kip848"]
            .into_iter()
            .map(|g| (deadline_of(groups, g).expect("a member with a session"), g))
            .collect();
        deadlines.sort();
        deadlines
    }

    /// Members held now, read without applying the clock.
    fn members_of(groups: &GroupCoordinator, group: &str) -> usize {
        groups.group(group).map_or(0, |g| {
            let g = lock(&g);
            g.classic.members.len() + g.consumer.members.len()
        })
    }

    async fn advance_to(at: Instant) {
        tokio::time::advance(at.saturating_duration_since(Instant::now())).await;
    }

    #[tokio::test(start_paused = true)]
    async fn delete_groups_at_the_session_deadline_finds_the_group_empty() {
        let Setup { _dir, groups } = setup();
        static_classic_member(&groups, "classic").await;
        static_consumer_member_that_left(&groups, "kip848");
        for (deadline, group) in deadlines(&groups) {
            advance_to(deadline - Duration::from_millis(1)).await;
            assert!(
                matches!(groups.delete_group(group).await, Err(BrokerError::NonEmptyGroup)),
                "{group}: the member stays until its session runs out, even after leaving"
            );
            advance_to(deadline).await;
            // No session timer runs here: the request itself applies the clock.
            assert_eq!(members_of(&groups, group), 1, "{group}: nothing expired it yet");
            groups.delete_group(group).await.unwrap();
            assert!(groups.describe_group(group).is_none(), "{group} is deleted");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn describe_and_list_see_members_expire_at_their_deadline() {
        let Setup { _dir, groups } = setup();
        static_classic_member(&groups, "classic").await;
        let deadline = deadline_of(&groups, "classic").unwrap();
        advance_to(deadline - Duration::from_millis(1)).await;
        let described = groups.describe_group("classic").unwrap();
        assert_eq!((described.state, described.members.len()), ("Stable", 1));
        advance_to(deadline).await;
        let described = groups.describe_group("classic").unwrap();
        assert_eq!((described.state, described.members.len()), ("Empty", 0));
        let listed = groups.list_groups();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].state, "Empty");
    }

    #[tokio::test(start_paused = true)]
    async fn the_session_timer_fires_at_the_earliest_deadline() {
        let Setup { _dir, groups } = setup();
        let (_shutdown, rx) = watch::channel(false);
        tokio::spawn(groups.clone().run(rx));
        static_classic_member(&groups, "classic").await;
        static_consumer_member_that_left(&groups, "kip848");
        for (deadline, group) in deadlines(&groups) {
            advance_to(deadline - Duration::from_millis(1)).await;
            settle().await;
            assert_eq!(members_of(&groups, group), 1, "{group}: before its deadline");
            advance_to(deadline).await;
            settle().await;
            assert_eq!(
                members_of(&groups, group),
                0,
                "{group}: expired by the timer at its deadline"
            );
        }
    }

    /// Let the spawned timer task run.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }
}
