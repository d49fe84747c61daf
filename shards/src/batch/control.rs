//! Control records: the transaction markers (COMMIT / ABORT) that end a producer's
//! transaction in a partition, as Kafka's `EndTransactionMarker` and `ControlRecordType`.
//!
//! A marker is a batch with the control and transactional attribute bits, the producer's id
//! and epoch, `baseSequence` -1, and one record whose key is `version int16 (0) | type int16`
//! and whose value is `version int16 (0) | coordinatorEpoch int32`.

use super::{BatchBuilder, Compression, Record};
use crate::error::{Error, Result};
use bytes::Bytes;

/// The control record version Kafka writes and reads.
const CONTROL_RECORD_VERSION: i16 = 0;
const CONTROL_KEY_LEN: usize = 4;
const END_TXN_VALUE_LEN: usize = 6;

/// The `type` field of a control record's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlRecordType {
    Abort,
    Commit,
    /// KRaft's LEADER_CHANGE, SNAPSHOT_HEADER, SNAPSHOT_FOOTER... (not transaction markers).
    Other(i16),
}

impl ControlRecordType {
    pub fn id(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
            ControlRecordType::Other(id) => id,
        }
    }

    pub fn from_id(id: i16) -> Self {
        match id {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            id => ControlRecordType::Other(id),
        }
    }
}

/// A parsed transaction marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndTxnMarker {
    pub kind: ControlRecordType,
    pub coordinator_epoch: i32,
}

fn corrupt(msg: impl Into<String>) -> Error {
    Error::CorruptBatch(msg.into())
}

/// The type of a control record, from its key. Like Kafka, a key of a newer version is
/// read by its first two fields.
pub fn control_record_type(record: &Record) -> Result<ControlRecordType> {
    let key = record
        .key
        .as_deref()
        .ok_or_else(|| corrupt("control record without key"))?;
    if key.len() < CONTROL_KEY_LEN {
        return Err(corrupt(format!(
            "control record key of {} bytes",
            key.len()
        )));
    }
    let version = i16::from_be_bytes([key[0], key[1]]);
    if version < 0 {
        return Err(corrupt(format!("control record version {version}")));
    }
    Ok(ControlRecordType::from_id(i16::from_be_bytes([
        key[2], key[3],
    ])))
}

/// Parses a COMMIT or ABORT marker record.
pub fn parse_end_txn_marker(record: &Record) -> Result<EndTxnMarker> {
    let kind = control_record_type(record)?;
    if !matches!(kind, ControlRecordType::Abort | ControlRecordType::Commit) {
        return Err(corrupt(format!(
            "control record {kind:?} is not a transaction marker"
        )));
    }
    let value = record
        .value
        .as_deref()
        .ok_or_else(|| corrupt("marker without value"))?;
    if value.len() < END_TXN_VALUE_LEN {
        return Err(corrupt(format!("marker value of {} bytes", value.len())));
    }
    let version = i16::from_be_bytes([value[0], value[1]]);
    if version < 0 {
        return Err(corrupt(format!("marker version {version}")));
    }
    let coordinator_epoch = i32::from_be_bytes(value[2..6].try_into().expect("4 bytes"));
    Ok(EndTxnMarker {
        kind,
        coordinator_epoch,
    })
}

/// Builds the marker batch the broker appends to end `producer_id`'s transaction in a
/// partition (Kafka's `MemoryRecords.withEndTransactionMarker`).
pub fn build_end_txn_marker(
    producer_id: i64,
    producer_epoch: i16,
    kind: ControlRecordType,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> Bytes {
    assert!(matches!(
        kind,
        ControlRecordType::Abort | ControlRecordType::Commit
    ));
    let mut key = [0u8; CONTROL_KEY_LEN];
    key[..2].copy_from_slice(&CONTROL_RECORD_VERSION.to_be_bytes());
    key[2..].copy_from_slice(&kind.id().to_be_bytes());
    let mut value = [0u8; END_TXN_VALUE_LEN];
    value[..2].copy_from_slice(&CONTROL_RECORD_VERSION.to_be_bytes());
    value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
    let mut builder = BatchBuilder::new(Compression::None)
        .producer(producer_id, producer_epoch, super::NO_SEQUENCE)
        .transactional(true)
        .control(true);
    builder.push(Some(&key), Some(&value), &[], timestamp_ms);
    builder.build()
}
