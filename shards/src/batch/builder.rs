//! Builds v2 batches: for tests, benchmarks and internal topics. The broker never rebuilds a
//! client's batch.

use super::{
    codec, record, BatchHeader, Compression, BATCH_HEADER_LEN, CONTROL_BIT, CRC_POS, CRC_START,
    LOG_OVERHEAD, MAGIC_V2, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, TRANSACTIONAL_BIT,
};
use bytes::Bytes;

/// Accumulates records, then encodes one batch with base offset 0 and leader epoch -1
/// (the broker patches both on append).
///
/// ```
/// use shards::batch::{BatchBuilder, Compression};
/// let mut b = BatchBuilder::new(Compression::Lz4);
/// b.push(Some(b"k"), Some(b"v"), &[("h", Some(b"x"))], 1_700_000_000_000);
/// let batch = b.build();
/// shards::batch::validate_produced(&batch, 1 << 20).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct BatchBuilder {
    compression: Compression,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    control: bool,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
    count: i32,
    /// Encoded records, uncompressed.
    records: Vec<u8>,
}

impl BatchBuilder {
    pub fn new(compression: Compression) -> Self {
        BatchBuilder {
            compression,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            transactional: false,
            control: false,
            base_timestamp: None,
            max_timestamp: -1,
            count: 0,
            records: Vec::new(),
        }
    }

    /// Idempotent producer fields (`producerId`, `producerEpoch`, `baseSequence`).
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Sets attribute bit 4 (part of a transaction).
    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    /// Sets attribute bit 5 (control records: transaction markers).
    pub fn control(mut self, control: bool) -> Self {
        self.control = control;
        self
    }

    /// Number of records pushed so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends a record with the next offset delta. The first record's timestamp becomes the
    /// batch's base timestamp, as in Kafka's `MemoryRecordsBuilder`.
    pub fn push(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
        timestamp_ms: i64,
    ) -> &mut Self {
        let base_timestamp = *self.base_timestamp.get_or_insert(timestamp_ms);
        self.max_timestamp = self.max_timestamp.max(timestamp_ms);
        let timestamp_delta = timestamp_ms.wrapping_sub(base_timestamp);
        record::encode_record(
            &mut self.records,
            self.count,
            timestamp_delta,
            key,
            value,
            headers,
        );
        self.count = self.count.checked_add(1).expect("too many records");
        self
    }

    fn attributes(&self) -> i16 {
        let mut attributes = self.compression.id();
        if self.transactional {
            attributes |= TRANSACTIONAL_BIT;
        }
        if self.control {
            attributes |= CONTROL_BIT;
        }
        attributes
    }

    /// Encodes the batch. An empty builder yields a batch with record count 0 and
    /// `lastOffsetDelta` -1, which [`super::validate_stored`] accepts and
    /// [`super::validate_produced`] rejects.
    pub fn build(&self) -> Bytes {
        let data = codec::compress(self.compression, &self.records);
        let total_len = BATCH_HEADER_LEN + data.len();
        let header = BatchHeader {
            base_offset: 0,
            batch_length: i32::try_from(total_len - LOG_OVERHEAD).expect("batch over 2 GiB"),
            partition_leader_epoch: -1,
            magic: MAGIC_V2,
            crc: 0,
            attributes: self.attributes(),
            last_offset_delta: self.count - 1,
            base_timestamp: self.base_timestamp.unwrap_or(-1),
            max_timestamp: self.max_timestamp,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            record_count: self.count,
        };
        let mut out = vec![0u8; BATCH_HEADER_LEN];
        header.write(&mut out);
        out.extend_from_slice(&data);
        let crc = crc32c::crc32c(&out[CRC_START..]);
        out[CRC_POS..][..4].copy_from_slice(&crc.to_be_bytes());
        debug_assert_eq!(out.len(), total_len);
        Bytes::from(out)
    }
}
