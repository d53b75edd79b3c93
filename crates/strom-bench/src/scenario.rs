//! What a benchmark does: the topic, producer groups and consumer groups, loaded from TOML
//! (every field has a default) or built from a preset, then overridden by command-line flags.
//!
//! ```toml
//! topic = "orders"
//! partitions = 6
//!
//! [[producers]]
//! count = 4
//! ramp_up_ms = 1000
//! duration_ms = 30000
//! target_rate = 50000          # records/s for the whole group, 0 = unthrottled
//! message_size = { min = 100, max = 2000 }
//! key_space = 1000
//! acks = "all"
//! compression = "lz4"
//!
//! [[consumers]]
//! count = 2
//! group_id = "bench"            # absent: partitions assigned manually
//! from = "end"
//! ```

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Topic used when the scenario names none.
pub const TOPIC_DEFAULT: &str = "strom-bench";
/// Largest message size a scenario may ask for (bytes).
pub const MESSAGE_SIZE_MAX: usize = 64 * 1024 * 1024;

/// A whole benchmark: where to write, who writes and who reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Topic written and read; created with `partitions` if missing.
    pub topic: String,
    /// Partitions of the topic when it is created (or grown to).
    pub partitions: i32,
    /// Replication factor when the topic is created.
    pub replication_factor: i16,
    /// Records written (unmeasured) before the measured phase, so consumers have data.
    pub prefill_records: u64,
    /// Message size of the prefill.
    pub prefill_message_size: MessageSize,
    /// Producer groups running at the same time.
    pub producers: Vec<ProducerGroup>,
    /// Consumer groups; each reads every partition of the topic once.
    pub consumers: Vec<ConsumerGroup>,
    /// Present for the `stress` preset: raise the target rate in steps until the SLO breaks.
    pub stress: Option<StressPlan>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            topic: TOPIC_DEFAULT.to_string(),
            partitions: 3,
            replication_factor: 1,
            prefill_records: 0,
            prefill_message_size: MessageSize::default(),
            producers: vec![ProducerGroup::default()],
            consumers: Vec::new(),
            stress: None,
        }
    }
}

/// One group of identical producers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProducerGroup {
    /// Producers in the group (each with its own connection).
    pub count: u32,
    /// Producer `i` starts `ramp_up_ms * i / count` after the first.
    pub ramp_up_ms: u64,
    /// Stop after this long (from the start of the run); 0 = no time limit.
    pub duration_ms: u64,
    /// Records for the whole group, split evenly; 0 = no record limit.
    pub records: u64,
    /// Records per second for the whole group; 0 = as fast as possible.
    pub target_rate: u64,
    /// Value size in bytes.
    pub message_size: MessageSize,
    /// Keys are drawn from this many distinct values; 0 = records have no key.
    pub key_space: u64,
    /// Headers per record.
    pub headers: u32,
    /// Acknowledgements waited for.
    pub acks: AcksSetting,
    /// Batch compression.
    pub compression: CompressionSetting,
    /// `linger.ms`.
    pub linger_ms: u64,
    /// `batch.size` in bytes.
    pub batch_size: usize,
}

impl Default for ProducerGroup {
    fn default() -> Self {
        ProducerGroup {
            count: 1,
            ramp_up_ms: 0,
            duration_ms: 0,
            records: 100_000,
            target_rate: 0,
            message_size: MessageSize::default(),
            key_space: 0,
            headers: 0,
            acks: AcksSetting::All,
            compression: CompressionSetting::None,
            linger_ms: 5,
            batch_size: 16 * 1024,
        }
    }
}

/// One group of consumers reading the whole topic together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerGroup {
    /// Consumers in the group.
    pub count: u32,
    /// Consumer group id; `None` assigns partitions manually (partition `p` to consumer `p % count`).
    pub group_id: Option<String>,
    /// Where reading starts.
    pub from: StartFrom,
    /// Stop after the group has read this many records; 0 = read until producers are done
    /// and everything they wrote was read (or `idle_timeout_ms` passes without a record).
    pub records: u64,
    /// Stop after this long without a record once producers are done (or at once, without producers).
    pub idle_timeout_ms: u64,
}

impl Default for ConsumerGroup {
    fn default() -> Self {
        ConsumerGroup {
            count: 1,
            group_id: None,
            from: StartFrom::End,
            records: 0,
            idle_timeout_ms: 3000,
        }
    }
}

/// Where consumers start reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// The log start offset.
    Beginning,
    /// The log end offset: only records written after the consumer started.
    #[default]
    End,
}

/// The `stress` preset's ramp: one run per step, each at a higher target rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StressPlan {
    /// Target rate of the first step (records/s).
    pub start_rate: u64,
    /// Added to the target rate after each passing step.
    pub step_rate: u64,
    /// Last rate tried.
    pub max_rate: u64,
    /// Length of each step.
    pub step_duration_ms: u64,
    /// A step breaks the SLO when its p99 produce latency is above this.
    pub slo_p99_ms: f64,
}

impl Default for StressPlan {
    fn default() -> Self {
        StressPlan {
            start_rate: 5_000,
            step_rate: 5_000,
            max_rate: 500_000,
            step_duration_ms: 5_000,
            slo_p99_ms: 10.0,
        }
    }
}

/// Size of record values: fixed, or uniform between `min` and `max` (inclusive).
///
/// In TOML `message_size = 100` or `message_size = { min = 10, max = 1000 }`; on the command line
/// `100` or `10..1000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageSize {
    /// Every value has this many bytes.
    Fixed(usize),
    /// Uniformly distributed sizes.
    Range {
        /// Smallest size.
        min: usize,
        /// Largest size.
        max: usize,
    },
}

impl Default for MessageSize {
    fn default() -> Self {
        MessageSize::Fixed(1024)
    }
}

impl MessageSize {
    /// The smallest and largest size.
    pub fn bounds(self) -> (usize, usize) {
        match self {
            MessageSize::Fixed(size) => (size, size),
            MessageSize::Range { min, max } => (min, max),
        }
    }

    /// The size for a uniform random draw `draw`.
    pub fn pick(self, draw: u64) -> usize {
        let (min, max) = self.bounds();
        let span = (max - min) as u64 + 1;
        min + (draw % span) as usize
    }
}

impl FromStr for MessageSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("message size {text:?}: expected N or MIN..MAX (bytes)"))
        };
        match text.split_once("..") {
            Some((min, max)) => Ok(MessageSize::Range {
                min: number(min)?,
                max: number(max)?,
            }),
            None => Ok(MessageSize::Fixed(number(text)?)),
        }
    }
}

impl fmt::Display for MessageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageSize::Fixed(size) => write!(f, "{size}"),
            MessageSize::Range { min, max } => write!(f, "{min}..{max}"),
        }
    }
}

/// `acks`: "0" / "none", "1" / "leader", "all" / "-1".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AcksSetting {
    /// No acknowledgement.
    #[serde(alias = "0")]
    #[value(alias = "0")]
    None,
    /// The leader appended the records.
    #[serde(alias = "1")]
    #[value(alias = "1")]
    Leader,
    /// Every in-sync replica has them.
    #[default]
    #[serde(alias = "-1")]
    #[value(alias = "-1")]
    All,
}

impl From<AcksSetting> for strom_client::Acks {
    fn from(acks: AcksSetting) -> Self {
        match acks {
            AcksSetting::None => strom_client::Acks::None,
            AcksSetting::Leader => strom_client::Acks::Leader,
            AcksSetting::All => strom_client::Acks::All,
        }
    }
}

/// Batch compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CompressionSetting {
    /// No compression.
    #[default]
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl From<CompressionSetting> for strom_client::Compression {
    fn from(compression: CompressionSetting) -> Self {
        match compression {
            CompressionSetting::None => strom_client::Compression::None,
            CompressionSetting::Gzip => strom_client::Compression::Gzip,
            CompressionSetting::Snappy => strom_client::Compression::Snappy,
            CompressionSetting::Lz4 => strom_client::Compression::Lz4,
            CompressionSetting::Zstd => strom_client::Compression::Zstd,
        }
    }
}

/// Built-in scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Producers only, unthrottled: produce throughput and ack latency.
    Produce,
    /// Prefills the topic, then consumers read it from the beginning: consume throughput.
    Consume,
    /// Producers at a fixed rate and consumers together: end-to-end latency.
    E2e,
    /// Producers at a rising target rate until p99 produce latency breaks the SLO.
    Stress,
}

impl Preset {
    /// The preset's scenario.
    pub fn scenario(self) -> Scenario {
        match self {
            Preset::Produce => Scenario::default(),
            Preset::Consume => Scenario {
                prefill_records: 100_000,
                producers: Vec::new(),
                consumers: vec![ConsumerGroup {
                    from: StartFrom::Beginning,
                    idle_timeout_ms: 1000,
                    ..ConsumerGroup::default()
                }],
                ..Scenario::default()
            },
            Preset::E2e => Scenario {
                producers: vec![ProducerGroup {
                    target_rate: 10_000,
                    ..ProducerGroup::default()
                }],
                consumers: vec![ConsumerGroup::default()],
                ..Scenario::default()
            },
            Preset::Stress => {
                let plan = StressPlan::default();
                Scenario {
                    producers: vec![ProducerGroup {
                        records: 0,
                        duration_ms: plan.step_duration_ms,
                        target_rate: plan.start_rate,
                        ..ProducerGroup::default()
                    }],
                    stress: Some(plan),
                    ..Scenario::default()
                }
            }
        }
    }
}

/// Command-line values that replace the scenario's; `None` keeps the scenario's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// Topic name.
    pub topic: Option<String>,
    /// Partitions.
    pub partitions: Option<i32>,
    /// Records per producer group (clears the duration unless one is given too); without
    /// producer groups, the prefill's record count.
    pub records: Option<u64>,
    /// Duration of every producer group (clears the record limit unless one is given too).
    pub duration: Option<Duration>,
    /// Message size of every producer group (and the prefill).
    pub message_size: Option<MessageSize>,
    /// Producers per group; 0 removes all producer groups.
    pub producers: Option<u32>,
    /// Consumers per group; 0 removes all consumer groups, more than 0 adds a group if none.
    pub consumers: Option<u32>,
    /// Target rate of every producer group.
    pub rate: Option<u64>,
    /// Acks of every producer group.
    pub acks: Option<AcksSetting>,
    /// Compression of every producer group.
    pub compression: Option<CompressionSetting>,
    /// Batch size of every producer group.
    pub batch_size: Option<usize>,
    /// Linger of every producer group.
    pub linger: Option<Duration>,
}

impl Scenario {
    /// Reads a scenario from a TOML file.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| anyhow::anyhow!("cannot read scenario {}: {error}", path.display()))?;
        Scenario::from_toml(&text).map_err(|error| anyhow::anyhow!("scenario {}: {error}", path.display()))
    }

    /// Parses a scenario from TOML text; absent fields take their defaults.
    pub fn from_toml(text: &str) -> anyhow::Result<Scenario> {
        let scenario: Scenario = toml::from_str(text)?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Replaces values by the given overrides.
    pub fn apply(&mut self, overrides: &Overrides) {
        if let Some(topic) = &overrides.topic {
            self.topic = topic.clone();
        }
        if let Some(partitions) = overrides.partitions {
            self.partitions = partitions;
        }
        match overrides.producers {
            Some(0) => self.producers.clear(),
            Some(count) if self.producers.is_empty() => self.producers.push(ProducerGroup {
                count,
                ..ProducerGroup::default()
            }),
            Some(count) => self.producers.iter_mut().for_each(|group| group.count = count),
            None => {}
        }
        match overrides.consumers {
            Some(0) => self.consumers.clear(),
            Some(count) if self.consumers.is_empty() => self.consumers.push(ConsumerGroup {
                count,
                ..ConsumerGroup::default()
            }),
            Some(count) => self.consumers.iter_mut().for_each(|group| group.count = count),
            None => {}
        }
        if let Some(size) = overrides.message_size {
            self.prefill_message_size = size;
        }
        // Without producers (the consume preset) the record count is the prefill's.
        if let Some(records) = overrides
            .records
            .filter(|_| self.producers.is_empty() && self.prefill_records > 0)
        {
            self.prefill_records = records;
        }
        for group in &mut self.producers {
            group.apply(overrides);
        }
    }

    /// Sets the target rate of every producer group.
    pub fn with_rate(mut self, rate: u64) -> Scenario {
        for group in &mut self.producers {
            group.target_rate = rate;
        }
        self
    }

    /// Checks values a run cannot work with.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.topic.is_empty(), "topic must not be empty");
        anyhow::ensure!(self.partitions > 0, "partitions must be positive");
        anyhow::ensure!(self.replication_factor > 0, "replication_factor must be positive");
        anyhow::ensure!(
            !self.producers.is_empty() || !self.consumers.is_empty(),
            "a scenario needs producers or consumers"
        );
        check_size(self.prefill_message_size)?;
        for group in &self.producers {
            check_size(group.message_size)?;
            anyhow::ensure!(group.count > 0, "a producer group needs count > 0");
            anyhow::ensure!(
                group.records > 0 || group.duration_ms > 0,
                "a producer group needs records or duration_ms"
            );
            anyhow::ensure!(group.batch_size > 0, "batch_size must be positive");
        }
        for group in &self.consumers {
            anyhow::ensure!(group.count > 0, "a consumer group needs count > 0");
        }
        if let Some(plan) = &self.stress {
            anyhow::ensure!(plan.start_rate > 0, "stress.start_rate must be positive");
            anyhow::ensure!(plan.max_rate >= plan.start_rate, "stress.max_rate is below start_rate");
            anyhow::ensure!(plan.step_duration_ms > 0, "stress.step_duration_ms must be positive");
        }
        Ok(())
    }

    /// Records all producer groups write, when every group has a record limit.
    pub fn planned_records(&self) -> Option<u64> {
        self.producers
            .iter()
            .map(|group| (group.records > 0).then_some(group.records))
            .sum()
    }
}

impl ProducerGroup {
    fn apply(&mut self, overrides: &Overrides) {
        match (overrides.records, overrides.duration) {
            (Some(records), Some(duration)) => {
                self.records = records;
                self.duration_ms = duration_ms(duration);
            }
            (Some(records), None) => {
                self.records = records;
                self.duration_ms = 0;
            }
            (None, Some(duration)) => {
                self.records = 0;
                self.duration_ms = duration_ms(duration);
            }
            (None, None) => {}
        }
        if let Some(size) = overrides.message_size {
            self.message_size = size;
        }
        if let Some(rate) = overrides.rate {
            self.target_rate = rate;
        }
        if let Some(acks) = overrides.acks {
            self.acks = acks;
        }
        if let Some(compression) = overrides.compression {
            self.compression = compression;
        }
        if let Some(batch_size) = overrides.batch_size {
            self.batch_size = batch_size;
        }
        if let Some(linger) = overrides.linger {
            self.linger_ms = duration_ms(linger);
        }
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn check_size(size: MessageSize) -> anyhow::Result<()> {
    let (min, max) = size.bounds();
    anyhow::ensure!(min <= max, "message size {size}: min is above max");
    anyhow::ensure!(
        max <= MESSAGE_SIZE_MAX,
        "message size {size}: above {MESSAGE_SIZE_MAX} bytes"
    );
    Ok(())
}

/// Parses a duration: `500ms`, `10s`, `2m`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit_ms) = if let Some(number) = text.strip_suffix("ms") {
        (number, 1.0)
    } else if let Some(number) = text.strip_suffix('s') {
        (number, 1000.0)
    } else if let Some(number) = text.strip_suffix('m') {
        (number, 60_000.0)
    } else {
        (text, 1000.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("duration {text:?}: expected e.g. 500ms, 10s, 2m"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("duration {text:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(value * unit_ms / 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_toml_is_the_default_scenario() {
        assert_eq!(Scenario::from_toml("").unwrap(), Scenario::default());
    }

    #[test]
    fn toml_fields_and_defaults() {
        let scenario = Scenario::from_toml(
            r#"
            topic = "orders"
            partitions = 6

            [[producers]]
            count = 4
            duration_ms = 30000
            records = 0
            target_rate = 50000
            message_size = { min = 100, max = 2000 }
            acks = "1"
            compression = "lz4"

            [[consumers]]
            group_id = "bench"
            from = "beginning"
            "#,
        )
        .unwrap();
        assert_eq!(scenario.topic, "orders");
        assert_eq!(scenario.partitions, 6);
        let producers = &scenario.producers[0];
        assert_eq!(producers.count, 4);
        assert_eq!(producers.message_size, MessageSize::Range { min: 100, max: 2000 });
        assert_eq!(producers.acks, AcksSetting::Leader);
        assert_eq!(producers.compression, CompressionSetting::Lz4);
        assert_eq!(producers.linger_ms, 5, "default");
        assert_eq!(producers.batch_size, 16 * 1024, "default");
        let consumers = &scenario.consumers[0];
        assert_eq!(consumers.count, 1, "default");
        assert_eq!(consumers.group_id.as_deref(), Some("bench"));
        assert_eq!(consumers.from, StartFrom::Beginning);
        assert_eq!(scenario.stress, None);
    }

    #[test]
    fn fixed_message_size_and_stress_table() {
        let scenario = Scenario::from_toml("[[producers]]\nmessage_size = 64\n[stress]\nslo_p99_ms = 3.5\n").unwrap();
        assert_eq!(scenario.producers[0].message_size, MessageSize::Fixed(64));
        let plan = scenario.stress.unwrap();
        assert_eq!(plan.slo_p99_ms, 3.5);
        assert_eq!(plan.start_rate, StressPlan::default().start_rate);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_rejected() {
        assert!(Scenario::from_toml("topik = \"x\"").is_err());
        assert!(Scenario::from_toml("partitions = 0").is_err());
        assert!(Scenario::from_toml("[[producers]]\nmessage_size = { min = 10, max = 5 }").is_err());
        assert!(Scenario::from_toml("[[producers]]\nacks = \"some\"").is_err());
    }

    #[test]
    fn overrides_replace_file_values() {
        let mut scenario = Preset::E2e.scenario();
        scenario.apply(&Overrides {
            topic: Some("t".into()),
            partitions: Some(8),
            records: Some(5000),
            message_size: Some("10..20".parse().unwrap()),
            producers: Some(3),
            consumers: Some(2),
            rate: Some(777),
            acks: Some(AcksSetting::None),
            compression: Some(CompressionSetting::Zstd),
            duration: None,
            batch_size: Some(4096),
            linger: Some(Duration::from_millis(0)),
        });
        assert_eq!(scenario.topic, "t");
        assert_eq!(scenario.partitions, 8);
        let producers = &scenario.producers[0];
        assert_eq!(
            (producers.count, producers.records, producers.target_rate),
            (3, 5000, 777)
        );
        assert_eq!(producers.message_size, MessageSize::Range { min: 10, max: 20 });
        assert_eq!(producers.acks, AcksSetting::None);
        assert_eq!(producers.compression, CompressionSetting::Zstd);
        assert_eq!((producers.batch_size, producers.linger_ms), (4096, 0));
        assert_eq!(scenario.consumers[0].count, 2);

        scenario.apply(&Overrides {
            duration: Some(Duration::from_secs(2)),
            consumers: Some(0),
            ..Overrides::default()
        });
        assert_eq!(
            (scenario.producers[0].records, scenario.producers[0].duration_ms),
            (0, 2000)
        );
        assert!(scenario.consumers.is_empty());
    }

    #[test]
    fn overrides_add_missing_groups() {
        let mut scenario = Preset::Consume.scenario();
        scenario.apply(&Overrides {
            producers: Some(2),
            ..Overrides::default()
        });
        assert_eq!(scenario.producers.len(), 1);
        assert_eq!(scenario.producers[0].count, 2);
    }

    #[test]
    fn records_set_the_prefill_of_the_consume_preset() {
        let mut scenario = Preset::Consume.scenario();
        scenario.apply(&Overrides {
            records: Some(1_000_000),
            ..Overrides::default()
        });
        assert_eq!(scenario.prefill_records, 1_000_000);
        let mut produce = Preset::Produce.scenario();
        produce.apply(&Overrides {
            records: Some(7),
            ..Overrides::default()
        });
        assert_eq!(produce.prefill_records, 0, "producers take the count, not a prefill");
        assert_eq!(produce.producers[0].records, 7);
    }

    #[test]
    fn presets_are_valid() {
        for preset in [Preset::Produce, Preset::Consume, Preset::E2e, Preset::Stress] {
            preset.scenario().validate().unwrap();
        }
        assert!(Preset::Stress.scenario().stress.is_some());
        assert_eq!(Preset::Produce.scenario().planned_records(), Some(100_000));
        assert_eq!(Preset::Stress.scenario().planned_records(), None);
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!("100".parse::<MessageSize>(), Ok(MessageSize::Fixed(100)));
        assert_eq!("1..9".parse::<MessageSize>(), Ok(MessageSize::Range { min: 1, max: 9 }));
        assert!("x".parse::<MessageSize>().is_err());
        assert_eq!(MessageSize::Range { min: 1, max: 3 }.pick(5), 3);
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("soon").is_err());
    }
}
