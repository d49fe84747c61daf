//! One consumer group under the classic protocol, as a pure state machine: no I/O, no
//! timers, no clock of its own. Every operation takes `now_ms`; responses that wait for
//! other members (JoinGroup until the rebalance completes, SyncGroup until the leader's
//! assignment) come out as [`Event`]s, drained by the caller with [`Group::take_events`].
//! The caller also asks [`Group::next_deadline_ms`] when to call [`Group::tick`] next, so
//! the rebalance timeout, session timeouts, KIP-394 pending members and
//! `group.initial.rebalance.delay.ms` are all driven from outside — by glommio timers in
//! the broker, by a `ManualClock` in the tests below.
//!
//! States and transitions follow Kafka's `ClassicGroup`:
//!
//! ```text
//! Empty ──join──► PreparingRebalance ──all joined / deadline──► CompletingRebalance
//!   ▲                    ▲    │ (no members left)                    │ leader's SyncGroup
//!   └────────────────────┼────┘                                      ▼
//!                        └─────── join / leave / session expiry ── Stable
//! any ──DeleteGroups (no members)──► Dead
//! ```

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka reports in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Case-insensitive, as Kafka's `ClassicGroupState.parse` for ListGroups filters.
    pub fn parse(name: &str) -> Option<GroupState> {
        [
            GroupState::Empty,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Stable,
            GroupState::Dead,
        ]
        .into_iter()
        .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

/// Broker settings a group obeys.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    pub initial_rebalance_delay_ms: i64,
    pub session_timeout_ms_min: i32,
    pub session_timeout_ms_max: i32,
    pub members_max: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            session_timeout_ms_min: 6000,
            session_timeout_ms_max: 1_800_000,
            members_max: 10_000,
        }
    }
}

/// Protocols a member offers, in its order of preference: (name, metadata).
pub type Protocols = Vec<(String, Bytes)>;

#[derive(Clone, Debug)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocols: Protocols,
    pub assignment: Bytes,
    awaiting_join: bool,
    awaiting_sync: bool,
    heartbeat_deadline_ms: i64,
}

impl Member {
    /// The metadata this member sent for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// What a JoinGroup carries.
#[derive(Clone, Debug)]
pub struct JoinParams {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Protocols,
    /// JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member_id: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinResponse {
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    /// KIP-814: a static leader rejoining a stable group must not compute a new assignment.
    pub skip_assignment: bool,
    pub member_id: String,
    /// Filled for the leader only.
    pub members: Vec<JoinMember>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncResponse {
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

/// An answer now, or later through an [`Event`] for the member id given here (a new
/// member learns its id only from the response).
#[derive(Debug)]
pub enum Outcome<T> {
    Now(Result<T>),
    Later(String),
}

/// Something the caller must do after an operation.
#[derive(Debug)]
pub enum Event {
    Joined {
        member_id: String,
        result: Result<JoinResponse>,
    },
    Synced {
        member_id: String,
        result: Result<SyncResponse>,
    },
    /// The group's membership changed: write its metadata record (nobody waits for it).
    Persist,
    /// The leader's SyncGroup: write `value` (the group record carrying the new assignment)
    /// and call [`Group::complete_store`] with `store_id` once it is durable or failed. As
    /// in Kafka, no SyncGroup response of the generation goes out before that: a member
    /// never acts on an assignment that a crash could take back.
    StoreAssignment {
        store_id: u64,
        value: super::records::GroupValue,
    },
}

/// Why a group record could not be stored, mapped as Kafka's group coordinator maps append
/// errors for SyncGroup (`appendGroupMetadataErrorToResponseError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreFailure {
    /// The partition is not led here or its log failed (NOT_LEADER_OR_FOLLOWER,
    /// KAFKA_STORAGE_ERROR): NOT_COORDINATOR, the client looks the coordinator up again.
    NotCoordinator,
    /// Anything transient (not enough replicas, timeout, backpressure):
    /// COORDINATOR_NOT_AVAILABLE, the client retries.
    CoordinatorNotAvailable,
}

impl StoreFailure {
    pub fn error(self, group_id: &str) -> Error {
        let what = format!("{group_id}: group metadata not stored");
        match self {
            StoreFailure::NotCoordinator => Error::NotCoordinator(what),
            StoreFailure::CoordinatorNotAvailable => Error::CoordinatorNotAvailable(what),
        }
    }
}

/// A leader's assignment waiting for its group record to be durable.
#[derive(Debug)]
struct PendingStore {
    store_id: u64,
    generation_id: i32,
    assignments: HashMap<String, Bytes>,
}

/// A committed offset, with the log offset of the record that holds it (so a late
/// durability notification never overwrites a newer commit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    pub expire_timestamp_ms: i64,
    pub record_offset: i64,
}

/// The window `group.initial.rebalance.delay.ms` opens for the first rebalance of an empty
/// group (Kafka's `InitialDelayedJoin`): it is extended while members keep arriving, up
/// to the rebalance timeout.
#[derive(Clone, Copy, Debug)]
struct InitialDelay {
    remaining_ms: i64,
    member_joined: bool,
}

#[derive(Debug)]
pub struct Group {
    pub id: String,
    state: GroupState,
    state_timestamp_ms: i64,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// group.instance.id → member id (KIP-345).
    static_members: HashMap<String, String>,
    /// KIP-394: member ids handed out with MEMBER_ID_REQUIRED → expiry.
    pending_members: BTreeMap<String, i64>,
    rebalance_deadline_ms: Option<i64>,
    initial_delay: Option<InitialDelay>,
    /// The leader's assignment while its record is being stored (CompletingRebalance).
    pending_store: Option<PendingStore>,
    next_store_id: u64,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    events: Vec<Event>,
    config: GroupConfig,
}

impl Group {
    pub fn new(id: String, config: GroupConfig, now_ms: i64) -> Group {
        Group {
            id,
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: BTreeMap::new(),
            rebalance_deadline_ms: None,
            initial_delay: None,
            pending_store: None,
            next_store_id: 0,
            offsets: BTreeMap::new(),
            events: Vec::new(),
            config,
        }
    }

    pub fn state(&self) -> GroupState {
        self.state
    }
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }
    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }
    pub fn member_count(&self) -> usize {
        self.members.len()
    }
    pub fn state_timestamp_ms(&self) -> i64 {
        self.state_timestamp_ms
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    /// Rebuild from a stored group record (replay). Members get a fresh session.
    pub fn restore(&mut self, value: &super::records::GroupValue, now_ms: i64) {
        self.generation_id = value.generation;
        self.protocol_type = Some(value.protocol_type.clone()).filter(|t| !t.is_empty());
        self.protocol_name = value.protocol.clone();
        self.leader = value.leader.clone();
        self.members.clear();
        self.static_members.clear();
        for m in &value.members {
            let protocols = match &value.protocol {
                Some(p) => vec![(p.clone(), m.subscription.clone())],
                None => Vec::new(),
            };
            if let Some(instance) = &m.group_instance_id {
                self.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            self.members.insert(
                m.member_id.clone(),
                Member {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    protocols,
                    assignment: m.assignment.clone(),
                    awaiting_join: false,
                    awaiting_sync: false,
                    heartbeat_deadline_ms: now_ms + m.session_timeout_ms.max(0) as i64,
                },
            );
        }
        let state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        self.transition(state, now_ms);
        self.state_timestamp_ms = value.current_state_timestamp_ms.max(0).min(now_ms);
    }

    /// The record to persist for the current generation.
    pub fn to_value(&self) -> super::records::GroupValue {
        self.value_with(|m| m.assignment.clone())
    }

    /// The group record with each member's assignment taken from `assignment`.
    fn value_with(&self, assignment: impl Fn(&Member) -> Bytes) -> super::records::GroupValue {
        let protocol = self.protocol_name.clone();
        super::records::GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp_ms: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| super::records::MemberValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: protocol
                        .as_deref()
                        .map(|p| m.metadata(p))
                        .unwrap_or_default(),
                    assignment: assignment(m),
                })
                .collect(),
        }
    }

    // ----- JoinGroup -------------------------------------------------------------------

    pub fn join(&mut self, p: JoinParams, now_ms: i64) -> Outcome<JoinResponse> {
        let outcome = self.join_inner(p, now_ms);
        self.tick(now_ms);
        outcome
    }

    fn join_inner(&mut self, p: JoinParams, now_ms: i64) -> Outcome<JoinResponse> {
        if self.state == GroupState::Dead {
            return Outcome::Now(Err(Error::CoordinatorNotAvailable(self.id.clone())));
        }
        if p.session_timeout_ms < self.config.session_timeout_ms_min
            || p.session_timeout_ms > self.config.session_timeout_ms_max
        {
            return Outcome::Now(Err(Error::InvalidSessionTimeout(p.session_timeout_ms)));
        }
        if !self.supports_protocols(&p.protocol_type, &p.protocols) {
            return Outcome::Now(Err(Error::InconsistentGroupProtocol(self.id.clone())));
        }
        if p.member_id.is_empty() {
            self.join_unknown_member(p, now_ms)
        } else {
            self.join_known_member(p, now_ms)
        }
    }

    /// Kafka `supportsProtocols`: an empty group takes any non-empty offer; otherwise the
    /// type must match and one offered protocol must be supported by every member.
    fn supports_protocols(&self, protocol_type: &str, protocols: &Protocols) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    fn new_member_id(prefix: &str) -> String {
        format!("{prefix}-{}", uuid::Uuid::new_v4())
    }

    fn join_unknown_member(&mut self, p: JoinParams, now_ms: i64) -> Outcome<JoinResponse> {
        if let Some(instance) = p.group_instance_id.clone() {
            let new_id = Self::new_member_id(&instance);
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self.rejoin_static_member(p, old_id, new_id, now_ms);
            }
            return self.add_member_and_rebalance(p, new_id, now_ms);
        }
        let new_id = Self::new_member_id(&p.client_id);
        if p.require_known_member_id {
            if self.members.len() + self.pending_members.len() >= self.config.members_max {
                return Outcome::Now(Err(Error::GroupMaxSizeReached(self.id.clone())));
            }
            let deadline = now_ms + p.session_timeout_ms as i64;
            self.pending_members.insert(new_id.clone(), deadline);
            return Outcome::Now(Err(Error::MemberIdRequired(new_id)));
        }
        self.add_member_and_rebalance(p, new_id, now_ms)
    }

    /// A static member came back with a new process (no member id): it takes the old
    /// member's place; a stable group with unchanged protocols does not rebalance.
    fn rejoin_static_member(
        &mut self,
        p: JoinParams,
        old_id: String,
        new_id: String,
        now_ms: i64,
    ) -> Outcome<JoinResponse> {
        let mut member = self
            .members
            .remove(&old_id)
            .expect("static map is consistent");
        if member.awaiting_join {
            self.events.push(Event::Joined {
                member_id: old_id.clone(),
                result: Err(Error::FencedInstanceId(old_id.clone())),
            });
        }
        if member.awaiting_sync {
            self.events.push(Event::Synced {
                member_id: old_id.clone(),
                result: Err(Error::FencedInstanceId(old_id.clone())),
            });
            member.awaiting_sync = false;
        }
        let protocols_changed = member.protocols != p.protocols;
        member.member_id = new_id.clone();
        member.client_id = p.client_id.clone();
        member.client_host = p.client_host.clone();
        member.rebalance_timeout_ms = p.rebalance_timeout_ms;
        member.session_timeout_ms = p.session_timeout_ms;
        member.protocols = p.protocols.clone();
        member.heartbeat_deadline_ms = now_ms + p.session_timeout_ms as i64;
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.clone());
        }
        let instance = p.group_instance_id.clone().expect("static member");
        self.static_members.insert(instance, new_id.clone());
        self.members.insert(new_id.clone(), member);
        match self.state {
            GroupState::Stable if !protocols_changed => {
                let is_leader = self.leader.as_deref() == Some(new_id.as_str());
                self.events.push(Event::Persist);
                Outcome::Now(Ok(self.join_response(&new_id, is_leader, is_leader)))
            }
            GroupState::PreparingRebalance => {
                self.members
                    .get_mut(&new_id)
                    .expect("inserted")
                    .awaiting_join = true;
                self.try_complete_join(now_ms);
                Outcome::Later(new_id)
            }
            _ => {
                self.members
                    .get_mut(&new_id)
                    .expect("inserted")
                    .awaiting_join = true;
                self.prepare_rebalance(now_ms);
                Outcome::Later(new_id)
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        p: JoinParams,
        member_id: String,
        now_ms: i64,
    ) -> Outcome<JoinResponse> {
        if self.members.len() >= self.config.members_max {
            return Outcome::Now(Err(Error::GroupMaxSizeReached(self.id.clone())));
        }
        if self.members.is_empty() {
            self.protocol_type = Some(p.protocol_type.clone());
        }
        if let Some(instance) = &p.group_instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        self.members.insert(
            member_id.clone(),
            Member {
                member_id: member_id.clone(),
                group_instance_id: p.group_instance_id,
                client_id: p.client_id,
                client_host: p.client_host,
                rebalance_timeout_ms: p.rebalance_timeout_ms,
                session_timeout_ms: p.session_timeout_ms,
                protocols: p.protocols,
                assignment: Bytes::new(),
                awaiting_join: true,
                awaiting_sync: false,
                heartbeat_deadline_ms: now_ms + p.session_timeout_ms as i64,
            },
        );
        if let Some(delay) = &mut self.initial_delay {
            delay.member_joined = true;
        }
        match self.state {
            GroupState::PreparingRebalance => self.try_complete_join(now_ms),
            _ => self.prepare_rebalance(now_ms),
        }
        Outcome::Later(member_id)
    }

    fn join_known_member(&mut self, p: JoinParams, now_ms: i64) -> Outcome<JoinResponse> {
        if self.pending_members.remove(&p.member_id).is_some() {
            let id = p.member_id.clone();
            return self.add_member_and_rebalance(p, id, now_ms);
        }
        if let Err(e) = self.validate_member(&p.member_id, p.group_instance_id.as_deref()) {
            return Outcome::Now(Err(e));
        }
        let id = p.member_id.clone();
        let member = self.members.get_mut(&id).expect("validated");
        let protocols_changed = member.protocols != p.protocols;
        member.heartbeat_deadline_ms = now_ms + p.session_timeout_ms as i64;
        match self.state {
            GroupState::Empty | GroupState::Dead => Outcome::Now(Err(Error::UnknownMemberId(id))),
            GroupState::PreparingRebalance => {
                self.update_member(&id, p);
                self.try_complete_join(now_ms);
                Outcome::Later(id)
            }
            GroupState::CompletingRebalance if !protocols_changed => {
                // The member lost its join response: send it again.
                let is_leader = self.leader.as_deref() == Some(id.as_str());
                Outcome::Now(Ok(self.join_response(&id, is_leader, false)))
            }
            GroupState::Stable
                if !protocols_changed && self.leader.as_deref() != Some(id.as_str()) =>
            {
                Outcome::Now(Ok(self.join_response(&id, false, false)))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member(&id, p);
                self.prepare_rebalance(now_ms);
                Outcome::Later(id)
            }
        }
    }

    fn update_member(&mut self, id: &str, p: JoinParams) {
        // A second JoinGroup while the first waits replaces it; the caller, which owns the
        // waiting responses, answers the first.
        let member = self.members.get_mut(id).expect("known member");
        member.awaiting_join = true;
        member.rebalance_timeout_ms = p.rebalance_timeout_ms;
        member.session_timeout_ms = p.session_timeout_ms;
        member.protocols = p.protocols;
        member.client_id = p.client_id;
        member.client_host = p.client_host;
    }

    /// Kafka `validateMember`: a static member id that does not match its instance's
    /// current member is fenced; an unknown member id is unknown.
    fn validate_member(&self, member_id: &str, instance: Option<&str>) -> Result<()> {
        if let Some(instance) = instance {
            match self.static_members.get(instance) {
                Some(current) if current == member_id => return Ok(()),
                Some(_) => return Err(Error::FencedInstanceId(member_id.to_string())),
                None => {}
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(Error::UnknownMemberId(member_id.to_string()))
        }
    }

    fn join_response(&self, member_id: &str, with_members: bool, skip: bool) -> JoinResponse {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let members = if with_members {
            self.members
                .values()
                .map(|m| JoinMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    metadata: m.metadata(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResponse {
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment: skip,
            member_id: member_id.to_string(),
            members,
        }
    }

    fn prepare_rebalance(&mut self, now_ms: i64) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_assignments_and_fail_syncs();
        }
        let rebalance_timeout_ms = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0) as i64)
            .max()
            .unwrap_or(0);
        if self.state == GroupState::Empty {
            let delay_ms = self
                .config
                .initial_rebalance_delay_ms
                .min(rebalance_timeout_ms);
            self.initial_delay = Some(InitialDelay {
                remaining_ms: rebalance_timeout_ms - delay_ms,
                member_joined: false,
            });
            self.rebalance_deadline_ms = Some(now_ms + delay_ms);
        } else {
            self.initial_delay = None;
            self.rebalance_deadline_ms = Some(now_ms + rebalance_timeout_ms);
        }
        self.transition(GroupState::PreparingRebalance, now_ms);
        self.try_complete_join(now_ms);
    }

    fn reset_assignments_and_fail_syncs(&mut self) {
        self.pending_store = None;
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            if m.awaiting_sync {
                m.awaiting_sync = false;
                self.events.push(Event::Synced {
                    member_id: m.member_id.clone(),
                    result: Err(Error::RebalanceInProgress(self.id.clone())),
                });
            }
        }
    }

    /// Kafka `DelayedJoin.tryComplete`: done once every member has rejoined and no
    /// KIP-394 member is still expected. The initial delay is never cut short.
    fn try_complete_join(&mut self, now_ms: i64) {
        if self.state != GroupState::PreparingRebalance || self.initial_delay.is_some() {
            return;
        }
        let all_joined = self.members.values().all(|m| m.awaiting_join);
        if all_joined && self.pending_members.is_empty() {
            self.complete_join(now_ms);
        }
    }

    fn complete_join(&mut self, now_ms: i64) {
        debug_assert_eq!(self.state, GroupState::PreparingRebalance);
        self.rebalance_deadline_ms = None;
        self.initial_delay = None;
        // Dynamic members that did not rejoin in time are gone; static ones stay until
        // their session expires (KIP-345).
        let dropped: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in dropped {
            self.remove_member(&id);
        }
        self.generation_id = self.generation_id.wrapping_add(1).max(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader = None;
            self.transition(GroupState::Empty, now_ms);
            self.events.push(Event::Persist);
            return;
        }
        self.protocol_name = Some(self.select_protocol());
        let leader_ok = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .is_some_and(|m| m.awaiting_join);
        if !leader_ok {
            self.leader = self
                .members
                .values()
                .find(|m| m.awaiting_join)
                .map(|m| m.member_id.clone());
        }
        self.transition(GroupState::CompletingRebalance, now_ms);
        let leader = self.leader.clone().unwrap_or_default();
        let ids: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join)
            .map(|m| m.member_id.clone())
            .collect();
        for id in ids {
            let response = self.join_response(&id, id == leader, false);
            let m = self.members.get_mut(&id).expect("member");
            m.awaiting_join = false;
            m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
            self.events.push(Event::Joined {
                member_id: id,
                result: Ok(response),
            });
        }
    }

    /// Kafka `selectProtocol`: among protocols every member supports, each member votes
    /// for its most preferred; the most votes wins (ties: the earliest member's order).
    fn select_protocol(&self) -> String {
        let candidates: Vec<&str> = self
            .members
            .values()
            .next()
            .map(|first| {
                first
                    .protocols
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .filter(|n| {
                        self.members
                            .values()
                            .all(|m| m.protocols.iter().any(|(x, _)| x == n))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut votes: Vec<(&str, usize)> = candidates.iter().map(|c| (*c, 0)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n.as_str()))
            {
                if let Some(v) = votes.iter_mut().find(|(c, _)| c == name) {
                    v.1 += 1;
                }
            }
        }
        let best = votes.iter().map(|(_, n)| *n).max().unwrap_or(0);
        votes
            .into_iter()
            .find(|(_, n)| *n == best)
            .map(|(c, _)| c.to_string())
            .unwrap_or_default()
    }

    fn remove_member(&mut self, id: &str) {
        let Some(m) = self.members.remove(id) else {
            return;
        };
        if let Some(instance) = &m.group_instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(id) {
                self.static_members.remove(instance);
            }
        }
        if m.awaiting_join {
            self.events.push(Event::Joined {
                member_id: id.to_string(),
                result: Err(Error::UnknownMemberId(id.to_string())),
            });
        }
        if m.awaiting_sync {
            self.events.push(Event::Synced {
                member_id: id.to_string(),
                result: Err(Error::UnknownMemberId(id.to_string())),
            });
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
    }

    /// After members left: Kafka `removeMemberAndUpdateGroup`.
    fn after_removal(&mut self, now_ms: i64) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now_ms),
            GroupState::PreparingRebalance => self.try_complete_join(now_ms),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    // ----- SyncGroup, Heartbeat, LeaveGroup ----------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now_ms: i64,
    ) -> Outcome<SyncResponse> {
        let outcome = self.sync_inner(
            member_id,
            instance,
            generation_id,
            protocol_type,
            protocol_name,
            assignments,
            now_ms,
        );
        self.tick(now_ms);
        outcome
    }

    #[allow(clippy::too_many_arguments)]
    fn sync_inner(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now_ms: i64,
    ) -> Outcome<SyncResponse> {
        if self.state == GroupState::Dead {
            return Outcome::Now(Err(Error::CoordinatorNotAvailable(self.id.clone())));
        }
        if let Err(e) = self.validate_member(member_id, instance) {
            return Outcome::Now(Err(e));
        }
        if generation_id != self.generation_id {
            return Outcome::Now(Err(Error::IllegalGeneration(generation_id)));
        }
        let type_ok = protocol_type.is_none_or(|t| Some(t) == self.protocol_type.as_deref());
        let name_ok = protocol_name.is_none_or(|n| Some(n) == self.protocol_name.as_deref());
        if !type_ok || !name_ok {
            return Outcome::Now(Err(Error::InconsistentGroupProtocol(self.id.clone())));
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                Outcome::Now(Err(Error::UnknownMemberId(member_id.to_string())))
            }
            GroupState::PreparingRebalance => {
                Outcome::Now(Err(Error::RebalanceInProgress(self.id.clone())))
            }
            GroupState::Stable => {
                let m = self.members.get_mut(member_id).expect("validated");
                m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                let assignment = m.assignment.clone();
                Outcome::Now(Ok(self.sync_response(assignment)))
            }
            GroupState::CompletingRebalance => {
                let m = self.members.get_mut(member_id).expect("validated");
                m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                m.awaiting_sync = true;
                if self.leader.as_deref() != Some(member_id) {
                    return Outcome::Later(member_id.to_string());
                }
                // Kafka: the assignment is stored first; every SyncGroup response of this
                // generation (the leader's too) waits for the record in `complete_store`.
                let given: HashMap<String, Bytes> = assignments.into_iter().collect();
                let assignments: HashMap<String, Bytes> = self
                    .members
                    .keys()
                    .map(|id| (id.clone(), given.get(id).cloned().unwrap_or_default()))
                    .collect();
                let value = self.value_with(|m| assignments[&m.member_id].clone());
                let store_id = self.next_store_id;
                self.next_store_id += 1;
                self.pending_store = Some(PendingStore {
                    store_id,
                    generation_id: self.generation_id,
                    assignments,
                });
                self.events.push(Event::StoreAssignment { store_id, value });
                Outcome::Later(member_id.to_string())
            }
        }
    }

    /// The outcome of storing the leader's assignment ([`Event::StoreAssignment`]). Stored:
    /// the group becomes Stable and every waiting member gets its assignment. Failed: they
    /// get the mapped error and the group rebalances (Kafka `resetAndPropagateAssignmentError`
    /// then `maybePrepareRebalance`). A store the group has moved past (another rebalance, a
    /// newer leader SyncGroup) changes nothing.
    pub fn complete_store(
        &mut self,
        store_id: u64,
        result: std::result::Result<(), StoreFailure>,
        now_ms: i64,
    ) {
        let current = self
            .pending_store
            .as_ref()
            .is_some_and(|p| p.store_id == store_id);
        if !current {
            return;
        }
        let pending = self.pending_store.take().expect("checked");
        if self.state != GroupState::CompletingRebalance
            || self.generation_id != pending.generation_id
        {
            return;
        }
        match result {
            Ok(()) => {
                let mut assignments = pending.assignments;
                for m in self.members.values_mut() {
                    m.assignment = assignments.remove(&m.member_id).unwrap_or_default();
                }
                self.transition(GroupState::Stable, now_ms);
                let waiting: Vec<(String, Bytes)> = self
                    .members
                    .values_mut()
                    .filter(|m| m.awaiting_sync)
                    .map(|m| {
                        m.awaiting_sync = false;
                        (m.member_id.clone(), m.assignment.clone())
                    })
                    .collect();
                for (id, assignment) in waiting {
                    let response = self.sync_response(assignment);
                    self.events.push(Event::Synced {
                        member_id: id,
                        result: Ok(response),
                    });
                }
            }
            Err(failure) => {
                for m in self.members.values_mut() {
                    m.assignment = Bytes::new();
                    if m.awaiting_sync {
                        m.awaiting_sync = false;
                        self.events.push(Event::Synced {
                            member_id: m.member_id.clone(),
                            result: Err(failure.error(&self.id)),
                        });
                    }
                }
                self.prepare_rebalance(now_ms);
            }
        }
        self.tick(now_ms);
    }

    fn sync_response(&self, assignment: Bytes) -> SyncResponse {
        SyncResponse {
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment,
        }
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<()> {
        self.tick(now_ms);
        if self.state == GroupState::Dead {
            return Err(Error::CoordinatorNotAvailable(self.id.clone()));
        }
        self.validate_member(member_id, instance)?;
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                Err(Error::UnknownMemberId(member_id.to_string()))
            }
            GroupState::PreparingRebalance => {
                self.refresh(member_id, now_ms);
                Err(Error::RebalanceInProgress(self.id.clone()))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                if generation_id != self.generation_id {
                    return Err(Error::IllegalGeneration(generation_id));
                }
                self.refresh(member_id, now_ms);
                Ok(())
            }
        }
    }

    fn refresh(&mut self, member_id: &str, now_ms: i64) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
        }
    }

    /// LeaveGroup for each (member id, group instance id); results in the same order.
    pub fn leave(&mut self, leaving: &[(String, Option<String>)], now_ms: i64) -> Vec<Result<()>> {
        let mut removed = false;
        let results = leaving
            .iter()
            .map(|(member_id, instance)| {
                if self.state == GroupState::Dead {
                    return Err(Error::CoordinatorNotAvailable(self.id.clone()));
                }
                if let Some(instance) = instance {
                    let Some(current) = self.static_members.get(instance).cloned() else {
                        return Err(Error::UnknownMemberId(member_id.clone()));
                    };
                    if !member_id.is_empty() && *member_id != current {
                        return Err(Error::FencedInstanceId(member_id.clone()));
                    }
                    self.remove_member(&current);
                    removed = true;
                    return Ok(());
                }
                if self.pending_members.remove(member_id).is_some() {
                    removed = true;
                    return Ok(());
                }
                if !self.members.contains_key(member_id) {
                    return Err(Error::UnknownMemberId(member_id.clone()));
                }
                self.remove_member(member_id);
                removed = true;
                Ok(())
            })
            .collect();
        if removed {
            self.after_removal(now_ms);
        }
        self.tick(now_ms);
        results
    }

    // ----- timers ------------------------------------------------------------------------

    /// When [`Group::tick`] has something to do next.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        let sessions = self
            .members
            .values()
            .filter(|m| !m.awaiting_join)
            .map(|m| m.heartbeat_deadline_ms);
        let pending = self.pending_members.values().copied();
        sessions
            .chain(pending)
            .chain(self.rebalance_deadline_ms)
            .min()
    }

    /// Apply every deadline that has passed: the (initial) rebalance timeout, expired
    /// KIP-394 pending members, and members whose session expired.
    pub fn tick(&mut self, now_ms: i64) {
        let expired: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, d)| **d <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.pending_members.remove(id);
        }
        let dead: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join && m.heartbeat_deadline_ms <= now_ms)
            .map(|m| m.member_id.clone())
            .collect();
        for id in &dead {
            self.remove_member(id);
        }
        if !dead.is_empty() || !expired.is_empty() {
            self.after_removal(now_ms);
        }
        if self.state == GroupState::PreparingRebalance
            && self.rebalance_deadline_ms.is_some_and(|d| d <= now_ms)
        {
            match self.initial_delay {
                Some(delay) if delay.member_joined && delay.remaining_ms > 0 => {
                    let step = self
                        .config
                        .initial_rebalance_delay_ms
                        .min(delay.remaining_ms);
                    self.initial_delay = Some(InitialDelay {
                        remaining_ms: delay.remaining_ms - step,
                        member_joined: false,
                    });
                    self.rebalance_deadline_ms = Some(now_ms + step);
                }
                _ => self.complete_join(now_ms),
            }
        }
    }

    // ----- offsets -----------------------------------------------------------------------

    /// Kafka `validateOffsetCommit` for a classic group. `generation_id < 0` with no
    /// member id is a commit from outside the group (admin tools, manual assignment),
    /// allowed only while the group has no members.
    pub fn validate_commit(
        &self,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
    ) -> Result<()> {
        if self.state == GroupState::Dead {
            return Err(Error::CoordinatorNotAvailable(self.id.clone()));
        }
        if generation_id < 0 && member_id.is_empty() && self.members.is_empty() {
            return Ok(());
        }
        self.validate_member(member_id, instance)?;
        if generation_id != self.generation_id {
            return Err(Error::IllegalGeneration(generation_id));
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(Error::RebalanceInProgress(self.id.clone()));
        }
        Ok(())
    }

    /// Record a durable commit unless a newer record already set this partition.
    pub fn apply_offset(&mut self, topic: &str, partition: i32, value: CommittedOffset) {
        let key = (topic.to_string(), partition);
        match self.offsets.get(&key) {
            Some(old) if old.record_offset > value.record_offset => {}
            _ => {
                self.offsets.insert(key, value);
            }
        }
    }

    /// Offsets whose retention has passed (Kafka: a consumer group's offsets expire
    /// `offsets.retention.minutes` after it became empty; a group with no protocol type
    /// — manual assignment — from each commit's time; an explicit expiry wins).
    pub fn expired_offsets(&self, now_ms: i64, retention_ms: i64) -> Vec<(String, i32)> {
        if self.state != GroupState::Empty {
            return Vec::new();
        }
        self.offsets
            .iter()
            .filter(|(_, o)| {
                let expires = if o.expire_timestamp_ms >= 0 {
                    o.expire_timestamp_ms
                } else if self.protocol_type.is_some() {
                    self.state_timestamp_ms.saturating_add(retention_ms)
                } else {
                    o.commit_timestamp_ms.saturating_add(retention_ms)
                };
                expires <= now_ms
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Topics named in the members' consumer-protocol subscriptions (OffsetDelete refuses
    /// to delete offsets of a subscribed topic).
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = Vec::new();
        for m in self.members.values() {
            topics.extend(decode_subscription_topics(&m.metadata(protocol))?);
        }
        Some(topics)
    }

    /// DeleteGroups: only a group without members may go.
    pub fn mark_dead(&mut self, now_ms: i64) -> Result<()> {
        match self.state {
            GroupState::Dead => Err(Error::GroupIdNotFound(self.id.clone())),
            GroupState::Empty => {
                self.transition(GroupState::Dead, now_ms);
                self.pending_members.clear();
                Ok(())
            }
            _ => Err(Error::NonEmptyGroup(self.id.clone())),
        }
    }
}

/// The topics of a ConsumerProtocolSubscription (any version: the topic array comes
/// first after the version). `None` when the bytes do not parse.
pub fn decode_subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut pos = 2usize;
    let read_i32 = |pos: &mut usize| -> Option<i32> {
        let b = metadata.get(*pos..*pos + 4)?;
        *pos += 4;
        Some(i32::from_be_bytes(b.try_into().ok()?))
    };
    let count = read_i32(&mut pos)?;
    if count < 0 || count as usize > metadata.len() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len_bytes = metadata.get(pos..pos + 2)?;
        let len = i16::from_be_bytes(len_bytes.try_into().ok()?);
        pos += 2;
        if len < 0 {
            return None;
        }
        let raw = metadata.get(pos..pos + len as usize)?;
        pos += len as usize;
        topics.push(String::from_utf8_lossy(raw).into_owned());
    }
    Some(topics)
}

#[cfg(test)]
mod tests;
