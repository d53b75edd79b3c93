//! `strom consume TOPIC`: read records from chosen partitions and print them.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use clap::ValueEnum;
use serde_json::json;
use strom_client::{Consumer, ConsumerConfig, ConsumerRecord, IsolationLevel, Offset, OffsetSpec};
use tokio::signal::unix::{signal, SignalKind};

use super::{explain, Common, Output};

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
    /// Template with {topic} {partition} {offset} {timestamp} {key} {value} {headers}.
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

fn render(format: &str, r: &ConsumerRecord) -> String {
    let headers: Vec<String> = r
        .headers
        .iter()
        .map(|h| format!("{}={}", h.key, text(&h.value)))
        .collect();
    format
        .replace("{topic}", &r.topic)
        .replace("{partition}", &r.partition.to_string())
        .replace("{offset}", &r.offset.to_string())
        .replace("{timestamp}", &r.timestamp.to_string())
        .replace("{headers}", &headers.join(","))
        .replace("{key}", &text(&r.key))
        .replace("{value}", &text(&r.value))
        .replace("\\t", "\t")
}

pub async fn run(common: &Common, args: ConsumeArgs) -> Result<()> {
    let start = parse_from(&args.from)?;
    let fail = |e| explain(e, &common.brokers);
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
    let isolation = match args.isolation {
        IsolationArg::ReadCommitted => IsolationLevel::ReadCommitted,
        IsolationArg::ReadUncommitted => IsolationLevel::ReadUncommitted,
    };
    // Where "the end" is for a run that stops there: the end offsets as of now.
    let wanted: Vec<_> = partitions
        .iter()
        .map(|p| (args.topic.clone(), *p, OffsetSpec::Latest))
        .collect();
    let ends: HashMap<i32, i64> = admin
        .list_offsets(&wanted)
        .await
        .map_err(fail)?
        .into_iter()
        .map(|((_, p), (offset, _))| (p, offset))
        .collect();
    if let Some(group) = &args.group {
        return consume_in_group(common, &args, group, isolation, &start).await;
    }
    let config = ConsumerConfig {
        isolation_level: isolation,
        ..ConsumerConfig::default()
    };
    let consumer = Consumer::with_client(admin.client().clone(), config).map_err(fail)?;
    consumer
        .assign(partitions.iter().map(|p| (args.topic.clone(), *p, start)).collect())
        .await
        .map_err(fail)?;
    let progress = indicatif::ProgressBar::new_spinner();
    progress.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    let mut seen = 0u64;
    let limit = args.count.unwrap_or(u64::MAX);
    let mut records_json = Vec::new();
    'outer: loop {
        if !args.follow && args.count.is_none() {
            let mut done = true;
            for p in &partitions {
                let position = consumer.position(&args.topic, *p).await.unwrap_or(0);
                if position < ends.get(p).copied().unwrap_or(0) {
                    done = false;
                }
            }
            if done {
                break;
            }
        }
        for record in consumer.poll(Duration::from_millis(500)).await.map_err(fail)? {
            match common.output {
                Output::Json => records_json.push(json!({
                    "topic": record.topic, "partition": record.partition, "offset": record.offset,
                    "timestamp": record.timestamp, "key": record.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
                    "value": record.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()),
                    "headers": record.headers.iter().map(|h| (h.key.clone(), json!(h.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned())))).collect::<serde_json::Map<_, _>>(),
                })),
                Output::Table => progress.suspend(|| println!("{}", render(&args.format, &record))),
            }
            seen += 1;
            progress.set_message(format!("{seen} records"));
            if seen >= limit {
                break 'outer;
            }
        }
    }
    progress.finish_and_clear();
    if common.output == Output::Json {
        println!("{}", serde_json::Value::Array(records_json));
    }
    Ok(())
}

/// `--group`: subscribe, print, commit. Without --follow or --count it stops once no
/// record has arrived for a few seconds after the group assigned its partitions.
async fn consume_in_group(
    common: &Common,
    args: &ConsumeArgs,
    group: &str,
    isolation: IsolationLevel,
    start: &Offset,
) -> Result<()> {
    let fail = |e| explain(e, &common.brokers);
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
    let mut records_json = Vec::new();
    // On SIGINT/SIGTERM leave the group cleanly so its partitions move at once.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    while seen < limit {
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
        let printed = records.len().min((limit - seen) as usize);
        for record in &records[..printed] {
            match common.output {
                Output::Json => records_json.push(json!({
                    "topic": record.topic, "partition": record.partition, "offset": record.offset,
                    "key": record.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
                    "value": record.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()),
                })),
                Output::Table => println!("{}", render(&args.format, record)),
            }
            seen += 1;
        }
        // Commit what was printed: the next offset of each printed record.
        let mut next: HashMap<(String, i32), i64> = HashMap::new();
        for record in &records[..printed] {
            let entry = next.entry((record.topic.clone(), record.partition)).or_insert(0);
            *entry = (*entry).max(record.offset + 1);
        }
        let offsets: Vec<(String, i32, i64)> = next.into_iter().map(|((t, p), o)| (t, p, o)).collect();
        consumer.commit(&offsets).await.map_err(fail)?;
    }
    consumer.close().await.map_err(fail)?;
    if common.output == Output::Json {
        println!("{}", serde_json::Value::Array(records_json));
    }
    Ok(())
}
