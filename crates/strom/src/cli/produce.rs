//! `strom produce TOPIC`: one record per input line (stdin or --file).

use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::ValueEnum;
use serde_json::json;
use strom_client::{Acks, Compression, Header, Producer, ProducerConfig, ProducerRecord};

use super::{explain, pairs, Common, Output};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum AcksArg {
    #[value(name = "0")]
    Zero,
    #[value(name = "1")]
    One,
    All,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    pub topic: String,
    /// Read records from this file instead of stdin.
    #[arg(long)]
    pub file: Option<std::path::PathBuf>,
    /// Split each line at the first SEP into key and value (no key otherwise).
    #[arg(long = "key-separator", value_name = "SEP")]
    pub key_separator: Option<String>,
    /// A header for every record, key=value (repeatable).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// Partition to write to (default: the key's murmur2 hash, sticky for no key).
    #[arg(long)]
    pub partition: Option<i32>,
    #[arg(long, value_enum, default_value_t = AcksArg::All)]
    pub acks: AcksArg,
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    pub compression: CompressionArg,
    /// Lines are JSON objects {"key": .., "value": .., "headers": {..}, "partition": ..}.
    #[arg(long)]
    pub json: bool,
}

fn record_from_line(args: &ProduceArgs, line: &str, headers: &[(String, String)]) -> Result<ProducerRecord> {
    let mut record = if args.json {
        let doc: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("not a JSON record: {line}"))?;
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let value = doc.get("value").filter(|v| !v.is_null()).map(text).unwrap_or_default();
        let mut record = ProducerRecord::new(args.topic.clone(), value);
        if let Some(key) = doc.get("key").filter(|k| !k.is_null()) {
            record = record.with_key(text(key));
        }
        if let Some(map) = doc.get("headers").and_then(|h| h.as_object()) {
            for (k, v) in map {
                record = record.with_header(Header::new(k.clone(), text(v)));
            }
        }
        if let Some(p) = doc.get("partition").and_then(|p| p.as_i64()) {
            record = record.with_partition(p as i32);
        }
        record
    } else {
        match args.key_separator.as_deref().and_then(|sep| line.split_once(sep)) {
            Some((key, value)) => ProducerRecord::new(args.topic.clone(), value.to_string()).with_key(key.to_string()),
            None => ProducerRecord::new(args.topic.clone(), line.to_string()),
        }
    };
    for (k, v) in headers {
        record = record.with_header(Header::new(k.clone(), v.clone()));
    }
    if let Some(p) = args.partition {
        record = record.with_partition(p);
    }
    Ok(record)
}

pub async fn run(common: &Common, args: ProduceArgs) -> Result<()> {
    let headers = pairs(&args.headers, "--header")?;
    let config = ProducerConfig {
        acks: match args.acks {
            AcksArg::Zero => Acks::None,
            AcksArg::One => Acks::Leader,
            AcksArg::All => Acks::All,
        },
        compression: match args.compression {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Snappy => Compression::Snappy,
            CompressionArg::Lz4 => Compression::Lz4,
            CompressionArg::Zstd => Compression::Zstd,
        },
        ..ProducerConfig::default()
    };
    let producer = Arc::new(
        Producer::new(common.client_config(), config)
            .await
            .map_err(|e| explain(e, &common.brokers))?,
    );
    let input: Box<dyn BufRead> = match &args.file {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        )),
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let progress = indicatif::ProgressBar::new_spinner();
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} records sent ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    progress.enable_steady_tick(Duration::from_millis(200));
    let mut deliveries = Vec::new();
    let mut sent = 0u64;
    for line in input.lines() {
        let line = line.context("reading input")?;
        let record = record_from_line(&args, &line, &headers)?;
        deliveries.push(producer.send(record).await.map_err(|e| explain(e, &common.brokers))?);
        sent += 1;
        progress.set_position(sent);
        // Bound the number of outstanding futures while keeping the pipeline full.
        if deliveries.len() >= 10_000 {
            for delivery in deliveries.drain(..) {
                delivery.await.map_err(|e| explain(e, &common.brokers))?;
            }
        }
    }
    for delivery in deliveries {
        delivery.await.map_err(|e| explain(e, &common.brokers))?;
    }
    producer.flush().await.map_err(|e| explain(e, &common.brokers))?;
    producer.close().await.map_err(|e| explain(e, &common.brokers))?;
    progress.finish_and_clear();
    match common.output {
        Output::Json => println!("{}", json!({"topic": args.topic, "records": sent})),
        Output::Table => eprintln!("{sent} records sent to {}", args.topic),
    }
    Ok(())
}
