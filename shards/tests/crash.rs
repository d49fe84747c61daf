//! A real crash: a child process (this test binary re-executed) appends to a DMA log under
//! `flush.policy=always` and prints every acknowledged batch; the parent SIGKILLs it at a
//! random moment, reopens the log and checks that it is consistent and holds every
//! acknowledged batch byte for byte. (`kill -9` keeps the page cache, so this proves
//! recovery and acknowledgement order, not durability; the power-cut tests prove that.)

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use shards::batch::{self, BatchBuilder, Compression};
use shards::clock::SystemClock;
use shards::log::{Log, LogConfig, ShardBudgets};
use shards::storage::DmaStorage;
use shards::{LeaderEpoch, Offset, TopicId};

const CHILD_ENV: &str = "RIPTIDE_CRASH_CHILD_DIR";

/// Batch `n` is a pure function of `n`, so the parent can rebuild what the child wrote.
fn batch_n(n: u64) -> BytesMut {
    let mut b = BatchBuilder::new(Compression::None);
    let records = 1 + (n % 16) as usize;
    for i in 0..records {
        let value = vec![(n as u8).wrapping_add(i as u8); 200 + (n as usize * 37) % 1800];
        b.push(
            Some(format!("{n}-{i}").as_bytes()),
            Some(&value),
            &[],
            1_000_000 + n as i64,
        );
    }
    BytesMut::from(&b.build()[..])
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 512 * 1024,
        ..LogConfig::default()
    }
}

fn topic() -> TopicId {
    TopicId(uuid::Uuid::from_u128(99))
}

async fn open(root: &Path) -> Rc<Log<DmaStorage>> {
    let storage = DmaStorage::init(root).await.expect("storage init");
    Log::open(
        storage,
        root.join("crash-0"),
        topic(),
        config(),
        Rc::new(SystemClock),
        Rc::new(ShardBudgets::default()),
    )
    .await
    .expect("open log")
}

/// The child's body: append forever, print `ACK <n> <base>` after each durable batch.
/// Several appends are in flight at once so acknowledgements come from group commits.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // only runs when re-executed by the parent
    };
    let first: u64 = std::env::var("RIPTIDE_CRASH_FIRST")
        .unwrap()
        .parse()
        .unwrap();
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let log = open(Path::new(&dir)).await;
            let mut n = first;
            loop {
                let mut pending = Vec::new();
                for _ in 0..8 {
                    let info = log.append(batch_n(n), LeaderEpoch(1)).expect("append");
                    pending.push((n, info));
                    n += 1;
                }
                for (k, info) in pending {
                    log.wait_durable(info.last_offset).await.expect("durable");
                    println!("ACK {k} {}", info.base_offset.0);
                }
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

fn run_child_and_kill(root: &Path, first: u64, run_ms: u64) -> Vec<(u64, i64)> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, root)
        .env("RIPTIDE_CRASH_FIRST", first.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("ACK ") {
                let mut it = rest.split_whitespace();
                let n: u64 = it.next().unwrap().parse().unwrap();
                let base: i64 = it.next().unwrap().parse().unwrap();
                acks.push((n, base));
            }
        }
        acks
    });
    let deadline = Instant::now() + Duration::from_millis(run_ms);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL child"); // Child::kill sends SIGKILL on Unix
    child.wait().unwrap();
    reader.join().unwrap()
}

#[test]
fn sigkill_keeps_every_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().to_path_buf();
    let mut acked: Vec<(u64, i64)> = Vec::new();
    let mut next_n = 0;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    for round in 0..3u64 {
        let run_ms = 300 + (seed.wrapping_mul(round + 7) % 700);
        let acks = run_child_and_kill(&root, next_n, run_ms);
        assert!(
            !acks.is_empty(),
            "round {round}: child acknowledged nothing in {run_ms} ms"
        );
        next_n = acks.iter().map(|a| a.0).max().unwrap() + 1_000_000;
        acked.extend(acks);
        // Reopen (recovery after the crash) and check.
        let check = acked.clone();
        let root2 = root.clone();
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let log = open(&root2).await;
                let end = log.log_end_offset();
                for (n, base) in &check {
                    let mut want = batch_n(*n);
                    batch::patch_offset_and_epoch(&mut want, *base, 1);
                    let r = log
                        .read(Offset(*base), end, 1)
                        .await
                        .expect("read acked batch");
                    assert_eq!(
                        r.chunks.first().map(|c| &c[..]),
                        Some(&want[..]),
                        "acked batch {n} at {base} lost or changed"
                    );
                }
                // The whole log is consistent: valid batches, increasing offsets.
                let mut at = log.log_start_offset();
                let mut prev = -1;
                while at < end {
                    let r = log.read(at, end, 1 << 20).await.unwrap();
                    assert!(!r.chunks.is_empty());
                    for c in &r.chunks {
                        for (h, b) in batch::split_batches(c, usize::MAX).unwrap() {
                            batch::validate_stored(&b).expect("valid stored batch");
                            assert!(h.base_offset > prev);
                            prev = h.last_offset();
                        }
                    }
                    at = r.next_offset;
                }
                log.close().await.unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
        eprintln!("round {round}: {} batches acknowledged so far", acked.len());
    }
}
