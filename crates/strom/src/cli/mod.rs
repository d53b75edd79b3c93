//! The client-side commands (`topic`, `produce`, `consume`, `group`): each parses its
//! flags, calls `strom-client` and prints a table or JSON. No business logic here.

pub mod consume;
pub mod group;
pub mod produce;
pub mod topic;

use std::time::Duration;

use anyhow::Result;
use clap::ValueEnum;
use strom_client::{Admin, ClientConfig};

/// Output of the client commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// One JSON document for scripts.
    Json,
}

/// Flags every client command takes.
#[derive(clap::Args, Clone, Debug)]
pub struct Common {
    /// Bootstrap brokers, comma-separated.
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
        config
    }

    pub async fn admin(&self) -> Result<Admin> {
        Admin::new(self.client_config())
            .await
            .map_err(|e| explain(e, &self.brokers))
    }
}

/// A client error as a message that says what to do about it.
pub fn explain(error: strom_client::Error, brokers: &str) -> anyhow::Error {
    use strom_client::Error;
    match &error {
        Error::NoBrokers | Error::Io(_) => {
            anyhow::anyhow!(
                "cannot reach a broker at {brokers} ({error}); is `strom serve` running? (--brokers / STROM_BROKERS)"
            )
        }
        Error::UnknownTopic(topic) => {
            anyhow::anyhow!("topic '{topic}' not found; create it with `strom topic create {topic}`")
        }
        Error::Kafka { code: 3, .. } => {
            anyhow::anyhow!("{error}; list topics with `strom topic list`")
        }
        _ => anyhow::anyhow!("{error}"),
    }
}

/// Print rows as aligned columns under a header.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
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
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
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
