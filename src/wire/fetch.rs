//! Hand-written Fetch response encoder (v4–v16) for zero-copy fetch.
//!
//! `kafka-protocol` would copy every record batch into one output buffer. Here all framing
//! (size prefix, response header, topic and partition fields, record-set lengths, tagged
//! fields) is written into ONE small buffer, which is then sliced around the points where
//! record bytes go; the stored batch slices are interleaved as they are, so the response is
//! a list of `Bytes` for one vectored write and record bytes are never copied in user space.
//!
//! Layout per version (Kafka's FetchResponse schema; proven equal to `kafka-protocol`'s
//! decoder by the property test in `tests/wire_fetch.rs`):
//! - header: v0 (correlation id) up to v11; v1 (+ empty tagged fields) from v12 (flexible);
//! - error_code and session_id from v7; log_start_offset from v5; preferred_read_replica from
//!   v11; compact arrays/strings/bytes and tagged fields from v12; topic id instead of topic
//!   name from v13; node_endpoints (top-level tag 0) from v16.
//! - partition tagged fields: diverging_epoch (tag 0), current_leader (tag 1), written only
//!   when set and different from the default (old librdkafka chokes on always-sent tags).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::error::WireError;
use super::frame::FRAME_PREFIX_BYTES;
use super::response::put_response_header;

/// Lowest Fetch version this encoder writes (Kafka 4's minimum).
pub const FETCH_VERSION_MIN: i16 = 4;
/// Highest Fetch version this encoder writes.
pub const FETCH_VERSION_MAX: i16 = 16;
/// First flexible Fetch version (compact encodings, tagged fields, response header v1).
pub const FETCH_VERSION_FLEXIBLE: i16 = 12;
/// First Fetch version that names topics by id.
pub const FETCH_VERSION_TOPIC_IDS: i16 = 13;

/// Fetch response input: plain data, records as stored batch slices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FetchResponseData {
    pub throttle_time_ms: i32,
    /// Sent from v7.
    pub error_code: i16,
    /// Sent from v7 (fetch sessions, KIP-227).
    pub session_id: i32,
    pub topics: Vec<FetchTopic>,
    /// Sent from v16 as a tagged field, only when non-empty.
    pub node_endpoints: Vec<FetchNodeEndpoint>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FetchTopic {
    /// Sent up to v12.
    pub name: StrBytes,
    /// Sent from v13.
    pub topic_id: Uuid,
    pub partitions: Vec<FetchPartition>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FetchPartition {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    /// Sent from v5.
    pub log_start_offset: i64,
    /// `(producer_id, first_offset)`; `None` is a null array.
    pub aborted_transactions: Option<Vec<(i64, i64)>>,
    /// Sent from v11; -1 when none.
    pub preferred_read_replica: i32,
    /// `(epoch, end_offset)`: tagged field 0 from v12, only when set and not `(-1, -1)`.
    pub diverging_epoch: Option<(i32, i64)>,
    /// `(leader_id, leader_epoch)`: tagged field 1 from v12, only when set and not `(-1, -1)`.
    pub current_leader: Option<(i32, i32)>,
    /// Stored record-batch slices, concatenated on the wire without copying.
    pub records: Vec<Bytes>,
}

impl Default for FetchPartition {
    fn default() -> Self {
        FetchPartition {
            partition_index: 0,
            error_code: 0,
            high_watermark: 0,
            last_stable_offset: -1,
            log_start_offset: -1,
            aborted_transactions: None,
            preferred_read_replica: -1,
            diverging_epoch: None,
            current_leader: None,
            records: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FetchNodeEndpoint {
    pub node_id: i32,
    pub host: StrBytes,
    pub port: i32,
    pub rack: Option<StrBytes>,
}

/// The encoded response: `pieces` concatenated are the full frame (size prefix included).
#[derive(Debug, Clone)]
pub struct FetchResponseFrame {
    pub pieces: Vec<Bytes>,
    pub total_bytes: usize,
}

impl FetchResponseFrame {
    /// One contiguous copy (for tests and for writers without vectored I/O).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.total_bytes);
        for piece in &self.pieces {
            out.put_slice(piece);
        }
        out.freeze()
    }
}

/// Framing writer: everything except record bytes goes into `buf`; `record_gaps` remembers
/// where in `buf` each partition's record slices belong.
struct Writer<'a> {
    buf: BytesMut,
    version: i16,
    flexible: bool,
    record_gaps: Vec<(usize, &'a [Bytes])>,
    record_bytes: usize,
}

impl<'a> Writer<'a> {
    fn uvarint(&mut self, mut value: u32) {
        while value >= 0x80 {
            self.buf.put_u8((value as u8) | 0x80);
            value >>= 7;
        }
        self.buf.put_u8(value as u8);
    }

    /// Array length; `None` is a null array (-1, or 0 in compact form).
    fn array_len(&mut self, len: Option<usize>) -> Result<(), WireError> {
        let len = match len {
            Some(n) => i32::try_from(n).map_err(|_| WireError::ResponseTooLarge { size: n })?,
            None => -1,
        };
        if self.flexible {
            self.uvarint((len + 1) as u32);
        } else {
            self.buf.put_i32(len);
        }
        Ok(())
    }

    fn string(&mut self, s: Option<&str>) -> Result<(), WireError> {
        match s {
            None if self.flexible => self.uvarint(0),
            None => self.buf.put_i16(-1),
            Some(s) => {
                let too_long =
                    || encode_error(self.version, format!("string of {} bytes", s.len()));
                if self.flexible {
                    let len = u32::try_from(s.len() + 1).map_err(|_| too_long())?;
                    self.uvarint(len);
                } else {
                    let len = i16::try_from(s.len()).map_err(|_| too_long())?;
                    self.buf.put_i16(len);
                }
                self.buf.put_slice(s.as_bytes());
            }
        }
        Ok(())
    }

    /// Records: a non-null byte string whose bytes are the stored slices, spliced in later.
    fn records(&mut self, records: &'a [Bytes]) -> Result<(), WireError> {
        let len: usize = records.iter().map(Bytes::len).sum();
        let len_i32 = i32::try_from(len).map_err(|_| WireError::ResponseTooLarge { size: len })?;
        if self.flexible {
            self.uvarint(len_i32 as u32 + 1);
        } else {
            self.buf.put_i32(len_i32);
        }
        self.record_gaps.push((self.buf.len(), records));
        self.record_bytes += len;
        Ok(())
    }

    fn no_tagged_fields(&mut self) {
        if self.flexible {
            self.uvarint(0);
        }
    }
}

fn encode_error(api_version: i16, reason: String) -> WireError {
    WireError::ResponseEncode {
        api_key: ApiKey::Fetch,
        api_version,
        reason,
    }
}

/// Encodes a complete Fetch response frame for `version` (4..=16).
pub fn encode_fetch_response<'a>(
    correlation_id: i32,
    version: i16,
    data: &'a FetchResponseData,
) -> Result<FetchResponseFrame, WireError> {
    if !(FETCH_VERSION_MIN..=FETCH_VERSION_MAX).contains(&version) {
        return Err(WireError::UnsupportedVersion {
            api_key: ApiKey::Fetch,
            api_version: version,
        });
    }
    let flexible = version >= FETCH_VERSION_FLEXIBLE;
    let partitions: usize = data.topics.iter().map(|t| t.partitions.len()).sum();
    let mut w: Writer<'a> = Writer {
        buf: BytesMut::with_capacity(64 + 96 * partitions + 64 * data.topics.len()),
        version,
        flexible,
        record_gaps: Vec::with_capacity(partitions),
        record_bytes: 0,
    };
    w.buf.put_i32(0); // size prefix, patched below
    put_response_header(&mut w.buf, if flexible { 1 } else { 0 }, correlation_id);
    w.buf.put_i32(data.throttle_time_ms);
    if version >= 7 {
        w.buf.put_i16(data.error_code);
        w.buf.put_i32(data.session_id);
    }
    w.array_len(Some(data.topics.len()))?;
    for topic in &data.topics {
        put_topic(&mut w, version, topic)?;
    }
    if flexible {
        put_response_tagged_fields(&mut w, version, data)?;
    }
    finish(w)
}

fn put_topic<'a>(w: &mut Writer<'a>, version: i16, topic: &'a FetchTopic) -> Result<(), WireError> {
    if version >= FETCH_VERSION_TOPIC_IDS {
        w.buf.put_slice(topic.topic_id.as_bytes());
    } else {
        w.string(Some(&topic.name))?;
    }
    w.array_len(Some(topic.partitions.len()))?;
    for partition in &topic.partitions {
        put_partition(w, version, partition)?;
    }
    w.no_tagged_fields();
    Ok(())
}

fn put_partition<'a>(
    w: &mut Writer<'a>,
    version: i16,
    partition: &'a FetchPartition,
) -> Result<(), WireError> {
    w.buf.put_i32(partition.partition_index);
    w.buf.put_i16(partition.error_code);
    w.buf.put_i64(partition.high_watermark);
    w.buf.put_i64(partition.last_stable_offset);
    if version >= 5 {
        w.buf.put_i64(partition.log_start_offset);
    }
    w.array_len(partition.aborted_transactions.as_ref().map(Vec::len))?;
    for &(producer_id, first_offset) in partition.aborted_transactions.iter().flatten() {
        w.buf.put_i64(producer_id);
        w.buf.put_i64(first_offset);
        w.no_tagged_fields();
    }
    if version >= 11 {
        w.buf.put_i32(partition.preferred_read_replica);
    }
    w.records(&partition.records)?;
    if w.flexible {
        put_partition_tagged_fields(w, partition);
    }
    Ok(())
}

/// Tagged fields of a partition, ascending by tag, each only when it differs from Kafka's
/// default (-1, -1).
fn put_partition_tagged_fields(w: &mut Writer<'_>, partition: &FetchPartition) {
    let diverging = partition.diverging_epoch.filter(|&d| d != (-1, -1));
    let leader = partition.current_leader.filter(|&l| l != (-1, -1));
    w.uvarint(diverging.is_some() as u32 + leader.is_some() as u32);
    if let Some((epoch, end_offset)) = diverging {
        w.uvarint(0); // tag
        w.uvarint(4 + 8 + 1); // epoch, end_offset, empty tagged fields
        w.buf.put_i32(epoch);
        w.buf.put_i64(end_offset);
        w.uvarint(0);
    }
    if let Some((leader_id, leader_epoch)) = leader {
        w.uvarint(1);
        w.uvarint(4 + 4 + 1);
        w.buf.put_i32(leader_id);
        w.buf.put_i32(leader_epoch);
        w.uvarint(0);
    }
}

fn put_response_tagged_fields(
    w: &mut Writer<'_>,
    version: i16,
    data: &FetchResponseData,
) -> Result<(), WireError> {
    if version < 16 || data.node_endpoints.is_empty() {
        w.uvarint(0);
        return Ok(());
    }
    w.uvarint(1);
    w.uvarint(0); // tag 0: node_endpoints
                  // The field's size comes first: encode it into a side buffer (a few bytes per node).
    let mut field = Writer {
        buf: BytesMut::new(),
        version,
        flexible: true,
        record_gaps: Vec::new(),
        record_bytes: 0,
    };
    field.array_len(Some(data.node_endpoints.len()))?;
    for node in &data.node_endpoints {
        field.buf.put_i32(node.node_id);
        field.string(Some(&node.host))?;
        field.buf.put_i32(node.port);
        field.string(node.rack.as_deref())?;
        field.uvarint(0);
    }
    let field_bytes = u32::try_from(field.buf.len())
        .map_err(|_| encode_error(version, "node endpoints".into()))?;
    w.uvarint(field_bytes);
    w.buf.put_slice(&field.buf);
    Ok(())
}

/// Patches the size prefix and slices the framing buffer around the record gaps.
fn finish(w: Writer<'_>) -> Result<FetchResponseFrame, WireError> {
    let Writer {
        mut buf,
        record_gaps,
        record_bytes,
        ..
    } = w;
    let total_bytes = buf.len() + record_bytes;
    let size = total_bytes - FRAME_PREFIX_BYTES;
    let size_i32 = i32::try_from(size).map_err(|_| WireError::ResponseTooLarge { size })?;
    buf[..FRAME_PREFIX_BYTES].copy_from_slice(&size_i32.to_be_bytes());
    let framing = buf.freeze();
    let mut pieces = Vec::with_capacity(2 * record_gaps.len() + 1);
    let mut framing_at = 0;
    for (gap_at, records) in record_gaps {
        let non_empty = records.iter().filter(|r| !r.is_empty());
        if non_empty.clone().next().is_none() {
            continue; // nothing to splice: keep the framing contiguous
        }
        pieces.push(framing.slice(framing_at..gap_at));
        pieces.extend(non_empty.cloned());
        framing_at = gap_at;
    }
    pieces.push(framing.slice(framing_at..));
    // Paired check: the pieces must add up to what the size prefix announced.
    debug_assert_eq!(pieces.iter().map(Bytes::len).sum::<usize>(), total_bytes);
    Ok(FetchResponseFrame {
        pieces,
        total_bytes,
    })
}
