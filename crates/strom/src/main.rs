//! The `strom` command: `serve` runs the broker; it only wires the crates together.

mod cli;
mod limits;
mod settings;
mod storage;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use strom_broker::{BrokerApi, StartConfig};
use strom_kafka::Server;
use tokio::signal::unix::{signal, Signal, SignalKind};

use settings::Settings;

#[derive(Parser)]
#[command(name = "strom", version, about = "Kafka-compatible event streaming on a durable log")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    common: cli::Common,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker (zero config: one node, data in ./strom-data, Kafka on 127.0.0.1:9092).
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Create, list, describe, alter and delete topics.
    #[command(subcommand)]
    Topic(cli::topic::TopicCommand),
    /// Send records (one per line) to a topic.
    Produce(cli::produce::ProduceArgs),
    /// Read records from a topic.
    Consume(cli::consume::ConsumeArgs),
    /// List and describe consumer groups.
    #[command(subcommand)]
    Group(cli::group::GroupCommand),
    /// Show the cluster: nodes, liveness, the active controller, the metadata quorum.
    #[command(subcommand)]
    Cluster(cli::cluster::ClusterCommand),
    /// Register, read, check and delete schemas in the Schema Registry.
    Schema(cli::schema::SchemaArgs),
    /// Load-test a Kafka-compatible broker: presets produce, consume, e2e, stress.
    Bench(Box<strom_bench::BenchArgs>),
    /// Check a data directory offline (CRCs, offsets, indexes) and repair damage.
    #[command(subcommand)]
    Storage(storage::StorageCommand),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML file with settings (Kafka names, e.g. `num.partitions = 3`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override one setting, e.g. `--set listeners=PLAINTEXT://0.0.0.0:9092` or
    /// `--set log.dirs=/var/lib/strom`; repeatable. Beats the file and STROM_* variables.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// The client commands' global flags, declared here (same ids and types) only so that
    /// `serve --help` does not list them; `refuse_client_flags` turns them down.
    #[arg(long, hide = true)]
    #[allow(dead_code)]
    brokers: Option<String>,
    #[arg(long, hide = true, value_enum)]
    #[allow(dead_code)]
    output: Option<cli::Output>,
}

/// The settings people look for first, under `strom serve --help`.
const SERVE_HELP: &str = "\
Settings use Kafka's names; give them with --set KEY=VALUE, a STROM_* variable
(log.dirs is STROM_LOG_DIRS) or a --config TOML file:
  listeners   where Kafka clients connect   --set listeners=PLAINTEXT://0.0.0.0:9092
  log.dirs    the data directory            --set log.dirs=/var/lib/strom
  num.partitions, log.retention.ms, auto.create.topics.enable, max.message.bytes, ...
Every setting with its default and where its value came from: strom serve --print-config";

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Serve(args) => refuse_client_flags(&matches, "serve").and_then(|()| serve(args)),
        Command::Topic(command) => client_command(|| cli::topic::run(&cli.common, command)),
        Command::Produce(args) => client_command(|| cli::produce::run(&cli.common, args)),
        Command::Consume(args) => client_command(|| cli::consume::run(&cli.common, args)),
        Command::Group(command) => client_command(|| cli::group::run(&cli.common, command)),
        Command::Cluster(command) => client_command(|| cli::cluster::run(&cli.common, command)),
        Command::Schema(args) => cli::schema::run(&cli.common, args),
        Command::Storage(command) => refuse_client_flags(&matches, "storage").and_then(|()| storage::run(command)),
        Command::Bench(mut args) => {
            args.print_json = cli.common.output == cli::Output::Json;
            bench(&cli.common.brokers, *args)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output has gone (`| head`): nothing left to say.
        Err(e) if e.is::<cli::StdoutClosed>() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `serve` (and `storage`, which works on the data directory) takes none of the client
/// commands' flags: the broker listens where `listeners`
/// says, whatever `--brokers` would say. Given after `serve` or before it, clap reports
/// them as given on the command line in the top-level matches.
fn refuse_client_flags(matches: &clap::ArgMatches, command: &str) -> Result<()> {
    let given = |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    if given("brokers") {
        anyhow::bail!(
            "`strom {command}` takes no --brokers (that flag is for the client commands){}",
            if command == "serve" {
                "; set where the broker listens with --set listeners=PLAINTEXT://HOST:PORT"
            } else {
                ""
            }
        );
    }
    if given("output") {
        let hint = if command == "serve" {
            "; choose its log format with --log-format text|json"
        } else {
            ""
        };
        anyhow::bail!("`strom {command}` takes no --output{hint}");
    }
    Ok(())
}

/// Run a client command on a small runtime; errors become one line on stderr.
fn client_command<F, Fut>(command: F) -> Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(command())
}

/// `strom bench` needs every core for its producers and consumers; a failed
/// `--assert` is an error exit.
fn bench(brokers: &str, args: strom_bench::BenchArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match runtime.block_on(strom_bench::run(brokers, args)) {
        Ok(true) => Ok(()),
        Ok(false) => anyhow::bail!("a benchmark assertion failed"),
        // `strom bench ... | head`: the reader has what it wanted.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn init_logging(format: LogFormat) {
    // openraft narrates every vote and replication step at info: its warnings suffice.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    // Colours only for a terminal: a log file or journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    let settings = Settings::load(args.config.as_deref(), std::env::vars(), &args.set)?;
    if args.print_config {
        print!("{}", settings.render());
        return Ok(());
    }
    init_logging(args.log_format);
    let cluster = settings.cluster()?;
    if !cluster.roles.broker {
        return serve_controller(cluster);
    }
    let broker_config = settings.broker_config()?;
    let server_config = settings.server_config()?;
    let group_config = settings.group_config()?;
    let txn_config = settings.txn_config()?;
    let peers = settings.peer_addresses()?;
    check_port_free(&server_config, &settings)?;
    let registry_address = settings.registry_address()?;
    if let Some(address) = registry_address {
        if let Err(error) = std::net::TcpListener::bind(address) {
            anyhow::bail!(
                "cannot listen on {address} for the schema registry (schema.registry.listeners): {error}; \
                 pick another with --set schema.registry.listeners=http://HOST:PORT, or turn it off with \
                 --set schema.registry.listeners="
            );
        }
    }
    let open_files = limits::raise_open_file_limit();
    // Connections plus room for segment and index files.
    let wanted = server_config.max_connections.saturating_add(1024) as u64;
    if open_files < wanted {
        tracing::warn!(
            open_files,
            max_connections = server_config.max_connections,
            "the open-file limit is below max.connections plus room for log files; raise it (ulimit -n) or lower max.connections"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let served = runtime.block_on(async move {
        let signals = Signals::listen().context("listening for SIGINT and SIGTERM")?;
        let api = BrokerApi::start(StartConfig {
            broker: broker_config,
            groups: group_config,
            txns: txn_config,
            static_settings: settings.static_settings(),
            remote_markers: std::sync::Arc::new(strom_kafka::TxnMarkerClient::with_peers(peers.clone())),
            leader_client: std::sync::Arc::new(strom_kafka::ReplicaFetchClient::new(peers)),
        })
        .await
        .context("opening the data directory and loading groups and transactions")?;
        let server = Server::bind(server_config, api.clone())
            .await
            .with_context(|| format!("binding {}", settings.get("listeners")))?;
        let registry = match registry_address {
            Some(address) => {
                let bound = tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("binding the schema registry to {address}"))?;
                let registry =
                    strom_registry::Registry::start(std::sync::Arc::new(strom_registry::BrokerLog::new(api.clone())));
                api.set_record_validator(registry.clone());
                tracing::info!(%address, "schema registry listener ready");
                Some(tokio::spawn(strom_registry::api::serve(bound, registry)))
            }
            None => None,
        };
        tracing::info!(address = %server.local_addr()?, cluster_id = api.cluster_id(), "kafka listener ready");
        let listener = tokio::spawn(server.run());
        signals.wait().await;
        tracing::info!("shutting down");
        if let Some(registry) = registry {
            registry.abort();
        }
        api.begin_shutdown();
        let _ = listener.await;
        api.shutdown().await?;
        Ok(())
    });
    // The logs are closed: exit now rather than wait for tasks still parked in the
    // runtime (a blocking read of a connection that was cut off, say).
    runtime.shutdown_timeout(Duration::from_millis(200));
    served
}

/// `process.roles=controller`: a voter of the metadata quorum and nothing else.
fn serve_controller(cluster: settings::ClusterSettings) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let signals = Signals::listen().context("listening for SIGINT and SIGTERM")?;
        let quorum = strom_broker::Quorum::start(cluster.quorum).context("starting the metadata quorum")?;
        tracing::info!(node_id = quorum.node_id(), "controller ready");
        signals.wait().await;
        tracing::info!("shutting down");
        quorum.shutdown();
        Ok(())
    })
}

/// Finds a busy port before the data directory is created, so a failed start leaves
/// nothing behind, and says which setting to change.
fn check_port_free(config: &strom_kafka::ServerConfig, settings: &Settings) -> Result<()> {
    let Err(error) = std::net::TcpListener::bind(config.bind) else {
        return Ok(());
    };
    let mut other = config.bind;
    other.set_port(config.bind.port().wrapping_add(1).max(1024));
    let hint = match error.kind() {
        std::io::ErrorKind::AddrInUse => "another program (another broker?) listens there".to_string(),
        std::io::ErrorKind::PermissionDenied => "ports below 1024 need privileges".to_string(),
        _ => error.to_string(),
    };
    anyhow::bail!(
        "cannot listen on {} (listeners = {}): {hint}; pick another address with --set listeners=PLAINTEXT://{other}",
        config.bind,
        settings.get("listeners")
    )
}

/// SIGINT and SIGTERM, listened to from the start so that a signal during startup
/// still leads to a clean shutdown.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn listen() -> std::io::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
