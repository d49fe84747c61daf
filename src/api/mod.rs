//! Request dispatch: one handler module per API family. The server hands each frame to
//! [`Api::handle`], which decodes the header, checks the version against the one table of
//! supported versions, and calls the handler.

mod admin;
pub mod codes;
mod configs;
mod fetch;
mod groups;
mod metadata;
mod offsets;
mod produce;

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use tracing::debug;

use crate::server::{ConnInfo, Handler, Reply};
use crate::wire;

#[derive(Default)]
pub struct Api {}

/// What every handler needs to build its response frame.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
}

impl Handler for Api {
    async fn handle(self: &Rc<Self>, conn: &Rc<ConnInfo>, frame: Bytes) -> Reply {
        let (header, body) = match wire::decode_header(frame) {
            Ok(h) => h,
            Err(e) => {
                // Unknown api key or a header that does not parse: Kafka closes too.
                debug!("bad request header: {e}");
                return Reply::Close;
            }
        };
        let ctx = Ctx {
            api_key: header.api_key,
            version: header.api_version,
            correlation_id: header.correlation_id,
        };
        if ctx.api_key == ApiKey::ApiVersions {
            // Answered for every version: an unsupported one gets the v0 body with
            // UNSUPPORTED_VERSION and the supported list.
            return match wire::encode_api_versions_response(ctx.correlation_id, ctx.version, 0) {
                Ok(frame) => Reply::Ready(vec![frame]),
                Err(e) => {
                    tracing::error!("cannot encode ApiVersions: {e}");
                    Reply::Close
                }
            };
        }
        // Produce v0-2 are listed but not served: the handler answers UNSUPPORTED_VERSION.
        let listed_produce = ctx.api_key == ApiKey::Produce && (0..3).contains(&ctx.version);
        if wire::check_version(ctx.api_key, ctx.version).is_err() && !listed_produce {
            debug!(?ctx, "unsupported api version: closing");
            return Reply::Close;
        }
        let client = groups::Client {
            client_id: header
                .client_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            host: conn
                .peer
                .map(|p| format!("/{}", p.ip()))
                .unwrap_or_default(),
        };
        // The header's strings point into the frame: gone before the body is handled, so
        // that a produce handler can take the frame back (`produce::reclaim_batches`).
        drop(header);
        if ctx.api_key != ApiKey::Produce {
            // Requests take effect in the order they were sent: earlier produces' appends
            // may still be running on their home shards (`produce::handle` does not wait).
            conn.lane.drain().await;
        }
        dispatch(ctx, conn, body, client).await
    }
}

async fn dispatch(ctx: Ctx, conn: &ConnInfo, body: Bytes, client: groups::Client) -> Reply {
    macro_rules! decode {
        ($t:ty) => {
            match <$t>::decode(&mut body.clone(), ctx.version) {
                Ok(r) => r,
                Err(e) => {
                    debug!(?ctx, "undecodable request: {e}");
                    return Reply::Close;
                }
            }
        };
    }
    use kafka_protocol::messages::*;
    match ctx.api_key {
        ApiKey::Metadata => Reply::Ready(encode(
            ctx,
            &metadata::handle(ctx, decode!(MetadataRequest)).await,
        )),
        ApiKey::Produce => {
            let req = decode!(ProduceRequest);
            produce::handle(ctx, &conn.lane, req, body).await
        }
        ApiKey::Fetch => fetch::handle(ctx, decode!(FetchRequest)).await,
        ApiKey::ListOffsets => Reply::Ready(encode(
            ctx,
            &offsets::list_offsets(ctx, decode!(ListOffsetsRequest)).await,
        )),
        ApiKey::CreateTopics => Reply::Ready(encode(
            ctx,
            &admin::create_topics(ctx, decode!(CreateTopicsRequest)).await,
        )),
        ApiKey::InitProducerId => Reply::Ready(encode(
            ctx,
            &admin::init_producer_id(ctx, decode!(InitProducerIdRequest)).await,
        )),
        ApiKey::DeleteTopics => Reply::Ready(encode(
            ctx,
            &admin::delete_topics(ctx, decode!(DeleteTopicsRequest)).await,
        )),
        ApiKey::CreatePartitions => Reply::Ready(encode(
            ctx,
            &admin::create_partitions(ctx, decode!(CreatePartitionsRequest)).await,
        )),
        ApiKey::DescribeCluster => Reply::Ready(encode(
            ctx,
            &admin::describe_cluster(ctx, decode!(DescribeClusterRequest)).await,
        )),
        ApiKey::DescribeConfigs => Reply::Ready(encode(
            ctx,
            &configs::describe(ctx, decode!(DescribeConfigsRequest)).await,
        )),
        ApiKey::AlterConfigs => Reply::Ready(encode(
            ctx,
            &configs::alter(ctx, decode!(AlterConfigsRequest)).await,
        )),
        ApiKey::IncrementalAlterConfigs => Reply::Ready(encode(
            ctx,
            &configs::incremental_alter(ctx, decode!(IncrementalAlterConfigsRequest)).await,
        )),
        ApiKey::DeleteRecords => Reply::Ready(encode(
            ctx,
            &offsets::delete_records(ctx, decode!(DeleteRecordsRequest)).await,
        )),
        ApiKey::OffsetForLeaderEpoch => Reply::Ready(encode(
            ctx,
            &offsets::offset_for_leader_epoch(ctx, decode!(OffsetForLeaderEpochRequest)).await,
        )),
        ApiKey::FindCoordinator => Reply::Ready(encode(
            ctx,
            &groups::find_coordinator(ctx, decode!(FindCoordinatorRequest)).await,
        )),
        ApiKey::JoinGroup => groups::join_group(ctx, decode!(JoinGroupRequest), client).await,
        ApiKey::SyncGroup => groups::sync_group(ctx, decode!(SyncGroupRequest)).await,
        ApiKey::Heartbeat => Reply::Ready(encode(
            ctx,
            &groups::heartbeat(ctx, decode!(HeartbeatRequest)).await,
        )),
        ApiKey::LeaveGroup => Reply::Ready(encode(
            ctx,
            &groups::leave_group(ctx, decode!(LeaveGroupRequest)).await,
        )),
        ApiKey::OffsetCommit => groups::offset_commit(ctx, decode!(OffsetCommitRequest)).await,
        ApiKey::OffsetFetch => Reply::Ready(encode(
            ctx,
            &groups::offset_fetch(ctx, decode!(OffsetFetchRequest)).await,
        )),
        ApiKey::OffsetDelete => groups::offset_delete(ctx, decode!(OffsetDeleteRequest)).await,
        ApiKey::DescribeGroups => Reply::Ready(encode(
            ctx,
            &groups::describe_groups(ctx, decode!(DescribeGroupsRequest)).await,
        )),
        ApiKey::ListGroups => Reply::Ready(encode(
            ctx,
            &groups::list_groups(ctx, decode!(ListGroupsRequest)).await,
        )),
        ApiKey::DeleteGroups => groups::delete_groups(ctx, decode!(DeleteGroupsRequest)).await,
        _ => Reply::Close,
    }
}

/// Encode a response frame (size prefix, header, body). Empty on an encoding failure —
/// a bug, not bad input — which closes the connection instead of leaving the client waiting.
pub fn encode<R: Encodable + HeaderVersion>(ctx: Ctx, body: &R) -> Vec<Bytes> {
    match wire::encode_response(ctx.correlation_id, ctx.api_key, ctx.version, body) {
        Ok(frame) => vec![frame],
        Err(e) => {
            tracing::error!(?ctx, "cannot encode response: {e}");
            Vec::new()
        }
    }
}
