//! `logbench`: the partition log on one shard, measured (issue 2's benchmark).
//!
//! Cases: 1/16/256 partitions × flush `none`/`always`, each writing `--gib` GiB of batches
//! of 16 records × 1,000 bytes (pre-built, CRC computed outside the clock; each append
//! copies the template into a fresh buffer — what a network receive would do — and
//! validates it inside the clock); cold sequential reads after a reopen; and N idle
//! partitions (RSS, disk use, first-append latency). Write amplification comes from
//! /proc/diskstats of the device holding `--dir`.
//!
//! Usage: logbench [--dir PATH] [--gib N] [--cases write,read,idle] [--idle N] [--cpu N]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use shards::batch::{BatchBuilder, Compression};
use shards::clock::SystemClock;
use shards::log::{FlushPolicy, Log, LogConfig, ShardBudgets};
use shards::storage::DmaStorage;
use shards::{Error, LeaderEpoch, Offset, TopicId};

struct Args {
    dir: PathBuf,
    gib: f64,
    cases: Vec<String>,
    idle: usize,
    cpu: Option<usize>,
    partitions: Vec<usize>,
}

fn parse_args() -> Args {
    let mut a = Args {
        dir: PathBuf::from("/var/tmp/riptide-logbench"),
        gib: 4.0,
        cases: vec!["write".into(), "read".into(), "idle".into()],
        idle: 10_000,
        cpu: None,
        partitions: vec![1, 16, 256],
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--dir" => a.dir = PathBuf::from(v),
            "--gib" => a.gib = v.parse().expect("--gib"),
            "--cases" => a.cases = v.split(',').map(String::from).collect(),
            "--idle" => a.idle = v.parse().expect("--idle"),
            "--cpu" => a.cpu = Some(v.parse().expect("--cpu")),
            "--partitions" => a.partitions = v.split(',').map(|p| p.parse().expect("--partitions")).collect(),
            _ => panic!("unknown flag {k}"),
        }
    }
    a
}

fn template() -> Bytes {
    let mut b = BatchBuilder::new(Compression::None);
    let value = vec![0x5a; 1000];
    for i in 0..16 {
        b.push(Some(format!("key-{i:04}").as_bytes()), Some(&value), &[], 1_700_000_000_000 + i);
    }
    b.build()
}

/// Sectors written to the device holding `dir`, from /proc/diskstats.
fn device_bytes_written(dir: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
    for line in stats.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 9 && f[0] == major.to_string() && f[1] == minor.to_string() {
            return f[9].parse::<u64>().ok().map(|s| s * 512);
        }
    }
    None
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn on_executor<T: Send + 'static, F, Fut>(cpu: Option<usize>, f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    let placement = match cpu {
        Some(c) => glommio::Placement::Fixed(c),
        None => glommio::Placement::Unbound,
    };
    glommio::LocalExecutorBuilder::new(placement)
        .spawn(move || async move { f().await })
        .expect("executor")
        .join()
        .expect("benchmark thread")
}

fn config(policy: FlushPolicy) -> LogConfig {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
    let d = LogConfig::default();
    LogConfig {
        flush_policy: policy,
        write_chunk_bytes: env("LB_CHUNK").unwrap_or(d.write_chunk_bytes),
        writes_in_flight_max: env("LB_WRITES").unwrap_or(d.writes_in_flight_max),
        in_flight_bytes_max: env("LB_INFLIGHT").unwrap_or(d.in_flight_bytes_max),
        ..d
    }
}

async fn open_logs(dir: &Path, n: usize, policy: FlushPolicy, budgets: &Rc<ShardBudgets>) -> Vec<Rc<Log<DmaStorage>>> {
    let storage = DmaStorage::init(dir).await.expect("storage init");
    let mut logs = Vec::with_capacity(n);
    for p in 0..n {
        let log = Log::open(
            storage.clone(),
            dir.join(format!("bench-{p}")),
            TopicId(uuid::Uuid::from_u128(42)),
            config(policy),
            Rc::new(SystemClock),
            budgets.clone(),
        )
        .await
        .expect("open log");
        logs.push(log);
    }
    logs
}

struct WriteResult {
    bytes: u64,
    seconds: f64,
    latencies_us: Vec<u64>,
    fdatasyncs: u64,
    batches: u64,
}

/// One producer per partition keeps up to the per-partition in-flight limit outstanding;
/// under `always` an ack collector records append -> durable latency for every batch.
async fn write_case(logs: &[Rc<Log<DmaStorage>>], bytes_per_log: u64, always: bool) -> WriteResult {
    let tpl = template();
    let started = Instant::now();
    let latencies = Rc::new(RefCell::new(Vec::<u64>::new()));
    let mut tasks = Vec::new();
    for log in logs {
        let log = log.clone();
        let tpl = tpl.clone();
        let latencies = latencies.clone();
        tasks.push(glommio::spawn_local(async move {
            let outstanding: Rc<RefCell<VecDeque<(Offset, Instant, usize)>>> = Rc::new(RefCell::new(VecDeque::new()));
            let done = Rc::new(std::cell::Cell::new(false));
            let collector = always.then(|| {
                let log = log.clone();
                let outstanding = outstanding.clone();
                let done = done.clone();
                let latencies = latencies.clone();
                glommio::spawn_local(async move {
                    loop {
                        let seen = log.watch();
                        let durable = log.durable_offset();
                        let now = Instant::now();
                        {
                            let mut q = outstanding.borrow_mut();
                            let mut l = latencies.borrow_mut();
                            while q.front().is_some_and(|(last, _, _)| *last < durable) {
                                let (_, t0, _) = q.pop_front().unwrap();
                                l.push(now.duration_since(t0).as_micros() as u64);
                            }
                            if done.get() && q.is_empty() {
                                break;
                            }
                        }
                        log.changed_since(seen).await;
                    }
                })
            });
            let window = log.config().in_flight_bytes_max;
            let mut written = 0u64;
            let mut last = Offset(0);
            while written < bytes_per_log {
                if always {
                    // A producer keeps at most one window of unacknowledged data.
                    let pending: usize = outstanding.borrow().iter().map(|o| o.2).sum();
                    if pending + tpl.len() > window {
                        let front = outstanding.borrow().front().map(|o| o.0);
                        if let Some(f) = front {
                            log.wait_durable(f).await.expect("durable");
                            futures_lite::future::yield_now().await;
                        }
                        continue;
                    }
                }
                let t0 = Instant::now();
                match log.append(BytesMut::from(&tpl[..]), LeaderEpoch(0)) {
                    Ok(info) => {
                        written += info.bytes as u64;
                        last = info.last_offset;
                        if always {
                            outstanding.borrow_mut().push_back((info.last_offset, t0, info.bytes));
                        }
                    }
                    Err(Error::LogInFlightFull { .. }) => log.wait_for_space(tpl.len()).await.expect("space"),
                    Err(e) => panic!("append failed: {e}"),
                }
            }
            log.wait_durable(last).await.expect("durable");
            done.set(true);
            if let Some(c) = collector {
                c.await;
            }
            written
        }));
    }
    let mut bytes = 0;
    for t in tasks {
        bytes += t.await;
    }
    // `none`: the data is written (not synced) once the in-flight bytes drain.
    for log in logs {
        while !log.has_space(usize::MAX / 4) {
            log.wait_for_space(usize::MAX / 4).await.ok();
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut l = latencies.borrow().clone();
    l.sort_unstable();
    let fdatasyncs = logs.iter().map(|l| l.stats.fdatasyncs.get()).sum();
    let batches = bytes / tpl.len() as u64;
    WriteResult { bytes, seconds, latencies_us: l, fdatasyncs, batches }
}

fn gib(b: u64) -> f64 {
    b as f64 / (1u64 << 30) as f64
}

fn run_write(args: &Args, partitions: usize, policy: FlushPolicy, keep: bool) {
    let dir = args.dir.clone();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let total = (args.gib * (1u64 << 30) as f64) as u64;
    let always = policy == FlushPolicy::Always;
    let dev_before = device_bytes_written(&dir);
    let d = dir.clone();
    let r = on_executor(args.cpu, move || async move {
        let budgets = ShardBudgets::new(256 << 20, 64 << 20);
        let logs = open_logs(&d, partitions, policy, &budgets).await;
        let r = write_case(&logs, total / partitions as u64, always).await;
        for log in &logs {
            log.close().await.expect("close");
        }
        (r.bytes, r.seconds, r.latencies_us, r.fdatasyncs, r.batches)
    });
    let dev_after = device_bytes_written(&args.dir);
    let (bytes, seconds, lat, syncs, batches) = r;
    let amp = match (dev_before, dev_after) {
        (Some(a), Some(b)) => format!("{:.3}", (b - a) as f64 / bytes as f64),
        _ => "n/a".into(),
    };
    let name = if always { "always" } else { "none" };
    print!(
        "write partitions={partitions:<4} flush={name:<6} bytes={:.2}GiB time={seconds:.2}s throughput={:.3}GiB/s write_amp={amp}",
        gib(bytes),
        gib(bytes) / seconds
    );
    if always {
        print!(
            " fdatasyncs/s={:.0} batches/fdatasync={:.1} durable_p50={}us p99={}us p999={}us max={}us",
            syncs as f64 / seconds,
            batches as f64 / syncs.max(1) as f64,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            percentile(&lat, 0.999),
            lat.last().copied().unwrap_or(0)
        );
    }
    println!();
    if !keep {
        let _ = std::fs::remove_dir_all(&args.dir);
    }
}

/// Cold sequential reads of the data left by the previous write case: the logs are
/// reopened (empty tail cache) and every partition is read front to back, 1 MiB per read,
/// all partitions concurrently.
fn run_read(args: &Args, partitions: usize) {
    let d = args.dir.clone();
    let (bytes, seconds) = on_executor(args.cpu, move || async move {
        let budgets = ShardBudgets::new(256 << 20, 64 << 20);
        let logs = open_logs(&d, partitions, FlushPolicy::None, &budgets).await;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for log in &logs {
            let log = log.clone();
            tasks.push(glommio::spawn_local(async move {
                let end = log.log_end_offset();
                let mut at = log.log_start_offset();
                let mut bytes = 0u64;
                while at < end {
                    let r = log.read(at, end, 1 << 20).await.expect("read");
                    assert!(!r.chunks.is_empty(), "read made no progress at {at}");
                    bytes += r.bytes as u64;
                    at = r.next_offset;
                }
                bytes
            }));
        }
        let mut bytes = 0;
        for t in tasks {
            bytes += t.await;
        }
        (bytes, started.elapsed().as_secs_f64())
    });
    println!(
        "cold-read partitions={partitions:<4} bytes={:.2}GiB time={seconds:.2}s throughput={:.3}GiB/s",
        gib(bytes),
        gib(bytes) / seconds
    );
    let _ = std::fs::remove_dir_all(&args.dir);
}

/// N partitions each receive one batch (flush `always`) and then sit idle: RSS growth per
/// partition, disk use, and the latency of the next append to each idle partition.
fn run_idle(args: &Args) {
    let dir = args.dir.clone();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let n = args.idle;
    let d = dir.clone();
    let (rss_before, rss_after, open_s, lat) = on_executor(args.cpu, move || async move {
        let tpl = template();
        let budgets = ShardBudgets::new(256 << 20, 64 << 20);
        let rss_before = rss_bytes();
        let t = Instant::now();
        let logs = open_logs(&d, n, FlushPolicy::Always, &budgets).await;
        // One batch each, durably, several partitions at a time.
        let mut infos = Vec::with_capacity(n);
        for log in &logs {
            infos.push(log.append(BytesMut::from(&tpl[..]), LeaderEpoch(0)).expect("append"));
        }
        for (log, info) in logs.iter().zip(&infos) {
            log.wait_durable(info.last_offset).await.expect("durable");
        }
        let open_s = t.elapsed().as_secs_f64();
        glommio::timer::sleep(Duration::from_millis(200)).await;
        let rss_after = rss_bytes();
        // Next append to each idle partition, one at a time: append -> durable.
        let mut lat = Vec::with_capacity(n);
        for log in &logs {
            let t0 = Instant::now();
            let info = log.append(BytesMut::from(&tpl[..]), LeaderEpoch(0)).expect("append");
            log.wait_durable(info.last_offset).await.expect("durable");
            lat.push(t0.elapsed().as_micros() as u64);
        }
        lat.sort_unstable();
        for log in &logs {
            log.close().await.expect("close");
        }
        (rss_before, rss_after, open_s, lat)
    });
    let du = Command::new("du").args(["-sk", dir.to_str().unwrap()]).output().ok();
    let du_kib: u64 = du
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    println!(
        "idle partitions={n} setup(open+1 batch each)={open_s:.1}s rss_growth={:.1}KiB/partition disk_after_close={:.1}KiB/partition first_append_p50={}us p99={}us max={}us",
        (rss_after.saturating_sub(rss_before)) as f64 / 1024.0 / n as f64,
        du_kib as f64 / n as f64,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

use std::process::Command;

fn main() {
    let args = parse_args();
    println!(
        "logbench dir={} gib_per_case={} cpu={:?} batch_bytes={}",
        args.dir.display(),
        args.gib,
        args.cpu,
        template().len()
    );
    if args.cases.iter().any(|c| c == "write" || c == "read") {
        for &p in &args.partitions {
            for policy in [FlushPolicy::None, FlushPolicy::Always] {
                let keep_for_read = args.cases.iter().any(|c| c == "read") && policy == FlushPolicy::None && p == 16;
                if args.cases.iter().any(|c| c == "write") || keep_for_read {
                    run_write(&args, p, policy, keep_for_read);
                }
                if keep_for_read {
                    run_read(&args, p);
                }
            }
        }
    }
    if args.cases.iter().any(|c| c == "idle") {
        run_idle(&args);
    }
}
