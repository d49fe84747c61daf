//! Small text files beside the segments: `partition.metadata` (Kafka's format, topic id in
//! Kafka's base64url form) and single-offset checkpoints (`log-start-offset-checkpoint`,
//! `recovery-point-offset-checkpoint`). Kafka keeps the latter two per data directory for
//! all partitions; Riptide keeps them per partition directory, since a partition is owned by
//! one shard and shards share nothing.

use crate::types::{Offset, TopicId};

pub const PARTITION_METADATA: &str = "partition.metadata";
pub const LOG_START_CHECKPOINT: &str = "log-start-offset-checkpoint";
pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
pub const CLEAN_SHUTDOWN_MARKER: &str = ".riptide_cleanshutdown";

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Kafka's `Uuid.toString()`: URL-safe base64 without padding (22 characters).
pub fn topic_id_to_string(id: TopicId) -> String {
    let bytes = id.0.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

pub fn topic_id_from_str(s: &str) -> Option<TopicId> {
    let s = s.as_bytes();
    if s.len() != 22 {
        return None;
    }
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = Vec::with_capacity(16);
    for c in s {
        let v = B64.iter().position(|x| x == c)? as u32;
        bits = bits << 6 | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    let arr: [u8; 16] = out.try_into().ok()?;
    Some(TopicId(uuid::Uuid::from_bytes(arr)))
}

pub fn encode_partition_metadata(id: TopicId) -> Vec<u8> {
    format!("version: 0\ntopic_id: {}\n", topic_id_to_string(id)).into_bytes()
}

pub fn decode_partition_metadata(bytes: &[u8]) -> Option<TopicId> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next()?.trim() != "version: 0" {
        return None;
    }
    topic_id_from_str(lines.next()?.strip_prefix("topic_id: ")?.trim())
}

pub fn encode_offset(offset: Offset) -> Vec<u8> {
    format!("0\n1\n{}\n", offset.0).into_bytes()
}

pub fn decode_offset(bytes: &[u8]) -> Option<Offset> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" || lines.next()?.trim() != "1" {
        return None;
    }
    let v: i64 = lines.next()?.trim().parse().ok()?;
    (v >= 0).then_some(Offset(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_id_roundtrips_in_kafka_form() {
        for _ in 0..100 {
            let id = TopicId(uuid::Uuid::new_v4());
            let s = topic_id_to_string(id);
            assert_eq!(s.len(), 22);
            assert_eq!(topic_id_from_str(&s), Some(id));
            assert_eq!(
                decode_partition_metadata(&encode_partition_metadata(id)),
                Some(id)
            );
        }
        // Kafka's Uuid.ZERO_UUID prints as AAAAAAAAAAAAAAAAAAAAAA.
        assert_eq!(
            topic_id_to_string(TopicId(uuid::Uuid::nil())),
            "AAAAAAAAAAAAAAAAAAAAAA"
        );
        assert_eq!(decode_offset(&encode_offset(Offset(42))), Some(Offset(42)));
        assert_eq!(decode_offset(b"0\n1\n-5\n"), None);
        assert_eq!(decode_offset(b"garbage"), None);
    }
}
