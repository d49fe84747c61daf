//! Response framing for every API encoded by `kafka-protocol`: size prefix, response header
//! (v0: correlation id; v1 adds an empty tagged-field section — flexible versions, except
//! ApiVersions whose response header is always v0 so that a client that does not yet know
//! the broker's versions can parse it), then the body.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Encodable, HeaderVersion};

use super::error::WireError;
use super::frame::FRAME_PREFIX_BYTES;

/// Bytes of a response header of the given version.
pub fn response_header_bytes(header_version: i16) -> usize {
    match header_version {
        0 => 4,
        // Correlation id + tagged-field count 0 (one byte as an unsigned varint).
        _ => 5,
    }
}

/// Writes a response header; the tagged-field section is always empty (we send none).
pub fn put_response_header(buf: &mut impl BufMut, header_version: i16, correlation_id: i32) {
    debug_assert!((0..=1).contains(&header_version));
    buf.put_i32(correlation_id);
    if header_version >= 1 {
        buf.put_u8(0);
    }
}

/// Encodes `response` as a complete frame: `[size][header][body]`, ready to write.
///
/// The header version comes from `R::header_version(api_version)`, generated from Kafka's
/// schemas; `api_key` is for error context and a check of ApiVersions' fixed v0 header.
pub fn encode_response<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    api_key: ApiKey,
    api_version: i16,
    response: &R,
) -> Result<Bytes, WireError> {
    let header_version = R::header_version(api_version);
    assert!(api_key != ApiKey::ApiVersions || header_version == 0);
    let encode_error = |e: anyhow::Error| WireError::ResponseEncode {
        api_key,
        api_version,
        reason: e.to_string(),
    };
    let body_bytes = response.compute_size(api_version).map_err(encode_error)?;
    let size = response_header_bytes(header_version) + body_bytes;
    if size > i32::MAX as usize {
        return Err(WireError::ResponseTooLarge { size });
    }
    let mut buf = BytesMut::with_capacity(FRAME_PREFIX_BYTES + size);
    buf.put_i32(size as i32);
    put_response_header(&mut buf, header_version, correlation_id);
    response
        .encode(&mut buf, api_version)
        .map_err(encode_error)?;
    // Paired with compute_size above: a mismatch would desynchronise the client's stream.
    assert_eq!(
        buf.len(),
        FRAME_PREFIX_BYTES + size,
        "{api_key:?} v{api_version} size mismatch"
    );
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{MetadataResponse, ResponseHeader};
    use kafka_protocol::protocol::Decodable;

    #[test]
    fn flexible_and_non_flexible_headers() {
        let response = MetadataResponse::default().with_cluster_id(Some("c".into()));
        for version in 0..=12i16 {
            let frame = encode_response(77, ApiKey::Metadata, version, &response).unwrap();
            let size = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
            assert_eq!(size + 4, frame.len());
            let header_version = if version >= 9 { 1 } else { 0 };
            let mut rest = frame.slice(4..);
            let header = ResponseHeader::decode(&mut rest, header_version).unwrap();
            assert_eq!(header.correlation_id, 77);
            let decoded = MetadataResponse::decode(&mut rest, version).unwrap();
            assert!(rest.is_empty(), "v{version} trailing bytes");
            if version >= 2 {
                assert_eq!(decoded.cluster_id.as_deref(), Some("c"));
            }
        }
    }

    #[test]
    fn field_not_in_version_is_left_out() {
        // cluster_authorized_operations exists only in Metadata v8–v10. The vendored
        // kafka-protocol leaves such response fields out (as Kafka's broker does when it
        // serializes one response object at the client's version) instead of failing.
        let response = MetadataResponse::default().with_cluster_authorized_operations(5);
        let frame = encode_response(1, ApiKey::Metadata, 7, &response).expect("encodes");
        let mut rest = frame.slice(4 + response_header_bytes(0)..);
        let decoded = MetadataResponse::decode(&mut rest, 7).unwrap();
        assert!(rest.is_empty());
        assert_eq!(
            decoded.cluster_authorized_operations,
            MetadataResponse::default().cluster_authorized_operations
        );
        // At v8 the field is carried.
        let frame = encode_response(1, ApiKey::Metadata, 8, &response).expect("encodes");
        let mut rest = frame.slice(4 + response_header_bytes(0)..);
        assert_eq!(
            MetadataResponse::decode(&mut rest, 8)
                .unwrap()
                .cluster_authorized_operations,
            5
        );
    }
}
