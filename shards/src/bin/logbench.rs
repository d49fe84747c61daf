//! `logbench`: the partition log on one shard, measured (issue 2's benchmark).
//!
//! Cases: 1/16/256 partitions × flush `none`/`always`, each writing `--gib` GiB of batches
//! of 16 records × 1,000 bytes (pre-built, CRC computed outside the clock; each append
//! copies the template into a fresh buffer — what a network receive would do — and
//! validates it inside the clock); cold sequential reads after a reopen; and N idle
//! partitions (RSS, disk use, first-append latency). Write amplification comes from
//! /proc/diskstats of the device holding `--dir`.
//!
//! Usage: see [`USAGE`] (`logbench --help`).

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
    policies: Vec<FlushPolicy>,
    /// Partition counts whose `none` data set is also read back cold.
    read_partitions: Vec<usize>,
    /// Unacknowledged bytes all producers together keep outstanding under `always`.
    always_window_total: usize,
    /// fdatasyncs in flight at once over the shard's logs.
    syncs: usize,
    /// Open loop: producers together append at this rate (MiB/s), latency measured from
    /// each batch's scheduled time; `None`: closed loop, as fast as the window allows.
    rate_mib_s: Option<f64>,
}

const USAGE: &str = "usage: logbench [--dir PATH] [--gib N] [--cases write,read,idle] [--idle N]
    [--cpu N] [--partitions 1,16,256] [--policies none,always] [--read-partitions 1,16]
    [--always-window-kib KIB] [--syncs N] [--rate-mib-s MIB]
Environment overrides of the log configuration: LB_CHUNK, LB_DSYNC, LB_DSYNC_STEP_MAX,
    LB_WRITES, LB_INFLIGHT, LB_BUFFER, LB_ZERO_FILL_MAX, LB_SHARED (see `config`).";

fn parse_args() -> Args {
    let mut a = Args {
        dir: PathBuf::from("/var/tmp/riptide-logbench"),
        gib: 4.0,
        cases: vec!["write".into(), "read".into(), "idle".into()],
        idle: 10_000,
        cpu: None,
        partitions: vec![1, 16, 256],
        policies: vec![FlushPolicy::None, FlushPolicy::Always],
        read_partitions: vec![1, 16],
        always_window_total: 4 << 20,
        syncs: shards::log::SYNCS_IN_FLIGHT_MAX_DEFAULT,
        rate_mib_s: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--help" || k == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let Some(v) = it.next() else {
            eprintln!("{k} needs a value\n{USAGE}");
            std::process::exit(2);
        };
        match k.as_str() {
            "--dir" => a.dir = PathBuf::from(v),
            "--syncs" => a.syncs = v.parse().expect("--syncs"),
            "--gib" => a.gib = v.parse().expect("--gib"),
            "--cases" => a.cases = v.split(',').map(String::from).collect(),
            "--idle" => a.idle = v.parse().expect("--idle"),
            "--cpu" => a.cpu = Some(v.parse().expect("--cpu")),
            "--policies" => {
                a.policies = v
                    .split(',')
                    .map(|p| match p {
                        "none" => FlushPolicy::None,
                        "always" => FlushPolicy::Always,
                        _ => panic!("--policies none,always"),
                    })
                    .collect()
            }
            "--rate-mib-s" => a.rate_mib_s = Some(v.parse().expect("--rate-mib-s")),
            "--always-window-kib" => a.always_window_total = v.parse::<usize>().expect("kib") << 10,
            "--read-partitions" => {
                a.read_partitions = v
                    .split(',')
                    .map(|p| p.parse().expect("--read-partitions"))
                    .collect()
            }
            "--partitions" => {
                a.partitions = v
                    .split(',')
                    .map(|p| p.parse().expect("--partitions"))
                    .collect()
            }
            _ => {
                eprintln!("unknown flag {k}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    a
}

fn template() -> Bytes {
    let mut b = BatchBuilder::new(Compression::None);
    let value = vec![0x5a; 1000];
    for i in 0..16 {
        b.push(
            Some(format!("key-{i:04}").as_bytes()),
            Some(&value),
            &[],
            1_700_000_000_000 + i,
        );
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
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
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

fn config(policy: FlushPolicy, dir: &Path) -> LogConfig {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
    let d = LogConfig::default();
    LogConfig {
        flush_policy: policy,
        write_chunk_bytes: env("LB_CHUNK").unwrap_or(d.write_chunk_bytes),
        dsync_writes: env("LB_DSYNC").map_or(d.dsync_writes, |v| v != 0),
        dsync_step_bytes_max: env("LB_DSYNC_STEP_MAX").map_or(d.dsync_step_bytes_max, |v| v as u64),
        writes_in_flight_max: env("LB_WRITES").unwrap_or(d.writes_in_flight_max),
        in_flight_bytes_max: env("LB_INFLIGHT").unwrap_or(d.in_flight_bytes_max),
        buffer_bytes_max: env("LB_BUFFER").unwrap_or(d.buffer_bytes_max),
        zero_fill_sync_bytes_max: env("LB_ZERO_FILL_MAX")
            .map_or(d.zero_fill_sync_bytes_max, |v| v as u64),
        // As the broker's `riptide.log.flush.shared=auto`; LB_SHARED=0|1 forces it.
        shared_syncs: env("LB_SHARED").map_or_else(
            || shards::storage::device_flush_covers_overwrites(dir),
            |v| v != 0,
        ),
        ..d
    }
}

async fn open_logs(
    dir: &Path,
    n: usize,
    policy: FlushPolicy,
    budgets: &Rc<ShardBudgets>,
) -> Vec<Rc<Log<DmaStorage>>> {
    let storage = DmaStorage::init(dir).await.expect("storage init");
    let mut logs = Vec::with_capacity(n);
    for p in 0..n {
        let log = Log::open(
            storage.clone(),
            dir.join(format!("bench-{p}")),
            TopicId(uuid::Uuid::from_u128(42)),
            config(policy, dir),
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
    /// Syncs served by a shared device flush.
    shared_syncs: u64,
    batches: u64,
}

/// One producer per partition keeps up to the per-partition in-flight limit outstanding;
/// under `always` an ack collector records append -> durable latency for every batch.
async fn write_case(
    logs: &[Rc<Log<DmaStorage>>],
    bytes_per_log: u64,
    always: bool,
    always_window: usize,
    rate_per_log: Option<f64>,
) -> WriteResult {
    let tpl = template();
    let started = Instant::now();
    let latencies = Rc::new(RefCell::new(Vec::<u64>::new()));
    let mut tasks = Vec::new();
    for log in logs {
        let log = log.clone();
        let tpl = tpl.clone();
        let latencies = latencies.clone();
        tasks.push(glommio::spawn_local(async move {
            let outstanding: Rc<RefCell<VecDeque<(Offset, Instant, usize)>>> =
                Rc::new(RefCell::new(VecDeque::new()));
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
            let window = always_window;
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
                // Open loop: wait for this batch's scheduled time and count its latency
                // from then, so a stall delays (and is charged to) every batch behind it.
                let t0 = match rate_per_log {
                    Some(rate) => {
                        let due = started + Duration::from_secs_f64(written as f64 / rate);
                        let now = Instant::now();
                        if due > now {
                            glommio::timer::sleep(due - now).await;
                        }
                        due
                    }
                    None => Instant::now(),
                };
                match log.append(BytesMut::from(&tpl[..]), LeaderEpoch(0)) {
                    Ok(info) => {
                        written += info.bytes as u64;
                        last = info.last_offset;
                        if always {
                            outstanding
                                .borrow_mut()
                                .push_back((info.last_offset, t0, info.bytes));
                        }
                    }
                    Err(Error::LogInFlightFull { .. }) => {
                        log.wait_for_space(tpl.len()).await.expect("space")
                    }
                    Err(e) => panic!("append failed: {e}"),
                }
            }
            // Set while the last batch is still unacknowledged: the collector can then see
            // `done && q.is_empty()` only after the `changed` notification that makes it
            // durable, which it waits for. Set after `wait_durable`, with no notification
            // of its own, it was missed whenever the collector handled that notification
            // first — the run then hung with the executor idle.
            done.set(true);
            log.wait_durable(last).await.expect("durable");
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
    let shared_syncs = logs.iter().map(|l| l.stats.shared_syncs.get()).sum();
    let batches = bytes / tpl.len() as u64;
    WriteResult {
        bytes,
        seconds,
        latencies_us: l,
        fdatasyncs,
        shared_syncs,
        batches,
    }
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
    let window_total = args.always_window_total;
    let rate = args.rate_mib_s;
    let syncs = args.syncs;
    let r = on_executor(args.cpu, move || async move {
        let budgets = ShardBudgets::with_syncs(256 << 20, 64 << 20, syncs);
        let logs = open_logs(&d, partitions, policy, &budgets).await;
        let log_max = logs[0].config().in_flight_bytes_max + logs[0].config().buffer_bytes_max;
        let always_window = (window_total / partitions).clamp(2 * template().len(), log_max);
        let rate_per_log = rate.map(|r| r * (1 << 20) as f64 / partitions as f64);
        let r = write_case(
            &logs,
            total / partitions as u64,
            always,
            always_window,
            rate_per_log,
        )
        .await;
        for log in &logs {
            log.close().await.expect("close");
        }
        // Device-level syncs: own fdatasyncs plus the shared flushes.
        let syncs = r.fdatasyncs + budgets.device_flushes();
        (
            r.bytes,
            r.seconds,
            r.latencies_us,
            syncs,
            r.shared_syncs,
            r.batches,
        )
    });
    let dev_after = device_bytes_written(&args.dir);
    let (bytes, seconds, lat, syncs, shared, batches) = r;
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
    if let Some(r) = args.rate_mib_s {
        print!(" offered={r}MiB/s");
    }
    if always {
        print!(
            " fdatasyncs/s={:.0} batches/fdatasync={:.1} shared_syncs={shared} durable_p50={}us p99={}us p999={}us max={}us",
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
    let syncs = args.syncs;
    let (bytes, seconds) = on_executor(args.cpu, move || async move {
        let budgets = ShardBudgets::with_syncs(256 << 20, 64 << 20, syncs);
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
    if std::env::var("LB_KEEP").is_err() {
        let _ = std::fs::remove_dir_all(&args.dir);
    }
}

/// N partitions each receive one batch (flush `always`) and then sit idle: RSS growth per
/// partition, disk use, open descriptors, and the latency of the next append to each idle
/// partition (append -> durable, one partition at a time).
fn run_idle(args: &Args) {
    let dir = args.dir.clone();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let n = args.idle;
    let d = dir.clone();
    let syncs = args.syncs;
    let m = on_executor(args.cpu, move || async move {
        let tpl = template();
        let budgets = ShardBudgets::with_syncs(256 << 20, 64 << 20, syncs);
        let rss_before = rss_bytes();
        let t = Instant::now();
        let logs = open_logs(&d, n, FlushPolicy::Always, &budgets).await;
        let mut infos = Vec::with_capacity(n);
        for log in &logs {
            // The shard's in-flight limit (64 MiB) is below 10,000 batches: wait for room.
            log.wait_for_space(tpl.len()).await.expect("space");
            infos.push(
                log.append(BytesMut::from(&tpl[..]), LeaderEpoch(0))
                    .expect("append"),
            );
        }
        for (log, info) in logs.iter().zip(&infos) {
            log.wait_durable(info.last_offset).await.expect("durable");
        }
        let setup_s = t.elapsed().as_secs_f64();
        glommio::timer::sleep(Duration::from_millis(200)).await;
        let rss_after = rss_bytes();
        let du_idle_kib = du_kib(&d);
        let fds = std::fs::read_dir("/proc/self/fd")
            .map(|r| r.count())
            .unwrap_or(0);
        let mut lat = Vec::with_capacity(n);
        for log in &logs {
            let t0 = Instant::now();
            let info = log
                .append(BytesMut::from(&tpl[..]), LeaderEpoch(0))
                .expect("append");
            log.wait_durable(info.last_offset).await.expect("durable");
            lat.push(t0.elapsed().as_micros() as u64);
        }
        lat.sort_unstable();
        let t = Instant::now();
        for log in &logs {
            log.close().await.expect("close");
        }
        let close_s = t.elapsed().as_secs_f64();
        IdleResult {
            rss_before,
            rss_after,
            setup_s,
            lat,
            du_idle_kib,
            fds,
            close_s,
        }
    });
    let du_closed_kib = du_kib(&dir);
    println!(
        "idle partitions={n} setup(open+1 batch each)={:.1}s rss_growth={:.1}KiB/partition disk_idle={:.1}KiB/partition disk_after_close={:.1}KiB/partition open_fds={} next_append_p50={}us p99={}us max={}us close_all={:.1}s",
        m.setup_s,
        (m.rss_after.saturating_sub(m.rss_before)) as f64 / 1024.0 / n as f64,
        m.du_idle_kib as f64 / n as f64,
        du_closed_kib as f64 / n as f64,
        m.fds,
        percentile(&m.lat, 0.5),
        percentile(&m.lat, 0.99),
        m.lat.last().copied().unwrap_or(0),
        m.close_s,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

struct IdleResult {
    rss_before: u64,
    rss_after: u64,
    setup_s: f64,
    lat: Vec<u64>,
    du_idle_kib: u64,
    fds: usize,
    close_s: f64,
}

fn du_kib(dir: &Path) -> u64 {
    Command::new("du")
        .args(["-sk", dir.to_str().unwrap()])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
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
            for &policy in &args.policies {
                let keep_for_read = args.cases.iter().any(|c| c == "read")
                    && policy == FlushPolicy::None
                    && args.read_partitions.contains(&p);
                if args.cases.iter().any(|c| c == "write") || keep_for_read {
                    run_write(&args, p, policy, keep_for_read);
                }
                if keep_for_read {
                    run_read(&args, p);
                }
            }
        }
    }
    if args.cases.iter().any(|c| c == "readonly") {
        // Diagnostic: read back a data set kept by an earlier run (LB_KEEP=1).
        for &p in &args.read_partitions {
            run_read(&args, p);
        }
    }
    if args.cases.iter().any(|c| c == "rawread") {
        // Diagnostic: the storage seam alone, 1 MiB sequential reads of one segment file.
        let d = args.dir.clone();
        on_executor(args.cpu, move || async move {
            use shards::storage::{Storage, StorageFile};
            let storage = DmaStorage::init(&d).await.unwrap();
            let path = d.join("bench-0").join("00000000000000000000.log");
            let f = storage.open(&path, false).await.unwrap();
            let size = f.size().await.unwrap();
            for (label, off) in [("aligned", 0u64), ("unaligned", 100)] {
                let t = Instant::now();
                let mut pos = off;
                while pos + (1 << 20) < size {
                    let v = f.read_at(pos, 1 << 20).await.unwrap();
                    pos += v.len() as u64;
                }
                let s = t.elapsed().as_secs_f64();
                println!("rawread {label} {:.3}GiB/s", gib(pos) / s);
            }
            let g = glommio::io::OpenOptions::new()
                .read(true)
                .dma_open(&path)
                .await
                .unwrap();
            for (label, copy) in [("glommio-direct", false), ("glommio+copy", true)] {
                let t = Instant::now();
                let mut pos = 0u64;
                while pos + (1 << 20) < size {
                    let r = g.read_at_aligned(pos, 1 << 20).await.unwrap();
                    if copy {
                        std::hint::black_box(r.to_vec());
                    }
                    pos += r.len() as u64;
                }
                println!(
                    "rawread {label} {:.3}GiB/s",
                    gib(pos) / t.elapsed().as_secs_f64()
                );
            }
        });
    }
    if args.cases.iter().any(|c| c == "idle") {
        run_idle(&args);
    }
}
