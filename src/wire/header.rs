//! Request header (v0–v2) and typed request bodies.
//!
//! The header version is not on the wire: it follows from the api key and version
//! (`kafka_protocol`'s `ApiKey::request_header_version`, generated from Kafka's schemas), so
//! the first 8 bytes (api key, api version, correlation id — identical in every header
//! version) are read by hand first. That also lets an unknown api key be reported with its
//! correlation id. Bodies decode zero-copy from the frame's `Bytes` (record batches in a
//! produce request stay slices of the read buffer).

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, AlterConfigsRequest, ApiKey,
    ApiVersionsRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest,
    DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest,
    DescribeGroupsRequest, EndTxnRequest, FetchRequest, FindCoordinatorRequest, HeartbeatRequest,
    IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest,
    ListGroupsRequest, ListOffsetsRequest, MetadataRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, OffsetForLeaderEpochRequest, ProduceRequest,
    SyncGroupRequest, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::{Decodable, Message, StrBytes};

use super::error::WireError;

/// Bytes of api key + api version + correlation id, common to header v0, v1 and v2.
pub const HEADER_FIXED_BYTES: usize = 8;

/// A decoded request header. Header tagged fields (v2) are read and dropped: Kafka defines
/// none that a broker must act on.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestHeader {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<StrBytes>,
    /// 0, 1 or 2: decides the layout read above; kept for logs and tests.
    pub header_version: i16,
}

/// Splits a frame body (as returned by [`super::frame`]) into its header and request body.
///
/// Works for every version of a known api key, also versions this broker does not serve:
/// the server must be able to answer an unsupported ApiVersions version.
pub fn decode_header(mut frame: Bytes) -> Result<(RequestHeader, Bytes), WireError> {
    if frame.len() < HEADER_FIXED_BYTES {
        return Err(WireError::HeaderTruncated {
            frame_bytes: frame.len(),
        });
    }
    let api_key_raw = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(api_key) = ApiKey::try_from(api_key_raw) else {
        return Err(WireError::UnknownApiKey {
            api_key: api_key_raw,
            api_version,
            correlation_id,
        });
    };
    let header_version = api_key.request_header_version(api_version);
    let malformed = |reason: String| WireError::HeaderMalformed {
        api_key,
        api_version,
        correlation_id,
        reason,
    };
    let client_id = if header_version == 0 {
        // Only ControlledShutdown v0 ever used header v0: no client id, no tagged fields.
        frame.advance(HEADER_FIXED_BYTES);
        None
    } else {
        let header = kafka_protocol::messages::RequestHeader::decode(&mut frame, header_version)
            .map_err(|e| malformed(e.to_string()))?;
        // Read-back check of the hand-read prefix against the generated decoder.
        if header.request_api_key != api_key_raw
            || header.request_api_version != api_version
            || header.correlation_id != correlation_id
        {
            return Err(malformed("header fields disagree".to_string()));
        }
        header.client_id
    };
    let header = RequestHeader {
        api_key,
        api_version,
        correlation_id,
        client_id,
        header_version,
    };
    Ok((header, frame))
}

/// Decodes one body of type `T`, rejecting versions the codec does not know and bytes left
/// over after the last field (a sign of a mismatched version or a smuggled payload).
fn decode_body<T: Decodable + Message>(
    api_key: ApiKey,
    api_version: i16,
    body: &mut Bytes,
) -> Result<T, WireError> {
    if api_version < T::VERSIONS.min || api_version > T::VERSIONS.max {
        return Err(WireError::UnsupportedVersion {
            api_key,
            api_version,
        });
    }
    let request = T::decode(body, api_version).map_err(|e| WireError::RequestMalformed {
        api_key,
        api_version,
        reason: e.to_string(),
    })?;
    if body.has_remaining() {
        return Err(WireError::RequestTrailingBytes {
            api_key,
            api_version,
            bytes_remaining: body.remaining(),
        });
    }
    Ok(request)
}

macro_rules! request_kinds {
    ($($variant:ident => $ty:ident,)*) => {
        /// A decoded request body, one variant per API the broker can decode. Which versions
        /// are *served* is decided by [`super::versions`], not by this enum.
        #[derive(Debug, Clone, PartialEq)]
        pub enum RequestKind {
            $($variant($ty),)*
        }

        impl RequestKind {
            pub fn api_key(&self) -> ApiKey {
                match self {
                    $(RequestKind::$variant(_) => ApiKey::$variant,)*
                }
            }
        }

        /// The api keys [`decode_request`] knows how to decode.
        pub const DECODABLE_API_KEYS: &[ApiKey] = &[$(ApiKey::$variant,)*];

        /// Decodes a request body. Errors: [`WireError::ApiNotHandled`] for an api key
        /// without a variant, [`WireError::UnsupportedVersion`] for a version the codec does
        /// not know, [`WireError::RequestMalformed`] and [`WireError::RequestTrailingBytes`].
        pub fn decode_request(
            api_key: ApiKey,
            api_version: i16,
            mut body: Bytes,
        ) -> Result<RequestKind, WireError> {
            match api_key {
                $(ApiKey::$variant => Ok(RequestKind::$variant(
                    decode_body::<$ty>(api_key, api_version, &mut body)?,
                )),)*
                _ => Err(WireError::ApiNotHandled { api_key }),
            }
        }
    };
}

request_kinds! {
    Produce => ProduceRequest,
    Fetch => FetchRequest,
    ListOffsets => ListOffsetsRequest,
    Metadata => MetadataRequest,
    OffsetCommit => OffsetCommitRequest,
    OffsetFetch => OffsetFetchRequest,
    FindCoordinator => FindCoordinatorRequest,
    JoinGroup => JoinGroupRequest,
    Heartbeat => HeartbeatRequest,
    LeaveGroup => LeaveGroupRequest,
    SyncGroup => SyncGroupRequest,
    DescribeGroups => DescribeGroupsRequest,
    ListGroups => ListGroupsRequest,
    ApiVersions => ApiVersionsRequest,
    CreateTopics => CreateTopicsRequest,
    DeleteTopics => DeleteTopicsRequest,
    DeleteRecords => DeleteRecordsRequest,
    InitProducerId => InitProducerIdRequest,
    OffsetForLeaderEpoch => OffsetForLeaderEpochRequest,
    AddPartitionsToTxn => AddPartitionsToTxnRequest,
    AddOffsetsToTxn => AddOffsetsToTxnRequest,
    EndTxn => EndTxnRequest,
    TxnOffsetCommit => TxnOffsetCommitRequest,
    DescribeConfigs => DescribeConfigsRequest,
    AlterConfigs => AlterConfigsRequest,
    CreatePartitions => CreatePartitionsRequest,
    DeleteGroups => DeleteGroupsRequest,
    IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
    OffsetDelete => OffsetDeleteRequest,
    DescribeCluster => DescribeClusterRequest,
}
