//! Riptide: a Kafka-compatible broker on the `shards` thread-per-core engine.
//!
//! Layers, in dependency order: `shards` (storage, runtime) → [`metadata`] and
//! [`controller`] (cluster metadata) → [`broker`] (per-shard state) → [`api`] (one handler
//! per Kafka API) → [`server`] (listeners, connections). See ARCHITECTURE.md.

pub mod api;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod controller;
pub mod coordinator;
pub mod error;
pub mod metadata;
pub mod server;
#[cfg(test)]
mod test_rng;
pub mod wire;
