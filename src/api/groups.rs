//! Consumer groups and committed offsets: FindCoordinator (10), JoinGroup (11), Heartbeat
//! (12), LeaveGroup (13), SyncGroup (14), DescribeGroups (15), ListGroups (16),
//! OffsetCommit (8), OffsetFetch (9), DeleteGroups (42), OffsetDelete (47).
//!
//! The front shard decodes, finds the group's coordinator shard ([`coordinator::route`])
//! and forwards the request there with `invoke_on`; the group state never leaves its home
//! shard. Stage 1 (the forward, which fixes the request's effect: a join registered, a
//! commit appended) runs before the connection reads its next request; stage 2 (waiting
//! for the rebalance, or for the commit to be durable) is the deferred reply.

use std::future::Future;

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{codes, encode, Ctx};
use crate::broker::state;
use crate::coordinator::{self, group::JoinParams, Pending};
use crate::error::{Error, Result};
use crate::server::Reply;

/// Who sent the request (JoinGroup records it; DescribeGroups reports it).
#[derive(Clone, Debug, Default)]
pub struct Client {
    pub client_id: String,
    /// Kafka's format: `/<ip>`.
    pub host: String,
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn opt(v: &Option<StrBytes>) -> Option<String> {
    v.as_ref().map(|x| x.to_string())
}

/// Run `f(partition)` on the coordinator shard of `group_id`.
async fn on_coordinator<R, F, Fut>(group_id: &str, f: F) -> Result<R>
where
    R: Send + 'static,
    F: FnOnce(i32) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
{
    let route = coordinator::route(group_id)?;
    let partition = route.partition;
    shards::runtime::invoke_on(route.shard, move || f(partition))
        .await
        .map_err(|e| Error::CoordinatorNotAvailable(format!("{group_id}: {e}")))
}

/// Forward an operation that answers through a [`Pending`] receiver.
async fn forward<T, F, Fut>(group_id: &str, f: F) -> Pending<T>
where
    T: Send + 'static,
    F: FnOnce(i32) -> Fut + Send + 'static,
    Fut: Future<Output = Pending<T>> + 'static,
{
    match on_coordinator(group_id, f).await {
        Ok(rx) => rx,
        Err(e) => {
            let (tx, rx) = futures::channel::oneshot::channel();
            let _ = tx.send(Err(e));
            rx
        }
    }
}

async fn settle<T>(rx: Pending<T>) -> Result<T> {
    rx.await.unwrap_or_else(|_| {
        Err(Error::CoordinatorNotAvailable(
            "coordinator went away".into(),
        ))
    })
}

fn code(r: &Result<impl Sized>) -> i16 {
    match r {
        Ok(_) => codes::NONE,
        Err(e) => codes::code_of(e),
    }
}

// ----- FindCoordinator ----------------------------------------------------------------

/// Key type 0 is a group; transactions (1) have no coordinator yet.
async fn find_one(key: &str, key_type: i8) -> (i16, i32, String, i32) {
    let not_available = (codes::COORDINATOR_NOT_AVAILABLE, -1, String::new(), -1);
    if key_type != 0 {
        return not_available;
    }
    if key.is_empty() {
        return (codes::INVALID_GROUP_ID, -1, String::new(), -1);
    }
    if let Err(e) = coordinator::ensure_offsets_topic(coordinator::OFFSETS_TOPIC_CREATE_WAIT).await
    {
        tracing::info!("{e}");
        return not_available;
    }
    let st = state();
    match coordinator::route(key) {
        Ok(route) => {
            let partition = route.partition;
            // Name this broker only once the partition is open on its home shard (while a
            // new view is installed it may not be yet), and warm the coordinator up: the
            // group's first request should not pay the replay.
            let open = shards::runtime::invoke_on(route.shard, move || async move {
                coordinator::open_and_preload(partition)
            })
            .await
            .unwrap_or(false);
            if !open {
                return not_available;
            }
            (
                codes::NONE,
                st.settings.node_id.0,
                st.settings.advertised_host.clone(),
                st.settings.advertised_port,
            )
        }
        Err(e) => (codes::code_of(&e), -1, String::new(), -1),
    }
}

pub async fn find_coordinator(ctx: Ctx, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    if ctx.version >= 4 {
        let mut coordinators = Vec::with_capacity(req.coordinator_keys.len());
        for key in &req.coordinator_keys {
            let (error, node, host, port) = find_one(key, req.key_type).await;
            coordinators.push(
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(node))
                    .with_host(s(host))
                    .with_port(port)
                    .with_error_code(error),
            );
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let key_type = if ctx.version >= 1 { req.key_type } else { 0 };
    let (error, node, host, port) = find_one(&req.key, key_type).await;
    FindCoordinatorResponse::default()
        .with_error_code(error)
        .with_node_id(BrokerId(node))
        .with_host(s(host))
        .with_port(port)
}

// ----- JoinGroup, SyncGroup, Heartbeat, LeaveGroup --------------------------------------

pub async fn join_group(ctx: Ctx, req: JoinGroupRequest, client: Client) -> Reply {
    let group_id = req.group_id.0.to_string();
    let params = JoinParams {
        member_id: req.member_id.to_string(),
        group_instance_id: opt(&req.group_instance_id),
        client_id: client.client_id,
        client_host: client.host,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if ctx.version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        session_timeout_ms: req.session_timeout_ms,
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: ctx.version >= 4,
    };
    let gid = group_id.clone();
    let rx = forward(&group_id, move |p| coordinator::join(p, gid, params)).await;
    Reply::Deferred(Box::pin(async move {
        let result = settle(rx).await;
        encode(ctx, &join_response(ctx, result))
    }))
}

fn join_response(ctx: Ctx, result: Result<coordinator::JoinResponse>) -> JoinGroupResponse {
    // Non-nullable before v7: an empty string stands for "none".
    let name = |v: Option<String>| {
        if ctx.version >= 7 {
            v.map(s)
        } else {
            Some(s(v.unwrap_or_default()))
        }
    };
    match result {
        Ok(r) => JoinGroupResponse::default()
            .with_generation_id(r.generation_id)
            .with_protocol_type(if ctx.version >= 7 {
                r.protocol_type.map(s)
            } else {
                None
            })
            .with_protocol_name(name(r.protocol_name))
            .with_leader(s(r.leader))
            .with_skip_assignment(ctx.version >= 9 && r.skip_assignment)
            .with_member_id(s(r.member_id))
            .with_members(
                r.members
                    .into_iter()
                    .map(|m| {
                        JoinGroupResponseMember::default()
                            .with_member_id(s(m.member_id))
                            .with_group_instance_id(if ctx.version >= 5 {
                                m.group_instance_id.map(s)
                            } else {
                                None
                            })
                            .with_metadata(m.metadata)
                    })
                    .collect(),
            ),
        Err(e) => {
            let member_id = match &e {
                Error::MemberIdRequired(id) => id.clone(),
                _ => String::new(),
            };
            JoinGroupResponse::default()
                .with_error_code(codes::code_of(&e))
                .with_generation_id(-1)
                .with_protocol_name(name(None))
                .with_member_id(s(member_id))
        }
    }
}

pub async fn sync_group(ctx: Ctx, req: SyncGroupRequest) -> Reply {
    let group_id = req.group_id.0.to_string();
    let params = coordinator::SyncParams {
        member_id: req.member_id.to_string(),
        group_instance_id: opt(&req.group_instance_id),
        generation_id: req.generation_id,
        protocol_type: opt(&req.protocol_type),
        protocol_name: opt(&req.protocol_name),
        assignments: req
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    let gid = group_id.clone();
    let rx = forward(&group_id, move |p| coordinator::sync(p, gid, params)).await;
    Reply::Deferred(Box::pin(async move {
        let response = match settle(rx).await {
            Ok(r) => {
                let out = SyncGroupResponse::default().with_assignment(r.assignment);
                if ctx.version >= 5 {
                    out.with_protocol_type(r.protocol_type.map(s))
                        .with_protocol_name(r.protocol_name.map(s))
                } else {
                    out
                }
            }
            Err(e) => SyncGroupResponse::default()
                .with_error_code(codes::code_of(&e))
                .with_assignment(Bytes::new()),
        };
        encode(ctx, &response)
    }))
}

pub async fn heartbeat(_ctx: Ctx, req: HeartbeatRequest) -> HeartbeatResponse {
    let group_id = req.group_id.0.to_string();
    let gid = group_id.clone();
    let member_id = req.member_id.to_string();
    let instance = opt(&req.group_instance_id);
    let generation = req.generation_id;
    let result = on_coordinator(&group_id, move |p| {
        coordinator::heartbeat(p, gid, member_id, instance, generation)
    })
    .await
    .and_then(|r| r);
    HeartbeatResponse::default().with_error_code(code(&result))
}

pub async fn leave_group(ctx: Ctx, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let group_id = req.group_id.0.to_string();
    let members: Vec<(String, Option<String>)> = if ctx.version >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), opt(&m.group_instance_id)))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let gid = group_id.clone();
    let asked = members.clone();
    let result = on_coordinator(&group_id, move |p| coordinator::leave(p, gid, asked))
        .await
        .and_then(|r| r);
    match result {
        Err(e) => LeaveGroupResponse::default().with_error_code(codes::code_of(&e)),
        Ok(results) if ctx.version < 3 => {
            LeaveGroupResponse::default().with_error_code(code(&results[0]))
        }
        Ok(results) => LeaveGroupResponse::default().with_members(
            members
                .into_iter()
                .zip(results)
                .map(|((member_id, instance), r)| {
                    MemberResponse::default()
                        .with_member_id(s(member_id))
                        .with_group_instance_id(instance.map(s))
                        .with_error_code(code(&r))
                })
                .collect(),
        ),
    }
}

// ----- offsets ----------------------------------------------------------------------------

fn topic_partition_exists(topic: &str, partition: i32) -> bool {
    state().view().partition(topic, partition).is_some()
}

pub async fn offset_commit(ctx: Ctx, req: OffsetCommitRequest) -> Reply {
    let group_id = req.group_id.0.to_string();
    // Per partition: Some(code) when answered on the front shard (unknown partition).
    let mut slots: Vec<(TopicName, i32, Option<i16>)> = Vec::new();
    let mut parts = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let known = topic_partition_exists(&t.name, p.partition_index);
            slots.push((
                t.name.clone(),
                p.partition_index,
                (!known).then_some(codes::UNKNOWN_TOPIC_OR_PARTITION),
            ));
            if known {
                parts.push(coordinator::CommitPart {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if ctx.version >= 6 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: opt(&p.committed_metadata),
                });
            }
        }
    }
    let params = coordinator::CommitParams {
        member_id: req.member_id.to_string(),
        group_instance_id: opt(&req.group_instance_id),
        generation_id: req.generation_id_or_member_epoch,
        retention_ms: if ctx.version <= 4 {
            req.retention_time_ms
        } else {
            -1
        },
        parts,
    };
    let gid = group_id.clone();
    let rx = forward(&group_id, move |p| coordinator::commit(p, gid, params)).await;
    Reply::Deferred(Box::pin(async move {
        let result = settle(rx).await;
        let mut answered = match &result {
            Ok(rs) => rs.iter().map(code).collect::<Vec<_>>().into_iter(),
            Err(_) => Vec::new().into_iter(),
        };
        let group_error = result.as_ref().err().map(codes::code_of);
        let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
        for (name, partition, front) in slots {
            let error = match (front, group_error) {
                (Some(c), _) => c,
                (None, Some(c)) => c,
                (None, None) => answered.next().unwrap_or(codes::UNKNOWN_SERVER_ERROR),
            };
            let part = OffsetCommitResponsePartition::default()
                .with_partition_index(partition)
                .with_error_code(error);
            match topics.last_mut() {
                Some(t) if t.name == name => t.partitions.push(part),
                _ => topics.push(
                    OffsetCommitResponseTopic::default()
                        .with_name(name)
                        .with_partitions(vec![part]),
                ),
            }
        }
        encode(ctx, &OffsetCommitResponse::default().with_topics(topics))
    }))
}

type TopicAsk = Option<Vec<(String, Vec<i32>)>>;

async fn fetch_group(
    group_id: String,
    topics: TopicAsk,
) -> Result<Vec<coordinator::FetchedOffset>> {
    let gid = group_id.clone();
    on_coordinator(&group_id, move |p| {
        coordinator::fetch_offsets(p, gid, topics)
    })
    .await
    .and_then(|r| r)
}

pub async fn offset_fetch(ctx: Ctx, req: OffsetFetchRequest) -> OffsetFetchResponse {
    if ctx.version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in &req.groups {
            let topics = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let result = fetch_group(g.group_id.0.to_string(), topics).await;
            let out = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            groups.push(match result {
                Err(e) => out.with_error_code(codes::code_of(&e)),
                Ok(offsets) => out.with_topics(group_topics_v8(offsets)),
            });
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    match fetch_group(req.group_id.0.to_string(), topics).await {
        // v2+: a top-level error; v1: the error on every asked partition.
        Err(e) => {
            let error = codes::code_of(&e);
            let topics = req
                .topics
                .unwrap_or_default()
                .into_iter()
                .map(|t| {
                    OffsetFetchResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(
                            t.partition_indexes
                                .iter()
                                .map(|p| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(*p)
                                        .with_committed_offset(-1)
                                        .with_error_code(error)
                                })
                                .collect(),
                        )
                })
                .collect();
            let out = OffsetFetchResponse::default().with_topics(topics);
            if ctx.version >= 2 {
                out.with_error_code(error)
            } else {
                out
            }
        }
        Ok(offsets) => {
            let mut topics: Vec<OffsetFetchResponseTopic> = Vec::new();
            for o in offsets {
                let part = OffsetFetchResponsePartition::default()
                    .with_partition_index(o.partition)
                    .with_committed_offset(o.offset)
                    .with_committed_leader_epoch(o.leader_epoch)
                    .with_metadata(Some(s(o.metadata)));
                match topics.last_mut() {
                    Some(t) if *t.name.0 == *o.topic => t.partitions.push(part),
                    _ => topics.push(
                        OffsetFetchResponseTopic::default()
                            .with_name(TopicName(s(o.topic)))
                            .with_partitions(vec![part]),
                    ),
                }
            }
            OffsetFetchResponse::default().with_topics(topics)
        }
    }
}

fn group_topics_v8(offsets: Vec<coordinator::FetchedOffset>) -> Vec<OffsetFetchResponseTopics> {
    let mut topics: Vec<OffsetFetchResponseTopics> = Vec::new();
    for o in offsets {
        let part = OffsetFetchResponsePartitions::default()
            .with_partition_index(o.partition)
            .with_committed_offset(o.offset)
            .with_committed_leader_epoch(o.leader_epoch)
            .with_metadata(Some(s(o.metadata)));
        match topics.last_mut() {
            Some(t) if *t.name.0 == *o.topic => t.partitions.push(part),
            _ => topics.push(
                OffsetFetchResponseTopics::default()
                    .with_name(TopicName(s(o.topic)))
                    .with_partitions(vec![part]),
            ),
        }
    }
    topics
}

pub async fn offset_delete(ctx: Ctx, req: OffsetDeleteRequest) -> Reply {
    let group_id = req.group_id.0.to_string();
    let asked: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index))
                .collect::<Vec<_>>()
        })
        .collect();
    let gid = group_id.clone();
    let rx = forward(&group_id, move |p| {
        coordinator::delete_offsets(p, gid, asked)
    })
    .await;
    Reply::Deferred(Box::pin(async move {
        let response = match settle(rx).await {
            Err(e) => OffsetDeleteResponse::default().with_error_code(codes::code_of(&e)),
            Ok(results) => {
                let mut results = results.into_iter();
                let topics = req
                    .topics
                    .into_iter()
                    .map(|t| {
                        let partitions = t
                            .partitions
                            .iter()
                            .map(|p| {
                                let error = results
                                    .next()
                                    .map(|r| code(&r))
                                    .unwrap_or(codes::UNKNOWN_SERVER_ERROR);
                                OffsetDeleteResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(error)
                            })
                            .collect();
                        OffsetDeleteResponseTopic::default()
                            .with_name(t.name)
                            .with_partitions(partitions)
                    })
                    .collect();
                OffsetDeleteResponse::default().with_topics(topics)
            }
        };
        encode(ctx, &response)
    }))
}

// ----- admin ------------------------------------------------------------------------------

pub async fn describe_groups(ctx: Ctx, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(req.groups.len());
    for g in &req.groups {
        let gid = g.0.to_string();
        let result = on_coordinator(&g.0, move |p| coordinator::describe(p, gid))
            .await
            .and_then(|r| r);
        let out = DescribedGroup::default()
            .with_group_id(g.clone())
            .with_authorized_operations(i32::MIN);
        groups.push(match result {
            Err(e) => out
                .with_error_code(codes::code_of(&e))
                .with_group_state(s("Dead")),
            Ok(d) => out
                .with_group_state(s(d.state))
                .with_protocol_type(s(d.protocol_type))
                .with_protocol_data(s(d.protocol))
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(s(m.member_id))
                                .with_group_instance_id(if ctx.version >= 4 {
                                    m.group_instance_id.map(s)
                                } else {
                                    None
                                })
                                .with_client_id(s(m.client_id))
                                .with_client_host(s(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                ),
        });
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

pub async fn list_groups(ctx: Ctx, req: ListGroupsRequest) -> ListGroupsResponse {
    let all = shards::runtime::invoke_on_all(coordinator::list_local).await;
    let filter: Vec<String> = if ctx.version >= 4 {
        req.states_filter.iter().map(|f| f.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    match all {
        Err(e) => ListGroupsResponse::default().with_error_code(codes::code_of(
            &Error::CoordinatorNotAvailable(e.to_string()),
        )),
        Ok(per_shard) => {
            let groups = per_shard
                .into_iter()
                .flatten()
                .filter(|(_, _, state)| filter.is_empty() || filter.contains(&state.to_lowercase()))
                .map(|(id, protocol_type, state)| {
                    ListedGroup::default()
                        .with_group_id(GroupId(s(id)))
                        .with_protocol_type(s(protocol_type))
                        .with_group_state(s(state))
                        .with_group_type(s("classic"))
                })
                .collect();
            ListGroupsResponse::default().with_groups(groups)
        }
    }
}

pub async fn delete_groups(ctx: Ctx, req: DeleteGroupsRequest) -> Reply {
    let mut pending = Vec::with_capacity(req.groups_names.len());
    for g in &req.groups_names {
        let gid = g.0.to_string();
        let rx = forward(&g.0, move |p| coordinator::delete_group(p, gid)).await;
        pending.push((g.clone(), rx));
    }
    Reply::Deferred(Box::pin(async move {
        let mut results = Vec::with_capacity(pending.len());
        for (group_id, rx) in pending {
            let r = settle(rx).await;
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(group_id)
                    .with_error_code(code(&r)),
            );
        }
        encode(ctx, &DeleteGroupsResponse::default().with_results(results))
    }))
}
