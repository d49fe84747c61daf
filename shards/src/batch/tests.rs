//! Tests for the batch module: hand-checked layouts, property round-trips for every codec,
//! corruption and truncation, and cross-checks against the `kafka-protocol` crate.

use super::*;
use proptest::prelude::*;

const MAX: usize = 1 << 20;

fn one_record_batch() -> Bytes {
    let mut b = BatchBuilder::new(Compression::None);
    b.push(Some(b"k"), Some(b"v"), &[], 1000);
    b.build()
}

#[test]
fn crc32c_check_value() {
    // The CRC-32C (Castagnoli) check value from the CRC catalogue.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn layout_of_one_record_batch_is_hand_checked() {
    let batch = one_record_batch();
    #[rustfmt::skip]
    let expected_header: [u8; 61] = [
        0, 0, 0, 0, 0, 0, 0, 0,             // baseOffset 0
        0, 0, 0, 58,                        // batchLength 70 - 12
        0xff, 0xff, 0xff, 0xff,             // partitionLeaderEpoch -1
        2,                                  // magic
        0, 0, 0, 0,                         // crc: checked below
        0, 0,                               // attributes
        0, 0, 0, 0,                         // lastOffsetDelta 0
        0, 0, 0, 0, 0, 0, 0x03, 0xe8,       // baseTimestamp 1000
        0, 0, 0, 0, 0, 0, 0x03, 0xe8,       // maxTimestamp 1000
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // producerId -1
        0xff, 0xff,                         // producerEpoch -1
        0xff, 0xff, 0xff, 0xff,             // baseSequence -1
        0, 0, 0, 1,                         // recordCount 1
    ];
    // length 8 (zigzag 16), attributes, tsDelta 0, offsetDelta 0, key len 1 (zigzag 2) 'k',
    // value len 1 'v', 0 headers.
    let expected_record = [0x10, 0, 0, 0, 0x02, b'k', 0x02, b'v', 0];
    assert_eq!(batch.len(), 70);
    assert_eq!(&batch[..17], &expected_header[..17]);
    assert_eq!(&batch[21..61], &expected_header[21..61]);
    assert_eq!(&batch[61..], &expected_record[..]);
    let crc = u32::from_be_bytes(batch[17..21].try_into().unwrap());
    assert_eq!(crc, crc32c::crc32c(&batch[21..]));

    let h = validate_produced(&batch, MAX).unwrap();
    assert_eq!(h.batch_length, 58);
    assert_eq!(h.total_len(), 70);
    assert_eq!(h.record_count, 1);
    assert_eq!(h.last_offset(), 0);
    assert_eq!(h.base_timestamp, 1000);
    assert!(!h.has_producer_id());
    assert_eq!(h.last_sequence(), NO_SEQUENCE);
}

#[test]
fn hand_built_record_with_header_and_negative_delta_decodes() {
    // Record: attributes 0, tsDelta -1 (zigzag 1), offsetDelta 0, key null (zigzag -1 = 1),
    // value "ab", 1 header "h" -> null.
    let body = [
        0u8, 0x01, 0x00, 0x01, 0x04, b'a', b'b', 0x02, 0x02, b'h', 0x01,
    ];
    let mut data = vec![(body.len() as u8) << 1];
    data.extend_from_slice(&body);
    let batch = batch_from_records(&data, 1, Compression::None);
    validate_produced(&batch, MAX).unwrap();
    let records = records(&batch, MAX).unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.timestamp_delta, -1);
    assert_eq!(r.offset_delta, 0);
    assert_eq!(r.key, None);
    assert_eq!(r.value.as_deref(), Some(&b"ab"[..]));
    assert_eq!(r.headers, vec![("h".to_string(), None)]);
}

/// Wraps raw (uncompressed) record bytes into a batch with a correct header and CRC.
fn batch_from_records(data: &[u8], count: i32, codec: Compression) -> Bytes {
    let data = codec::compress(codec, data);
    let header = BatchHeader {
        base_offset: 0,
        batch_length: (BATCH_HEADER_LEN - LOG_OVERHEAD + data.len()) as i32,
        partition_leader_epoch: 0,
        magic: 2,
        crc: 0,
        attributes: codec.id(),
        last_offset_delta: count - 1,
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        record_count: count,
    };
    let mut out = vec![0u8; BATCH_HEADER_LEN];
    header.write(&mut out);
    out.extend_from_slice(&data);
    fix_crc(&mut out);
    Bytes::from(out)
}

fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn invalid_utf8_header_key_is_accepted_lossily() {
    // Record: attributes 0, tsDelta 0, offsetDelta 0, key null, value null, 1 header with
    // the 1-byte key 0xff and a null value.
    let body = [0u8, 0, 0, 0x01, 0x01, 0x02, 0x02, 0xff, 0x01];
    let mut data = vec![(body.len() as u8) << 1];
    data.extend_from_slice(&body);
    let batch = batch_from_records(&data, 1, Compression::None);
    validate_produced(&batch, MAX).unwrap();
    let records = records(&batch, MAX).unwrap();
    assert_eq!(records[0].headers, vec![("\u{fffd}".to_string(), None)]);
}

#[test]
fn header_accessors() {
    let batch = BatchBuilder::new(Compression::Zstd)
        .producer(7, 3, i32::MAX - 1)
        .transactional(true)
        .clone();
    let mut batch = batch;
    for i in 0..4 {
        batch.push(None, Some(&[i]), &[], 10 + i as i64);
    }
    let batch = batch.build();
    let h = validate_produced(&batch, MAX).unwrap();
    assert_eq!(h.compression().unwrap(), Compression::Zstd);
    assert!(h.is_transactional());
    assert!(!h.is_control());
    assert!(h.has_producer_id());
    assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
    assert_eq!(h.max_timestamp, 13);
    // i32::MAX - 1, i32::MAX, 0, 1: the last sequence wraps as in Kafka.
    assert_eq!(h.last_sequence(), 1);
    assert_eq!(increment_sequence(5, 3), 8);
    assert_eq!(increment_sequence(i32::MAX, 1), 0);
}

#[test]
fn unknown_codec_is_rejected() {
    let mut batch = one_record_batch().to_vec();
    batch[ATTRIBUTES_POS + 1] |= 0x05;
    fix_crc(&mut batch);
    assert!(matches!(
        validate_produced(&batch, MAX),
        Err(Error::CorruptBatch(_))
    ));
    assert!(records(&Bytes::from(batch), MAX).is_err());
}

#[test]
fn too_large_batch_is_rejected_with_sizes() {
    let batch = one_record_batch();
    match validate_produced(&batch, 69) {
        Err(Error::BatchTooLarge {
            size: 70,
            limit: 69,
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(validate_produced(&batch, 70).is_ok());
}

#[test]
fn produced_batch_rules() {
    // Empty batch: valid when stored (compaction), not when produced.
    let empty = BatchBuilder::new(Compression::None).build();
    assert!(validate_produced(&empty, MAX).is_err());
    assert_eq!(validate_stored(&empty).unwrap().record_count, 0);

    // Control batches may not come from clients.
    let mut b = BatchBuilder::new(Compression::None).control(true);
    b.push(None, Some(b"x"), &[], 0);
    assert!(validate_produced(&b.build(), MAX).is_err());
    assert!(validate_stored(&b.build()).is_ok());

    // A producer id needs a sequence.
    let mut b = BatchBuilder::new(Compression::None).producer(1, 0, -1);
    b.push(None, Some(b"x"), &[], 0);
    assert!(validate_produced(&b.build(), MAX).is_err());

    // count != lastOffsetDelta + 1 (a gap, as compaction leaves): stored only.
    let mut gap = one_record_batch().to_vec();
    gap[LAST_OFFSET_DELTA_POS + 3] = 4;
    fix_crc(&mut gap);
    assert!(validate_produced(&gap, MAX).is_err());
    assert!(validate_stored(&gap).is_ok());

    // Out-of-order offset deltas in an uncompressed batch.
    let mut data = Vec::new();
    record::encode_record(&mut data, 1, 0, None, Some(b"a"), &[]);
    record::encode_record(&mut data, 0, 0, None, Some(b"b"), &[]);
    let batch = batch_from_records(&data, 2, Compression::None);
    assert!(validate_produced(&batch, MAX).is_err());
    assert!(records(&batch, MAX).is_err());

    // Trailing garbage after the last record.
    let mut data = Vec::new();
    record::encode_record(&mut data, 0, 0, None, Some(b"a"), &[]);
    data.push(0);
    assert!(validate_produced(&batch_from_records(&data, 1, Compression::None), MAX).is_err());
}

#[test]
fn record_length_must_match_fields() {
    let mut data = Vec::new();
    record::encode_record(&mut data, 0, 0, None, Some(b"abc"), &[]);
    // Declare one byte more than the fields use, and add that byte.
    data[0] += 2;
    data.push(0);
    let batch = batch_from_records(&data, 1, Compression::None);
    assert!(validate_produced(&batch, MAX).is_err());
}

#[test]
fn hostile_counts_do_not_allocate() {
    // A record count of i32::MAX in a tiny batch: rejected before any allocation.
    let mut batch = one_record_batch().to_vec();
    batch[RECORD_COUNT_POS..RECORD_COUNT_POS + 4].copy_from_slice(&i32::MAX.to_be_bytes());
    batch[LAST_OFFSET_DELTA_POS..LAST_OFFSET_DELTA_POS + 4]
        .copy_from_slice(&(i32::MAX - 1).to_be_bytes());
    fix_crc(&mut batch);
    assert!(validate_produced(&batch, MAX).is_err());
    assert!(records(&Bytes::from(batch), MAX).is_err());

    // A header count of i32::MAX.
    let body = [0u8, 0, 0, 1, 1, 0xfe, 0xff, 0xff, 0xff, 0x0f];
    let mut data = vec![(body.len() as u8) << 1];
    data.extend_from_slice(&body);
    let batch = batch_from_records(&data, 1, Compression::None);
    assert!(validate_produced(&batch, MAX).is_err());
}

#[test]
fn decompression_is_bounded() {
    for codec in Compression::ALL {
        let mut b = BatchBuilder::new(codec);
        for _ in 0..100 {
            b.push(None, Some(&[0u8; 1000]), &[], 0);
        }
        let batch = b.build();
        validate_produced(&batch, MAX).unwrap();
        assert_eq!(records(&batch, MAX).unwrap().len(), 100);
        if codec != Compression::None {
            assert!(batch.len() < 100_000, "{codec:?} compressed poorly");
            assert!(records(&batch, 50_000).is_err(), "{codec:?} not bounded");
        }
    }
}

#[test]
fn raw_snappy_and_multi_member_gzip_decode() {
    let mut data = Vec::new();
    record::encode_record(&mut data, 0, 0, Some(b"k"), Some(b"v1"), &[]);
    record::encode_record(&mut data, 1, 5, Some(b"k"), Some(b"v2"), &[]);

    // Raw (unframed) snappy, as some non-Java clients send.
    let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
    let batch = raw_codec_batch(&raw, 2, Compression::Snappy);
    assert_eq!(
        records(&batch, MAX).unwrap()[1].value.as_deref(),
        Some(&b"v2"[..])
    );

    // Gzip with each record in its own member.
    let split = data.len() / 2;
    let mut gz = codec::compress(Compression::Gzip, &data[..split]);
    gz.extend_from_slice(&codec::compress(Compression::Gzip, &data[split..]));
    let batch = raw_codec_batch(&gz, 2, Compression::Gzip);
    let rs = records(&batch, MAX).unwrap();
    assert_eq!(rs[1].timestamp_delta, 5);
}

/// A batch whose record data is `compressed` as given.
fn raw_codec_batch(compressed: &[u8], count: i32, codec: Compression) -> Bytes {
    let mut b = batch_from_records(&[], count, Compression::None).to_vec();
    b.extend_from_slice(compressed);
    let len = (b.len() - LOG_OVERHEAD) as i32;
    b[BATCH_LENGTH_POS..BATCH_LENGTH_POS + 4].copy_from_slice(&len.to_be_bytes());
    b[ATTRIBUTES_POS + 1] = codec.id() as u8;
    fix_crc(&mut b);
    Bytes::from(b)
}

#[test]
fn patch_keeps_crc_and_log_append_time_recomputes_it() {
    let mut batch = one_record_batch().to_vec();
    patch_offset_and_epoch(&mut batch, 1234, 7);
    let h = validate_produced(&batch, MAX).unwrap();
    assert_eq!((h.base_offset, h.partition_leader_epoch), (1234, 7));
    assert_eq!(h.last_offset(), 1234);

    set_log_append_time(&mut batch, 99_999);
    let h2 = validate_produced(&batch, MAX).unwrap();
    assert_eq!(h2.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(h2.max_timestamp, 99_999);
    assert_ne!(h2.crc, h.crc);
    assert_eq!(h2.attributes & !TIMESTAMP_TYPE_BIT, h.attributes);
}

#[test]
fn split_batches_zero_copy_and_errors() {
    let a = one_record_batch();
    let mut b = BatchBuilder::new(Compression::Gzip);
    b.push(None, Some(b"x"), &[], 5);
    let b = b.build();
    let mut all = a.to_vec();
    all.extend_from_slice(&b);
    let all = Bytes::from(all);
    let split = split_batches(&all, 10).unwrap();
    assert_eq!(split.len(), 2);
    assert_eq!(split[0].1, a);
    assert_eq!(split[1].1, b);
    assert_eq!(
        split[1].1.as_ptr(),
        all[a.len()..].as_ptr(),
        "slices, not copies"
    );
    assert_eq!(split[1].0.compression().unwrap(), Compression::Gzip);

    assert!(split_batches(&all, 1).is_err());
    assert!(split_batches(&Bytes::new(), 1).unwrap().is_empty());
    for cut in 1..all.len() {
        assert!(split_batches(&all.slice(..cut), 10).is_err() || cut == a.len());
    }
    let mut bad = all.to_vec();
    bad[a.len() + MAGIC_POS] = 1;
    assert!(split_batches(&Bytes::from(bad), 10).is_err());
}

#[test]
fn kafka_protocol_encoded_batches_validate() {
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression as KCompression, Record as KRecord, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType as KTimestampType,
    };
    let codecs = [
        (KCompression::None, Compression::None),
        (KCompression::Gzip, Compression::Gzip),
        (KCompression::Snappy, Compression::Snappy),
        (KCompression::Lz4, Compression::Lz4),
        (KCompression::Zstd, Compression::Zstd),
    ];
    for (kcodec, codec) in codecs {
        let krecords: Vec<KRecord> = (0..5)
            .map(|i| {
                let mut headers = IndexMap::new();
                headers.insert(
                    StrBytes::from_static_str("hk"),
                    Some(Bytes::from(vec![i as u8])),
                );
                KRecord {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: 3,
                    producer_id: 42,
                    producer_epoch: 1,
                    timestamp_type: KTimestampType::Creation,
                    offset: i,
                    sequence: 10 + i as i32,
                    timestamp: 1_000 + i * 7,
                    key: Some(Bytes::from(format!("key{i}"))),
                    value: if i == 2 {
                        None
                    } else {
                        Some(Bytes::from(vec![b'v'; i as usize * 100]))
                    },
                    headers,
                }
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: kcodec,
        };
        RecordBatchEncoder::encode(&mut buf, &krecords, &options).unwrap();
        let batch = buf.freeze();
        let h = validate_produced(&batch, MAX).unwrap();
        assert_eq!(h.compression().unwrap(), codec);
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (42, 1, 10)
        );
        assert_eq!(h.last_sequence(), 14);
        assert_eq!(h.record_count, 5);
        let rs = records(&batch, MAX).unwrap();
        assert_eq!(rs.len(), 5);
        for (r, k) in rs.iter().zip(&krecords) {
            assert_eq!(h.base_offset + r.offset_delta as i64, k.offset);
            assert_eq!(h.base_timestamp + r.timestamp_delta, k.timestamp);
            assert_eq!(r.key, k.key);
            assert_eq!(r.value, k.value);
            assert_eq!(r.headers.len(), 1);
            assert_eq!(r.headers[0].0, "hk");
            assert_eq!(&r.headers[0].1, k.headers.values().next().unwrap());
        }
    }
}

#[test]
fn builder_batches_decode_with_kafka_protocol() {
    use kafka_protocol::records::RecordBatchDecoder;
    for codec in Compression::ALL {
        let mut b = BatchBuilder::new(codec)
            .producer(9, 2, 100)
            .transactional(true);
        for i in 0..20u8 {
            let value = vec![i; i as usize * 50];
            b.push(
                Some(&[i]),
                Some(&value),
                &[("a", Some(b"1")), ("b", None)],
                5_000 + i as i64,
            );
        }
        b.push(None, None, &[], 4_000);
        let mut batch = b.build();
        let set = RecordBatchDecoder::decode(&mut batch).unwrap();
        assert_eq!(set.records.len(), 21, "{codec:?}");
        for (i, r) in set.records.iter().enumerate().take(20) {
            assert_eq!(r.offset, i as i64);
            assert_eq!(r.sequence, 100 + i as i32);
            assert_eq!(r.timestamp, 5_000 + i as i64);
            assert_eq!(r.key.as_deref(), Some(&[i as u8][..]));
            assert_eq!(r.value.as_deref().unwrap().len(), i * 50);
            assert_eq!(r.headers.len(), 2);
            assert!(r.transactional);
            assert_eq!((r.producer_id, r.producer_epoch), (9, 2));
        }
        assert_eq!(set.records[20].timestamp, 4_000);
        assert_eq!(set.records[20].value, None);
    }
}

/// A strategy for a list of records: key, value, headers, timestamp.
type RecordSpec = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
    i64,
);

fn record_specs() -> impl Strategy<Value = Vec<RecordSpec>> {
    let bytes = || proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300));
    let header = ("[a-z\u{e9}]{0,8}", bytes());
    proptest::collection::vec(
        (
            bytes(),
            bytes(),
            proptest::collection::vec(header, 0..4),
            -1i64..1 << 42,
        ),
        1..40,
    )
}

fn codec_strategy() -> impl Strategy<Value = Compression> {
    proptest::sample::select(Compression::ALL.to_vec())
}

fn build(codec: Compression, specs: &[RecordSpec]) -> Bytes {
    let mut b = BatchBuilder::new(codec).producer(5, 0, 0);
    for (k, v, hs, ts) in specs {
        let hs: Vec<(&str, Option<&[u8]>)> =
            hs.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
        b.push(k.as_deref(), v.as_deref(), &hs, *ts);
    }
    b.build()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn build_validate_decode_round_trip(codec in codec_strategy(), specs in record_specs()) {
        let batch = build(codec, &specs);
        let h = validate_produced(&batch, MAX).unwrap();
        prop_assert_eq!(validate_stored(&batch).unwrap(), h);
        prop_assert_eq!(h.record_count as usize, specs.len());
        prop_assert_eq!(h.compression().unwrap(), codec);
        let rs = records(&batch, MAX).unwrap();
        prop_assert_eq!(rs.len(), specs.len());
        for (i, (r, (k, v, hs, ts))) in rs.iter().zip(&specs).enumerate() {
            prop_assert_eq!(r.offset_delta as usize, i);
            prop_assert_eq!(h.base_timestamp + r.timestamp_delta, *ts);
            prop_assert_eq!(r.key.as_deref(), k.as_deref());
            prop_assert_eq!(r.value.as_deref(), v.as_deref());
            let got: Vec<(String, Option<Vec<u8>>)> =
                r.headers.iter().map(|(k, v)| (k.clone(), v.as_ref().map(|v| v.to_vec()))).collect();
            prop_assert_eq!(&got, hs);
        }
        prop_assert_eq!(h.max_timestamp, specs.iter().map(|s| s.3).max().unwrap());
    }

    #[test]
    fn any_single_byte_flip_in_crc_range_is_rejected(
        codec in codec_strategy(),
        specs in record_specs(),
        pos_seed in any::<usize>(),
        xor in 1u8..=255,
    ) {
        let batch = build(codec, &specs);
        let pos = CRC_POS + pos_seed % (batch.len() - CRC_POS);
        let mut bad = batch.to_vec();
        bad[pos] ^= xor;
        prop_assert!(validate_produced(&bad, MAX).is_err());
        prop_assert!(validate_stored(&bad).is_err());
    }

    #[test]
    fn flips_outside_crc_are_offset_epoch_or_rejected(
        specs in record_specs(), pos in 0usize..CRC_POS, xor in 1u8..=255,
    ) {
        let batch = build(Compression::None, &specs);
        let mut bad = batch.to_vec();
        bad[pos] ^= xor;
        let in_patched_fields = pos < BATCH_LENGTH_POS
            || (PARTITION_LEADER_EPOCH_POS..MAGIC_POS).contains(&pos);
        prop_assert_eq!(validate_stored(&bad).is_ok(), in_patched_fields);
    }

    #[test]
    fn truncations_are_rejected(codec in codec_strategy(), specs in record_specs(), cut_seed in any::<usize>()) {
        let batch = build(codec, &specs);
        let cut = cut_seed % batch.len();
        let short = batch.slice(..cut);
        prop_assert!(validate_produced(&short, MAX).is_err());
        prop_assert!(validate_stored(&short).is_err());
        prop_assert!(split_batches(&short, 4).is_err() || cut == 0);
        prop_assert!(records(&short, MAX).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let data = Bytes::from(data);
        let _ = validate_produced(&data, MAX);
        let _ = validate_stored(&data);
        let _ = split_batches(&data, 8);
        let _ = records(&data, 1 << 16);
    }

    #[test]
    fn mutated_batches_never_panic(
        codec in codec_strategy(), specs in record_specs(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let mut bad = build(codec, &specs).to_vec();
        for (pos, byte) in edits {
            let pos = pos % bad.len();
            bad[pos] = byte;
        }
        // Keep the CRC right so the deeper checks run.
        fix_crc(&mut bad);
        let bad = Bytes::from(bad);
        let produced = validate_produced(&bad, MAX);
        let decoded = records(&bad, MAX);
        if let Ok(h) = produced {
            // What the broker accepts it can read back (compressed ones are not scanned).
            prop_assert!(validate_stored(&bad).is_ok());
            if h.compression().unwrap() == Compression::None {
                prop_assert_eq!(decoded.unwrap().len(), h.record_count as usize);
            }
        }
    }
}

/// Writes valid batches of every codec as a fuzzing seed corpus into the directory named by
/// `RIPTIDE_FUZZ_SEEDS` (see fuzz/README.md). Ignored: it is a tool, not a test.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir = std::env::var("RIPTIDE_FUZZ_SEEDS").expect("set RIPTIDE_FUZZ_SEEDS");
    std::fs::create_dir_all(&dir).unwrap();
    for codec in Compression::ALL {
        let mut b = BatchBuilder::new(codec).producer(1, 0, 0);
        for i in 0..3u8 {
            b.push(
                Some(&[i]),
                Some(b"value"),
                &[("h", Some(b"v"))],
                1_000 + i as i64,
            );
        }
        let batch = b.build();
        validate_produced(&batch, MAX).unwrap();
        std::fs::write(format!("{dir}/{codec:?}.bin"), &batch).unwrap();
    }
}

#[test]
fn end_txn_marker_layout_and_round_trip() {
    let batch = build_end_txn_marker(77, 4, ControlRecordType::Commit, 9, 5_000);
    let h = validate_stored(&batch).unwrap();
    assert!(h.is_control() && h.is_transactional());
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (77, 4, -1)
    );
    assert_eq!(h.record_count, 1);
    // Clients may not produce markers.
    assert!(validate_produced(&batch, MAX).is_err());
    // The record: key = version 0 | type 1 (COMMIT); value = version 0 | coordinator epoch 9.
    #[rustfmt::skip]
    let expected_record = [
        0x20,                   // length 16 (zigzag 32)
        0, 0, 0,                // attributes, timestampDelta 0, offsetDelta 0
        0x08, 0, 0, 0, 1,       // key: 4 bytes
        0x0c, 0, 0, 0, 0, 0, 9, // value: 6 bytes
        0,                      // no headers
    ];
    assert_eq!(&batch[BATCH_HEADER_LEN..], &expected_record[..]);
    let rs = records(&batch, MAX).unwrap();
    assert_eq!(
        control_record_type(&rs[0]).unwrap(),
        ControlRecordType::Commit
    );
    let m = parse_end_txn_marker(&rs[0]).unwrap();
    assert_eq!(
        m,
        EndTxnMarker {
            kind: ControlRecordType::Commit,
            coordinator_epoch: 9
        }
    );

    let abort = build_end_txn_marker(77, 4, ControlRecordType::Abort, 0, 0);
    let rs = records(&abort, MAX).unwrap();
    assert_eq!(
        parse_end_txn_marker(&rs[0]).unwrap().kind,
        ControlRecordType::Abort
    );

    // kafka-protocol sees a control, transactional record.
    let mut b = batch.clone();
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut b).unwrap();
    assert!(set.records[0].control && set.records[0].transactional);
}

#[test]
fn malformed_control_records_are_errors() {
    let mut r = Record {
        offset_delta: 0,
        timestamp_delta: 0,
        key: None,
        value: None,
        headers: vec![],
    };
    assert!(control_record_type(&r).is_err());
    r.key = Some(Bytes::from_static(&[0, 0, 0]));
    assert!(control_record_type(&r).is_err());
    r.key = Some(Bytes::from_static(&[0, 0, 0, 2])); // LEADER_CHANGE
    assert_eq!(
        control_record_type(&r).unwrap(),
        ControlRecordType::Other(2)
    );
    assert!(parse_end_txn_marker(&r).is_err());
    r.key = Some(Bytes::from_static(&[0, 0, 0, 0]));
    r.value = Some(Bytes::from_static(&[0, 0, 0, 0, 0]));
    assert!(parse_end_txn_marker(&r).is_err());
}

/// Throughput of the produce-path checks, printed (run with `--release --ignored`).
#[test]
#[ignore]
fn validate_throughput() {
    for (records_count, value_len) in [(16usize, 1000usize), (1000, 100), (100, 10_000)] {
        let mut b = BatchBuilder::new(Compression::None);
        let value = vec![7u8; value_len];
        for i in 0..records_count {
            b.push(
                Some(&i.to_be_bytes()),
                Some(&value),
                &[("h", Some(b"v"))],
                i as i64,
            );
        }
        let batch = b.build();
        let rounds = (256 << 20) / batch.len();
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            validate_produced(std::hint::black_box(&batch), usize::MAX).unwrap();
        }
        let elapsed = start.elapsed().as_secs_f64();
        println!(
            "{records_count} records x {value_len} B ({} B): {:.0} MB/s, {:.0} ns/batch",
            batch.len(),
            (rounds * batch.len()) as f64 / elapsed / 1e6,
            elapsed / rounds as f64 * 1e9
        );
    }
}

#[test]
fn compacted_batch_with_gaps_is_stored_and_decoded() {
    let mut data = Vec::new();
    for delta in [0, 2, 5] {
        record::encode_record(&mut data, delta, delta as i64, Some(b"k"), Some(b"v"), &[]);
    }
    let mut batch = batch_from_records(&data, 3, Compression::None).to_vec();
    batch[LAST_OFFSET_DELTA_POS..LAST_OFFSET_DELTA_POS + 4].copy_from_slice(&5i32.to_be_bytes());
    fix_crc(&mut batch);
    let batch = Bytes::from(batch);
    let h = validate_stored(&batch).unwrap();
    assert_eq!((h.record_count, h.last_offset()), (3, 5));
    assert!(validate_produced(&batch, MAX).is_err());
    let deltas: Vec<i32> = records(&batch, MAX)
        .unwrap()
        .iter()
        .map(|r| r.offset_delta)
        .collect();
    assert_eq!(deltas, vec![0, 2, 5]);
}

fn kafka_codec(codec: Compression) -> kafka_protocol::records::Compression {
    use kafka_protocol::records::Compression as K;
    match codec {
        Compression::None => K::None,
        Compression::Gzip => K::Gzip,
        Compression::Snappy => K::Snappy,
        Compression::Lz4 => K::Lz4,
        Compression::Zstd => K::Zstd,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random batches from kafka-protocol's encoder validate and decode to the same records;
    /// random batches from our builder decode with kafka-protocol's decoder.
    #[test]
    fn kafka_protocol_round_trips(codec in codec_strategy(), specs in record_specs()) {
        use kafka_protocol::indexmap::IndexMap;
        use kafka_protocol::protocol::StrBytes;
        use kafka_protocol::records::{
            Record as KRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
            TimestampType as KTimestampType,
        };
        // kafka-protocol keys headers by name: keep the first of each name.
        let krecords: Vec<KRecord> = specs.iter().enumerate().map(|(i, (k, v, hs, ts))| {
            let mut headers = IndexMap::new();
            for (hk, hv) in hs {
                headers.entry(StrBytes::from_string(hk.clone()))
                    .or_insert_with(|| hv.clone().map(Bytes::from));
            }
            KRecord {
                transactional: false, control: false, delete_horizon: false,
                partition_leader_epoch: 0, producer_id: 3, producer_epoch: 0,
                timestamp_type: KTimestampType::Creation, offset: i as i64, sequence: i as i32,
                timestamp: *ts, key: k.clone().map(Bytes::from), value: v.clone().map(Bytes::from),
                headers,
            }
        }).collect();
        let mut buf = bytes::BytesMut::new();
        let options = RecordEncodeOptions { version: 2, compression: kafka_codec(codec) };
        RecordBatchEncoder::encode(&mut buf, &krecords, &options).unwrap();
        let batch = buf.freeze();
        let split = split_batches(&batch, 1).unwrap();
        prop_assert_eq!(split.len(), 1);
        let h = validate_produced(&batch, MAX).unwrap();
        let rs = records(&batch, MAX).unwrap();
        prop_assert_eq!(rs.len(), krecords.len());
        for (r, k) in rs.iter().zip(&krecords) {
            prop_assert_eq!(h.base_offset + r.offset_delta as i64, k.offset);
            prop_assert_eq!(h.base_timestamp + r.timestamp_delta, k.timestamp);
            prop_assert_eq!(&r.key, &k.key);
            prop_assert_eq!(&r.value, &k.value);
            let names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
            let knames: Vec<&str> = k.headers.keys().map(|n| n.as_str()).collect();
            prop_assert_eq!(names, knames);
        }

        let mut ours = build(codec, &specs);
        let set = RecordBatchDecoder::decode(&mut ours).unwrap();
        prop_assert_eq!(set.records.len(), specs.len());
        for (r, (k, v, _, ts)) in set.records.iter().zip(&specs) {
            prop_assert_eq!(r.key.as_deref(), k.as_deref());
            prop_assert_eq!(r.value.as_deref(), v.as_deref());
            prop_assert_eq!(r.timestamp, *ts);
        }
    }
}
