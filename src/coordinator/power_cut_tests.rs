//! Power-cut tests of the coordinator's storage path on the simulated storage
//! (`shards::storage::SimStorage`: only what a completed fdatasync / directory fsync covers
//! survives a cut, plus an arbitrary prefix of the rest, torn anywhere).
//!
//! The code under test is the coordinator's own: [`commit_record`] encodes a commit,
//! [`append_records`] appends it, [`wait_durable`] is what the broker awaits before it
//! acknowledges, [`store_group_record`] is what a SyncGroup leader's response awaits, and
//! [`replay_log`] is the load path that rebuilds groups after a restart. Only the log
//! underneath changes: a `Log<SimStorage>` with `flush.policy=always` instead of the
//! broker's partition on O_DIRECT files.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use shards::clock::{Clock, ManualClock};
use shards::log::{AppendInfo, FlushPolicy, Log, LogConfig, ShardBudgets};
use shards::storage::SimStorage;
use shards::{LeaderEpoch, Offset, TopicId};

use crate::test_rng::Rng;

use super::group::{Event, Group, GroupConfig, GroupState, JoinParams, Outcome, StoreFailure};
use super::{
    append_records, commit_record, drop_topic_offsets, records, replay_log, store_failure,
    store_group_record, wait_durable, CommitPart, RecordLog,
};
use crate::error::Error;

const DIR: &str = "/data/__consumer_offsets-0";
const GROUPS: [&str; 3] = ["g-a", "g-b", "g-c"];
const TOPICS: [&str; 2] = ["orders", "payments"];
const PARTITIONS: i32 = 4;

fn run<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move { f().await })
        .expect("executor")
        .join()
        .expect("test body panicked");
}

/// The coordinator's record log on the simulated storage.
struct SimLog(Rc<Log<SimStorage>>);

impl RecordLog for SimLog {
    fn append_batch(&self, batch: BytesMut) -> shards::Result<AppendInfo> {
        self.0.append(batch, LeaderEpoch(0))
    }
    async fn wait_durable(&self, last: Offset) -> shards::Result<()> {
        self.0.wait_durable(last).await
    }
}

async fn open(
    storage: &SimStorage,
    config: &LogConfig,
    clock: &Rc<ManualClock>,
) -> Rc<Log<SimStorage>> {
    Log::open(
        storage.clone(),
        PathBuf::from(DIR),
        TopicId(uuid::Uuid::from_u128(50)),
        config.clone(),
        clock.clone(),
        Rc::new(ShardBudgets::default()),
    )
    .await
    .expect("the offsets partition reopens after a power cut")
}

/// The coordinator's load path: replay from the log start to the high watermark (the
/// durable offset under `always`), as `slot()` does for a partition.
async fn replay(log: &Log<SimStorage>, now_ms: i64) -> BTreeMap<String, Group> {
    replay_log(
        log,
        log.log_start_offset(),
        log.durable_offset(),
        now_ms,
        &GroupConfig::default(),
    )
    .await
    .expect("replay of a recovered offsets partition")
    .groups
}

// ----- committed offsets ---------------------------------------------------------------

type Key = (String, String, i32);

/// What was written to one (group, topic, partition), in log order.
#[derive(Default)]
struct KeyHistory {
    /// (sequence, committed offset or None for a tombstone). Offsets are the sequence
    /// itself, unique across the test, so a value read back names the write it came from.
    writes: Vec<(u64, Option<i64>)>,
    /// The newest write acknowledged, or seen after a recovery: nothing older may come back.
    floor: u64,
}

#[derive(Default)]
struct Model {
    keys: HashMap<Key, KeyHistory>,
    next_seq: u64,
    acked: u64,
}

fn metadata_of(seq: u64) -> String {
    format!("m{seq}")
}

fn epoch_of(seq: u64) -> i32 {
    (seq % 1000) as i32
}

/// One committer: commits (and sometimes deletes) offsets until the storage dies. With
/// `wait` false it acknowledges right after the append — the bug the harness must catch.
async fn committer(log: Rc<SimLog>, model: Rc<RefCell<Model>>, seed: u64, wait: bool) {
    let mut rng = Rng(seed);
    loop {
        let group = GROUPS[rng.range(0, GROUPS.len() as u64) as usize];
        let mut recs: Vec<(Bytes, Option<Bytes>)> = Vec::new();
        let mut writes: Vec<(Key, u64, Option<i64>)> = Vec::new();
        for _ in 0..rng.range(1, 5) {
            let topic = TOPICS[rng.range(0, TOPICS.len() as u64) as usize];
            let partition = rng.range(0, PARTITIONS as u64) as i32;
            let seq = {
                let mut m = model.borrow_mut();
                m.next_seq += 1;
                m.next_seq
            };
            let key = (group.to_string(), topic.to_string(), partition);
            if rng.range(0, 10) == 0 {
                // OffsetDelete / topic deletion write exactly this tombstone.
                recs.push((records::encode_offset_key(group, topic, partition), None));
                writes.push((key, seq, None));
            } else {
                let part = CommitPart {
                    topic: topic.to_string(),
                    partition,
                    offset: seq as i64,
                    leader_epoch: epoch_of(seq),
                    metadata: Some(metadata_of(seq)),
                };
                let (record, _) = commit_record(group, &part, 1_000 + seq as i64, -1);
                recs.push(record);
                writes.push((key, seq, Some(seq as i64)));
            }
        }
        let appended = append_records(&*log, &recs, 1_000);
        let last = match appended {
            Ok((_, last)) => last,
            Err(Error::Engine(shards::Error::LogInFlightFull { .. })) => {
                if log.0.wait_for_space(4096).await.is_err() {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        // Appended: the order of these writes in the log is fixed now.
        {
            let mut m = model.borrow_mut();
            for (key, seq, value) in &writes {
                m.keys
                    .entry(key.clone())
                    .or_default()
                    .writes
                    .push((*seq, *value));
            }
        }
        if wait {
            if wait_durable(&*log, last).await.is_err() {
                return;
            }
        } else {
            futures_lite::future::yield_now().await;
        }
        let mut m = model.borrow_mut();
        m.acked += writes.len() as u64;
        for (key, seq, _) in &writes {
            let h = m.keys.get_mut(key).expect("recorded at append");
            h.floor = h.floor.max(*seq);
        }
    }
}

/// Every acknowledged write is the latest value (or a later write) of its key after
/// recovery, and every value read back is one that was written, intact.
fn check(model: &mut Model, groups: &BTreeMap<String, Group>, ctx: &str) -> Result<(), String> {
    for (key, h) in model.keys.iter_mut() {
        let (group, topic, partition) = key;
        let found = groups
            .get(group)
            .and_then(|g| g.offsets.get(&(topic.clone(), *partition)));
        match found {
            Some(o) => {
                let seq = o.offset as u64;
                let written = h
                    .writes
                    .iter()
                    .any(|(s, v)| *s == seq && *v == Some(o.offset));
                if !written || o.metadata != metadata_of(seq) || o.leader_epoch != epoch_of(seq) {
                    return Err(format!("{ctx}: {key:?} read back {o:?}, never written so"));
                }
                if seq < h.floor {
                    return Err(format!(
                        "{ctx}: {key:?} went back to write {seq}, acknowledged {}",
                        h.floor
                    ));
                }
                h.floor = seq;
            }
            None => {
                let deleted_since = h.writes.iter().any(|(s, v)| *s >= h.floor && v.is_none());
                if h.floor > 0 && !deleted_since {
                    return Err(format!(
                        "{ctx}: {key:?} lost: write {} was acknowledged",
                        h.floor
                    ));
                }
            }
        }
    }
    // Nothing read back that was never written.
    for (id, g) in groups {
        for (topic, partition) in g.offsets.keys() {
            let key = (id.clone(), topic.clone(), *partition);
            if !model.keys.contains_key(&key) {
                return Err(format!("{ctx}: {key:?} read back but never written"));
            }
        }
    }
    Ok(())
}

/// One random case: three lives, each ending in a power cut at a random operation.
async fn commit_case(seed: u64, wait: bool) -> Result<u64, String> {
    let mut rng = Rng(seed ^ 0x5eed);
    let clock = Rc::new(ManualClock::new(1_700_000_000_000));
    let config = LogConfig {
        segment_bytes: rng.range(4_000, 40_000),
        index_interval_bytes: rng.range(200, 4096),
        flush_policy: FlushPolicy::Always,
        in_flight_bytes_max: rng.range(5_000, 50_000) as usize,
        buffer_bytes_max: rng.range(0, 50_000) as usize,
        write_chunk_bytes: 4096 * rng.range(1, 4) as usize,
        writes_in_flight_max: rng.range(1, 4) as usize,
        write_step_bytes_max: rng.range(1, 60_000),
        preallocate_step_min_bytes: 8192,
        preallocate_step_max_bytes: 65536,
        ..LogConfig::default()
    };
    let model = Rc::new(RefCell::new(Model::default()));
    let mut storage = SimStorage::new();
    for life in 0..4u64 {
        let log = open(&storage, &config, &clock).await;
        let groups = replay(&log, clock.now_ms()).await;
        check(
            &mut model.borrow_mut(),
            &groups,
            &format!("seed {seed} life {life}"),
        )?;
        if life == 3 {
            break;
        }
        storage.fail_after_ops(rng.range(5, 400));
        let sim = Rc::new(SimLog(log.clone()));
        let tasks: Vec<_> = (0..rng.range(1, 4))
            .map(|t| {
                glommio::spawn_local(committer(
                    sim.clone(),
                    model.clone(),
                    seed * 100 + life * 10 + t,
                    wait,
                ))
            })
            .collect();
        while !storage.is_dead() && log.failure().is_none() {
            glommio::timer::sleep(std::time::Duration::from_micros(rng.range(0, 300))).await;
        }
        for t in tasks {
            t.await;
        }
        drop(sim);
        drop(log);
        let mode = rng.range(0, 3);
        let mut cut = Rng(seed ^ life ^ 0xdead_beef);
        storage = storage.cut_power(|n| match mode {
            0 => 0,
            1 => n,
            _ => cut.range(0, n as u64 + 1) as usize,
        });
    }
    let acked = model.borrow().acked;
    Ok(acked)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn coordinator_power_cuts_never_lose_acknowledged_commits() {
    let cases = env_u64("POWER_CUT_CASES", 40);
    let first = env_u64("POWER_CUT_FIRST", 0);
    let acked = Rc::new(RefCell::new(0u64));
    for seed in first..first + cases {
        let (tx, rx) = std::sync::mpsc::channel();
        run(move || async move {
            let _ = tx.send(commit_case(seed, true).await);
        });
        match rx.recv().expect("case result") {
            Ok(n) => {
                if std::env::var("POWER_CUT_TRACE").is_ok() {
                    eprintln!("seed {seed}: {n} commits acknowledged");
                }
                *acked.borrow_mut() += n
            }
            Err(violation) => panic!("{violation}"),
        }
    }
    // The cases did commit something (a harness that acknowledges nothing proves nothing).
    assert!(
        *acked.borrow() > cases * 10,
        "only {} commits acknowledged",
        acked.borrow()
    );
}

/// The harness can fail: acknowledging a commit as soon as it is appended, without the
/// durability wait the broker does, must be caught losing acknowledged commits.
#[test]
fn coordinator_power_cut_harness_catches_acks_before_durable() {
    let mut caught = 0;
    let cases = 20;
    for seed in 0..cases {
        let (tx, rx) = std::sync::mpsc::channel();
        run(move || async move {
            let _ = tx.send(commit_case(seed, false).await);
        });
        let result = rx.recv().expect("case result");
        if std::env::var("POWER_CUT_TRACE").is_ok() {
            eprintln!("seed {seed} without the durability wait: {result:?}");
        }
        if result.is_err() {
            caught += 1;
        }
    }
    assert!(
        caught >= cases / 2,
        "acks before durability caught in only {caught} of {cases} cases"
    );
}

// ----- group metadata of a rebalance (SyncGroup) -----------------------------------------

fn join_params(client: &str) -> JoinParams {
    JoinParams {
        member_id: String::new(),
        group_instance_id: None,
        client_id: client.to_string(),
        client_host: "/127.0.0.1".into(),
        rebalance_timeout_ms: 30_000,
        session_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
        require_known_member_id: false,
    }
}

/// A group of two members in CompletingRebalance: (group, leader, follower).
fn completing_group(now_ms: i64) -> (Group, String, String) {
    let config = GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    };
    let mut g = Group::new("g-sync".into(), config, now_ms);
    let Outcome::Later(a) = g.join(join_params("a"), now_ms) else {
        panic!("join waits");
    };
    // The first generation completes with `a` alone; `b` starts the next one.
    g.take_events();
    let Outcome::Later(b) = g.join(join_params("b"), now_ms) else {
        panic!("join waits");
    };
    let mut p = join_params("a");
    p.member_id = a.clone();
    assert!(matches!(g.join(p, now_ms), Outcome::Later(_)));
    g.take_events();
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    let leader = g.leader().expect("leader").to_string();
    let follower = if leader == a { b } else { a };
    assert!(matches!(
        g.sync(
            &follower,
            None,
            g.generation_id(),
            None,
            None,
            vec![],
            now_ms
        ),
        Outcome::Later(_)
    ));
    (g, leader, follower)
}

/// The leader's SyncGroup as the coordinator runs it: the state machine asks for the
/// record, `store_group_record` appends it and resolves once durable, `complete_store`
/// releases the responses. Returns the responses released.
async fn leader_sync_on(
    log: Rc<SimLog>,
    g: &mut Group,
    leader: &str,
    assignments: Vec<(String, Bytes)>,
    now_ms: i64,
) -> HashMap<String, crate::error::Result<super::SyncResponse>> {
    let generation = g.generation_id();
    let outcome = g.sync(leader, None, generation, None, None, assignments, now_ms);
    assert!(matches!(outcome, Outcome::Later(_)), "{outcome:?}");
    let mut store = None;
    for e in g.take_events() {
        match e {
            Event::StoreAssignment { store_id, value } => store = Some((store_id, value)),
            Event::Synced { member_id, .. } => panic!("{member_id} answered before the store"),
            _ => {}
        }
    }
    let (store_id, value) = store.expect("a group record to store");
    let stored = store_group_record(log, &g.id, &value, now_ms).await;
    g.complete_store(store_id, stored, now_ms);
    g.take_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Synced { member_id, result } => Some((member_id, result)),
            _ => None,
        })
        .collect()
}

#[test]
fn coordinator_sync_responses_follow_a_durable_group_record() {
    for seed in 0..20u64 {
        run(move || async move {
            let mut rng = Rng(seed);
            let clock = Rc::new(ManualClock::new(1_700_000_000_000));
            let config = LogConfig {
                flush_policy: FlushPolicy::Always,
                ..LogConfig::default()
            };
            let storage = SimStorage::new();
            let log = open(&storage, &config, &clock).await;
            let sim = Rc::new(SimLog(log.clone()));
            // Unrelated commits in flight around the rebalance, as in a live group.
            let part = CommitPart {
                topic: "orders".into(),
                partition: 0,
                offset: 5,
                leader_epoch: 0,
                metadata: None,
            };
            for _ in 0..rng.range(0, 20) {
                let (record, _) = commit_record("other", &part, 1, -1);
                append_records(&*sim, &[record], 1).expect("append");
            }
            let now = clock.now_ms();
            let (mut g, leader, follower) = completing_group(now);
            let assignments = vec![
                (leader.clone(), Bytes::from_static(b"P0,P1")),
                (follower.clone(), Bytes::from_static(b"P2,P3")),
            ];
            let answered = leader_sync_on(sim.clone(), &mut g, &leader, assignments, now).await;
            assert_eq!(answered.len(), 2, "seed {seed}: both members answered");
            assert!(answered.values().all(|r| r.is_ok()), "{answered:?}");
            // Power goes the moment the responses are out: nothing unsynced survives.
            drop(sim);
            drop(log);
            let after = storage.cut_power(|_| 0);
            let log = open(&after, &config, &clock).await;
            let groups = replay(&log, now).await;
            let restored = groups.get("g-sync").expect("the group record survived");
            assert_eq!(restored.generation_id(), g.generation_id(), "seed {seed}");
            assert_eq!(restored.leader(), Some(leader.as_str()));
            let got: HashMap<&str, &Bytes> = restored
                .members()
                .map(|m| (m.member_id.as_str(), &m.assignment))
                .collect();
            assert_eq!(got[leader.as_str()], &Bytes::from_static(b"P0,P1"));
            assert_eq!(got[follower.as_str()], &Bytes::from_static(b"P2,P3"));
        });
    }
}

#[test]
fn coordinator_sync_store_failure_answers_not_coordinator() {
    run(|| async {
        let clock = Rc::new(ManualClock::new(1_700_000_000_000));
        let config = LogConfig {
            flush_policy: FlushPolicy::Always,
            ..LogConfig::default()
        };
        let storage = SimStorage::new();
        let log = open(&storage, &config, &clock).await;
        let now = clock.now_ms();
        let (mut g, leader, follower) = completing_group(now);
        // The disk dies under the offsets partition (KAFKA_STORAGE_ERROR in Kafka).
        storage.kill();
        let answered = leader_sync_on(Rc::new(SimLog(log)), &mut g, &leader, vec![], now).await;
        assert_eq!(answered.len(), 2);
        for id in [&leader, &follower] {
            let Err(e) = &answered[id] else {
                panic!("{id} got an assignment that was never stored");
            };
            assert_eq!(
                crate::api::codes::code_of(e),
                crate::api::codes::NOT_COORDINATOR,
                "{e}"
            );
        }
        assert_eq!(g.state(), GroupState::PreparingRebalance);
    });
}

#[test]
fn coordinator_store_errors_map_as_kafka() {
    let not_coordinator = [
        Error::Engine(shards::Error::LogFailed("disk".into())),
        Error::Engine(shards::Error::Closed),
        Error::Engine(shards::Error::io("/x", std::io::Error::other("eio"))),
        Error::NotCoordinator("moved".into()),
    ];
    for e in &not_coordinator {
        assert_eq!(store_failure(e), StoreFailure::NotCoordinator, "{e}");
    }
    let not_available = [
        Error::Engine(shards::Error::LogInFlightFull {
            in_flight_bytes: 1,
            limit: 1,
        }),
        Error::Engine(shards::Error::Backpressure(1)),
        Error::CoordinatorLoadInProgress(3),
    ];
    for e in &not_available {
        assert_eq!(
            store_failure(e),
            StoreFailure::CoordinatorNotAvailable,
            "{e}"
        );
    }
    assert_eq!(
        crate::api::codes::code_of(&StoreFailure::CoordinatorNotAvailable.error("g")),
        crate::api::codes::COORDINATOR_NOT_AVAILABLE
    );
    assert_eq!(
        crate::api::codes::code_of(&StoreFailure::NotCoordinator.error("g")),
        crate::api::codes::NOT_COORDINATOR
    );
}

// ----- topic deletion ----------------------------------------------------------------------

#[test]
fn coordinator_deleted_topic_tombstones_survive_a_power_cut() {
    for seed in 0..10u64 {
        run(move || async move {
            let mut rng = Rng(seed);
            let clock = Rc::new(ManualClock::new(1_700_000_000_000));
            let config = LogConfig {
                flush_policy: FlushPolicy::Always,
                segment_bytes: rng.range(4_000, 40_000),
                ..LogConfig::default()
            };
            let storage = SimStorage::new();
            let log = open(&storage, &config, &clock).await;
            let sim = SimLog(log.clone());
            // g-a and g-b commit to both topics, g-c only to the topic to be deleted.
            let mut recs = Vec::new();
            for (group, topics) in [
                ("g-a", &TOPICS[..]),
                ("g-b", &TOPICS[..]),
                ("g-c", &TOPICS[..1]),
            ] {
                for topic in topics {
                    for partition in 0..PARTITIONS {
                        let part = CommitPart {
                            topic: topic.to_string(),
                            partition,
                            offset: rng.range(0, 1_000) as i64,
                            leader_epoch: 0,
                            metadata: None,
                        };
                        recs.push(commit_record(group, &part, 1, -1).0);
                    }
                }
            }
            let (_, last) = append_records(&sim, &recs, 1).expect("append");
            wait_durable(&sim, last).await.expect("durable");
            // The deletion, as `remove_topic_offsets` runs it on the loaded groups.
            let now = clock.now_ms();
            let mut groups = replay(&log, now).await;
            let before: BTreeMap<String, usize> = groups
                .iter()
                .map(|(id, g)| (id.clone(), g.offsets.len()))
                .collect();
            let deleted = vec![TOPICS[0].to_string()];
            let mut tombstones = Vec::new();
            for g in groups.values_mut() {
                let (recs, gone, dead) = drop_topic_offsets(g, &deleted, now);
                assert_eq!(gone, PARTITIONS as usize, "{}", g.id);
                assert_eq!(dead, g.id == "g-c", "{}", g.id);
                tombstones.extend(recs);
            }
            let (_, last) = append_records(&sim, &tombstones, now).expect("append");
            wait_durable(&sim, last).await.expect("durable");
            drop(sim);
            drop(log);
            let after = storage.cut_power(|_| 0);
            let log = open(&after, &config, &clock).await;
            let groups = replay(&log, now).await;
            assert_eq!(
                groups.keys().collect::<Vec<_>>(),
                ["g-a", "g-b"],
                "seed {seed}: the group left without offsets is gone"
            );
            for (id, g) in &groups {
                assert!(
                    g.offsets.keys().all(|(t, _)| t == TOPICS[1]),
                    "seed {seed}: {id} kept offsets of the deleted topic"
                );
                assert_eq!(g.offsets.len(), before[id] - PARTITIONS as usize);
            }
        });
    }
}
