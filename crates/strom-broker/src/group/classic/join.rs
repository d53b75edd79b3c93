//! JoinGroup: a new, known or static member (re)joins, which starts or joins a
//! rebalance. The rest of the rebalance (its timer, completing the join) is in the
//! parent module.

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::*;

impl ClassicGroup {
    pub fn join(
        &mut self,
        request: JoinGroup,
        config: &ClassicConfig,
        now: Instant,
        now_ms: i64,
    ) -> (JoinOutcome, Effects) {
        let member_id = request.member_id.clone();
        if request.session_timeout_ms < config.min_session_timeout_ms
            || request.session_timeout_ms > config.max_session_timeout_ms
        {
            let e = BrokerError::InvalidSessionTimeout(request.session_timeout_ms);
            return (JoinOutcome::Now(JoinResult::error(e, &member_id)), Effects::default());
        }
        if !self.supports_protocols(&request.protocol_type, &request.protocols) {
            let e = BrokerError::InconsistentGroupProtocol;
            return (JoinOutcome::Now(JoinResult::error(e, &member_id)), Effects::default());
        }
        if self.state == GroupState::Dead {
            return (
                JoinOutcome::Now(JoinResult::error(BrokerError::CoordinatorNotAvailable, &member_id)),
                Effects::default(),
            );
        }
        if member_id.is_empty() {
            return self.join_new_member(request, config, now, now_ms);
        }
        if let Err(e) = self.check_instance(&member_id, request.group_instance_id.as_deref()) {
            return (JoinOutcome::Now(JoinResult::error(e, &member_id)), Effects::default());
        }
        if self.pending.remove(&member_id).is_some() {
            return self.add_member(request, member_id, config, now, now_ms);
        }
        if !self.members.contains_key(&member_id) {
            return (
                JoinOutcome::Now(JoinResult::error(BrokerError::UnknownMemberId, &member_id)),
                Effects::default(),
            );
        }
        self.join_existing_member(request, config, now, now_ms)
    }

    fn join_new_member(
        &mut self,
        request: JoinGroup,
        config: &ClassicConfig,
        now: Instant,
        now_ms: i64,
    ) -> (JoinOutcome, Effects) {
        let new_id = new_member_id(&request.client_id);
        if let Some(instance) = request.group_instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self.replace_static_member(request, old_id, new_id, config, now, now_ms);
            }
            return self.add_member(request, new_id, config, now, now_ms);
        }
        if request.require_known_member_id {
            let deadline = now + Duration::from_millis(request.session_timeout_ms.max(0) as u64);
            self.pending.insert(new_id.clone(), deadline);
            let e = BrokerError::MemberIdRequired;
            return (JoinOutcome::Now(JoinResult::error(e, &new_id)), Effects::default());
        }
        self.add_member(request, new_id, config, now, now_ms)
    }

    fn add_member(
        &mut self,
        request: JoinGroup,
        member_id: String,
        config: &ClassicConfig,
        now: Instant,
        now_ms: i64,
    ) -> (JoinOutcome, Effects) {
        if self.members.len() >= config.max_size {
            return (
                JoinOutcome::Now(JoinResult::error(BrokerError::GroupMaxSizeReached, &member_id)),
                Effects::default(),
            );
        }
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        let (tx, rx) = oneshot::channel();
        let mut member = Member {
            member_id: member_id.clone(),
            group_instance_id: request.group_instance_id.clone(),
            client_id: request.client_id,
            client_host: request.client_host,
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            protocols: request.protocols,
            subscribed_topics: request.subscribed_topics,
            assignment: Bytes::new(),
            heartbeat_deadline: now,
            join_waiter: Some(tx),
            sync_waiter: None,
            joined: true,
            join_order: self.next_join_order,
        };
        member.touch(now);
        self.next_join_order += 1;
        if let Some(instance) = &request.group_instance_id {
            self.static_members.insert(instance.clone(), member_id.clone());
        }
        self.members.insert(member_id, member);
        let effects = self.rebalance_for_join(config, now, now_ms);
        (JoinOutcome::Wait(rx), effects)
    }

    /// A member joined or rejoined: start a rebalance unless one is being prepared, and
    /// complete the join phase if everyone is in.
    fn rebalance_for_join(&mut self, config: &ClassicConfig, now: Instant, now_ms: i64) -> Effects {
        let mut effects = Effects::default();
        if self.state != GroupState::PreparingRebalance {
            effects.merge(self.prepare_rebalance(config, now, now_ms));
        }
        effects.merge(self.try_complete_join(now, now_ms, false));
        effects
    }

    fn join_existing_member(
        &mut self,
        request: JoinGroup,
        config: &ClassicConfig,
        now: Instant,
        now_ms: i64,
    ) -> (JoinOutcome, Effects) {
        let is_leader = self.leader_id.as_deref() == Some(request.member_id.as_str());
        let state = self.state;
        let generation = self.generation_id;
        let Some(member) = self.members.get_mut(&request.member_id) else {
            return (
                JoinOutcome::Now(JoinResult::error(BrokerError::UnknownMemberId, &request.member_id)),
                Effects::default(),
            );
        };
        let unchanged = member.protocols == request.protocols;
        member.touch(now);
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.subscribed_topics = request.subscribed_topics.clone();
        member.protocols = request.protocols.clone();
        // A follower rejoining a settled group with nothing new gets the current generation.
        if unchanged && !is_leader && matches!(state, GroupState::Stable | GroupState::CompletingRebalance) {
            let result = JoinResult {
                generation_id: generation,
                protocol_type: self.protocol_type.clone(),
                protocol_name: self.protocol_name.clone(),
                leader: self.leader_id.clone().unwrap_or_default(),
                member_id: request.member_id,
                ..Default::default()
            };
            return (JoinOutcome::Now(result), Effects::default());
        }
        let (tx, rx) = oneshot::channel();
        if let Some(old) = member.join_waiter.replace(tx) {
            let _ = old.send(JoinResult::error(BrokerError::UnknownMemberId, &request.member_id));
        }
        member.joined = true;
        let effects = self.rebalance_for_join(config, now, now_ms);
        (JoinOutcome::Wait(rx), effects)
    }

    /// A static member came back with a new member id: it takes over the old
    /// member's place (and assignment); the old id is fenced.
    fn replace_static_member(
        &mut self,
        request: JoinGroup,
        old_id: String,
        new_id: String,
        config: &ClassicConfig,
        now: Instant,
        now_ms: i64,
    ) -> (JoinOutcome, Effects) {
        let Some(mut member) = self.members.remove(&old_id) else {
            self.static_members
                .remove(request.group_instance_id.as_deref().unwrap_or_default());
            let e = BrokerError::UnknownMemberId;
            return (JoinOutcome::Now(JoinResult::error(e, &new_id)), Effects::default());
        };
        if let Some(waiter) = member.join_waiter.take() {
            let _ = waiter.send(JoinResult::error(BrokerError::FencedInstanceId, &old_id));
        }
        if let Some(waiter) = member.sync_waiter.take() {
            let _ = waiter.send(SyncResult::error(BrokerError::FencedInstanceId));
        }
        let unchanged = member.protocols == request.protocols;
        member.member_id = new_id.clone();
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.subscribed_topics = request.subscribed_topics.clone();
        member.protocols = request.protocols.clone();
        member.touch(now);
        let was_leader = self.leader_id.as_deref() == Some(old_id.as_str());
        if was_leader {
            self.leader_id = Some(new_id.clone());
        }
        if let Some(instance) = &request.group_instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        let settled = matches!(self.state, GroupState::Stable | GroupState::CompletingRebalance);
        if settled && unchanged {
            // Rejoin without a rebalance: same generation, same assignment.
            let members = if was_leader {
                self.joined_members(&self.protocol_name.clone().unwrap_or_default())
            } else {
                Vec::new()
            };
            self.members.insert(new_id.clone(), member);
            let result = JoinResult {
                generation_id: self.generation_id,
                protocol_type: self.protocol_type.clone(),
                protocol_name: self.protocol_name.clone(),
                leader: self.leader_id.clone().unwrap_or_default(),
                skip_assignment: was_leader && request.supports_skip_assignment,
                member_id: new_id,
                members,
                error: None,
            };
            let effects = Effects {
                persist: self.state == GroupState::Stable,
                timer: None,
            };
            return (JoinOutcome::Now(result), effects);
        }
        let (tx, rx) = oneshot::channel();
        member.join_waiter = Some(tx);
        member.joined = true;
        self.members.insert(new_id, member);
        let effects = self.rebalance_for_join(config, now, now_ms);
        (JoinOutcome::Wait(rx), effects)
    }

    pub(super) fn joined_members(&self, protocol: &str) -> Vec<JoinedMember> {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.join_order);
        members
            .into_iter()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(protocol),
            })
            .collect()
    }
}
