//! The group state machine under a manual clock: every timeout is crossed by moving the
//! clock and calling `tick`, never by waiting.

use super::*;
use shards::clock::{Clock, ManualClock};

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

fn config(initial_delay_ms: i64) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: initial_delay_ms,
        ..GroupConfig::default()
    }
}

fn params(member_id: &str, protocols: &[(&str, &[u8])]) -> JoinParams {
    JoinParams {
        member_id: member_id.to_string(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        rebalance_timeout_ms: REBALANCE_MS,
        session_timeout_ms: SESSION_MS,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|(n, m)| (n.to_string(), Bytes::copy_from_slice(m)))
            .collect(),
        require_known_member_id: true,
    }
}

fn range() -> JoinParams {
    params("", &[("range", b"r")])
}

/// Joined events by member id.
fn joined(g: &mut Group) -> HashMap<String, Result<JoinResponse>> {
    g.take_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Joined { member_id, result } => Some((member_id, result)),
            _ => None,
        })
        .collect()
}

fn synced(events: Vec<Event>) -> HashMap<String, Result<SyncResponse>> {
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Synced { member_id, result } => Some((member_id, result)),
            _ => None,
        })
        .collect()
}

/// The leader's SyncGroup in CompletingRebalance: no response goes out (the leader's own
/// included) until its group record is stored; storing it answers every waiting member.
fn leader_sync(
    g: &mut Group,
    leader: &str,
    instance: Option<&str>,
    assignments: Vec<(String, Bytes)>,
    now_ms: i64,
) -> HashMap<String, Result<SyncResponse>> {
    let generation = g.generation_id();
    let outcome = g.sync(
        leader,
        instance,
        generation,
        None,
        None,
        assignments,
        now_ms,
    );
    assert!(
        matches!(outcome, Outcome::Later(ref id) if id == leader),
        "the leader's sync waits for the store: {outcome:?}"
    );
    let (store_id, value) = take_store(g);
    assert_eq!(value.generation, generation);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    g.complete_store(store_id, Ok(()), now_ms);
    assert_eq!(g.state(), GroupState::Stable);
    synced(g.take_events())
}

/// The one StoreAssignment event pending, with no SyncGroup answered yet.
fn take_store(g: &mut Group) -> (u64, super::super::records::GroupValue) {
    let mut stores = Vec::new();
    for e in g.take_events() {
        match e {
            Event::StoreAssignment { store_id, value } => stores.push((store_id, value)),
            Event::Synced { member_id, .. } => {
                panic!("{member_id} answered before the group record was stored")
            }
            _ => {}
        }
    }
    assert_eq!(stores.len(), 1, "one group record to store");
    stores.pop().expect("one")
}

/// KIP-394 first round trip: the member id comes back with MEMBER_ID_REQUIRED.
fn member_id_for(g: &mut Group, clock: &ManualClock) -> String {
    match g.join(range(), clock.now_ms()) {
        Outcome::Now(Err(Error::MemberIdRequired(id))) => id,
        other => panic!("expected MEMBER_ID_REQUIRED, got {other:?}"),
    }
}

/// Join a fresh group with one member and complete the first generation (delay 0).
fn stable_with_one(clock: &ManualClock) -> (Group, String) {
    let mut g = Group::new("g".into(), config(0), clock.now_ms());
    let id = member_id_for(&mut g, clock);
    let outcome = g.join(params(&id, &[("range", b"r")]), clock.now_ms());
    let Outcome::Later(waiting) = outcome else {
        panic!("join waits for the rebalance: {outcome:?}");
    };
    assert_eq!(waiting, id);
    let events = joined(&mut g);
    let r = events[&id].as_ref().unwrap();
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader, id);
    assert_eq!(r.members.len(), 1, "the leader gets the member list");
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    let answered = leader_sync(
        &mut g,
        &id,
        None,
        vec![(id.clone(), Bytes::from_static(b"a1"))],
        clock.now_ms(),
    );
    assert_eq!(answered.len(), 1);
    assert_eq!(
        answered[&id].as_ref().unwrap().assignment,
        Bytes::from_static(b"a1")
    );
    assert_eq!(g.state(), GroupState::Stable);
    (g, id)
}

#[test]
fn first_join_requires_member_id_then_completes() {
    let clock = ManualClock::new(1_000);
    let (g, id) = stable_with_one(&clock);
    assert_eq!(g.generation_id(), 1);
    assert_eq!(g.protocol_name(), Some("range"));
    assert_eq!(g.leader(), Some(id.as_str()));
    assert!(id.starts_with("client-"), "{id}");
}

#[test]
fn initial_rebalance_delay_waits_and_extends_while_members_arrive() {
    let clock = ManualClock::new(0);
    let mut g = Group::new("g".into(), config(3_000), clock.now_ms());
    let a = member_id_for(&mut g, &clock);
    assert!(matches!(
        g.join(params(&a, &[("range", b"")]), clock.now_ms()),
        Outcome::Later(_)
    ));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(g.next_deadline_ms(), Some(3_000));
    clock.advance_ms(1_000);
    let b = member_id_for(&mut g, &clock);
    assert!(matches!(
        g.join(params(&b, &[("range", b"")]), clock.now_ms()),
        Outcome::Later(_)
    ));
    // Every member has joined, but the initial delay is never cut short.
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    clock.set_ms(2_999);
    g.tick(clock.now_ms());
    assert!(joined(&mut g).is_empty());
    clock.set_ms(3_000);
    g.tick(clock.now_ms());
    // A member arrived during the delay: one more delay (Kafka's InitialDelayedJoin).
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(g.next_deadline_ms(), Some(6_000));
    clock.set_ms(6_000);
    g.tick(clock.now_ms());
    let events = joined(&mut g);
    assert_eq!(events.len(), 2);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    let leader = g.leader().unwrap().to_string();
    for (id, r) in &events {
        let r = r.as_ref().unwrap();
        assert_eq!(r.generation_id, 1);
        assert_eq!(r.members.len(), if *id == leader { 2 } else { 0 });
    }
}

#[test]
fn second_member_triggers_rebalance_and_followers_wait_for_the_leader() {
    let clock = ManualClock::new(0);
    let (mut g, a) = stable_with_one(&clock);
    let b = member_id_for(&mut g, &clock);
    assert!(matches!(
        g.join(params(&b, &[("range", b"r")]), clock.now_ms()),
        Outcome::Later(_)
    ));
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    // The old member learns of the rebalance from its heartbeat.
    assert!(matches!(
        g.heartbeat(&a, None, 1, clock.now_ms()),
        Err(Error::RebalanceInProgress(_))
    ));
    assert!(matches!(
        g.join(params(&a, &[("range", b"r")]), clock.now_ms()),
        Outcome::Later(_)
    ));
    let events = joined(&mut g);
    assert_eq!(events.len(), 2);
    assert_eq!(g.generation_id(), 2);
    assert_eq!(g.leader(), Some(a.as_str()), "the leader keeps its role");
    // The follower's sync waits; the leader's completes both.
    let follower = g.sync(&b, None, 2, None, None, vec![], clock.now_ms());
    assert!(matches!(follower, Outcome::Later(ref id) if *id == b));
    let assignments = vec![
        (a.clone(), Bytes::from_static(b"A")),
        (b.clone(), Bytes::from_static(b"B")),
    ];
    let events = leader_sync(&mut g, &a, None, assignments, clock.now_ms());
    assert_eq!(events.len(), 2, "leader and follower answered together");
    assert_eq!(
        events[&a].as_ref().unwrap().assignment,
        Bytes::from_static(b"A")
    );
    assert_eq!(
        events[&b].as_ref().unwrap().assignment,
        Bytes::from_static(b"B")
    );
    assert_eq!(g.state(), GroupState::Stable);
    // Stale generation.
    assert!(matches!(
        g.heartbeat(&b, None, 1, clock.now_ms()),
        Err(Error::IllegalGeneration(1))
    ));
    assert!(g.heartbeat(&b, None, 2, clock.now_ms()).is_ok());
}

#[test]
fn session_timeout_evicts_a_silent_member() {
    let clock = ManualClock::new(0);
    let (mut g, a) = stable_with_one(&clock);
    let b = member_id_for(&mut g, &clock);
    g.join(params(&b, &[("range", b"r")]), clock.now_ms());
    g.join(params(&a, &[("range", b"r")]), clock.now_ms());
    joined(&mut g);
    g.sync(&b, None, 2, None, None, vec![], clock.now_ms());
    leader_sync(&mut g, &a, None, vec![], clock.now_ms());
    assert_eq!(g.state(), GroupState::Stable);
    // a keeps heartbeating, b goes silent.
    for _ in 0..3 {
        clock.advance_ms(SESSION_MS as i64 / 3);
        g.heartbeat(&a, None, 2, clock.now_ms()).unwrap();
    }
    clock.advance_ms(SESSION_MS as i64 / 3);
    g.tick(clock.now_ms());
    assert_eq!(g.member_count(), 1, "b's session expired");
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert!(matches!(
        g.heartbeat(&b, None, 2, clock.now_ms()),
        Err(Error::UnknownMemberId(_))
    ));
    // a rejoins alone: a new generation with only a.
    g.join(params(&a, &[("range", b"r")]), clock.now_ms());
    let events = joined(&mut g);
    assert_eq!(events[&a].as_ref().unwrap().generation_id, 3);
    assert_eq!(events[&a].as_ref().unwrap().members.len(), 1);
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let clock = ManualClock::new(0);
    let (mut g, a) = stable_with_one(&clock);
    let b = member_id_for(&mut g, &clock);
    g.join(params(&b, &[("range", b"r")]), clock.now_ms());
    // a's session comes first; its heartbeats push it past the rebalance deadline.
    assert_eq!(g.next_deadline_ms(), Some(SESSION_MS as i64));
    // a keeps heartbeating (REBALANCE_IN_PROGRESS) but never rejoins.
    while clock.now_ms() < REBALANCE_MS as i64 - 1_000 {
        clock.advance_ms(1_000);
        assert!(g.heartbeat(&a, None, 1, clock.now_ms()).is_err());
    }
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    clock.set_ms(REBALANCE_MS as i64);
    g.tick(clock.now_ms());
    let events = joined(&mut g);
    assert_eq!(events.len(), 1);
    assert!(events.contains_key(&b));
    assert_eq!(g.member_count(), 1);
    assert_eq!(
        g.leader(),
        Some(b.as_str()),
        "a new leader replaces the dropped one"
    );
}

#[test]
fn leave_group_rebalances_and_last_leave_empties_the_group() {
    let clock = ManualClock::new(0);
    let (mut g, a) = stable_with_one(&clock);
    let results = g.leave(
        &[(a.clone(), None), ("nobody".into(), None)],
        clock.now_ms(),
    );
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(Error::UnknownMemberId(_))));
    assert_eq!(g.state(), GroupState::Empty);
    assert_eq!(
        g.generation_id(),
        2,
        "the empty generation is a generation too"
    );
    assert!(g.take_events().iter().any(|e| matches!(e, Event::Persist)));
}

#[test]
fn kip394_pending_member_expires_after_session_timeout() {
    let clock = ManualClock::new(0);
    let mut g = Group::new("g".into(), config(0), 0);
    let id = member_id_for(&mut g, &clock);
    assert_eq!(g.next_deadline_ms(), Some(SESSION_MS as i64));
    clock.advance_ms(SESSION_MS as i64);
    g.tick(clock.now_ms());
    assert_eq!(g.next_deadline_ms(), None);
    // The expired id is no longer pending: joining with it is an unknown member.
    assert!(matches!(
        g.join(params(&id, &[("range", b"")]), clock.now_ms()),
        Outcome::Now(Err(Error::UnknownMemberId(_)))
    ));
}

#[test]
fn static_member_rejoin_keeps_assignment_without_rebalance() {
    let clock = ManualClock::new(0);
    let mut g = Group::new("g".into(), config(0), 0);
    let mut p = range();
    p.group_instance_id = Some("instance-1".into());
    // Static members skip KIP-394.
    let Outcome::Later(first) = g.join(p.clone(), 0) else {
        panic!("static join waits for the rebalance");
    };
    joined(&mut g);
    leader_sync(
        &mut g,
        &first,
        Some("instance-1"),
        vec![(first.clone(), Bytes::from_static(b"P0-3"))],
        0,
    );
    assert_eq!(g.state(), GroupState::Stable);
    // The process restarts: same instance id, no member id.
    clock.advance_ms(1_000);
    let Outcome::Now(Ok(r)) = g.join(p.clone(), clock.now_ms()) else {
        panic!("a stable group answers a static rejoin at once");
    };
    assert_ne!(r.member_id, first);
    assert_eq!(r.generation_id, 1, "no new generation");
    assert_eq!(g.state(), GroupState::Stable);
    let Outcome::Now(Ok(s)) = g.sync(
        &r.member_id,
        Some("instance-1"),
        1,
        None,
        None,
        vec![],
        1_000,
    ) else {
        panic!("sync in stable");
    };
    assert_eq!(s.assignment, Bytes::from_static(b"P0-3"));
    // The old incarnation is fenced.
    assert!(matches!(
        g.heartbeat(&first, Some("instance-1"), 1, clock.now_ms()),
        Err(Error::FencedInstanceId(_))
    ));
}

#[test]
fn protocol_must_be_shared() {
    let clock = ManualClock::new(0);
    let (mut g, _a) = stable_with_one(&clock);
    let mut p = params("", &[("roundrobin", b"")]);
    p.require_known_member_id = false;
    assert!(matches!(
        g.join(p, clock.now_ms()),
        Outcome::Now(Err(Error::InconsistentGroupProtocol(_)))
    ));
    let mut p = range();
    p.protocol_type = "connect".into();
    assert!(matches!(
        g.join(p, clock.now_ms()),
        Outcome::Now(Err(Error::InconsistentGroupProtocol(_)))
    ));
}

#[test]
fn protocol_selection_by_votes() {
    let clock = ManualClock::new(0);
    let mut g = Group::new("g".into(), config(0), 0);
    for prefs in [
        &[("cooperative-sticky", &b""[..]), ("range", &b""[..])][..],
        &[("range", &b""[..]), ("cooperative-sticky", &b""[..])][..],
        &[("range", &b""[..]), ("cooperative-sticky", &b""[..])][..],
    ] {
        let mut p = params("", prefs);
        p.require_known_member_id = false;
        g.join(p, clock.now_ms());
    }
    // Delay 0 completes at the first join; the others trigger further rebalances that
    // wait for the earlier members to rejoin: rejoin everyone.
    let ids: Vec<String> = g.members().map(|m| m.member_id.clone()).collect();
    for id in &ids {
        let protocols = g
            .members()
            .find(|m| &m.member_id == id)
            .unwrap()
            .protocols
            .clone();
        let mut p = params(id, &[]);
        p.protocols = protocols;
        g.join(p, clock.now_ms());
    }
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(g.protocol_name(), Some("range"), "two votes beat one");
}

#[test]
fn session_timeout_bounds() {
    let mut g = Group::new("g".into(), GroupConfig::default(), 0);
    let mut p = range();
    p.session_timeout_ms = 5_999;
    assert!(matches!(
        g.join(p, 0),
        Outcome::Now(Err(Error::InvalidSessionTimeout(5_999)))
    ));
}

#[test]
fn offset_commit_validation_follows_kafka() {
    let clock = ManualClock::new(0);
    let mut empty = Group::new("simple".into(), config(0), 0);
    assert!(
        empty.validate_commit("", None, -1).is_ok(),
        "admin commit to an empty group"
    );
    let (g, a) = stable_with_one(&clock);
    assert!(matches!(
        g.validate_commit("", None, -1),
        Err(Error::UnknownMemberId(_))
    ));
    assert!(matches!(
        g.validate_commit(&a, None, 0),
        Err(Error::IllegalGeneration(0))
    ));
    assert!(g.validate_commit(&a, None, 1).is_ok());
    // A late durable record never overwrites a newer one.
    let offset = |offset, record_offset| CommittedOffset {
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms: 0,
        expire_timestamp_ms: -1,
        record_offset,
    };
    empty.apply_offset("t", 0, offset(10, 5));
    empty.apply_offset("t", 0, offset(7, 4));
    assert_eq!(empty.offsets[&("t".to_string(), 0)].offset, 10);
    empty.apply_offset("t", 0, offset(12, 6));
    assert_eq!(empty.offsets[&("t".to_string(), 0)].offset, 12);
}

#[test]
fn offsets_expire_only_when_empty_and_retention_passed() {
    let clock = ManualClock::new(0);
    let (mut g, a) = stable_with_one(&clock);
    g.apply_offset(
        "t",
        0,
        CommittedOffset {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
            expire_timestamp_ms: -1,
            record_offset: 0,
        },
    );
    let retention_ms = 60_000;
    assert!(
        g.expired_offsets(1_000_000, retention_ms).is_empty(),
        "stable group"
    );
    clock.set_ms(5_000);
    g.leave(&[(a, None)], clock.now_ms());
    assert_eq!(g.state(), GroupState::Empty);
    assert!(g
        .expired_offsets(5_000 + retention_ms - 1, retention_ms)
        .is_empty());
    assert_eq!(
        g.expired_offsets(5_000 + retention_ms, retention_ms),
        vec![("t".to_string(), 0)],
        "retention counts from when the group became empty"
    );
}

#[test]
fn delete_only_when_empty() {
    let clock = ManualClock::new(0);
    let (mut g, a) = stable_with_one(&clock);
    assert!(matches!(g.mark_dead(0), Err(Error::NonEmptyGroup(_))));
    g.leave(&[(a.clone(), None)], 0);
    assert!(g.mark_dead(0).is_ok());
    assert_eq!(g.state(), GroupState::Dead);
    assert!(matches!(
        g.join(range(), 0),
        Outcome::Now(Err(Error::CoordinatorNotAvailable(_)))
    ));
}

#[test]
fn restore_round_trips_through_the_record() {
    let clock = ManualClock::new(0);
    let (g, a) = stable_with_one(&clock);
    let value = g.to_value();
    let decoded = super::super::records::decode_group_value(
        super::super::records::encode_group_value(&value),
    )
    .unwrap();
    let mut restored = Group::new("g".into(), config(0), 0);
    restored.restore(&decoded, 100);
    assert_eq!(restored.state(), GroupState::Stable);
    assert_eq!(restored.generation_id(), 1);
    assert_eq!(restored.leader(), Some(a.as_str()));
    assert!(restored.heartbeat(&a, None, 1, 100).is_ok());
    let Outcome::Now(Ok(s)) = restored.sync(&a, None, 1, None, None, vec![], 100) else {
        panic!("sync");
    };
    assert_eq!(s.assignment, Bytes::from_static(b"a1"));
}

#[test]
fn subscription_topics_decode_and_reject_garbage() {
    // ConsumerProtocolSubscription v0: version, topics [string], user_data.
    let mut sub = vec![0u8, 0, 0, 0, 0, 2];
    for t in ["orders", "pay"] {
        sub.extend_from_slice(&(t.len() as i16).to_be_bytes());
        sub.extend_from_slice(t.as_bytes());
    }
    sub.extend_from_slice(&(-1i32).to_be_bytes());
    assert_eq!(
        decode_subscription_topics(&sub),
        Some(vec!["orders".to_string(), "pay".to_string()])
    );
    assert_eq!(
        decode_subscription_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]),
        None
    );
    assert_eq!(decode_subscription_topics(&sub[..9]), None);
}

/// Two members in CompletingRebalance (generation 2), the follower already waiting for its
/// assignment; returns (group, leader, follower).
fn completing_with_two(clock: &ManualClock) -> (Group, String, String) {
    let (mut g, a) = stable_with_one(clock);
    let b = member_id_for(&mut g, clock);
    g.join(params(&b, &[("range", b"r")]), clock.now_ms());
    g.join(params(&a, &[("range", b"r")]), clock.now_ms());
    joined(&mut g);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert!(matches!(
        g.sync(&b, None, 2, None, None, vec![], clock.now_ms()),
        Outcome::Later(_)
    ));
    (g, a, b)
}

#[test]
fn sync_answers_only_after_the_group_record_is_stored() {
    let clock = ManualClock::new(0);
    let (mut g, a, b) = completing_with_two(&clock);
    let assignments = vec![
        (a.clone(), Bytes::from_static(b"A")),
        (b.clone(), Bytes::from_static(b"B")),
    ];
    let outcome = g.sync(&a, None, 2, None, None, assignments, clock.now_ms());
    assert!(matches!(outcome, Outcome::Later(ref id) if *id == a));
    let (store_id, value) = take_store(&mut g);
    // The record carries the new generation and assignment, before memory does.
    assert_eq!(value.generation, 2);
    let stored: HashMap<String, Bytes> = value
        .members
        .iter()
        .map(|m| (m.member_id.clone(), m.assignment.clone()))
        .collect();
    assert_eq!(stored[&a], Bytes::from_static(b"A"));
    assert_eq!(stored[&b], Bytes::from_static(b"B"));
    // Meanwhile: still CompletingRebalance, heartbeats fine, commits refused as in Kafka.
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert!(g.heartbeat(&b, None, 2, clock.now_ms()).is_ok());
    assert!(matches!(
        g.validate_commit(&b, None, 2),
        Err(Error::RebalanceInProgress(_))
    ));
    // A follower arriving now waits with the others.
    assert!(matches!(
        g.sync(&b, None, 2, None, None, vec![], clock.now_ms()),
        Outcome::Later(_)
    ));
    assert!(
        g.take_events().is_empty(),
        "nobody answered before the store"
    );
    g.complete_store(store_id, Ok(()), clock.now_ms());
    let events = synced(g.take_events());
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[&a].as_ref().unwrap().assignment,
        Bytes::from_static(b"A")
    );
    assert_eq!(
        events[&b].as_ref().unwrap().assignment,
        Bytes::from_static(b"B")
    );
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(g.to_value(), value, "memory now matches the stored record");
    // A late second completion of the same store changes nothing.
    g.complete_store(store_id, Err(StoreFailure::NotCoordinator), clock.now_ms());
    assert!(g.take_events().is_empty());
    assert_eq!(g.state(), GroupState::Stable);
}

#[test]
fn failed_store_answers_the_mapped_error_and_rebalances() {
    for failure in [
        StoreFailure::NotCoordinator,
        StoreFailure::CoordinatorNotAvailable,
    ] {
        let clock = ManualClock::new(0);
        let (mut g, a, b) = completing_with_two(&clock);
        let assignments = vec![(a.clone(), Bytes::from_static(b"A"))];
        g.sync(&a, None, 2, None, None, assignments, clock.now_ms());
        let (store_id, _) = take_store(&mut g);
        g.complete_store(store_id, Err(failure), clock.now_ms());
        let events = synced(g.take_events());
        assert_eq!(events.len(), 2, "leader and follower both told");
        for id in [&a, &b] {
            let code = match &events[id] {
                Err(Error::NotCoordinator(_)) => StoreFailure::NotCoordinator,
                Err(Error::CoordinatorNotAvailable(_)) => StoreFailure::CoordinatorNotAvailable,
                other => panic!("{id}: expected the store error, got {other:?}"),
            };
            assert_eq!(code, failure);
        }
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        assert!(g.members().all(|m| m.assignment.is_empty()));
    }
}

#[test]
fn store_overtaken_by_a_rebalance_changes_nothing() {
    let clock = ManualClock::new(0);
    let (mut g, a, b) = completing_with_two(&clock);
    g.sync(&a, None, 2, None, None, vec![], clock.now_ms());
    let (store_id, _) = take_store(&mut g);
    // b leaves while the record is being written: both waiting syncs learn of the
    // rebalance (b as unknown now), and the group rebalances.
    g.leave(&[(b.clone(), None)], clock.now_ms());
    let events = synced(g.take_events());
    assert!(
        matches!(events[&a], Err(Error::RebalanceInProgress(_))),
        "{events:?}"
    );
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    g.complete_store(store_id, Ok(()), clock.now_ms());
    assert!(synced(g.take_events()).is_empty());
    assert_eq!(
        g.state(),
        GroupState::PreparingRebalance,
        "the stale store is ignored"
    );
}
