//! `perf`: a benchmark harness that speaks the Kafka protocol to any broker (Riptide, Apache
//! Kafka, Redpanda, Tansu). The binary `riptide-perf` reads a workload file, drives it with one
//! of two clients (a lean native load generator or librdkafka), and reports throughput,
//! latency percentiles and the broker's CPU and memory cost.
//!
//! This crate is a measuring tool, not part of the broker: it uses `anyhow` for errors.

pub mod batch;
pub mod native;
pub mod plot;
pub mod procfs;
#[cfg(feature = "rdkafka")]
pub mod rdk;
pub mod report;
pub mod runner;
pub mod stats;
pub mod wire;
pub mod workload;
