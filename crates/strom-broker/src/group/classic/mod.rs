//! The classic group protocol (JoinGroup / SyncGroup / Heartbeat / LeaveGroup) as a
//! state machine without I/O: the coordinator feeds it requests and the clock, and
//! persists what it reports. Waiting requests hold a oneshot sender that the machine
//! completes when the rebalance moves on.
//!
//! States follow Kafka's: Empty → PreparingRebalance (members (re)join) →
//! CompletingRebalance (the leader computes assignments) → Stable (SyncGroup
//! delivered them); any membership change goes back to PreparingRebalance.
//!
//! Invariants: a member is in at most one of `members` / `pending`; each static
//! instance id maps to exactly one member; the generation only grows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

use crate::error::BrokerError;
use crate::group::GroupState;

mod join;

/// A JoinGroup request in the broker's terms.
#[derive(Debug, Clone, Default)]
pub struct JoinGroup {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (protocol name, metadata), in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// Topics the member subscribes to, when the front-end could read them.
    pub subscribed_topics: BTreeSet<String>,
    /// JoinGroup v4+: a new member must first get its id (MEMBER_ID_REQUIRED).
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a static leader rejoining a stable group need not reassign.
    pub supports_skip_assignment: bool,
}

#[derive(Debug, Clone)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Default)]
pub struct JoinResult {
    pub error: Option<BrokerError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    /// Filled for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    pub fn error(e: BrokerError, member_id: &str) -> JoinResult {
        JoinResult {
            error: Some(e),
            generation_id: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SyncGroup {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Default)]
pub struct SyncResult {
    pub error: Option<BrokerError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(e: BrokerError) -> SyncResult {
        SyncResult {
            error: Some(e),
            ..Default::default()
        }
    }
}

#[derive(Debug)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    pub subscribed_topics: BTreeSet<String>,
    pub assignment: Bytes,
    pub heartbeat_deadline: Instant,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
    /// Joined in the current rebalance (its JoinGroup is parked or was answered).
    joined: bool,
    join_order: u64,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn touch(&mut self, now: Instant) {
        self.heartbeat_deadline = now + Duration::from_millis(self.session_timeout_ms.max(0) as u64);
    }
}

#[derive(Debug)]
struct Rebalance {
    id: u64,
    /// A new group waits this long for more members (group.initial.rebalance.delay.ms).
    initial_delay_until: Instant,
    /// Members that have not rejoined by then are removed.
    deadline: Instant,
}

/// What the coordinator must do after a transition.
#[derive(Debug, Default)]
pub struct Effects {
    /// Write the group's metadata record (it became Stable or Empty).
    pub persist: bool,
    /// Start (or restart) the rebalance timer: (rebalance id, first wake-up).
    pub timer: Option<(u64, Instant)>,
}

impl Effects {
    fn merge(&mut self, other: Effects) {
        self.persist |= other.persist;
        if other.timer.is_some() {
            self.timer = other.timer;
        }
    }
}

/// The outcome of a JoinGroup.
pub enum JoinOutcome {
    Now(JoinResult),
    Wait(oneshot::Receiver<JoinResult>),
}

/// The outcome of a SyncGroup.
pub enum SyncOutcome {
    Now(SyncResult),
    Wait(oneshot::Receiver<SyncResult>),
}

#[derive(Debug)]
pub struct ClassicGroup {
    pub state: GroupState,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, valid until the deadline.
    pending: HashMap<String, Instant>,
    static_members: HashMap<String, String>,
    rebalance: Option<Rebalance>,
    next_rebalance_id: u64,
    next_join_order: u64,
    /// Wall-clock ms of the last state change (kept in the metadata record).
    pub state_timestamp_ms: i64,
}

/// Settings the state machine needs.
#[derive(Debug, Clone)]
pub struct ClassicConfig {
    pub initial_rebalance_delay_ms: u64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub max_size: usize,
}

pub fn new_member_id(client_id: &str) -> String {
    format!("{client_id}-{}", uuid::Uuid::new_v4())
}

impl Default for ClassicGroup {
    fn default() -> Self {
        ClassicGroup {
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            rebalance: None,
            next_rebalance_id: 1,
            next_join_order: 0,
            state_timestamp_ms: -1,
        }
    }
}

impl ClassicGroup {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Restore a group from its metadata record (after a restart); members get a
    /// fresh session, so live clients carry on without a rebalance.
    pub fn restore(value: &super::offsets_record::GroupValue, now: Instant) -> ClassicGroup {
        let mut group = ClassicGroup {
            generation_id: value.generation,
            protocol_type: Some(value.protocol_type.clone()).filter(|s| !s.is_empty()),
            protocol_name: value.protocol.clone(),
            leader_id: value.leader.clone(),
            state_timestamp_ms: value.state_timestamp,
            ..Default::default()
        };
        for m in &value.members {
            let protocol = value.protocol.clone().unwrap_or_default();
            let mut member = Member {
                member_id: m.member_id.clone(),
                group_instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: vec![(protocol, Bytes::from(m.subscription.clone()))],
                subscribed_topics: BTreeSet::new(),
                assignment: Bytes::from(m.assignment.clone()),
                heartbeat_deadline: now,
                join_waiter: None,
                sync_waiter: None,
                joined: false,
                join_order: group.next_join_order,
            };
            member.touch(now);
            group.next_join_order += 1;
            if let Some(instance) = &m.instance_id {
                group.static_members.insert(instance.clone(), m.member_id.clone());
            }
            group.members.insert(m.member_id.clone(), member);
        }
        group.state = if group.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        group
    }

    /// The metadata record for this group.
    pub fn to_value(&self) -> super::offsets_record::GroupValue {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        super::offsets_record::GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: self.protocol_name.clone(),
            leader: self.leader_id.clone(),
            state_timestamp: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| super::offsets_record::MemberValue {
                    member_id: m.member_id.clone(),
                    instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata_for(&protocol).to_vec(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
        }
    }

    /// Topics any member subscribes to.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed_topics.iter().cloned())
            .collect()
    }

    fn set_state(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    /// Check the static instance id a request carries against the member id.
    fn check_instance(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), BrokerError> {
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                Some(known) if known != member_id => return Err(BrokerError::FencedInstanceId),
                _ => {}
            }
        }
        Ok(())
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocols.is_empty() || protocol_type.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        // Every current member must share at least one of the offered protocols.
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// Enter PreparingRebalance: every member must rejoin.
    fn prepare_rebalance(&mut self, config: &ClassicConfig, now: Instant, now_ms: i64) -> Effects {
        for member in self.members.values_mut() {
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(SyncResult::error(BrokerError::RebalanceInProgress));
            }
            if member.join_waiter.is_none() {
                member.joined = false;
            }
        }
        let rebalance_timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0) as u64)
            .max()
            .unwrap_or(0);
        let initial_delay = if self.state == GroupState::Empty {
            config.initial_rebalance_delay_ms
        } else {
            0
        };
        let initial_delay_until = now + Duration::from_millis(initial_delay.min(rebalance_timeout.max(initial_delay)));
        let deadline = (now + Duration::from_millis(rebalance_timeout)).max(initial_delay_until);
        let id = self.next_rebalance_id;
        self.next_rebalance_id += 1;
        self.rebalance = Some(Rebalance {
            id,
            initial_delay_until,
            deadline,
        });
        self.set_state(GroupState::PreparingRebalance, now_ms);
        let first_wake = initial_delay_until.min(deadline);
        Effects {
            persist: false,
            timer: Some((id, first_wake)),
        }
    }

    /// Called by the rebalance timer. Returns the next wake-up while still waiting.
    pub fn on_timer(&mut self, rebalance_id: u64, now: Instant, now_ms: i64) -> (Option<Instant>, Effects) {
        let Some(rebalance) = &self.rebalance else {
            return (None, Effects::default());
        };
        if rebalance.id != rebalance_id || self.state != GroupState::PreparingRebalance {
            return (None, Effects::default());
        }
        let forced = now >= rebalance.deadline;
        let next = if now < rebalance.initial_delay_until {
            rebalance.initial_delay_until
        } else {
            rebalance.deadline
        };
        let effects = self.try_complete_join(now, now_ms, forced);
        if self.state == GroupState::PreparingRebalance {
            (Some(next), effects)
        } else {
            (None, effects)
        }
    }

    /// Finish the join phase when every member has rejoined (after the initial
    /// delay), or when `forced` at the deadline, dropping those that did not.
    fn try_complete_join(&mut self, now: Instant, now_ms: i64, forced: bool) -> Effects {
        if self.state != GroupState::PreparingRebalance {
            return Effects::default();
        }
        let Some(rebalance) = &self.rebalance else {
            return Effects::default();
        };
        let all_joined = self.members.values().all(|m| m.joined);
        let ready = all_joined && now >= rebalance.initial_delay_until;
        if !forced && !ready {
            return Effects::default();
        }
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.joined)
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            self.remove_member_entry(&id);
        }
        self.rebalance = None;
        self.generation_id += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.protocol_type = None;
            self.leader_id = None;
            self.set_state(GroupState::Empty, now_ms);
            return Effects {
                persist: true,
                timer: None,
            };
        }
        self.protocol_name = Some(self.select_protocol());
        let leader_ok = self.leader_id.as_ref().is_some_and(|l| self.members.contains_key(l));
        if !leader_ok {
            self.leader_id = self
                .members
                .values()
                .min_by_key(|m| m.join_order)
                .map(|m| m.member_id.clone());
        }
        self.set_state(GroupState::CompletingRebalance, now_ms);
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let leader = self.leader_id.clone().unwrap_or_default();
        let all = self.joined_members(&protocol);
        let generation = self.generation_id;
        let protocol_type = self.protocol_type.clone();
        for member in self.members.values_mut() {
            member.touch(now);
            member.joined = false;
            if let Some(waiter) = member.join_waiter.take() {
                let is_leader = member.member_id == leader;
                let _ = waiter.send(JoinResult {
                    error: None,
                    generation_id: generation,
                    protocol_type: protocol_type.clone(),
                    protocol_name: Some(protocol.clone()),
                    leader: leader.clone(),
                    skip_assignment: false,
                    member_id: member.member_id.clone(),
                    members: if is_leader { all.clone() } else { Vec::new() },
                });
            }
        }
        Effects::default()
    }

    /// The protocol every member supports with the most first-choice votes.
    fn select_protocol(&self) -> String {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.join_order);
        let candidates: Vec<&String> = members
            .first()
            .map(|first| {
                first
                    .protocols
                    .iter()
                    .map(|(n, _)| n)
                    .filter(|n| members.iter().all(|m| m.protocols.iter().any(|(p, _)| &p == n)))
                    .collect()
            })
            .unwrap_or_default();
        let mut best: Option<(&String, usize)> = None;
        for candidate in &candidates {
            let votes = members
                .iter()
                .filter(|m| m.protocols.iter().map(|(n, _)| n).find(|n| candidates.contains(n)) == Some(*candidate))
                .count();
            if best.is_none_or(|(_, v)| votes > v) {
                best = Some((candidate, votes));
            }
        }
        best.map(|(n, _)| n.clone()).unwrap_or_default()
    }

    fn remove_member_entry(&mut self, member_id: &str) -> Option<Member> {
        let mut member = self.members.remove(member_id)?;
        if let Some(instance) = &member.group_instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        if let Some(waiter) = member.join_waiter.take() {
            let _ = waiter.send(JoinResult::error(BrokerError::UnknownMemberId, member_id));
        }
        if let Some(waiter) = member.sync_waiter.take() {
            let _ = waiter.send(SyncResult::error(BrokerError::UnknownMemberId));
        }
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = None;
        }
        Some(member)
    }

    /// Remove members (LeaveGroup, expired sessions) and rebalance the rest.
    pub fn remove_members(
        &mut self,
        member_ids: &[String],
        config: &ClassicConfig,
        now: Instant,
        now_ms: i64,
    ) -> Effects {
        let mut removed = false;
        for id in member_ids {
            removed |= self.remove_member_entry(id).is_some();
        }
        if !removed {
            return Effects::default();
        }
        let mut effects = Effects::default();
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                effects.merge(self.prepare_rebalance(config, now, now_ms));
                effects.merge(self.try_complete_join(now, now_ms, false));
            }
            GroupState::PreparingRebalance => effects.merge(self.try_complete_join(now, now_ms, false)),
            _ => {}
        }
        effects
    }

    /// LeaveGroup for one member, by member id or (static) instance id.
    pub fn leave(&mut self, member_id: &str, instance_id: Option<&str>) -> Result<String, BrokerError> {
        let resolved = match instance_id {
            Some(instance) => {
                let known = self
                    .static_members
                    .get(instance)
                    .cloned()
                    .ok_or(BrokerError::UnknownMemberId)?;
                if !member_id.is_empty() && member_id != known {
                    return Err(BrokerError::FencedInstanceId);
                }
                known
            }
            None => member_id.to_string(),
        };
        if self.members.contains_key(&resolved) {
            Ok(resolved)
        } else if self.pending.remove(&resolved).is_some() {
            Ok(String::new())
        } else {
            Err(BrokerError::UnknownMemberId)
        }
    }

    pub fn sync(&mut self, request: SyncGroup, now: Instant, now_ms: i64) -> (SyncOutcome, Effects) {
        let now_result = |e| (SyncOutcome::Now(SyncResult::error(e)), Effects::default());
        if !self.members.contains_key(&request.member_id) {
            return now_result(BrokerError::UnknownMemberId);
        }
        if let Err(e) = self.check_instance(&request.member_id, request.group_instance_id.as_deref()) {
            return now_result(e);
        }
        if request.generation_id != self.generation_id {
            return now_result(BrokerError::IllegalGeneration);
        }
        let type_mismatch = request
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref());
        let name_mismatch = request
            .protocol_name
            .as_ref()
            .is_some_and(|n| Some(n) != self.protocol_name.as_ref());
        if type_mismatch || name_mismatch {
            return now_result(BrokerError::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => now_result(BrokerError::UnknownMemberId),
            GroupState::PreparingRebalance => now_result(BrokerError::RebalanceInProgress),
            GroupState::Stable => {
                let assignment = self
                    .members
                    .get(&request.member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                if let Some(m) = self.members.get_mut(&request.member_id) {
                    m.touch(now);
                }
                let result = SyncResult {
                    error: None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment,
                };
                (SyncOutcome::Now(result), Effects::default())
            }
            _ => {
                let (tx, rx) = oneshot::channel();
                if let Some(member) = self.members.get_mut(&request.member_id) {
                    member.touch(now);
                    if let Some(old) = member.sync_waiter.replace(tx) {
                        let _ = old.send(SyncResult::error(BrokerError::RebalanceInProgress));
                    }
                }
                let mut effects = Effects::default();
                if self.leader_id.as_deref() == Some(request.member_id.as_str()) {
                    let assignments: HashMap<String, Bytes> = request.assignments.into_iter().collect();
                    for member in self.members.values_mut() {
                        member.assignment = assignments.get(&member.member_id).cloned().unwrap_or_default();
                    }
                    self.set_state(GroupState::Stable, now_ms);
                    effects.persist = true;
                    for member in self.members.values_mut() {
                        if let Some(waiter) = member.sync_waiter.take() {
                            let _ = waiter.send(SyncResult {
                                error: None,
                                protocol_type: self.protocol_type.clone(),
                                protocol_name: self.protocol_name.clone(),
                                assignment: member.assignment.clone(),
                            });
                        }
                    }
                }
                (SyncOutcome::Wait(rx), effects)
            }
        }
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now: Instant,
    ) -> Result<(), BrokerError> {
        if self.state == GroupState::Dead {
            return Err(BrokerError::CoordinatorNotAvailable);
        }
        self.check_instance(member_id, instance_id)?;
        let state = self.state;
        let generation = self.generation_id;
        let member = self.members.get_mut(member_id).ok_or(BrokerError::UnknownMemberId)?;
        match state {
            GroupState::Empty => Err(BrokerError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                member.touch(now);
                Err(BrokerError::RebalanceInProgress)
            }
            _ if generation_id != generation => Err(BrokerError::IllegalGeneration),
            _ => {
                member.touch(now);
                Ok(())
            }
        }
    }

    /// Validate an offset commit from a member of this group.
    pub fn check_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now: Instant,
    ) -> Result<(), BrokerError> {
        if generation_id < 0 && member_id.is_empty() && instance_id.is_none() {
            // A commit from outside the group protocol (assign(), admin tools).
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(BrokerError::UnknownMemberId)
            };
        }
        self.check_instance(member_id, instance_id)?;
        let state = self.state;
        let generation = self.generation_id;
        let member = self.members.get_mut(member_id).ok_or(BrokerError::UnknownMemberId)?;
        if generation_id != generation {
            return Err(BrokerError::IllegalGeneration);
        }
        if state == GroupState::CompletingRebalance {
            return Err(BrokerError::RebalanceInProgress);
        }
        member.touch(now);
        Ok(())
    }

    /// Members whose session ran out (not counting those parked in a JoinGroup),
    /// and pending member ids that were never used.
    pub fn expired(&mut self, now: Instant) -> Vec<String> {
        self.pending.retain(|_, deadline| *deadline > now);
        self.members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.heartbeat_deadline <= now)
            .map(|m| m.member_id.clone())
            .collect()
    }

    /// The earliest instant at which `expired` will report something: a session or a
    /// handed-out member id running out. Members parked in a JoinGroup are left to the
    /// rebalance deadline, as in `expired`.
    pub fn next_deadline(&self) -> Option<Instant> {
        let sessions = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.heartbeat_deadline);
        sessions.chain(self.pending.values().copied()).min()
    }

    /// Run the rebalance timer's step now when it is due, so that a request sees the
    /// state the timer would have left at this instant, whichever runs first.
    pub fn on_clock(&mut self, now: Instant, now_ms: i64) -> Effects {
        let due = self
            .rebalance
            .as_ref()
            .filter(|r| now >= r.initial_delay_until.min(r.deadline))
            .map(|r| r.id);
        match due {
            Some(id) => self.on_timer(id, now, now_ms).1,
            None => Effects::default(),
        }
    }
}

#[cfg(test)]
mod tests;
