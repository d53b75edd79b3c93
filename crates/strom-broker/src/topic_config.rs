//! Topic configuration: Kafka's topic config names, their types, defaults and the
//! broker-level synonyms that supply a cluster-wide default (as in Kafka's
//! `LogConfig`). A topic stores only its overrides; everything else resolves to the
//! broker setting or the built-in default, and DescribeConfigs reports which.

use std::collections::BTreeMap;

use crate::error::{BrokerError, Result};
use strom_log::{CompactionConfig, LogConfig};

/// The type of a config value, as Kafka's DescribeConfigs v3+ reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Long,
    Double,
    List,
}

/// One topic config: its name, the broker setting that supplies its default, its type,
/// built-in default and a one-line description.
#[derive(Debug)]
pub struct ConfigDef {
    pub name: &'static str,
    pub broker_synonym: &'static str,
    pub kind: ConfigType,
    pub default: &'static str,
    pub doc: &'static str,
    /// Whether Strom acts on the value today; others are accepted and stored.
    pub enforced: bool,
}

const LONG_MAX: &str = "9223372036854775807";

/// Every topic config Strom accepts, sorted by name.
#[rustfmt::skip]
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    ConfigDef { name: "cleanup.policy", broker_synonym: "log.cleanup.policy", kind: ConfigType::List, default: "delete", doc: "delete: time and size retention; compact: keep the latest record per key (both may be listed)", enforced: true },
    ConfigDef { name: "compression.type", broker_synonym: "compression.type", kind: ConfigType::String, default: "producer", doc: "final compression of stored batches; 'producer' keeps what the producer sent", enforced: false },
    ConfigDef { name: "confluent.key.schema.validation", broker_synonym: "confluent.key.schema.validation", kind: ConfigType::Boolean, default: "false", doc: "every produced key must carry a schema id (Confluent's wire format) registered under the subject the key strategy names, else the batch is refused with INVALID_RECORD", enforced: true },
    ConfigDef { name: "confluent.key.subject.name.strategy", broker_synonym: "confluent.key.subject.name.strategy", kind: ConfigType::String, default: "io.confluent.kafka.serializers.subject.TopicNameStrategy", doc: "the subject of a key's schema: TopicNameStrategy (<topic>-key), RecordNameStrategy (the record's full name) or TopicRecordNameStrategy (<topic>-<full name>)", enforced: true },
    ConfigDef { name: "confluent.value.schema.validation", broker_synonym: "confluent.value.schema.validation", kind: ConfigType::Boolean, default: "false", doc: "every produced value must carry a schema id (Confluent's wire format) registered under the subject the value strategy names, else the batch is refused with INVALID_RECORD", enforced: true },
    ConfigDef { name: "confluent.value.subject.name.strategy", broker_synonym: "confluent.value.subject.name.strategy", kind: ConfigType::String, default: "io.confluent.kafka.serializers.subject.TopicNameStrategy", doc: "the subject of a value's schema: TopicNameStrategy (<topic>-value), RecordNameStrategy or TopicRecordNameStrategy", enforced: true },
    ConfigDef { name: "delete.retention.ms", broker_synonym: "log.cleaner.delete.retention.ms", kind: ConfigType::Long, default: "86400000", doc: "how long tombstones are kept on compacted topics", enforced: true },
    ConfigDef { name: "file.delete.delay.ms", broker_synonym: "log.segment.delete.delay.ms", kind: ConfigType::Long, default: "60000", doc: "delay before a deleted segment file is removed", enforced: false },
    ConfigDef { name: "flush.messages", broker_synonym: "log.flush.interval.messages", kind: ConfigType::Long, default: LONG_MAX, doc: "fsync once this many records wait unflushed; the produce that reaches it is answered after the fsync (acks=all always fsyncs)", enforced: true },
    ConfigDef { name: "flush.ms", broker_synonym: "log.flush.interval.ms", kind: ConfigType::Long, default: LONG_MAX, doc: "fsync when records wait and the last fsync is this old, checked every 100 ms (acks=all always fsyncs)", enforced: true },
    ConfigDef { name: "index.interval.bytes", broker_synonym: "log.index.interval.bytes", kind: ConfigType::Int, default: "4096", doc: "bytes of log between two offset-index entries", enforced: true },
    ConfigDef { name: "max.compaction.lag.ms", broker_synonym: "log.cleaner.max.compaction.lag.ms", kind: ConfigType::Long, default: LONG_MAX, doc: "longest time a record stays uncompacted", enforced: false },
    ConfigDef { name: "max.message.bytes", broker_synonym: "message.max.bytes", kind: ConfigType::Int, default: "1048588", doc: "largest record batch the topic accepts", enforced: true },
    ConfigDef { name: "message.timestamp.type", broker_synonym: "log.message.timestamp.type", kind: ConfigType::String, default: "CreateTime", doc: "CreateTime keeps the producer's timestamps, LogAppendTime stamps batches on append", enforced: true },
    ConfigDef { name: "min.cleanable.dirty.ratio", broker_synonym: "log.cleaner.min.cleanable.ratio", kind: ConfigType::Double, default: "0.5", doc: "dirty ratio that triggers compaction", enforced: false },
    ConfigDef { name: "min.compaction.lag.ms", broker_synonym: "log.cleaner.min.compaction.lag.ms", kind: ConfigType::Long, default: "0", doc: "shortest time a record stays uncompacted", enforced: true },
    ConfigDef { name: "min.insync.replicas", broker_synonym: "min.insync.replicas", kind: ConfigType::Int, default: "1", doc: "in-sync replicas a partition needs to take acks=all writes and to advance its high watermark", enforced: true },
    ConfigDef { name: "preallocate", broker_synonym: "log.preallocate", kind: ConfigType::Boolean, default: "false", doc: "preallocate segment files", enforced: false },
    ConfigDef { name: "retention.bytes", broker_synonym: "log.retention.bytes", kind: ConfigType::Long, default: "-1", doc: "largest size of a partition before old segments are deleted; -1 = unlimited", enforced: true },
    ConfigDef { name: "retention.ms", broker_synonym: "log.retention.ms", kind: ConfigType::Long, default: "604800000", doc: "age after which closed segments are deleted; -1 = forever", enforced: true },
    ConfigDef { name: "segment.bytes", broker_synonym: "log.segment.bytes", kind: ConfigType::Int, default: "1073741824", doc: "size at which a new segment file is started", enforced: true },
    ConfigDef { name: "segment.index.bytes", broker_synonym: "log.index.size.max.bytes", kind: ConfigType::Int, default: "10485760", doc: "largest offset index file", enforced: false },
    ConfigDef { name: "segment.jitter.ms", broker_synonym: "log.roll.jitter.ms", kind: ConfigType::Long, default: "0", doc: "random jitter subtracted from segment.ms", enforced: false },
    ConfigDef { name: "segment.ms", broker_synonym: "log.roll.ms", kind: ConfigType::Long, default: "604800000", doc: "age at which a new segment file is started", enforced: true },
    ConfigDef { name: "strom.key.schema.validation.decode", broker_synonym: "strom.key.schema.validation.decode", kind: ConfigType::Boolean, default: "false", doc: "with confluent.key.schema.validation: also decode each key with its schema (Avro binary, JSON against the JSON Schema, Protobuf through its message indexes), refusing the batch with INVALID_RECORD when one does not decode", enforced: true },
    ConfigDef { name: "strom.value.schema.validation.decode", broker_synonym: "strom.value.schema.validation.decode", kind: ConfigType::Boolean, default: "false", doc: "with confluent.value.schema.validation: also decode each value with its schema (Avro binary, JSON against the JSON Schema, Protobuf through its message indexes), refusing the batch with INVALID_RECORD when one does not decode", enforced: true },
    ConfigDef { name: "unclean.leader.election.enable", broker_synonym: "unclean.leader.election.enable", kind: ConfigType::Boolean, default: "false", doc: "allow an out-of-sync replica to become leader when no in-sync one is alive (may lose acknowledged records)", enforced: true },
];

pub fn config_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// The topic config whose broker-level default is the setting `name` (e.g.
/// `log.retention.ms` → `retention.ms`). These are the broker settings that can be
/// changed at runtime, as in Kafka's DynamicLogConfig.
pub fn config_def_by_broker_synonym(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.broker_synonym == name)
}

/// Where an effective config value came from (Kafka's ConfigSource).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic,
    /// Set at runtime for this broker (AlterConfigs on BROKER `<node id>`).
    DynamicBroker,
    /// Set at runtime for every broker (AlterConfigs on BROKER `""`).
    DynamicDefaultBroker,
    StaticBroker,
    Default,
    /// Set on the group (Kafka 4.0's GROUP resource).
    GroupConfig,
}

/// One resolved config entry, with the chain of values that could have supplied it,
/// most specific first (Kafka's synonyms).
#[derive(Debug, Clone)]
pub struct ConfigEntry {
    pub def: &'static ConfigDef,
    pub value: String,
    pub source: ConfigSource,
    pub synonyms: Vec<(String, String, ConfigSource)>,
}

/// Check a value against its definition; returns Kafka's message on failure.
/// Topic configs accepted and ignored, as Kafka 3.x does: `message.format.version` has
/// no effect once the inter-broker protocol is 3.0 or later, and tools still send it.
pub const IGNORED_TOPIC_CONFIGS: &[&str] = &["message.format.version"];

/// Whether a topic config name is accepted but ignored (see [`IGNORED_TOPIC_CONFIGS`]).
pub fn is_ignored(name: &str) -> bool {
    IGNORED_TOPIC_CONFIGS.contains(&name)
}

pub fn validate(name: &str, value: &str) -> Result<()> {
    let def =
        config_def(name).ok_or_else(|| BrokerError::InvalidConfig(format!("Unknown topic config name: {name}")))?;
    let bad = |why: &str| BrokerError::InvalidConfig(format!("Invalid value {value} for configuration {name}: {why}"));
    match def.kind {
        ConfigType::Boolean => {
            if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") {
                return Err(bad("Expected value to be either true or false"));
            }
        }
        ConfigType::Int => {
            value
                .trim()
                .parse::<i32>()
                .map_err(|_| bad("Not a number of type INT"))?;
        }
        ConfigType::Long => {
            value
                .trim()
                .parse::<i64>()
                .map_err(|_| bad("Not a number of type LONG"))?;
        }
        ConfigType::Double => {
            value
                .trim()
                .parse::<f64>()
                .map_err(|_| bad("Not a number of type DOUBLE"))?;
        }
        ConfigType::String | ConfigType::List => {}
    }
    let number = value.trim().parse::<i64>().ok();
    match name {
        "cleanup.policy" => {
            for part in value.split(',').map(str::trim) {
                if part != "delete" && part != "compact" {
                    return Err(bad("String must be one of: compact, delete"));
                }
            }
        }
        "message.timestamp.type" if value != "CreateTime" && value != "LogAppendTime" => {
            return Err(bad("String must be one of: CreateTime, LogAppendTime"));
        }
        "compression.type" if !["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"].contains(&value) => {
            return Err(bad(
                "String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer",
            ));
        }
        "confluent.key.subject.name.strategy" | "confluent.value.subject.name.strategy"
            if SubjectStrategy::parse(value).is_none() =>
        {
            return Err(bad(
                "String must be one of: TopicNameStrategy, RecordNameStrategy, TopicRecordNameStrategy",
            ));
        }
        "segment.bytes" if number.is_some_and(|n| n < 14) => return Err(bad("Value must be at least 14")),
        "segment.ms" | "index.interval.bytes" | "max.message.bytes" if number.is_some_and(|n| n < 0) => {
            return Err(bad("Value must be at least 0"))
        }
        "segment.ms" if number == Some(0) => return Err(bad("Value must be at least 1")),
        "min.insync.replicas" if number.is_some_and(|n| n < 1) => return Err(bad("Value must be at least 1")),
        "retention.ms" | "retention.bytes" if number.is_some_and(|n| n < -1) => {
            return Err(bad("Value must be at least -1"))
        }
        _ => {}
    }
    Ok(())
}

/// The settings of a topic that produce and maintenance act on.
#[derive(Debug, Clone, Copy)]
pub struct TopicLimits {
    pub max_message_bytes: usize,
    /// `cleanup.policy` contains `compact`: keys are required, the cleaner runs.
    pub compact: bool,
    /// `cleanup.policy` contains `delete`: time and size retention apply.
    pub delete: bool,
    pub compaction: CompactionConfig,
    /// `flush.messages`: fsync once this many records wait (i64::MAX: never).
    pub flush_messages: i64,
    /// `flush.ms`: fsync when the last fsync is this old and records wait (i64::MAX: never).
    pub flush_ms: i64,
    /// `min.insync.replicas`.
    pub min_insync_replicas: usize,
    /// `confluent.key.schema.validation` with its strategy (None: off).
    pub key_schema: Option<SchemaRule>,
    /// `confluent.value.schema.validation` with its strategy (None: off).
    pub value_schema: Option<SchemaRule>,
}

/// How a topic validates a key's or value's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaRule {
    /// `confluent.{key,value}.subject.name.strategy`.
    pub strategy: SubjectStrategy,
    /// `strom.{key,value}.schema.validation.decode`: the payload must decode with the
    /// schema, not only carry a registered id.
    pub decode: bool,
}

/// How the subject of a record's schema is named (Confluent's subject name strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectStrategy {
    /// `<topic>-key` or `<topic>-value`.
    TopicName,
    /// The record type's full name.
    RecordName,
    /// `<topic>-<record full name>`.
    TopicRecordName,
}

impl SubjectStrategy {
    /// The class name as Confluent writes it, or its last part.
    pub fn parse(value: &str) -> Option<SubjectStrategy> {
        let name = value.trim();
        let name = name
            .strip_prefix("io.confluent.kafka.serializers.subject.")
            .unwrap_or(name);
        match name {
            "TopicNameStrategy" => Some(SubjectStrategy::TopicName),
            "RecordNameStrategy" => Some(SubjectStrategy::RecordName),
            "TopicRecordNameStrategy" => Some(SubjectStrategy::TopicRecordName),
            _ => None,
        }
    }
}

/// Cluster-wide defaults for topic configs: the broker settings that were set
/// explicitly (by name of the broker synonym, e.g. `log.retention.ms`), in the file or
/// on the command line, and those set at runtime for this broker or for all brokers.
#[derive(Debug, Clone, Default)]
pub struct TopicDefaults {
    pub broker_settings: BTreeMap<String, String>,
    /// Dynamic configs of this broker (beat everything but a topic's own).
    pub dynamic_broker: BTreeMap<String, String>,
    /// Dynamic cluster-wide defaults (beat the static settings).
    pub dynamic_default: BTreeMap<String, String>,
}

impl TopicDefaults {
    /// The effective entry for `def`, given a topic's overrides.
    pub fn resolve(&self, def: &'static ConfigDef, overrides: &BTreeMap<String, String>) -> ConfigEntry {
        let mut synonyms = Vec::with_capacity(5);
        if let Some(v) = overrides.get(def.name) {
            synonyms.push((def.name.to_string(), v.clone(), ConfigSource::DynamicTopic));
        }
        for (layer, source) in [
            (&self.dynamic_broker, ConfigSource::DynamicBroker),
            (&self.dynamic_default, ConfigSource::DynamicDefaultBroker),
            (&self.broker_settings, ConfigSource::StaticBroker),
        ] {
            if let Some(v) = layer.get(def.broker_synonym) {
                synonyms.push((def.broker_synonym.to_string(), v.clone(), source));
            }
        }
        synonyms.push((
            def.broker_synonym.to_string(),
            def.default.to_string(),
            ConfigSource::Default,
        ));
        let (_, value, source) = synonyms[0].clone();
        ConfigEntry {
            def,
            value,
            source,
            synonyms,
        }
    }

    pub fn value(&self, name: &str, overrides: &BTreeMap<String, String>) -> String {
        match config_def(name) {
            Some(def) => self.resolve(def, overrides).value,
            None => String::new(),
        }
    }

    fn number(&self, name: &str, overrides: &BTreeMap<String, String>) -> i64 {
        let value = self.value(name, overrides);
        let fallback = config_def(name).and_then(|d| d.default.parse().ok()).unwrap_or(0);
        value.trim().parse().unwrap_or(fallback)
    }

    /// `part` is `key` or `value`.
    fn schema_rule(&self, part: &str, overrides: &BTreeMap<String, String>) -> Option<SchemaRule> {
        let flag = |name: String| self.value(&name, overrides).eq_ignore_ascii_case("true");
        if !flag(format!("confluent.{part}.schema.validation")) {
            return None;
        }
        let strategy =
            SubjectStrategy::parse(&self.value(&format!("confluent.{part}.subject.name.strategy"), overrides))?;
        Some(SchemaRule {
            strategy,
            decode: flag(format!("strom.{part}.schema.validation.decode")),
        })
    }

    /// The storage settings for a topic with these overrides.
    pub fn log_config(&self, overrides: &BTreeMap<String, String>) -> LogConfig {
        LogConfig {
            segment_bytes: self.number("segment.bytes", overrides).max(14) as u64,
            segment_ms: self.number("segment.ms", overrides).max(1),
            retention_ms: self.number("retention.ms", overrides),
            retention_bytes: self.number("retention.bytes", overrides),
            index_interval_bytes: self.number("index.interval.bytes", overrides).clamp(1, u32::MAX as i64) as u32,
            message_timestamp_log_append_time: self.value("message.timestamp.type", overrides) == "LogAppendTime",
        }
    }

    pub fn limits(&self, overrides: &BTreeMap<String, String>) -> TopicLimits {
        let policy = self.value("cleanup.policy", overrides);
        TopicLimits {
            max_message_bytes: self.number("max.message.bytes", overrides).max(0) as usize,
            compact: policy.split(',').any(|p| p.trim() == "compact"),
            delete: policy.split(',').any(|p| p.trim() == "delete"),
            compaction: CompactionConfig {
                delete_retention_ms: self.number("delete.retention.ms", overrides),
                min_compaction_lag_ms: self.number("min.compaction.lag.ms", overrides),
            },
            flush_messages: self.number("flush.messages", overrides).max(1),
            flush_ms: self.number("flush.ms", overrides).max(0),
            min_insync_replicas: self
                .number("min.insync.replicas", overrides)
                .clamp(1, i64::from(i16::MAX)) as usize,
            key_schema: self.schema_rule("key", overrides),
            value_schema: self.schema_rule("value", overrides),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_sorted_and_defaults_valid() {
        for pair in TOPIC_CONFIGS.windows(2) {
            assert!(pair[0].name < pair[1].name, "{} before {}", pair[0].name, pair[1].name);
        }
        for def in TOPIC_CONFIGS {
            validate(def.name, def.default).unwrap();
        }
    }

    #[test]
    fn resolution_order_is_topic_then_broker_then_default() {
        let mut defaults = TopicDefaults::default();
        let mut overrides = BTreeMap::new();
        let def = config_def("retention.ms").unwrap();
        assert_eq!(defaults.resolve(def, &overrides).source, ConfigSource::Default);
        defaults
            .broker_settings
            .insert("log.retention.ms".into(), "1000".into());
        let e = defaults.resolve(def, &overrides);
        assert_eq!((e.value.as_str(), e.source), ("1000", ConfigSource::StaticBroker));
        overrides.insert("retention.ms".into(), "5".into());
        let e = defaults.resolve(def, &overrides);
        assert_eq!(
            (e.value.as_str(), e.source, e.synonyms.len()),
            ("5", ConfigSource::DynamicTopic, 3)
        );
        assert_eq!(defaults.log_config(&overrides).retention_ms, 5);
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(validate("nope", "1").is_err());
        assert!(validate("retention.ms", "abc").is_err());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("segment.bytes", "10").is_err());
        assert!(validate("retention.ms", "-2").is_err());
    }
}
