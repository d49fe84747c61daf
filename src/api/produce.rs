//! Produce (key 0). v3–v9 served; v0–v2 listed (librdkafka needs them listed, as Kafka 4
//! does) and answered UNSUPPORTED_VERSION.
//!
//! Two stages, as DESIGN.md's Architecture says: stage 1 runs on each partition's home
//! shard and fixes the order (offsets assigned) before this handler returns, so the next
//! request on the connection cannot overtake it; stage 2 (durable per flush policy) is
//! the deferred part the connection's writer awaits.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::channel::oneshot;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::Decodable;
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

/// `body` is the request after its header; its batches are split off it without a copy
/// when nothing else holds its memory (see [`carve_batches`]).
pub async fn handle(ctx: Ctx, body: Bytes) -> Reply {
    let mut req = match ProduceRequest::decode(&mut body.clone(), ctx.version) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(?ctx, "undecodable request: {e}");
            return Reply::Close;
        }
    };
    let acks = req.acks;
    let timeout_ms = req.timeout_ms.max(0) as u64;
    let transactional = req.transactional_id.is_some();
    let topic_data = std::mem::take(&mut req.topic_data);
    // Every view of `body` must be gone before the batches are split off it.
    drop(req);
    let mut slots: Vec<(TopicName, i32, Option<Staged>)> = Vec::new();
    // Partitions with records, in request order: (slot index, home shard, tp).
    let mut placed: Vec<(usize, ShardId, TopicPartition)> = Vec::new();
    let mut records_at: Vec<Bytes> = Vec::new();
    let st = state();
    let early_error = if ctx.version < 3 {
        Some(codes::UNSUPPORTED_VERSION)
    } else if !matches!(acks, -1..=1) {
        Some(codes::INVALID_REQUIRED_ACKS)
    } else if transactional {
        Some(codes::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    } else {
        None
    };
    for topic in topic_data {
        // An owned name: the decoded one is a view of the request's memory, which the
        // batches are about to take over.
        let name = TopicName(topic.name.0.as_str().to_owned().into());
        for p in topic.partition_data {
            let slot = slots.len();
            let tp = TopicPartition::new(topic.name.0.as_str(), p.index);
            if let Some(code) = early_error {
                slots.push((name.clone(), p.index, Some(Staged::failed(code))));
                continue;
            }
            let Some(shard) = st.shard_of(&tp) else {
                slots.push((
                    name.clone(),
                    p.index,
                    Some(Staged::failed(codes::UNKNOWN_TOPIC_OR_PARTITION)),
                ));
                continue;
            };
            let Some(records) = p.records else {
                slots.push((
                    name.clone(),
                    p.index,
                    Some(Staged::failed(codes::CORRUPT_MESSAGE)),
                ));
                continue;
            };
            slots.push((name.clone(), p.index, None));
            placed.push((slot, shard, tp));
            records_at.push(records);
        }
    }
    // Partitions grouped by home shard: (slot index, tp, batch).
    let mut by_shard: BTreeMap<ShardId, Vec<(usize, TopicPartition, BytesMut)>> = BTreeMap::new();
    for ((slot, shard, tp), batch) in placed.into_iter().zip(carve_batches(body, records_at)) {
        by_shard.entry(shard).or_default().push((slot, tp, batch));
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

/// The batches of a request as buffers the log may patch in place (base offset, leader
/// epoch), in the order of `records` (views of `body`, in request order). When `body` is
/// the only holder of its memory — a large request, which the server reads into an
/// allocation of its own — they are split off it without a copy; otherwise (a small
/// request, sharing the connection's read buffer) each is copied out, so that the tail
/// cache never pins a read buffer for a small batch.
fn carve_batches(body: Bytes, records: Vec<Bytes>) -> Vec<BytesMut> {
    let base = body.as_ptr() as usize;
    let ranges: Option<Vec<(usize, usize)>> = records
        .iter()
        .map(|r| {
            let start = (r.as_ptr() as usize).checked_sub(base)?;
            (start + r.len() <= body.len()).then_some((start, r.len()))
        })
        .collect();
    // Disjoint and in order, as the decoder hands them out; anything else is copied.
    let ordered = ranges
        .as_ref()
        .is_some_and(|rs| rs.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0));
    let copies = |records: Vec<Bytes>| records.iter().map(|r| BytesMut::from(&r[..])).collect();
    let Some(ranges) = ranges.filter(|_| ordered) else {
        return copies(records);
    };
    drop(records);
    let mut rest = match body.try_into_mut() {
        Ok(whole) => whole,
        Err(body) => {
            return ranges
                .iter()
                .map(|&(start, len)| BytesMut::from(&body[start..start + len]))
                .collect()
        }
    };
    let whole_bytes = rest.len();
    let mut at = 0;
    ranges
        .into_iter()
        .map(|(start, len)| {
            rest.advance(start - at);
            at = start + len;
            let batch = rest.split_to(len);
            // A batch kept in the tail cache pins the whole request's memory while its
            // budget counts only the batch: small ones are copied out, so that a batch
            // pins at most BATCH_SHARE_PIN_MAX times its own size.
            if len * BATCH_SHARE_PIN_MAX >= whole_bytes {
                batch
            } else {
                BytesMut::from(&batch[..])
            }
        })
        .collect()
}

/// See [`carve_batches`].
const BATCH_SHARE_PIN_MAX: usize = 8;

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
async fn stage_one(
    parts: Vec<(usize, TopicPartition, BytesMut)>,
    wait_commit: bool,
) -> Vec<Staged> {
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
        out.push(match partition.append(records) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A body holding `sizes` batches (filled with their index) after a 10-byte prefix,
    /// each preceded by 3 bytes of framing, and views of the batches as a decoder makes.
    fn body_with(sizes: &[usize]) -> (Bytes, Vec<Bytes>) {
        let mut b = BytesMut::from(&[0xAAu8; 10][..]);
        let mut at = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            b.extend_from_slice(&[0xBB; 3]);
            at.push((b.len(), n));
            b.extend_from_slice(&vec![i as u8; n]);
        }
        let body = b.freeze();
        let views = at.iter().map(|&(s, n)| body.slice(s..s + n)).collect();
        (body, views)
    }

    fn within(piece: &BytesMut, base: usize, len: usize) -> bool {
        let p = piece.as_ptr() as usize;
        p >= base && p + piece.len() <= base + len
    }

    #[test]
    fn sole_holder_splits_large_batches_off_without_a_copy() {
        let (body, views) = body_with(&[4000, 5000, 100, 6000]);
        let (base, len) = (body.as_ptr() as usize, body.len());
        let out = carve_batches(body, views);
        assert_eq!(out.len(), 4);
        for (i, (piece, n)) in out.iter().zip([4000, 5000, 100, 6000]).enumerate() {
            assert_eq!(piece.len(), n);
            assert!(piece.iter().all(|&x| x == i as u8), "batch {i} content");
        }
        assert!(within(&out[0], base, len) && within(&out[1], base, len));
        assert!(within(&out[3], base, len));
        // 100 bytes of a 15 KB request: copied, so it cannot pin the request.
        assert!(!within(&out[2], base, len));
    }

    #[test]
    fn shared_body_is_copied() {
        let (body, views) = body_with(&[4000, 5000]);
        let keep = body.clone();
        let (base, len) = (body.as_ptr() as usize, body.len());
        let out = carve_batches(body, views);
        assert_eq!(&out[0][..], &keep[13..4013]);
        assert_eq!(&out[1][..], &keep[4016..9016]);
        assert!(out.iter().all(|p| !within(p, base, len)));
    }

    #[test]
    fn views_out_of_order_or_elsewhere_are_copied() {
        let (body, mut views) = body_with(&[3000, 3000]);
        views.swap(0, 1);
        let out = carve_batches(body.clone(), views);
        assert!(out[0].iter().all(|&x| x == 1) && out[1].iter().all(|&x| x == 0));
        let foreign = vec![Bytes::from(vec![7u8; 50])];
        let out = carve_batches(body, foreign);
        assert_eq!(&out[0][..], &[7u8; 50][..]);
    }
}
