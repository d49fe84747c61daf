//! Request decoding through the public `riptide::wire` API: header versions, every
//! advertised api/version round trip, and hostile input (unknown keys, truncation, trailing
//! bytes, declared array counts far beyond the bytes present — checked with a counting
//! allocator so "no allocation of the declared size" is measured, not assumed).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{self as km, ApiKey};
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use proptest::prelude::*;
use riptide::wire::{
    decode_header, decode_request, versions::SUPPORTED_APIS, FrameReader, RequestKind, WireError,
};

/// Tracks the largest single allocation made on this thread's watch (tests that read it run
/// the measured code between two resets; other tests may run concurrently, so the limit
/// asserted is far above anything they allocate).
struct CountingAlloc;
static LARGEST_ALLOCATION_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION_BYTES.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST_ALLOCATION_BYTES.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Header (api key, version, correlation id, client id per header version) + body.
fn frame_body<R: Encodable + HeaderVersion>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &R,
) -> Bytes {
    let header_version = R::header_version(version);
    let header = km::RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("wire-test")));
    let mut buf = BytesMut::new();
    header.encode(&mut buf, header_version).unwrap();
    request.encode(&mut buf, version).unwrap();
    buf.freeze()
}

macro_rules! round_trip_all_versions {
    ($($key:ident => $ty:ty,)*) => {
        /// Encodes a default request at every advertised version and decodes it back.
        fn round_trip(api_key: ApiKey, version: i16) -> usize {
            match api_key {
                $(ApiKey::$key => {
                    let request = <$ty>::default();
                    let body = frame_body(api_key, version, 1000 + version as i32, &request);
                    let (header, rest) = decode_header(body).unwrap();
                    assert_eq!(header.api_key, api_key);
                    assert_eq!(header.api_version, version);
                    assert_eq!(header.correlation_id, 1000 + version as i32);
                    assert_eq!(header.client_id.as_deref(), Some("wire-test"));
                    assert_eq!(header.header_version, <$ty>::header_version(version));
                    let decoded = decode_request(api_key, version, rest).unwrap();
                    assert_eq!(decoded, RequestKind::$key(request), "{api_key:?} v{version}");
                    1
                })*
                other => panic!("no round trip for {other:?}"),
            }
        }

        /// A valid frame body (header + default request) to mutate.
        fn valid_frame_body(api_key: ApiKey, version: i16) -> Bytes {
            match api_key {
                $(ApiKey::$key => frame_body(api_key, version, 1, &<$ty>::default()),)*
                other => panic!("no encoder for {other:?}"),
            }
        }
    };
}

round_trip_all_versions! {
    Produce => km::ProduceRequest,
    Fetch => km::FetchRequest,
    ListOffsets => km::ListOffsetsRequest,
    Metadata => km::MetadataRequest,
    ApiVersions => km::ApiVersionsRequest,
    CreateTopics => km::CreateTopicsRequest,
    DeleteTopics => km::DeleteTopicsRequest,
    DeleteRecords => km::DeleteRecordsRequest,
    InitProducerId => km::InitProducerIdRequest,
    OffsetForLeaderEpoch => km::OffsetForLeaderEpochRequest,
    DescribeConfigs => km::DescribeConfigsRequest,
    AlterConfigs => km::AlterConfigsRequest,
    CreatePartitions => km::CreatePartitionsRequest,
    IncrementalAlterConfigs => km::IncrementalAlterConfigsRequest,
    DescribeCluster => km::DescribeClusterRequest,
    OffsetCommit => km::OffsetCommitRequest,
    OffsetFetch => km::OffsetFetchRequest,
    FindCoordinator => km::FindCoordinatorRequest,
    JoinGroup => km::JoinGroupRequest,
    Heartbeat => km::HeartbeatRequest,
    LeaveGroup => km::LeaveGroupRequest,
    SyncGroup => km::SyncGroupRequest,
    DescribeGroups => km::DescribeGroupsRequest,
    ListGroups => km::ListGroupsRequest,
    DeleteGroups => km::DeleteGroupsRequest,
    OffsetDelete => km::OffsetDeleteRequest,
}

#[test]
fn every_served_version_of_every_api_round_trips() {
    let mut checked = 0;
    for row in SUPPORTED_APIS {
        for version in row.min..=row.max {
            checked += round_trip(row.api_key, version);
        }
    }
    let expected: usize = SUPPORTED_APIS
        .iter()
        .map(|r| (r.max - r.min + 1) as usize)
        .sum();
    assert_eq!(checked, expected);
}

#[test]
fn header_v2_tagged_fields_and_null_client_id() {
    // Metadata v9+ uses header v2: client id stays a (non-compact) nullable string.
    let mut buf = BytesMut::new();
    buf.put_i16(3);
    buf.put_i16(12);
    buf.put_i32(-5);
    buf.put_i16(-1); // null client id
    buf.put_u8(1); // one tagged field
    buf.put_u8(7); // tag
    buf.put_u8(2); // size
    buf.put_slice(b"xy");
    let body_start = buf.len();
    km::MetadataRequest::default().encode(&mut buf, 12).unwrap();
    let frame = buf.freeze();
    let (header, body) = decode_header(frame.clone()).unwrap();
    assert_eq!(header.header_version, 2);
    assert_eq!(header.correlation_id, -5);
    assert_eq!(header.client_id, None);
    assert_eq!(body, frame.slice(body_start..));
}

#[test]
fn unknown_api_key_keeps_the_correlation_id() {
    for key in [i16::MIN, -1, 4, 5, 6, 7, 88, 93, 1000, i16::MAX] {
        let mut buf = BytesMut::new();
        buf.put_i16(key);
        buf.put_i16(3);
        buf.put_i32(0x0102_0304);
        let err = decode_header(buf.freeze()).unwrap_err();
        assert_eq!(
            err,
            WireError::UnknownApiKey {
                api_key: key,
                api_version: 3,
                correlation_id: 0x0102_0304
            }
        );
        assert_eq!(err.correlation_id(), Some(0x0102_0304));
        assert!(err.is_fatal_to_connection());
    }
}

#[test]
fn truncated_headers_are_typed_errors() {
    let full = frame_body(ApiKey::Metadata, 1, 77, &km::MetadataRequest::default());
    for cut in 0..8 {
        assert_eq!(
            decode_header(full.slice(..cut)).unwrap_err(),
            WireError::HeaderTruncated { frame_bytes: cut }
        );
    }
    // Cut inside the client id string: the correlation id is still reported.
    for cut in 8..(10 + "wire-test".len()) {
        let err = decode_header(full.slice(..cut)).unwrap_err();
        assert!(
            matches!(
                err,
                WireError::HeaderMalformed {
                    correlation_id: 77,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

#[test]
fn trailing_bytes_and_truncated_bodies_are_rejected() {
    let mut buf = BytesMut::new();
    km::MetadataRequest::default().encode(&mut buf, 4).unwrap();
    let body = buf.freeze();
    let mut longer = BytesMut::from(&body[..]);
    longer.put_u8(0);
    assert_eq!(
        decode_request(ApiKey::Metadata, 4, longer.freeze()).unwrap_err(),
        WireError::RequestTrailingBytes {
            api_key: ApiKey::Metadata,
            api_version: 4,
            bytes_remaining: 1
        }
    );
    for cut in 0..body.len() {
        let err = decode_request(ApiKey::Metadata, 4, body.slice(..cut)).unwrap_err();
        assert!(matches!(err, WireError::RequestMalformed { .. }), "{err:?}");
    }
}

#[test]
fn versions_the_codec_lacks_and_apis_without_a_variant() {
    let err = decode_request(ApiKey::Produce, 2, Bytes::new()).unwrap_err();
    assert_eq!(
        err,
        WireError::UnsupportedVersion {
            api_key: ApiKey::Produce,
            api_version: 2
        }
    );
    assert_eq!(err.error_code(), Some(35));
    let err = decode_request(ApiKey::SaslHandshake, 1, Bytes::new()).unwrap_err();
    assert_eq!(
        err,
        WireError::ApiNotHandled {
            api_key: ApiKey::SaslHandshake
        }
    );
}

/// Runs `f` and returns the largest allocation it made (upper bound: concurrent tests may add
/// their own small allocations, never megabytes).
fn largest_allocation_during(f: impl FnOnce()) -> usize {
    LARGEST_ALLOCATION_BYTES.store(0, Ordering::SeqCst);
    f();
    LARGEST_ALLOCATION_BYTES.load(Ordering::SeqCst)
}

#[test]
fn huge_declared_array_count_is_rejected_without_allocating() {
    // 20 bytes: Metadata v1 header (10 bytes) + topics count 2^31-1 + 6 bytes of "topics".
    let mut buf = BytesMut::new();
    buf.put_i16(3);
    buf.put_i16(1);
    buf.put_i32(9);
    buf.put_i16(-1);
    buf.put_i32(i32::MAX);
    buf.put_slice(&[0, 1, b'a', 0, 1, b'b']);
    let frame = buf.freeze();
    assert_eq!(frame.len(), 20);
    let largest = largest_allocation_during(|| {
        let (header, body) = decode_header(frame.clone()).unwrap();
        let err = decode_request(header.api_key, header.api_version, body).unwrap_err();
        assert!(matches!(err, WireError::RequestMalformed { .. }), "{err:?}");
    });
    assert!(largest < 1 << 20, "largest allocation {largest} bytes");

    // The same with a compact (varint) count in a flexible version (Metadata v12).
    let mut buf = BytesMut::new();
    buf.put_i16(3);
    buf.put_i16(12);
    buf.put_i32(9);
    buf.put_i16(-1);
    buf.put_u8(0); // header tagged fields
    buf.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]); // u32 varint 2^31-1 → count 2^31-2
    buf.put_slice(&[0; 5]);
    let frame = buf.freeze();
    let largest = largest_allocation_during(|| {
        let (header, body) = decode_header(frame.clone()).unwrap();
        assert!(decode_request(header.api_key, header.api_version, body).is_err());
    });
    assert!(largest < 1 << 20, "largest allocation {largest} bytes");
}

#[test]
fn huge_declared_string_and_bytes_are_rejected_without_allocating() {
    // Produce v3: transactional id null, acks, timeout, 1 topic named with a 32767-byte
    // length, then a partition whose records declare 2^31-1 bytes.
    let mut buf = BytesMut::new();
    buf.put_i16(-1);
    buf.put_i16(1);
    buf.put_i32(1000);
    buf.put_i32(1);
    buf.put_i16(1);
    buf.put_u8(b't');
    buf.put_i32(1);
    buf.put_i32(0);
    buf.put_i32(i32::MAX);
    buf.put_slice(&[0; 16]);
    let body = buf.freeze();
    let largest = largest_allocation_during(|| {
        assert!(decode_request(ApiKey::Produce, 3, body.clone()).is_err());
    });
    assert!(largest < 1 << 20, "largest allocation {largest} bytes");
}

#[test]
fn frame_reader_rejects_oversize_without_allocating() {
    let largest = largest_allocation_during(|| {
        let mut reader = FrameReader::new(104_857_600, 64 * 1024);
        reader
            .extend_from_slice(&(104_857_600i32).to_be_bytes())
            .unwrap();
        reader.extend_from_slice(&[0u8; 1000]).unwrap();
        assert_eq!(reader.next_frame().unwrap(), None);
        let mut reader = FrameReader::new(1 << 20, 64 * 1024);
        reader
            .extend_from_slice(&(1i32 << 21).to_be_bytes())
            .unwrap();
        assert!(matches!(
            reader.next_frame(),
            Err(WireError::FrameTooLarge { .. })
        ));
    });
    assert!(largest < 1 << 20, "largest allocation {largest} bytes");
}

/// Every api key the codec knows (and some it does not), every version around its range.
fn any_key_and_version() -> impl Strategy<Value = (i16, i16)> {
    (-2i16..100, -2i16..20)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    /// Arbitrary bytes through frame → header → decode_request never panic, and no
    /// allocation exceeds a small multiple of the input.
    #[test]
    fn arbitrary_bytes_never_panic((key, version) in any_key_and_version(),
                                   correlation_id in any::<i32>(),
                                   tail in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut body = BytesMut::new();
        body.put_i16(key);
        body.put_i16(version);
        body.put_i32(correlation_id);
        body.put_slice(&tail);
        let mut stream = BytesMut::new();
        stream.put_i32(body.len() as i32);
        stream.put_slice(&body);
        let mut reader = FrameReader::new(1 << 16, 64);
        reader.extend_from_slice(&stream).unwrap();
        let frame = reader.next_frame().unwrap().unwrap();
        if let Ok((header, rest)) = decode_header(frame) {
            prop_assert_eq!(header.correlation_id, correlation_id);
            let _ = decode_request(header.api_key, header.api_version, rest);
        }
    }

    /// Fully random streams (random size prefixes included) through the frame reader.
    #[test]
    fn arbitrary_streams_never_panic(stream in proptest::collection::vec(any::<u8>(), 0..512),
                                     chunk in 1usize..64) {
        let mut reader = FrameReader::new(300, 16);
        'outer: for piece in stream.chunks(chunk) {
            if reader.extend_from_slice(piece).is_err() {
                break;
            }
            loop {
                match reader.next_frame() {
                    Ok(Some(frame)) => {
                        if let Ok((h, rest)) = decode_header(frame) {
                            let _ = decode_request(h.api_key, h.api_version, rest);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        prop_assert!(e.is_fatal_to_connection());
                        break 'outer;
                    }
                }
            }
        }
    }

    /// Mutations of valid requests (byte flips, insertions, truncation) for every served
    /// api and version: reach deep into the body decoders, never panic.
    #[test]
    fn mutated_valid_requests_never_panic(row in 0..SUPPORTED_APIS.len(),
                                          version_pick in any::<u16>(),
                                          edits in proptest::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 1..8),
                                          cut in any::<u16>()) {
        let api = SUPPORTED_APIS[row];
        let version = api.min + (version_pick % (api.max - api.min + 1) as u16) as i16;
        let mut bytes = valid_frame_body(api.api_key, version).to_vec();
        for (at, value, kind) in edits {
            let at = 8 + at as usize % (bytes.len() - 7);
            match kind {
                0 if at < bytes.len() => bytes[at] = value,
                1 => bytes.insert(at, value),
                _ => {}
            }
        }
        let keep = 8 + cut as usize % (bytes.len() - 7);
        bytes.truncate(keep);
        if let Ok((header, rest)) = decode_header(Bytes::from(bytes)) {
            prop_assert_eq!(header.api_key, api.api_key);
            let _ = decode_request(header.api_key, header.api_version, rest);
        }
    }
}

#[test]
fn counting_allocator_sees_large_allocations() {
    // Guards the allocation tests above: the probe must notice a 4 MiB allocation.
    let largest = largest_allocation_during(|| {
        let v = vec![1u8; 4 << 20];
        assert_eq!(v.len(), 4 << 20);
    });
    assert!(largest >= 4 << 20, "probe saw only {largest} bytes");
}
