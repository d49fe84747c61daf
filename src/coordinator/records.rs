//! The records of `__consumer_offsets`, byte for byte as Kafka writes them, so tools that
//! read the topic (and a later migration) understand it:
//!
//! ```text
//! OffsetCommitKey   v1: version i16 | group string | topic string | partition i32
//! OffsetCommitValue v3: version i16 | offset i64 | leader_epoch i32 | metadata string
//!                       | commit_timestamp i64
//! GroupMetadataKey  v2: version i16 | group string
//! GroupMetadataValue v3: version i16 | protocol_type string | generation i32
//!                       | protocol nullable string | leader nullable string
//!                       | current_state_timestamp i64 | members array of
//!                         (member_id string | group_instance_id nullable string
//!                          | client_id string | client_host string | rebalance_timeout i32
//!                          | session_timeout i32 | subscription bytes | assignment bytes)
//! ```
//!
//! A null value is a tombstone (offset deleted, group deleted). Decoding reads untrusted
//! bytes (a corrupt log): every length is checked against what remains before slicing,
//! and older value versions (OffsetCommitValue v0–v3, GroupMetadataValue v0–v3) are read.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};

/// Members kept per group record: a bound on what replay allocates.
pub const MEMBERS_PER_RECORD_MAX: usize = 10_000;

/// A decoded key of `__consumer_offsets`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

/// A committed offset as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Only in value v1 (explicit retention of OffsetCommit v2–v4); -1 otherwise.
    pub expire_timestamp_ms: i64,
}

/// One member in a group record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's metadata as stored after each completed rebalance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

fn put_string(buf: &mut BytesMut, s: &str) {
    let len = i16::try_from(s.len()).expect("string over 32 KiB in a group record");
    buf.put_i16(len);
    buf.put_slice(s.as_bytes());
}

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    let len = i32::try_from(b.len()).expect("bytes over 2 GiB in a group record");
    buf.put_i32(len);
    buf.put_slice(b);
}

pub fn encode_offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut buf = BytesMut::with_capacity(2 + 2 + group.len() + 2 + topic.len() + 4);
    buf.put_i16(1);
    put_string(&mut buf, group);
    put_string(&mut buf, topic);
    buf.put_i32(partition);
    buf.freeze()
}

pub fn encode_group_key(group: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + group.len());
    buf.put_i16(2);
    put_string(&mut buf, group);
    buf.freeze()
}

/// Value v3, or v1 when the commit carries an explicit expiry (as Kafka chooses).
pub fn encode_offset_value(v: &OffsetValue) -> Bytes {
    let mut buf = BytesMut::with_capacity(32 + v.metadata.len());
    if v.expire_timestamp_ms >= 0 {
        buf.put_i16(1);
        buf.put_i64(v.offset);
        put_string(&mut buf, &v.metadata);
        buf.put_i64(v.commit_timestamp_ms);
        buf.put_i64(v.expire_timestamp_ms);
    } else {
        buf.put_i16(3);
        buf.put_i64(v.offset);
        buf.put_i32(v.leader_epoch);
        put_string(&mut buf, &v.metadata);
        buf.put_i64(v.commit_timestamp_ms);
    }
    buf.freeze()
}

pub fn encode_group_value(v: &GroupValue) -> Bytes {
    let mut buf = BytesMut::with_capacity(64 + v.members.len() * 128);
    buf.put_i16(3);
    put_string(&mut buf, &v.protocol_type);
    buf.put_i32(v.generation);
    put_nullable_string(&mut buf, v.protocol.as_deref());
    put_nullable_string(&mut buf, v.leader.as_deref());
    buf.put_i64(v.current_state_timestamp_ms);
    buf.put_i32(i32::try_from(v.members.len()).expect("member count fits i32"));
    for m in &v.members {
        put_string(&mut buf, &m.member_id);
        put_nullable_string(&mut buf, m.group_instance_id.as_deref());
        put_string(&mut buf, &m.client_id);
        put_string(&mut buf, &m.client_host);
        buf.put_i32(m.rebalance_timeout_ms);
        buf.put_i32(m.session_timeout_ms);
        put_bytes(&mut buf, &m.subscription);
        put_bytes(&mut buf, &m.assignment);
    }
    buf.freeze()
}

/// A bounds-checked cursor over untrusted bytes.
struct Reader {
    buf: Bytes,
    pos: usize,
}

fn corrupt(what: &str) -> Error {
    Error::Engine(shards::Error::CorruptBatch(format!(
        "__consumer_offsets record: {what}"
    )))
}

impl Reader {
    fn new(buf: Bytes) -> Reader {
        Reader { buf, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.buf.len() - self.pos < n {
            return Err(corrupt("truncated"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn nullable_string(&mut self) -> Result<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let raw = self.take(len as usize)?;
        let s = std::str::from_utf8(raw).map_err(|_| corrupt("string is not UTF-8"))?;
        Ok(Some(s.to_string()))
    }
    fn string(&mut self) -> Result<String> {
        self.nullable_string()?
            .ok_or_else(|| corrupt("null string"))
    }
    fn bytes(&mut self) -> Result<Bytes> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        let len = len as usize;
        if self.buf.len() - self.pos < len {
            return Err(corrupt("bytes truncated"));
        }
        let b = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(b)
    }
}

pub fn decode_key(key: Bytes) -> Result<RecordKey> {
    let mut r = Reader::new(key);
    match r.i16()? {
        0 | 1 => Ok(RecordKey::Offset {
            group: r.string()?,
            topic: r.string()?,
            partition: r.i32()?,
        }),
        2 => Ok(RecordKey::Group { group: r.string()? }),
        v => Err(corrupt(&format!("unknown key version {v}"))),
    }
}

pub fn decode_offset_value(value: Bytes) -> Result<OffsetValue> {
    let mut r = Reader::new(value);
    let version = r.i16()?;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp_ms = r.i64()?;
    let expire_timestamp_ms = match version {
        1 => r.i64()?,
        0 | 2 | 3 => -1,
        v => return Err(corrupt(&format!("unknown offset value version {v}"))),
    };
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
        expire_timestamp_ms,
    })
}

pub fn decode_group_value(value: Bytes) -> Result<GroupValue> {
    let mut r = Reader::new(value);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(corrupt(&format!("unknown group value version {version}")));
    }
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let current_state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?;
    // Each member takes at least 2+2+2+2+4+4+4+4 bytes: check before allocating.
    let count = usize::try_from(count).map_err(|_| corrupt("negative member count"))?;
    if count > MEMBERS_PER_RECORD_MAX || count * 24 > r.buf.len() - r.pos {
        return Err(corrupt("member count beyond the record"));
    }
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

/// `Utils.abs(groupId.hashCode) % partitions`, exactly as Kafka maps a group to its
/// `__consumer_offsets` partition (Java's String.hashCode over UTF-16 code units).
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    assert!(partitions > 0, "offsets topic without partitions");
    let hash = java_string_hashcode(group);
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    let p = abs % partitions;
    assert!((0..partitions).contains(&p));
    p
}

pub fn java_string_hashcode(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(unit as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hashcode_matches_known_values() {
        // "hello" and "polygenelubricants" (== Integer.MIN_VALUE) are well-known JVM values;
        // the others were computed independently (Python over UTF-16 code units).
        assert_eq!(java_string_hashcode(""), 0);
        assert_eq!(java_string_hashcode("hello"), 99162322);
        assert_eq!(java_string_hashcode("polygenelubricants"), i32::MIN);
        assert_eq!(java_string_hashcode("console-consumer-1"), 35782224);
        // A non-BMP character hashes as its two UTF-16 surrogates.
        assert_eq!(java_string_hashcode("😀"), 0xD83D * 31 + 0xDE00);
    }

    #[test]
    fn partition_for_is_kafka_utils_abs_mod() {
        assert_eq!(partition_for("polygenelubricants", 50), 0); // abs(MIN) == 0
        assert_eq!(partition_for("hello", 50), 99162322 % 50);
        assert_eq!(partition_for("console-consumer-1", 50), 24);
        for g in ["a", "group", "x-y-z", ""] {
            assert!((0..7).contains(&partition_for(g, 7)));
        }
    }

    #[test]
    fn offset_records_round_trip() {
        let key = encode_offset_key("g", "topic", 7);
        assert_eq!(
            decode_key(key).unwrap(),
            RecordKey::Offset {
                group: "g".into(),
                topic: "topic".into(),
                partition: 7
            }
        );
        for expire in [-1, 99] {
            let v = OffsetValue {
                offset: 42,
                leader_epoch: if expire < 0 { 3 } else { -1 },
                metadata: "meta".into(),
                commit_timestamp_ms: 1_000,
                expire_timestamp_ms: expire,
            };
            assert_eq!(decode_offset_value(encode_offset_value(&v)).unwrap(), v);
        }
    }

    #[test]
    fn group_records_round_trip() {
        assert_eq!(
            decode_key(encode_group_key("grp")).unwrap(),
            RecordKey::Group {
                group: "grp".into()
            }
        );
        let v = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp_ms: 77,
            members: vec![MemberValue {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(decode_group_value(encode_group_value(&v)).unwrap(), v);
    }

    #[test]
    fn hostile_records_are_errors_not_panics() {
        assert!(decode_key(Bytes::new()).is_err());
        assert!(decode_key(Bytes::from_static(&[0, 9, 0, 5, b'a'])).is_err());
        // A group value declaring 2^31-1 members in a few bytes.
        let mut v = BytesMut::new();
        v.put_i16(3);
        put_string(&mut v, "consumer");
        v.put_i32(1);
        v.put_i16(-1);
        v.put_i16(-1);
        v.put_i64(0);
        v.put_i32(i32::MAX);
        assert!(decode_group_value(v.freeze()).is_err());
        let full = encode_offset_value(&OffsetValue {
            offset: 1,
            leader_epoch: 1,
            metadata: "m".into(),
            commit_timestamp_ms: 1,
            expire_timestamp_ms: -1,
        });
        for cut in 0..full.len() {
            assert!(decode_offset_value(full.slice(..cut)).is_err(), "cut {cut}");
        }
    }
}
