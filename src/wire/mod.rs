//! The Kafka wire protocol: the only module that knows the byte layouts of requests.
//!
//! - [`frame`]: size-prefixed framing of the read stream, with the size checked against
//!   `socket.request.max.bytes` before any buffer grows for it.
//! - [`header`]: request header v0–v2 and [`header::decode_request`], which turns a body into
//!   a typed [`header::RequestKind`] through the vendored `kafka-protocol` crate.
//! - [`versions`]: the one table of supported API versions; it generates the ApiVersions
//!   response and gates every request.
//! - [`response`]: size prefix + response header + body for every kafka-protocol response.
//! - [`fetch`]: the hand-written Fetch response encoder that interleaves small framing pieces
//!   with stored record-batch slices for one vectored write (no copy of record bytes).
//!
//! Nothing here touches sockets or storage: every function is pure over byte buffers, so it
//! can be unit-, property- and fuzz-tested in isolation.

pub mod error;
pub mod fetch;

pub mod frame;
pub mod header;
pub mod response;
pub mod versions;

pub use error::WireError;

pub use fetch::{
    encode_fetch_response, FetchNodeEndpoint, FetchPartition, FetchResponseData,
    FetchResponseFrame, FetchTopic,
};
pub use frame::{FrameReader, FRAME_PREFIX_BYTES};
pub use header::{decode_header, decode_request, RequestHeader, RequestKind};
pub use response::encode_response;
pub use versions::{check_version, encode_api_versions_response, SUPPORTED_APIS};

/// Re-exported so callers name the same `kafka-protocol` types this module decodes into.
pub use kafka_protocol::messages::ApiKey;
