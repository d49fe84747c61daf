//! The group coordinator (classic protocol; KIP-848's server side comes later, beside it).
//!
//! A group lives in one partition of the internal compacted topic `__consumer_offsets`
//! (`partition_for`: Kafka's `Utils.abs(groupId.hashCode) % N`), and that partition's home
//! shard is its coordinator: all of the group's state is touched there only (invariant 3).
//! Front shards route each group request with [`route`] and `invoke_on`.
//!
//! Per offsets partition, a [`Slot`] holds the groups. It is built the first time the
//! partition is used on its home shard by replaying the partition (offset commits, group
//! metadata and their tombstones, in Kafka's record formats: [`records`]); requests that
//! arrive during the replay get COORDINATOR_LOAD_IN_PROGRESS, as in Kafka.
//!
//! Each group is a pure state machine ([`group::Group`]); this module owns what is not
//! pure: the waiting JoinGroup/SyncGroup responses (oneshot senders keyed by member id),
//! one glommio timer per group armed for the group's next deadline (no polling), the
//! writes to the partition, and offset expiry. An offset commit is applied to memory and
//! acknowledged only once its record is durable (`Partition::wait_committed`); likewise
//! the SyncGroup responses of a rebalance wait for the leader's group record
//! ([`group::Event::StoreAssignment`]), as Kafka's `storeGroup` does. A deleted topic's
//! committed offsets are dropped with tombstones ([`on_topics_deleted`]).
//!
//! The write path (`RecordLog`, `append_records`, `wait_durable`) and the load path
//! (`replay_log`) are generic over the log's storage, so `power_cut_tests` runs this very
//! code on the simulated storage and cuts power under it.

pub mod group;
#[cfg(test)]
mod power_cut_tests;
pub mod records;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::channel::oneshot;
use shards::batch::{BatchBuilder, Compression};
use shards::clock::Clock;
use shards::log::Log;
use shards::partition::Partition;
use shards::storage::Storage;
use shards::{Offset, ShardId, TopicPartition};
use tracing::{debug, info, warn};

use crate::broker::state;
use crate::error::{Error, Result};
use crate::metadata::store::NewTopic;
use group::{
    CommittedOffset, Event, Group, GroupConfig, GroupState, JoinParams, Outcome, StoreFailure,
};
pub use group::{JoinResponse, SyncResponse};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Bytes read per step when replaying a partition.
const REPLAY_READ_BYTES: usize = 1 << 20;
/// Decompressed bytes one stored batch may expand to during replay.
const REPLAY_BATCH_BYTES_MAX: usize = 64 << 20;
/// Encoded bytes per batch this coordinator writes (below `max.message.bytes`).
const WRITE_BATCH_BYTES_MAX: usize = 512 << 10;
/// How long a request waits for its partition's replay before COORDINATOR_LOAD_IN_PROGRESS.
const LOAD_WAIT: Duration = Duration::from_secs(5);
/// Groups per offsets partition (a bound on memory under a flood of group ids).
pub const GROUPS_PER_PARTITION_MAX: usize = 100_000;

fn now_ms() -> i64 {
    shards::clock::SystemClock.now_ms()
}

/// Where a group is coordinated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub partition: i32,
    pub shard: ShardId,
}

/// On any shard: the offsets partition and home shard of `group_id`, or the error a
/// client acts on (COORDINATOR_NOT_AVAILABLE: no offsets topic yet; NOT_COORDINATOR:
/// another broker leads the partition).
pub fn route(group_id: &str) -> Result<Route> {
    let st = state();
    let view = st.view();
    let topic = view
        .topic(OFFSETS_TOPIC)
        .ok_or_else(|| Error::CoordinatorNotAvailable(group_id.to_string()))?;
    let count = topic.partitions.len() as i32;
    if count == 0 {
        return Err(Error::CoordinatorNotAvailable(group_id.to_string()));
    }
    let partition = records::partition_for(group_id, count);
    let leader = topic.partitions[partition as usize].leader;
    if leader != st.settings.node_id {
        return Err(Error::NotCoordinator(group_id.to_string()));
    }
    let shard = st
        .shard_of(&TopicPartition::new(OFFSETS_TOPIC, partition))
        .ok_or_else(|| Error::CoordinatorNotAvailable(group_id.to_string()))?;
    Ok(Route { partition, shard })
}

/// How long FindCoordinator waits for `__consumer_offsets` to be created before answering
/// COORDINATOR_NOT_AVAILABLE (clients retry; the creation goes on in the background).
pub const OFFSETS_TOPIC_CREATE_WAIT: Duration = Duration::from_secs(5);

/// Told when the offsets topic exists (or why it could not be created).
type CreationWaiter = oneshot::Sender<std::result::Result<(), String>>;

thread_local! {
    /// Waiters for this shard's in-flight creation of the offsets topic (one at a time).
    static CREATION: RefCell<Option<Vec<CreationWaiter>>> = const { RefCell::new(None) };
}

/// Make sure `__consumer_offsets` exists, waiting at most `wait` for its creation.
pub async fn ensure_offsets_topic(wait: Duration) -> Result<()> {
    if state().view().topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let (tx, rx) = oneshot::channel();
    let first = CREATION.with(|c| {
        let mut c = c.borrow_mut();
        match c.as_mut() {
            Some(waiters) => {
                waiters.push(tx);
                false
            }
            None => {
                *c = Some(vec![tx]);
                true
            }
        }
    });
    if first {
        shards::runtime::spawn_latency(async {
            let result = create_offsets_topic().await.map_err(|e| e.to_string());
            let waiters = CREATION.with(|c| c.borrow_mut().take()).unwrap_or_default();
            for w in waiters {
                let _ = w.send(result.clone());
            }
        });
    }
    let timer = glommio::timer::sleep(wait);
    futures::pin_mut!(timer);
    match futures::future::select(rx, timer).await {
        futures::future::Either::Left((Ok(Ok(())), _)) => Ok(()),
        futures::future::Either::Left((Ok(Err(e)), _)) => Err(Error::CoordinatorNotAvailable(e)),
        futures::future::Either::Left((Err(_), _)) | futures::future::Either::Right(_) => Err(
            Error::CoordinatorNotAvailable(format!("{OFFSETS_TOPIC} is being created")),
        ),
    }
}

/// Create `__consumer_offsets`: `offsets.topic.num.partitions` partitions, replication
/// factor min(`offsets.topic.replication.factor`, live brokers), compacted.
async fn create_offsets_topic() -> Result<()> {
    let st = state();
    let view = st.view();
    if view.topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let config = &st.settings.config;
    let spec = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        num_partitions: config.offsets_topic_num_partitions(),
        replication_factor: config.offsets_topic_replication_factor(view.brokers.len()),
        assignments: Vec::new(),
        configs: vec![
            ("cleanup.policy".to_string(), Some("compact".to_string())),
            ("compression.type".to_string(), Some("producer".to_string())),
            ("segment.bytes".to_string(), Some("104857600".to_string())),
        ],
    };
    let started = std::time::Instant::now();
    let mut results = crate::controller::create_topics(vec![spec], false).await?;
    match results.pop() {
        Some(Ok(created)) => {
            info!(
                partitions = created.num_partitions,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "created {OFFSETS_TOPIC}"
            );
            Ok(())
        }
        // Another shard created it first.
        Some(Err(Error::Engine(shards::Error::TopicExists(_))))
        | Some(Err(Error::TopicExists(_))) => Ok(()),
        Some(Err(e)) => Err(e),
        None => Err(Error::CoordinatorNotAvailable(OFFSETS_TOPIC.to_string())),
    }
}

// ----- per-shard state -----------------------------------------------------------------

/// A group plus the responses waiting on it.
struct GroupCell {
    group: RefCell<Group>,
    joins: RefCell<HashMap<String, oneshot::Sender<Result<JoinResponse>>>>,
    syncs: RefCell<HashMap<String, oneshot::Sender<Result<SyncResponse>>>>,
    /// The deadline the group's timer task is armed for.
    timer_at_ms: Cell<Option<i64>>,
}

/// The groups of one `__consumer_offsets` partition on its home shard.
struct Slot {
    index: i32,
    /// Identity of the partition object replayed: a partition closed and opened again
    /// (topic deleted and recreated, leadership back) is replayed again.
    partition_id: usize,
    loaded: Cell<bool>,
    /// Requests waiting for the replay to finish (woken when it ends, loaded or not).
    load_waiters: RefCell<Vec<oneshot::Sender<()>>>,
    groups: RefCell<BTreeMap<String, Rc<GroupCell>>>,
}

#[derive(Default)]
struct ShardCoordinator {
    slots: RefCell<HashMap<i32, Rc<Slot>>>,
    expiry_started: Cell<bool>,
}

thread_local! {
    static COORDINATOR: Rc<ShardCoordinator> = Rc::new(ShardCoordinator::default());
}

fn shard_coordinator() -> Rc<ShardCoordinator> {
    COORDINATOR.with(|c| c.clone())
}

fn group_config() -> GroupConfig {
    let st = state();
    let c = &st.settings.config;
    GroupConfig {
        initial_rebalance_delay_ms: c.group_initial_rebalance_delay_ms(),
        session_timeout_ms_min: c.group_min_session_timeout_ms(),
        session_timeout_ms_max: c.group_max_session_timeout_ms(),
        members_max: c.group_max_size().max(1) as usize,
    }
}

/// The offsets partition on this, its home shard. Homed here by the table but not open
/// yet (a view being installed opens it): COORDINATOR_LOAD_IN_PROGRESS, which clients retry.
fn local_partition(index: i32) -> Result<Rc<Partition>> {
    let st = state();
    let tp = TopicPartition::new(OFFSETS_TOPIC, index);
    if let Some(p) = st.local_partition(&tp) {
        return Ok(p);
    }
    if st.shard_of(&tp) == Some(st.id) {
        return Err(Error::CoordinatorLoadInProgress(index));
    }
    Err(Error::NotCoordinator(format!("{OFFSETS_TOPIC}-{index}")))
}

/// On the home shard: whether partition `index` is open here (FindCoordinator names this
/// broker only then), and if so start loading its groups.
pub fn open_and_preload(index: i32) -> bool {
    if local_partition(index).is_err() {
        return false;
    }
    preload(index);
    true
}

/// The loaded slot of partition `index` on this (its home) shard. The first call replays
/// the partition; calls during the replay get COORDINATOR_LOAD_IN_PROGRESS.
async fn slot(index: i32) -> Result<Rc<Slot>> {
    let coordinator = shard_coordinator();
    let partition = local_partition(index)?;
    let partition_id = Rc::as_ptr(&partition) as usize;
    let mut existing = coordinator.slots.borrow().get(&index).cloned();
    if existing
        .as_ref()
        .is_some_and(|s| s.partition_id != partition_id)
    {
        coordinator.slots.borrow_mut().remove(&index);
        existing = None;
    }
    if let Some(s) = existing {
        if !s.loaded.get() {
            // Wait a bounded time for the replay; beyond it the client retries.
            let (tx, rx) = oneshot::channel();
            s.load_waiters.borrow_mut().push(tx);
            let timer = glommio::timer::sleep(LOAD_WAIT);
            futures::pin_mut!(timer);
            let _ = futures::future::select(rx, timer).await;
        }
        return if s.loaded.get() {
            Ok(s)
        } else {
            Err(Error::CoordinatorLoadInProgress(index))
        };
    }
    let s = Rc::new(Slot {
        index,
        partition_id,
        loaded: Cell::new(false),
        load_waiters: RefCell::new(Vec::new()),
        groups: RefCell::new(BTreeMap::new()),
    });
    coordinator.slots.borrow_mut().insert(index, s.clone());
    start_expiry_task();
    let started = std::time::Instant::now();
    let replayed = replay(&s, &partition).await;
    if replayed.is_ok() {
        s.loaded.set(true);
    }
    for w in s.load_waiters.borrow_mut().drain(..) {
        let _ = w.send(());
    }
    match replayed {
        Ok(records) => {
            let cells: Vec<Rc<GroupCell>> = s.groups.borrow().values().cloned().collect();
            for cell in &cells {
                schedule(cell, &s);
            }
            info!(
                partition = index,
                groups = cells.len(),
                records,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "loaded group coordinator partition"
            );
            Ok(s)
        }
        Err(e) => {
            coordinator.slots.borrow_mut().remove(&index);
            warn!(partition = index, "cannot load coordinator partition: {e}");
            Err(Error::CoordinatorNotAvailable(format!(
                "{OFFSETS_TOPIC}-{index}: {e}"
            )))
        }
    }
}

/// Load every local offsets partition (ListGroups must see groups not yet touched).
/// The `__consumer_offsets` partitions this shard holds, in index order.
fn local_offsets_partitions() -> Vec<i32> {
    let mut local: Vec<i32> = state()
        .partitions
        .borrow()
        .keys()
        .filter(|tp| &*tp.topic == OFFSETS_TOPIC)
        .map(|tp| tp.partition)
        .collect();
    local.sort_unstable();
    local
}

async fn load_all_local() {
    for index in local_offsets_partitions() {
        if let Err(e) = slot(index).await {
            debug!(partition = index, "not loaded: {e}");
        }
    }
}

/// Start loading partition `index` in the background (FindCoordinator warms it up).
pub fn preload(index: i32) {
    let loaded = shard_coordinator().slots.borrow().contains_key(&index);
    if !loaded {
        shards::runtime::spawn_latency(async move {
            let _ = slot(index).await;
        });
    }
}

/// Batches one replay read may hold (1 MiB of the smallest possible batches).
const REPLAY_BATCHES_PER_CHUNK_MAX: usize = 1 << 14;

/// What replaying an offsets partition rebuilds: its groups, and how many records it read.
pub(crate) struct Replayed {
    pub groups: BTreeMap<String, Group>,
    pub records: u64,
}

/// Replay `log` from `from` to `to` (exclusive; the high watermark) into groups: the load
/// path of a coordinator, generic over the storage so power-cut tests run it on the
/// simulated storage. Records that do not decode are skipped (logged), not fatal.
pub(crate) async fn replay_log<S: Storage>(
    log: &Log<S>,
    from: Offset,
    to: Offset,
    now_ms: i64,
    config: &GroupConfig,
) -> Result<Replayed> {
    let mut out = Replayed {
        groups: BTreeMap::new(),
        records: 0,
    };
    let mut offset = from;
    while offset < to {
        let read = log.read(offset, to, REPLAY_READ_BYTES).await?;
        if read.chunks.is_empty() {
            break;
        }
        for chunk in &read.chunks {
            offset = replay_chunk(&mut out, chunk, offset, now_ms, config)?;
        }
    }
    Ok(out)
}

/// Apply one chunk of whole stored batches from `offset` on; returns the next offset.
fn replay_chunk(
    out: &mut Replayed,
    chunk: &Bytes,
    mut offset: Offset,
    now_ms: i64,
    config: &GroupConfig,
) -> Result<Offset> {
    for (header, batch) in shards::batch::split_batches(chunk, REPLAY_BATCHES_PER_CHUNK_MAX)? {
        let next = Offset(header.last_offset() + 1);
        if header.is_control() || next <= offset {
            offset = offset.max(next);
            continue;
        }
        for r in shards::batch::records(&batch, REPLAY_BATCH_BYTES_MAX)? {
            let record_offset = header.base_offset + r.offset_delta as i64;
            if record_offset < offset.0 {
                continue;
            }
            out.records += 1;
            let Some(key) = r.key else { continue };
            if let Err(e) =
                apply_record(&mut out.groups, key, r.value, record_offset, now_ms, config)
            {
                warn!(record_offset, "skipping {OFFSETS_TOPIC} record: {e}");
            }
        }
        offset = next;
    }
    Ok(offset)
}

/// Replay the partition from its start to the high watermark into `slot`. Returns the
/// record count.
async fn replay(slot: &Slot, partition: &Partition) -> Result<u64> {
    let replayed = replay_log(
        partition.log(),
        partition.log_start_offset(),
        partition.high_watermark(),
        now_ms(),
        &group_config(),
    )
    .await?;
    let mut groups = slot.groups.borrow_mut();
    groups.clear();
    for (id, group) in replayed.groups {
        groups.insert(id, new_cell(group));
    }
    Ok(replayed.records)
}

fn new_cell(group: Group) -> Rc<GroupCell> {
    Rc::new(GroupCell {
        group: RefCell::new(group),
        joins: RefCell::new(HashMap::new()),
        syncs: RefCell::new(HashMap::new()),
        timer_at_ms: Cell::new(None),
    })
}

/// One record of `__consumer_offsets` applied to the groups being rebuilt.
fn apply_record(
    groups: &mut BTreeMap<String, Group>,
    key: Bytes,
    value: Option<Bytes>,
    record_offset: i64,
    now_ms: i64,
    config: &GroupConfig,
) -> Result<()> {
    fn get_or_create<'a>(
        groups: &'a mut BTreeMap<String, Group>,
        id: String,
        now_ms: i64,
        config: &GroupConfig,
    ) -> &'a mut Group {
        groups
            .entry(id.clone())
            .or_insert_with(|| Group::new(id, config.clone(), now_ms))
    }
    match records::decode_key(key)? {
        records::RecordKey::Offset {
            group,
            topic,
            partition,
        } => match value {
            None => {
                if let Some(g) = groups.get_mut(&group) {
                    g.offsets.remove(&(topic, partition));
                }
            }
            Some(v) => {
                let v = records::decode_offset_value(v)?;
                get_or_create(groups, group, now_ms, config).apply_offset(
                    &topic,
                    partition,
                    committed_offset(v, record_offset),
                );
            }
        },
        records::RecordKey::Group { group } => match value {
            None => {
                groups.remove(&group);
            }
            Some(v) => {
                let v = records::decode_group_value(v)?;
                get_or_create(groups, group, now_ms, config).restore(&v, now_ms);
            }
        },
    }
    Ok(())
}

fn committed_offset(v: records::OffsetValue, record_offset: i64) -> CommittedOffset {
    CommittedOffset {
        offset: v.offset,
        leader_epoch: v.leader_epoch,
        metadata: v.metadata,
        commit_timestamp_ms: v.commit_timestamp_ms,
        expire_timestamp_ms: v.expire_timestamp_ms,
        record_offset,
    }
}

// ----- writes ------------------------------------------------------------------------------

/// The log the coordinator writes its records to: the offsets partition in the broker, a
/// log on the simulated storage in power-cut tests.
#[allow(async_fn_in_trait)]
pub(crate) trait RecordLog {
    /// Stage 1: append (offsets assigned, order fixed), synchronously.
    fn append_batch(&self, batch: BytesMut) -> shards::Result<shards::log::AppendInfo>;
    /// Stage 2: resolves once everything up to `last` is durable (what the broker acks).
    async fn wait_durable(&self, last: Offset) -> shards::Result<()>;
}

impl RecordLog for Partition {
    fn append_batch(&self, batch: BytesMut) -> shards::Result<shards::log::AppendInfo> {
        self.append(batch)
    }
    async fn wait_durable(&self, last: Offset) -> shards::Result<()> {
        self.wait_committed(last).await
    }
}

/// Stage 1 of a write: append the records (synchronously, so their order is fixed) and
/// return each record's offset and the last offset to wait for.
pub(crate) fn append_records<L: RecordLog + ?Sized>(
    log: &L,
    recs: &[(Bytes, Option<Bytes>)],
    now_ms: i64,
) -> Result<(Vec<i64>, Offset)> {
    let mut offsets = Vec::with_capacity(recs.len());
    let mut last = Offset(-1);
    let mut start = 0;
    while start < recs.len() {
        let mut builder = BatchBuilder::new(Compression::None);
        let mut bytes = 0usize;
        let mut end = start;
        while end < recs.len() {
            let (k, v) = &recs[end];
            let size = k.len() + v.as_ref().map_or(0, Bytes::len) + 32;
            if end > start && bytes + size > WRITE_BATCH_BYTES_MAX {
                break;
            }
            bytes += size;
            builder.push(Some(k), v.as_deref(), &[], now_ms);
            end += 1;
        }
        let batch = BytesMut::from(&builder.build()[..]);
        let info = log.append_batch(batch)?;
        assert_eq!(
            info.last_offset.0 - info.base_offset.0,
            (end - start) as i64 - 1,
            "one offset per record"
        );
        offsets.extend((0..(end - start) as i64).map(|i| info.base_offset.0 + i));
        last = info.last_offset;
        start = end;
    }
    assert_eq!(offsets.len(), recs.len());
    Ok((offsets, last))
}

/// Stage 2 of a write: wait until `last` (from [`append_records`]) is durable.
pub(crate) async fn wait_durable<L: RecordLog + ?Sized>(log: &L, last: Offset) -> Result<()> {
    if last.0 < 0 {
        return Ok(());
    }
    log.wait_durable(last).await?;
    Ok(())
}

/// [`append_records`] to the local offsets partition `index`.
fn append_local(index: i32, recs: &[(Bytes, Option<Bytes>)]) -> Result<(Vec<i64>, Offset)> {
    append_records(&*local_partition(index)?, recs, now_ms())
}

/// [`wait_durable`] on the local offsets partition `index`.
async fn wait_local(index: i32, last: Offset) -> Result<()> {
    if last.0 < 0 {
        return Ok(());
    }
    wait_durable(&*local_partition(index)?, last).await
}

/// Kafka's mapping of a failed group-metadata append to the SyncGroup error
/// (`appendGroupMetadataErrorToResponseError`): the partition is gone from this shard or
/// its log failed (NOT_LEADER_OR_FOLLOWER, KAFKA_STORAGE_ERROR) → NOT_COORDINATOR;
/// anything else (backpressure, timeouts, not enough replicas) → COORDINATOR_NOT_AVAILABLE.
pub(crate) fn store_failure(e: &Error) -> StoreFailure {
    use shards::Error as E;
    match e {
        Error::NotCoordinator(_)
        | Error::NotLeader(_)
        | Error::Io { .. }
        | Error::Engine(
            E::Io { .. } | E::LogFailed(_) | E::Closed | E::ShardUnavailable(_) | E::Corrupt { .. },
        ) => StoreFailure::NotCoordinator,
        _ => StoreFailure::CoordinatorNotAvailable,
    }
}

/// Append the group record of a leader's assignment now (its place in the log is fixed
/// here), and return what resolves once it is durable: the SyncGroup responses of the
/// generation wait for it ([`Group::complete_store`]).
pub(crate) fn store_group_record<L: RecordLog + ?Sized + 'static>(
    log: Rc<L>,
    group_id: &str,
    value: &records::GroupValue,
    now_ms: i64,
) -> impl std::future::Future<Output = std::result::Result<(), StoreFailure>> + 'static {
    let record = (
        records::encode_group_key(group_id),
        Some(records::encode_group_value(value)),
    );
    let appended = append_records(&*log, &[record], now_ms);
    let group_id = group_id.to_string();
    async move {
        let result = match appended {
            Ok((_, last)) => wait_durable(&*log, last).await,
            Err(e) => Err(e),
        };
        result.map_err(|e| {
            warn!(group = %group_id, "group metadata not stored: {e}");
            store_failure(&e)
        })
    }
}

fn group_record(group: &Group) -> (Bytes, Option<Bytes>) {
    (
        records::encode_group_key(&group.id),
        Some(records::encode_group_value(&group.to_value())),
    )
}

/// Deliver a group's events, then re-arm its timer.
fn after_op(cell: &Rc<GroupCell>, slot: &Rc<Slot>) {
    let events = cell.group.borrow_mut().take_events();
    let mut persist = false;
    for e in events {
        match e {
            Event::Joined { member_id, result } => {
                if let Some(tx) = cell.joins.borrow_mut().remove(&member_id) {
                    let _ = tx.send(result);
                }
            }
            Event::Synced { member_id, result } => {
                if let Some(tx) = cell.syncs.borrow_mut().remove(&member_id) {
                    let _ = tx.send(result);
                }
            }
            Event::Persist => persist = true,
            Event::StoreAssignment { store_id, value } => {
                store_assignment(cell, slot, store_id, &value)
            }
        }
    }
    if persist {
        // Membership is soft state (members rejoin after a coordinator move); the record
        // lets a restarted coordinator keep generations and static members.
        let record = group_record(&cell.group.borrow());
        match append_local(slot.index, &[record]) {
            Ok((_, last)) => {
                let index = slot.index;
                shards::runtime::spawn_latency(async move {
                    if let Err(e) = wait_local(index, last).await {
                        warn!(partition = index, "group metadata not durable: {e}");
                    }
                });
            }
            Err(e) => warn!(partition = slot.index, "cannot write group metadata: {e}"),
        }
    }
    schedule(cell, slot);
}

/// The leader's SyncGroup: store the group record, then answer the generation's SyncGroups.
fn store_assignment(
    cell: &Rc<GroupCell>,
    slot: &Rc<Slot>,
    store_id: u64,
    value: &records::GroupValue,
) {
    let group_id = cell.group.borrow().id.clone();
    let stored = match local_partition(slot.index) {
        Ok(p) => futures::future::Either::Left(store_group_record(p, &group_id, value, now_ms())),
        Err(e) => futures::future::Either::Right(futures::future::ready(Err(store_failure(&e)))),
    };
    let cell = cell.clone();
    let slot = slot.clone();
    shards::runtime::spawn_latency(async move {
        let result = stored.await;
        cell.group
            .borrow_mut()
            .complete_store(store_id, result, now_ms());
        after_op(&cell, &slot);
    });
}

/// Arm the group's timer for its next deadline, unless an earlier one is armed already.
fn schedule(cell: &Rc<GroupCell>, slot: &Rc<Slot>) {
    let Some(deadline) = cell.group.borrow().next_deadline_ms() else {
        return;
    };
    if cell.timer_at_ms.get().is_some_and(|at| at <= deadline) {
        return;
    }
    cell.timer_at_ms.set(Some(deadline));
    let cell = cell.clone();
    let slot = slot.clone();
    shards::runtime::spawn_latency(async move {
        let wait_ms = (deadline - now_ms()).max(0) as u64;
        glommio::timer::sleep(Duration::from_millis(wait_ms)).await;
        if cell.timer_at_ms.get() == Some(deadline) {
            cell.timer_at_ms.set(None);
        }
        cell.group.borrow_mut().tick(now_ms());
        after_op(&cell, &slot);
    });
}

fn validate_group_id(group_id: &str) -> Result<()> {
    if group_id.is_empty() {
        return Err(Error::InvalidGroupId(group_id.to_string()));
    }
    Ok(())
}

fn find_group(slot: &Slot, group_id: &str) -> Option<Rc<GroupCell>> {
    slot.groups.borrow().get(group_id).cloned()
}

fn create_group(slot: &Slot, group_id: &str) -> Result<Rc<GroupCell>> {
    if let Some(cell) = find_group(slot, group_id) {
        return Ok(cell);
    }
    if slot.groups.borrow().len() >= GROUPS_PER_PARTITION_MAX {
        return Err(Error::CoordinatorNotAvailable(format!(
            "{OFFSETS_TOPIC}-{} holds {GROUPS_PER_PARTITION_MAX} groups",
            slot.index
        )));
    }
    let cell = new_cell(Group::new(group_id.to_string(), group_config(), now_ms()));
    slot.groups
        .borrow_mut()
        .insert(group_id.to_string(), cell.clone());
    Ok(cell)
}

/// A response now or later, as one receiver the front shard awaits.
pub type Pending<T> = oneshot::Receiver<Result<T>>;

fn ready<T>(result: Result<T>) -> Pending<T> {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(result);
    rx
}

// ----- operations (run on the home shard) --------------------------------------------------

pub async fn join(index: i32, group_id: String, params: JoinParams) -> Pending<JoinResponse> {
    let run = async {
        validate_group_id(&group_id)?;
        let slot = slot(index).await?;
        let cell = match find_group(&slot, &group_id) {
            Some(cell) => cell,
            None if params.member_id.is_empty() => create_group(&slot, &group_id)?,
            None => return Err(Error::UnknownMemberId(params.member_id.clone())),
        };
        Ok((slot, cell))
    };
    let (slot, cell) = match run.await {
        Ok(v) => v,
        Err(e) => return ready(Err(e)),
    };
    let outcome = cell.group.borrow_mut().join(params, now_ms());
    let rx = match outcome {
        Outcome::Now(result) => ready(result),
        Outcome::Later(member_id) => {
            let (tx, rx) = oneshot::channel();
            let old = cell.joins.borrow_mut().insert(member_id, tx);
            if let Some(old) = old {
                let _ = old.send(Err(Error::RebalanceInProgress(group_id.clone())));
            }
            rx
        }
    };
    after_op(&cell, &slot);
    rx
}

pub struct SyncParams {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

pub async fn sync(index: i32, group_id: String, p: SyncParams) -> Pending<SyncResponse> {
    let slot = match slot(index).await {
        Ok(s) => s,
        Err(e) => return ready(Err(e)),
    };
    let Some(cell) = find_group(&slot, &group_id) else {
        return ready(Err(Error::UnknownMemberId(p.member_id)));
    };
    let outcome = cell.group.borrow_mut().sync(
        &p.member_id,
        p.group_instance_id.as_deref(),
        p.generation_id,
        p.protocol_type.as_deref(),
        p.protocol_name.as_deref(),
        p.assignments,
        now_ms(),
    );
    let rx = match outcome {
        Outcome::Now(result) => ready(result),
        Outcome::Later(member_id) => {
            let (tx, rx) = oneshot::channel();
            let old = cell.syncs.borrow_mut().insert(member_id, tx);
            if let Some(old) = old {
                let _ = old.send(Err(Error::RebalanceInProgress(group_id.clone())));
            }
            rx
        }
    };
    after_op(&cell, &slot);
    rx
}

pub async fn heartbeat(
    index: i32,
    group_id: String,
    member_id: String,
    instance: Option<String>,
    generation_id: i32,
) -> Result<()> {
    let slot = slot(index).await?;
    let cell = find_group(&slot, &group_id).ok_or(Error::UnknownMemberId(member_id.clone()))?;
    let result =
        cell.group
            .borrow_mut()
            .heartbeat(&member_id, instance.as_deref(), generation_id, now_ms());
    after_op(&cell, &slot);
    result
}

pub async fn leave(
    index: i32,
    group_id: String,
    members: Vec<(String, Option<String>)>,
) -> Result<Vec<Result<()>>> {
    let slot = slot(index).await?;
    let Some(cell) = find_group(&slot, &group_id) else {
        return Err(Error::UnknownMemberId(group_id));
    };
    let results = cell.group.borrow_mut().leave(&members, now_ms());
    after_op(&cell, &slot);
    Ok(results)
}

/// One partition of an OffsetCommit.
#[derive(Clone, Debug)]
pub struct CommitPart {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

pub struct CommitParams {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// OffsetCommit v2–v4 `retention_time_ms`; -1: the broker's retention.
    pub retention_ms: i64,
    pub parts: Vec<CommitPart>,
}

/// OffsetCommit: validated and appended now; the receiver resolves with per-partition
/// results once the records are durable (and applied).
pub async fn commit(index: i32, group_id: String, p: CommitParams) -> Pending<Vec<Result<()>>> {
    let run = async {
        validate_group_id(&group_id)?;
        let slot = slot(index).await?;
        let cell = match find_group(&slot, &group_id) {
            Some(cell) => cell,
            None if p.generation_id < 0 && p.member_id.is_empty() => {
                create_group(&slot, &group_id)?
            }
            None => return Err(Error::IllegalGeneration(p.generation_id)),
        };
        cell.group.borrow().validate_commit(
            &p.member_id,
            p.group_instance_id.as_deref(),
            p.generation_id,
        )?;
        Ok((slot, cell))
    };
    let (slot, cell) = match run.await {
        Ok(v) => v,
        Err(e) => return ready(Err(e)),
    };
    let metadata_max = state().settings.config.offset_metadata_max_bytes().max(0) as usize;
    let now = now_ms();
    let expire_ms = if p.retention_ms >= 0 {
        now.saturating_add(p.retention_ms)
    } else {
        -1
    };
    let view = state().view();
    let mut results: Vec<Option<Result<()>>> = Vec::with_capacity(p.parts.len());
    let mut recs = Vec::new();
    let mut values = Vec::new();
    for part in &p.parts {
        let metadata_len = part.metadata.as_ref().map_or(0, String::len);
        if metadata_len > metadata_max {
            results.push(Some(Err(Error::OffsetMetadataTooLarge(metadata_len))));
            continue;
        }
        // Checked again here, on the home shard, whose view orders this append against
        // the tombstones of a topic deletion (`on_topics_deleted`): the front shard's
        // check may have used an older view.
        let topic_id = view.topic(&part.topic).map(|t| t.id);
        if view.partition(&part.topic, part.partition).is_none() {
            results.push(Some(Err(Error::UnknownTopicOrPartition(format!(
                "{}-{}",
                part.topic, part.partition
            )))));
            continue;
        }
        let (record, value) = commit_record(&group_id, part, now, expire_ms);
        recs.push(record);
        values.push((results.len(), part.clone(), value, topic_id));
        results.push(None);
    }
    let (offsets, last) = match append_local(slot.index, &recs) {
        Ok(v) => v,
        Err(e) => return ready(Err(store_failure(&e).error(&group_id))),
    };
    let (tx, rx) = oneshot::channel();
    shards::runtime::spawn_latency(async move {
        let durable = wait_local(slot.index, last).await;
        let failed = durable.err().map(|e| {
            warn!(group = %group_id, "offset commit not durable: {e}");
            store_failure(&e)
        });
        // A topic deleted while its commit was in flight: its tombstone follows the
        // record in the log, so memory must not take the offset back either.
        let view = state().view();
        for ((slot_i, part, value, topic_id), record_offset) in values.into_iter().zip(offsets) {
            results[slot_i] = Some(match failed {
                Some(f) => Err(f.error(&group_id)),
                None => {
                    if view.topic(&part.topic).map(|t| t.id) == topic_id {
                        cell.group.borrow_mut().apply_offset(
                            &part.topic,
                            part.partition,
                            committed_offset(value, record_offset),
                        );
                    }
                    Ok(())
                }
            });
        }
        let results = results
            .into_iter()
            .map(|r| r.expect("every partition answered"))
            .collect();
        let _ = tx.send(Ok(results));
    });
    rx
}

/// The `__consumer_offsets` record (key, value) of one committed offset, and the value
/// applied to memory once the record is durable.
pub(crate) fn commit_record(
    group_id: &str,
    part: &CommitPart,
    now_ms: i64,
    expire_ms: i64,
) -> ((Bytes, Option<Bytes>), records::OffsetValue) {
    let value = records::OffsetValue {
        offset: part.offset,
        leader_epoch: part.leader_epoch,
        metadata: part.metadata.clone().unwrap_or_default(),
        commit_timestamp_ms: now_ms,
        expire_timestamp_ms: expire_ms,
    };
    let record = (
        records::encode_offset_key(group_id, &part.topic, part.partition),
        Some(records::encode_offset_value(&value)),
    );
    (record, value)
}

/// A committed offset as OffsetFetch reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// OffsetFetch for one group: `topics` None means every committed partition.
pub async fn fetch_offsets(
    index: i32,
    group_id: String,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Result<Vec<FetchedOffset>> {
    let slot = slot(index).await?;
    let cell = find_group(&slot, &group_id);
    let group = cell.as_ref().map(|c| c.group.borrow());
    let lookup = |topic: &str, partition: i32| {
        let found = group
            .as_ref()
            .and_then(|g| g.offsets.get(&(topic.to_string(), partition)));
        match found {
            Some(o) => FetchedOffset {
                topic: topic.to_string(),
                partition,
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata: o.metadata.clone(),
            },
            None => FetchedOffset {
                topic: topic.to_string(),
                partition,
                offset: -1,
                leader_epoch: -1,
                metadata: String::new(),
            },
        }
    };
    Ok(match topics {
        Some(topics) => topics
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(|p| lookup(t, *p)).collect::<Vec<_>>())
            .collect(),
        None => group
            .as_ref()
            .map(|g| {
                g.offsets
                    .keys()
                    .map(|(t, p)| lookup(t, *p))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    })
}

/// DescribeGroups output for one group.
#[derive(Clone, Debug, Default)]
pub struct GroupDescription {
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Clone, Debug, Default)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// Kafka: an unknown group is described as Dead with no error (DescribeGroups v0–v5).
pub async fn describe(index: i32, group_id: String) -> Result<GroupDescription> {
    let slot = slot(index).await?;
    let Some(cell) = find_group(&slot, &group_id) else {
        return Ok(GroupDescription {
            state: GroupState::Dead.name().to_string(),
            ..Default::default()
        });
    };
    let g = cell.group.borrow();
    let stable = g.state() == GroupState::Stable;
    let protocol = g.protocol_name().unwrap_or_default().to_string();
    Ok(GroupDescription {
        state: g.state().name().to_string(),
        protocol_type: g.protocol_type().unwrap_or_default().to_string(),
        protocol: if stable {
            protocol.clone()
        } else {
            String::new()
        },
        members: g
            .members()
            .map(|m| MemberDescription {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if stable {
                    m.metadata(&protocol)
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect(),
    })
}

/// ListGroups on this shard: (group id, protocol type, state) of every group of every
/// local offsets partition.
pub async fn list_local() -> Vec<(String, String, String)> {
    load_all_local().await;
    let coordinator = shard_coordinator();
    let slots: Vec<Rc<Slot>> = coordinator.slots.borrow().values().cloned().collect();
    let mut out = Vec::new();
    for s in slots.iter().filter(|s| s.loaded.get()) {
        for (id, cell) in s.groups.borrow().iter() {
            let g = cell.group.borrow();
            if g.state() == GroupState::Dead {
                continue;
            }
            out.push((
                id.clone(),
                g.protocol_type().unwrap_or_default().to_string(),
                g.state().name().to_string(),
            ));
        }
    }
    out
}

/// DeleteGroups for one group: only without members; its offsets and metadata get
/// tombstones, and the group is gone once they are durable.
pub async fn delete_group(index: i32, group_id: String) -> Pending<()> {
    let run = async {
        let slot = slot(index).await?;
        let cell = find_group(&slot, &group_id).ok_or(Error::GroupIdNotFound(group_id.clone()))?;
        cell.group.borrow_mut().mark_dead(now_ms())?;
        let mut recs: Vec<(Bytes, Option<Bytes>)> = cell
            .group
            .borrow()
            .offsets
            .keys()
            .map(|(t, p)| (records::encode_offset_key(&group_id, t, *p), None))
            .collect();
        recs.push((records::encode_group_key(&group_id), None));
        let (_, last) = append_local(slot.index, &recs)?;
        Ok((slot, last))
    };
    let (slot, last) = match run.await {
        Ok(v) => v,
        Err(e) => return ready(Err(e)),
    };
    let (tx, rx) = oneshot::channel();
    shards::runtime::spawn_latency(async move {
        let result = wait_local(slot.index, last).await;
        if result.is_ok() {
            slot.groups.borrow_mut().remove(&group_id);
        }
        let _ = tx.send(result);
    });
    rx
}

/// OffsetDelete: per-partition results; refused for topics the group's members subscribe to.
pub async fn delete_offsets(
    index: i32,
    group_id: String,
    parts: Vec<(String, i32)>,
) -> Pending<Vec<Result<()>>> {
    let run = async {
        let slot = slot(index).await?;
        let cell = find_group(&slot, &group_id).ok_or(Error::GroupIdNotFound(group_id.clone()))?;
        let g = cell.group.borrow();
        if g.state() == GroupState::Dead {
            return Err(Error::GroupIdNotFound(group_id.clone()));
        }
        let subscribed = if g.state() == GroupState::Empty {
            Some(Vec::new())
        } else {
            g.subscribed_topics()
        };
        let Some(subscribed) = subscribed else {
            return Err(Error::NonEmptyGroup(group_id.clone()));
        };
        let mut results = Vec::with_capacity(parts.len());
        let mut recs = Vec::new();
        let mut gone = Vec::new();
        for (topic, partition) in &parts {
            if subscribed.iter().any(|t| t == topic) {
                results.push(Err(Error::GroupSubscribedToTopic(topic.clone())));
                continue;
            }
            if g.offsets.contains_key(&(topic.clone(), *partition)) {
                recs.push((
                    records::encode_offset_key(&group_id, topic, *partition),
                    None,
                ));
                gone.push((topic.clone(), *partition));
            }
            results.push(Ok(()));
        }
        drop(g);
        let (_, last) = append_local(slot.index, &recs)?;
        Ok((cell, results, gone, last, slot.index))
    };
    let (cell, results, gone, last, index) = match run.await {
        Ok(v) => v,
        Err(e) => return ready(Err(e)),
    };
    let (tx, rx) = oneshot::channel();
    shards::runtime::spawn_latency(async move {
        if let Err(e) = wait_local(index, last).await {
            let _ = tx.send(Err(e));
            return;
        }
        let mut g = cell.group.borrow_mut();
        for key in gone {
            g.offsets.remove(&key);
        }
        let _ = tx.send(Ok(results));
    });
    rx
}

/// Topic deletion (Kafka `onPartitionsDeleted`), called on every shard as it installs a
/// view without `topics`: every group of every offsets partition homed here loses its
/// committed offsets of those topics, with tombstones so that a restart does not bring
/// them back, and an Empty group left without offsets goes (Dead, group tombstone), as in
/// Kafka's `cleanupGroupMetadata`. Loaded partitions are cleaned in this call — before
/// any request sees the new view, so OffsetFetch never returns them again and a commit
/// for the deleted topic cannot slip in between (commits re-check the view on this
/// shard); the returned future resolves once their tombstones are durable. Partitions not
/// loaded yet are loaded and cleaned in the background.
pub fn on_topics_deleted(topics: Vec<String>) -> impl std::future::Future<Output = ()> {
    let mut durable: Vec<(i32, Offset)> = Vec::new();
    // The offsets topic itself going: its partitions close with this view, nothing to clean.
    if !topics.is_empty() && !topics.iter().any(|t| t == OFFSETS_TOPIC) {
        let mut unloaded = Vec::new();
        for index in local_offsets_partitions() {
            match loaded_slot(index) {
                Some(s) => durable.extend(remove_topic_offsets(&s, &topics)),
                None => unloaded.push(index),
            }
        }
        if !unloaded.is_empty() {
            shards::runtime::spawn_latency(async move {
                for index in unloaded {
                    match slot(index).await {
                        Ok(s) => {
                            if let Some((index, last)) = remove_topic_offsets(&s, &topics) {
                                wait_tombstones(index, last).await;
                            }
                        }
                        Err(e) => warn!(
                            partition = index,
                            "offsets of deleted topics not removed (partition not loaded): {e}"
                        ),
                    }
                }
            });
        }
    }
    async move {
        for (index, last) in durable {
            wait_tombstones(index, last).await;
        }
    }
}

async fn wait_tombstones(index: i32, last: Offset) {
    if let Err(e) = wait_local(index, last).await {
        warn!(
            partition = index,
            "tombstones of deleted topics not durable: {e}"
        );
    }
}

/// The slot of partition `index` if it is loaded from the partition open now.
fn loaded_slot(index: i32) -> Option<Rc<Slot>> {
    let partition = local_partition(index).ok()?;
    let s = shard_coordinator().slots.borrow().get(&index).cloned()?;
    (s.loaded.get() && s.partition_id == Rc::as_ptr(&partition) as usize).then_some(s)
}

/// Drop every committed offset of `topics` from the groups of `slot`, in memory now and in
/// the log with tombstones; returns the partition and last offset to wait for.
fn remove_topic_offsets(slot: &Slot, topics: &[String]) -> Option<(i32, Offset)> {
    let now = now_ms();
    let cells: Vec<Rc<GroupCell>> = slot.groups.borrow().values().cloned().collect();
    let mut recs: Vec<(Bytes, Option<Bytes>)> = Vec::new();
    let mut dead = Vec::new();
    let mut removed = 0usize;
    for cell in cells {
        let mut g = cell.group.borrow_mut();
        let (tombstones, gone, is_dead) = drop_topic_offsets(&mut g, topics, now);
        recs.extend(tombstones);
        removed += gone;
        if is_dead {
            dead.push(g.id.clone());
        }
    }
    for id in &dead {
        slot.groups.borrow_mut().remove(id);
    }
    if recs.is_empty() {
        return None;
    }
    info!(
        partition = slot.index,
        offsets = removed,
        groups_removed = dead.len(),
        "removing committed offsets of deleted topics"
    );
    match append_local(slot.index, &recs) {
        Ok((_, last)) => Some((slot.index, last)),
        Err(e) => {
            warn!(
                partition = slot.index,
                "cannot write tombstones of deleted topics: {e}"
            );
            None
        }
    }
}

/// Drop the committed offsets of `topics` from `g` (memory) and return their tombstones,
/// how many there are, and whether the group died: an Empty group left without offsets
/// is marked Dead and its own tombstone follows (Kafka `cleanupGroupMetadata`); the caller
/// removes it from its slot.
pub(crate) fn drop_topic_offsets(
    g: &mut Group,
    topics: &[String],
    now_ms: i64,
) -> (Vec<(Bytes, Option<Bytes>)>, usize, bool) {
    let gone: Vec<(String, i32)> = g
        .offsets
        .keys()
        .filter(|(t, _)| topics.iter().any(|d| d == t))
        .cloned()
        .collect();
    if gone.is_empty() {
        return (Vec::new(), 0, false);
    }
    let mut recs = Vec::with_capacity(gone.len() + 1);
    for key in &gone {
        g.offsets.remove(key);
        recs.push((records::encode_offset_key(&g.id, &key.0, key.1), None));
    }
    let dead =
        g.state() == GroupState::Empty && g.offsets.is_empty() && g.mark_dead(now_ms).is_ok();
    if dead {
        recs.push((records::encode_group_key(&g.id), None));
    }
    (recs, gone.len(), dead)
}

/// One background task per shard expires offsets (`offsets.retention.minutes`) every
/// `offsets.retention.check.interval.ms`, and removes empty groups left without offsets.
fn start_expiry_task() {
    let coordinator = shard_coordinator();
    if coordinator.expiry_started.replace(true) {
        return;
    }
    let config = state().settings.config.clone();
    let interval_ms = config.offsets_retention_check_interval_ms().max(1) as u64;
    let retention_ms = config.offsets_retention_ms();
    shards::runtime::spawn_background(async move {
        loop {
            glommio::timer::sleep(Duration::from_millis(interval_ms)).await;
            expire_offsets(retention_ms);
        }
    });
}

fn expire_offsets(retention_ms: i64) {
    let now = now_ms();
    let slots: Vec<Rc<Slot>> = shard_coordinator()
        .slots
        .borrow()
        .values()
        .cloned()
        .collect();
    for slot in slots.iter().filter(|s| s.loaded.get()) {
        let cells: Vec<Rc<GroupCell>> = slot.groups.borrow().values().cloned().collect();
        for cell in cells {
            let (id, expired, drop_group) = {
                let g = cell.group.borrow();
                let expired = g.expired_offsets(now, retention_ms);
                let drop_group = g.state() == GroupState::Empty && g.offsets.len() == expired.len();
                (g.id.clone(), expired, drop_group)
            };
            if expired.is_empty() && !drop_group {
                continue;
            }
            let mut recs: Vec<(Bytes, Option<Bytes>)> = expired
                .iter()
                .map(|(t, p)| (records::encode_offset_key(&id, t, *p), None))
                .collect();
            if drop_group {
                recs.push((records::encode_group_key(&id), None));
            }
            if let Err(e) = append_local(slot.index, &recs) {
                warn!(group = %id, "cannot expire offsets: {e}");
                continue;
            }
            let mut g = cell.group.borrow_mut();
            for key in &expired {
                g.offsets.remove(key);
            }
            drop(g);
            if drop_group {
                slot.groups.borrow_mut().remove(&id);
            }
            info!(group = %id, offsets = expired.len(), "expired committed offsets");
        }
    }
}
