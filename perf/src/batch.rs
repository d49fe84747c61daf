//! Kafka RecordBatch v2, built by hand for load generation and parsed by hand for counting.
//!
//! The producer pre-builds a batch template once; per send it only stamps the send time into
//! the batch header and into the first 8 bytes of every value, then recomputes CRC-32C
//! (hardware, many GB/s). That keeps client CPU per byte near a memcpy, so on a 2-core box the
//! broker, not the client, is what gets measured.
//!
//! The consumer reads batch headers only, plus the first record's value prefix for the
//! end-to-end timestamp: it never materializes records.

use anyhow::{bail, ensure, Context, Result};

/// Bytes before the first record: baseOffset(8) batchLength(4) partitionLeaderEpoch(4)
/// magic(1) crc(4) attributes(2) lastOffsetDelta(4) firstTimestamp(8) maxTimestamp(8)
/// producerId(8) producerEpoch(2) baseSequence(4) recordsCount(4).
pub const HEADER_BYTES: usize = 61;
const OFFSET_BATCH_LENGTH: usize = 8;
const OFFSET_MAGIC: usize = 16;
const OFFSET_CRC: usize = 17;
/// CRC-32C covers everything from the attributes to the end of the batch.
const OFFSET_ATTRIBUTES: usize = 21;
const OFFSET_LAST_OFFSET_DELTA: usize = 23;
const OFFSET_FIRST_TIMESTAMP: usize = 27;
const OFFSET_MAX_TIMESTAMP: usize = 35;
const OFFSET_RECORDS_COUNT: usize = 57;
/// A batch above this many records is refused by the parser (hostile or corrupt input).
pub const RECORDS_PER_BATCH_MAX: u32 = 1 << 20;
pub const TIMESTAMP_BYTES: usize = 8;

/// One record's contents before encoding.
pub struct RecordSpec {
    pub key: Option<Vec<u8>>,
    pub value_len: usize,
}

/// A pre-built uncompressed batch and where to stamp the send time.
#[derive(Clone)]
pub struct BatchTemplate {
    pub bytes: Vec<u8>,
    /// Offsets of each value's first byte (the 8-byte timestamp goes there).
    value_offsets: Vec<usize>,
    pub records: u32,
    /// Key plus value bytes: the unit of "MB/s" in reports.
    pub payload_bytes: u64,
}

pub fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a zigzag varint; returns (value, bytes used) or None if truncated or too long.
pub fn get_varint(buf: &[u8]) -> Option<(i64, usize)> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(10) {
        v |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Some((((v >> 1) as i64) ^ -((v & 1) as i64), i + 1));
        }
    }
    None
}

/// Builds a batch whose values are `filler` bytes (the timestamp is stamped later).
pub fn build(specs: &[RecordSpec], filler: &[u8]) -> BatchTemplate {
    assert!(!specs.is_empty() && specs.len() as u32 <= RECORDS_PER_BATCH_MAX);
    let mut out = vec![0u8; HEADER_BYTES];
    let mut value_offsets = Vec::with_capacity(specs.len());
    let mut payload_bytes = 0u64;
    let mut body = Vec::with_capacity(64);
    for (i, spec) in specs.iter().enumerate() {
        assert!(spec.value_len >= TIMESTAMP_BYTES && spec.value_len <= filler.len());
        body.clear();
        body.push(0); // attributes
        put_varint(&mut body, 0); // timestampDelta
        put_varint(&mut body, i as i64); // offsetDelta
        match &spec.key {
            None => put_varint(&mut body, -1),
            Some(k) => {
                put_varint(&mut body, k.len() as i64);
                body.extend_from_slice(k);
            }
        }
        put_varint(&mut body, spec.value_len as i64);
        let value_at_in_body = body.len();
        body.extend_from_slice(&filler[..spec.value_len]);
        put_varint(&mut body, 0); // headers count
        put_varint(&mut out, body.len() as i64);
        value_offsets.push(out.len() + value_at_in_body);
        out.extend_from_slice(&body);
        payload_bytes += (spec.value_len + spec.key.as_ref().map_or(0, |k| k.len())) as u64;
    }
    let n = specs.len() as u32;
    let batch_length = (out.len() - 12) as u32;
    out[OFFSET_BATCH_LENGTH..OFFSET_BATCH_LENGTH + 4].copy_from_slice(&batch_length.to_be_bytes());
    out[12..16].copy_from_slice(&(-1i32).to_be_bytes()); // partitionLeaderEpoch
    out[OFFSET_MAGIC] = 2;
    out[OFFSET_LAST_OFFSET_DELTA..OFFSET_LAST_OFFSET_DELTA + 4]
        .copy_from_slice(&(n as i32 - 1).to_be_bytes());
    out[43..51].copy_from_slice(&(-1i64).to_be_bytes()); // producerId
    out[51..53].copy_from_slice(&(-1i16).to_be_bytes()); // producerEpoch
    out[53..57].copy_from_slice(&(-1i32).to_be_bytes()); // baseSequence
    out[OFFSET_RECORDS_COUNT..OFFSET_RECORDS_COUNT + 4].copy_from_slice(&n.to_be_bytes());
    let mut t = BatchTemplate {
        bytes: out,
        value_offsets,
        records: n,
        payload_bytes,
    };
    t.stamp(0);
    t
}

impl BatchTemplate {
    /// Writes the send time into the header and every value, and reseals the CRC.
    pub fn stamp(&mut self, now_us: u64) {
        let ms = (now_us / 1000) as i64;
        self.bytes[OFFSET_FIRST_TIMESTAMP..OFFSET_FIRST_TIMESTAMP + 8]
            .copy_from_slice(&ms.to_be_bytes());
        self.bytes[OFFSET_MAX_TIMESTAMP..OFFSET_MAX_TIMESTAMP + 8]
            .copy_from_slice(&ms.to_be_bytes());
        let ts = now_us.to_le_bytes();
        for &at in &self.value_offsets {
            self.bytes[at..at + TIMESTAMP_BYTES].copy_from_slice(&ts);
        }
        let crc = crc32c::crc32c(&self.bytes[OFFSET_ATTRIBUTES..]);
        self.bytes[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// What a consumer learns from one batch.
#[derive(Debug, PartialEq, Eq)]
pub struct BatchInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub records: u32,
    pub compressed: bool,
    /// Key plus value bytes of the records (for compressed batches: the batch's wire bytes,
    /// since the records are not decompressed).
    pub payload_bytes: u64,
    /// The first record's payload timestamp (µs), when the batch is uncompressed and the value
    /// is long enough to carry one.
    pub first_value_timestamp_us: Option<u64>,
}

fn be_i64(b: &[u8]) -> i64 {
    i64::from_be_bytes(b[..8].try_into().unwrap())
}
fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes(b[..4].try_into().unwrap())
}

/// Walks the batches of a fetched record set. A trailing partial batch (brokers may cut one at
/// the size limit) is ignored. With `verify_crc`, a bad checksum is an error.
pub fn parse_batches(
    mut buf: &[u8],
    verify_crc: bool,
    mut each: impl FnMut(&BatchInfo),
) -> Result<()> {
    while buf.len() >= 12 {
        let batch_length = be_i32(&buf[OFFSET_BATCH_LENGTH..]);
        ensure!(
            batch_length >= (HEADER_BYTES - 12) as i32,
            "batch length {batch_length} too small"
        );
        let total = 12 + batch_length as usize;
        if buf.len() < total {
            break; // partial batch at the end of the response
        }
        let batch = &buf[..total];
        if batch[OFFSET_MAGIC] != 2 {
            bail!("record batch magic {} is not 2", batch[OFFSET_MAGIC]);
        }
        if verify_crc {
            let want = u32::from_be_bytes(batch[OFFSET_CRC..OFFSET_CRC + 4].try_into().unwrap());
            ensure!(
                crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..]) == want,
                "record batch CRC mismatch"
            );
        }
        let base_offset = be_i64(batch);
        let last_delta = be_i32(&batch[OFFSET_LAST_OFFSET_DELTA..]);
        let count = be_i32(&batch[OFFSET_RECORDS_COUNT..]);
        ensure!(
            last_delta >= 0 && count >= 0 && count as u32 <= RECORDS_PER_BATCH_MAX,
            "bad batch counts"
        );
        let attributes =
            i16::from_be_bytes([batch[OFFSET_ATTRIBUTES], batch[OFFSET_ATTRIBUTES + 1]]);
        let compressed = attributes & 0x7 != 0;
        // Control batches (transaction markers) carry no user records.
        let control = attributes & 0x20 != 0;
        let plain = !compressed && !control && count > 0;
        let first_value_timestamp_us = if plain {
            first_value_timestamp(&batch[HEADER_BYTES..])
        } else {
            None
        };
        let payload_bytes = if plain {
            records_payload_bytes(&batch[HEADER_BYTES..], count as u32)
                .context("malformed records")?
        } else if control {
            0
        } else {
            total as u64
        };
        let info = BatchInfo {
            base_offset,
            last_offset: base_offset + last_delta as i64,
            records: if control { 0 } else { count as u32 },
            compressed,
            payload_bytes,
            first_value_timestamp_us,
        };
        each(&info);
        buf = &buf[total..];
    }
    Ok(())
}

/// Sums key and value lengths over `count` uncompressed records, checking every length against
/// the bytes that remain; None if the records do not fit the batch.
fn records_payload_bytes(records: &[u8], count: u32) -> Option<u64> {
    let mut at = 0usize;
    let mut sum = 0u64;
    for _ in 0..count {
        let (len, n) = get_varint(records.get(at..)?)?;
        if len < 0 {
            return None;
        }
        let end = at.checked_add(n)?.checked_add(len as usize)?;
        let rec = records.get(at + n..end)?;
        let mut r = 1usize; // attributes
        let (_, n) = get_varint(rec.get(r..)?)?;
        r += n;
        let (_, n) = get_varint(rec.get(r..)?)?;
        r += n;
        let (key_len, n) = get_varint(rec.get(r..)?)?;
        r += n;
        if key_len > 0 {
            r = r.checked_add(key_len as usize)?;
            sum += key_len as u64;
        }
        let (value_len, n) = get_varint(rec.get(r..)?)?;
        r += n;
        if value_len > 0 {
            r = r.checked_add(value_len as usize)?;
            sum += value_len as u64;
        }
        if r > rec.len() {
            return None;
        }
        at = end;
    }
    Some(sum)
}

/// Decodes just enough of the first record to read the 8-byte timestamp at the value's start.
fn first_value_timestamp(records: &[u8]) -> Option<u64> {
    let mut at = 0usize;
    let (_len, n) = get_varint(records)?;
    at += n;
    at += 1; // attributes
    let (_ts_delta, n) = get_varint(records.get(at..)?)?;
    at += n;
    let (_off_delta, n) = get_varint(records.get(at..)?)?;
    at += n;
    let (key_len, n) = get_varint(records.get(at..)?)?;
    at += n;
    if key_len > 0 {
        at = at.checked_add(key_len as usize)?;
    }
    let (value_len, n) = get_varint(records.get(at..)?)?;
    at += n;
    if value_len < TIMESTAMP_BYTES as i64 {
        return None;
    }
    let ts = records.get(at..at + TIMESTAMP_BYTES)?;
    Some(u64::from_le_bytes(ts.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::records::RecordBatchDecoder;

    fn specs(n: usize, key: bool) -> Vec<RecordSpec> {
        (0..n)
            .map(|i| RecordSpec {
                key: key.then(|| format!("k{i}").into_bytes()),
                value_len: 8 + i * 3,
            })
            .collect()
    }

    #[test]
    fn built_batch_decodes_with_kafka_protocol() {
        let filler: Vec<u8> = (0..200u8).collect();
        let mut t = build(&specs(7, true), &filler);
        t.stamp(1_700_000_000_123_456);
        let mut buf = Bytes::from(t.bytes.clone());
        let set = RecordBatchDecoder::decode(&mut buf).unwrap();
        assert_eq!(set.records.len(), 7);
        for (i, r) in set.records.iter().enumerate() {
            assert_eq!(r.offset, i as i64);
            assert_eq!(r.key.as_deref(), Some(format!("k{i}").as_bytes()));
            let v = r.value.as_ref().unwrap();
            assert_eq!(v.len(), 8 + i * 3);
            assert_eq!(
                u64::from_le_bytes(v[..8].try_into().unwrap()),
                1_700_000_000_123_456
            );
            assert_eq!(r.timestamp, 1_700_000_000_123);
        }
        let expected: u64 = (0..7)
            .map(|i| (8 + i * 3 + format!("k{i}").len()) as u64)
            .sum();
        assert_eq!(t.payload_bytes, expected);
    }

    #[test]
    fn parse_counts_skips_partial_and_detects_corruption() {
        let filler = vec![7u8; 64];
        let mut a = build(&specs(3, false), &filler);
        a.stamp(42);
        let mut b = build(&specs(2, false), &filler);
        b.bytes[..8].copy_from_slice(&3i64.to_be_bytes());
        b.stamp(43);
        let mut wire = a.bytes.clone();
        wire.extend_from_slice(&b.bytes);
        wire.extend_from_slice(&a.bytes[..30]); // truncated third batch
        let mut seen = Vec::new();
        parse_batches(&wire, true, |i| {
            seen.push((
                i.base_offset,
                i.last_offset,
                i.records,
                i.first_value_timestamp_us,
                i.payload_bytes,
            ))
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![
                (0, 2, 3, Some(42), a.payload_bytes),
                (3, 4, 2, Some(43), b.payload_bytes)
            ]
        );
        assert_eq!(a.payload_bytes, 8 + 11 + 14);
        let mut bad = a.bytes.clone();
        let last = bad.len() - 2;
        bad[last] ^= 1;
        assert!(parse_batches(&bad, true, |_| {}).is_err());
        assert!(parse_batches(&bad, false, |_| {}).is_ok());
        let mut tiny = a.bytes.clone();
        tiny[8..12].copy_from_slice(&5i32.to_be_bytes());
        assert!(parse_batches(&tiny, false, |_| {}).is_err());
    }

    #[test]
    fn garbage_and_mutations_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let filler = vec![1u8; 300];
        let mut good = build(&specs(5, true), &filler);
        good.stamp(99);
        let mut errors = 0;
        for round in 0..20_000 {
            let buf: Vec<u8> = if round % 2 == 0 {
                let n = rng.gen_range(0..200);
                (0..n).map(|_| rng.gen()).collect()
            } else {
                let mut b = good.bytes.clone();
                for _ in 0..rng.gen_range(1..4) {
                    let i = rng.gen_range(0..b.len());
                    b[i] = rng.gen();
                }
                b.truncate(rng.gen_range(0..=b.len()));
                b
            };
            let mut count = 0u64;
            match parse_batches(&buf, false, |i| count += i.records as u64) {
                Ok(()) => assert!(count <= RECORDS_PER_BATCH_MAX as u64),
                Err(_) => errors += 1,
            }
        }
        // Mutations must be noticed at least sometimes, or the checks are not checking.
        assert!(errors > 100, "only {errors} inputs rejected");
    }

    #[test]
    fn varint_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(get_varint(&out), Some((v, out.len())));
        }
        assert_eq!(get_varint(&[0x80, 0x80]), None);
    }
}
