//! Log tests on the simulated storage (model-based properties, power cuts) and on real DMA
//! files. Every test runs inside a glommio executor because the flusher is a glommio task.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::batch::{BatchBuilder, Compression};
use crate::clock::ManualClock;
use crate::storage::{DmaStorage, SimStorage};

pub(crate) fn run<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move { f().await })
        .expect("executor")
        .join()
        .expect("test body panicked");
}

pub(crate) fn make_batch(records: usize, value_bytes: usize, ts: i64, seed: u8) -> BytesMut {
    let mut b = BatchBuilder::new(Compression::None);
    for i in 0..records {
        let value = vec![seed.wrapping_add(i as u8); value_bytes];
        b.push(
            Some(format!("k{i}").as_bytes()),
            Some(&value),
            &[],
            ts + i as i64,
        );
    }
    BytesMut::from(&b.build()[..])
}

fn topic() -> TopicId {
    TopicId(uuid::Uuid::from_u128(0x1234))
}

fn clock() -> Rc<ManualClock> {
    Rc::new(ManualClock::new(1_700_000_000_000))
}

async fn open_sim(
    s: &SimStorage,
    config: LogConfig,
    clock: Rc<ManualClock>,
) -> Rc<Log<SimStorage>> {
    open_with(s, config, clock, Rc::new(ShardBudgets::default())).await
}

/// `n` logs of one shard (`/data/t-0` ..), default config, sharing `budgets`.
async fn open_shard_logs(
    s: &SimStorage,
    n: usize,
    clock: Rc<ManualClock>,
    budgets: &Rc<ShardBudgets>,
) -> Vec<Rc<Log<SimStorage>>> {
    let mut logs = Vec::with_capacity(n);
    for p in 0..n {
        let log = Log::open(
            s.clone(),
            PathBuf::from(format!("/data/t-{p}")),
            topic(),
            LogConfig::default(),
            clock.clone(),
            budgets.clone(),
        )
        .await
        .expect("open");
        logs.push(log);
    }
    logs
}

async fn open_with(
    s: &SimStorage,
    config: LogConfig,
    clock: Rc<ManualClock>,
    budgets: Rc<ShardBudgets>,
) -> Rc<Log<SimStorage>> {
    Log::open(
        s.clone(),
        PathBuf::from("/data/t-0"),
        topic(),
        config,
        clock,
        budgets,
    )
    .await
    .expect("open")
}

/// Reads the whole log from the log start in small steps and returns each batch.
async fn read_all<S: Storage>(log: &Log<S>) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    let end = log.log_end_offset();
    let mut guard = 0;
    while at < end {
        let r = log.read(at, end, 3000).await.expect("read");
        if r.chunks.is_empty() {
            break;
        }
        for c in &r.chunks {
            for (h, b) in batch::split_batches(c, usize::MAX).expect("split") {
                batch::validate_stored(&b).expect("served batch is valid");
                if h.last_offset() >= at.0 {
                    out.push(b);
                }
            }
        }
        assert!(r.next_offset > at, "read made no progress");
        at = r.next_offset;
        guard += 1;
        assert!(guard < 100_000);
    }
    out
}

#[test]
fn append_read_roundtrip_and_offsets() {
    run(|| async {
        let s = SimStorage::new();
        let log = open_sim(&s, LogConfig::default(), clock()).await;
        let mut expected = Vec::new();
        for i in 0..20 {
            let info = log
                .append(
                    make_batch(1 + i % 5, 100 + i * 37, 1000 + i as i64, i as u8),
                    LeaderEpoch(3),
                )
                .unwrap();
            assert_eq!(
                info.base_offset.0,
                expected
                    .iter()
                    .map(|(n, _): &(usize, Bytes)| *n as i64)
                    .sum::<i64>()
            );
            assert_eq!(
                info.last_offset.0,
                info.base_offset.0 + (1 + i % 5) as i64 - 1
            );
            log.wait_durable(info.last_offset).await.unwrap();
            assert!(log.durable_offset() > info.last_offset);
            let r = log
                .read(info.base_offset, log.log_end_offset(), 1 << 20)
                .await
                .unwrap();
            let h = BatchHeader::parse(&r.chunks[0]).unwrap();
            assert_eq!(h.base_offset, info.base_offset.0);
            assert_eq!(h.partition_leader_epoch, 3);
            expected.push((1 + i % 5, r.chunks[0].clone()));
        }
        let all = read_all(&*log).await;
        assert_eq!(all.len(), 20);
        for (a, (_, e)) in all.iter().zip(&expected) {
            assert_eq!(a, e);
        }
        assert_eq!(log.latest_epoch(), Some(LeaderEpoch(3)));
        // Reading past the high watermark returns nothing; out of range is an error.
        let r = log.read(Offset(5), Offset(5), 100).await.unwrap();
        assert!(r.chunks.is_empty());
        assert!(matches!(
            log.read(Offset(10_000), Offset(10_000), 10).await,
            Err(Error::OffsetOutOfRange { .. })
        ));
        // Kafka: the first batch is returned even if larger than max_bytes.
        let r = log.read(Offset(0), log.log_end_offset(), 1).await.unwrap();
        assert_eq!(r.chunks.len(), 1);
        log.close().await.unwrap();
    });
}

#[test]
fn corrupt_batches_are_rejected_before_anything_is_written() {
    run(|| async {
        let s = SimStorage::new();
        let log = open_sim(
            &s,
            LogConfig {
                max_message_bytes: 5000,
                ..LogConfig::default()
            },
            clock(),
        )
        .await;
        let good = make_batch(3, 50, 1, 1);
        let mut bad_crc = good.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0xff;
        assert!(matches!(
            log.append(bad_crc, LeaderEpoch(0)),
            Err(Error::CorruptBatch(_))
        ));
        let mut bad_magic = good.clone();
        bad_magic[16] = 1;
        assert!(matches!(
            log.append(bad_magic, LeaderEpoch(0)),
            Err(Error::CorruptBatch(_))
        ));
        let mut bad_len = good.clone();
        bad_len.truncate(good.len() - 3);
        assert!(log.append(bad_len, LeaderEpoch(0)).is_err());
        assert!(log
            .append(BytesMut::from(&b"short"[..]), LeaderEpoch(0))
            .is_err());
        let big = make_batch(10, 1000, 1, 1);
        assert!(matches!(
            log.append(big, LeaderEpoch(0)),
            Err(Error::BatchTooLarge { .. })
        ));
        assert_eq!(log.log_end_offset(), Offset(0));
        let info = log.append(good, LeaderEpoch(0)).unwrap();
        assert_eq!(info.base_offset, Offset(0));
        log.wait_durable(info.last_offset).await.unwrap();
        assert_eq!(read_all(&*log).await.len(), 1);
    });
}

#[test]
fn roll_retention_and_delete_records() {
    run(|| async {
        let s = SimStorage::new();
        let clk = clock();
        let config = LogConfig {
            segment_bytes: 4000,
            retention_bytes: 10_000,
            retention_ms: 3_600_000,
            ..LogConfig::default()
        };
        let log = open_sim(&s, config.clone(), clk.clone()).await;
        let mut last = Offset(0);
        for i in 0..40 {
            let info = log
                .append(make_batch(2, 400, clk.now_ms(), i), LeaderEpoch(1))
                .unwrap();
            last = info.last_offset;
        }
        log.wait_durable(last).await.unwrap();
        assert!(
            log.segment_count() >= 8,
            "segments: {}",
            log.segment_count()
        );
        let names = s.list_dir(Path::new("/data/t-0")).await.unwrap();
        assert!(names.contains(&"00000000000000000000.log".to_string()));
        assert!(names.contains(&"00000000000000000000.index".to_string()));
        assert!(names.contains(&"partition.metadata".to_string()));
        log.enforce_retention().await.unwrap();
        let start = log.log_start_offset();
        assert!(start > Offset(0));
        assert!(
            log.size_bytes() <= 10_000 + 4000,
            "size {}",
            log.size_bytes()
        );
        assert!(matches!(
            log.read(Offset(0), last, 100).await,
            Err(Error::OffsetOutOfRange { .. })
        ));
        // Time retention: everything ages out, the active segment too (rolled first).
        clk.advance_ms(2 * 3_600_000);
        log.enforce_retention().await.unwrap();
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.log_start_offset(), last.next());
        // DeleteRecords inside the (new) active segment.
        let mut last2 = last;
        for i in 0..3 {
            last2 = log
                .append(make_batch(2, 400, clk.now_ms(), i), LeaderEpoch(1))
                .unwrap()
                .last_offset;
        }
        log.wait_durable(last2).await.unwrap();
        let target = Offset(last2.0 - 1);
        assert_eq!(log.delete_records_before(target).await.unwrap(), target);
        let all = read_all(&*log).await;
        assert_eq!(all.len(), 1);
        drop(log);
        // Log start survives a power cut (it was checkpointed).
        let s2 = s.cut_power(|_| 0);
        let log = open_sim(&s2, config, clk).await;
        assert_eq!(log.log_start_offset(), target);
        assert_eq!(log.log_end_offset(), last2.next());
    });
}

/// Kafka rolls an expired non-empty active segment so that retention can delete it: a
/// partition whose only segment expired must not keep its data forever. The log start
/// moves to the log end, a new empty segment starts there, the old files are gone, and
/// all of it survives a power cut right after (checkpoint and directory fsyncs).
#[test]
fn retention_rolls_and_deletes_an_expired_active_segment() {
    run(|| async {
        let s = SimStorage::new();
        let clk = clock();
        let config = LogConfig {
            retention_ms: 3_600_000,
            ..LogConfig::default()
        };
        let dir = Path::new("/data/t-0");
        let log = open_sim(&s, config.clone(), clk.clone()).await;
        let mut last = Offset(0);
        for i in 0..5 {
            let info = log
                .append(make_batch(3, 200, clk.now_ms(), i), LeaderEpoch(2))
                .unwrap();
            last = info.last_offset;
        }
        log.wait_durable(last).await.unwrap();
        let end = log.log_end_offset();
        assert_eq!(end, Offset(15));
        assert_eq!(log.segment_count(), 1);
        // Not expired yet: nothing moves.
        clk.advance_ms(3_600_000);
        log.enforce_retention().await.unwrap();
        assert_eq!(log.log_start_offset(), Offset(0));
        assert_eq!(read_all(&*log).await.len(), 5);
        // Expired (the newest record is older than retention.ms): rolled and deleted.
        clk.advance_ms(10);
        log.enforce_retention().await.unwrap();
        assert_eq!(log.log_start_offset(), end);
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.size_bytes(), 0);
        assert!(matches!(
            log.read(Offset(0), end, 1000).await,
            Err(Error::OffsetOutOfRange { .. })
        ));
        assert!(log.read(end, end, 1000).await.unwrap().chunks.is_empty());
        let names = s.list_dir(dir).await.unwrap();
        assert!(
            !names.iter().any(|n| n.starts_with("00000000000000000000.")),
            "{names:?}"
        );
        assert!(
            names.contains(&segment_file_name(end.0, "log")),
            "{names:?}"
        );
        // The epoch survives the move of the log start to the log end.
        assert_eq!(log.epoch_entries(), vec![(LeaderEpoch(2), end)]);
        // Nothing more to do for an empty active segment.
        clk.advance_ms(10 * 3_600_000);
        log.enforce_retention().await.unwrap();
        assert_eq!(log.log_start_offset(), end);
        assert_eq!(log.segment_count(), 1);
        // Appends continue at the log end, in the new segment.
        let info = log
            .append(make_batch(2, 100, clk.now_ms(), 9), LeaderEpoch(2))
            .unwrap();
        assert_eq!(info.base_offset, end);
        log.wait_durable(info.last_offset).await.unwrap();
        let after = read_all(&*log).await;
        assert_eq!(after.len(), 1);
        drop(log);
        // A power cut now keeps exactly that: the deletion, the log start and the batch.
        let s2 = s.cut_power(|_| 0);
        let names = s2.list_dir(dir).await.unwrap();
        assert!(
            !names.iter().any(|n| n.starts_with("00000000000000000000.")),
            "{names:?}"
        );
        let log = open_sim(&s2, config, clk).await;
        assert_eq!(log.log_start_offset(), end);
        assert_eq!(log.log_end_offset(), Offset(17));
        assert_eq!(read_all(&*log).await, after);
    });
}

/// Kafka's size rule reaches the active segment too: with `retention.bytes` 0 nothing may
/// stay, so the active segment is rolled and deleted (with earlier closed segments).
#[test]
fn retention_bytes_zero_empties_the_log_including_the_active_segment() {
    run(|| async {
        let s = SimStorage::new();
        let clk = clock();
        let config = LogConfig {
            segment_bytes: 3000,
            retention_ms: -1,
            retention_bytes: 0,
            ..LogConfig::default()
        };
        let log = open_sim(&s, config.clone(), clk.clone()).await;
        let mut last = Offset(0);
        // Batches of ~885 bytes, 3 to a 3000-byte segment: 4 segments. The closed ones are
        // sealed on disk once the 11th batch is durable; the 12th is still in memory when
        // retention runs, and is written by the roll before anything is deleted.
        for i in 0..12 {
            last = log
                .append(make_batch(2, 400, clk.now_ms(), i), LeaderEpoch(0))
                .unwrap()
                .last_offset;
            if i == 10 {
                log.wait_durable(last).await.unwrap();
            }
        }
        assert_eq!(log.segment_count(), 4);
        log.enforce_retention().await.unwrap();
        assert_eq!(log.log_start_offset(), last.next());
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.size_bytes(), 0);
        log.close().await.unwrap();
        drop(log);
        let log = open_sim(&s, config, clk).await;
        assert_eq!(log.log_start_offset(), last.next());
        assert_eq!(log.log_end_offset(), last.next());
        assert!(read_all(&*log).await.is_empty());
    });
}

/// Sealed segments keep no index entries in memory (an idle partition's memory must not
/// grow with its segments): lookups read them back from the `.index` / `.timeindex` files
/// into the shard's cache, which never holds more than its bound, and reads and time
/// lookups still find the right batches, also after a reopen.
#[test]
fn sealed_segment_indexes_are_loaded_lazily_within_a_bound() {
    run(|| async {
        const RESIDENT_MAX: usize = 3;
        let s = SimStorage::new();
        let clk = clock();
        let config = LogConfig {
            segment_bytes: 4000,
            index_interval_bytes: 100,
            ..LogConfig::default()
        };
        // No tail cache: every read goes to the files (and their indexes).
        let budgets = ShardBudgets::with_index_cache(0, 64 << 20, RESIDENT_MAX, 1 << 20);
        let dir = PathBuf::from("/data/t-0");
        let open = || {
            Log::open(
                s.clone(),
                dir.clone(),
                topic(),
                config.clone(),
                clk.clone(),
                budgets.clone(),
            )
        };
        let log = open().await.unwrap();
        let ts0 = clk.now_ms();
        let mut batches = Vec::new(); // (base offset, timestamp, stored bytes)
        for i in 0..60 {
            let ts = ts0 + i * 1000;
            let info = log
                .append(make_batch(2, 300, ts, i as u8), LeaderEpoch(0))
                .unwrap();
            batches.push((info.base_offset, ts));
        }
        let end = log.log_end_offset();
        log.wait_durable(Offset(end.0 - 1)).await.unwrap();
        let stored = read_all(&*log).await;
        assert_eq!(stored.len(), batches.len());
        let sealed_entries = |log: &Log<SimStorage>| {
            let inner = log.inner.borrow();
            let sealed: Vec<_> = inner.segments.values().filter(|s| s.finalized).collect();
            let holding = sealed.iter().filter(|s| s.index.has_entries()).count();
            (sealed.len(), holding)
        };
        let (sealed, holding) = sealed_entries(&log);
        assert!(sealed >= 9, "only {sealed} sealed segments");
        assert_eq!(
            holding, 0,
            "sealed segments keep their index entries in memory"
        );
        // Point reads at every batch, newest first: each sealed segment's index is loaded,
        // at most RESIDENT_MAX stay.
        for ((base, _), want) in batches.iter().zip(&stored).rev() {
            let r = log.read(*base, end, 1).await.unwrap();
            assert_eq!(&r.chunks[0][..], &want[..], "batch at {base}");
            assert!(budgets.resident_indexes().0 <= RESIDENT_MAX);
        }
        let loads = budgets.index_loads();
        assert!(
            loads >= sealed as u64,
            "{loads} index loads for {sealed} sealed segments"
        );
        assert_eq!(budgets.resident_indexes().0, RESIDENT_MAX);
        assert!(budgets.resident_indexes().1 > 0);
        // A resident index is used again without reading its files.
        let (first_base, _) = batches[0];
        log.read(first_base, end, 1).await.unwrap();
        assert_eq!(budgets.index_loads(), loads);
        // Time lookups go through the time index files the same way.
        for (base, ts) in &batches {
            let found = log.offset_for_timestamp(*ts).await.unwrap();
            assert_eq!(found, Some((*base, *ts)));
            assert!(budgets.resident_indexes().0 <= RESIDENT_MAX);
        }
        assert_eq!(
            sealed_entries(&log).1,
            0,
            "lookups kept entries in the segments"
        );
        // Closing and dropping the log drops its cached indexes; a reopened log (recovery
        // checks the index files) keeps only summaries too.
        log.close().await.unwrap();
        drop(log);
        assert_eq!(budgets.resident_indexes(), (0, 0));
        let log = open().await.unwrap();
        assert_eq!(sealed_entries(&log), (sealed, 0));
        assert_eq!(read_all(&*log).await, stored);
        assert_eq!(
            log.max_timestamp(),
            Some((Offset(end.0 - 1), ts0 + 59_000 + 1))
        );
        let (base, ts) = batches[17];
        assert_eq!(
            log.offset_for_timestamp(ts).await.unwrap(),
            Some((base, ts))
        );
        assert!(budgets.resident_indexes().0 <= RESIDENT_MAX);
    });
}

#[test]
fn truncate_then_append_and_epochs() {
    run(|| async {
        let s = SimStorage::new();
        let config = LogConfig {
            segment_bytes: 3000,
            ..LogConfig::default()
        };
        let log = open_sim(&s, config.clone(), clock()).await;
        let mut infos = Vec::new();
        for i in 0..30 {
            let epoch = LeaderEpoch(if i < 10 {
                1
            } else if i < 20 {
                2
            } else {
                4
            });
            infos.push(
                log.append(make_batch(3, 200, 5000 + i as i64, i as u8), epoch)
                    .unwrap(),
            );
        }
        log.wait_durable(infos.last().unwrap().last_offset)
            .await
            .unwrap();
        assert_eq!(
            log.end_offset_for_epoch(LeaderEpoch(1)),
            Some((LeaderEpoch(1), infos[10].base_offset))
        );
        assert_eq!(
            log.end_offset_for_epoch(LeaderEpoch(3)),
            Some((LeaderEpoch(2), infos[20].base_offset))
        );
        // Truncate into the middle of a batch: the whole batch goes.
        let cut = Offset(infos[15].base_offset.0 + 1);
        log.truncate_to(cut).await.unwrap();
        // Kafka: the log end is the target; the rest of the batch leaves a gap.
        assert_eq!(log.log_end_offset(), cut);
        assert_eq!(log.latest_epoch(), Some(LeaderEpoch(2)));
        assert_eq!(read_all(&*log).await.len(), 15);
        let info = log.append(make_batch(1, 10, 1, 9), LeaderEpoch(5)).unwrap();
        assert_eq!(info.base_offset, cut);
        log.wait_durable(info.last_offset).await.unwrap();
        assert_eq!(
            log.end_offset_for_epoch(LeaderEpoch(2)),
            Some((LeaderEpoch(2), info.base_offset))
        );
        log.close().await.unwrap();
        drop(log);
        let log = open_sim(&s, config, clock()).await;
        assert_eq!(log.log_end_offset(), info.last_offset.next());
        assert_eq!(read_all(&*log).await.len(), 16);
        assert_eq!(log.latest_epoch(), Some(LeaderEpoch(5)));
    });
}

#[test]
fn offset_for_timestamp_finds_first_record_at_or_after() {
    run(|| async {
        let s = SimStorage::new();
        let config = LogConfig {
            segment_bytes: 5000,
            index_interval_bytes: 500,
            ..LogConfig::default()
        };
        let log = open_sim(&s, config, clock()).await;
        // Batch i has records with timestamps 1000*i + 0..4.
        for i in 0..50i64 {
            log.append(make_batch(4, 100, 1000 * i, i as u8), LeaderEpoch(0))
                .unwrap();
        }
        let end = log.log_end_offset();
        log.wait_durable(Offset(end.0 - 1)).await.unwrap();
        for (ts, want) in [
            (0, Some((0, 0))),
            (2, Some((2, 2))),
            (4, Some((4, 1000))),
            (37_002, Some((37 * 4 + 2, 37_002))),
            (49_003, Some((199, 49_003))),
            (49_004, None),
        ] {
            let got = log.offset_for_timestamp(ts).await.unwrap();
            assert_eq!(got, want.map(|(o, t)| (Offset(o), t)), "ts {ts}");
        }
        assert_eq!(log.max_timestamp(), Some((Offset(199), 49_003)));
    });
}

/// A clean shutdown leaves a marker, and the next open does not rescan the log: it reads
/// the checkpoints, the indexes and only the tail of the last segment after its last
/// index entry. Without the marker (as after a crash) the segment holding the recovery
/// point is scanned.
#[test]
fn clean_shutdown_means_no_rescan() {
    run(|| async {
        let s = SimStorage::new();
        let log = open_sim(&s, LogConfig::default(), clock()).await;
        for i in 0..200i64 {
            log.append(make_batch(4, 1000, 1000 * i, i as u8), LeaderEpoch(0))
                .unwrap();
        }
        let end = log.log_end_offset();
        log.wait_durable(Offset(end.0 - 1)).await.unwrap();
        log.close().await.unwrap();
        let dir = PathBuf::from("/data/t-0");
        let segment_bytes = s.file_len(&dir.join(format!("{:020}.log", 0))).unwrap();
        assert!(segment_bytes > 700_000, "{segment_bytes}");

        let reopen_reads = || async {
            let before = s.stats().bytes_read;
            let log = open_sim(&s, LogConfig::default(), clock()).await;
            assert_eq!(log.log_end_offset(), end);
            let read = s.stats().bytes_read - before;
            log.close().await.unwrap();
            read
        };
        let clean = reopen_reads().await;
        assert!(
            clean < segment_bytes / 8,
            "a clean open read {clean} bytes of a {segment_bytes}-byte segment"
        );
        s.remove_file(&dir.join(checkpoint::CLEAN_SHUTDOWN_MARKER))
            .await
            .unwrap();
        let crashed = reopen_reads().await;
        assert!(
            crashed >= segment_bytes / 2,
            "an open after a crash read only {crashed} bytes of {segment_bytes}"
        );
    });
}

/// ListOffsets MAX_TIMESTAMP names the record with the largest timestamp, not the last
/// offset of its batch: here the largest timestamp sits on the second of four records, in
/// a batch followed by others with smaller timestamps, and it is the first of two records
/// carrying it.
#[test]
fn max_timestamp_record_is_the_exact_record() {
    run(|| async {
        let s = SimStorage::new();
        let log = open_sim(&s, LogConfig::default(), clock()).await;
        log.append(make_batch(3, 10, 100, 1), LeaderEpoch(0))
            .unwrap();
        let mut b = BatchBuilder::new(Compression::None);
        for ts in [500, 9_000, 9_000, 700] {
            b.push(Some(b"k"), Some(b"v"), &[], ts);
        }
        log.append(BytesMut::from(&b.build()[..]), LeaderEpoch(0))
            .unwrap();
        log.append(make_batch(2, 10, 8_000, 2), LeaderEpoch(0))
            .unwrap();
        let end = log.log_end_offset();
        log.wait_durable(Offset(end.0 - 1)).await.unwrap();
        assert_eq!(
            log.max_timestamp(),
            Some((Offset(6), 9_000)),
            "the index knows the batch"
        );
        assert_eq!(
            log.max_timestamp_record().await.unwrap(),
            Some((Offset(4), 9_000))
        );
    });
}

/// A write that becomes durable wakes the produces waiting for it before the long polls
/// watching the log, even when the long poll started waiting first: glommio runs woken
/// tasks in wake order, and a producer waits for its answer while a consumer only waits
/// for data.
#[test]
fn durability_wakes_acknowledgements_before_long_polls() {
    run(|| async {
        let s = SimStorage::new();
        let log = open_sim(&s, LogConfig::default(), clock()).await;
        s.set_write_delay(std::time::Duration::from_millis(20));
        let last = log
            .append(make_batch(1, 100, 1, 1), LeaderEpoch(0))
            .unwrap()
            .last_offset;
        let order = Rc::new(RefCell::new(Vec::new()));
        let (poll_log, poll_order) = (log.clone(), order.clone());
        let long_poll = glommio::spawn_local(async move {
            loop {
                let seen = poll_log.watch();
                if poll_log.durable_offset() > last {
                    poll_order.borrow_mut().push("long poll");
                    return;
                }
                poll_log.changed_since(seen).await;
            }
        });
        // The long poll is registered before the acknowledgement starts waiting.
        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        assert!(order.borrow().is_empty(), "the write completed too early");
        let (ack_log, ack_order) = (log.clone(), order.clone());
        let ack = glommio::spawn_local(async move {
            ack_log.wait_durable(last).await.unwrap();
            ack_order.borrow_mut().push("ack");
        });
        ack.await;
        long_poll.await;
        assert_eq!(*order.borrow(), vec!["ack", "long poll"]);
    });
}

#[test]
fn in_flight_limit_backpressures_until_written() {
    run(|| async {
        let s = SimStorage::new();
        let config = LogConfig {
            in_flight_bytes_max: 3000,
            buffer_bytes_max: 0,
            flush_policy: FlushPolicy::None,
            ..LogConfig::default()
        };
        let log = open_sim(&s, config, clock()).await;
        log.append(make_batch(2, 1000, 1, 1), LeaderEpoch(0))
            .unwrap();
        assert!(!log.has_space(2100));
        assert!(matches!(
            log.append(make_batch(2, 1000, 1, 1), LeaderEpoch(0)),
            Err(Error::LogInFlightFull { .. })
        ));
        log.wait_for_space(2100).await.unwrap();
        log.append(make_batch(2, 1000, 1, 1), LeaderEpoch(0))
            .unwrap();
        assert_eq!(log.log_end_offset(), Offset(4));
    });
}

#[test]
fn tail_cache_respects_shard_budget() {
    run(|| async {
        let s = SimStorage::new();
        let budgets = ShardBudgets::new(20_000, 64 << 20);
        let logs = open_shard_logs(&s, 4, clock(), &budgets).await;
        for round in 0..20 {
            for log in &logs {
                let info = log
                    .append(make_batch(2, 1000, 1, round), LeaderEpoch(0))
                    .unwrap();
                log.wait_durable(info.last_offset).await.unwrap();
            }
        }
        budgets.evict();
        assert!(
            budgets.tail_cache_bytes() <= 20_000,
            "cache {}",
            budgets.tail_cache_bytes()
        );
        // Evicted batches are still readable from the files.
        for log in &logs {
            assert_eq!(read_all(&**log).await.len(), 20);
        }
        drop(logs);
        assert_eq!(budgets.tail_cache_bytes(), 0);
    });
}

#[test]
fn interval_and_none_policies() {
    run(|| async {
        let s = SimStorage::new();
        let clk = clock();
        let config = LogConfig {
            flush_policy: FlushPolicy::Interval {
                flush_ms: 1_000_000,
                flush_messages: 10,
            },
            ..LogConfig::default()
        };
        let log = open_sim(&s, config, clk.clone()).await;
        let info = log.append(make_batch(4, 10, 1, 1), LeaderEpoch(0)).unwrap();
        log.wait_durable(info.last_offset).await.unwrap(); // does not wait
        for _ in 0..20 {
            futures_lite::future::yield_now().await;
        }
        assert_eq!(
            log.synced_offset(),
            Offset(0),
            "4 messages < flush.messages: no fsync yet"
        );
        let info = log.append(make_batch(8, 10, 1, 1), LeaderEpoch(0)).unwrap();
        for _ in 0..50 {
            futures_lite::future::yield_now().await;
        }
        assert_eq!(log.synced_offset(), info.last_offset.next());
    });
}

#[test]
fn dma_log_roundtrip_and_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    run(move || async move {
        let storage = DmaStorage::init(&root).await.unwrap();
        let path = root.join("t-0");
        let config = LogConfig {
            segment_bytes: 64 << 10,
            // Files grow by zero fills (`always`) many times per segment, on real O_DIRECT.
            preallocate_step_min_bytes: 8 << 10,
            preallocate_step_max_bytes: 32 << 10,
            ..LogConfig::default()
        };
        let log = Log::open(
            storage.clone(),
            path.clone(),
            topic(),
            config.clone(),
            clock(),
            Rc::new(ShardBudgets::default()),
        )
        .await
        .unwrap();
        let mut last = Offset(0);
        for i in 0..200 {
            let info = log
                .append(
                    make_batch(16, 1000 - i, 7 + i as i64, i as u8),
                    LeaderEpoch(2),
                )
                .unwrap();
            last = info.last_offset;
            if i % 10 == 0 {
                log.wait_durable(last).await.unwrap();
            }
        }
        log.wait_durable(last).await.unwrap();
        let before = read_all(&*log).await;
        assert_eq!(before.len(), 200);
        // Without close: unclean reopen must find everything (all was durable).
        drop(log);
        let log = Log::open(
            storage.clone(),
            path.clone(),
            topic(),
            config.clone(),
            clock(),
            Rc::new(ShardBudgets::default()),
        )
        .await
        .unwrap();
        assert_eq!(log.log_end_offset(), last.next());
        let after = read_all(&*log).await;
        assert_eq!(before, after);
        let r = log.offset_for_timestamp(7 + 100).await.unwrap();
        // Batch i holds timestamps 7+i..7+i+15: ts 107 first appears in batch 85, record 15.
        assert_eq!(r, Some((Offset(85 * 16 + 15), 107)));
        let size = log.size_bytes();
        log.close().await.unwrap();
        drop(log);
        // Closed and sealed segments are trimmed to their data: no zero fill finished after
        // a trim and extended a file again.
        let on_disk: u64 = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert_eq!(on_disk, size);
        let log = Log::open(
            storage,
            path,
            topic(),
            config,
            clock(),
            Rc::new(ShardBudgets::default()),
        )
        .await
        .unwrap();
        assert_eq!(read_all(&*log).await, before);
    });
}

/// Model-based property test: random appends, reads, truncations, DeleteRecords,
/// retention, clean reopens and power cuts against a vector of expected batches.
#[test]
fn model_based_random_workloads() {
    let cases: u64 = std::env::var("LOG_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let first: u64 = std::env::var("LOG_MODEL_FIRST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for seed in first..first + cases {
        run(move || async move { model_case(seed).await });
    }
}

async fn model_case(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut s = SimStorage::new();
    let clk = clock();
    let config = LogConfig {
        segment_bytes: rng.gen_range(2000..20_000),
        index_interval_bytes: rng.gen_range(100..3000),
        write_chunk_bytes: 4096 * rng.gen_range(1..5),
        writes_in_flight_max: rng.gen_range(1..5),
        write_step_bytes_max: rng.gen_range(1..40_000),
        // Small preallocation steps: files grow all the time, under `always` by zero fills
        // running ahead of the writes (which must never land on data).
        preallocate_step_min_bytes: 4096 * rng.gen_range(1..4),
        preallocate_step_max_bytes: 4096 * rng.gen_range(4..16),
        dsync_writes: rng.gen_bool(0.5),
        dsync_step_bytes_max: if rng.gen_bool(0.5) {
            rng.gen_range(1..4 * 4096)
        } else {
            0
        },
        shared_syncs: rng.gen_bool(0.5),
        // Lazy writes under `none` (the clock moves with the workload's retention steps).
        write_linger_ms: if rng.gen_bool(0.5) {
            rng.gen_range(1..2000)
        } else {
            0
        },
        flush_policy: if rng.gen_bool(0.7) {
            FlushPolicy::Always
        } else {
            FlushPolicy::None
        },
        // Short enough in a third of the cases for retention to expire whole logs, the
        // active segment included (the clock moves up to 1 s per retention step).
        retention_ms: if rng.gen_bool(0.3) {
            rng.gen_range(0..3000)
        } else {
            LogConfig::default().retention_ms
        },
        ..LogConfig::default()
    };
    // Small caches in half the cases: reads go to the files, and sealed segments' indexes
    // are evicted and read back all the time.
    let budgets = if rng.gen_bool(0.5) {
        ShardBudgets::with_index_cache(
            rng.gen_range(0..20_000),
            64 << 20,
            rng.gen_range(1..3),
            1 << 20,
        )
    } else {
        Rc::new(ShardBudgets::default())
    };
    let mut log = open_with(&s, config.clone(), clk.clone(), budgets.clone()).await;
    // Expected batches (as stored) and the log start.
    let mut model: Vec<Bytes> = Vec::new();
    let mut log_start = 0i64;
    let mut epoch = 0;
    let mut model_end = 0i64;
    let trace = std::env::var("LOG_MODEL_TRACE").is_ok();
    for step in 0..rng.gen_range(20..120) {
        let op = rng.gen_range(0..100);
        if trace {
            eprintln!(
                "seed {seed} step {step} op {op} end {} start {}",
                log.log_end_offset(),
                log.log_start_offset()
            );
        }
        match op {
            0..=59 => {
                if rng.gen_bool(0.05) {
                    epoch += 1;
                }
                let b = make_batch(
                    rng.gen_range(1..6),
                    rng.gen_range(0..900),
                    clk.now_ms(),
                    step as u8,
                );
                let info = log.append(b, LeaderEpoch(epoch)).unwrap();
                let r = log
                    .read(info.base_offset, info.last_offset.next(), 1)
                    .await
                    .unwrap();
                model.push(r.chunks[0].clone());
                model_end = info.last_offset.0 + 1;
                if rng.gen_bool(0.5) {
                    log.wait_durable(info.last_offset).await.unwrap();
                }
            }
            60..=67 => {
                let end = log.log_end_offset().0;
                if end > log_start {
                    let to = rng.gen_range(log_start..=end);
                    if trace {
                        eprintln!("truncate to {to}");
                    }
                    log.truncate_to(Offset(to)).await.unwrap();
                    model.retain(|b| BatchHeader::parse(b).unwrap().last_offset() < to);
                    // Kafka: the log end becomes the target, even inside a removed batch.
                    model_end = to;
                }
            }
            68..=73 => {
                let end = log.log_end_offset().0;
                if end > log_start {
                    let to = rng.gen_range(log_start..=end);
                    log_start = log.delete_records_before(Offset(to)).await.unwrap().0;
                    assert_eq!(log_start, to.max(log_start));
                }
            }
            74..=78 => {
                clk.advance_ms(rng.gen_range(0..1000));
                log.enforce_retention().await.unwrap();
                log_start = log.log_start_offset().0;
            }
            79..=84 => {
                log.close().await.unwrap();
                drop(log);
                log = open_with(&s, config.clone(), clk.clone(), budgets.clone()).await;
                model_end = reopened_end(&model, log_start, model_end, log.log_end_offset());
            }
            85..=89 => {
                // Power cut after everything was made durable: nothing may be lost. (Under
                // `none` nothing is promised: close instead.)
                if config.flush_policy != FlushPolicy::Always {
                    log.close().await.unwrap();
                }
                let end = log.log_end_offset();
                if end.0 > 0 {
                    log.wait_durable(Offset(end.0 - 1)).await.unwrap();
                }
                let keep = rng.gen_range(0..3usize);
                s = s.cut_power(|n| match keep {
                    0 => 0,
                    1 => n,
                    _ => n / 2,
                });
                drop(log);
                log = open_with(&s, config.clone(), clk.clone(), budgets.clone()).await;
                model_end = reopened_end(&model, log_start, model_end, log.log_end_offset());
            }
            _ => {
                let end = log.log_end_offset().0;
                if end > log_start {
                    let at = rng.gen_range(log_start..end);
                    let r = log
                        .read(Offset(at), Offset(end), rng.gen_range(1..5000))
                        .await
                        .unwrap();
                    let want = model
                        .iter()
                        .find(|b| BatchHeader::parse(b).unwrap().last_offset() >= at);
                    match want {
                        // A gap at the end (truncation target past the last batch).
                        None => assert!(r.chunks.is_empty()),
                        Some(w) => {
                            assert_eq!(&r.chunks[0][..w.len().min(r.chunks[0].len())], &w[..])
                        }
                    }
                }
            }
        }
        assert_eq!(
            log.log_start_offset().0,
            log_start,
            "seed {seed} step {step}"
        );
        let expected: Vec<Bytes> = model
            .iter()
            .filter(|b| BatchHeader::parse(b).unwrap().last_offset() >= log_start)
            .cloned()
            .collect();
        let got = read_all(&*log).await;
        if trace {
            let offs = |v: &[Bytes]| {
                v.iter()
                    .map(|b| {
                        let h = BatchHeader::parse(b).unwrap();
                        (h.base_offset, h.last_offset())
                    })
                    .collect::<Vec<_>>()
            };
            eprintln!("got {:?}\nexp {:?}", offs(&got), offs(&expected));
        }
        assert_eq!(got.len(), expected.len(), "seed {seed} step {step}");
        assert!(got == expected, "seed {seed} step {step}: content differs");
        assert_eq!(
            log.log_end_offset().0,
            model_end.max(log_start),
            "seed {seed} step {step}"
        );
    }
}

/// After a reopen the log end is where the last batch ends (a truncation gap is not
/// remembered), but never below the log start, nor below the base of the last segment (an
/// empty segment left by a truncation inside a gap): somewhere in `[last batch end or log
/// start, end before the reopen]`. Returns the reopened end, checked.
fn reopened_end(model: &[Bytes], log_start: i64, end_before: i64, reopened: Offset) -> i64 {
    let low = model
        .last()
        .map_or(0, |b| BatchHeader::parse(b).unwrap().last_offset() + 1)
        .max(log_start);
    assert!(
        low <= reopened.0 && reopened.0 <= end_before.max(low),
        "reopened log end {reopened} outside [{low}, {end_before}]"
    );
    reopened.0
}

#[test]
fn recovery_truncates_at_corruption_and_rebuilds_missing_indexes() {
    run(|| async {
        let s = SimStorage::new();
        let config = LogConfig {
            segment_bytes: 6000,
            index_interval_bytes: 500,
            ..LogConfig::default()
        };
        let log = open_sim(&s, config.clone(), clock()).await;
        let mut infos = Vec::new();
        for i in 0..40 {
            infos.push(
                log.append(make_batch(2, 300, 10 * i as i64, i as u8), LeaderEpoch(1))
                    .unwrap(),
            );
        }
        log.wait_durable(infos.last().unwrap().last_offset)
            .await
            .unwrap();
        let before = read_all(&*log).await;
        drop(log); // crash: no clean-shutdown marker
        let s = s.cut_power(|n| n);
        // A sealed segment loses its index files: rebuilt by a scan.
        let dir = Path::new("/data/t-0");
        let names = s.list_dir(dir).await.unwrap();
        let first_index = names
            .iter()
            .find(|n| n.ends_with(".index"))
            .unwrap()
            .clone();
        s.remove_file(&dir.join(&first_index)).await.unwrap();
        // Flip a byte inside a batch in the last segment (past the recovery point).
        let last_log = names.iter().rfind(|n| n.ends_with(".log")).unwrap().clone();
        let last_base: i64 = last_log[..20].parse().unwrap();
        let in_last: Vec<&AppendInfo> = infos
            .iter()
            .filter(|i| i.base_offset.0 >= last_base)
            .collect();
        assert!(
            in_last.len() >= 3,
            "test needs a few batches in the last segment"
        );
        let victim = in_last[1];
        let victim_pos = in_last[0].bytes as u64 + 70;
        s.corrupt(&dir.join(&last_log), victim_pos, &[0xAA])
            .unwrap();
        let log = open_sim(&s, config, clock()).await;
        assert_eq!(
            log.log_end_offset(),
            victim.base_offset,
            "log must end before the corrupt batch"
        );
        let after = read_all(&*log).await;
        assert_eq!(&after[..], &before[..after.len()]);
        assert_eq!(
            after.len(),
            infos
                .iter()
                .position(|i| i.base_offset == victim.base_offset)
                .unwrap()
        );
        // Index lookups work in the segment whose index was rebuilt.
        let r = log
            .read(infos[3].base_offset, log.log_end_offset(), 1)
            .await
            .unwrap();
        assert_eq!(r.chunks[0], before[3]);
    });
}

#[test]
fn topic_id_mismatch_is_refused() {
    run(|| async {
        let s = SimStorage::new();
        let log = open_sim(&s, LogConfig::default(), clock()).await;
        log.close().await.unwrap();
        drop(log);
        let other = TopicId(uuid::Uuid::from_u128(0x9999));
        let r = Log::open(
            s.clone(),
            PathBuf::from("/data/t-0"),
            other,
            LogConfig::default(),
            clock(),
            Rc::new(ShardBudgets::default()),
        )
        .await;
        assert!(matches!(r, Err(Error::TopicIdMismatch { .. })));
    });
}

#[test]
fn aux_files_and_delete() {
    run(|| async {
        let s = SimStorage::new();
        let log = open_sim(&s, LogConfig::default(), clock()).await;
        log.write_aux_file("replication-offset-checkpoint", b"0\n1\n42\n")
            .await
            .unwrap();
        assert_eq!(
            log.read_aux_file("replication-offset-checkpoint")
                .await
                .unwrap()
                .as_deref(),
            Some(&b"0\n1\n42\n"[..])
        );
        assert_eq!(log.read_aux_file("absent").await.unwrap(), None);
        assert!(log.write_aux_file("../escape", b"x").await.is_err());
        assert!(log
            .write_aux_file("00000000000000000000.log", b"x")
            .await
            .is_err());
        let moved = log.delete().await.unwrap();
        assert!(moved.to_string_lossy().ends_with("-delete"));
        assert!(!s.exists(Path::new("/data/t-0")).await.unwrap());
        assert!(!s.exists(&moved).await.unwrap());
    });
}

mod index_props {
    use super::super::index::SegmentIndex;
    use crate::batch::BatchHeader;
    use proptest::prelude::*;

    proptest! {
        /// The offset index never points past the batch holding an offset, and the time
        /// index never skips a batch whose maximum timestamp reaches the target.
        #[test]
        fn lookups_agree_with_a_linear_scan(
            sizes in proptest::collection::vec((1i32..20, 61u64..3000, 0i64..1000), 1..200),
            interval in 0u64..8000,
            probe in 0i64..4000,
            ts in 0i64..1100,
        ) {
            let base = 1000i64;
            let mut idx = SegmentIndex::new();
            let mut batches = Vec::new();
            let (mut pos, mut off) = (0u64, base);
            for (count, len, max_ts) in sizes {
                let h = BatchHeader {
                    base_offset: off, batch_length: (len - 12) as i32, partition_leader_epoch: 0, magic: 2,
                    crc: 0, attributes: 0, last_offset_delta: count - 1, base_timestamp: 0,
                    max_timestamp: max_ts, producer_id: -1, producer_epoch: -1, base_sequence: -1,
                    record_count: count,
                };
                idx.on_batch(base, &h, pos, interval);
                batches.push((pos, off, h.last_offset(), max_ts));
                pos += len;
                off += count as i64;
            }
            let target = base + probe % (off - base);
            let start = idx.lookup_position(base, target);
            let holder = batches.iter().find(|b| b.2 >= target).unwrap();
            prop_assert!(start <= holder.0, "index points past the batch holding {}", target);
            prop_assert!(batches.iter().any(|b| b.0 == start), "index points into a batch");
            let from = idx.lookup_time(base, ts);
            if let Some(first) = batches.iter().find(|b| b.3 >= ts) {
                prop_assert!(from <= first.1, "time index skipped the first qualifying batch");
            }
            let encoded = SegmentIndex::decode(&idx.encode_offsets(), &idx.encode_times(), pos + 1).unwrap();
            prop_assert_eq!(&encoded.offsets, &idx.offsets);
            prop_assert_eq!(&encoded.times, &idx.times);
        }
    }
}

#[test]
fn read_ahead_never_serves_truncated_data() {
    run(|| async {
        let s = SimStorage::new();
        let open = |s: SimStorage| async move {
            // No tail cache: every read goes to the file.
            Log::open(
                s,
                PathBuf::from("/data/t-0"),
                topic(),
                LogConfig::default(),
                clock(),
                ShardBudgets::new(0, 64 << 20),
            )
            .await
            .unwrap()
        };
        let log = open(s.clone()).await;
        let mut last = Offset(0);
        for i in 0..50 {
            last = log
                .append(make_batch(2, 300, i, 1), LeaderEpoch(0))
                .unwrap()
                .last_offset;
        }
        log.wait_durable(last).await.unwrap();
        // Sequential reads: each one leaves a read-ahead of the next range.
        let r1 = log
            .read(Offset(0), log.log_end_offset(), 2000)
            .await
            .unwrap();
        let cut = r1.next_offset;
        let r2 = log.read(cut, log.log_end_offset(), 2000).await.unwrap();
        assert_eq!(
            BatchHeader::parse(&r2.chunks[0]).unwrap().base_offset,
            cut.0
        );
        let r3_start = r2.next_offset;
        // Replace everything from r3_start with different batches.
        log.truncate_to(r3_start).await.unwrap();
        let mut last = r3_start;
        for i in 0..10 {
            last = log
                .append(make_batch(3, 100, 99, 7 + i), LeaderEpoch(1))
                .unwrap()
                .last_offset;
        }
        log.wait_durable(last).await.unwrap();
        let r3 = log
            .read(r3_start, log.log_end_offset(), 2000)
            .await
            .unwrap();
        let h = BatchHeader::parse(&r3.chunks[0]).unwrap();
        assert_eq!(h.base_offset, r3_start.0);
        assert_eq!(
            h.partition_leader_epoch, 1,
            "stale read-ahead data served after truncation"
        );
        assert_eq!(h.record_count, 3);
        drop(log);
        let _ = open;
    });
}

/// `dsync_step_bytes_max`: under `always`, a flush step that fits one write of at most
/// the limit is that write with `RWF_DSYNC` and no fdatasync; a bigger step is writes and
/// an fdatasync; with the limit at 0 every step syncs. Each kind reads back after a reopen.
#[test]
fn small_always_steps_are_one_durable_write() {
    run(|| async {
        let c = clock();
        for limit in [8192_u64, 0] {
            let s = SimStorage::new();
            let config = LogConfig {
                dsync_step_bytes_max: limit,
                ..LogConfig::default()
            };
            let log = open_sim(&s, config.clone(), c.clone()).await;
            let mut last = Offset(0);
            for i in 0..5 {
                let info = log
                    .append(make_batch(2, 100, i, i as u8), LeaderEpoch(0))
                    .unwrap();
                log.wait_durable(info.last_offset).await.unwrap();
                last = info.last_offset;
            }
            let small = s.stats();
            // Bigger than the limit: written and synced.
            let info = log
                .append(make_batch(3, 4000, 50, 9), LeaderEpoch(0))
                .unwrap();
            log.wait_durable(info.last_offset).await.unwrap();
            let big = s.stats();
            // (At most one fdatasync is the segment's first zero fill's, which the shared
            // syncs of later overwrites rely on.)
            if limit > 0 {
                assert_eq!(small.dsync_writes, 5, "{small:?}");
                assert!(small.fdatasyncs <= 1, "{small:?}");
                assert_eq!(big.dsync_writes, 5, "{big:?}");
                assert_eq!(big.fdatasyncs, small.fdatasyncs + 1, "{big:?}");
            } else {
                assert_eq!(big.dsync_writes, 0, "{big:?}");
                assert!(small.fdatasyncs >= 5, "{small:?}");
                assert_eq!(big.fdatasyncs, small.fdatasyncs + 1, "{big:?}");
            }
            assert!(last < info.last_offset);
            log.close().await.unwrap();
            let log = open_sim(&s, config, c.clone()).await;
            assert_eq!(read_all(&log).await.len(), 6);
        }
    });
}

/// Small `always` steps of several logs of one shard arriving together are each one
/// durable write, up to the shard's sync slots: a log does not fall back to a write and an
/// fdatasync because another log's durable write is running. With one slot they do.
#[test]
fn concurrent_small_steps_of_a_shard_are_durable_writes_up_to_its_slots() {
    run(|| async {
        for slots in [3_usize, 1] {
            let s = SimStorage::new();
            let c = clock();
            let budgets = ShardBudgets::with_syncs(256 << 20, 64 << 20, slots);
            let logs = open_shard_logs(&s, 3, c.clone(), &budgets).await;
            for log in &logs {
                // The first append creates the segment (its own syncs).
                let info = log
                    .append(make_batch(1, 100, 0, 0), LeaderEpoch(0))
                    .unwrap();
                log.wait_durable(info.last_offset).await.unwrap();
            }
            // Writes take real time now, so the three steps overlap.
            s.set_write_delay(std::time::Duration::from_millis(5));
            let before = s.stats();
            let mut lasts = Vec::new();
            for (i, log) in logs.iter().enumerate() {
                let info = log
                    .append(make_batch(2, 200, 1, i as u8), LeaderEpoch(0))
                    .unwrap();
                lasts.push(info.last_offset);
            }
            for (log, last) in logs.iter().zip(&lasts) {
                log.wait_durable(*last).await.unwrap();
            }
            let after = s.stats();
            let dsync = after.dsync_writes - before.dsync_writes;
            let syncs = after.fdatasyncs - before.fdatasyncs;
            if slots == 3 {
                assert_eq!((dsync, syncs), (3, 0), "{before:?} -> {after:?}");
            } else {
                assert!(dsync < 3 && syncs >= 1, "{before:?} -> {after:?}");
            }
            for log in &logs {
                assert_eq!(read_all(&**log).await.len(), 2);
            }
        }
    });
}

/// `write_linger_ms`: under `none`, small appends wait in memory until the linger passes
/// (by the log's clock) and are then written together; a chunk's worth is written at once;
/// `always` never waits; close writes whatever still waits.
#[test]
fn none_appends_linger_then_share_one_write() {
    run(|| async {
        async fn settle() {
            // Real time for the flusher's timer; the log's clock decides what is due.
            for _ in 0..20 {
                futures_lite::future::yield_now().await;
            }
            glommio::timer::sleep(std::time::Duration::from_millis(30)).await;
        }
        let s = SimStorage::new();
        let c = clock();
        let config = LogConfig {
            flush_policy: FlushPolicy::None,
            write_linger_ms: 20,
            ..LogConfig::default()
        };
        let log = open_sim(&s, config.clone(), c.clone()).await;
        // The first append creates the segment file (written at once: file work is due).
        let first = log
            .append(make_batch(2, 100, 1, 0), LeaderEpoch(0))
            .unwrap();
        settle().await;
        let writes = log.stats.writes.get();
        for i in 0..5 {
            log.append(make_batch(2, 100, 10 + i, i as u8), LeaderEpoch(0))
                .unwrap();
        }
        settle().await;
        assert_eq!(
            log.stats.writes.get(),
            writes,
            "written before the linger passed"
        );
        c.advance_ms(20);
        settle().await;
        assert_eq!(
            log.stats.writes.get(),
            writes + 1,
            "five appends share one write"
        );
        // A write chunk's worth pending is written without waiting.
        let before = log.stats.writes.get();
        let big = config.write_chunk_bytes / 1000 + 1;
        for i in 0..big {
            log.append(make_batch(1, 1000, 100 + i as i64, 7), LeaderEpoch(0))
                .unwrap();
        }
        settle().await;
        assert!(
            log.stats.writes.get() > before,
            "a full chunk waited for the linger"
        );
        // What still waits is written by close, and reads back after a reopen.
        let last = log
            .append(make_batch(3, 50, 999, 9), LeaderEpoch(0))
            .unwrap();
        log.close().await.unwrap();
        let log = open_sim(&s, config, c.clone()).await;
        assert_eq!(log.log_end_offset(), Offset(last.last_offset.0 + 1));
        assert!(first.base_offset.0 == 0);
        let all = read_all(&log).await;
        assert_eq!(all.len(), 1 + 5 + big + 1);

        // `always` ignores the linger: the append is durable without the clock moving.
        let s = SimStorage::new();
        let config = LogConfig {
            flush_policy: FlushPolicy::Always,
            write_linger_ms: 1_000_000,
            ..LogConfig::default()
        };
        let log = open_sim(&s, config, c.clone()).await;
        let info = log
            .append(make_batch(2, 100, 1, 0), LeaderEpoch(0))
            .unwrap();
        log.wait_durable(info.last_offset).await.unwrap();
    });
}
