//! `strom produce TOPIC`: one record per input line (stdin or --file), sent as soon as
//! it is read.

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::ValueEnum;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::json;
use strom_client::{Acks, Compression, Header, Producer, ProducerConfig, ProducerRecord, RecordMetadata};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use super::{explain_for, pairs, Common, Output};

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

/// Lines read ahead of the producer, in chunks; the reader thread waits beyond this.
const CHUNKS_QUEUED_MAX: usize = 16;
/// Most lines in one chunk: what is already buffered goes in one hop, up to this many.
const CHUNK_LINES_MAX: usize = 1024;
/// Deliveries awaited at a time: bounds memory while keeping the pipeline full.
const DELIVERIES_IN_FLIGHT_MAX: usize = 10_000;
/// Kafka's MESSAGE_TOO_LARGE error code.
const MESSAGE_TOO_LARGE: i16 = 10;
/// Room for a batch's and a record's headers when suggesting a `max.message.bytes`.
const BATCH_OVERHEAD_BYTES: usize = 1024;

type Chunk = Vec<std::io::Result<String>>;

/// Reads input lines on their own thread: a blocking read on the command's single-threaded
/// runtime would starve the producer's sender, so nothing would be sent until input ends.
/// Lines go out in chunks of the whole lines already buffered, so a slow source
/// (`tail -f`, a terminal) is sent line by line and a fast one in bulk.
fn read_lines(source: Box<dyn Read + Send>) -> mpsc::Receiver<Chunk> {
    let (chunks, received) = mpsc::channel(CHUNKS_QUEUED_MAX);
    std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(64 * 1024, source);
        loop {
            let mut chunk = Vec::new();
            let mut ended = false;
            while chunk.len() < CHUNK_LINES_MAX {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) => ended = true,
                    Ok(_) => {
                        let trimmed = line
                            .strip_suffix('\n')
                            .map_or(line.as_str(), |l| l.strip_suffix('\r').unwrap_or(l));
                        chunk.push(Ok(trimmed.to_string()));
                    }
                    Err(error) => {
                        chunk.push(Err(error));
                        ended = true;
                    }
                }
                // Only whole lines already buffered join the chunk: waiting for the rest of
                // a partial one would hold back the lines before it.
                if ended || !reader.buffer().contains(&b'\n') {
                    break;
                }
            }
            if (!chunk.is_empty() && chunks.blocking_send(chunk).is_err()) || ended {
                return;
            }
        }
    });
    received
}

/// A record's delivery, with where its line was for error messages.
type Delivery =
    std::pin::Pin<Box<dyn std::future::Future<Output = (u64, usize, strom_client::Result<RecordMetadata>)>>>;

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
    let fail = |e| explain_for(e, &common.brokers, Some(&args.topic));
    let source: Box<dyn Read + Send> = match &args.file {
        Some(path) => Box::new(std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?),
        None => Box::new(std::io::stdin()),
    };
    let producer = Producer::new(common.client_config(), config).await.map_err(fail)?;
    // From here SIGINT/SIGTERM end the input: what was read is delivered, then we exit.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut lines = read_lines(source);
    let progress = indicatif::ProgressBar::new_spinner();
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} records acknowledged ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    progress.enable_steady_tick(Duration::from_millis(200));
    let mut deliveries: FuturesUnordered<Delivery> = FuturesUnordered::new();
    let mut line_number = 0u64;
    let mut acknowledged = 0u64;
    let mut reading = true;
    let mut interrupted = false;
    while reading || !deliveries.is_empty() {
        tokio::select! {
            Some((line, bytes, delivered)) = deliveries.next(), if !deliveries.is_empty() => {
                if let Err(error) = delivered {
                    progress.finish_and_clear();
                    return Err(delivery_error(error, line, bytes, common, &args.topic));
                }
                acknowledged += 1;
                progress.set_position(acknowledged);
            }
            chunk = lines.recv(), if reading && deliveries.len() < DELIVERIES_IN_FLIGHT_MAX => {
                let Some(chunk) = chunk else {
                    reading = false;
                    continue;
                };
                for line in chunk {
                    line_number += 1;
                    let line = line.with_context(|| format!("reading line {line_number} of the input"))?;
                    let record = record_from_line(&args, &line, &headers)
                        .with_context(|| format!("line {line_number}"))?;
                    let delivery = producer.send(record).await.map_err(fail)?;
                    let number = line_number;
                    deliveries.push(Box::pin(async move { (number, line.len(), delivery.await) }));
                }
            }
            _ = interrupt.recv() => stop_reading(&mut lines, &mut interrupted)?,
            _ = terminate.recv() => stop_reading(&mut lines, &mut interrupted)?,
        }
    }
    producer.close().await.map_err(fail)?;
    progress.finish_and_clear();
    match common.output {
        Output::Json => outln!("{}", json!({"topic": args.topic, "records": acknowledged}))?,
        Output::Table => eprintln!("{acknowledged} records sent to {}", args.topic),
    }
    Ok(())
}

/// The first signal ends the input (lines already read are still sent); a second one,
/// while deliveries hang, gives up.
fn stop_reading(lines: &mut mpsc::Receiver<Chunk>, interrupted: &mut bool) -> Result<()> {
    if *interrupted {
        anyhow::bail!("interrupted again before every record was acknowledged");
    }
    *interrupted = true;
    lines.close();
    Ok(())
}

fn delivery_error(error: strom_client::Error, line: u64, bytes: usize, common: &Common, topic: &str) -> anyhow::Error {
    if let strom_client::Error::Kafka {
        code: MESSAGE_TOO_LARGE,
        message,
    } = &error
    {
        // A round number of MiB that fits the record with its batch's headers.
        let mebibyte = 1024 * 1024;
        let limit = (bytes + BATCH_OVERHEAD_BYTES).div_ceil(mebibyte) * mebibyte;
        let detail = if message.is_empty() {
            String::new()
        } else {
            format!(" ({message})")
        };
        return anyhow::anyhow!(
            "line {line} ({bytes} bytes) is larger than topic '{topic}' accepts{detail}; raise the limit with \
             `strom topic alter-config {topic} --set max.message.bytes={limit}` (MESSAGE_TOO_LARGE)"
        );
    }
    explain_for(error, &common.brokers, Some(topic)).context(format!("line {line} was not delivered"))
}
