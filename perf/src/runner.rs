//! One run of one workload against one broker: create fresh topics, start clients, warm up,
//! measure, drain, and collect a `RunResult` with the broker's CPU and memory cost.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::native::ClientCtx;
use crate::procfs;
use crate::stats::{merge_total, take_interval, Counts, Percentiles, WorkerStats};
use crate::wire::{self, Conn};
use crate::workload::{Workload, DURATION_S_MAX};

pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
pub const MIB: f64 = 1024.0 * 1024.0;
const TICK: Duration = Duration::from_secs(1);
const TOPIC_CREATE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Native,
    Rdkafka,
}

/// A broker to measure.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub bootstrap: String,
    /// Broker pid for /proc cost; found from the port when None.
    pub pid: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub driver: Driver,
    /// Cores to pin client threads to, round-robin; empty = no pinning.
    pub pin: Vec<usize>,
    pub verify_crc: bool,
    pub progress: bool,
    /// Shell command run between the backlog fill and the consume phase (e.g. dropping the
    /// page cache for a cold read). The broker pid is looked up again afterwards.
    pub before_consume: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Throughput {
    pub msgs: u64,
    pub bytes: u64,
    pub errors: u64,
    pub msgs_per_s: f64,
    pub mib_per_s: f64,
}

impl Throughput {
    fn of(c: Counts, seconds: f64) -> Throughput {
        let s = seconds.max(1e-9);
        Throughput {
            msgs: c.msgs,
            bytes: c.bytes,
            errors: c.errors,
            msgs_per_s: c.msgs as f64 / s,
            mib_per_s: c.bytes as f64 / MIB / s,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Tick {
    pub t_s: f64,
    pub produce_msgs_per_s: f64,
    pub consume_msgs_per_s: f64,
    pub publish_p99_us: Option<u64>,
    pub e2e_p99_us: Option<u64>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct RunResult {
    pub workload: String,
    pub target: String,
    pub bootstrap: String,
    pub driver: Driver,
    pub run_index: u32,
    pub started_unix_s: u64,
    /// Length of the measured window (after warm-up), seconds.
    pub measured_s: f64,
    pub produce: Throughput,
    pub consume: Throughput,
    pub publish_latency: Option<Percentiles>,
    pub e2e_latency: Option<Percentiles>,
    pub broker_pid: Option<u32>,
    /// Broker CPU (user + system) over the measured window.
    pub broker_cpu_s: Option<f64>,
    /// Broker CPU seconds per GiB of payload produced (or consumed, for consume workloads).
    pub broker_cpu_s_per_gib: Option<f64>,
    pub broker_cores_busy: Option<f64>,
    pub broker_rss_max_bytes: Option<u64>,
    /// This harness's own CPU over the window (the client shares the machine).
    pub client_cpu_s: f64,
    /// CPU time the hypervisor took from this VM over the window (all CPUs, `/proc/stat`
    /// steal): a run with seconds of it measured the host, not the broker.
    #[serde(default)]
    pub steal_s: Option<f64>,
    /// All messages acknowledged (or sent, with acks=0) over the whole run, and consumed.
    pub produced_total: u64,
    pub consumed_total: u64,
    pub errors_total: u64,
    /// With consumers: did they read back every produced message?
    pub all_consumed: Option<bool>,
    pub timeline: Vec<Tick>,
    pub spec: Workload,
}

/// Samples the broker's RSS in the background; remembers the maximum.
struct RssSampler {
    max: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: Option<u32>) -> RssSampler {
        let max = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = pid.map(|pid| {
            let (max, stop) = (max.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(rss) = procfs::rss_bytes(pid) {
                        max.fetch_max(rss, Ordering::Relaxed);
                    }
                    thread::sleep(Duration::from_millis(200));
                }
            })
        });
        RssSampler { max, stop, handle }
    }
    fn finish(mut self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let joined = self.handle.take().map(|h| h.join().is_ok());
        joined.and_then(|_| Some(self.max.load(Ordering::Relaxed)).filter(|&m| m > 0))
    }
}

fn port_of(bootstrap: &str) -> Option<u16> {
    bootstrap
        .split(',')
        .next()?
        .rsplit_once(':')?
        .1
        .parse()
        .ok()
}

fn broker_cpu(pid: Option<u32>) -> Option<f64> {
    pid.and_then(|p| procfs::cpu_seconds(p).ok())
}

/// Where the measured window starts: time, producer and consumer counts, broker CPU,
/// own CPU, host steal.
type WarmMark = (Instant, Counts, Counts, Option<f64>, f64, Option<f64>);

fn steal_s() -> Option<f64> {
    procfs::steal_seconds().ok()
}

fn self_cpu() -> f64 {
    procfs::cpu_seconds(std::process::id()).unwrap_or(0.0)
}

struct Clients {
    stats: Vec<Arc<WorkerStats>>,
    handles: Vec<thread::JoinHandle<Result<()>>>,
    stop: Arc<AtomicBool>,
}

impl Clients {
    fn join(self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        let mut first = None;
        for h in self.handles {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    eprintln!("client error: {e:#}");
                    first.get_or_insert(e);
                }
                Err(_) => {
                    first.get_or_insert(anyhow::anyhow!("client thread panicked"));
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
    fn finished(&self) -> bool {
        self.handles.iter().all(|h| h.is_finished())
    }
}

fn spawn_clients(
    base: &ClientCtx,
    count: u32,
    opts: &RunOptions,
    producer: bool,
    pin_offset: usize,
) -> Result<Clients> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut stats = Vec::new();
    let mut handles = Vec::new();
    for i in 0..count {
        let mut ctx = base.clone();
        ctx.index = i;
        ctx.stats = Arc::new(WorkerStats::default());
        ctx.stop = stop.clone();
        ctx.pin = (!opts.pin.is_empty()).then(|| core_affinity::CoreId {
            id: opts.pin[(pin_offset + i as usize) % opts.pin.len()],
        });
        stats.push(ctx.stats.clone());
        let driver = opts.driver;
        let name = format!("perf-{}-{i}", if producer { "p" } else { "c" });
        handles.push(thread::Builder::new().name(name).spawn(move || {
            match (driver, producer) {
                (Driver::Native, true) => crate::native::run_producer(ctx),
                (Driver::Native, false) => crate::native::run_consumer(ctx),
                #[cfg(feature = "rdkafka")]
            (Driver::Rdkafka, true) => crate::rdk::run_producer(ctx),
                #[cfg(feature = "rdkafka")]
            (Driver::Rdkafka, false) => crate::rdk::run_consumer(ctx),
            #[cfg(not(feature = "rdkafka"))]
            (Driver::Rdkafka, _) => {
                anyhow::bail!("this riptide-perf was built without the librdkafka driver: rebuild with --features rdkafka")
            }
            }
        })?);
    }
    Ok(Clients {
        stats,
        handles,
        stop,
    })
}

fn progress_bar(enabled: bool, label: &str) -> Option<ProgressBar> {
    if !enabled {
        return None;
    }
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix} {wide_msg}").unwrap(),
    );
    pb.set_prefix(label.to_string());
    Some(pb)
}

fn show(pb: &Option<ProgressBar>, plain: bool, msg: String) {
    match pb {
        Some(pb) => pb.set_message(msg),
        None if plain => eprintln!("  {msg}"),
        None => {}
    }
}

fn fmt_us(v: Option<u64>) -> String {
    v.map_or("-".into(), |us| format!("{:.2}ms", us as f64 / 1000.0))
}

pub fn run_once(
    w: &Workload,
    target: &Target,
    opts: &RunOptions,
    run_index: u32,
) -> Result<RunResult> {
    let started_unix_s = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let pid = match (target.pid, port_of(&target.bootstrap)) {
        (Some(pid), _) => Some(pid),
        (None, Some(port)) => match procfs::pids_by_port(port) {
            Ok(pids) if pids.len() > 1 => bail!(
                "target {}: port {port} is shared by processes {pids:?} (SO_REUSEPORT); \
                 the results would mix brokers. Stop the others or use another port.",
                target.name
            ),
            Ok(pids) => Some(pids[0]),
            Err(e) => {
                eprintln!(
                    "warning: target {}: no broker pid ({e:#}); CPU and RSS not measured",
                    target.name
                );
                None
            }
        },
        (None, None) => None,
    };
    let nonce = format!(
        "{:x}",
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros() & 0xffff_ffff
    );
    let mut admin =
        Conn::connect(&target.bootstrap).with_context(|| format!("target {}", target.name))?;
    let mut layouts = Vec::new();
    let mut topics = Vec::new();
    for t in 0..w.topics {
        let topic = format!("perf-{}-{nonce}-{t}", w.name);
        topics.push(topic.clone());
        layouts.push(wire::create_topic(
            &mut admin,
            &topic,
            w.partitions_per_topic,
            w.replication_factor,
            &w.topic_configs,
            TOPIC_CREATE_TIMEOUT,
        )?);
    }
    let w_arc = Arc::new(w.clone());
    let base = ClientCtx {
        workload: w_arc,
        layouts: Arc::new(layouts),
        bootstrap: target.bootstrap.clone(),
        target_name: target.name.clone(),
        index: 0,
        stats: Arc::new(WorkerStats::default()),
        stop: Arc::new(AtomicBool::new(false)),
        pin: None,
        rate_msgs_per_s: if w.producers > 0 {
            w.producer_rate_msgs_per_s as f64 / w.producers as f64
        } else {
            0.0
        },
        bytes_limit: 0,
        verify_crc: opts.verify_crc,
    };
    let label = format!("{} {} #{run_index}", w.name, target.name);
    let plain = opts.progress && !std::io::stderr().is_terminal();
    let pb = progress_bar(opts.progress && std::io::stderr().is_terminal(), &label);
    if plain {
        eprintln!("run {label} ({})", target.bootstrap);
    }
    BROKER_PID.with(|p| p.set(pid));
    let rss = RssSampler::start(pid);
    let result = if w.consume_backlog_bytes > 0 {
        run_backlog(w, &base, opts, &pb, plain)
    } else {
        run_live(w, &base, opts, &pb, plain)
    };
    let rss_max = rss.finish();
    if let Some(pb) = &pb {
        pb.finish_and_clear();
    }
    // Every run writes gigabytes into a fresh topic: delete it, so a suite of runs fits on
    // the disk (Riptide keeps everything for retention.ms) and in memory (an in-memory peer).
    // A fresh connection: the admin one may have been closed as idle during a long run.
    let deleted = Conn::connect(&target.bootstrap)
        .and_then(|mut c| wire::delete_topics(&mut c, &topics, TOPIC_CREATE_TIMEOUT));
    if let Err(e) = deleted {
        eprintln!(
            "warning: target {}: deleting the run's topics: {e:#}",
            target.name
        );
    }
    let m = result?;
    let basis_bytes = if m.produce.bytes > 0 {
        m.produce.bytes
    } else {
        m.consume.bytes
    };
    let broker_cpu_s = match (m.cpu_before, m.cpu_after) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let pid = BROKER_PID.with(|p| p.get()).or(pid);
    Ok(RunResult {
        workload: w.name.clone(),
        target: target.name.clone(),
        bootstrap: target.bootstrap.clone(),
        driver: opts.driver,
        run_index,
        started_unix_s,
        measured_s: m.seconds,
        produce: m.produce,
        consume: m.consume,
        publish_latency: m.publish,
        e2e_latency: m.e2e,
        broker_pid: pid,
        broker_cpu_s,
        broker_cpu_s_per_gib: broker_cpu_s
            .filter(|_| basis_bytes > 0)
            .map(|c| c / (basis_bytes as f64 / GIB)),
        broker_cores_busy: broker_cpu_s.map(|c| c / m.seconds.max(1e-9)),
        broker_rss_max_bytes: rss_max,
        client_cpu_s: m.client_cpu_s,
        steal_s: m.steal_s,
        produced_total: m.produced_total,
        consumed_total: m.consumed_total,
        errors_total: m.errors_total,
        all_consumed: m.all_consumed,
        timeline: m.timeline,
        spec: w.clone(),
    })
}

struct Measured {
    seconds: f64,
    produce: Throughput,
    consume: Throughput,
    publish: Option<Percentiles>,
    e2e: Option<Percentiles>,
    cpu_before: Option<f64>,
    cpu_after: Option<f64>,
    client_cpu_s: f64,
    steal_s: Option<f64>,
    produced_total: u64,
    consumed_total: u64,
    errors_total: u64,
    all_consumed: Option<bool>,
    timeline: Vec<Tick>,
}

/// Producers (and tail consumers) run together: warm-up, measured window, then drain.
fn run_live(
    w: &Workload,
    base: &ClientCtx,
    opts: &RunOptions,
    pb: &Option<ProgressBar>,
    plain: bool,
) -> Result<Measured> {
    let pid = base_pid(base);
    let consumers = if w.consumers > 0 {
        Some(spawn_clients(
            base,
            w.consumers,
            opts,
            false,
            w.producers as usize,
        )?)
    } else {
        None
    };
    let producers = spawn_clients(base, w.producers, opts, true, 0)?;
    let start = Instant::now();
    let warmup = Duration::from_secs(w.warmup_s);
    let mut warm: Option<WarmMark> = None;
    let mut timeline = Vec::new();
    let mut last = (Instant::now(), Counts::default(), Counts::default());
    let empty: Vec<Arc<WorkerStats>> = Vec::new();
    let cstats = consumers.as_ref().map_or(&empty, |c| &c.stats);
    let end = loop {
        thread::sleep(TICK);
        let now = Instant::now();
        let (pc, cc) = (Counts::of(&producers.stats), Counts::of(cstats));
        let (pi, ci) = (take_interval(&producers.stats), take_interval(cstats));
        let dt = (now - last.0).as_secs_f64();
        let tick = Tick {
            t_s: (now - start).as_secs_f64(),
            produce_msgs_per_s: pc.minus(last.1).msgs as f64 / dt,
            consume_msgs_per_s: cc.minus(last.2).msgs as f64 / dt,
            publish_p99_us: (!pi.is_empty()).then(|| pi.value_at_quantile(0.99)),
            e2e_p99_us: (!ci.is_empty()).then(|| ci.value_at_quantile(0.99)),
        };
        let phase = if warm.is_none() { "warm-up" } else { "measure" };
        show(pb, plain, format!(
            "{phase} produce {:.0} msg/s {:.1} MiB/s p99 {} | consume {:.0} msg/s e2e p99 {} | errors {}",
            tick.produce_msgs_per_s,
            pc.minus(last.1).bytes as f64 / MIB / dt,
            fmt_us(tick.publish_p99_us),
            tick.consume_msgs_per_s,
            fmt_us(tick.e2e_p99_us),
            pc.errors + cc.errors
        ));
        timeline.push(tick);
        last = (now, pc, cc);
        if producers.finished() {
            break now; // a producer failed; join reports why
        }
        match warm {
            None if now - start >= warmup => {
                merge_total(&producers.stats, true);
                merge_total(cstats, true);
                warm = Some((now, pc, cc, broker_cpu(pid), self_cpu(), steal_s()));
            }
            Some((t0, pc0, _, _, _, _)) => {
                let elapsed = (now - t0).as_secs_f64();
                let enough_bytes = pc.minus(pc0).bytes >= w.produce_bytes_min;
                if (elapsed >= w.duration_s as f64 && enough_bytes)
                    || elapsed >= DURATION_S_MAX as f64
                {
                    break now;
                }
            }
            None => {}
        }
    };
    let (t0, pc0, cc0, cpu0, self0, steal0) = warm.unwrap_or((
        start,
        Counts::default(),
        Counts::default(),
        broker_cpu(pid),
        0.0,
        None,
    ));
    let (pc1, cc1) = (Counts::of(&producers.stats), Counts::of(cstats));
    let (cpu1, self1, steal1) = (broker_cpu(pid), self_cpu(), steal_s());
    let publish = Percentiles::of(&merge_total(&producers.stats, false));
    let e2e_window = merge_total(cstats, false);
    let seconds = (end - t0).as_secs_f64();
    let pstats = producers.stats.clone();
    let producer_result = producers.join();
    // After the join every outstanding ack has arrived: this is the count to read back.
    let pfinal = Counts::of(&pstats);
    let mut all_consumed = None;
    let mut consumed_total = 0;
    let mut errors_total = pfinal.errors;
    if let Some(c) = consumers {
        let drain_deadline = Instant::now() + Duration::from_secs(w.drain_timeout_s);
        loop {
            let got = Counts::of(&c.stats).msgs;
            if got >= pfinal.msgs || Instant::now() >= drain_deadline {
                break;
            }
            show(
                pb,
                plain,
                format!("drain: consumed {got} of {}", pfinal.msgs),
            );
            thread::sleep(Duration::from_millis(50));
        }
        let cstats_final = c.stats.clone();
        let consumer_result = c.join();
        let cc = Counts::of(&cstats_final);
        consumed_total = cc.msgs;
        errors_total += cc.errors;
        all_consumed = Some(cc.msgs == pfinal.msgs);
        consumer_result?;
    }
    producer_result?;
    Ok(Measured {
        seconds,
        produce: Throughput::of(pc1.minus(pc0), seconds),
        consume: Throughput::of(cc1.minus(cc0), seconds),
        publish,
        e2e: Percentiles::of(&e2e_window),
        cpu_before: cpu0,
        cpu_after: cpu1,
        client_cpu_s: self1 - self0,
        steal_s: steal1.zip(steal0).map(|(b, a)| b - a),
        produced_total: pfinal.msgs,
        consumed_total,
        errors_total,
        all_consumed,
        timeline,
    })
}

fn base_pid(base: &ClientCtx) -> Option<u32> {
    BROKER_PID
        .with(|p| p.get())
        .or_else(|| port_of(&base.bootstrap).and_then(|p| procfs::pid_by_port(p).ok()))
}

thread_local! {
    /// The pid resolved by `run_once`, visible to the phase functions on the same thread.
    static BROKER_PID: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// Fill the topic with `consume_backlog_bytes`, then time consumers reading it from offset 0.
fn run_backlog(
    w: &Workload,
    base: &ClientCtx,
    opts: &RunOptions,
    pb: &Option<ProgressBar>,
    plain: bool,
) -> Result<Measured> {
    let mut pid = base_pid(base);
    let producers_n = w.producers.max(1);
    let mut fill = base.clone();
    fill.bytes_limit = w.consume_backlog_bytes.div_ceil(producers_n as u64);
    fill.rate_msgs_per_s = 0.0;
    let producers = spawn_clients(&fill, producers_n, opts, true, 0)?;
    let pstats = producers.stats.clone();
    let fill_start = Instant::now();
    while !producers.finished() {
        thread::sleep(Duration::from_millis(200));
        let c = Counts::of(&pstats);
        show(
            pb,
            plain,
            format!(
                "fill: {:.0} MiB of {:.0} MiB",
                c.bytes as f64 / MIB,
                w.consume_backlog_bytes as f64 / MIB
            ),
        );
    }
    let fill_s = fill_start.elapsed().as_secs_f64();
    producers.join()?;
    let produced = Counts::of(&pstats);
    if plain {
        eprintln!("  filled {} msgs in {fill_s:.1}s", produced.msgs);
    }
    if let Some(cmd) = &opts.before_consume {
        // The command learns which target is being measured (with --compare it runs for
        // each): e.g. restart only the broker under test, so its own caches are cold.
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env("RIPTIDE_PERF_TARGET", &base.target_name)
            .env("RIPTIDE_PERF_BOOTSTRAP", &base.bootstrap)
            .status()
            .context("running --before-consume")?;
        if !status.success() {
            bail!("--before-consume command failed: {status}");
        }
        pid = port_of(&base.bootstrap)
            .and_then(|p| procfs::pid_by_port(p).ok())
            .or(pid);
        BROKER_PID.with(|p| p.set(pid));
    }
    let (cpu0, self0, steal0) = (broker_cpu(pid), self_cpu(), steal_s());
    let t0 = Instant::now();
    let consumers = spawn_clients(base, w.consumers, opts, false, producers_n as usize)?;
    let cap = Duration::from_secs(w.duration_s + w.drain_timeout_s);
    let mut timeline = Vec::new();
    let mut last = (t0, Counts::default());
    loop {
        thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        let c = Counts::of(&consumers.stats);
        if now - last.0 >= TICK {
            let dt = (now - last.0).as_secs_f64();
            let tick = Tick {
                t_s: (now - t0).as_secs_f64(),
                consume_msgs_per_s: c.minus(last.1).msgs as f64 / dt,
                ..Tick::default()
            };
            show(
                pb,
                plain,
                format!(
                    "consume {:.0} msg/s {:.1} MiB/s, {} of {}",
                    tick.consume_msgs_per_s,
                    c.minus(last.1).bytes as f64 / MIB / dt,
                    c.msgs,
                    produced.msgs
                ),
            );
            timeline.push(tick);
            last = (now, c);
        }
        if c.msgs >= produced.msgs || now - t0 >= cap || consumers.finished() {
            break;
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let (cpu1, self1, steal1) = (broker_cpu(pid), self_cpu(), steal_s());
    let cstats = consumers.stats.clone();
    let consumer_result = consumers.join();
    let cc = Counts::of(&cstats);
    consumer_result?;
    if cc.msgs < produced.msgs {
        eprintln!(
            "warning: consumed {} of {} messages before the {}s cap",
            cc.msgs,
            produced.msgs,
            cap.as_secs()
        );
    }
    Ok(Measured {
        seconds,
        produce: Throughput::default(),
        consume: Throughput::of(cc, seconds),
        publish: None,
        e2e: None,
        cpu_before: cpu0,
        cpu_after: cpu1,
        client_cpu_s: self1 - self0,
        steal_s: steal1.zip(steal0).map(|(b, a)| b - a),
        produced_total: produced.msgs,
        consumed_total: cc.msgs,
        errors_total: produced.errors + cc.errors,
        all_consumed: Some(cc.msgs == produced.msgs),
        timeline,
    })
}

/// Refuses to benchmark a target whose pid cannot be read, when the caller insisted on one.
pub fn check_pid(pid: u32) -> Result<()> {
    if procfs::cpu_seconds(pid).is_err() {
        bail!("cannot read /proc/{pid}/stat");
    }
    Ok(())
}
