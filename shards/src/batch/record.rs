//! Records inside a v2 batch: zigzag varints and the record framing.
//!
//! ```text
//! length varint | attributes int8 | timestampDelta varlong | offsetDelta varint |
//! keyLength varint | key | valueLength varint | value |
//! headerCount varint | (headerKeyLength varint | key | headerValueLength varint | value)*
//! ```
//!
//! `length` counts the bytes after itself. Lengths of -1 mean null (key, value, header
//! value); header keys are never null. Every declared length is checked against the bytes
//! that remain before anything is sliced or allocated.

use crate::error::{Error, Result};
use bytes::{BufMut, Bytes};

/// A decoded record. `key`, `value` and header values are slices of the batch (or of its
/// decompressed data), not copies. Header keys are decoded lossily (invalid UTF-8 becomes
/// U+FFFD), as the Java client and broker do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// The smallest possible record: a one-byte varint for each of length, timestampDelta,
/// offsetDelta, keyLength, valueLength, headerCount plus the attributes byte.
const RECORD_LEN_MIN: usize = 7;
/// The smallest possible header: keyLength 0 and valueLength -1.
const HEADER_LEN_MIN: usize = 2;

fn corrupt(msg: impl Into<String>) -> Error {
    Error::CorruptBatch(msg.into())
}

/// A cursor over untrusted bytes; every read is bounds-checked.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn u8(&mut self) -> Result<u8> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| corrupt("record truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    /// An unsigned LEB128 value of at most `bytes_max` bytes.
    #[inline]
    fn unsigned_varint(&mut self, bytes_max: u32) -> Result<u64> {
        // Fast paths for the one- and two-byte varints that make up nearly every record
        // (1 KiB values have two-byte lengths): validating a produced batch parses each
        // record, and this was the hottest part of it.
        match self.buf.get(self.pos..self.pos + 2) {
            Some(&[b0, _]) if b0 < 0x80 => {
                self.pos += 1;
                Ok(b0 as u64)
            }
            Some(&[b0, b1]) if b1 < 0x80 && bytes_max >= 2 => {
                self.pos += 2;
                Ok((b0 & 0x7f) as u64 | (b1 as u64) << 7)
            }
            _ => self.unsigned_varint_slow(bytes_max),
        }
    }

    /// [`Self::unsigned_varint`] one checked byte at a time: near the end of the buffer
    /// and for values of three bytes or more.
    #[cold]
    fn unsigned_varint_slow(&mut self, bytes_max: u32) -> Result<u64> {
        let mut value: u64 = 0;
        for i in 0..bytes_max {
            let b = self.u8()?;
            value |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(corrupt("varint too long"))
    }

    /// A zigzag varint (int32), as Kafka's `ByteUtils.readVarint`.
    pub(super) fn varint(&mut self) -> Result<i32> {
        let raw = self.unsigned_varint(5)?;
        if raw > u32::MAX as u64 {
            return Err(corrupt("varint overflows int32"));
        }
        let raw = raw as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    /// A zigzag varlong (int64), as Kafka's `ByteUtils.readVarlong`.
    pub(super) fn varlong(&mut self) -> Result<i64> {
        let raw = self.unsigned_varint(10)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn bytes(&mut self, len: usize) -> Result<&'a [u8]> {
        if len > self.remaining() {
            return Err(corrupt(format!(
                "field of {len} bytes but only {} remain",
                self.remaining()
            )));
        }
        let slice = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(slice)
    }

    /// A varint length followed by that many bytes; -1 is null.
    fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>> {
        let len = self.varint()?;
        match len {
            -1 => Ok(None),
            len if len < -1 => Err(corrupt(format!("negative length {len}"))),
            len => Ok(Some(self.bytes(len as usize)?)),
        }
    }
}

/// One record borrowed from the buffer it was parsed from.
pub(super) struct RecordRef<'a> {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The header count and the bytes holding the headers (already validated), parsed
    /// again only by [`decode_all`]: validation allocates nothing per record.
    pub header_count: usize,
    pub headers_raw: &'a [u8],
}

/// Reads one header: key (never null) and nullable value.
fn parse_header<'a>(reader: &mut Reader<'a>) -> Result<(&'a [u8], Option<&'a [u8]>)> {
    let key_len = reader.varint()?;
    if key_len < 0 {
        return Err(corrupt(format!("negative header key length {key_len}")));
    }
    let key = reader.bytes(key_len as usize)?;
    let value = reader.nullable_bytes()?;
    Ok((key, value))
}

/// Parses one record at the reader's position; checks that its body is exactly `length`.
pub(super) fn parse_record<'a>(reader: &mut Reader<'a>) -> Result<RecordRef<'a>> {
    let length = reader.varint()?;
    if length < 0 || length as usize > reader.remaining() {
        return Err(corrupt(format!(
            "record length {length} but {} bytes remain",
            reader.remaining()
        )));
    }
    let mut body = Reader::new(reader.bytes(length as usize)?);
    let _attributes = body.u8()?;
    let timestamp_delta = body.varlong()?;
    let offset_delta = body.varint()?;
    let key = body.nullable_bytes()?;
    let value = body.nullable_bytes()?;
    let header_count = body.varint()?;
    if header_count < 0 || header_count as usize > body.remaining() / HEADER_LEN_MIN {
        return Err(corrupt(format!(
            "header count {header_count} impossible in {} bytes",
            body.remaining()
        )));
    }
    let headers_start = body.pos;
    for _ in 0..header_count {
        parse_header(&mut body)?;
    }
    let headers_raw = &body.buf[headers_start..body.pos];
    if body.remaining() != 0 {
        return Err(corrupt(format!(
            "record declares {length} bytes but its fields end {} bytes early",
            body.remaining()
        )));
    }
    Ok(RecordRef {
        offset_delta,
        timestamp_delta,
        key,
        value,
        header_count: header_count as usize,
        headers_raw,
    })
}

/// Checks that `count` is possible in `data.len()` bytes before anything is sized by it.
fn check_count(data: &[u8], count: i32) -> Result<usize> {
    if count < 0 || count as usize > data.len() / RECORD_LEN_MIN {
        return Err(corrupt(format!(
            "record count {count} impossible in {} bytes",
            data.len()
        )));
    }
    Ok(count as usize)
}

/// Validates the records of a freshly produced uncompressed batch without copying them:
/// exactly `count` well-formed records, offset deltas `0..count` in order, nothing after.
pub(super) fn scan_uncompressed(data: &[u8], count: i32) -> Result<()> {
    let count = check_count(data, count)?;
    let mut reader = Reader::new(data);
    for expected in 0..count {
        let record = parse_record(&mut reader)?;
        if record.offset_delta as i64 != expected as i64 {
            return Err(corrupt(format!(
                "record {expected} has offset delta {}",
                record.offset_delta
            )));
        }
    }
    if reader.remaining() != 0 {
        return Err(corrupt(format!(
            "{} bytes after the last record",
            reader.remaining()
        )));
    }
    Ok(())
}

/// Decodes exactly `count` records that must fill `data`. Offset deltas are not required to
/// be contiguous (compacted batches have gaps) but must increase.
pub(super) fn decode_all(data: &Bytes, count: i32) -> Result<Vec<Record>> {
    let count = check_count(data, count)?;
    let mut reader = Reader::new(data);
    let mut records = Vec::with_capacity(count);
    let mut previous_delta: i64 = -1;
    for _ in 0..count {
        let r = parse_record(&mut reader)?;
        if r.offset_delta as i64 <= previous_delta {
            return Err(corrupt(format!(
                "offset delta {} after {previous_delta}",
                r.offset_delta
            )));
        }
        previous_delta = r.offset_delta as i64;
        let mut headers = Vec::with_capacity(r.header_count);
        let mut header_reader = Reader::new(r.headers_raw);
        for _ in 0..r.header_count {
            let (key, value) = parse_header(&mut header_reader)?;
            // Lossy, as Java's `new String(bytes, UTF_8)`: Kafka accepts any bytes here.
            let key = String::from_utf8_lossy(key).into_owned();
            headers.push((key, value.map(|v| data.slice_ref(v))));
        }
        records.push(Record {
            offset_delta: r.offset_delta,
            timestamp_delta: r.timestamp_delta,
            key: r.key.map(|k| data.slice_ref(k)),
            value: r.value.map(|v| data.slice_ref(v)),
            headers,
        });
    }
    if reader.remaining() != 0 {
        return Err(corrupt(format!(
            "{} bytes after the last record",
            reader.remaining()
        )));
    }
    Ok(records)
}

pub(super) fn put_varint(buf: &mut Vec<u8>, value: i32) {
    put_unsigned(buf, ((value << 1) ^ (value >> 31)) as u32 as u64);
}

pub(super) fn put_varlong(buf: &mut Vec<u8>, value: i64) {
    put_unsigned(buf, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_unsigned(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

fn put_nullable(buf: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(
                buf,
                i32::try_from(b.len()).expect("field longer than i32::MAX"),
            );
            buf.put_slice(b);
        }
    }
}

/// Appends one encoded record to `out`.
pub(super) fn encode_record(
    out: &mut Vec<u8>,
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&str, Option<&[u8]>)],
) {
    let mut body = Vec::new();
    body.put_u8(0); // Record attributes: unused by Kafka.
    put_varlong(&mut body, timestamp_delta);
    put_varint(&mut body, offset_delta);
    put_nullable(&mut body, key);
    put_nullable(&mut body, value);
    put_varint(
        &mut body,
        i32::try_from(headers.len()).expect("too many headers"),
    );
    for (k, v) in headers {
        put_nullable(&mut body, Some(k.as_bytes()));
        put_nullable(&mut body, *v);
    }
    put_varint(
        out,
        i32::try_from(body.len()).expect("record longer than i32::MAX"),
    );
    out.extend_from_slice(&body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every varint read of `data`, and where each left the cursor, until the first error.
    fn reads(data: &[u8], bytes_max: u32, fast: bool) -> Vec<(Option<u64>, usize)> {
        let mut reader = Reader::new(data);
        let mut out = Vec::new();
        while reader.remaining() > 0 {
            let got = if fast {
                reader.unsigned_varint(bytes_max)
            } else {
                reader.unsigned_varint_slow(bytes_max)
            };
            out.push((got.as_ref().ok().copied(), reader.pos));
            if got.is_err() {
                break;
            }
        }
        out
    }

    proptest! {
        /// The one- and two-byte fast paths read exactly what the byte-at-a-time reader
        /// does, errors and cursor positions included, on any bytes.
        #[test]
        fn fast_varints_agree_with_the_checked_reader(
            data in proptest::collection::vec(any::<u8>(), 0..64),
            bytes_max in prop_oneof![Just(5u32), Just(10u32)],
        ) {
            prop_assert_eq!(reads(&data, bytes_max, true), reads(&data, bytes_max, false));
        }

        /// Zigzag varints and varlongs written by the encoder read back, whatever their length.
        #[test]
        fn varints_round_trip(v32 in any::<i32>(), v64 in any::<i64>(), small in -200i32..200) {
            let mut buf = Vec::new();
            put_varint(&mut buf, v32);
            put_varlong(&mut buf, v64);
            put_varint(&mut buf, small);
            let mut reader = Reader::new(&buf);
            prop_assert_eq!(reader.varint().unwrap(), v32);
            prop_assert_eq!(reader.varlong().unwrap(), v64);
            prop_assert_eq!(reader.varint().unwrap(), small);
            prop_assert_eq!(reader.remaining(), 0);
        }
    }
}
