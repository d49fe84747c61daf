//! The `riptide` binary: `riptide` or `riptide broker [flags]` starts a broker.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod groups_cli;
use riptide::broker::{self, BrokerSettings};
use riptide::config::BrokerConfig;

#[derive(Parser, Debug)]
#[command(
    name = "riptide",
    version,
    about = "A Kafka-compatible thread-per-core broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a broker (the default when no command is given).
    Broker(BrokerArgs),
    /// Consumer-group admin (as kafka-consumer-groups.sh): list, describe, reset-offsets, delete.
    Groups(groups_cli::GroupsArgs),
}

#[derive(Parser, Debug, Default)]
struct BrokerArgs {
    /// A Kafka-style server.properties file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override any config key: --set key=value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    #[arg(long)]
    node_id: Option<i32>,
    #[arg(long)]
    listeners: Option<String>,
    #[arg(long)]
    advertised_listeners: Option<String>,
    /// Alias of log.dirs (one directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Shards (cores) to run; default: all cores.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    cores: Option<u16>,
    /// Pin shards to cores (true/false).
    #[arg(long)]
    pin: Option<bool>,
}

fn main() {
    if let Err(e) = run() {
        // The message names the key or flag at fault; no backtrace for bad input.
        eprintln!("riptide: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    // Parsing first: the admin tools must keep the default SIGINT behaviour (Ctrl-C).
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Broker(a)) => a,
        Some(Command::Groups(g)) => return groups_cli::run(g),
        None => BrokerArgs::default(),
    };
    broker::block_shutdown_signals();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let settings = settings_from(args)?;
    broker::run(settings)
}

fn settings_from(args: BrokerArgs) -> anyhow::Result<BrokerSettings> {
    let mut overrides = Vec::new();
    for arg in &args.set {
        overrides.push(BrokerConfig::parse_override(arg)?);
    }
    // Flags are shorthands for keys; they win over the file and over --set.
    let flag = |key: &str, v: Option<String>| v.map(|v| (key.to_string(), v));
    overrides.extend(
        [
            flag("node.id", args.node_id.map(|v| v.to_string())),
            flag("listeners", args.listeners),
            flag("advertised.listeners", args.advertised_listeners),
            flag("log.dirs", args.data_dir.map(|d| d.display().to_string())),
            flag("riptide.cores", args.cores.map(|v| v.to_string())),
            flag("riptide.pin", args.pin.map(|v| v.to_string())),
        ]
        .into_iter()
        .flatten(),
    );
    let (config, warnings) = BrokerConfig::load(args.config.as_deref(), &overrides)?;
    for w in warnings {
        tracing::warn!(key = %w.key, "{}", w.message);
    }
    BrokerSettings::from_config(config).map_err(|e| anyhow::anyhow!(e))
}
