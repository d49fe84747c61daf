//! Reports: JSON for machines, a markdown table for people, and the `--compare` summary
//! (medians, min–max and per-metric ratios over alternating runs).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::runner::{RunResult, MIB};

/// Whether a larger value of a metric is better (for reading ratios).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Better {
    Higher,
    Lower,
    Neither,
}

pub struct Metric {
    pub name: &'static str,
    pub unit: &'static str,
    pub better: Better,
    pub get: fn(&RunResult) -> Option<f64>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The metrics every table shows, in order. Rows with no value in any run are dropped.
pub const METRICS: &[Metric] = &[
    Metric {
        name: "produce",
        unit: "msg/s",
        better: Better::Higher,
        get: |r| (r.produce.msgs > 0).then_some(r.produce.msgs_per_s),
    },
    Metric {
        name: "produce",
        unit: "MiB/s",
        better: Better::Higher,
        get: |r| (r.produce.msgs > 0).then_some(r.produce.mib_per_s),
    },
    Metric {
        name: "consume",
        unit: "msg/s",
        better: Better::Higher,
        get: |r| (r.consume.msgs > 0).then_some(r.consume.msgs_per_s),
    },
    Metric {
        name: "consume",
        unit: "MiB/s",
        better: Better::Higher,
        get: |r| (r.consume.msgs > 0).then_some(r.consume.mib_per_s),
    },
    Metric {
        name: "publish p50",
        unit: "ms",
        better: Better::Lower,
        get: |r| r.publish_latency.as_ref().map(|p| ms(p.p50_us)),
    },
    Metric {
        name: "publish p90",
        unit: "ms",
        better: Better::Lower,
        get: |r| r.publish_latency.as_ref().map(|p| ms(p.p90_us)),
    },
    Metric {
        name: "publish p99",
        unit: "ms",
        better: Better::Lower,
        get: |r| r.publish_latency.as_ref().map(|p| ms(p.p99_us)),
    },
    Metric {
        name: "publish p99.9",
        unit: "ms",
        better: Better::Lower,
        get: |r| r.publish_latency.as_ref().map(|p| ms(p.p999_us)),
    },
    Metric {
        name: "publish p99.99",
        unit: "ms",
        better: Better::Lower,
        get: |r| r.publish_latency.as_ref().map(|p| ms(p.p9999_us)),
    },
    Metric {
        name: "publish max",
        unit: "ms",
        better: Better::Lower,
        get: |r| r.publish_latency.as_ref().map(|p| ms(p.max_us)),
    },
    Metric {
        name: "e2e p50",
        unit: "ms",
        better: Better::Lower,
        get: |r| r.e2e_latency.as_ref().map(|p| ms(p.p50_us)),
    },
    Metric {
        name: "e2e p90",
        unit: "ms",
        better: Better::Lower,
        get: |r| r.e2e_latency.as_ref().map(|p| ms(p.p90_us)),
    },
    Metric {
        name: "e2e p99",
        unit: "ms",
        better: Better::Lower,
        get: |r| r.e2e_latency.as_ref().map(|p| ms(p.p99_us)),
    },
    Metric {
        name: "e2e p99.9",
        unit: "ms",
        better: Better::Lower,
        get: |r| r.e2e_latency.as_ref().map(|p| ms(p.p999_us)),
    },
    Metric {
        name: "e2e p99.99",
        unit: "ms",
        better: Better::Lower,
        get: |r| r.e2e_latency.as_ref().map(|p| ms(p.p9999_us)),
    },
    Metric {
        name: "e2e max",
        unit: "ms",
        better: Better::Lower,
        get: |r| r.e2e_latency.as_ref().map(|p| ms(p.max_us)),
    },
    Metric {
        name: "broker CPU",
        unit: "core-s/GiB",
        better: Better::Lower,
        get: |r| r.broker_cpu_s_per_gib,
    },
    Metric {
        name: "broker CPU",
        unit: "cores busy",
        better: Better::Neither,
        get: |r| r.broker_cores_busy,
    },
    Metric {
        name: "broker RSS max",
        unit: "MiB",
        better: Better::Lower,
        get: |r| r.broker_rss_max_bytes.map(|b| b as f64 / MIB),
    },
    Metric {
        name: "client CPU",
        unit: "core-s",
        better: Better::Neither,
        get: |r| Some(r.client_cpu_s),
    },
    Metric {
        name: "host steal (all CPUs)",
        unit: "s",
        better: Better::Neither,
        get: |r| r.steal_s,
    },
    Metric {
        name: "errors",
        unit: "count",
        better: Better::Lower,
        get: |r| Some(r.errors_total as f64),
    },
    Metric {
        name: "produced total",
        unit: "msgs",
        better: Better::Neither,
        get: |r| Some(r.produced_total as f64),
    },
    Metric {
        name: "consumed total",
        unit: "msgs",
        better: Better::Neither,
        get: |r| r.all_consumed.map(|_| r.consumed_total as f64),
    },
];

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

pub fn spread(values: &[f64]) -> Option<Spread> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[n - 1],
        n,
    })
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct TargetSummary {
    pub name: String,
    pub bootstrap: String,
    /// "metric (unit)" → spread over runs.
    pub metrics: BTreeMap<String, Spread>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Summary {
    pub workload: String,
    pub driver: String,
    pub runs_per_target: usize,
    pub targets: Vec<TargetSummary>,
    /// "metric (unit)" → median of the first target / median of each other target.
    pub ratios: BTreeMap<String, Vec<Option<f64>>>,
    pub runs: Vec<RunResult>,
    /// Runs that ended in an error (the others still count).
    #[serde(default)]
    pub failures: Vec<Failure>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Failure {
    pub target: String,
    pub run_index: u32,
    pub error: String,
}

pub fn key(m: &Metric) -> String {
    format!("{} ({})", m.name, m.unit)
}

/// Groups runs by target (in first-seen order) and summarizes each metric.
pub fn summarize(runs: &[RunResult], failures: &[Failure]) -> Summary {
    let mut names: Vec<(String, String)> = Vec::new();
    for r in runs {
        if !names.iter().any(|(n, _)| n == &r.target) {
            names.push((r.target.clone(), r.bootstrap.clone()));
        }
    }
    let targets: Vec<TargetSummary> = names
        .iter()
        .map(|(name, bootstrap)| {
            let mine: Vec<&RunResult> = runs.iter().filter(|r| &r.target == name).collect();
            let metrics = METRICS
                .iter()
                .filter_map(|m| {
                    let vals: Vec<f64> = mine.iter().filter_map(|r| (m.get)(r)).collect();
                    spread(&vals).map(|s| (key(m), s))
                })
                .collect();
            TargetSummary {
                name: name.clone(),
                bootstrap: bootstrap.clone(),
                metrics,
            }
        })
        .collect();
    let mut ratios = BTreeMap::new();
    if let Some(first) = targets.first() {
        for m in METRICS {
            let k = key(m);
            let Some(a) = first.metrics.get(&k) else {
                continue;
            };
            let row: Vec<Option<f64>> = targets[1..]
                .iter()
                .map(|t| {
                    t.metrics
                        .get(&k)
                        .and_then(|b| (b.median != 0.0).then(|| a.median / b.median))
                })
                .collect();
            ratios.insert(k, row);
        }
    }
    Summary {
        workload: runs.first().map(|r| r.workload.clone()).unwrap_or_default(),
        driver: runs
            .first()
            .map(|r| format!("{:?}", r.driver).to_lowercase())
            .unwrap_or_default(),
        runs_per_target: targets
            .first()
            .map(|t| runs.iter().filter(|r| r.target == t.name).count())
            .unwrap_or(0),
        targets,
        ratios,
        runs: runs.to_vec(),
        failures: failures.to_vec(),
    }
}

fn fmt(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A markdown table: one row per metric, one column per target (median and min–max over
/// runs), then the ratio of the first target to each other one.
pub fn markdown(s: &Summary) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "**{}** — driver {}, {} run(s) per target",
        s.workload, s.driver, s.runs_per_target
    ));
    if let Some(r) = s.runs.first() {
        let w = &r.spec;
        out.push_str(&format!(
            "; {}×{} partitions, {:?} B messages, acks={}, linger {} ms, {} producer(s) / {} consumer(s), rate {}",
            w.topics,
            w.partitions_per_topic,
            w.message_size,
            w.acks,
            w.linger_ms,
            w.producers,
            w.consumers,
            if w.producer_rate_msgs_per_s == 0 { "max".to_string() } else { format!("{} msg/s", w.producer_rate_msgs_per_s) }
        ));
    }
    out.push_str("\n\n| metric |");
    for t in &s.targets {
        out.push_str(&format!(" {} |", t.name));
    }
    let first = s
        .targets
        .first()
        .map(|t| t.name.clone())
        .unwrap_or_default();
    for t in s.targets.iter().skip(1) {
        out.push_str(&format!(" {first}/{} |", t.name));
    }
    out.push_str("\n|---|");
    for _ in 0..(s.targets.len() * 2).saturating_sub(1) {
        out.push_str("---:|");
    }
    out.push('\n');
    for m in METRICS {
        let k = key(m);
        if !s.targets.iter().any(|t| t.metrics.contains_key(&k)) {
            continue;
        }
        out.push_str(&format!("| {k} |"));
        for t in &s.targets {
            match t.metrics.get(&k) {
                Some(sp) if sp.n > 1 => out.push_str(&format!(
                    " {} ({}–{}) |",
                    fmt(sp.median),
                    fmt(sp.min),
                    fmt(sp.max)
                )),
                Some(sp) => out.push_str(&format!(" {} |", fmt(sp.median))),
                None => out.push_str(" – |"),
            }
        }
        for r in s.ratios.get(&k).into_iter().flatten() {
            out.push_str(&match r {
                Some(r) => format!(" {r:.2}× |"),
                None => " – |".into(),
            });
        }
        out.push('\n');
    }
    let incomplete: Vec<String> = s
        .runs
        .iter()
        .filter(|r| r.all_consumed == Some(false))
        .map(|r| {
            format!(
                "{} run {}: consumed {} of {}",
                r.target, r.run_index, r.consumed_total, r.produced_total
            )
        })
        .collect();
    for f in &s.failures {
        out.push_str(&format!(
            "\n**Failed run:** {} run {}: {}\n",
            f.target, f.run_index, f.error
        ));
    }
    if !incomplete.is_empty() {
        out.push_str(&format!(
            "\n**Not all messages were consumed back:** {}\n",
            incomplete.join("; ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_median_even_and_odd() {
        assert_eq!(
            spread(&[3.0, 1.0, 2.0]).unwrap(),
            Spread {
                median: 2.0,
                min: 1.0,
                max: 3.0,
                n: 3
            }
        );
        assert_eq!(spread(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert!(spread(&[]).is_none());
    }
}
