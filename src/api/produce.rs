//! Produce (key 0). v3–v9 served; v0–v2 listed (librdkafka needs them listed, as Kafka 4
//! does) and answered UNSUPPORTED_VERSION.
//!
//! Two stages, as DESIGN.md's Architecture says: stage 1 runs on each partition's home
//! shard and fixes the order (offsets assigned) before this handler returns, so the next
//! request on the connection cannot overtake it; stage 2 (durable per flush policy) is
//! the deferred part the connection's writer awaits.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::channel::oneshot;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use shards::{ShardId, TopicPartition};

use super::{codes, encode, Ctx};
use crate::broker::state;
use crate::server::Reply;

/// Per partition, what stage 1 produced.
struct Staged {
    error: i16,
    base_offset: i64,
    log_append_time_ms: i64,
    log_start_offset: i64,
    /// Completes with an error code when the batch is committed (stage 2).
    committed: Option<oneshot::Receiver<i16>>,
}

impl Staged {
    fn failed(error: i16) -> Staged {
        Staged {
            error,
            base_offset: -1,
            log_append_time_ms: -1,
            log_start_offset: -1,
            committed: None,
        }
    }
}

pub async fn handle(ctx: Ctx, req: ProduceRequest) -> Reply {
    let acks = req.acks;
    let mut slots: Vec<(TopicName, i32, Option<Staged>)> = Vec::new();
    // Partitions grouped by home shard: (slot index, tp, records).
    let mut by_shard: BTreeMap<ShardId, Vec<(usize, TopicPartition, Bytes)>> = BTreeMap::new();
    let st = state();
    let early_error = if ctx.version < 3 {
        Some(codes::UNSUPPORTED_VERSION)
    } else if !matches!(acks, -1..=1) {
        Some(codes::INVALID_REQUIRED_ACKS)
    } else if req.transactional_id.is_some() {
        Some(codes::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    } else {
        None
    };
    for topic in req.topic_data {
        for p in topic.partition_data {
            let slot = slots.len();
            let tp = TopicPartition::new(topic.name.0.as_str(), p.index);
            if let Some(code) = early_error {
                slots.push((topic.name.clone(), p.index, Some(Staged::failed(code))));
                continue;
            }
            let Some(shard) = st.shard_of(&tp) else {
                slots.push((
                    topic.name.clone(),
                    p.index,
                    Some(Staged::failed(codes::UNKNOWN_TOPIC_OR_PARTITION)),
                ));
                continue;
            };
            let Some(records) = p.records else {
                slots.push((
                    topic.name.clone(),
                    p.index,
                    Some(Staged::failed(codes::CORRUPT_MESSAGE)),
                ));
                continue;
            };
            slots.push((topic.name.clone(), p.index, None));
            by_shard.entry(shard).or_default().push((slot, tp, records));
        }
    }
    // Stage 1 on every home shard, concurrently (different partitions are independent);
    // all of them finish before the next request of this connection is read.
    let wait_commit = acks != 0;
    let calls = by_shard.into_iter().map(|(shard, parts)| async move {
        let indices: Vec<usize> = parts.iter().map(|(i, _, _)| *i).collect();
        let result = shards::runtime::invoke_on(shard, move || stage_one(parts, wait_commit)).await;
        (indices, result)
    });
    for (indices, result) in futures::future::join_all(calls).await {
        match result {
            Ok(staged) => {
                for (i, s) in indices.into_iter().zip(staged) {
                    slots[i].2 = Some(s);
                }
            }
            Err(e) => {
                let code = codes::code_of(&e.into());
                for i in indices {
                    slots[i].2 = Some(Staged::failed(code));
                }
            }
        }
    }
    if acks == 0 {
        return Reply::Nothing;
    }
    let timeout_ms = req.timeout_ms.max(0) as u64;
    Reply::Deferred(Box::pin(async move {
        let mut by_topic: Vec<TopicProduceResponse> = Vec::new();
        for (name, index, staged) in slots {
            let mut s = staged.expect("every slot is staged");
            if let Some(rx) = s.committed.take() {
                s.error = await_commit(rx, timeout_ms).await;
            }
            let part = PartitionProduceResponse::default()
                .with_index(index)
                .with_error_code(s.error)
                .with_base_offset(if s.error == codes::NONE {
                    s.base_offset
                } else {
                    -1
                })
                .with_log_append_time_ms(s.log_append_time_ms)
                .with_log_start_offset(s.log_start_offset);
            match by_topic.last_mut() {
                Some(t) if t.name == name => t.partition_responses.push(part),
                _ => by_topic.push(
                    TopicProduceResponse::default()
                        .with_name(name)
                        .with_partition_responses(vec![part]),
                ),
            }
        }
        encode(ctx, &ProduceResponse::default().with_responses(by_topic))
    }))
}

async fn await_commit(rx: oneshot::Receiver<i16>, timeout_ms: u64) -> i16 {
    let timer = glommio::timer::sleep(Duration::from_millis(timeout_ms.max(1)));
    futures::pin_mut!(timer);
    match futures::future::select(rx, timer).await {
        futures::future::Either::Left((Ok(code), _)) => code,
        futures::future::Either::Left((Err(_), _)) => codes::NOT_LEADER_OR_FOLLOWER,
        futures::future::Either::Right(_) => codes::REQUEST_TIMED_OUT,
    }
}

/// Runs on the home shard: append each batch in request order (waiting for in-flight
/// space when the log is full: backpressure, not an error) and spawn the wait for its
/// commit.
async fn stage_one(parts: Vec<(usize, TopicPartition, Bytes)>, wait_commit: bool) -> Vec<Staged> {
    let st = state();
    let mut out = Vec::with_capacity(parts.len());
    for (_, tp, records) in parts {
        let Some(partition) = st.local_partition(&tp) else {
            out.push(Staged::failed(codes::NOT_LEADER_OR_FOLLOWER));
            continue;
        };
        if !partition.has_space(records.len()) {
            if let Err(e) = partition.wait_for_space(records.len()).await {
                out.push(Staged::failed(codes::code_of(&e.into())));
                continue;
            }
        }
        let batch = records
            .try_into_mut()
            .unwrap_or_else(|b| BytesMut::from(&b[..]));
        out.push(match partition.append(batch) {
            Ok(info) => {
                let committed = wait_commit.then(|| {
                    let (tx, rx) = oneshot::channel();
                    let p = partition.clone();
                    shards::runtime::spawn_latency(async move {
                        let code = match p.wait_committed(info.last_offset).await {
                            Ok(()) => codes::NONE,
                            Err(e) => codes::code_of(&e.into()),
                        };
                        let _ = tx.send(code);
                    });
                    rx
                });
                Staged {
                    error: codes::NONE,
                    base_offset: info.base_offset.0,
                    log_append_time_ms: info.log_append_time_ms,
                    log_start_offset: info.log_start_offset.0,
                    committed,
                }
            }
            Err(e) => Staged::failed(codes::code_of(&e.into())),
        });
    }
    out
}
