//! Produce (key 0). v3–v9 served; v0–v2 listed (librdkafka needs them listed, as Kafka 4
//! does) and answered UNSUPPORTED_VERSION.
//!
//! Two stages, as DESIGN.md's Architecture says: stage 1 runs on each partition's home
//! shard and fixes the order (offsets assigned). It is sent through the connection's
//! `Lane`, so the next request is read at once yet cannot overtake it on that shard (and
//! any non-produce request drains the lane first); stage 2 (durable per flush policy) is
//! the deferred part the connection's writer awaits. The home shard waits for stage 2
//! itself and answers once per request, with stage 1's results and the commit codes
//! together: one wake-up of the connection's shard per request and home shard, not two.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::channel::oneshot;
use futures::future::{Either, FutureExt};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use shards::partition::Partition;
use shards::{Offset, ShardId, TopicPartition};

use super::{codes, encode, Ctx};
use crate::broker::{state, ShardState};
use crate::cluster::ClusterView;
use crate::server::Reply;

/// Per partition, what stage 1 produced.
struct Staged {
    error: i16,
    base_offset: i64,
    log_append_time_ms: i64,
    log_start_offset: i64,
}

impl Staged {
    fn failed(error: i16) -> Staged {
        Staged {
            error,
            base_offset: -1,
            log_append_time_ms: -1,
            log_start_offset: -1,
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
    let view = st.view();
    for topic in topic_data {
        let name = TopicName(StrBytes::from_string(topic.name.0.to_string()));
        for p in topic.partition_data {
            let slot = slots.len();
            let tp = TopicPartition::new(name.0.as_str(), p.index);
            let short_of_isr =
                acks == -1 && isr_below_minimum(&st, &view, name.0.as_str(), p.index);
            if let Some(code) = early_error.or(short_of_isr.then_some(codes::NOT_ENOUGH_REPLICAS)) {
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
    if acks == 0 {
        // No response to wait in: the request's memory stays counted until its appends
        // are done (`server`'s budget), and nothing is answered.
        let mut sent = Vec::with_capacity(by_shard.len());
        for (shard, parts) in by_shard {
            sent.push(lane.send(shard, move || stage_one(parts)).await);
        }
        for rx in sent.into_iter().flatten() {
            let _ = rx.await;
        }
        return Reply::Nothing;
    }
    let mut sent = Vec::with_capacity(by_shard.len());
    for (shard, parts) in by_shard {
        let indices: Vec<usize> = parts.iter().map(|(i, _, _)| *i).collect();
        let (tx, rx) = oneshot::channel();
        let job = move || async move {
            let (staged, commits) = stage_one_keeping(parts).await;
            // Stage 1 is done (the lane's next job may start); stage 2 waits apart.
            shards::runtime::spawn_latency(async move {
                let _ = tx.send(await_commits(staged, commits, timeout_ms).await);
            });
        };
        // The job's own (unit) reply is not awaited: only `rx`, after stage 2.
        let queued = lane.send(shard, job).await.map(drop);
        sent.push((shard, indices, queued.map(|()| rx)));
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
            let s = staged.expect("every slot is staged");
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

/// acks=all to a partition whose in-sync replicas are fewer than the topic's
/// `min.insync.replicas`: Kafka refuses it with NOT_ENOUGH_REPLICAS and writes nothing.
/// (A single node has one replica in sync, so this bites when the setting is above 1.)
fn isr_below_minimum(st: &ShardState, view: &ClusterView, topic: &str, partition: i32) -> bool {
    let Some(t) = view.topic(topic) else {
        return false;
    };
    let Some(p) = view.partition(topic, partition) else {
        return false;
    };
    (p.isr.len() as i32) < st.settings.min_insync_replicas(&t.configs)
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

/// Runs on the home shard after stage 1: waits until every appended batch is committed
/// (durable per flush policy) or the request's timeout passes, and puts the outcome in
/// each partition's error code (REQUEST_TIMED_OUT for those not committed by then).
async fn await_commits(
    mut staged: Vec<Staged>,
    commits: Vec<Commit>,
    timeout_ms: u64,
) -> Vec<Staged> {
    let deadline = glommio::timer::sleep(Duration::from_millis(timeout_ms.max(1)));
    futures::pin_mut!(deadline);
    let mut timed_out = false;
    for (s, commit) in staged.iter_mut().zip(commits) {
        let Some((partition, last)) = commit else {
            continue;
        };
        let wait = partition.wait_committed(last);
        futures::pin_mut!(wait);
        let outcome = if timed_out {
            wait.now_or_never()
        } else {
            match futures::future::select(wait, deadline.as_mut()).await {
                Either::Left((outcome, _)) => Some(outcome),
                Either::Right(((), wait)) => {
                    timed_out = true;
                    wait.now_or_never()
                }
            }
        };
        s.error = match outcome {
            Some(Ok(())) => codes::NONE,
            Some(Err(e)) => codes::code_of(&e.into()),
            None => codes::REQUEST_TIMED_OUT,
        };
    }
    staged
}

/// Stage 1 for acks=0: the appends' outcomes, nothing to wait for after them.
async fn stage_one(parts: Vec<(usize, TopicPartition, BytesMut)>) -> Vec<Staged> {
    stage_one_keeping(parts).await.0
}

/// A batch appended on this shard: its partition and the last offset to wait for.
type Commit = Option<(Rc<Partition>, Offset)>;

/// Runs on the home shard: append each batch in request order. Returns each partition's
/// outcome and, for the appended ones, what to wait on for their commit.
async fn stage_one_keeping(
    parts: Vec<(usize, TopicPartition, BytesMut)>,
) -> (Vec<Staged>, Vec<Commit>) {
    let mut out = Vec::with_capacity(parts.len());
    for (_, tp, batch) in parts {
        out.push(append_one(&tp, batch).await);
    }
    out.into_iter().unzip()
}

/// One batch's append, waiting for in-flight space when the log is full (backpressure,
/// not an error).
async fn append_one(tp: &TopicPartition, batch: BytesMut) -> (Staged, Commit) {
    let failed = |e: shards::Error| (Staged::failed(codes::code_of(&e.into())), None);
    let Some(partition) = state().local_partition(tp) else {
        return (Staged::failed(codes::NOT_LEADER_OR_FOLLOWER), None);
    };
    if !partition.has_space(batch.len()) {
        if let Err(e) = partition.wait_for_space(batch.len()).await {
            return failed(e);
        }
    }
    match partition.append(batch) {
        Ok(info) => (
            Staged {
                error: codes::NONE,
                base_offset: info.base_offset.0,
                log_append_time_ms: info.log_append_time_ms,
                log_start_offset: info.log_start_offset.0,
            },
            Some((partition, info.last_offset)),
        ),
        Err(e) => failed(e),
    }
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
