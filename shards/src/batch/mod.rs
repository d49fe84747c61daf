//! Kafka RecordBatch v2 (magic 2): header parsing, validation, in-place patching and record
//! decoding. Batches are stored verbatim (DESIGN.md invariant 2), so this module works on
//! byte slices and never re-encodes a batch; [`BatchBuilder`] exists for tests, benchmarks
//! and internal topics.
//!
//! Layout (all integers big-endian; offsets are byte positions in the batch):
//!
//! ```text
//!  0 baseOffset int64            12 partitionLeaderEpoch int32   16 magic int8
//!  8 batchLength int32           17 crc uint32 (CRC-32C of bytes 21..end)
//! 21 attributes int16            23 lastOffsetDelta int32        27 baseTimestamp int64
//! 35 maxTimestamp int64          43 producerId int64             51 producerEpoch int16
//! 53 baseSequence int32          57 recordCount int32            61 records...
//! ```
//!
//! `batchLength` counts the bytes after itself, so a batch is `batchLength + 12` bytes long.

mod builder;
mod codec;
mod control;
mod record;
#[cfg(test)]
mod tests;

pub use builder::BatchBuilder;
pub use control::{
    build_end_txn_marker, control_record_type, parse_end_txn_marker, ControlRecordType,
    EndTxnMarker,
};
pub use record::Record;

use crate::error::{Error, Result};
use bytes::Bytes;

/// Bytes from `baseOffset` through `recordCount`: the fixed part of every v2 batch.
pub const BATCH_HEADER_LEN: usize = 61;
/// `baseOffset` (8) + `batchLength` (4): the bytes not counted by `batchLength`.
pub const LOG_OVERHEAD: usize = 12;
/// The only record format this broker stores or accepts.
pub const MAGIC_V2: i8 = 2;

// Field positions inside the header.
const BASE_OFFSET_POS: usize = 0;
const BATCH_LENGTH_POS: usize = 8;
const PARTITION_LEADER_EPOCH_POS: usize = 12;
const MAGIC_POS: usize = 16;
const CRC_POS: usize = 17;
const ATTRIBUTES_POS: usize = 21;
const LAST_OFFSET_DELTA_POS: usize = 23;
const BASE_TIMESTAMP_POS: usize = 27;
const MAX_TIMESTAMP_POS: usize = 35;
const PRODUCER_ID_POS: usize = 43;
const PRODUCER_EPOCH_POS: usize = 51;
const BASE_SEQUENCE_POS: usize = 53;
const RECORD_COUNT_POS: usize = 57;
/// The CRC covers everything from the attributes to the end of the batch.
const CRC_START: usize = ATTRIBUTES_POS;

// Attribute bits.
const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// Kafka's `RecordBatch.NO_SEQUENCE`.
pub const NO_SEQUENCE: i32 = -1;
/// Kafka's `RecordBatch.NO_PRODUCER_ID`.
pub const NO_PRODUCER_ID: i64 = -1;
/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// The codec of a batch's records (attribute bits 0..2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// All codecs, for tests and benchmarks that iterate over them.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The value stored in attribute bits 0..2.
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    pub fn from_id(id: i16) -> Result<Compression> {
        match id {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            _ => Err(Error::CorruptBatch(format!(
                "unknown compression codec {id}"
            ))),
        }
    }
}

/// What the batch timestamps mean (attribute bit 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The fixed 61-byte header of a v2 batch, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn read_i64(buf: &[u8], pos: usize) -> i64 {
    i64::from_be_bytes(buf[pos..pos + 8].try_into().expect("8 bytes"))
}
fn read_i32(buf: &[u8], pos: usize) -> i32 {
    i32::from_be_bytes(buf[pos..pos + 4].try_into().expect("4 bytes"))
}
fn read_i16(buf: &[u8], pos: usize) -> i16 {
    i16::from_be_bytes(buf[pos..pos + 2].try_into().expect("2 bytes"))
}

fn corrupt(msg: impl Into<String>) -> Error {
    Error::CorruptBatch(msg.into())
}

impl BatchHeader {
    /// Decodes the header at the start of `buf`. Checks only what makes the header itself
    /// meaningful: at least 61 bytes, magic 2, and a `batchLength` that covers the header.
    /// It does not check the CRC nor that `buf` holds the whole batch.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(corrupt(format!(
                "{} bytes is shorter than the {BATCH_HEADER_LEN}-byte batch header",
                buf.len()
            )));
        }
        let magic = buf[MAGIC_POS] as i8;
        if magic != MAGIC_V2 {
            return Err(corrupt(format!("unsupported magic {magic}, expected 2")));
        }
        let batch_length = read_i32(buf, BATCH_LENGTH_POS);
        if batch_length < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(corrupt(format!(
                "batchLength {batch_length} is shorter than the header"
            )));
        }
        Ok(BatchHeader {
            base_offset: read_i64(buf, BASE_OFFSET_POS),
            batch_length,
            partition_leader_epoch: read_i32(buf, PARTITION_LEADER_EPOCH_POS),
            magic,
            crc: read_i32(buf, CRC_POS) as u32,
            attributes: read_i16(buf, ATTRIBUTES_POS),
            last_offset_delta: read_i32(buf, LAST_OFFSET_DELTA_POS),
            base_timestamp: read_i64(buf, BASE_TIMESTAMP_POS),
            max_timestamp: read_i64(buf, MAX_TIMESTAMP_POS),
            producer_id: read_i64(buf, PRODUCER_ID_POS),
            producer_epoch: read_i16(buf, PRODUCER_EPOCH_POS),
            base_sequence: read_i32(buf, BASE_SEQUENCE_POS),
            record_count: read_i32(buf, RECORD_COUNT_POS),
        })
    }

    /// Encodes the header into the first 61 bytes of `buf` (the inverse of [`parse`]).
    ///
    /// [`parse`]: BatchHeader::parse
    pub fn write(&self, buf: &mut [u8]) {
        assert!(buf.len() >= BATCH_HEADER_LEN);
        buf[BASE_OFFSET_POS..][..8].copy_from_slice(&self.base_offset.to_be_bytes());
        buf[BATCH_LENGTH_POS..][..4].copy_from_slice(&self.batch_length.to_be_bytes());
        buf[PARTITION_LEADER_EPOCH_POS..][..4]
            .copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        buf[MAGIC_POS] = self.magic as u8;
        buf[CRC_POS..][..4].copy_from_slice(&self.crc.to_be_bytes());
        buf[ATTRIBUTES_POS..][..2].copy_from_slice(&self.attributes.to_be_bytes());
        buf[LAST_OFFSET_DELTA_POS..][..4].copy_from_slice(&self.last_offset_delta.to_be_bytes());
        buf[BASE_TIMESTAMP_POS..][..8].copy_from_slice(&self.base_timestamp.to_be_bytes());
        buf[MAX_TIMESTAMP_POS..][..8].copy_from_slice(&self.max_timestamp.to_be_bytes());
        buf[PRODUCER_ID_POS..][..8].copy_from_slice(&self.producer_id.to_be_bytes());
        buf[PRODUCER_EPOCH_POS..][..2].copy_from_slice(&self.producer_epoch.to_be_bytes());
        buf[BASE_SEQUENCE_POS..][..4].copy_from_slice(&self.base_sequence.to_be_bytes());
        buf[RECORD_COUNT_POS..][..4].copy_from_slice(&self.record_count.to_be_bytes());
    }

    /// The whole batch size in bytes: `batchLength` plus the 12 bytes before it.
    pub fn total_len(&self) -> usize {
        debug_assert!(self.batch_length >= 0);
        self.batch_length as usize + LOG_OVERHEAD
    }

    /// The offset of the last record slot (`baseOffset + lastOffsetDelta`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset.wrapping_add(self.last_offset_delta as i64)
    }

    /// The codec; an error for the reserved ids 5..7.
    pub fn compression(&self) -> Result<Compression> {
        Compression::from_id(self.attributes & COMPRESSION_MASK)
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Whether the batch comes from an idempotent or transactional producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// The sequence of the last record, wrapping past `i32::MAX` to 0 as Kafka's
    /// `DefaultRecordBatch.incrementSequence` does; `NO_SEQUENCE` stays `NO_SEQUENCE`.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences are non-negative and wrap from
/// `i32::MAX` to 0.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// Checks what every stored batch must satisfy: the header parses, `batchLength` matches the
/// slice exactly, and the CRC-32C over attributes..end matches.
fn check_frame_and_crc(batch: &[u8]) -> Result<BatchHeader> {
    let header = BatchHeader::parse(batch)?;
    if header.total_len() != batch.len() {
        return Err(corrupt(format!(
            "batchLength {} implies {} bytes but the batch has {}",
            header.batch_length,
            header.total_len(),
            batch.len()
        )));
    }
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    if crc != header.crc {
        return Err(corrupt(format!(
            "CRC mismatch: stored {:#010x}, computed {crc:#010x}",
            header.crc
        )));
    }
    Ok(header)
}

/// Full validation of one freshly produced batch; `batch` must be exactly one batch.
///
/// Checks: magic 2, `batchLength` consistent with the slice, CRC-32C over attributes..end,
/// `recordCount == lastOffsetDelta + 1 >= 1`, size `<= max_bytes`, a known codec, no control
/// bit (clients may not write control records), and a non-negative `baseSequence` when a
/// producer id is set (both as Kafka's `LogValidator` for client appends). For
/// uncompressed batches every record is parsed and must end exactly at the batch end, with
/// offset deltas `0..count` in order.
///
/// Divergence from Kafka (DESIGN.md invariant 2): compressed batches are not decompressed
/// here, so their record framing is checked only when [`records`] is called.
pub fn validate_produced(batch: &[u8], max_bytes: usize) -> Result<BatchHeader> {
    if batch.len() > max_bytes {
        return Err(Error::BatchTooLarge {
            size: batch.len(),
            limit: max_bytes,
        });
    }
    let header = check_frame_and_crc(batch)?;
    if header.record_count < 1 {
        return Err(corrupt(format!("record count {} < 1", header.record_count)));
    }
    if header.last_offset_delta.checked_add(1) != Some(header.record_count) {
        return Err(corrupt(format!(
            "record count {} != lastOffsetDelta {} + 1",
            header.record_count, header.last_offset_delta
        )));
    }
    if header.is_control() {
        return Err(corrupt("clients may not write control batches"));
    }
    if header.has_producer_id() && header.base_sequence < 0 {
        return Err(corrupt(format!(
            "invalid sequence {} for producer id {}",
            header.base_sequence, header.producer_id
        )));
    }
    let compression = header.compression()?;
    if compression == Compression::None {
        record::scan_uncompressed(&batch[BATCH_HEADER_LEN..], header.record_count)?;
    }
    Ok(header)
}

/// The lighter check used by recovery and by followers: magic, length and CRC. Gaps in the
/// offsets and empty batches (count 0, left by compaction) are allowed; the records are
/// not parsed. The record count must still be non-negative and not exceed the slot count.
pub fn validate_stored(batch: &[u8]) -> Result<BatchHeader> {
    let header = check_frame_and_crc(batch)?;
    if header.last_offset_delta < -1 || header.record_count < 0 {
        return Err(corrupt(format!(
            "negative lastOffsetDelta {} or record count {}",
            header.last_offset_delta, header.record_count
        )));
    }
    if header.record_count as i64 > header.last_offset_delta as i64 + 1 {
        return Err(corrupt(format!(
            "record count {} exceeds the {} offsets of the batch",
            header.record_count,
            header.last_offset_delta as i64 + 1
        )));
    }
    Ok(header)
}

/// Splits the `records` field of a Produce partition (or a fetched record set) into batches,
/// as zero-copy slices. Fails on a truncated trailing batch, on a magic other than 2, and
/// on more than `max_batches` batches. Only the header is checked; callers validate each
/// batch with [`validate_produced`] or [`validate_stored`].
pub fn split_batches(records: &Bytes, max_batches: usize) -> Result<Vec<(BatchHeader, Bytes)>> {
    let mut batches = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        if batches.len() == max_batches {
            return Err(corrupt(format!(
                "more than {max_batches} batches in one record set"
            )));
        }
        let header = BatchHeader::parse(&records[pos..])?;
        let end = pos
            .checked_add(header.total_len())
            .filter(|end| *end <= records.len())
            .ok_or_else(|| {
                corrupt(format!(
                    "batch at byte {pos} declares {} bytes but {} remain",
                    header.total_len(),
                    records.len() - pos
                ))
            })?;
        batches.push((header, records.slice(pos..end)));
        pos = end;
    }
    debug_assert_eq!(pos, records.len());
    Ok(batches)
}

/// Assigns a batch its place in the log: `baseOffset` and `partitionLeaderEpoch` lie outside
/// the CRC, so the CRC stays valid.
pub fn patch_offset_and_epoch(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    assert!(
        batch.len() >= BATCH_HEADER_LEN,
        "patching a batch shorter than its header"
    );
    batch[BASE_OFFSET_POS..][..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[PARTITION_LEADER_EPOCH_POS..][..4].copy_from_slice(&leader_epoch.to_be_bytes());
    debug_assert_eq!(read_i64(batch, BASE_OFFSET_POS), base_offset);
}

/// Kafka's LogAppendTime: sets attribute bit 3 and `maxTimestamp`, both inside the CRC, so
/// the CRC is recomputed in place. Record timestamps are left as they are; consumers use
/// `maxTimestamp` for every record of a LogAppendTime batch.
pub fn set_log_append_time(batch: &mut [u8], timestamp_ms: i64) {
    assert!(
        batch.len() >= BATCH_HEADER_LEN,
        "patching a batch shorter than its header"
    );
    let attributes = read_i16(batch, ATTRIBUTES_POS) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_POS..][..2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_POS..][..8].copy_from_slice(&timestamp_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[CRC_POS..][..4].copy_from_slice(&crc.to_be_bytes());
}

/// Decodes the records of one batch (decompressing gzip, snappy raw or xerial-framed, LZ4
/// frame, zstd). At most `max_decompressed_bytes` of decompressed record data are produced;
/// a batch that would inflate beyond that is an error. Uncompressed records are zero-copy
/// slices of `batch`. The CRC is not checked here (see [`validate_stored`]); the record
/// framing is: exactly `recordCount` records that end exactly at the data's end.
pub fn records(batch: &Bytes, max_decompressed_bytes: usize) -> Result<Vec<Record>> {
    let header = BatchHeader::parse(batch)?;
    if header.total_len() != batch.len() {
        return Err(corrupt(format!(
            "batchLength implies {} bytes but the batch has {}",
            header.total_len(),
            batch.len()
        )));
    }
    if header.record_count < 0 {
        return Err(corrupt(format!(
            "negative record count {}",
            header.record_count
        )));
    }
    let data = batch.slice(BATCH_HEADER_LEN..);
    let data = match header.compression()? {
        Compression::None => data,
        codec => codec::decompress(codec, &data, max_decompressed_bytes)?,
    };
    record::decode_all(&data, header.record_count)
}
