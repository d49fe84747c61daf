//! Offset lookups and log-start moves: ListOffsets (2), DeleteRecords (21),
//! OffsetForLeaderEpoch (23). Each partition is answered on its home shard through
//! [`on_partition`].

use std::future::Future;
use std::rc::Rc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use shards::partition::Partition;
use shards::{LeaderEpoch, Offset, TopicPartition};

use super::fetch::check_epoch;
use super::{codes, Ctx};
use crate::broker::state;

/// ListOffsets special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// Run `f` with the partition on its home shard; Kafka error codes for a missing one.
pub async fn on_partition<T, F, Fut>(tp: TopicPartition, f: F) -> Result<T, i16>
where
    T: Send + 'static,
    F: FnOnce(Rc<Partition>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, i16>> + 'static,
{
    let Some(shard) = state().shard_of(&tp) else {
        return Err(codes::UNKNOWN_TOPIC_OR_PARTITION);
    };
    let run = move || async move {
        match state().local_partition(&tp) {
            Some(p) => f(p).await,
            None => Err(codes::NOT_LEADER_OR_FOLLOWER),
        }
    };
    shards::runtime::invoke_on(shard, run)
        .await
        .unwrap_or(Err(codes::NOT_LEADER_OR_FOLLOWER))
}

fn engine_code(e: shards::Error) -> i16 {
    codes::code_of(&e.into())
}

/// The leader epoch of the batch holding `offset`, from the epoch cache.
fn epoch_at(p: &Partition, offset: Offset) -> i32 {
    p.log()
        .epoch_entries()
        .iter()
        .rev()
        .find(|(_, start)| *start <= offset)
        .map(|(e, _)| e.0)
        .unwrap_or(-1)
}

pub async fn list_offsets(_ctx: Ctx, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let tp = TopicPartition::new(t.name.0.as_str(), p.partition_index);
            let (ts, ask_epoch) = (p.timestamp, p.current_leader_epoch);
            let r = on_partition(tp, move |part| list_one(part, ts, ask_epoch)).await;
            let resp =
                ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            parts.push(match r {
                Ok((offset, timestamp, epoch)) => resp
                    .with_offset(offset)
                    .with_timestamp(timestamp)
                    .with_leader_epoch(epoch),
                Err(code) => resp
                    .with_error_code(code)
                    .with_offset(-1)
                    .with_timestamp(-1),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(parts),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

async fn list_one(
    p: Rc<Partition>,
    timestamp: i64,
    ask_epoch: i32,
) -> Result<(i64, i64, i32), i16> {
    let err = check_epoch(ask_epoch, p.leader_epoch());
    if err != codes::NONE {
        return Err(err);
    }
    let hw = p.high_watermark();
    let at = |offset: Offset, ts: i64| (offset.0, ts, epoch_at(&p, offset));
    match timestamp {
        EARLIEST => Ok(at(p.log_start_offset(), -1)),
        LATEST => Ok((hw.0, -1, p.leader_epoch().0)),
        MAX_TIMESTAMP => match p.log().max_timestamp_record().await.map_err(engine_code)? {
            Some((offset, ts)) if offset < hw => Ok(at(offset, ts)),
            _ => Ok((-1, -1, -1)),
        },
        ts if ts >= 0 => match p
            .log()
            .offset_for_timestamp(ts)
            .await
            .map_err(engine_code)?
        {
            Some((offset, found)) if offset < hw => Ok(at(offset, found)),
            _ => Ok((-1, -1, -1)),
        },
        _ => Err(codes::INVALID_REQUEST),
    }
}

pub async fn delete_records(_ctx: Ctx, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let tp = TopicPartition::new(t.name.0.as_str(), p.partition_index);
            let offset = p.offset;
            let r = on_partition(tp, move |part| async move {
                let hw = part.high_watermark();
                // -1 means "up to the high watermark", as Kafka's admin client sends it.
                let target = if offset == -1 { hw } else { Offset(offset) };
                if target.0 < 0 || target > hw {
                    return Err(codes::OFFSET_OUT_OF_RANGE);
                }
                part.log()
                    .delete_records_before(target)
                    .await
                    .map_err(engine_code)
            })
            .await;
            let resp =
                DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            parts.push(match r {
                Ok(low) => resp.with_low_watermark(low.0),
                Err(code) => resp.with_error_code(code).with_low_watermark(-1),
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(parts),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// KIP-101/320: the end offset of the requested epoch (the start of the next one), for
/// consumers detecting log truncation.
pub async fn offset_for_leader_epoch(
    _ctx: Ctx,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let tp = TopicPartition::new(t.topic.0.as_str(), p.partition);
            let (ask, epoch) = (p.current_leader_epoch, p.leader_epoch);
            let r = on_partition(tp, move |part| async move {
                let err = check_epoch(ask, part.leader_epoch());
                if err != codes::NONE {
                    return Err(err);
                }
                Ok(part
                    .log()
                    .end_offset_for_epoch(LeaderEpoch(epoch))
                    .map(|(e, o)| (e.0, o.0))
                    .unwrap_or((-1, -1)))
            })
            .await;
            let resp = EpochEndOffset::default().with_partition(p.partition);
            parts.push(match r {
                Ok((e, o)) => resp.with_leader_epoch(e).with_end_offset(o),
                Err(code) => resp
                    .with_error_code(code)
                    .with_leader_epoch(-1)
                    .with_end_offset(-1),
            });
        }
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(parts),
        );
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
