//! `strom consume TOPIC`: read records from chosen partitions and print them.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::Result;
use clap::ValueEnum;
use serde_json::json;
use strom_client::{Consumer, ConsumerConfig, ConsumerRecord, IsolationLevel, Offset, OffsetSpec, TopicPartition};
use tokio::signal::unix::{signal, SignalKind};

use super::{explain_for, Common, Output};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum IsolationArg {
    ReadUncommitted,
    ReadCommitted,
}

#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Where to start: beginning, end, offset:N or timestamp:MS.
    #[arg(long, default_value = "beginning")]
    pub from: String,
    /// Only this partition (default: all).
    #[arg(long)]
    pub partition: Option<i32>,
    /// Stop after this many records.
    #[arg(long)]
    pub count: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(long)]
    pub follow: bool,
    /// Template with {topic} {partition} {offset} {timestamp} {key} {value} {headers};
    /// `\t` and `\n` for tab and newline, `{{` and `}}` for braces.
    #[arg(long, default_value = "{value}")]
    pub format: String,
    #[arg(long, value_enum, default_value_t = IsolationArg::ReadUncommitted)]
    pub isolation: IsolationArg,
    /// Consume as a member of this group: partitions are shared with the group's other
    /// members, start at the committed offsets (else --from beginning|end) and the
    /// positions are committed after printing (at least once).
    #[arg(long)]
    pub group: Option<String>,
    /// Group protocol with --group: classic, or consumer (KIP-848, broker-side assignment).
    #[arg(long, value_enum, default_value_t = GroupProtocolArg::Classic)]
    pub group_protocol: GroupProtocolArg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum GroupProtocolArg {
    Classic,
    Consumer,
}

fn parse_from(from: &str) -> Result<Offset> {
    Ok(match from {
        "beginning" | "earliest" => Offset::Beginning,
        "end" | "latest" => Offset::End,
        other => match other.split_once(':') {
            Some(("offset", n)) => Offset::At(n.parse().map_err(|_| anyhow::anyhow!("bad offset '{n}'"))?),
            Some(("timestamp", t)) => Offset::Timestamp(t.parse().map_err(|_| anyhow::anyhow!("bad timestamp '{t}'"))?),
            _ => anyhow::bail!("--from expects beginning, end, offset:N or timestamp:MS, not '{other}'"),
        },
    })
}

fn text(bytes: &Option<bytes::Bytes>) -> String {
    bytes
        .as_ref()
        .map_or_else(|| "null".to_string(), |b| String::from_utf8_lossy(b).into_owned())
}

/// The fields `--format` can name.
const PLACEHOLDERS: &str = "{topic} {partition} {offset} {timestamp} {key} {value} {headers}";

/// One piece of a `--format` template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Topic,
    Partition,
    Offset,
    Timestamp,
    Key,
    Value,
    Headers,
}

/// Parses a `--format` template once, so that an unknown `{name}` is an error rather than
/// printed as it is, and a key or value that contains `{value}` is printed as it is.
/// `{{` and `}}` are literal braces; `\t` and `\n` are a tab and a newline.
fn parse_format(format: &str) -> Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '\\' if matches!(chars.peek(), Some('t' | 'n')) => {
                text.push(if chars.next() == Some('t') { '\t' } else { '\n' });
            }
            '{' => {
                let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                let piece = match name.as_str() {
                    "topic" => Piece::Topic,
                    "partition" => Piece::Partition,
                    "offset" => Piece::Offset,
                    "timestamp" => Piece::Timestamp,
                    "key" => Piece::Key,
                    "value" => Piece::Value,
                    "headers" => Piece::Headers,
                    other => anyhow::bail!(
                        "unknown placeholder {{{other}}} in --format; use {PLACEHOLDERS} (and {{{{ }}}} for braces)"
                    ),
                };
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(piece);
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

fn render(format: &[Piece], r: &ConsumerRecord) -> String {
    let mut out = String::new();
    for piece in format {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Topic => out.push_str(&r.topic),
            Piece::Partition => out.push_str(&r.partition.to_string()),
            Piece::Offset => out.push_str(&r.offset.to_string()),
            Piece::Timestamp => out.push_str(&r.timestamp.to_string()),
            Piece::Key => out.push_str(&text(&r.key)),
            Piece::Value => out.push_str(&text(&r.value)),
            Piece::Headers => {
                let headers: Vec<String> = r
                    .headers
                    .iter()
                    .map(|h| format!("{}={}", h.key, text(&h.value)))
                    .collect();
                out.push_str(&headers.join(","));
            }
        }
    }
    out
}

/// One record as one JSON line, the fields named as `--format` names them.
fn record_json(record: &ConsumerRecord) -> serde_json::Value {
    let lossy = |b: &Option<bytes::Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    json!({
        "topic": record.topic, "partition": record.partition, "offset": record.offset,
        "timestamp": record.timestamp, "key": lossy(&record.key), "value": lossy(&record.value),
        "headers": record.headers.iter().map(|h| (h.key.clone(), json!(lossy(&h.value)))).collect::<serde_json::Map<_, _>>(),
    })
}

/// Prints one record as the output format asks; records are streamed, one line each.
fn print_record(output: Output, format: &[Piece], record: &ConsumerRecord) -> Result<()> {
    match output {
        Output::Json => outln!("{}", record_json(record)),
        Output::Table => outln!("{}", render(format, record)),
    }
}

/// Where each partition starts for `--from offset:N`: an offset before the log start
/// reads from the start, one past the end reads nothing (or, with `--follow`, waits at the
/// end); either way a note on stderr says so instead of leaving the user with no output.
fn start_positions(
    args: &ConsumeArgs,
    start: Offset,
    partitions: &[i32],
    starts: &HashMap<i32, i64>,
    ends: &HashMap<i32, i64>,
) -> BTreeMap<TopicPartition, Offset> {
    partitions
        .iter()
        .map(|p| {
            let (first, end) = (starts.get(p).copied().unwrap_or(0), ends.get(p).copied().unwrap_or(0));
            let offset = match start {
                Offset::At(n) if n > end => {
                    let then = if args.follow { "waiting at the end" } else { "nothing to read" };
                    eprintln!(
                        "note: partition {p} of {} ends at offset {end}; offset {n} is past it ({then})",
                        args.topic
                    );
                    Offset::End
                }
                Offset::At(n) if n < first => {
                    eprintln!(
                        "note: partition {p} of {} starts at offset {first} (older records were deleted); reading from there",
                        args.topic
                    );
                    Offset::At(first)
                }
                other => other,
            };
            (TopicPartition::new(args.topic.clone(), *p), offset)
        })
        .collect()
}

pub async fn run(common: &Common, args: ConsumeArgs) -> Result<()> {
    let start = parse_from(&args.from)?;
    let format = parse_format(&args.format)?;
    if args.group.is_some() && matches!(start, Offset::At(_) | Offset::Timestamp(_)) {
        anyhow::bail!(
            "--from {} does not apply with --group: a group starts at its committed offsets; move them with \
             `strom group reset-offsets`",
            args.from
        );
    }
    let fail = |e| explain_for(e, &common.brokers, Some(&args.topic));
    let admin = common.admin().await?;
    let metadata = admin.client().fetch_topic_metadata(&args.topic).await.map_err(fail)?;
    let partitions: Vec<i32> = match args.partition {
        Some(p) if p < 0 || p >= metadata.partition_count() => {
            anyhow::bail!(
                "{} has {} partitions; there is no partition {p}",
                args.topic,
                metadata.partition_count()
            )
        }
        Some(p) => vec![p],
        None => (0..metadata.partition_count()).collect(),
    };
    if args.count == Some(0) {
        return Ok(());
    }
    let isolation = match args.isolation {
        IsolationArg::ReadCommitted => IsolationLevel::ReadCommitted,
        IsolationArg::ReadUncommitted => IsolationLevel::ReadUncommitted,
    };
    if let Some(group) = &args.group {
        return consume_in_group(common, &args, &format, group, isolation, &start).await;
    }
    // Where "the end" is for a run that stops there: the end offsets as of now.
    let offsets = |spec: OffsetSpec| {
        let wanted: BTreeMap<_, _> = partitions
            .iter()
            .map(|p| (TopicPartition::new(args.topic.clone(), *p), spec))
            .collect();
        let admin = &admin;
        async move {
            admin.list_offsets(&wanted).await.map(|found| {
                found
                    .into_iter()
                    .map(|(key, found)| (key.partition, found.offset))
                    .collect::<HashMap<i32, i64>>()
            })
        }
    };
    let ends = offsets(OffsetSpec::Latest).await.map_err(fail)?;
    let starts = match start {
        Offset::At(_) => offsets(OffsetSpec::Earliest).await.map_err(fail)?,
        _ => HashMap::new(),
    };
    let config = ConsumerConfig {
        isolation_level: isolation,
        ..ConsumerConfig::default()
    };
    let consumer = Consumer::with_client(admin.client().clone(), config).map_err(fail)?;
    consumer
        .assign(start_positions(&args, start, &partitions, &starts, &ends))
        .await
        .map_err(fail)?;
    let progress = indicatif::ProgressBar::new_spinner();
    progress.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    let mut seen = 0u64;
    let limit = args.count.unwrap_or(u64::MAX);
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    'outer: loop {
        if !args.follow && args.count.is_none() {
            let mut done = true;
            for p in &partitions {
                let position = consumer
                    .position(&TopicPartition::new(args.topic.clone(), *p))
                    .await
                    .unwrap_or(0);
                if position < ends.get(p).copied().unwrap_or(0) {
                    done = false;
                }
            }
            if done {
                break;
            }
        }
        let records = tokio::select! {
            records = consumer.poll(Duration::from_millis(500)) => records.map_err(fail)?,
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        };
        for record in records {
            progress.suspend(|| print_record(common.output, &format, &record))?;
            seen += 1;
            progress.set_message(format!("{seen} records"));
            if seen >= limit {
                break 'outer;
            }
        }
    }
    progress.finish_and_clear();
    Ok(())
}

/// `--group`: subscribe, print, commit. Without --follow or --count it stops once no
/// record has arrived for a few seconds after the group assigned its partitions.
async fn consume_in_group(
    common: &Common,
    args: &ConsumeArgs,
    format: &[Piece],
    group: &str,
    isolation: IsolationLevel,
    start: &Offset,
) -> Result<()> {
    let fail = |e| explain_for(e, &common.brokers, Some(&args.topic));
    let config = ConsumerConfig {
        isolation_level: isolation,
        group_id: Some(group.to_string()),
        group_protocol: match args.group_protocol {
            GroupProtocolArg::Classic => strom_client::GroupProtocol::Classic,
            GroupProtocolArg::Consumer => strom_client::GroupProtocol::Consumer,
        },
        enable_auto_commit: false,
        auto_offset_reset: match start {
            Offset::End => strom_client::AutoOffsetReset::Latest,
            _ => strom_client::AutoOffsetReset::Earliest,
        },
        ..ConsumerConfig::default()
    };
    let consumer = Consumer::new(common.client_config(), config).await.map_err(fail)?;
    consumer.subscribe(&[args.topic.as_str()]).await.map_err(fail)?;
    let limit = args.count.unwrap_or(u64::MAX);
    let mut seen = 0u64;
    let mut idle_polls = 0u32;
    let mut stopped = Ok(());
    // On SIGINT/SIGTERM leave the group cleanly so its partitions move at once.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    'outer: while seen < limit {
        let records = tokio::select! {
            records = consumer.poll(Duration::from_millis(500)) => records.map_err(fail)?,
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        };
        if records.is_empty() {
            if !consumer.assignment().await.is_empty() {
                idle_polls += 1;
            }
            if !args.follow && args.count.is_none() && idle_polls >= 6 {
                break;
            }
            continue;
        }
        idle_polls = 0;
        let wanted = records.len().min(usize::try_from(limit - seen).unwrap_or(usize::MAX));
        // Commit what was printed: the next offset of each printed record.
        let mut next: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for record in &records[..wanted] {
            if let Err(error) = print_record(common.output, format, record) {
                stopped = Err(error);
                break;
            }
            seen += 1;
            let entry = next
                .entry(TopicPartition::new(record.topic.clone(), record.partition))
                .or_insert(0);
            *entry = (*entry).max(record.offset + 1);
        }
        if !next.is_empty() {
            consumer.commit(&next).await.map_err(fail)?;
        }
        if stopped.is_err() {
            break 'outer;
        }
    }
    consumer.close().await.map_err(fail)?;
    stopped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 1,
            offset: 7,
            timestamp: 1_700_000_000_000,
            key: Some(bytes::Bytes::from_static(b"k{value}")),
            value: Some(bytes::Bytes::from_static(b"v")),
            headers: vec![strom_client::Header::new("h", "x")],
        }
    }

    #[test]
    fn format_fills_each_placeholder_once() {
        let format = parse_format("{partition}:{offset} {key}={value} [{headers}] @{timestamp}\\t{topic}").unwrap();
        assert_eq!(render(&format, &record()), "1:7 k{value}=v [h=x] @1700000000000\tt");
        assert_eq!(render(&parse_format("{{{value}}}").unwrap(), &record()), "{v}");
    }

    #[test]
    fn unknown_placeholders_are_refused() {
        let error = parse_format("{value} {vlaue}").unwrap_err().to_string();
        assert!(error.contains("unknown placeholder {vlaue}"), "{error}");
        assert!(error.contains("{partition}"), "{error}");
    }

    #[test]
    fn json_lines_carry_every_field() {
        let line = record_json(&record());
        assert_eq!(line["timestamp"], 1_700_000_000_000i64);
        assert_eq!(line["headers"]["h"], "x");
        assert_eq!(line["key"], "k{value}");
    }
}
