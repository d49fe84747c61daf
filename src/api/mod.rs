//! Request dispatch: one handler module per API family. The server hands each frame to
//! [`Api::handle`], which decodes the header, checks the version against the one table of
//! supported versions, and calls the handler.

mod admin;
pub mod codes;
mod configs;
mod fetch;
mod metadata;
mod produce;

use std::rc::Rc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tracing::debug;

use crate::server::{ConnInfo, Handler, Reply};

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
    async fn handle(self: &Rc<Self>, _conn: &Rc<ConnInfo>, frame: Bytes) -> Reply {
        let mut body = frame;
        let Some((key_raw, version)) = peek_key_version(&body) else {
            return Reply::Close;
        };
        let Ok(api_key) = ApiKey::try_from(key_raw) else {
            debug!(key_raw, "unknown api key: closing");
            return Reply::Close;
        };
        let header_version = api_key.request_header_version(version);
        let header = match RequestHeader::decode(&mut body, header_version) {
            Ok(h) => h,
            Err(e) => {
                debug!("bad request header: {e}");
                return Reply::Close;
            }
        };
        let ctx = Ctx {
            api_key,
            version,
            correlation_id: header.correlation_id,
        };
        if !crate::wire_versions::supported(api_key, version) {
            return unsupported(ctx);
        }
        dispatch(ctx, body).await
    }
}

fn peek_key_version(frame: &Bytes) -> Option<(i16, i16)> {
    if frame.len() < 8 {
        return None;
    }
    Some((
        i16::from_be_bytes([frame[0], frame[1]]),
        i16::from_be_bytes([frame[2], frame[3]]),
    ))
}

/// An API version outside the advertised range: ApiVersions answers with its v0 body
/// (Kafka's rule, so the client can learn the range); other APIs close the connection,
/// as Kafka does for a version it cannot parse.
fn unsupported(ctx: Ctx) -> Reply {
    if ctx.api_key == ApiKey::ApiVersions {
        let resp = crate::wire_versions::api_versions_response(codes::UNSUPPORTED_VERSION);
        return Reply::Ready(encode(Ctx { version: 0, ..ctx }, &resp));
    }
    debug!(?ctx, "unsupported version: closing");
    Reply::Close
}

async fn dispatch(ctx: Ctx, body: Bytes) -> Reply {
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
        ApiKey::ApiVersions => {
            let _req = decode!(ApiVersionsRequest);
            Reply::Ready(encode(
                ctx,
                &crate::wire_versions::api_versions_response(codes::NONE),
            ))
        }
        ApiKey::Metadata => Reply::Ready(encode(
            ctx,
            &metadata::handle(ctx, decode!(MetadataRequest)).await,
        )),
        ApiKey::Produce => produce::handle(ctx, decode!(ProduceRequest)).await,
        ApiKey::Fetch => fetch::handle(ctx, decode!(FetchRequest)).await,
        ApiKey::ListOffsets => Reply::Ready(encode(
            ctx,
            &fetch::list_offsets(ctx, decode!(ListOffsetsRequest)).await,
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
        _ => Reply::Close,
    }
}

/// Encode a response: size prefix, response header (v0 for ApiVersions always), body.
/// Empty on an encoding failure, which closes the connection.
pub fn encode<R: Encodable>(ctx: Ctx, body: &R) -> Vec<Bytes> {
    let header_version = if ctx.api_key == ApiKey::ApiVersions {
        0
    } else {
        ctx.api_key.response_header_version(ctx.version)
    };
    let header = ResponseHeader::default().with_correlation_id(ctx.correlation_id);
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let encoded = header
        .encode(&mut buf, header_version)
        .and_then(|_| body.encode(&mut buf, ctx.version));
    if let Err(e) = encoded {
        // Our own response failed to encode: a bug, not bad input. An empty reply makes
        // the connection close instead of leaving the client waiting.
        tracing::error!(?ctx, "cannot encode response: {e}");
        return Vec::new();
    }
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    vec![buf.freeze()]
}
