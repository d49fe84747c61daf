//! Power-cut tests on the simulated storage: random workloads under `flush.policy=always`,
//! the storage dies at a random operation, the machine "reboots" keeping only what was
//! fdatasync'd / directory-fsync'd (plus an arbitrary prefix of the rest, the first lost
//! write torn at an arbitrary byte), and the reopened log must hold every batch that was
//! acknowledged durable, byte for byte, with log start and epochs not gone backwards and
//! nothing corrupt served.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shards::batch::{self, BatchBuilder, BatchHeader, Compression};
use shards::clock::ManualClock;
use shards::log::{FlushPolicy, Log, LogConfig, ShardBudgets};
use shards::storage::SimStorage;
use shards::{Error, LeaderEpoch, Offset, TopicId};

fn run<F, Fut>(f: F)
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

fn make_batch(rng: &mut StdRng, ts: i64) -> BytesMut {
    let mut b = BatchBuilder::new(Compression::None);
    let records = rng.gen_range(1..8);
    for i in 0..records {
        let len = rng.gen_range(0..1500);
        let value: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        b.push(
            Some(format!("k{i}").as_bytes()),
            Some(&value),
            &[],
            ts + i as i64,
        );
    }
    BytesMut::from(&b.build()[..])
}

#[derive(Clone, Default)]
struct Acked {
    /// Batches acknowledged durable, as they must be stored.
    batches: Vec<Bytes>,
    log_start: i64,
    epoch: i32,
}

const DIR: &str = "/data/topic-0";

async fn open(
    s: &SimStorage,
    config: &LogConfig,
    clock: &Rc<ManualClock>,
) -> shards::Result<Rc<Log<SimStorage>>> {
    open_at(s, DIR, config, clock, &Rc::new(ShardBudgets::default())).await
}

async fn open_at(
    s: &SimStorage,
    dir: &str,
    config: &LogConfig,
    clock: &Rc<ManualClock>,
    budgets: &Rc<ShardBudgets>,
) -> shards::Result<Rc<Log<SimStorage>>> {
    Log::open(
        s.clone(),
        PathBuf::from(dir),
        TopicId(uuid::Uuid::from_u128(7)),
        config.clone(),
        clock.clone(),
        budgets.clone(),
    )
    .await
}

/// One producer: appends until the storage dies, recording what was acknowledged.
async fn producer(
    log: Rc<Log<SimStorage>>,
    acked: Rc<RefCell<Acked>>,
    seed: u64,
    epoch: Rc<RefCell<i32>>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    loop {
        let ts = 1_000 + rng.gen_range(0..100_000);
        let b = make_batch(&mut rng, ts);
        let e = *epoch.borrow();
        let mut expected = b.clone();
        let info = match log.append(b, LeaderEpoch(e)) {
            Ok(info) => info,
            Err(Error::LogInFlightFull { .. }) => {
                if log.wait_for_space(expected.len()).await.is_err() {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        batch::patch_offset_and_epoch(&mut expected, info.base_offset.0, e);
        if log.wait_durable(info.last_offset).await.is_err() {
            return;
        }
        let mut a = acked.borrow_mut();
        a.batches.push(expected.freeze());
        a.epoch = a.epoch.max(e);
    }
}

/// `always` with small, random limits, so segments roll and files grow all the time.
fn random_config(rng: &mut StdRng, segment_bytes: std::ops::Range<u64>) -> LogConfig {
    LogConfig {
        segment_bytes: rng.gen_range(segment_bytes),
        index_interval_bytes: rng.gen_range(200..4096),
        flush_policy: FlushPolicy::Always,
        in_flight_bytes_max: rng.gen_range(5_000..50_000),
        buffer_bytes_max: rng.gen_range(0..50_000),
        write_chunk_bytes: 4096 * rng.gen_range(1..4),
        writes_in_flight_max: rng.gen_range(1..4),
        write_step_bytes_max: rng.gen_range(1..60_000),
        preallocate_step_min_bytes: 8192,
        preallocate_step_max_bytes: 65536,
        ..LogConfig::default()
    }
}

/// The machine after a power cut that kept nothing unsynced, everything, or a random
/// prefix per file (torn at a random byte).
fn cut_power(storage: &SimStorage, rng: &mut StdRng, cut_seed: u64) -> SimStorage {
    let mode = rng.gen_range(0..3);
    let mut cut_rng = StdRng::seed_from_u64(cut_seed);
    storage.cut_power(|n| match mode {
        0 => 0,
        1 => n,
        _ => cut_rng.gen_range(0..=n),
    })
}

async fn power_cut_case(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let clock = Rc::new(ManualClock::new(1_700_000_000_000));
    let mut config = random_config(&mut rng, 4_000..40_000);
    let mut storage = SimStorage::new();
    let acked = Rc::new(RefCell::new(Acked::default()));
    for life in 0..3 {
        // Both durability paths, O_DSYNC writes and writes + fdatasync, and switches
        // between them across restarts (a plain-opened active segment is reopened).
        config.dsync_writes = rng.gen_bool(0.5);
        // And small steps as single RWF_DSYNC writes in some lives (bigger steps of the
        // same life still sync).
        config.dsync_step_bytes_max = if rng.gen_bool(0.5) {
            rng.gen_range(1..3 * 4096)
        } else {
            0
        };
        let log = open(&storage, &config, &clock)
            .await
            .expect("reopen after power cut");
        let snapshot = acked.borrow().clone();
        verify(&log, &snapshot, seed, life).await;
        storage.fail_after_ops(rng.gen_range(5..400));
        let epoch = Rc::new(RefCell::new(acked.borrow().epoch.max(0)));
        let mut tasks = Vec::new();
        for p in 0..rng.gen_range(1..4) {
            tasks.push(glommio::spawn_local(producer(
                log.clone(),
                acked.clone(),
                seed * 100 + life * 10 + p,
                epoch.clone(),
            )));
        }
        // Control operations interleaved with the producers.
        loop {
            glommio::timer::sleep(std::time::Duration::from_micros(rng.gen_range(0..300))).await;
            if storage.is_dead() || log.failure().is_some() {
                break;
            }
            match rng.gen_range(0..10) {
                0 => {
                    let end = log.durable_offset().0;
                    let start = log.log_start_offset().0;
                    if end > start {
                        let to = rng.gen_range(start..=end);
                        if let Ok(s) = log.delete_records_before(Offset(to)).await {
                            let mut a = acked.borrow_mut();
                            a.log_start = a.log_start.max(s.0);
                        }
                    }
                }
                1 => {
                    let e = *epoch.borrow() + 1;
                    *epoch.borrow_mut() = e;
                    if log
                        .assign_epoch(LeaderEpoch(e), log.log_end_offset())
                        .await
                        .is_ok()
                    {
                        let mut a = acked.borrow_mut();
                        a.epoch = a.epoch.max(e);
                    }
                }
                2 => {
                    clock.advance_ms(rng.gen_range(0..10_000));
                    let _ = log.enforce_retention().await;
                }
                _ => {}
            }
        }
        for t in tasks {
            t.await;
        }
        drop(log);
        storage = cut_power(&storage, &mut rng, seed ^ 0xdead_beef ^ life);
    }
    let log = open(&storage, &config, &clock).await.expect("final reopen");
    let snapshot = acked.borrow().clone();
    verify(&log, &snapshot, seed, 99).await;
    if std::env::var("POWER_CUT_TRACE").is_ok() {
        eprintln!(
            "seed {seed}: {} batches acked, log end {}",
            acked.borrow().batches.len(),
            log.log_end_offset()
        );
    }
}

async fn verify(log: &Log<SimStorage>, acked: &Acked, seed: u64, life: u64) {
    let ctx = format!("seed {seed} life {life}");
    let start = log.log_start_offset().0;
    assert!(
        start >= acked.log_start,
        "{ctx}: log start went back: {start} < {}",
        acked.log_start
    );
    if acked.epoch > 0 {
        let latest = log.latest_epoch().map_or(-1, |e| e.0);
        assert!(
            latest >= acked.epoch,
            "{ctx}: epoch went back: {latest} < {}",
            acked.epoch
        );
    }
    // Every acknowledged batch at or after the log start is there, byte for byte.
    let end = log.log_end_offset();
    for b in &acked.batches {
        let h = BatchHeader::parse(b).unwrap();
        if h.last_offset() < start {
            continue;
        }
        assert!(
            h.last_offset() < end.0,
            "{ctx}: acked batch {} beyond log end {end}",
            h.base_offset
        );
        let r = log
            .read(Offset(h.base_offset.max(start)), end, 1)
            .await
            .expect("read acked");
        assert_eq!(
            r.chunks.first(),
            Some(b),
            "{ctx}: acked batch at {} differs or is missing",
            h.base_offset
        );
    }
    // Everything served is valid, in order.
    let mut at = Offset(start);
    let mut prev_last = start - 1;
    while at < end {
        let r = log.read(at, end, 64 * 1024).await.expect("read");
        if r.chunks.is_empty() {
            break;
        }
        for c in &r.chunks {
            for (h, b) in batch::split_batches(c, usize::MAX).expect("split") {
                batch::validate_stored(&b)
                    .unwrap_or_else(|e| panic!("{ctx}: corrupt batch served: {e}"));
                assert!(
                    h.last_offset() > prev_last || h.base_offset <= start,
                    "{ctx}: offsets not increasing"
                );
                prev_last = h.last_offset();
            }
        }
        at = r.next_offset;
    }
}

#[test]
fn power_cuts_never_lose_acknowledged_batches() {
    let cases: u64 = std::env::var("POWER_CUT_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let first: u64 = std::env::var("POWER_CUT_FIRST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for seed in first..first + cases {
        run(move || async move { power_cut_case(seed).await });
    }
}

/// The harness sees both durability paths at work: O_DSYNC writes in some lives,
/// fdatasyncs in others (a test that silently ran only one path would prove half).
#[test]
fn power_cut_cases_exercise_dsync_writes_and_fdatasyncs() {
    run(|| async {
        let clock = Rc::new(ManualClock::new(0));
        for dsync_writes in [true, false] {
            let config = LogConfig {
                dsync_writes,
                dsync_step_bytes_max: 0,
                ..LogConfig::default()
            };
            let s = SimStorage::new();
            let log = open(&s, &config, &clock).await.unwrap();
            let mut rng = StdRng::seed_from_u64(7);
            for _ in 0..5 {
                let info = log.append(make_batch(&mut rng, 5), LeaderEpoch(0)).unwrap();
                log.wait_durable(info.last_offset).await.unwrap();
            }
            let st = s.stats();
            if dsync_writes {
                assert!(st.dsync_writes >= 5, "{st:?}");
            } else {
                assert!(st.dsync_writes == 0 && st.fdatasyncs >= 5, "{st:?}");
            }
        }
    });
}

/// The power-cut harness can fail: a log that never fsyncs (policy `none`) but whose
/// acknowledgements are trusted must be caught losing batches.
#[test]
fn power_cut_harness_catches_a_log_that_does_not_sync() {
    run(|| async {
        let clock = Rc::new(ManualClock::new(0));
        let config = LogConfig {
            flush_policy: FlushPolicy::None,
            ..LogConfig::default()
        };
        let storage = SimStorage::new();
        let log = open(&storage, &config, &clock).await.unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let mut last = Offset(0);
        for _ in 0..20 {
            let info = log.append(make_batch(&mut rng, 5), LeaderEpoch(0)).unwrap();
            log.wait_durable(info.last_offset).await.unwrap(); // returns at once under `none`
            last = info.last_offset;
        }
        for _ in 0..100 {
            futures_lite::future::yield_now().await;
        }
        drop(log);
        let after = storage.cut_power(|_| 0);
        let log = open(&after, &config, &clock).await.unwrap();
        assert!(
            log.log_end_offset() <= last,
            "unsynced data survived a power cut that keeps nothing unsynced"
        );
    });
}

/// Several logs of one shard with `shared_syncs`: their syncs share device flushes, each
/// issued through whichever log's file came first, so one log's acknowledged batches are
/// durable only through another log's flush (the simulated device flush keeps exactly the
/// overwrites of durably written blocks). Returns (syncs served shared, device flushes).
async fn shared_syncs_case(seed: u64) -> (u64, u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let clock = Rc::new(ManualClock::new(1_700_000_000_000));
    let logs_n = rng.gen_range(2..5);
    let config = LogConfig {
        shared_syncs: true,
        ..random_config(&mut rng, 40_000..400_000)
    };
    let dirs: Vec<String> = (0..logs_n).map(|i| format!("/data/topic-{i}")).collect();
    let acked: Vec<Rc<RefCell<Acked>>> = (0..logs_n).map(|_| Rc::default()).collect();
    let mut storage = SimStorage::new();
    let (mut shared, mut flushes) = (0, 0);
    for life in 0..3 {
        // One own fdatasync at a time: logs find the slot busy and share flushes (with a
        // free slot a log syncs on its own rather than wait behind a running flush).
        let budgets = ShardBudgets::with_syncs(256 << 20, 64 << 20, 1);
        let mut logs = Vec::new();
        for (dir, a) in dirs.iter().zip(&acked) {
            let log = open_at(&storage, dir, &config, &clock, &budgets)
                .await
                .expect("reopen after power cut");
            let snapshot = a.borrow().clone();
            verify(&log, &snapshot, seed, life).await;
            logs.push(log);
        }
        storage.fail_after_ops(rng.gen_range(20..1500));
        let mut tasks = Vec::new();
        for (i, (log, a)) in logs.iter().zip(&acked).enumerate() {
            let epoch = Rc::new(RefCell::new(a.borrow().epoch.max(0)));
            for p in 0..rng.gen_range(1..3) {
                tasks.push(glommio::spawn_local(producer(
                    log.clone(),
                    a.clone(),
                    seed * 1000 + life * 100 + i as u64 * 10 + p,
                    epoch.clone(),
                )));
            }
        }
        for t in tasks {
            t.await;
        }
        shared += logs.iter().map(|l| l.stats.shared_syncs.get()).sum::<u64>();
        flushes += budgets.device_flushes();
        drop(logs);
        storage = cut_power(&storage, &mut rng, seed ^ 0x5eed ^ life);
    }
    let budgets = Rc::new(ShardBudgets::default());
    for (dir, a) in dirs.iter().zip(&acked) {
        let log = open_at(&storage, dir, &config, &clock, &budgets)
            .await
            .expect("final reopen");
        let snapshot = a.borrow().clone();
        verify(&log, &snapshot, seed, 99).await;
    }
    (shared, flushes)
}

#[test]
fn power_cuts_with_shared_syncs_never_lose_acknowledged_batches() {
    let cases: u64 = std::env::var("POWER_CUT_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let (mut shared, mut flushes) = (0, 0);
    for seed in 0..cases {
        let (s, f) = std::thread::spawn(move || {
            glommio::LocalExecutorBuilder::default()
                .spawn(move || async move { shared_syncs_case(seed).await })
                .expect("executor")
                .join()
                .expect("test body panicked")
        })
        .join()
        .expect("case thread");
        shared += s;
        flushes += f;
    }
    // The path under test ran, and flushes were shared (fewer flushes than syncs served).
    assert!(shared >= 20, "only {shared} shared syncs in {cases} cases");
    assert!(
        flushes < shared,
        "no sync was served by another log's flush: {flushes} flushes, {shared} syncs"
    );
}
