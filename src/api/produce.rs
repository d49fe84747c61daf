//! Produce (key 0). v3–v9 served; v0–v2 listed (librdkafka needs them listed, as Kafka 4
//! does) and answered UNSUPPORTED_VERSION.
//!
//! Two stages, as DESIGN.md's Architecture says: stage 1 runs on each partition's home
//! shard and fixes the order (offsets assigned). It is sent through the connection's
//! `Lane`, so the next request is read at once yet cannot overtake it on that shard (and
//! any non-produce request drains the lane first); stage 2 (durable per flush policy) is
//! the deferred part the connection's writer awaits, after stage 1's results.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::channel::oneshot;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
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

pub async fn handle(
    ctx: Ctx,
    lane: &shards::runtime::Lane,
    mut req: ProduceRequest,
    body: Bytes,
) -> Reply {
    let acks = req.acks;
    let timeout_ms = req.timeout_ms.max(0) as u64;
    let topic_data = std::mem::take(&mut req.topic_data);
    let early_error = if ctx.version < 3 {
        Some(codes::UNSUPPORTED_VERSION)
    } else if !matches!(acks, -1..=1) {
        Some(codes::INVALID_REQUIRED_ACKS)
    } else if req.transactional_id.is_some() {
        Some(codes::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    } else {
        None
    };
    // Nothing of the request may point into the frame once the batches are taken back.
    drop(req);
    let mut slots: Vec<(TopicName, i32, Option<Staged>)> = Vec::new();
    // Partitions to append: (slot index, home shard, tp, records).
    let mut appends: Vec<(usize, ShardId, TopicPartition, Bytes)> = Vec::new();
    let st = state();
    for topic in topic_data {
        let name = TopicName(StrBytes::from_string(topic.name.0.to_string()));
        for p in topic.partition_data {
            let slot = slots.len();
            let tp = TopicPartition::new(name.0.as_str(), p.index);
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
            appends.push((slot, shard, tp, records));
        }
    }
    // Partitions grouped by home shard: (slot index, tp, records).
    let mut by_shard: BTreeMap<ShardId, Vec<(usize, TopicPartition, BytesMut)>> = BTreeMap::new();
    let batches = reclaim_batches(body, appends.iter_mut().map(|a| std::mem::take(&mut a.3)));
    for ((slot, shard, tp, _), batch) in appends.into_iter().zip(batches) {
        by_shard.entry(shard).or_default().push((slot, tp, batch));
    }
    // Stage 1 on every home shard, concurrently (different partitions are independent),
    // sent through the connection's lane: the next request is read without waiting for
    // it, and the lane keeps this connection's appends to each shard in request order.
    let wait_commit = acks != 0;
    let mut sent = Vec::with_capacity(by_shard.len());
    for (shard, parts) in by_shard {
        let indices: Vec<usize> = parts.iter().map(|(i, _, _)| *i).collect();
        let staged = lane
            .send(shard, move || stage_one(parts, wait_commit))
            .await;
        sent.push((shard, indices, staged));
    }
    if acks == 0 {
        // No response to wait in: the request's memory stays counted until its appends
        // are done (`server`'s budget), and nothing is answered.
        for (_, _, staged) in sent {
            if let Ok(rx) = staged {
                let _ = rx.await;
            }
        }
        return Reply::Nothing;
    }
    Reply::Deferred(Box::pin(async move {
        for (shard, indices, staged) in sent {
            let staged = match staged {
                Ok(rx) => rx
                    .await
                    .map_err(|_| shards::Error::ShardUnavailable(shard.0)),
                Err(e) => Err(e),
            };
            match staged {
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

/// The record sets of a produce request as mutable buffers, in order, for the log to
/// patch (base offset, leader epoch) and keep. `records` are slices of `body`, the
/// request's frame; when nothing else holds the frame (`server::read_frame` gives large
/// frames an allocation of their own, and the decoded request is dropped by now) they are
/// cut out of it without a copy, otherwise copied. The frame's bytes between them (the
/// request's framing) stay in the allocation until the last batch is dropped; a frame
/// whose allocation is much larger than itself is copied instead, so kept batches never
/// pin much more memory than they hold.
fn reclaim_batches(body: Bytes, records: impl Iterator<Item = Bytes>) -> Vec<BytesMut> {
    let base = body.as_ptr() as usize;
    // Each record set's place in the frame, if it lies within it.
    let ranges: Vec<Result<(usize, usize), Bytes>> = records
        .map(|r| {
            let off = (r.as_ptr() as usize).wrapping_sub(base);
            match off.checked_add(r.len()) {
                Some(end) if end <= body.len() => Ok((off, r.len())),
                _ => Err(r),
            }
        })
        .collect();
    let ascending = ranges
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .try_fold(0, |end, &(off, len)| (off >= end).then_some(off + len))
        .is_some();
    let frame = match body.try_into_mut() {
        Ok(m) if ascending && m.capacity() <= m.len() + m.len() / 4 + FRAME_SLACK_BYTES_MAX => {
            Ok(m)
        }
        Ok(m) => Err(m.freeze()),
        Err(b) => Err(b),
    };
    match frame {
        Ok(mut frame) => {
            let mut cursor = 0;
            ranges
                .into_iter()
                .map(|r| match r {
                    Ok((off, len)) => {
                        frame.advance(off - cursor);
                        cursor = off + len;
                        frame.split_to(len)
                    }
                    Err(r) => BytesMut::from(&r[..]),
                })
                .collect()
        }
        Err(body) => ranges
            .into_iter()
            .map(|r| match r {
                Ok((off, len)) => BytesMut::from(&body[off..off + len]),
                Err(r) => BytesMut::from(&r[..]),
            })
            .collect(),
    }
}

/// Spare capacity a reclaimed frame may carry beyond a quarter of its length.
const FRAME_SLACK_BYTES_MAX: usize = 4096;

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
    for (_, tp, batch) in parts {
        let Some(partition) = st.local_partition(&tp) else {
            out.push(Staged::failed(codes::NOT_LEADER_OR_FOLLOWER));
            continue;
        };
        if !partition.has_space(batch.len()) {
            if let Err(e) = partition.wait_for_space(batch.len()).await {
                out.push(Staged::failed(codes::code_of(&e.into())));
                continue;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of `parts` record sets between bits of framing, as `read_frame` returns
    /// a large one (its own allocation), and the record sets as slices of it.
    fn frame_and_slices(parts: &[&[u8]]) -> (Bytes, Vec<Bytes>) {
        let mut m = BytesMut::new();
        let mut ranges = Vec::new();
        for p in parts {
            m.extend_from_slice(b"hdr");
            ranges.push((m.len(), p.len()));
            m.extend_from_slice(p);
        }
        let body = m.freeze();
        let slices = ranges.iter().map(|&(o, l)| body.slice(o..o + l)).collect();
        (body, slices)
    }

    fn addresses(bufs: &[impl AsRef<[u8]>]) -> Vec<usize> {
        bufs.iter().map(|b| b.as_ref().as_ptr() as usize).collect()
    }

    #[test]
    fn batches_of_an_unshared_frame_are_cut_out_without_a_copy() {
        let parts: [&[u8]; 3] = [b"first batch", b"", b"the third one"];
        let (body, slices) = frame_and_slices(&parts);
        let before = addresses(&slices);
        let got = reclaim_batches(body, slices.into_iter());
        assert_eq!(addresses(&got), before, "cut in place");
        for (g, p) in got.iter().zip(parts) {
            assert_eq!(&g[..], p);
        }
        // Each is mutable on its own.
        let mut got = got;
        got[0][0] = b'F';
        assert_eq!(&got[0][..], b"First batch");
        assert_eq!(&got[2][..], b"the third one");
    }

    #[test]
    fn batches_of_a_shared_or_disordered_frame_are_copied() {
        let parts: [&[u8]; 2] = [b"aaaa", b"bbbbbb"];
        // Someone else holds the frame: copies, same bytes.
        let (body, slices) = frame_and_slices(&parts);
        let other = body.clone();
        let before = addresses(&slices);
        let got = reclaim_batches(body, slices.into_iter());
        assert!(addresses(&got).iter().zip(&before).all(|(a, b)| a != b));
        assert_eq!(got.iter().map(|g| &g[..]).collect::<Vec<_>>(), parts);
        drop(other);
        // Record sets out of frame order (never from the decoder): copies, request order.
        let (body, mut slices) = frame_and_slices(&parts);
        slices.reverse();
        let got = reclaim_batches(body, slices.into_iter());
        assert_eq!(&got[0][..], b"bbbbbb");
        assert_eq!(&got[1][..], b"aaaa");
        // A slice from elsewhere: copied, the others still cut in place.
        let (body, mut slices) = frame_and_slices(&parts);
        slices.push(Bytes::from_static(b"elsewhere"));
        let before = addresses(&slices);
        let got = reclaim_batches(body, slices.into_iter());
        assert_eq!(addresses(&got)[..2], before[..2]);
        assert_eq!(&got[2][..], b"elsewhere");
    }
}
