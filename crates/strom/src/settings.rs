//! Strom's configuration: one flat map of Kafka-named settings, layered
//! built-in defaults ← TOML file (`--config`) ← `STROM_*` environment ← `--set`.
//! Broker-level defaults for topic configs (`log.retention.ms`, ...) are settings too.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use strom_broker::api::StaticSetting;
use strom_broker::group::GroupConfig;
use strom_broker::topic_config::TOPIC_CONFIGS;
use strom_broker::txn::TxnConfig;
use strom_broker::{BrokerConfig, TopicDefaults};
use strom_kafka::ServerConfig;

/// A setting of the broker itself (topic-config defaults are added from the broker crate).
pub struct Setting {
    pub name: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

#[rustfmt::skip]
pub const SETTINGS: &[Setting] = &[
    Setting { name: "node.id", default: "1", doc: "id of this node in the cluster" },
    Setting { name: "log.dirs", default: "./strom-data", doc: "directory holding all data (partition logs, topic list, cluster id)" },
    Setting { name: "listeners", default: "PLAINTEXT://127.0.0.1:9092", doc: "address the Kafka listener binds, as PLAINTEXT://host:port" },
    Setting { name: "advertised.listeners", default: "", doc: "address clients are told to connect to (Metadata); empty = listeners" },
    Setting { name: "num.partitions", default: "1", doc: "partitions of a topic created without a count (and of auto-created topics)" },
    Setting { name: "default.replication.factor", default: "1", doc: "replication factor of a topic created without one" },
    Setting { name: "auto.create.topics.enable", default: "true", doc: "create a topic when a client asks for its metadata" },
    Setting { name: "socket.request.max.bytes", default: "104857600", doc: "largest request frame accepted; larger ones close the connection" },
    Setting { name: "max.connections", default: "10000", doc: "most client connections at once; more are closed on accept" },
    Setting { name: "max.connections.per.ip", default: "2147483647", doc: "most client connections from one address; more are closed on accept" },
    Setting { name: "connections.max.idle.ms", default: "600000", doc: "a connection with no request for this long is closed" },
    Setting { name: "queued.max.request.bytes", default: "209715200", doc: "memory all connections together may hold for large requests being read or run; a client waits (is not read) until there is room" },
    Setting { name: "log.retention.check.interval.ms", default: "300000", doc: "how often retention and segment.ms rolls are checked" },
    Setting { name: "transaction.state.log.num.partitions", default: "50", doc: "partitions of the internal __transaction_state topic (fixed once it exists)" },
    Setting { name: "transaction.state.log.segment.bytes", default: "104857600", doc: "segment size of __transaction_state" },
    Setting { name: "transaction.max.timeout.ms", default: "900000", doc: "largest transaction.timeout.ms a producer may ask for" },
    Setting { name: "transaction.abort.timed.out.transaction.cleanup.interval.ms", default: "10000", doc: "how often transactions past their timeout are aborted" },
    Setting { name: "transactional.id.expiration.ms", default: "604800000", doc: "how long an idle transactional id is kept" },
    Setting { name: "producer.id.expiration.ms", default: "86400000", doc: "how long an idle idempotent producer's sequence state is kept" },
    Setting { name: "log.cleaner.backoff.ms", default: "15000", doc: "how often compacted topics are cleaned" },
    Setting { name: "offsets.topic.num.partitions", default: "50", doc: "partitions of the internal __consumer_offsets topic (fixed once it exists)" },
    Setting { name: "offsets.topic.segment.bytes", default: "104857600", doc: "segment size of __consumer_offsets (small, so compaction runs often)" },
    Setting { name: "group.initial.rebalance.delay.ms", default: "3000", doc: "how long a new group waits for more members before its first rebalance" },
    Setting { name: "group.min.session.timeout.ms", default: "6000", doc: "smallest session.timeout.ms a consumer may ask for" },
    Setting { name: "group.max.session.timeout.ms", default: "1800000", doc: "largest session.timeout.ms a consumer may ask for" },
    Setting { name: "group.max.size", default: "2147483647", doc: "most members in one group" },
    Setting { name: "offset.metadata.max.bytes", default: "4096", doc: "largest metadata string of a committed offset" },
    Setting { name: "group.consumer.heartbeat.interval.ms", default: "5000", doc: "heartbeat interval given to consumer-protocol (KIP-848) members" },
    Setting { name: "group.consumer.session.timeout.ms", default: "45000", doc: "session timeout of consumer-protocol (KIP-848) members" },
    Setting { name: "group.consumer.min.session.timeout.ms", default: "45000", doc: "smallest consumer.session.timeout.ms a group config may set" },
    Setting { name: "group.consumer.max.session.timeout.ms", default: "60000", doc: "largest consumer.session.timeout.ms a group config may set" },
    Setting { name: "group.consumer.min.heartbeat.interval.ms", default: "5000", doc: "smallest consumer.heartbeat.interval.ms a group config may set" },
    Setting { name: "group.consumer.max.heartbeat.interval.ms", default: "15000", doc: "largest consumer.heartbeat.interval.ms a group config may set" },
    Setting { name: "offsets.retention.minutes", default: "10080", doc: "how long committed offsets of an empty group are kept" },
    Setting { name: "offsets.retention.check.interval.ms", default: "600000", doc: "how often expired committed offsets are removed" },
];

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    File,
    Environment,
    CommandLine,
}

#[derive(Debug, Clone)]
pub struct Settings {
    values: BTreeMap<String, (String, Source)>,
}

/// Every known setting: (name, default, description).
pub fn known() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut all: Vec<_> = SETTINGS.iter().map(|s| (s.name, s.default, s.doc)).collect();
    for def in TOPIC_CONFIGS {
        if !all.iter().any(|(name, ..)| *name == def.broker_synonym) {
            all.push((def.broker_synonym, def.default, def.doc));
        }
    }
    all
}

impl Settings {
    pub fn load(
        file: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
        overrides: &[String],
    ) -> Result<Settings> {
        let known = known();
        let mut values: BTreeMap<String, (String, Source)> = known
            .iter()
            .map(|(name, default, _)| (name.to_string(), (default.to_string(), Source::Default)))
            .collect();
        let mut set = |name: &str, value: String, source: Source| -> Result<()> {
            match values.get_mut(name) {
                Some(slot) => {
                    *slot = (value, source);
                    Ok(())
                }
                None => bail!("unknown setting '{name}' (see `strom serve --print-config` for the list)"),
            }
        };
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let table: toml::Table = text.parse().with_context(|| format!("parsing {}", path.display()))?;
            let mut flat = BTreeMap::new();
            flatten("", &toml::Value::Table(table), &mut flat);
            for (name, value) in flat {
                set(&name, value, Source::File).with_context(|| format!("in {}", path.display()))?;
            }
        }
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("STROM_") else {
                continue;
            };
            let name = rest.to_ascii_lowercase().replace('_', ".");
            // Other STROM_* variables (for the CLI, tests) are not broker settings.
            if known.iter().any(|(known_name, ..)| *known_name == name) {
                set(&name, value, Source::Environment)?;
            }
        }
        for pair in overrides {
            let Some((name, value)) = pair.split_once('=') else {
                bail!("--set expects key=value, got '{pair}'");
            };
            set(name.trim(), value.trim().to_string(), Source::CommandLine)?;
        }
        let settings = Settings { values };
        settings.broker_config()?;
        settings.group_config()?;
        settings.txn_config()?;
        settings.server_config()?;
        Ok(settings)
    }

    pub fn get(&self, name: &str) -> &str {
        self.values.get(name).map_or("", |(v, _)| v.as_str())
    }

    fn parse<T: std::str::FromStr>(&self, name: &str) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        self.get(name)
            .trim()
            .parse::<T>()
            .map_err(|e| anyhow::anyhow!("setting {name}={:?}: {e}", self.get(name)))
    }

    /// Lines of `name = "value"  # source` for `--print-config`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, (value, source)) in &self.values {
            let source = match source {
                Source::Default => "default",
                Source::File => "config file",
                Source::Environment => "environment",
                Source::CommandLine => "--set",
            };
            out.push_str(&format!("\"{name}\" = {value:?}  # {source}\n"));
        }
        out
    }

    pub fn broker_config(&self) -> Result<BrokerConfig> {
        let mut config = BrokerConfig::new(PathBuf::from(self.get("log.dirs")));
        config.node_id = self.parse("node.id")?;
        config.num_partitions = self.parse("num.partitions")?;
        if config.num_partitions < 1 {
            bail!("num.partitions must be at least 1");
        }
        config.default_replication_factor = self.parse("default.replication.factor")?;
        config.auto_create_topics_enable = self.parse("auto.create.topics.enable")?;
        config.retention_check_interval_ms = self.parse("log.retention.check.interval.ms")?;
        config.cleaner_backoff_ms = self.parse("log.cleaner.backoff.ms")?;
        config.producer_id_expiration_ms = self.parse("producer.id.expiration.ms")?;
        let mut defaults = TopicDefaults::default();
        for def in TOPIC_CONFIGS {
            if let Some((value, source)) = self.values.get(def.broker_synonym) {
                strom_broker::topic_config::validate(def.name, value)
                    .map_err(|e| anyhow::anyhow!("setting {}: {e}", def.broker_synonym))?;
                if *source != Source::Default {
                    defaults
                        .broker_settings
                        .insert(def.broker_synonym.to_string(), value.clone());
                }
            }
        }
        config.topic_defaults = defaults;
        Ok(config)
    }

    pub fn group_config(&self) -> Result<GroupConfig> {
        let config = GroupConfig {
            offsets_topic_partitions: self.parse("offsets.topic.num.partitions")?,
            offsets_topic_segment_bytes: self.parse("offsets.topic.segment.bytes")?,
            initial_rebalance_delay_ms: self.parse("group.initial.rebalance.delay.ms")?,
            min_session_timeout_ms: self.parse("group.min.session.timeout.ms")?,
            max_session_timeout_ms: self.parse("group.max.session.timeout.ms")?,
            max_size: self.parse("group.max.size")?,
            offset_metadata_max_bytes: self.parse("offset.metadata.max.bytes")?,
            offsets_retention_ms: self.parse::<i64>("offsets.retention.minutes")?.saturating_mul(60_000),
            offsets_retention_check_interval_ms: self.parse("offsets.retention.check.interval.ms")?,
            consumer_heartbeat_interval_ms: self.parse("group.consumer.heartbeat.interval.ms")?,
            consumer_session_timeout_ms: self.parse("group.consumer.session.timeout.ms")?,
            consumer_min_session_timeout_ms: self.parse("group.consumer.min.session.timeout.ms")?,
            consumer_max_session_timeout_ms: self.parse("group.consumer.max.session.timeout.ms")?,
            consumer_min_heartbeat_interval_ms: self.parse("group.consumer.min.heartbeat.interval.ms")?,
            consumer_max_heartbeat_interval_ms: self.parse("group.consumer.max.heartbeat.interval.ms")?,
        };
        if config.offsets_topic_partitions < 1 {
            bail!("offsets.topic.num.partitions must be at least 1");
        }
        Ok(config)
    }

    pub fn txn_config(&self) -> Result<TxnConfig> {
        let config = TxnConfig {
            state_topic_partitions: self.parse("transaction.state.log.num.partitions")?,
            state_segment_bytes: self.parse("transaction.state.log.segment.bytes")?,
            max_timeout_ms: self.parse("transaction.max.timeout.ms")?,
            abort_check_interval_ms: self.parse("transaction.abort.timed.out.transaction.cleanup.interval.ms")?,
            id_expiration_ms: self.parse("transactional.id.expiration.ms")?,
        };
        if config.state_topic_partitions < 1 {
            bail!("transaction.state.log.num.partitions must be at least 1");
        }
        Ok(config)
    }

    /// Every setting as started, for DescribeConfigs on the broker.
    pub fn static_settings(&self) -> Vec<StaticSetting> {
        self.values
            .iter()
            .map(|(name, (value, source))| StaticSetting {
                name: name.clone(),
                value: value.clone(),
                explicit: *source != Source::Default,
                doc: known()
                    .iter()
                    .find(|(n, ..)| n == name)
                    .map_or("", |(_, _, d)| d)
                    .to_string(),
            })
            .collect()
    }

    pub fn server_config(&self) -> Result<ServerConfig> {
        let (bind_host, port) = parse_listener(self.get("listeners"))?;
        let bind = (
            if bind_host.is_empty() {
                "0.0.0.0"
            } else {
                bind_host.as_str()
            },
            port,
        )
            .to_socket_addrs()
            .with_context(|| format!("resolving listeners={}", self.get("listeners")))?
            .next()
            .context("listeners resolves to no address")?;
        let (advertised_host, advertised_port) = match self.get("advertised.listeners") {
            "" => (advertised_for(&bind, &bind_host), port),
            other => parse_listener(other)?,
        };
        Ok(ServerConfig {
            bind,
            advertised_host,
            advertised_port: i32::from(advertised_port),
            socket_request_max_bytes: self.parse("socket.request.max.bytes")?,
            max_connections: self.parse("max.connections")?,
            max_connections_per_ip: self.parse("max.connections.per.ip")?,
            connections_max_idle_ms: self.parse("connections.max.idle.ms")?,
            queued_max_request_bytes: self.parse("queued.max.request.bytes")?,
        })
    }
}

/// `PLAINTEXT://host:port[,...]` → the first listener's host and port.
fn parse_listener(value: &str) -> Result<(String, u16)> {
    let first = value.split(',').next().unwrap_or("").trim();
    let address = match first.split_once("://") {
        Some((protocol, address)) => {
            if !protocol.eq_ignore_ascii_case("PLAINTEXT") {
                bail!("listener protocol {protocol} is not supported yet (use PLAINTEXT)");
            }
            address
        }
        None => first,
    };
    let (host, port) = address
        .rsplit_once(':')
        .with_context(|| format!("listener '{first}' has no port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let port = port
        .parse::<u16>()
        .with_context(|| format!("listener '{first}' has a bad port"))?;
    Ok((host, port))
}

/// The host to advertise when only a bind address is given.
fn advertised_for(bind: &SocketAddr, host: &str) -> String {
    if bind.ip().is_unspecified() {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_string())
    } else if host.is_empty() {
        bind.ip().to_string()
    } else {
        host.to_string()
    }
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                flatten(&key(k), v, out);
            }
        }
        toml::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        toml::Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            out.insert(prefix.to_string(), parts.join(","));
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("strom.toml");
        std::fs::write(
            &file,
            "num.partitions = 3\n[log]\ndirs = \"/tmp/x\"\nretention.ms = 5000\n",
        )
        .unwrap();
        let env = vec![
            ("STROM_NUM_PARTITIONS".to_string(), "4".to_string()),
            ("STROM_BIN".into(), "x".into()),
        ];
        let s = Settings::load(
            Some(&file),
            env.into_iter(),
            &["listeners=PLAINTEXT://127.0.0.1:19092".into()],
        )
        .unwrap();
        assert_eq!(s.get("num.partitions"), "4");
        assert_eq!(s.get("log.dirs"), "/tmp/x");
        let broker = s.broker_config().unwrap();
        assert_eq!(broker.num_partitions, 4);
        assert_eq!(
            broker
                .topic_defaults
                .broker_settings
                .get("log.retention.ms")
                .map(String::as_str),
            Some("5000")
        );
        let server = s.server_config().unwrap();
        assert_eq!(server.bind.port(), 19092);
        assert_eq!(server.advertised_host, "127.0.0.1");
    }

    #[test]
    fn the_configuration_page_lists_every_setting() {
        let page = include_str!("../../../docs/configuration.md");
        for (name, _, _) in known() {
            assert!(
                page.contains(&format!("`{name}`")),
                "docs/configuration.md lacks {name}; run scripts/gen-config-docs"
            );
        }
    }

    #[test]
    fn bad_settings_are_errors() {
        assert!(Settings::load(None, std::iter::empty(), &["nope=1".into()]).is_err());
        assert!(Settings::load(None, std::iter::empty(), &["num.partitions=x".into()]).is_err());
        assert!(Settings::load(None, std::iter::empty(), &["log.retention.ms=abc".into()]).is_err());
        assert!(Settings::load(None, std::iter::empty(), &["listeners=SSL://h:1".into()]).is_err());
        let s = Settings::load(
            None,
            std::iter::empty(),
            &["advertised.listeners=PLAINTEXT://kafka.example:9093".into()],
        )
        .unwrap();
        let server = s.server_config().unwrap();
        assert_eq!(
            (server.advertised_host.as_str(), server.advertised_port),
            ("kafka.example", 9093)
        );
    }
}
