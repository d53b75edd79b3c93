//! Runs a [`Scenario`] against a broker: creates the topic, prefills it, starts the consumers,
//! then the producers (paced to their target rate, ramped up), shows live progress on stderr
//! and returns the merged measurements as a [`BenchResult`].
//!
//! Produce latency is measured from the `send` call to the acknowledgement, so time spent
//! waiting for buffer memory counts. End-to-end latency is measured from the stamp in the value
//! (written just before `send`) to the moment the consumer's `poll` returned the record.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::stream::{FuturesUnordered, StreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use strom_client::{
    Admin, AutoOffsetReset, ClientConfig, Consumer, ConsumerConfig, DeliveryFuture, NewTopic, Offset, Producer,
    ProducerConfig, TopicPartition,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::metrics::Recorder;
use crate::payload::{stamp_age, RecordFactory};
use crate::result::{BenchResult, Summary};
use crate::scenario::{ConsumerGroup, ProducerGroup, Scenario, StartFrom};

/// Kafka's TOPIC_ALREADY_EXISTS.
const TOPIC_ALREADY_EXISTS: i16 = 36;
/// Deliveries handed from a producer to its completion task and not yet taken.
const DELIVERIES_QUEUED_MAX: usize = 65_536;
/// Longest wait of one consumer poll.
const POLL_TIMEOUT: Duration = Duration::from_millis(200);
/// How long the topic may take to get leaders.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Period of the progress display.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);
/// Pause after a failed poll before the next one.
const POLL_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// How a run reports while it goes.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Show a progress line on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Prefix of the progress line, e.g. "round 2 A".
    pub label: String,
    /// Keep the topic when the run created it (by default it is deleted afterwards; a
    /// topic that existed before is always kept).
    pub keep_topic: bool,
}

/// Counters shared by all tasks of a run, read by the progress display.
#[derive(Debug, Default)]
struct Live {
    produced: AtomicU64,
    consumed: AtomicU64,
    errors: AtomicU64,
}

/// Runs `scenario` against the brokers at `bootstrap` (comma-separated host:port list).
pub async fn run_scenario(bootstrap: &str, scenario: &Scenario, options: &RunOptions) -> anyhow::Result<BenchResult> {
    scenario.validate()?;
    let started_at_ms = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis()).unwrap_or(0);
    let client_config = client_config(bootstrap);
    let (partitions, created) = prepare_topic(&client_config, scenario).await?;
    let result = measure(bootstrap, &client_config, scenario, options, &partitions, started_at_ms).await;
    if created && !options.keep_topic {
        // A benchmark's records (often hundreds of MB) are of no use afterwards.
        if let Err(error) = delete_topic(&client_config, &scenario.topic).await {
            eprintln!(
                "warning: could not delete the benchmark topic {}: {error}",
                scenario.topic
            );
        }
    }
    result
}

/// Prefills, runs the consumers and producers and merges their measurements.
async fn measure(
    bootstrap: &str,
    client_config: &ClientConfig,
    scenario: &Scenario,
    options: &RunOptions,
    partitions: &[i32],
    started_at_ms: u64,
) -> anyhow::Result<BenchResult> {
    if scenario.prefill_records > 0 {
        prefill(client_config, scenario).await?;
    }

    let live = Arc::new(Live::default());
    let consumers = start_consumers(client_config, scenario, partitions).await?;
    let start = Instant::now();
    let (done_sender, done) = watch::channel(None);
    let has_producers = !scenario.producers.is_empty();
    let consumer_tasks: Vec<JoinHandle<Recorder>> = consumers
        .into_iter()
        .map(|(consumer, group, progress)| {
            let context = ConsumeContext {
                group,
                progress,
                has_producers,
                done: done.clone(),
                start,
                live: live.clone(),
            };
            tokio::spawn(consume(consumer, context))
        })
        .collect();
    let producer_tasks = start_producers(client_config, scenario, start, &live);
    let progress = spawn_progress(options, scenario, live.clone());

    let mut recorder = Recorder::new(start);
    for task in producer_tasks {
        recorder.merge(&task.await?);
    }
    let (produced, _) = recorder.produced();
    let _ = done_sender.send(Some(produced));
    for task in consumer_tasks {
        recorder.merge(&task.await?);
    }
    progress.abort();
    let _ = progress.await;

    Ok(BenchResult {
        bootstrap: bootstrap.to_string(),
        started_at_ms,
        scenario: scenario.clone(),
        summary: Summary::from_recorder(&recorder, has_producers),
        series: recorder.series(),
        produce_distribution: recorder.produce_latency().distribution(),
        e2e_distribution: recorder.e2e_latency().distribution(),
    })
}

fn client_config(bootstrap: &str) -> ClientConfig {
    ClientConfig {
        client_id: "strom-bench".to_string(),
        ..ClientConfig::new(bootstrap.split(',').map(str::trim).filter(|s| !s.is_empty()))
    }
}

/// Creates the topic (or grows it to the scenario's partitions) and returns its partitions
/// and whether it was created.
async fn prepare_topic(config: &ClientConfig, scenario: &Scenario) -> anyhow::Result<(Vec<i32>, bool)> {
    let admin = Admin::new(config.clone()).await?;
    let topic = NewTopic::new(&scenario.topic, scenario.partitions, scenario.replication_factor);
    let mut created = false;
    match admin.create_topics(&[topic]).await {
        Ok(()) => created = true,
        Err(error) if error.code() == Some(TOPIC_ALREADY_EXISTS) => {
            let existing = describe_partitions(&admin, &scenario.topic).await?;
            let count = i32::try_from(existing.len())?;
            if count < scenario.partitions {
                admin.create_partitions(&scenario.topic, scenario.partitions).await?;
            }
        }
        Err(error) => return Err(anyhow::anyhow!("cannot create topic {}: {error}", scenario.topic)),
    }
    admin.wait_for_topic(&scenario.topic, TOPIC_READY_TIMEOUT).await?;
    Ok((describe_partitions(&admin, &scenario.topic).await?, created))
}

async fn delete_topic(config: &ClientConfig, topic: &str) -> anyhow::Result<()> {
    Admin::new(config.clone()).await?.delete_topics(&[topic]).await?;
    Ok(())
}

async fn describe_partitions(admin: &Admin, topic: &str) -> anyhow::Result<Vec<i32>> {
    let descriptions = admin.describe_topics(&[topic]).await?;
    let description = descriptions
        .into_iter()
        .find(|d| d.name == topic)
        .ok_or_else(|| anyhow::anyhow!("topic {topic} not described"))?;
    let mut partitions: Vec<i32> = description.partitions.iter().map(|p| p.partition).collect();
    partitions.sort_unstable();
    Ok(partitions)
}

/// Writes the scenario's prefill records, unmeasured.
async fn prefill(config: &ClientConfig, scenario: &Scenario) -> anyhow::Result<()> {
    let group = ProducerGroup {
        count: 1,
        records: scenario.prefill_records,
        duration_ms: 0,
        target_rate: 0,
        message_size: scenario.prefill_message_size,
        acks: crate::scenario::AcksSetting::Leader,
        linger_ms: 20,
        batch_size: 256 * 1024,
        ..ProducerGroup::default()
    };
    let plan = ProducerPlan {
        group,
        limit: Some(scenario.prefill_records),
        rate: 0.0,
        start_delay: Duration::ZERO,
        deadline: None,
        seed: u64::MAX,
    };
    let recorder = produce(
        config.clone(),
        scenario.topic.clone(),
        plan,
        Instant::now(),
        Arc::default(),
    )
    .await;
    let (written, _) = recorder.produced();
    anyhow::ensure!(
        written == scenario.prefill_records,
        "prefill wrote {written} of {} records; errors: {:?}",
        scenario.prefill_records,
        recorder.errors()
    );
    Ok(())
}

/// What one producer task does.
struct ProducerPlan {
    group: ProducerGroup,
    /// Records to send; `None` = until the deadline.
    limit: Option<u64>,
    /// Records per second; 0 = unthrottled.
    rate: f64,
    start_delay: Duration,
    deadline: Option<Instant>,
    seed: u64,
}

/// Splits each producer group into per-producer plans and spawns them.
fn start_producers(
    config: &ClientConfig,
    scenario: &Scenario,
    start: Instant,
    live: &Arc<Live>,
) -> Vec<JoinHandle<Recorder>> {
    let mut tasks = Vec::new();
    for (group_index, group) in scenario.producers.iter().enumerate() {
        let count = u64::from(group.count);
        for index in 0..count {
            let limit = (group.records > 0).then(|| group.records / count + u64::from(index < group.records % count));
            if limit == Some(0) {
                continue;
            }
            let plan = ProducerPlan {
                group: group.clone(),
                limit,
                rate: group.target_rate as f64 / count as f64,
                start_delay: Duration::from_millis(group.ramp_up_ms.saturating_mul(index) / count),
                deadline: (group.duration_ms > 0).then(|| start + Duration::from_millis(group.duration_ms)),
                seed: (group_index as u64) << 32 | index,
            };
            tasks.push(tokio::spawn(produce(
                config.clone(),
                scenario.topic.clone(),
                plan,
                start,
                live.clone(),
            )));
        }
    }
    tasks
}

fn producer_config(group: &ProducerGroup) -> ProducerConfig {
    ProducerConfig {
        acks: group.acks.into(),
        linger: Duration::from_millis(group.linger_ms),
        batch_size: group.batch_size,
        compression: group.compression.into(),
        buffer_memory: ProducerConfig::default().buffer_memory.max(group.batch_size),
        ..ProducerConfig::default()
    }
}

/// One producer: sends its records at its pace, hands each delivery to a completion task
/// that records the latency when the acknowledgement arrives.
async fn produce(config: ClientConfig, topic: String, plan: ProducerPlan, start: Instant, live: Arc<Live>) -> Recorder {
    let mut errors = Recorder::new(start);
    tokio::time::sleep_until((start + plan.start_delay).into()).await;
    let producer = match Producer::new(config, producer_config(&plan.group)).await {
        Ok(producer) => producer,
        Err(error) => {
            errors.record_error(Instant::now(), &error_kind("produce", &error));
            live.errors.fetch_add(1, Ordering::Relaxed);
            return errors;
        }
    };
    let (deliveries, receiver) = mpsc::channel(DELIVERIES_QUEUED_MAX);
    let completions = tokio::spawn(complete(receiver, Recorder::new(start), live.clone()));
    let mut factory = RecordFactory::new(&topic, &plan.group, plan.seed);
    let first = Instant::now();
    let mut sent: u64 = 0;
    loop {
        if plan.limit.is_some_and(|limit| sent >= limit) {
            break;
        }
        if plan.rate > 0.0 {
            let due = first + Duration::from_secs_f64(sent as f64 / plan.rate);
            let wake = plan.deadline.map_or(due, |deadline| due.min(deadline));
            tokio::time::sleep_until(wake.into()).await;
        }
        if plan.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            break;
        }
        let (record, size) = factory.next_record();
        let sent_at = Instant::now();
        sent += 1;
        match producer.send(record).await {
            Ok(delivery) => {
                if deliveries.send((sent_at, size, delivery)).await.is_err() {
                    break;
                }
            }
            Err(error) => {
                errors.record_error(Instant::now(), &error_kind("produce", &error));
                live.errors.fetch_add(1, Ordering::Relaxed);
                if matches!(error, strom_client::Error::Fatal(_) | strom_client::Error::Config(_)) {
                    break;
                }
            }
        }
    }
    if let Err(error) = producer.flush().await {
        errors.record_error(Instant::now(), &error_kind("produce", &error));
    }
    drop(deliveries);
    let mut recorder = match completions.await {
        Ok(recorder) => recorder,
        Err(_) => Recorder::new(start),
    };
    if let Err(error) = producer.close().await {
        errors.record_error(Instant::now(), &error_kind("produce", &error));
    }
    recorder.merge(&errors);
    recorder
}

type Delivery = (Instant, usize, DeliveryFuture);

/// Awaits deliveries in whatever order they complete and records their latency.
async fn complete(mut receiver: mpsc::Receiver<Delivery>, mut recorder: Recorder, live: Arc<Live>) -> Recorder {
    let mut pending = FuturesUnordered::new();
    let mut open = true;
    loop {
        tokio::select! {
            Some((sent_at, size, result)) = pending.next(), if !pending.is_empty() => {
                let now = Instant::now();
                match result {
                    Ok(_) => {
                        recorder.record_produce(now, size, now.saturating_duration_since(sent_at));
                        live.produced.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => {
                        recorder.record_error(now, &error_kind("produce", &error));
                        live.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            message = receiver.recv(), if open => match message {
                Some((sent_at, size, delivery)) => pending.push(async move { (sent_at, size, delivery.await) }),
                None => open = false,
            },
            else => break,
        }
    }
    recorder
}

/// Per consumer group: records read by all its members.
#[derive(Debug)]
struct GroupProgress {
    consumed: AtomicU64,
    settings: ConsumerGroup,
}

/// Creates every consumer, assigned or subscribed, before producers start.
async fn start_consumers(
    config: &ClientConfig,
    scenario: &Scenario,
    partitions: &[i32],
) -> anyhow::Result<Vec<(Consumer, ConsumerGroup, Arc<GroupProgress>)>> {
    let mut consumers = Vec::new();
    for group in &scenario.consumers {
        let progress = Arc::new(GroupProgress {
            consumed: AtomicU64::new(0),
            settings: group.clone(),
        });
        for index in 0..group.count {
            let consumer_config = ConsumerConfig {
                group_id: group.group_id.clone(),
                auto_offset_reset: match group.from {
                    StartFrom::Beginning => AutoOffsetReset::Earliest,
                    StartFrom::End => AutoOffsetReset::Latest,
                },
                ..ConsumerConfig::default()
            };
            let consumer = Consumer::new(config.clone(), consumer_config).await?;
            match &group.group_id {
                Some(_) => consumer.subscribe(&[scenario.topic.as_str()]).await?,
                None => {
                    let offset = match group.from {
                        StartFrom::Beginning => Offset::Beginning,
                        StartFrom::End => Offset::End,
                    };
                    let assigned: BTreeMap<TopicPartition, Offset> = partitions
                        .iter()
                        .filter(|partition| partition.rem_euclid(group.count as i32) == index as i32)
                        .map(|partition| (TopicPartition::new(scenario.topic.clone(), *partition), offset))
                        .collect();
                    if assigned.is_empty() {
                        continue;
                    }
                    consumer.assign(assigned).await?;
                }
            }
            consumers.push((consumer, group.clone(), progress.clone()));
        }
    }
    Ok(consumers)
}

struct ConsumeContext {
    group: ConsumerGroup,
    progress: Arc<GroupProgress>,
    has_producers: bool,
    /// `Some(records acknowledged)` once every producer is done.
    done: watch::Receiver<Option<u64>>,
    start: Instant,
    live: Arc<Live>,
}

/// One consumer: polls until its group has read everything (or its limit), or goes idle.
async fn consume(consumer: Consumer, context: ConsumeContext) -> Recorder {
    let mut recorder = Recorder::new(context.start);
    let idle_timeout = Duration::from_millis(context.group.idle_timeout_ms);
    let mut last_record = Instant::now();
    let mut producers_done = !context.has_producers;
    loop {
        match consumer.poll(POLL_TIMEOUT).await {
            Ok(records) => {
                let now = Instant::now();
                let wall = SystemTime::now();
                for record in &records {
                    let value = record.value.as_deref().unwrap_or_default();
                    recorder.record_consume(now, value.len(), stamp_age(value, wall));
                }
                if !records.is_empty() {
                    last_record = now;
                    let count = records.len() as u64;
                    context.progress.consumed.fetch_add(count, Ordering::Relaxed);
                    context.live.consumed.fetch_add(count, Ordering::Relaxed);
                }
            }
            Err(error) => {
                recorder.record_error(Instant::now(), &error_kind("consume", &error));
                context.live.errors.fetch_add(1, Ordering::Relaxed);
                if matches!(error, strom_client::Error::Fatal(_) | strom_client::Error::Config(_)) {
                    break;
                }
                tokio::time::sleep(POLL_ERROR_BACKOFF).await;
            }
        }
        let consumed = context.progress.consumed.load(Ordering::Relaxed);
        let limit = context.progress.settings.records;
        if limit > 0 && consumed >= limit {
            break;
        }
        let produced = *context.done.borrow();
        if !producers_done && produced.is_some() {
            producers_done = true;
            last_record = last_record.max(Instant::now());
        }
        if producers_done {
            if produced.is_some_and(|produced| produced > 0 && consumed >= produced) {
                break;
            }
            if last_record.elapsed() >= idle_timeout {
                break;
            }
        }
    }
    if let Err(error) = consumer.close().await {
        recorder.record_error(Instant::now(), &error_kind("consume", &error));
    }
    recorder
}

/// The error's kind for counting: the stage and the error without its free-form detail.
pub fn error_kind(stage: &str, error: &strom_client::Error) -> String {
    use strom_client::Error;
    let kind = match error {
        Error::Kafka { .. } => {
            let text = error.to_string();
            return format!(
                "{stage}: {}",
                text.split_once(": ").map_or(text.as_str(), |(head, _)| head)
            );
        }
        Error::Io(_) => "i/o error",
        Error::Timeout(_) => "timeout",
        Error::Protocol(_) => "protocol error",
        Error::NoBrokers(_) | Error::Connect { .. } => "no broker reachable",
        Error::UnknownTopic(_) => "unknown topic",
        Error::Config(_) => "invalid configuration",
        Error::Fatal(_) => "fatal",
    };
    format!("{stage}: {kind}")
}

/// Draws the progress line until aborted.
fn spawn_progress(options: &RunOptions, scenario: &Scenario, live: Arc<Live>) -> JoinHandle<()> {
    let bar = match (options.progress, scenario.planned_records()) {
        (false, _) => ProgressBar::hidden(),
        (true, Some(total)) if total > 0 => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
        (true, _) => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let template = if bar.length().is_some() {
        "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}"
    } else {
        "{prefix} [{elapsed_precise}] {spinner} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_prefix(options.label.clone());
    tokio::spawn(async move {
        let _clear = ClearOnDrop(bar.clone());
        let mut previous = 0;
        let mut interval = tokio::time::interval(PROGRESS_INTERVAL);
        loop {
            interval.tick().await;
            let produced = live.produced.load(Ordering::Relaxed);
            let rate = (produced - previous) as f64 / PROGRESS_INTERVAL.as_secs_f64();
            previous = produced;
            bar.set_position(produced);
            bar.set_message(format!(
                "produced {produced} ({rate:.0}/s) consumed {} errors {}",
                live.consumed.load(Ordering::Relaxed),
                live.errors.load(Ordering::Relaxed)
            ));
        }
    })
}

/// Removes the progress line when the display task ends.
struct ClearOnDrop(ProgressBar);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_drop_details() {
        let error = strom_client::Error::Kafka {
            code: 6,
            message: "partition 3 moved".into(),
        };
        assert_eq!(
            error_kind("produce", &error),
            "produce: broker error 6 (NOT_LEADER_OR_FOLLOWER)"
        );
        let error = strom_client::Error::Timeout("after 30 s".into());
        assert_eq!(error_kind("consume", &error), "consume: timeout");
    }
}
