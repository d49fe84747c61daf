//! Counters and latency histograms shared between client threads and the run controller.
//!
//! Each worker owns one `WorkerStats`; the hot path touches only its own atomics and its own
//! (uncontended) mutex, once per batch or response, never per message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies are recorded in microseconds, 1 µs to 60 s, 3 significant digits.
pub const LATENCY_US_MAX: u64 = 60_000_000;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
        .expect("histogram bounds are constant and valid")
}

/// Wall clock in µs since the Unix epoch: the payload timestamp, comparable across processes.
pub fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

pub fn record(h: &mut Histogram<u64>, latency_us: u64, count: u64) {
    let v = latency_us.clamp(1, LATENCY_US_MAX);
    h.record_n(v, count)
        .expect("value clamped into the histogram's range");
}

pub struct Hists {
    pub total: Histogram<u64>,
    /// Since the last timeline tick.
    pub interval: Histogram<u64>,
}

impl Hists {
    fn new() -> Hists {
        Hists {
            total: new_histogram(),
            interval: new_histogram(),
        }
    }
    pub fn record(&mut self, latency_us: u64, count: u64) {
        record(&mut self.total, latency_us, count);
        record(&mut self.interval, latency_us, count);
    }
}

pub struct WorkerStats {
    pub msgs: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
    /// Publish latency for producers, end-to-end latency for consumers.
    pub latency: Mutex<Hists>,
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            msgs: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: Mutex::new(Hists::new()),
        }
    }
}

impl WorkerStats {
    pub fn add(&self, msgs: u64, bytes: u64) {
        self.msgs.fetch_add(msgs, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn error(&self, n: u64) {
        self.errors.fetch_add(n, Ordering::Relaxed);
    }
}

/// Sum of counters over workers at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub msgs: u64,
    pub bytes: u64,
    pub errors: u64,
}

impl Counts {
    pub fn of(workers: &[std::sync::Arc<WorkerStats>]) -> Counts {
        let mut c = Counts::default();
        for w in workers {
            c.msgs += w.msgs.load(Ordering::Relaxed);
            c.bytes += w.bytes.load(Ordering::Relaxed);
            c.errors += w.errors.load(Ordering::Relaxed);
        }
        c
    }
    pub fn minus(self, earlier: Counts) -> Counts {
        Counts {
            msgs: self.msgs.saturating_sub(earlier.msgs),
            bytes: self.bytes.saturating_sub(earlier.bytes),
            errors: self.errors.saturating_sub(earlier.errors),
        }
    }
}

/// Merges the workers' total histograms; with `reset`, clears them (end of warm-up).
pub fn merge_total(workers: &[std::sync::Arc<WorkerStats>], reset: bool) -> Histogram<u64> {
    let mut out = new_histogram();
    for w in workers {
        let mut h = w.latency.lock().unwrap();
        out.add(&h.total).expect("same bounds");
        if reset {
            h.total.reset();
        }
    }
    out
}

/// Merges and clears the workers' interval histograms (one timeline tick).
pub fn take_interval(workers: &[std::sync::Arc<WorkerStats>]) -> Histogram<u64> {
    let mut out = new_histogram();
    for w in workers {
        let mut h = w.latency.lock().unwrap();
        out.add(&h.interval).expect("same bounds");
        h.interval.reset();
    }
    out
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Percentiles {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub p9999_us: u64,
    pub max_us: u64,
    /// (percentile, µs) points for plotting, from the histogram's percentile iterator.
    #[serde(default)]
    pub curve: Vec<(f64, u64)>,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        if h.is_empty() {
            return None;
        }
        let mut curve: Vec<(f64, u64)> = h
            .iter_quantiles(5)
            .map(|v| (v.quantile_iterated_to() * 100.0, v.value_iterated_to()))
            .filter(|(q, _)| *q < 99.9999)
            .collect();
        curve.dedup_by(|a, b| (a.0 - b.0).abs() < 1e-9);
        Some(Percentiles {
            count: h.len(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            p9999_us: h.value_at_quantile(0.9999),
            max_us: h.max(),
            curve,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_recorded_values() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            record(&mut h, v, 1);
        }
        record(&mut h, 0, 1); // clamped to 1
        record(&mut h, u64::MAX, 1); // clamped to the max
        let p = Percentiles::of(&h).unwrap();
        assert_eq!(p.count, 1002);
        assert!((495..=505).contains(&p.p50_us), "{}", p.p50_us);
        assert!((985..=995).contains(&p.p99_us), "{}", p.p99_us);
        assert!(p.max_us >= LATENCY_US_MAX - LATENCY_US_MAX / 1000);
        assert!(p
            .curve
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert!(Percentiles::of(&new_histogram()).is_none());
    }

    #[test]
    fn counts_subtract_saturating() {
        let a = Counts {
            msgs: 10,
            bytes: 100,
            errors: 1,
        };
        let b = Counts {
            msgs: 4,
            bytes: 40,
            errors: 2,
        };
        assert_eq!(
            a.minus(b),
            Counts {
                msgs: 6,
                bytes: 60,
                errors: 0
            }
        );
    }
}
