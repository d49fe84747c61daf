//! Fetch (key 1).
//!
//! Fetch reads each partition on its home shard (the reply carries `Bytes` slices of the
//! stored batches, never copies), and long-polls: when fewer than `min_bytes` are ready,
//! it waits on the home shards' append notifications — not a timer loop — until data
//! arrives or `max_wait_ms` passes. Fetch sessions (KIP-227): the broker declines to
//! create sessions (session id 0), which clients handle by sending full fetches.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::channel::oneshot;
use futures::future::Either;
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use shards::{LeaderEpoch, Offset, ShardId, TopicPartition};

use super::{codes, encode, Ctx};
use crate::broker::state;
use crate::server::Reply;
use crate::wire;

/// One partition of a fetch, as asked.
#[derive(Clone, Debug)]
struct PartAsk {
    slot: usize,
    tp: TopicPartition,
    offset: i64,
    current_leader_epoch: i32,
    max_bytes: usize,
}

/// One partition of a fetch, as answered by its home shard.
#[derive(Clone, Debug, Default)]
struct PartData {
    error: i16,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    batches: Vec<Bytes>,
}

impl PartData {
    fn error(code: i16) -> PartData {
        PartData {
            error: code,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            batches: Vec::new(),
        }
    }
    fn bytes(&self) -> usize {
        self.batches.iter().map(Bytes::len).sum()
    }
}

pub async fn handle(ctx: Ctx, req: FetchRequest) -> Reply {
    if req.session_id != 0 || req.session_epoch > 0 {
        let resp = FetchResponse::default().with_error_code(codes::FETCH_SESSION_ID_NOT_FOUND);
        return Reply::Ready(encode(ctx, &resp));
    }
    let st = state();
    let mut names: Vec<(TopicName, i32)> = Vec::new();
    let mut results: Vec<Option<PartData>> = Vec::new();
    let mut by_shard: BTreeMap<ShardId, Vec<PartAsk>> = BTreeMap::new();
    for topic in &req.topics {
        for p in &topic.partitions {
            let slot = names.len();
            names.push((topic.topic.clone(), p.partition));
            let tp = TopicPartition::new(topic.topic.0.as_str(), p.partition);
            match st.shard_of(&tp) {
                Some(shard) => {
                    results.push(None);
                    by_shard.entry(shard).or_default().push(PartAsk {
                        slot,
                        tp,
                        offset: p.fetch_offset,
                        current_leader_epoch: p.current_leader_epoch,
                        max_bytes: p.partition_max_bytes.max(0) as usize,
                    });
                }
                None => results.push(Some(PartData::error(codes::UNKNOWN_TOPIC_OR_PARTITION))),
            }
        }
    }
    let max_bytes = req.max_bytes.max(0) as usize;
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);
    Reply::Deferred(Box::pin(async move {
        let deadline = Instant::now() + max_wait;
        let mut round = read_all(&by_shard, max_bytes).await;
        loop {
            let ready: usize = round.iter().map(|(_, d)| d.bytes()).sum();
            let any_error = round.iter().any(|(_, d)| d.error != codes::NONE);
            if ready >= min_bytes.max(1)
                || any_error
                || Instant::now() >= deadline
                || by_shard.is_empty()
            {
                break;
            }
            wait_for_data(&by_shard, deadline).await;
            round = read_all(&by_shard, max_bytes).await;
        }
        for (slot, data) in round {
            results[slot] = Some(data);
        }
        let mut topics: Vec<wire::FetchTopic> = Vec::new();
        for ((name, index), data) in names.into_iter().zip(results) {
            let d = data.expect("every partition answered");
            let part = wire::FetchPartition {
                partition_index: index,
                error_code: d.error,
                high_watermark: d.high_watermark,
                last_stable_offset: d.last_stable_offset,
                log_start_offset: d.log_start_offset,
                records: d.batches,
                ..Default::default()
            };
            match topics.last_mut() {
                Some(t) if t.name == name.0 => t.partitions.push(part),
                _ => topics.push(wire::FetchTopic {
                    name: name.0,
                    partitions: vec![part],
                    ..Default::default()
                }),
            }
        }
        let data = wire::FetchResponseData {
            topics,
            ..Default::default()
        };
        match wire::encode_fetch_response(ctx.correlation_id, ctx.version, &data) {
            Ok(frame) => frame.pieces,
            Err(e) => {
                tracing::error!(?ctx, "cannot encode fetch response: {e}");
                Vec::new()
            }
        }
    }))
}

/// One read round over every home shard, shard by shard so the response budget is shared
/// in request order (the first batch of the first partition is returned even when larger).
async fn read_all(
    by_shard: &BTreeMap<ShardId, Vec<PartAsk>>,
    max_bytes: usize,
) -> Vec<(usize, PartData)> {
    let mut out = Vec::new();
    let mut budget = max_bytes;
    for (shard, asks) in by_shard {
        let asks = asks.clone();
        let first = out.is_empty();
        let r = shards::runtime::invoke_on(*shard, move || read_local(asks, budget, first)).await;
        match r {
            Ok(parts) => {
                for (slot, d) in parts {
                    budget = budget.saturating_sub(d.bytes());
                    out.push((slot, d));
                }
            }
            Err(e) => {
                let code = codes::code_of(&e.into());
                for a in by_shard[shard].iter() {
                    out.push((a.slot, PartData::error(code)));
                }
            }
        }
    }
    out
}

async fn read_local(
    asks: Vec<PartAsk>,
    mut budget: usize,
    mut first: bool,
) -> Vec<(usize, PartData)> {
    let st = state();
    let mut out = Vec::with_capacity(asks.len());
    for a in asks {
        let d = match st.local_partition(&a.tp) {
            None => PartData::error(codes::NOT_LEADER_OR_FOLLOWER),
            Some(p) => {
                let err = check_epoch(a.current_leader_epoch, p.leader_epoch());
                if err != codes::NONE {
                    PartData::error(err)
                } else if a.offset < p.log_start_offset().0 || a.offset > p.log_end_offset().0 {
                    PartData {
                        error: codes::OFFSET_OUT_OF_RANGE,
                        high_watermark: p.high_watermark().0,
                        last_stable_offset: p.last_stable_offset().0,
                        log_start_offset: p.log_start_offset().0,
                        batches: Vec::new(),
                    }
                } else {
                    // Kafka: the first partition with data returns its first batch even
                    // if it exceeds the budget; later ones respect it.
                    let limit = a.max_bytes.min(if first { usize::MAX } else { budget });
                    let batches = if limit == 0 && !first {
                        Vec::new()
                    } else {
                        match p.read(Offset(a.offset), limit.max(1)).await {
                            Ok(r) => r.chunks,
                            Err(e) => {
                                out.push((a.slot, PartData::error(codes::code_of(&e.into()))));
                                continue;
                            }
                        }
                    };
                    PartData {
                        error: codes::NONE,
                        high_watermark: p.high_watermark().0,
                        last_stable_offset: p.last_stable_offset().0,
                        log_start_offset: p.log_start_offset().0,
                        batches,
                    }
                }
            }
        };
        let n = d.bytes();
        if n > 0 {
            first = false;
        }
        budget = budget.saturating_sub(n);
        out.push((a.slot, d));
    }
    out
}

/// KIP-320: a client's `current_leader_epoch` older than ours is fenced; newer is unknown.
pub fn check_epoch(requested: i32, current: LeaderEpoch) -> i16 {
    if requested < 0 || requested == current.0 {
        codes::NONE
    } else if requested < current.0 {
        codes::FENCED_LEADER_EPOCH
    } else {
        codes::UNKNOWN_LEADER_EPOCH
    }
}

/// Wait until any asked partition has committed data beyond its fetch offset, or the
/// deadline. Each home shard waits on its partitions' append notifications.
///
/// Returning (or being dropped with its request) ends every waiter still waiting on another
/// shard: each holds the receiver of a `stop` sender kept here. Without that, a long poll
/// answered by one shard's data left the other shards' waiters in place until their own
/// partitions got data or `max_wait_ms` (up to 24 days) passed — a client long-polling
/// partitions of an idle shard piled them up without bound (about 40 KiB each for 200
/// partitions).
async fn wait_for_data(by_shard: &BTreeMap<ShardId, Vec<PartAsk>>, deadline: Instant) {
    let mut stops = Vec::with_capacity(by_shard.len());
    let mut waits = Vec::with_capacity(by_shard.len());
    for (shard, asks) in by_shard {
        let asks: Vec<(TopicPartition, i64)> =
            asks.iter().map(|a| (a.tp.clone(), a.offset)).collect();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        stops.push(stop_tx);
        waits.push(Box::pin(shards::runtime::invoke_on(*shard, move || {
            wait_local(asks, deadline, stop_rx)
        })));
    }
    let _ = futures::future::select_all(waits).await;
    drop(stops);
}

/// Wait on this shard until an asked partition has data past its offset, the deadline, or
/// the asking fetch no longer waits (`stop`'s sender dropped).
async fn wait_local(
    asks: Vec<(TopicPartition, i64)>,
    deadline: Instant,
    mut stop: oneshot::Receiver<()>,
) {
    let st = state();
    loop {
        let mut subs = Vec::with_capacity(asks.len());
        for (tp, offset) in &asks {
            let Some(p) = st.local_partition(tp) else {
                return;
            };
            if p.high_watermark().0 > *offset {
                return;
            }
            let generation = p.watch();
            if p.high_watermark().0 > *offset {
                return;
            }
            subs.push(Box::pin(async move { p.changed_since(generation).await }));
        }
        let now = Instant::now();
        if now >= deadline || subs.is_empty() {
            return;
        }
        let timer = Box::pin(glommio::timer::sleep(deadline - now));
        let changed = futures::future::select(futures::future::select_all(subs), timer);
        if let Either::Right(_) = futures::future::select(changed, &mut stop).await {
            return;
        }
    }
}
