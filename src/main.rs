//! The `riptide` binary: `riptide` or `riptide broker [flags]` starts a broker.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use riptide::broker::{self, BrokerSettings};

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
    #[arg(long)]
    cores: Option<u16>,
    /// Pin shards to cores (true/false).
    #[arg(long)]
    pin: Option<bool>,
}

fn main() -> anyhow::Result<()> {
    broker::block_shutdown_signals();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Broker(a)) => a,
        None => BrokerArgs::default(),
    };
    let settings = settings_from(args)?;
    broker::run(settings)
}

fn settings_from(args: BrokerArgs) -> anyhow::Result<BrokerSettings> {
    let mut s = BrokerSettings::default();
    if let Some(id) = args.node_id {
        s.node_id = shards::NodeId(id);
    }
    if let Some(l) = args.listeners {
        let addr = parse_listener(&l)?;
        s.listen_addr = addr;
        s.advertised_host = addr.ip().to_string();
        s.advertised_port = addr.port() as i32;
    }
    if let Some(l) = args.advertised_listeners {
        let (host, port) = l
            .trim_start_matches("PLAINTEXT://")
            .rsplit_once(':')
            .ok_or_else(|| {
                anyhow::anyhow!("advertised.listeners: expected PLAINTEXT://host:port")
            })?;
        s.advertised_host = host.to_string();
        s.advertised_port = port.parse()?;
    }
    if let Some(d) = args.data_dir {
        s.data_dir = d;
    }
    if let Some(c) = args.cores {
        anyhow::ensure!(c >= 1, "--cores must be at least 1");
        s.shard_count = c;
    }
    if let Some(p) = args.pin {
        s.pin = p;
    }
    let _ = (args.config, args.set);
    Ok(s)
}

fn parse_listener(l: &str) -> anyhow::Result<std::net::SocketAddr> {
    let hostport = l.trim_start_matches("PLAINTEXT://");
    use std::net::ToSocketAddrs;
    hostport
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("listeners: cannot resolve {hostport}"))
}
