//! `riptide-perf`: run a workload against one Kafka-protocol broker, or against several in
//! alternation (`--compare`), and write JSON, a markdown table and SVG latency plots.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Parser;
use perf::report::{markdown, summarize, Failure, Summary};
use perf::runner::{check_pid, run_once, Driver, RunOptions, RunResult, Target};
use perf::{plot, workload};

#[derive(Parser, Debug)]
#[command(
    name = "riptide-perf",
    about = "Kafka-protocol broker benchmark harness"
)]
struct Args {
    /// Workload file (perf/workloads/*.toml).
    #[arg(long, short)]
    workload: PathBuf,
    /// One broker's bootstrap address.
    #[arg(long, conflicts_with = "compare")]
    bootstrap: Option<String>,
    /// Several brokers, run in alternation A, B, A, B … `--runs` times each.
    #[arg(long, value_delimiter = ',')]
    compare: Vec<String>,
    /// Names for the targets, in order (default: the addresses).
    #[arg(long, value_delimiter = ',')]
    names: Vec<String>,
    /// Broker pids for /proc CPU and RSS, in order (default: found from the listening port).
    #[arg(long, value_delimiter = ',')]
    pids: Vec<u32>,
    /// Runs per target.
    #[arg(long, default_value_t = 1)]
    runs: u32,
    #[arg(long, value_enum, default_value_t = Driver::Native)]
    driver: Driver,
    /// Workload overrides, key=value (TOML values), e.g. --set acks=\"1\" --set duration_s=5.
    #[arg(long = "set")]
    overrides: Vec<String>,
    /// Where to write <workload>-<driver>.json / .md / -latency.svg.
    #[arg(long, default_value = "perf-results")]
    out_dir: PathBuf,
    /// Pin client threads to these cores, round-robin.
    #[arg(long, value_delimiter = ',')]
    pin: Vec<usize>,
    /// Check every consumed batch's CRC-32C (costs client CPU).
    #[arg(long)]
    verify_crc: bool,
    #[arg(long)]
    no_progress: bool,
    /// Shell command run after a backlog fill, before consuming (e.g. drop the page cache).
    #[arg(long)]
    before_consume: Option<String>,
    /// Instead of a plain run: find the highest producer rate each target holds with publish
    /// p99 below this many ms (an unthrottled run, then rates stepping down from 90% of it).
    #[arg(long)]
    find_max_p99_ms: Option<f64>,
    /// Rate steps tried by --find-max-p99-ms before giving up.
    #[arg(long, default_value_t = 6)]
    find_max_steps: u32,
    /// Seconds to pause between runs (lets the brokers settle).
    #[arg(long, default_value_t = 1)]
    pause_s: u64,
}

fn targets(args: &Args) -> Result<Vec<Target>> {
    let addrs: Vec<String> = match (&args.bootstrap, args.compare.is_empty()) {
        (Some(b), true) => vec![b.clone()],
        (None, false) => args.compare.clone(),
        _ => bail!("give --bootstrap ADDR or --compare A,B"),
    };
    if !args.names.is_empty() && args.names.len() != addrs.len() {
        bail!("--names needs one name per address");
    }
    if !args.pids.is_empty() && args.pids.len() != addrs.len() {
        bail!("--pids needs one pid per address");
    }
    for &p in &args.pids {
        check_pid(p)?;
    }
    Ok(addrs
        .iter()
        .enumerate()
        .map(|(i, a)| Target {
            name: args.names.get(i).cloned().unwrap_or_else(|| a.clone()),
            bootstrap: a.clone(),
            pid: args.pids.get(i).copied(),
        })
        .collect())
}

/// The run whose `key` is the median among `runs` (for plotting a representative curve).
fn median_run<'a>(
    runs: &[&'a RunResult],
    key: impl Fn(&RunResult) -> Option<u64>,
) -> Option<&'a RunResult> {
    let mut with: Vec<(&RunResult, u64)> = runs
        .iter()
        .filter_map(|r| key(r).map(|k| (*r, k)))
        .collect();
    with.sort_by_key(|x| x.1);
    with.get(with.len() / 2).map(|x| x.0)
}

fn write_outputs(args: &Args, s: &Summary) -> Result<String> {
    std::fs::create_dir_all(&args.out_dir)?;
    let stem = format!("{}-{}", s.workload, s.driver);
    let json = args.out_dir.join(format!("{stem}.json"));
    std::fs::write(&json, serde_json::to_string_pretty(s)?)?;
    let mut md = markdown(s);
    let mut series_data = Vec::new();
    for t in &s.targets {
        let mine: Vec<&RunResult> = s.runs.iter().filter(|r| r.target == t.name).collect();
        if let Some(r) = median_run(&mine, |r| r.publish_latency.as_ref().map(|p| p.p99_us)) {
            series_data.push((
                format!("{} publish", t.name),
                r.publish_latency.clone().unwrap(),
            ));
        }
        if let Some(r) = median_run(&mine, |r| r.e2e_latency.as_ref().map(|p| p.p99_us)) {
            series_data.push((
                format!("{} end-to-end", t.name),
                r.e2e_latency.clone().unwrap(),
            ));
        }
    }
    if !series_data.is_empty() {
        let svg = args.out_dir.join(format!("{stem}-latency.svg"));
        let series: Vec<(String, &perf::stats::Percentiles)> =
            series_data.iter().map(|(l, p)| (l.clone(), p)).collect();
        plot::percentile_svg(
            &svg,
            &format!("{} latency by percentile ({})", s.workload, s.driver),
            &series,
        )?;
        md.push_str(&format!(
            "\n![latency percentiles]({})\n",
            svg.file_name().unwrap().to_string_lossy()
        ));
    }
    let timeline: Vec<(String, Vec<(f64, f64)>)> = s
        .targets
        .iter()
        .filter_map(|t| {
            let r = s.runs.iter().find(|r| r.target == t.name)?;
            let pts: Vec<(f64, f64)> = r
                .timeline
                .iter()
                .filter_map(|k| {
                    k.e2e_p99_us
                        .or(k.publish_p99_us)
                        .map(|us| (k.t_s, us as f64 / 1000.0))
                })
                .collect();
            (pts.len() >= 10).then(|| (t.name.clone(), pts))
        })
        .collect();
    if !timeline.is_empty() {
        let svg = args.out_dir.join(format!("{stem}-timeline.svg"));
        plot::timeline_svg(
            &svg,
            &format!(
                "{}: p99 per second (e2e, else publish), first run",
                s.workload
            ),
            &timeline,
        )?;
        md.push_str(&format!(
            "\n![p99 over time]({})\n",
            svg.file_name().unwrap().to_string_lossy()
        ));
    }
    std::fs::write(args.out_dir.join(format!("{stem}.md")), &md)?;
    Ok(md)
}

#[derive(serde::Serialize)]
struct MaxStep {
    rate_msgs_per_s: u64,
    achieved_msgs_per_s: f64,
    publish_p99_ms: Option<f64>,
    errors: u64,
    held: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(serde::Serialize)]
struct MaxResult {
    target: String,
    bootstrap: String,
    p99_limit_ms: f64,
    max_rate_msgs_per_s: Option<u64>,
    steps: Vec<MaxStep>,
}

/// A rate is held when the producers achieved it (within 5%), without errors, with publish
/// p99 under the limit.
fn held(r: &RunResult, rate: u64, p99_limit_ms: f64) -> bool {
    let p99_ok = r
        .publish_latency
        .as_ref()
        .is_some_and(|p| (p.p99_us as f64 / 1000.0) < p99_limit_ms);
    let achieved = rate == 0 || r.produce.msgs_per_s >= 0.95 * rate as f64;
    p99_ok && achieved && r.errors_total == 0
}

fn find_max(
    args: &Args,
    w: &workload::Workload,
    targets: &[Target],
    opts: &RunOptions,
    limit_ms: f64,
) -> Result<()> {
    let mut results = Vec::new();
    for t in targets {
        let mut steps = Vec::new();
        let mut rate = 0u64; // unthrottled first: the ceiling to step down from
        let mut found = None;
        for step in 0..=args.find_max_steps {
            let mut wr = w.clone();
            wr.producer_rate_msgs_per_s = rate;
            let r = match run_once(&wr, t, opts, step) {
                Ok(r) => r,
                Err(e) => {
                    // A failed step is a rate not held; the search goes on below it.
                    eprintln!("  {} step {step} FAILED: {e:#}", t.name);
                    steps.push(MaxStep {
                        rate_msgs_per_s: rate,
                        achieved_msgs_per_s: 0.0,
                        publish_p99_ms: None,
                        errors: 1,
                        held: false,
                        error: Some(format!("{e:#}")),
                    });
                    if rate == 0 {
                        break; // no ceiling to step down from
                    }
                    rate = rate * 4 / 5;
                    if rate == 0 {
                        break;
                    }
                    continue;
                }
            };
            let ok = held(&r, rate, limit_ms);
            eprintln!(
                "  {} rate {}: achieved {:.0} msg/s, publish p99 {:?} ms, held {ok}",
                t.name,
                if rate == 0 {
                    "max".to_string()
                } else {
                    rate.to_string()
                },
                r.produce.msgs_per_s,
                r.publish_latency.as_ref().map(|p| p.p99_us as f64 / 1000.0)
            );
            steps.push(MaxStep {
                rate_msgs_per_s: rate,
                achieved_msgs_per_s: r.produce.msgs_per_s,
                publish_p99_ms: r.publish_latency.as_ref().map(|p| p.p99_us as f64 / 1000.0),
                errors: r.errors_total,
                held: ok,
                error: None,
            });
            if rate == 0 {
                rate = (r.produce.msgs_per_s * 0.9) as u64;
            } else if ok {
                found = Some(rate);
                break;
            } else {
                rate = rate * 4 / 5;
            }
            if rate == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_secs(args.pause_s));
        }
        println!(
            "max {} {}",
            t.name,
            found.map_or("none".to_string(), |r| r.to_string())
        );
        results.push(MaxResult {
            target: t.name.clone(),
            bootstrap: t.bootstrap.clone(),
            p99_limit_ms: limit_ms,
            max_rate_msgs_per_s: found,
            steps,
        });
    }
    std::fs::create_dir_all(&args.out_dir)?;
    let path = args.out_dir.join(format!("max-{}.json", w.name));
    std::fs::write(&path, serde_json::to_string_pretty(&results)?)?;
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let w = workload::load(&args.workload, &args.overrides)?;
    let targets = targets(&args)?;
    if args.runs == 0 || args.runs > 100 {
        bail!("--runs must lie in 1..=100");
    }
    let opts = RunOptions {
        driver: args.driver,
        pin: args.pin.clone(),
        verify_crc: args.verify_crc,
        progress: !args.no_progress,
        before_consume: args.before_consume.clone(),
    };
    if let Some(limit_ms) = args.find_max_p99_ms {
        return find_max(&args, &w, &targets, &opts, limit_ms);
    }
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for run in 0..args.runs {
        for t in &targets {
            let r = match run_once(&w, t, &opts, run) {
                Ok(r) => r,
                Err(e) => {
                    // One failed run (a broker that stopped answering, say) must not discard
                    // the others: record it and go on.
                    eprintln!("  {} #{run}: FAILED: {e:#}", t.name);
                    failures.push(Failure {
                        target: t.name.clone(),
                        run_index: run,
                        error: format!("{e:#}"),
                    });
                    std::thread::sleep(std::time::Duration::from_secs(args.pause_s));
                    continue;
                }
            };
            eprintln!(
                "  {} #{run}: produce {:.0} msg/s {:.1} MiB/s, consume {:.0} msg/s, publish p99 {}, e2e p99 {}, broker cpu {} s/GiB, produced {} consumed {} errors {}",
                t.name,
                r.produce.msgs_per_s,
                r.produce.mib_per_s,
                r.consume.msgs_per_s,
                r.publish_latency.as_ref().map_or("-".into(), |p| format!("{:.2}ms", p.p99_us as f64 / 1000.0)),
                r.e2e_latency.as_ref().map_or("-".into(), |p| format!("{:.2}ms", p.p99_us as f64 / 1000.0)),
                r.broker_cpu_s_per_gib.map_or("-".into(), |c| format!("{c:.2}")),
                r.produced_total,
                if r.all_consumed.is_some() { r.consumed_total.to_string() } else { "-".into() },
                r.errors_total,
            );
            results.push(r);
            std::thread::sleep(std::time::Duration::from_secs(args.pause_s));
        }
    }
    let summary = summarize(&results, &failures);
    let md = write_outputs(&args, &summary)?;
    println!("{md}");
    if results.is_empty() {
        bail!("every run failed");
    }
    Ok(())
}
