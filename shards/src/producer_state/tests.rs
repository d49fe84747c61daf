//! Tests of the producer-state table: Kafka's sequence rules case by case, then property
//! tests against a history of everything appended.

use super::*;
use proptest::prelude::*;

const MAGIC: i8 = 2;

/// The header of a data batch of `count` records from `(pid, epoch)` starting at `seq`.
fn hdr(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
    BatchHeader {
        base_offset: 0,
        batch_length: 49,
        partition_leader_epoch: 0,
        magic: MAGIC,
        crc: 0,
        attributes: 0,
        last_offset_delta: count - 1,
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        record_count: count,
    }
}

fn txn(mut h: BatchHeader) -> BatchHeader {
    h.attributes |= 0x10;
    h
}

fn marker(pid: i64, epoch: i16) -> BatchHeader {
    let mut h = hdr(pid, epoch, -1, 1);
    h.attributes |= 0x30;
    h
}

/// Checks, and appends at `*next_offset` when the check says so.
fn produce(t: &mut ProducerStateTable, h: BatchHeader, next_offset: &mut i64) -> Result<SeqCheck> {
    let verdict = t.check(&h)?;
    if verdict == SeqCheck::Append {
        t.update(&h, *next_offset, 0, -1);
        *next_offset += h.last_offset_delta as i64 + 1;
    }
    Ok(verdict)
}

#[test]
fn in_order_batches_append_and_retries_of_the_last_five_are_duplicates() {
    let mut t = ProducerStateTable::new(10);
    let mut offset = 100;
    for i in 0..7 {
        assert_eq!(
            produce(&mut t, hdr(1, 0, i * 3, 3), &mut offset).unwrap(),
            SeqCheck::Append
        );
    }
    assert_eq!(offset, 121);
    // Batches 2..=6 are retained: retries get their original offsets.
    for i in 2..7 {
        let verdict = t.check(&hdr(1, 0, i * 3, 3)).unwrap();
        let base = 100 + i as i64 * 3;
        assert_eq!(
            verdict,
            SeqCheck::Duplicate {
                base_offset: base,
                last_offset: base + 2,
                log_append_time_ms: -1
            }
        );
    }
    // Batch 1 is too old to be recognized: out of order, as in Kafka.
    assert!(matches!(
        t.check(&hdr(1, 0, 3, 3)),
        Err(Error::OutOfOrderSequence {
            sequence: 3,
            last_sequence: 20,
            ..
        })
    ));
    // Same base sequence, different length: not a duplicate.
    assert!(matches!(
        t.check(&hdr(1, 0, 18, 2)),
        Err(Error::OutOfOrderSequence { .. })
    ));
    assert_eq!(t.get(1).unwrap().batches.len(), BATCHES_RETAINED);
}

#[test]
fn gaps_are_out_of_order() {
    let mut t = ProducerStateTable::new(10);
    let mut offset = 0;
    produce(&mut t, hdr(1, 0, 0, 5), &mut offset).unwrap();
    match t.check(&hdr(1, 0, 6, 1)) {
        Err(Error::OutOfOrderSequence {
            producer_id: 1,
            sequence: 6,
            last_sequence: 4,
            ..
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(t.check(&hdr(1, 0, 5, 1)).unwrap(), SeqCheck::Append);
}

#[test]
fn unknown_producer_with_nonzero_sequence() {
    let t = ProducerStateTable::new(10);
    assert!(matches!(
        t.check(&hdr(9, 0, 5, 1)),
        Err(Error::UnknownProducerId {
            producer_id: 9,
            sequence: 5
        })
    ));
    assert_eq!(t.check(&hdr(9, 0, 0, 1)).unwrap(), SeqCheck::Append);
    // No producer id: nothing to check.
    assert_eq!(t.check(&hdr(-1, -1, -1, 1)).unwrap(), SeqCheck::Append);
}

#[test]
fn epochs_fence_and_restart_sequences() {
    let mut t = ProducerStateTable::new(10);
    let mut offset = 0;
    produce(&mut t, hdr(1, 3, 0, 2), &mut offset).unwrap();
    // Stale epoch, even for what would be a retry.
    assert!(matches!(
        t.check(&hdr(1, 2, 0, 2)),
        Err(Error::InvalidProducerEpoch {
            producer_id: 1,
            producer_epoch: 2,
            current_epoch: 3
        })
    ));
    // A new epoch must start at 0.
    assert!(matches!(
        t.check(&hdr(1, 4, 2, 1)),
        Err(Error::OutOfOrderSequence { .. })
    ));
    assert_eq!(
        produce(&mut t, hdr(1, 4, 0, 1), &mut offset).unwrap(),
        SeqCheck::Append
    );
    let e = t.get(1).unwrap();
    assert_eq!(
        (e.producer_epoch, e.batches.len(), e.last_sequence()),
        (4, 1, 0)
    );
    // The old epoch's batch is no longer a duplicate, and its epoch is fenced.
    assert!(matches!(
        t.check(&hdr(1, 3, 0, 2)),
        Err(Error::InvalidProducerEpoch { .. })
    ));
}

#[test]
fn sequences_wrap_at_i32_max() {
    let mut t = ProducerStateTable::new(10);
    let mut offset = 0;
    let mut first = hdr(1, 0, 0, 1);
    t.update(&first, 0, 0, -1);
    first = hdr(1, 0, i32::MAX - 1, 3); // i32::MAX - 1, i32::MAX, 0
                                        // Force the state to just before the wrap, as a long-lived producer would reach it.
    t.update(&hdr(1, 0, i32::MAX - 5, 4), 1, 0, -1);
    assert_eq!(
        produce(&mut t, first, &mut offset).unwrap(),
        SeqCheck::Append
    );
    assert_eq!(t.get(1).unwrap().last_sequence(), 0);
    assert_eq!(t.check(&hdr(1, 0, 1, 1)).unwrap(), SeqCheck::Append);
    assert!(matches!(
        t.check(&hdr(1, 0, i32::MAX - 1, 3)),
        Ok(SeqCheck::Duplicate { .. })
    ));
}

#[test]
fn log_append_time_is_returned_for_duplicates() {
    let mut t = ProducerStateTable::new(10);
    let h = hdr(1, 0, 0, 1);
    t.update(&h, 42, 1_000, 777);
    assert_eq!(
        t.check(&h).unwrap(),
        SeqCheck::Duplicate {
            base_offset: 42,
            last_offset: 42,
            log_append_time_ms: 777
        }
    );
}

#[test]
fn lru_eviction_keeps_the_table_bounded() {
    let mut t = ProducerStateTable::new(2);
    t.update(&hdr(1, 0, 0, 1), 0, 0, -1);
    t.update(&hdr(2, 0, 0, 1), 1, 0, -1);
    t.update(&hdr(1, 0, 1, 1), 2, 0, -1); // 1 is now the most recent
    t.update(&hdr(3, 0, 0, 1), 3, 0, -1); // evicts 2
    assert_eq!(t.len(), 2);
    assert!(t.get(1).is_some() && t.get(3).is_some() && t.get(2).is_none());
    assert!(matches!(
        t.check(&hdr(2, 0, 1, 1)),
        Err(Error::UnknownProducerId { .. })
    ));
}

#[test]
fn eviction_spares_open_transactions() {
    let mut t = ProducerStateTable::new(2);
    t.update(&txn(hdr(1, 0, 0, 1)), 0, 0, -1);
    t.update(&hdr(2, 0, 0, 1), 1, 0, -1);
    t.update(&hdr(3, 0, 0, 1), 2, 0, -1); // 1 is older but in a transaction: 2 goes
    assert!(t.get(1).is_some() && t.get(2).is_none());
    assert_eq!(t.first_unstable_offset(), Some(0));
}

#[test]
fn transactions_open_and_close_with_markers() {
    let mut t = ProducerStateTable::new(10);
    let mut offset = 10;
    produce(&mut t, txn(hdr(1, 0, 0, 2)), &mut offset).unwrap();
    produce(&mut t, txn(hdr(1, 0, 2, 2)), &mut offset).unwrap();
    assert_eq!(t.first_unstable_offset(), Some(10));
    assert!(matches!(
        t.check(&hdr(1, 0, 4, 1)),
        Err(Error::InvalidTxnState { producer_id: 1 })
    ));
    assert!(matches!(t.check(&marker(1, 0)), Ok(SeqCheck::Append)));
    // A marker of a stale epoch is fenced.
    t.update(&hdr(2, 5, 0, 1), 50, 0, -1);
    assert!(matches!(
        t.check(&marker(2, 4)),
        Err(Error::InvalidProducerEpoch { .. })
    ));
    assert_eq!(
        t.update(&marker(1, 0), offset, 0, -1),
        Some(CompletedTxn {
            producer_id: 1,
            first_offset: 10,
            last_offset: 14
        })
    );
    offset += 1;
    assert_eq!(t.first_unstable_offset(), None);
    // A second marker closes nothing.
    assert_eq!(t.update(&marker(1, 0), offset, 0, -1), None);
    // The marker did not disturb the sequence.
    assert_eq!(t.check(&hdr(1, 0, 4, 1)).unwrap(), SeqCheck::Append);
    // A marker with a bumped epoch (fencing) restarts the sequence space.
    t.update(&marker(1, 1), 100, 0, -1);
    assert!(matches!(
        t.check(&hdr(1, 1, 4, 1)),
        Err(Error::OutOfOrderSequence { .. })
    ));
    assert_eq!(t.check(&hdr(1, 1, 0, 1)).unwrap(), SeqCheck::Append);
}

#[test]
fn expiry_spares_recent_and_transactional_producers() {
    let mut t = ProducerStateTable::new(10);
    t.update(&hdr(1, 0, 0, 1), 0, 1_000, -1);
    t.update(&hdr(2, 0, 0, 1), 1, 5_000, -1);
    t.update(&txn(hdr(3, 0, 0, 1)), 2, 1_000, -1);
    assert_eq!(t.expire(6_000, 4_999), 1);
    assert!(t.get(1).is_none() && t.get(2).is_some() && t.get(3).is_some());
    assert_eq!(t.expire(6_000, 1_000), 1);
    assert_eq!(t.len(), 1);
}

#[test]
fn truncation_drops_batches_and_emptied_producers() {
    let mut t = ProducerStateTable::new(10);
    let mut offset = 0;
    for i in 0..4 {
        produce(&mut t, hdr(1, 0, i * 2, 2), &mut offset).unwrap(); // offsets 0..8
    }
    produce(&mut t, txn(hdr(2, 0, 0, 2)), &mut offset).unwrap(); // offsets 8, 9
    t.truncate_after(5); // keeps batches ending at 1 and 3; batch 4..5 is gone
    let e = t.get(1).unwrap();
    assert_eq!(e.batches.len(), 2);
    assert_eq!(e.last_sequence(), 3);
    assert_eq!(e.last_offset, 3);
    assert!(t.get(2).is_none());
    assert_eq!(t.first_unstable_offset(), None);
    // The producer's retry of a truncated batch is now appended again, in order.
    assert_eq!(t.check(&hdr(1, 0, 4, 2)).unwrap(), SeqCheck::Append);
}

#[test]
fn log_start_offset_removes_producers() {
    let mut t = ProducerStateTable::new(10);
    t.update(&hdr(1, 0, 0, 5), 0, 0, -1);
    t.update(&hdr(2, 0, 0, 5), 5, 0, -1);
    assert_eq!(t.remove_before(5), 1);
    assert!(t.get(1).is_none() && t.get(2).is_some());
    assert_eq!(t.remove_before(9), 0);
}

#[test]
fn snapshot_round_trip_and_corruption() {
    let mut t = ProducerStateTable::new(3);
    let mut offset = 0;
    for pid in [5, 6, 7, 5] {
        let seq = t.get(pid).map_or(0, |e| e.last_sequence() + 1);
        produce(&mut t, hdr(pid, 1, seq, 2), &mut offset).unwrap();
    }
    t.update(&txn(hdr(8, 0, 0, 1)), offset, 9, 123); // evicts 6
    let bytes = t.snapshot(offset + 1);
    let (restored, at) = ProducerStateTable::restore(&bytes).unwrap();
    assert_eq!(at, offset + 1);
    assert_eq!(restored, t);
    assert_eq!(restored.snapshot(offset + 1), bytes, "LRU order survives");
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x40;
        assert!(
            ProducerStateTable::restore(&bad).is_err(),
            "flip at {i} accepted"
        );
    }
    for cut in 0..bytes.len() {
        assert!(ProducerStateTable::restore(&bytes[..cut]).is_err());
    }
    let empty = ProducerStateTable::new(1).snapshot(0);
    assert_eq!(ProducerStateTable::restore(&empty).unwrap().0.len(), 0);
}

/// An operation of a producer: which producer, which epoch, and how it picks the sequence.
#[derive(Clone, Debug)]
enum SeqPick {
    Next,
    Retry(usize),
    Any(i32),
}

fn ops() -> impl Strategy<Value = Vec<(i64, i16, SeqPick, i32)>> {
    let pick = prop_oneof![
        4 => Just(SeqPick::Next),
        2 => (0usize..8).prop_map(SeqPick::Retry),
        1 => (0i32..40).prop_map(SeqPick::Any),
    ];
    proptest::collection::vec((0i64..4, 0i16..3, pick, 1i32..4), 1..120)
}

/// One appended batch, as the test remembers it.
#[derive(Clone, Copy, Debug)]
struct Appended {
    epoch: i16,
    first: i32,
    last: i32,
    base_offset: i64,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Against the full history of appends (table large enough not to evict):
    /// appended batches are contiguous per epoch and start at 0 in a new epoch, epochs never
    /// go back, duplicates of the last 5 batches are never appended twice and report the
    /// original offsets, and snapshot/restore preserves every answer.
    #[test]
    fn sequences_follow_kafka_rules(ops in ops()) {
        let mut t = ProducerStateTable::new(16);
        let mut history: HashMap<i64, Vec<Appended>> = HashMap::new();
        let mut offset = 0i64;
        for (pid, epoch, pick, count) in ops {
            let past = history.entry(pid).or_default();
            let seq = match pick {
                SeqPick::Next => past.last().map_or(0, |a| if a.epoch == epoch { a.last + 1 } else { 0 }),
                SeqPick::Retry(back) => past.iter().rev().nth(back).map_or(0, |a| a.first),
                SeqPick::Any(s) => s,
            };
            let h = hdr(pid, epoch, seq, count);
            let last = h.last_sequence();
            let verdict = t.check(&h);
            // A restored snapshot gives the same answer.
            let (restored, at) = ProducerStateTable::restore(&t.snapshot(offset)).unwrap();
            prop_assert_eq!(at, offset);
            prop_assert_eq!(format!("{:?}", restored.check(&h)), format!("{verdict:?}"));
            match verdict {
                Ok(SeqCheck::Append) => {
                    if let Some(prev) = past.last() {
                        prop_assert!(epoch >= prev.epoch, "epoch went back");
                        if epoch == prev.epoch {
                            prop_assert_eq!(seq, prev.last + 1);
                        } else {
                            prop_assert_eq!(seq, 0);
                        }
                        let current: Vec<_> = past.iter().rev().take_while(|a| a.epoch == epoch).take(5).collect();
                        prop_assert!(!current.iter().any(|a| a.first == seq && a.last == last), "duplicate appended");
                    } else {
                        prop_assert_eq!(seq, 0);
                    }
                    t.update(&h, offset, 0, -1);
                    past.push(Appended { epoch, first: seq, last, base_offset: offset });
                    offset += count as i64;
                }
                Ok(SeqCheck::Duplicate { base_offset, last_offset, .. }) => {
                    let orig = past.iter().rev().take(5)
                        .find(|a| a.epoch == epoch && a.first == seq && a.last == last);
                    let orig = orig.expect("duplicate of a retained batch");
                    prop_assert_eq!(base_offset, orig.base_offset);
                    prop_assert_eq!(last_offset, orig.base_offset + count as i64 - 1);
                }
                Err(Error::InvalidProducerEpoch { current_epoch, .. }) => {
                    prop_assert!(epoch < current_epoch);
                    prop_assert_eq!(Some(current_epoch), past.last().map(|a| a.epoch));
                }
                Err(Error::UnknownProducerId { .. }) => {
                    prop_assert!(past.is_empty());
                    prop_assert!(seq != 0);
                }
                Err(Error::OutOfOrderSequence { .. }) => prop_assert!(!past.is_empty()),
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
        }
    }

    /// Whatever happens, the table holds at most `max_producers` and its LRU index agrees.
    #[test]
    fn table_stays_bounded(max in 1usize..5, ops in ops()) {
        let mut t = ProducerStateTable::new(max);
        for (i, (pid, epoch, _, count)) in ops.into_iter().enumerate() {
            t.update(&hdr(pid, epoch, 0, count), i as i64 * 4, i as i64, -1);
            prop_assert!(t.len() <= max);
            prop_assert_eq!(t.len(), t.lru.len());
            prop_assert!(t.get(pid).is_some(), "the producer just updated is present");
        }
        let (restored, _) = ProducerStateTable::restore(&t.snapshot(0)).unwrap();
        prop_assert_eq!(restored, t);
    }

    /// Truncation never leaves state at or after the truncation offset.
    #[test]
    fn truncation_leaves_nothing_after(ops in ops(), cut in 0i64..300) {
        let mut t = ProducerStateTable::new(16);
        let mut offset = 0;
        for (pid, epoch, _, count) in ops {
            let seq = t.get(pid).filter(|e| e.producer_epoch == epoch).map_or(0, |e| e.last_sequence() + 1);
            let _ = produce(&mut t, hdr(pid, epoch, seq, count), &mut offset);
        }
        t.truncate_after(cut);
        for pid in 0..4 {
            if let Some(e) = t.get(pid) {
                prop_assert!(e.last_offset < cut);
                prop_assert!(!e.batches.is_empty());
                prop_assert!(e.batches.iter().all(|b| b.last_offset < cut));
            }
        }
    }

    #[test]
    fn arbitrary_snapshot_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = ProducerStateTable::restore(&bytes);
        // Also behind a valid header and CRC, so the body parser is reached.
        let mut framed = b"RPST\0\x01".to_vec();
        framed.extend_from_slice(&crc32c::crc32c(&bytes).to_be_bytes());
        framed.extend_from_slice(&bytes);
        let _ = ProducerStateTable::restore(&framed);
    }
}
