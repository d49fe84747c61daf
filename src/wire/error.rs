//! Errors of the wire layer. Each variant says what the server should do next: framing
//! errors close the connection (the stream can no longer be trusted), header errors carry
//! the correlation id when one could be read, request errors keep the api key and version
//! so an error response can be built.
//!
//! This is a separate enum from `shards::Error` on purpose: `shards` must know nothing of
//! the wire protocol (DESIGN: "Dependencies flow one way").

use kafka_protocol::messages::ApiKey;

/// Kafka error code UNSUPPORTED_VERSION.
pub const ERROR_UNSUPPORTED_VERSION: i16 = 35;
/// Kafka error code INVALID_REQUEST.
pub const ERROR_INVALID_REQUEST: i16 = 42;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("frame size prefix {size} is negative")]
    FrameSizeNegative { size: i32 },
    #[error("frame size {size} exceeds socket.request.max.bytes ({size_max})")]
    FrameTooLarge { size: usize, size_max: usize },
    #[error("request header truncated: frame of {frame_bytes} bytes")]
    HeaderTruncated { frame_bytes: usize },
    #[error("unknown api key {api_key} (version {api_version}, correlation id {correlation_id})")]
    UnknownApiKey {
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
    },
    #[error("malformed {api_key:?} v{api_version} request header (correlation id {correlation_id}): {reason}")]
    HeaderMalformed {
        api_key: ApiKey,
        api_version: i16,
        correlation_id: i32,
        reason: String,
    },
    #[error("api {api_key:?} is not handled by this broker")]
    ApiNotHandled { api_key: ApiKey },
    #[error("{api_key:?} version {api_version} is not supported")]
    UnsupportedVersion { api_key: ApiKey, api_version: i16 },
    #[error("malformed {api_key:?} v{api_version} request: {reason}")]
    RequestMalformed {
        api_key: ApiKey,
        api_version: i16,
        reason: String,
    },
    #[error("{api_key:?} v{api_version} request has {bytes_remaining} trailing bytes")]
    RequestTrailingBytes {
        api_key: ApiKey,
        api_version: i16,
        bytes_remaining: usize,
    },
    #[error("cannot encode {api_key:?} v{api_version} response: {reason}")]
    ResponseEncode {
        api_key: ApiKey,
        api_version: i16,
        reason: String,
    },
    #[error("response of {size} bytes does not fit a Kafka frame")]
    ResponseTooLarge { size: usize },
}

impl WireError {
    /// The correlation id of the offending request, when the header got that far. The
    /// server uses it to answer (or to log) before closing the connection.
    pub fn correlation_id(&self) -> Option<i32> {
        match self {
            WireError::UnknownApiKey { correlation_id, .. }
            | WireError::HeaderMalformed { correlation_id, .. } => Some(*correlation_id),
            _ => None,
        }
    }

    /// True when the byte stream itself can no longer be trusted: the connection must close.
    pub fn is_fatal_to_connection(&self) -> bool {
        matches!(
            self,
            WireError::FrameSizeNegative { .. }
                | WireError::FrameTooLarge { .. }
                | WireError::HeaderTruncated { .. }
                | WireError::UnknownApiKey { .. }
                | WireError::HeaderMalformed { .. }
        )
    }

    /// The Kafka error code a response for this request should carry, if any.
    pub fn error_code(&self) -> Option<i16> {
        match self {
            WireError::UnsupportedVersion { .. } => Some(ERROR_UNSUPPORTED_VERSION),
            WireError::RequestMalformed { .. } | WireError::RequestTrailingBytes { .. } => {
                Some(ERROR_INVALID_REQUEST)
            }
            _ => None,
        }
    }
}
