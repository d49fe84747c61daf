//! The one table of supported API versions (DESIGN invariant 1). It generates the
//! ApiVersions response and gates every request through [`check_version`], so what is
//! advertised and what is served cannot drift apart.
//!
//! Edit [`SUPPORTED_APIS`] only when a version is implemented *and* tested.

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

use super::error::{WireError, ERROR_UNSUPPORTED_VERSION};
use super::response::encode_response;

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersionRange {
    pub api_key: ApiKey,
    /// Lowest version listed in ApiVersions. Below `min` only for Kafka 4's own exception:
    /// Produce v0–v2 are listed (librdkafka needs them) but answered UNSUPPORTED_VERSION.
    pub listed_min: i16,
    /// Lowest version served.
    pub min: i16,
    /// Highest version served and listed.
    pub max: i16,
}

const fn api(api_key: ApiKey, min: i16, max: i16) -> ApiVersionRange {
    ApiVersionRange {
        api_key,
        listed_min: min,
        min,
        max,
    }
}

/// Supported versions, sorted by api key. The lead trims this to what is implemented.
pub const SUPPORTED_APIS: &[ApiVersionRange] = &[
    ApiVersionRange {
        api_key: ApiKey::Produce,
        listed_min: 0,
        min: 3,
        max: 9,
    },
    api(ApiKey::Fetch, 4, 12),
    api(ApiKey::ListOffsets, 1, 7),
    api(ApiKey::Metadata, 0, 12),
    api(ApiKey::OffsetCommit, 2, 9),
    api(ApiKey::OffsetFetch, 1, 9),
    api(ApiKey::FindCoordinator, 0, 4),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::DescribeGroups, 0, 5),
    api(ApiKey::ListGroups, 0, 4),
    api(ApiKey::ApiVersions, 0, 3),
    // Kafka 4 removed CreateTopics v0–v1 and DeleteTopics v0 (KIP-896), and kafka-protocol
    // 0.18 (generated from Kafka 4.1) cannot decode them: DESIGN's 0–7 / 0–6 is not servable.
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::InitProducerId, 0, 4),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::OffsetDelete, 0, 0),
    api(ApiKey::DescribeCluster, 0, 1),
];

/// The table row for `api_key`, if the API is supported at all.
pub fn supported_range(api_key: ApiKey) -> Option<&'static ApiVersionRange> {
    SUPPORTED_APIS.iter().find(|row| row.api_key == api_key)
}

/// `Ok` when `api_version` of `api_key` is served. A listed-but-rejected version (Produce
/// v0–v2) and an unlisted API both give [`WireError::UnsupportedVersion`] (error code 35).
pub fn check_version(api_key: ApiKey, api_version: i16) -> Result<(), WireError> {
    match supported_range(api_key) {
        Some(row) if (row.min..=row.max).contains(&api_version) => Ok(()),
        _ => Err(WireError::UnsupportedVersion {
            api_key,
            api_version,
        }),
    }
}

/// The listed versions, as ApiVersions entries.
pub fn api_version_entries() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|row| {
            ApiVersion::default()
                .with_api_key(row.api_key as i16)
                .with_min_version(row.listed_min)
                .with_max_version(row.max)
        })
        .collect()
}

/// The ApiVersions response for a request of `request_version`, and the version to encode
/// it with. An unsupported request version is answered, as Kafka does, with a v0 body
/// carrying UNSUPPORTED_VERSION — plus the supported list, from which the client picks the
/// highest ApiVersions version it shares with us and retries.
///
/// Tagged fields keep their defaults (no features, epoch -1), and `kafka-protocol` leaves
/// default-valued tagged fields out of the encoding: Debian 12's librdkafka 2.0.2 fails on
/// brokers that always send them (test `api_versions_v3_sends_no_tagged_fields`).
pub fn api_versions_response(
    request_version: i16,
    throttle_time_ms: i32,
) -> (i16, ApiVersionsResponse) {
    let supported = check_version(ApiKey::ApiVersions, request_version).is_ok();
    let (version, error_code) = if supported {
        (request_version, 0)
    } else {
        (0, ERROR_UNSUPPORTED_VERSION)
    };
    let response = ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_version_entries())
        .with_throttle_time_ms(throttle_time_ms);
    (version, response)
}

/// The complete ApiVersions response frame (size prefix, header v0, body).
pub fn encode_api_versions_response(
    correlation_id: i32,
    request_version: i16,
    throttle_time_ms: i32,
) -> Result<Bytes, WireError> {
    let (version, response) = api_versions_response(request_version, throttle_time_ms);
    encode_response(correlation_id, ApiKey::ApiVersions, version, &response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;
    use kafka_protocol::protocol::Decodable;

    #[test]
    fn table_is_sorted_unique_and_within_the_codec() {
        for pair in SUPPORTED_APIS.windows(2) {
            assert!(
                (pair[0].api_key as i16) < (pair[1].api_key as i16),
                "{pair:?}"
            );
        }
        for row in SUPPORTED_APIS {
            assert!(row.listed_min <= row.min && row.min <= row.max, "{row:?}");
            let codec = row.api_key.valid_versions();
            assert!(
                codec.min <= row.min && row.max <= codec.max,
                "{row:?} vs codec {codec}"
            );
        }
    }

    #[test]
    fn check_version_follows_the_table() {
        assert!(check_version(ApiKey::Produce, 3).is_ok());
        assert!(check_version(ApiKey::Produce, 9).is_ok());
        for v in [-1, 0, 1, 2, 10] {
            let err = check_version(ApiKey::Produce, v).unwrap_err();
            assert_eq!(err.error_code(), Some(ERROR_UNSUPPORTED_VERSION), "v{v}");
        }
        assert!(check_version(ApiKey::Fetch, 3).is_err());
        assert!(check_version(ApiKey::ApiVersions, 4).is_err());
        assert!(
            check_version(ApiKey::SaslHandshake, 0).is_err(),
            "unlisted api"
        );
    }

    fn decode_frame(frame: &Bytes, version: i16) -> (i32, ApiVersionsResponse) {
        let mut rest = frame.clone();
        let size = rest.get_i32() as usize;
        assert_eq!(size, rest.len());
        let correlation_id = rest.get_i32(); // header v0 for every version
        let response = ApiVersionsResponse::decode(&mut rest, version).unwrap();
        assert!(rest.is_empty(), "trailing bytes at v{version}");
        (correlation_id, response)
    }

    #[test]
    fn api_versions_every_supported_version_lists_the_table() {
        for version in 0..=3 {
            let frame = encode_api_versions_response(42, version, 0).unwrap();
            let (correlation_id, response) = decode_frame(&frame, version);
            assert_eq!(correlation_id, 42);
            assert_eq!(response.error_code, 0);
            assert_eq!(response.api_keys.len(), SUPPORTED_APIS.len());
            let produce = response.api_keys.iter().find(|k| k.api_key == 0).unwrap();
            assert_eq!((produce.min_version, produce.max_version), (0, 9));
            let fetch = response.api_keys.iter().find(|k| k.api_key == 1).unwrap();
            assert_eq!((fetch.min_version, fetch.max_version), (4, 12));
        }
    }

    #[test]
    fn api_versions_unsupported_version_gets_v0_body_with_error_35() {
        for version in [4, 5, 100, -1] {
            let frame = encode_api_versions_response(9, version, 0).unwrap();
            let (correlation_id, response) = decode_frame(&frame, 0);
            assert_eq!(correlation_id, 9);
            assert_eq!(response.error_code, 35);
            let own = response.api_keys.iter().find(|k| k.api_key == 18).unwrap();
            assert_eq!((own.min_version, own.max_version), (0, 3));
        }
    }

    #[test]
    fn api_versions_v3_sends_no_tagged_fields() {
        // Hand-computed length: a frame carrying any tagged field would be longer.
        let frame = encode_api_versions_response(1, 3, 0).unwrap();
        let entries = SUPPORTED_APIS.len();
        // error_code 2 + compact array length 1 + entries × (2+2+2+tag count 1)
        // + throttle 4 + top-level tag count 1.
        let body = 2 + 1 + entries * 7 + 4 + 1;
        assert_eq!(frame.len(), 4 + 4 + body);
        assert_eq!(
            *frame.last().unwrap(),
            0,
            "top-level tagged-field count must be 0"
        );
    }
}
