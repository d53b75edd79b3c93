//! The consumer group protocol of KIP-848 (`group.protocol=consumer`): members send
//! ConsumerGroupHeartbeat; the broker owns the assignment. A state machine without
//! I/O, fed with requests, the topic metadata and the clock.
//!
//! Epochs: the group epoch grows with every change of membership, subscriptions or
//! subscribed topics' partitions; the target assignment is recomputed for a newer
//! group epoch (its `assignment_epoch`). Each member converges to its target one
//! heartbeat at a time: first it gives up the partitions it must revoke (the response
//! shrinks its assignment; the member's next heartbeat reports them released), then it
//! receives new partitions — only those no other member still holds — and takes the
//! target's epoch. So a partition is never owned by two members at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio::time::{Duration, Instant};
use uuid::Uuid;

use crate::error::BrokerError;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// A topic as the assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
}

#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeat {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// Partitions the member owns now (sent on full heartbeats).
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Default)]
pub struct ConsumerHeartbeatResult {
    pub error: Option<BrokerError>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    pub assignment: Option<Assignment>,
}

#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    previous_epoch: i32,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: BTreeSet<String>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// What the member has been told it owns.
    pub assigned: Assignment,
    /// Partitions it was told to give up and has not yet reported released.
    pending_revocation: Assignment,
    session_deadline: Instant,
}

/// Settings of the protocol.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub heartbeat_interval_ms: i32,
    pub session_timeout_ms: i32,
    pub max_size: usize,
}

pub const ASSIGNORS: [&str; 2] = ["uniform", "range"];

/// Member epoch of a heartbeat that leaves the group.
const LEAVE_EPOCH: i32 = -1;
/// Member epoch of a static member's heartbeat that leaves until it comes back.
const LEAVE_STATIC_EPOCH: i32 = -2;

#[derive(Debug, Default)]
pub struct ConsumerGroup {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: HashMap<String, Assignment>,
    static_members: HashMap<String, String>,
    /// The subscribed topics (and partition counts) the target was computed from.
    topics_seen: Vec<TopicInfo>,
    pub assignor: String,
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (topic, partitions) in a {
        let other = b.get(topic);
        let rest: BTreeSet<i32> = partitions
            .iter()
            .filter(|p| other.is_none_or(|o| !o.contains(p)))
            .copied()
            .collect();
        if !rest.is_empty() {
            out.insert(*topic, rest);
        }
    }
    out
}

fn intersect(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (topic, partitions) in a {
        if let Some(other) = b.get(topic) {
            let both: BTreeSet<i32> = partitions.intersection(other).copied().collect();
            if !both.is_empty() {
                out.insert(*topic, both);
            }
        }
    }
    out
}

fn union(a: &mut Assignment, b: &Assignment) {
    for (topic, partitions) in b {
        a.entry(*topic).or_default().extend(partitions.iter().copied());
    }
}

fn contains(a: &Assignment, topic: &Uuid, partition: i32) -> bool {
    a.get(topic).is_some_and(|p| p.contains(&partition))
}

/// Kafka matches subscription regexes (RE2 syntax) against the whole topic name.
fn compile_regex(pattern: &str) -> Result<regex::Regex, BrokerError> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| BrokerError::InvalidRequest(format!("invalid subscription regex {pattern:?}: {e}")))
}

impl ConsumerMember {
    fn subscribes(&self, topic: &str, regex: Option<&regex::Regex>) -> bool {
        self.subscribed_topic_names.contains(topic) || regex.is_some_and(|r| r.is_match(topic))
    }
}

impl ConsumerGroup {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Kafka's names: Empty, Assigning (target behind the group epoch), Reconciling
    /// (members moving to the target), Stable.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.group_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.assignment_epoch || !m.pending_revocation.is_empty())
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Topics any member subscribes to.
    pub fn subscribed_topics(&self, topics: &[TopicInfo]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for member in self.members.values() {
            let regex = member
                .subscribed_topic_regex
                .as_deref()
                .and_then(|p| compile_regex(p).ok());
            for topic in topics {
                if member.subscribes(&topic.name, regex.as_ref()) {
                    out.insert(topic.name.clone());
                }
            }
        }
        out
    }

    fn bump(&mut self) {
        self.group_epoch += 1;
    }

    pub fn heartbeat(
        &mut self,
        request: ConsumerHeartbeat,
        topics: &[TopicInfo],
        config: &ConsumerConfig,
        now: Instant,
    ) -> ConsumerHeartbeatResult {
        let interval = config.heartbeat_interval_ms;
        let fail = |e: BrokerError, member_id: &str, epoch: i32| ConsumerHeartbeatResult {
            error: Some(e),
            member_id: member_id.to_string(),
            member_epoch: epoch,
            heartbeat_interval_ms: interval,
            assignment: None,
        };
        if let Some(assignor) = &request.server_assignor {
            if !ASSIGNORS.contains(&assignor.as_str()) {
                return fail(
                    BrokerError::UnsupportedAssignor(assignor.clone()),
                    &request.member_id,
                    request.member_epoch,
                );
            }
        }
        if let Some(pattern) = &request.subscribed_topic_regex {
            if let Err(e) = compile_regex(pattern) {
                return fail(e, &request.member_id, request.member_epoch);
            }
        }
        let mut membership_changed = false;
        match request.member_epoch {
            LEAVE_EPOCH | LEAVE_STATIC_EPOCH => {
                let member_id = request.member_id.clone();
                if request.member_epoch == LEAVE_STATIC_EPOCH {
                    if let Err(e) = self.leave_static(&request) {
                        return fail(e, &member_id, request.member_epoch);
                    }
                } else if self.members.contains_key(&member_id) {
                    self.remove(&member_id);
                }
                return ConsumerHeartbeatResult {
                    member_id,
                    member_epoch: request.member_epoch,
                    heartbeat_interval_ms: interval,
                    ..Default::default()
                };
            }
            0 => match self.join(&request, config, now) {
                Ok(new_member) => membership_changed = new_member,
                Err(e) => return fail(e, &request.member_id, 0),
            },
            epoch if epoch > 0 => {
                let Some(member) = self.members.get(&request.member_id) else {
                    return fail(BrokerError::UnknownMemberId, &request.member_id, epoch);
                };
                let owned_ok = request
                    .owned
                    .as_ref()
                    .is_none_or(|owned| minus(owned, &member.assigned).is_empty());
                if epoch != member.member_epoch && !(epoch == member.previous_epoch && owned_ok) {
                    return fail(BrokerError::FencedMemberEpoch, &request.member_id, epoch);
                }
            }
            epoch => {
                return fail(
                    BrokerError::InvalidRequest(format!("member epoch {epoch}")),
                    &request.member_id,
                    epoch,
                )
            }
        }
        let member_id = request.member_id.clone();
        let joined = request.member_epoch == 0;
        if let Some(member) = self.members.get_mut(&member_id) {
            member.session_deadline = now + Duration::from_millis(config.session_timeout_ms.max(0) as u64);
        }
        if self.update_subscription(&request) || membership_changed {
            self.bump();
        }
        self.refresh_target(topics);
        let changed = self.reconcile(&member_id, request.owned.as_ref());
        let Some(member) = self.members.get(&member_id) else {
            return fail(BrokerError::UnknownMemberId, &member_id, request.member_epoch);
        };
        let resend = request.owned.as_ref().is_some_and(|owned| *owned != member.assigned);
        ConsumerHeartbeatResult {
            error: None,
            member_id,
            member_epoch: member.member_epoch,
            heartbeat_interval_ms: interval,
            assignment: (joined || changed || resend).then(|| member.assigned.clone()),
        }
    }

    /// Add (or reset) a member; true when the membership changed.
    fn join(
        &mut self,
        request: &ConsumerHeartbeat,
        config: &ConsumerConfig,
        now: Instant,
    ) -> Result<bool, BrokerError> {
        if request.member_id.is_empty() {
            return Err(BrokerError::UnknownMemberId);
        }
        let deadline = now + Duration::from_millis(config.session_timeout_ms.max(0) as u64);
        // A static member coming back takes over its predecessor's place and partitions,
        // once the predecessor has left (epoch -2); while it is still a member the
        // instance id is taken (Kafka's UNRELEASED_INSTANCE_ID: the client retries, and
        // the old member's session ends it at the latest).
        if let Some(instance) = &request.instance_id {
            if let Some(old_id) = self.static_members.get(instance).cloned() {
                let still_there = self
                    .members
                    .get(&old_id)
                    .is_some_and(|old| old.member_epoch != LEAVE_STATIC_EPOCH);
                if old_id != request.member_id && still_there {
                    return Err(BrokerError::UnreleasedInstanceId);
                }
                if old_id != request.member_id {
                    if let Some(mut old) = self.members.remove(&old_id) {
                        if let Some(target) = self.target.remove(&old_id) {
                            self.target.insert(request.member_id.clone(), target);
                        }
                        if old.member_epoch == LEAVE_STATIC_EPOCH {
                            old.member_epoch = old.previous_epoch;
                        }
                        old.member_id = request.member_id.clone();
                        old.client_id = request.client_id.clone();
                        old.client_host = request.client_host.clone();
                        old.session_deadline = deadline;
                        self.members.insert(request.member_id.clone(), old);
                    }
                    self.static_members.insert(instance.clone(), request.member_id.clone());
                    return Ok(false);
                }
            }
        }
        if let Some(member) = self.members.get_mut(&request.member_id) {
            // A static member that left temporarily resumes where it was; rejoining with
            // epoch 0 after a fencing starts over with nothing owned.
            if member.member_epoch == LEAVE_STATIC_EPOCH {
                member.member_epoch = member.previous_epoch;
                member.session_deadline = deadline;
                return Ok(false);
            }
            member.member_epoch = 0;
            member.previous_epoch = 0;
            member.assigned.clear();
            member.pending_revocation.clear();
            member.session_deadline = deadline;
            return Ok(false);
        }
        if self.members.len() >= config.max_size {
            return Err(BrokerError::GroupMaxSizeReached);
        }
        if let Some(instance) = &request.instance_id {
            self.static_members.insert(instance.clone(), request.member_id.clone());
        }
        self.members.insert(
            request.member_id.clone(),
            ConsumerMember {
                member_id: request.member_id.clone(),
                instance_id: request.instance_id.clone(),
                rack_id: request.rack_id.clone(),
                client_id: request.client_id.clone(),
                client_host: request.client_host.clone(),
                member_epoch: 0,
                previous_epoch: 0,
                rebalance_timeout_ms: request.rebalance_timeout_ms,
                subscribed_topic_names: BTreeSet::new(),
                subscribed_topic_regex: None,
                server_assignor: None,
                assigned: Assignment::new(),
                pending_revocation: Assignment::new(),
                session_deadline: deadline,
            },
        );
        Ok(true)
    }

    /// Apply the subscription fields a heartbeat carries; true when they changed.
    fn update_subscription(&mut self, request: &ConsumerHeartbeat) -> bool {
        let Some(member) = self.members.get_mut(&request.member_id) else {
            return false;
        };
        let mut changed = false;
        if let Some(names) = &request.subscribed_topic_names {
            let names: BTreeSet<String> = names.iter().cloned().collect();
            if names != member.subscribed_topic_names {
                member.subscribed_topic_names = names;
                changed = true;
            }
        }
        if let Some(regex) = &request.subscribed_topic_regex {
            let regex = Some(regex.clone()).filter(|r| !r.is_empty());
            if regex != member.subscribed_topic_regex {
                member.subscribed_topic_regex = regex;
                changed = true;
            }
        }
        if request.server_assignor.is_some() && request.server_assignor != member.server_assignor {
            member.server_assignor = request.server_assignor.clone();
            changed = true;
        }
        if request.rack_id.is_some() {
            member.rack_id = request.rack_id.clone();
        }
        if request.rebalance_timeout_ms > 0 {
            member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        }
        changed
    }

    /// A static member leaving with epoch -2: as in Kafka it stays, with its
    /// partitions, until its session runs out, so the same instance can come back
    /// without a rebalance. Partitions it was still giving up are released now.
    fn leave_static(&mut self, request: &ConsumerHeartbeat) -> Result<(), BrokerError> {
        let Some(instance) = &request.instance_id else {
            return Err(BrokerError::InvalidRequest(
                "a static leave (member epoch -2) needs an instance id".into(),
            ));
        };
        let owner = self.static_members.get(instance).ok_or(BrokerError::UnknownMemberId)?;
        if *owner != request.member_id {
            return Err(BrokerError::FencedInstanceId);
        }
        if let Some(member) = self.members.get_mut(&request.member_id) {
            // Kept so that the instance resumes at this epoch when it comes back.
            member.previous_epoch = member.member_epoch;
            member.member_epoch = LEAVE_STATIC_EPOCH;
            member.pending_revocation.clear();
        }
        Ok(())
    }

    /// Remove a member (leave or expired session): its partitions are released.
    pub fn remove(&mut self, member_id: &str) {
        if let Some(member) = self.members.remove(member_id) {
            if let Some(instance) = &member.instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(instance);
                }
            }
            self.target.remove(member_id);
            self.bump();
        }
    }

    /// Members whose session ran out.
    pub fn expired(&self, now: Instant) -> Vec<String> {
        self.members
            .values()
            .filter(|m| m.session_deadline <= now)
            .map(|m| m.member_id.clone())
            .collect()
    }

    /// The earliest session deadline, when `expired` will next report a member.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.members.values().map(|m| m.session_deadline).min()
    }

    /// Recompute the target assignment when the group epoch moved on or the
    /// subscribed topics changed (created, deleted, partitions added).
    fn refresh_target(&mut self, topics: &[TopicInfo]) {
        let subscribed = self.subscribed_topics(topics);
        let seen: Vec<TopicInfo> = topics
            .iter()
            .filter(|t| subscribed.contains(&t.name))
            .cloned()
            .collect();
        if seen != self.topics_seen {
            self.topics_seen = seen;
            if self.assignment_epoch == self.group_epoch {
                self.bump();
            }
        }
        if self.assignment_epoch == self.group_epoch {
            return;
        }
        self.assignor = self.choose_assignor();
        self.target = if self.assignor == "range" {
            self.assign_range()
        } else {
            self.assign_uniform()
        };
        self.assignment_epoch = self.group_epoch;
    }

    fn choose_assignor(&self) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(a) = member.server_assignor.as_deref() {
                *votes.entry(a).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map_or_else(|| ASSIGNORS[0].to_string(), |(a, _)| a.to_string())
    }

    /// Members eligible for a topic, in id order.
    fn eligible(&self) -> Vec<(String, Vec<Uuid>)> {
        self.members
            .values()
            .map(|m| {
                let regex = m.subscribed_topic_regex.as_deref().and_then(|p| compile_regex(p).ok());
                let topics = self
                    .topics_seen
                    .iter()
                    .filter(|t| m.subscribes(&t.name, regex.as_ref()))
                    .map(|t| t.id)
                    .collect();
                (m.member_id.clone(), topics)
            })
            .collect()
    }

    /// Spread all partitions evenly, keeping each where it was when that stays balanced.
    fn assign_uniform(&self) -> HashMap<String, Assignment> {
        let eligible = self.eligible();
        let mut target: HashMap<String, Assignment> =
            eligible.iter().map(|(m, _)| (m.clone(), Assignment::new())).collect();
        let all: Vec<(Uuid, i32)> = self
            .topics_seen
            .iter()
            .flat_map(|t| (0..t.partitions).map(move |p| (t.id, p)))
            .collect();
        let subscribers = eligible.iter().filter(|(_, t)| !t.is_empty()).count().max(1);
        let quota = all.len().div_ceil(subscribers);
        let may_take = |member: &str, topic: &Uuid| eligible.iter().any(|(m, t)| m == member && t.contains(topic));
        let mut taken: BTreeSet<(Uuid, i32)> = BTreeSet::new();
        // Sticky pass: previous owners keep what they may, up to the quota.
        for (member, previous) in &self.target {
            let Some(mine) = target.get_mut(member) else { continue };
            for (topic, partitions) in previous {
                for p in partitions {
                    let exists = self.topics_seen.iter().any(|t| t.id == *topic && *p < t.partitions);
                    if exists && may_take(member, topic) && count(mine) < quota && taken.insert((*topic, *p)) {
                        mine.entry(*topic).or_default().insert(*p);
                    }
                }
            }
        }
        // The rest go to the least-loaded eligible member.
        for (topic, p) in all {
            if taken.contains(&(topic, p)) {
                continue;
            }
            let best = eligible
                .iter()
                .filter(|(_, topics)| topics.contains(&topic))
                .min_by_key(|(m, _)| (target.get(m).map_or(0, count), m.clone()))
                .map(|(m, _)| m.clone());
            if let Some(member) = best {
                target.entry(member).or_default().entry(topic).or_default().insert(p);
                taken.insert((topic, p));
            }
        }
        // Even out what the sticky pass left unbalanced (homogeneous subscriptions).
        for _ in 0..taken.len() {
            let Some((max_member, _)) = target.iter().max_by_key(|(m, a)| (count(a), (*m).clone())) else {
                break;
            };
            let Some((min_member, _)) = target.iter().min_by_key(|(m, a)| (count(a), (*m).clone())) else {
                break;
            };
            let (max_member, min_member) = (max_member.clone(), min_member.clone());
            if count(&target[&max_member]) <= count(&target[&min_member]) + 1 {
                break;
            }
            let movable = target[&max_member]
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
                .find(|(t, _)| may_take(&min_member, t));
            let Some((topic, p)) = movable else { break };
            if let Some(set) = target.get_mut(&max_member).and_then(|a| a.get_mut(&topic)) {
                set.remove(&p);
            }
            if let Some(a) = target.get_mut(&max_member) {
                a.retain(|_, ps| !ps.is_empty());
            }
            target
                .entry(min_member)
                .or_default()
                .entry(topic)
                .or_default()
                .insert(p);
        }
        target
    }

    /// Kafka's range: per topic, contiguous ranges over the subscribers in id order.
    fn assign_range(&self) -> HashMap<String, Assignment> {
        let eligible = self.eligible();
        let mut target: HashMap<String, Assignment> =
            eligible.iter().map(|(m, _)| (m.clone(), Assignment::new())).collect();
        for topic in &self.topics_seen {
            let members: Vec<&String> = eligible
                .iter()
                .filter(|(_, t)| t.contains(&topic.id))
                .map(|(m, _)| m)
                .collect();
            if members.is_empty() {
                continue;
            }
            let n = topic.partitions.max(0) as usize;
            let per = n / members.len();
            let extra = n % members.len();
            let mut next = 0i32;
            for (i, member) in members.iter().enumerate() {
                let take = per + usize::from(i < extra);
                let set: BTreeSet<i32> = (next..next + take as i32).collect();
                next += take as i32;
                if !set.is_empty() {
                    target.entry((*member).clone()).or_default().insert(topic.id, set);
                }
            }
        }
        target
    }

    /// Move one member a step towards its target; true when its assignment changed.
    fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>) -> bool {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let held_by_others: Assignment = {
            let mut held = Assignment::new();
            for (id, m) in &self.members {
                if id != member_id {
                    union(&mut held, &m.assigned);
                    union(&mut held, &m.pending_revocation);
                }
            }
            held
        };
        let assignment_epoch = self.assignment_epoch;
        let Some(member) = self.members.get_mut(member_id) else {
            return false;
        };
        if !member.pending_revocation.is_empty() {
            let released = owned.is_some_and(|o| intersect(o, &member.pending_revocation).is_empty());
            if !released {
                return false;
            }
            member.pending_revocation.clear();
        }
        let to_revoke = minus(&member.assigned, &target);
        if !to_revoke.is_empty() {
            member.assigned = intersect(&member.assigned, &target);
            member.pending_revocation = to_revoke;
            return true;
        }
        let wanted = minus(&target, &member.assigned);
        let mut added = false;
        for (topic, partitions) in &wanted {
            for p in partitions {
                if !contains(&held_by_others, topic, *p) {
                    member.assigned.entry(*topic).or_default().insert(*p);
                    added = true;
                }
            }
        }
        if member.member_epoch != assignment_epoch {
            member.previous_epoch = member.member_epoch;
            member.member_epoch = assignment_epoch;
            return true;
        }
        added
    }

    /// Check the member epoch of an OffsetCommit from a member of this group.
    pub fn check_commit(&self, member_id: &str, member_epoch: i32) -> Result<(), BrokerError> {
        let member = self.members.get(member_id).ok_or(BrokerError::UnknownMemberId)?;
        if member_epoch != member.member_epoch {
            return Err(BrokerError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// Each member's pending revocations, for describing the group.
    pub fn target_of(&self, member_id: &str) -> Assignment {
        self.target.get(member_id).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
