//! Idempotent-producer state of one partition, as Kafka's `ProducerStateManager` and
//! `ProducerAppendInfo`: for each producer id its epoch and the sequence ranges and offsets
//! of its last [`BATCHES_RETAINED`] batches. Pure logic, no I/O: the partition log calls
//! [`ProducerStateTable::check`] before an append, [`ProducerStateTable::update`] after it,
//! and persists [`ProducerStateTable::snapshot`] next to its checkpoints.
//!
//! Kafka's rules (client appends), in the order they are applied:
//! 1. A batch whose epoch equals the producer's and whose `[baseSequence, lastSequence]`
//!    equals one of its last 5 batches is a duplicate (a retry): the broker answers with the
//!    offsets it assigned the first time and appends nothing.
//! 2. An epoch older than the producer's current one is fenced: INVALID_PRODUCER_EPOCH.
//! 3. A new epoch (or a producer with no state) must start at sequence 0. Otherwise:
//!    OUT_OF_ORDER_SEQUENCE_NUMBER when the broker knows an earlier epoch, and
//!    UNKNOWN_PRODUCER_ID when it has no state at all (expired, evicted, removed by
//!    retention). Here Riptide is stricter than current Kafka, whose
//!    `ProducerAppendInfo.checkSequence` accepts any sequence from a producer it has no
//!    state for: Riptide also evicts producers (see Bounds), and a retry of a batch
//!    written before an eviction must not be taken as new. Clients answer
//!    UNKNOWN_PRODUCER_ID by bumping their epoch (KIP-360) and starting again at 0.
//! 4. Within an epoch, `baseSequence` must be the last sequence + 1 (wrapping at
//!    `i32::MAX` to 0), else OUT_OF_ORDER_SEQUENCE_NUMBER.
//!
//! 5. A non-transactional batch while the producer has an open transaction here:
//!    INVALID_TXN_STATE.
//!
//! Control batches (transaction markers, written by the broker for the coordinator) are
//! checked only against a stale epoch; they close the producer's open transaction.
//!
//! Bounds: at most `max_producers` producers; inserting one more evicts the least recently
//! updated producer that has no open transaction (Kafka bounds the table only by expiry;
//! an evicted producer sees UNKNOWN_PRODUCER_ID on its next non-zero sequence, which
//! clients handle by bumping their epoch).

use crate::batch::{increment_sequence, BatchHeader, NO_PRODUCER_EPOCH, NO_SEQUENCE};
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Kafka's `ProducerStateEntry.NumBatchesToRetain`: the in-flight request limit of
/// idempotent producers (`max.in.flight.requests.per.connection` <= 5).
pub const BATCHES_RETAINED: usize = 5;

/// What to do with a batch that passed [`ProducerStateTable::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqCheck {
    /// New and in order (or not from an idempotent producer): append it.
    Append,
    /// A retry of a batch already in the log: answer with its offsets, append nothing.
    /// `log_append_time_ms` is -1 unless the topic uses LogAppendTime.
    Duplicate {
        base_offset: i64,
        last_offset: i64,
        log_append_time_ms: i64,
    },
}

/// A transaction closed by a marker: its first data offset and the marker's offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// One appended batch of a producer, as Kafka's `BatchMetadata`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_append_time_ms: i64,
}

/// The state of one producer id in this partition.
#[derive(Clone, Debug)]
pub struct ProducerEntry {
    pub producer_epoch: i16,
    /// The last data batches of the current epoch, oldest first, at most `BATCHES_RETAINED`.
    pub batches: VecDeque<BatchMetadata>,
    /// The broker time of the last update, for `producer.id.expiration.ms`.
    pub last_update_ms: i64,
    /// The last offset of the last batch (data or control) that updated this entry.
    pub last_offset: i64,
    /// The first offset of the producer's open transaction, if any.
    pub txn_first_offset: Option<i64>,
    /// Position in the LRU order (larger is more recent).
    lru_tick: u64,
}

impl ProducerEntry {
    /// The last sequence appended in the current epoch, `NO_SEQUENCE` if none.
    pub fn last_sequence(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_sequence)
    }

    fn find_duplicate(&self, first_sequence: i32, last_sequence: i32) -> Option<&BatchMetadata> {
        self.batches
            .iter()
            .find(|b| b.first_sequence == first_sequence && b.last_sequence == last_sequence)
    }
}

/// Equality ignores the LRU position, which is renumbered on restore.
impl PartialEq for ProducerEntry {
    fn eq(&self, other: &Self) -> bool {
        self.producer_epoch == other.producer_epoch
            && self.batches == other.batches
            && self.last_update_ms == other.last_update_ms
            && self.last_offset == other.last_offset
            && self.txn_first_offset == other.txn_first_offset
    }
}
impl Eq for ProducerEntry {}

/// Kafka's `ProducerAppendInfo.inSequence`.
fn in_sequence(last_sequence: i32, next_sequence: i32) -> bool {
    next_sequence as i64 == last_sequence as i64 + 1
        || (next_sequence == 0 && last_sequence == i32::MAX)
}

/// The idempotent-producer state of one partition.
#[derive(Clone, Debug)]
pub struct ProducerStateTable {
    max_producers: usize,
    entries: HashMap<i64, ProducerEntry>,
    /// `lru_tick` -> producer id, oldest first.
    lru: BTreeMap<u64, i64>,
    tick_next: u64,
}

/// Equal when they hold the same producers in the same LRU order (tick values aside).
impl PartialEq for ProducerStateTable {
    fn eq(&self, other: &Self) -> bool {
        self.max_producers == other.max_producers
            && self.entries == other.entries
            && self.lru.values().eq(other.lru.values())
    }
}
impl Eq for ProducerStateTable {}

impl ProducerStateTable {
    /// An empty table holding at most `max_producers` (>= 1) producers.
    pub fn new(max_producers: usize) -> Self {
        assert!(
            max_producers >= 1,
            "a producer table must hold at least one producer"
        );
        ProducerStateTable {
            max_producers,
            entries: HashMap::new(),
            lru: BTreeMap::new(),
            tick_next: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn max_producers(&self) -> usize {
        self.max_producers
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.entries.get(&producer_id)
    }

    /// The smallest first offset of an open transaction: the last stable offset bound.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.entries
            .values()
            .filter_map(|e| e.txn_first_offset)
            .min()
    }

    /// Checks a batch before it is appended (Kafka's rules for client appends, see the
    /// module documentation). Batches without a producer id always pass.
    pub fn check(&self, h: &BatchHeader) -> Result<SeqCheck> {
        if !h.has_producer_id() {
            return Ok(SeqCheck::Append);
        }
        let entry = self.entries.get(&h.producer_id);
        let current_epoch = entry.map_or(NO_PRODUCER_EPOCH, |e| e.producer_epoch);
        if let Some(e) = entry.filter(|e| e.producer_epoch == h.producer_epoch) {
            if !h.is_control() {
                if let Some(d) = e.find_duplicate(h.base_sequence, h.last_sequence()) {
                    return Ok(SeqCheck::Duplicate {
                        base_offset: d.base_offset,
                        last_offset: d.last_offset,
                        log_append_time_ms: d.log_append_time_ms,
                    });
                }
            }
        }
        if entry.is_some() && h.producer_epoch < current_epoch {
            return Err(Error::InvalidProducerEpoch {
                producer_id: h.producer_id,
                producer_epoch: h.producer_epoch,
                current_epoch,
            });
        }
        if h.is_control() {
            return Ok(SeqCheck::Append);
        }
        self.check_sequence(h, entry, current_epoch)?;
        if !h.is_transactional() && entry.is_some_and(|e| e.txn_first_offset.is_some()) {
            return Err(Error::InvalidTxnState {
                producer_id: h.producer_id,
            });
        }
        Ok(SeqCheck::Append)
    }

    /// Kafka's `ProducerAppendInfo.checkSequence`.
    fn check_sequence(
        &self,
        h: &BatchHeader,
        entry: Option<&ProducerEntry>,
        current_epoch: i16,
    ) -> Result<()> {
        if h.producer_epoch != current_epoch {
            if h.base_sequence == 0 {
                return Ok(());
            }
            if current_epoch != NO_PRODUCER_EPOCH {
                return Err(Error::OutOfOrderSequence {
                    producer_id: h.producer_id,
                    producer_epoch: h.producer_epoch,
                    sequence: h.base_sequence,
                    last_sequence: NO_SEQUENCE,
                });
            }
            return Err(Error::UnknownProducerId {
                producer_id: h.producer_id,
                sequence: h.base_sequence,
            });
        }
        // Same epoch. Kafka accepts any sequence when the current epoch is unknown (-1).
        if current_epoch == NO_PRODUCER_EPOCH {
            return Ok(());
        }
        let last_sequence = entry.map_or(NO_SEQUENCE, |e| e.last_sequence());
        if !in_sequence(last_sequence, h.base_sequence) {
            return Err(Error::OutOfOrderSequence {
                producer_id: h.producer_id,
                producer_epoch: h.producer_epoch,
                sequence: h.base_sequence,
                last_sequence,
            });
        }
        Ok(())
    }

    /// Records a batch appended at `base_offset` (after [`check`] returned `Append`, or on a
    /// follower / during recovery, where no check is made). `now_ms` is the broker time
    /// used for expiry; `log_append_time_ms` is -1 unless the topic uses LogAppendTime.
    ///
    /// A control batch (transaction marker) closes the producer's open transaction; the
    /// closed range is returned so the log can record aborted transactions (the caller
    /// knows from the marker record whether it was an ABORT).
    ///
    /// [`check`]: ProducerStateTable::check
    pub fn update(
        &mut self,
        h: &BatchHeader,
        base_offset: i64,
        now_ms: i64,
        log_append_time_ms: i64,
    ) -> Option<CompletedTxn> {
        if !h.has_producer_id() {
            return None;
        }
        let last_offset = base_offset + h.last_offset_delta as i64;
        if !self.entries.contains_key(&h.producer_id) {
            self.make_room();
        }
        let tick = self.tick();
        let entry = self
            .entries
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry {
                producer_epoch: h.producer_epoch,
                batches: VecDeque::with_capacity(BATCHES_RETAINED),
                last_update_ms: now_ms,
                last_offset,
                txn_first_offset: None,
                lru_tick: tick,
            });
        if entry.lru_tick != tick {
            let removed = self.lru.remove(&entry.lru_tick);
            debug_assert_eq!(removed, Some(h.producer_id));
            entry.lru_tick = tick;
        }
        self.lru.insert(tick, h.producer_id);
        if entry.producer_epoch != h.producer_epoch {
            // A new epoch starts a new sequence space (Kafka's maybeUpdateProducerEpoch).
            entry.batches.clear();
            entry.producer_epoch = h.producer_epoch;
        }
        entry.last_update_ms = now_ms;
        entry.last_offset = last_offset;
        let mut completed = None;
        if h.is_control() {
            completed = entry
                .txn_first_offset
                .take()
                .map(|first_offset| CompletedTxn {
                    producer_id: h.producer_id,
                    first_offset,
                    last_offset,
                });
        } else {
            if entry.batches.len() == BATCHES_RETAINED {
                entry.batches.pop_front();
            }
            entry.batches.push_back(BatchMetadata {
                first_sequence: h.base_sequence,
                last_sequence: h.last_sequence(),
                base_offset,
                last_offset,
                log_append_time_ms,
            });
            if h.is_transactional() && entry.txn_first_offset.is_none() {
                entry.txn_first_offset = Some(base_offset);
            }
        }
        debug_assert!(entry.batches.len() <= BATCHES_RETAINED);
        debug_assert!(self.entries.len() <= self.max_producers);
        debug_assert_eq!(self.entries.len(), self.lru.len());
        completed
    }

    fn tick(&mut self) -> u64 {
        let tick = self.tick_next;
        self.tick_next += 1;
        tick
    }

    /// Evicts least recently updated producers until one more fits. Producers with an open
    /// transaction are kept (evicting them would lose the last stable offset bound) unless
    /// every producer has one.
    fn make_room(&mut self) {
        while self.entries.len() >= self.max_producers {
            let victim = self
                .lru
                .values()
                .copied()
                .find(|pid| self.entries[pid].txn_first_offset.is_none())
                .or_else(|| self.lru.values().next().copied())
                .expect("a full table is not empty");
            self.remove(victim);
        }
    }

    fn remove(&mut self, producer_id: i64) -> Option<ProducerEntry> {
        let entry = self.entries.remove(&producer_id)?;
        let removed = self.lru.remove(&entry.lru_tick);
        debug_assert_eq!(removed, Some(producer_id));
        Some(entry)
    }

    fn remove_where(&mut self, mut doomed: impl FnMut(&ProducerEntry) -> bool) -> usize {
        let victims: Vec<i64> = self
            .entries
            .iter()
            .filter(|(_, e)| doomed(e))
            .map(|(pid, _)| *pid)
            .collect();
        for pid in &victims {
            self.remove(*pid);
        }
        victims.len()
    }

    /// Kafka's `producer.id.expiration.ms`: drops producers without an open transaction
    /// whose last update is at least `producer_id_expiration_ms` old. Returns how many.
    pub fn expire(&mut self, now_ms: i64, producer_id_expiration_ms: i64) -> usize {
        self.remove_where(|e| {
            e.txn_first_offset.is_none()
                && now_ms.saturating_sub(e.last_update_ms) >= producer_id_expiration_ms
        })
    }

    /// Retention or DeleteRecords moved the log start offset: drops producers whose last
    /// batch lies wholly before it (Kafka's `truncateHead`). Returns how many.
    pub fn remove_before(&mut self, log_start_offset: i64) -> usize {
        self.remove_where(|e| e.last_offset < log_start_offset)
    }

    /// The log was truncated: everything at and after `offset` is gone. Drops the retained
    /// batches whose last offset is at or after `offset`, and open transactions that began
    /// there.
    ///
    /// Approximation (Kafka instead reloads the state from an older snapshot and replays the
    /// log): only the last 5 batches are known, so a producer whose retained batches (or
    /// last marker) are all truncated is removed rather than rolled back to older batches
    /// still in the log. Its next non-zero sequence then gets UNKNOWN_PRODUCER_ID, which
    /// clients recover from by bumping their epoch; no duplicate is ever accepted as new
    /// because the duplicates it could send were truncated too.
    pub fn truncate_after(&mut self, offset: i64) {
        let mut emptied = Vec::new();
        for (pid, entry) in self.entries.iter_mut() {
            entry.batches.retain(|b| b.last_offset < offset);
            if entry.txn_first_offset.is_some_and(|first| first >= offset) {
                entry.txn_first_offset = None;
            }
            if entry.last_offset >= offset {
                match entry.batches.back() {
                    Some(b) => entry.last_offset = b.last_offset,
                    None => emptied.push(*pid),
                }
            }
        }
        for pid in emptied {
            self.remove(pid);
        }
        debug_assert!(self.entries.values().all(|e| e.last_offset < offset));
    }
}

// Snapshot format, big-endian:
//   magic "RPST" | version u16 | crc32c u32 of everything after it |
//   snapshot_offset i64 | max_producers u32 | producer_count u32 | producers...
// each producer, least recently updated first:
//   producer_id i64 | epoch i16 | last_update_ms i64 | last_offset i64 |
//   txn_first_offset i64 (-1: none) | batch_count u8 | batches...
// each batch: first_sequence i32 | last_sequence i32 | base_offset i64 | last_offset i64 |
//   log_append_time_ms i64
const SNAPSHOT_MAGIC: &[u8; 4] = b"RPST";
const SNAPSHOT_VERSION: u16 = 1;
const SNAPSHOT_HEADER_LEN: usize = 4 + 2 + 4;
const SNAPSHOT_ENTRY_LEN_MIN: usize = 8 + 2 + 8 + 8 + 8 + 1;
const SNAPSHOT_BATCH_LEN: usize = 4 + 4 + 8 + 8 + 8;

fn snapshot_error(msg: impl Into<String>) -> Error {
    Error::CorruptSnapshot(msg.into())
}

/// A bounds-checked reader over an untrusted snapshot.
struct SnapshotReader<'a> {
    buf: &'a [u8],
}

impl SnapshotReader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        if self.buf.len() < N {
            return Err(snapshot_error("truncated"));
        }
        let (head, rest) = self.buf.split_at(N);
        self.buf = rest;
        Ok(head.try_into().expect("N bytes"))
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take::<1>()?[0])
    }
    fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.take()?))
    }
}

impl ProducerStateTable {
    /// Serializes the table as of log offset `last_offset` (the caller's choice, returned
    /// by [`restore`]): versioned and CRC-32C protected.
    ///
    /// [`restore`]: ProducerStateTable::restore
    pub fn snapshot(&self, last_offset: i64) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&last_offset.to_be_bytes());
        body.extend_from_slice(&(self.max_producers as u32).to_be_bytes());
        body.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for pid in self.lru.values() {
            let e = &self.entries[pid];
            body.extend_from_slice(&pid.to_be_bytes());
            body.extend_from_slice(&e.producer_epoch.to_be_bytes());
            body.extend_from_slice(&e.last_update_ms.to_be_bytes());
            body.extend_from_slice(&e.last_offset.to_be_bytes());
            body.extend_from_slice(&e.txn_first_offset.unwrap_or(-1).to_be_bytes());
            body.push(e.batches.len() as u8);
            for b in &e.batches {
                body.extend_from_slice(&b.first_sequence.to_be_bytes());
                body.extend_from_slice(&b.last_sequence.to_be_bytes());
                body.extend_from_slice(&b.base_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
                body.extend_from_slice(&b.log_append_time_ms.to_be_bytes());
            }
        }
        let mut out = Vec::with_capacity(SNAPSHOT_HEADER_LEN + body.len());
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Parses a snapshot written by [`snapshot`]; returns the table and its snapshot offset.
    /// The LRU order is preserved; `max_producers` is the one in force when it was taken.
    ///
    /// [`snapshot`]: ProducerStateTable::snapshot
    pub fn restore(bytes: &[u8]) -> Result<(ProducerStateTable, i64)> {
        if bytes.len() < SNAPSHOT_HEADER_LEN || &bytes[..4] != SNAPSHOT_MAGIC {
            return Err(snapshot_error("bad magic"));
        }
        let version = u16::from_be_bytes([bytes[4], bytes[5]]);
        if version != SNAPSHOT_VERSION {
            return Err(snapshot_error(format!("unsupported version {version}")));
        }
        let crc = u32::from_be_bytes(bytes[6..10].try_into().expect("4 bytes"));
        let body = &bytes[SNAPSHOT_HEADER_LEN..];
        if crc32c::crc32c(body) != crc {
            return Err(snapshot_error("CRC mismatch"));
        }
        let mut r = SnapshotReader { buf: body };
        let snapshot_offset = r.i64()?;
        let max_producers = r.u32()? as usize;
        let count = r.u32()? as usize;
        if max_producers == 0 || count > max_producers {
            return Err(snapshot_error(format!(
                "{count} producers, limit {max_producers}"
            )));
        }
        if count > r.buf.len() / SNAPSHOT_ENTRY_LEN_MIN {
            return Err(snapshot_error(format!(
                "{count} producers in {} bytes",
                r.buf.len()
            )));
        }
        let mut table = ProducerStateTable::new(max_producers);
        for _ in 0..count {
            let (pid, mut entry) = read_entry(&mut r)?;
            entry.lru_tick = table.tick();
            table.lru.insert(entry.lru_tick, pid);
            if table.entries.insert(pid, entry).is_some() {
                return Err(snapshot_error(format!("producer {pid} twice")));
            }
        }
        if !r.buf.is_empty() {
            return Err(snapshot_error(format!("{} trailing bytes", r.buf.len())));
        }
        debug_assert_eq!(table.len(), count);
        Ok((table, snapshot_offset))
    }
}

fn read_entry(r: &mut SnapshotReader<'_>) -> Result<(i64, ProducerEntry)> {
    let pid = r.i64()?;
    let producer_epoch = r.i16()?;
    let last_update_ms = r.i64()?;
    let last_offset = r.i64()?;
    let txn_first_offset = match r.i64()? {
        -1 => None,
        offset if offset >= 0 => Some(offset),
        offset => return Err(snapshot_error(format!("transaction offset {offset}"))),
    };
    let batch_count = r.u8()? as usize;
    if pid < 0 || batch_count > BATCHES_RETAINED {
        return Err(snapshot_error(format!(
            "producer {pid} with {batch_count} batches"
        )));
    }
    if batch_count * SNAPSHOT_BATCH_LEN > r.buf.len() {
        return Err(snapshot_error("truncated batches"));
    }
    let mut batches = VecDeque::with_capacity(BATCHES_RETAINED);
    for _ in 0..batch_count {
        batches.push_back(BatchMetadata {
            first_sequence: r.i32()?,
            last_sequence: r.i32()?,
            base_offset: r.i64()?,
            last_offset: r.i64()?,
            log_append_time_ms: r.i64()?,
        });
    }
    let entry = ProducerEntry {
        producer_epoch,
        batches,
        last_update_ms,
        last_offset,
        txn_first_offset,
        lru_tick: 0,
    };
    Ok((pid, entry))
}

/// The sequence after `sequence` advanced by `count` records (for callers that build
/// batches for a producer, e.g. tests and the perf harness).
pub fn next_sequence(sequence: i32, count: i32) -> i32 {
    increment_sequence(sequence, count)
}

#[cfg(test)]
mod tests;
