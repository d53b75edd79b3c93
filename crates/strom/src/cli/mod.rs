//! The client-side commands (`topic`, `produce`, `consume`, `group`): each parses its
//! flags, calls `strom-client` and prints a table or JSON. No business logic here.

/// `println!` for command output: a closed standard output ends the command quietly
/// (see [`emit`]) instead of panicking.
macro_rules! outln {
    () => {
        $crate::cli::emit("")
    };
    ($($arg:tt)*) => {
        $crate::cli::emit(format_args!($($arg)*))
    };
}

pub mod cluster;
pub mod consume;
pub mod group;
pub mod produce;
pub mod reassign;
pub mod schema;
pub mod topic;

use std::fmt::Display;
use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use clap::ValueEnum;
use strom_client::{Admin, ClientConfig, ConnectFailure};

/// How long the commands wait for a connection: a wrong address should fail in seconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Output of the client commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// JSON for scripts: one document, or one line per record for `consume`.
    Json,
}

/// Flags every client command takes.
#[derive(clap::Args, Clone, Debug)]
pub struct Common {
    /// Bootstrap brokers, comma-separated host:port.
    #[arg(long, global = true, env = "STROM_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

impl Common {
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(self.brokers.split(',').map(str::trim).filter(|s| !s.is_empty()));
        config.client_id = "strom-cli".to_string();
        config.request_timeout = Duration::from_secs(30);
        config.connect_timeout = CONNECT_TIMEOUT;
        config
    }

    pub async fn admin(&self) -> Result<Admin> {
        Admin::new(self.client_config())
            .await
            .map_err(|e| explain(e, &self.brokers))
    }
}

/// Standard output was closed by its reader (`strom consume t | head -1`); the command
/// stops and exits quietly.
#[derive(Debug)]
pub struct StdoutClosed;

impl Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Writes one line of command output; a closed pipe becomes [`StdoutClosed`].
pub fn emit(line: impl Display) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}") {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(error) => Err(anyhow::Error::new(error).context("writing to standard output")),
    }
}

/// A client error as a message that says what happened and what to do about it.
/// A Kafka error code in a response as an error naming it (0: fine).
pub fn check_error_code(code: i16, message: Option<&str>) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    let name = strom_client::Error::Kafka {
        code,
        message: message.unwrap_or_default().to_string(),
    }
    .code_name()
    .unwrap_or_default();
    anyhow::bail!("{} ({name})", message.unwrap_or("refused"))
}

pub fn explain(error: strom_client::Error, brokers: &str) -> anyhow::Error {
    explain_for(error, brokers, None)
}

/// [`explain`] for a command about one topic, which the fixes can then name.
pub fn explain_for(error: strom_client::Error, brokers: &str, topic: Option<&str>) -> anyhow::Error {
    use strom_client::Error;
    match &error {
        Error::NoBrokers(failures) => {
            let reasons: Vec<String> = failures.iter().map(unreachable).collect();
            if reasons.is_empty() {
                anyhow::anyhow!("no broker at {brokers} could be reached (--brokers / STROM_BROKERS)")
            } else {
                anyhow::anyhow!("{}", reasons.join("; "))
            }
        }
        Error::Connect { .. } => anyhow::anyhow!("{}", unreachable(&error)),
        Error::Io(_) => {
            anyhow::anyhow!("lost the connection to {brokers} ({error}); is the broker still running?")
        }
        // The client names a missing partition `topic-N`.
        Error::UnknownTopic(name) => match topic.and_then(|t| Some((t, name.strip_prefix(t)?.strip_prefix('-')?))) {
            Some((topic, partition)) => anyhow::anyhow!(
                "topic '{topic}' has no partition {partition}; see its partitions with `strom topic describe {topic}`"
            ),
            None => anyhow::anyhow!("topic '{name}' not found; create it with `strom topic create {name}`"),
        },
        Error::Kafka { code, message } => {
            let name = error.code_name().unwrap_or_default();
            anyhow::anyhow!("{} ({name})", kafka_error(*code, message, topic))
        }
        _ => anyhow::anyhow!("{error}"),
    }
}

/// Why a broker could not be reached, in words.
fn unreachable(error: &strom_client::Error) -> String {
    let strom_client::Error::Connect { address, failure } = error else {
        return error.to_string();
    };
    match failure {
        ConnectFailure::NoPort => {
            format!("broker address '{address}' has no port; give host:port, e.g. {address}:9092 (--brokers / STROM_BROKERS)")
        }
        ConnectFailure::Lookup(why) => {
            let host = address.rsplit_once(':').map_or(address.as_str(), |(host, _)| host);
            format!("cannot resolve '{host}': name lookup failed ({why}); check --brokers / STROM_BROKERS")
        }
        ConnectFailure::Tcp(why) => {
            format!("cannot connect to {address} ({why}); is `strom serve` running? (--brokers / STROM_BROKERS)")
        }
        ConnectFailure::Unanswered(waited) => format!(
            "no answer from {address} within {waited:?}: the host is down or a firewall drops the connection; \
             check --brokers / STROM_BROKERS"
        ),
        ConnectFailure::NoKafkaAnswer(waited) => format!(
            "{address} accepted the connection but did not answer as a Kafka broker within {waited:?}; \
             is it a Kafka port? (--brokers / STROM_BROKERS)"
        ),
        ConnectFailure::Closed(why) => format!(
            "{address} closed the connection without answering as a Kafka broker ({why}); is it a Kafka port, \
             a TLS listener, or at its connection limit? (--brokers / STROM_BROKERS)"
        ),
        ConnectFailure::NotKafka(why) => {
            format!("{address} is not a Kafka broker: {why}; check --brokers / STROM_BROKERS")
        }
    }
}

/// A Kafka error code in words, with the way out where there is one. The broker's own
/// message, when it sent one, is more precise than the generic words.
fn kafka_error(code: i16, message: &str, topic: Option<&str>) -> String {
    let topic_name = topic.unwrap_or("TOPIC");
    let (words, fix): (&str, String) = match code {
        1 => ("the offset is outside the partition's records", "see each partition's end offset with `strom topic describe`".into()),
        2 => ("the broker found a corrupt record batch", String::new()),
        3 => match topic {
            Some(topic) => {
                return format!("topic '{topic}' not found; create it with `strom topic create {topic}` or list topics with `strom topic list`");
            }
            None => ("topic or partition not found", "list topics with `strom topic list`".into()),
        },
        7 => ("the broker did not finish the request in time", "try again".into()),
        10 => ("a record batch is larger than the topic accepts", format!("raise the topic's limit with `strom topic alter-config {topic_name} --set max.message.bytes=BYTES` (the default is 1048588)")),
        15 | 16 => ("the group coordinator is not ready", "try again in a moment".into()),
        17 => ("invalid topic name", "use ASCII letters, digits, '.', '_' and '-', at most 249 characters".into()),
        18 => ("the request is larger than the broker accepts", "send fewer or smaller records at a time".into()),
        22 | 25 | 27 => ("the group is rebalancing", "try again in a moment".into()),
        29..=31 => ("not authorized", String::new()),
        35 => ("the broker does not support this request", String::new()),
        36 => ("the topic already exists", format!("see it with `strom topic describe {topic_name}`")),
        37 => ("invalid partition count", format!("partitions can only be added; see the current count with `strom topic describe {topic_name}`")),
        38 => ("invalid replication factor", "it cannot exceed the number of brokers (-r 1 on a single node)".into()),
        40 => ("invalid topic config", format!("see the configs and their values with `strom topic describe {topic_name}`")),
        68 => ("the group still has members", "stop its consumers first; `strom group describe` lists them".into()),
        69 => ("group not found", "list groups with `strom group list`".into()),
        _ => ("the broker refused the request", String::new()),
    };
    let what = match message.trim_end_matches('.') {
        "" => words.to_string(),
        message => message.to_string(),
    };
    if fix.is_empty() {
        what
    } else {
        format!("{what}; {fix}")
    }
}

/// Print rows as aligned columns under a header.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        emit(padded.join("  ").trim_end())
    };
    line(header.iter().map(|h| h.to_string()).collect())?;
    for row in rows {
        line(row.clone())?;
    }
    Ok(())
}

/// `key=value` pairs from repeated flags.
pub fn pairs(values: &[String], flag: &str) -> Result<Vec<(String, String)>> {
    values
        .iter()
        .map(|v| {
            v.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("{flag} expects key=value, got '{v}'"))
        })
        .collect()
}
