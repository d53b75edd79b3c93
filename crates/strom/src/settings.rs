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
use strom_broker::{BrokerConfig, Listener, QuorumConfig, TopicDefaults};
use strom_kafka::ServerConfig;

/// A setting of the broker itself (topic-config defaults are added from the broker crate).
pub struct Setting {
    pub name: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

#[rustfmt::skip]
pub const SETTINGS: &[Setting] = &[
    Setting { name: "node.id", default: "1", doc: "id of this node in the cluster (never reuse the id of a node whose data was lost)" },
    Setting { name: "process.roles", default: "broker,controller", doc: "what this node runs: broker, controller (a voter of the metadata quorum) or both; a broker alone follows the metadata log as a learner" },
    Setting { name: "log.dirs", default: "./strom-data", doc: "directory holding all data (partition logs, the metadata log, cluster id)" },
    Setting { name: "listeners", default: "PLAINTEXT://127.0.0.1:9092", doc: "addresses to bind, as NAME://host:port[,...]: PLAINTEXT for Kafka clients, CONTROLLER for the metadata quorum" },
    Setting { name: "advertised.listeners", default: "", doc: "address clients are told to connect to (Metadata); empty = listeners" },
    Setting { name: "controller.listener.names", default: "CONTROLLER", doc: "which listener names are the metadata quorum's (not for clients)" },
    Setting { name: "controller.quorum.voters", default: "", doc: "the metadata quorum's voters, id@host:port[,...]; empty = this node alone" },
    Setting { name: "controller.quorum.election.timeout.ms", default: "1000", doc: "how long a voter waits without hearing from a leader before it stands for election" },
    Setting { name: "metadata.snapshot.interval.entries", default: "10000", doc: "the metadata log is snapshotted after this many entries and purged behind the snapshot; a node further behind catches up from the snapshot (Strom's; Kafka counts bytes)" },
    Setting { name: "cluster.id", default: "", doc: "when set, the cluster must have this id (a new quorum takes it); empty = fixed by the quorum on first start" },
    Setting { name: "broker.rack", default: "", doc: "rack of this broker, for rack-aware placement of replicas" },
    Setting { name: "schema.registry.listeners", default: "http://127.0.0.1:8081", doc: "where the Schema Registry's REST API listens (Confluent-compatible); empty: no registry on this node" },
    Setting { name: "replica.selector.class", default: "", doc: "empty: consumers read from leaders; org.apache.kafka.common.replica.RackAwareReplicaSelector: a leader sends a consumer with client.rack to an in-sync replica in its rack (KIP-392)" },
    Setting { name: "broker.heartbeat.interval.ms", default: "2000", doc: "how often a broker tells the controller it is alive" },
    Setting { name: "broker.session.timeout.ms", default: "9000", doc: "a broker not heard from for this long is fenced: it leads nothing until it heartbeats again" },
    Setting { name: "auto.leader.rebalance.enable", default: "true", doc: "the active controller gives leadership back to each partition's preferred replica once it is alive and in sync" },
    Setting { name: "leader.imbalance.check.interval.seconds", default: "300", doc: "how often preferred replicas get their leadership back" },
    Setting { name: "replica.lag.time.max.ms", default: "30000", doc: "a follower not caught up with its leader for this long leaves the ISR" },
    Setting { name: "replica.fetch.wait.max.ms", default: "500", doc: "longest a follower's fetch waits at the leader for new records" },
    Setting { name: "replica.fetch.max.bytes", default: "1048576", doc: "bytes a follower's fetch asks for per partition" },
    Setting { name: "replica.fetch.response.max.bytes", default: "10485760", doc: "bytes a follower's fetch asks for in all" },
    Setting { name: "replica.fetch.backoff.ms", default: "1000", doc: "pause after a follower's fetch failed" },
    Setting { name: "inter.broker.addresses", default: "", doc: "how this node reaches other nodes' broker listeners (replica fetches, transaction markers), id@host:port[,...]; empty = the listeners they registered (Strom's: for proxies and NAT)" },
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
    Setting { name: "transaction.partition.verification.enable", default: "true", doc: "a partition leader asks the transaction coordinator before a transaction opens in its partition, so a produce request delayed past its transaction's end is refused (KIP-890)" },
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

    /// `inter.broker.addresses`, and the listener other nodes are reached on.
    pub fn peer_addresses(&self) -> Result<strom_kafka::PeerAddresses> {
        let overrides = strom_kafka::PeerAddresses::parse_overrides(self.get("inter.broker.addresses"))
            .map_err(|e| anyhow::anyhow!("inter.broker.addresses: {e}"))?;
        Ok(strom_kafka::PeerAddresses::new(self.server_config()?.listener_name).with_overrides(overrides))
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
        let cluster = self.cluster()?;
        config.quorum = Some(cluster.quorum);
        config.cluster_id = cluster.cluster_id;
        config.rack = Some(self.get("broker.rack").to_string()).filter(|r| !r.is_empty());
        config.rack_aware_reads = match self.get("replica.selector.class").trim() {
            "" => false,
            "org.apache.kafka.common.replica.RackAwareReplicaSelector" | "RackAwareReplicaSelector" => true,
            other => bail!(
                "replica.selector.class={other:?}: Strom knows the leader (empty) and \
                 org.apache.kafka.common.replica.RackAwareReplicaSelector"
            ),
        };
        config.heartbeat_interval_ms = self.parse("broker.heartbeat.interval.ms")?;
        if config.heartbeat_interval_ms == 0 {
            bail!("broker.heartbeat.interval.ms must be above 0");
        }
        config.replication = strom_broker::replication::ReplicationConfig {
            lag_time_max_ms: self.parse("replica.lag.time.max.ms")?,
            fetch_wait_max_ms: self.parse("replica.fetch.wait.max.ms")?,
            fetch_max_bytes: self.parse("replica.fetch.max.bytes")?,
            fetch_response_max_bytes: self.parse("replica.fetch.response.max.bytes")?,
            fetch_backoff_ms: self.parse("replica.fetch.backoff.ms")?,
        };
        if config.replication.lag_time_max_ms <= 0 || config.replication.fetch_max_bytes <= 0 {
            bail!("replica.lag.time.max.ms and replica.fetch.max.bytes must be above 0");
        }
        let server = self.server_config()?;
        config.listeners = vec![Listener {
            name: server.listener_name.clone(),
            host: server.advertised_host.clone(),
            port: u16::try_from(server.advertised_port).unwrap_or(0),
        }];
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
            partition_verification: self.parse("transaction.partition.verification.enable")?,
        };
        if config.state_topic_partitions < 1 {
            bail!("transaction.state.log.num.partitions must be at least 1");
        }
        Ok(config)
    }

    /// `schema.registry.listeners`: the address of the registry's REST API, if any.
    pub fn registry_address(&self) -> Result<Option<std::net::SocketAddr>> {
        let value = self.get("schema.registry.listeners").trim();
        if value.is_empty() {
            return Ok(None);
        }
        let address = value.strip_prefix("http://").unwrap_or(value).trim_end_matches('/');
        use std::net::ToSocketAddrs;
        let resolved = address
            .to_socket_addrs()
            .ok()
            .and_then(|mut addresses| addresses.next())
            .ok_or_else(|| anyhow::anyhow!("schema.registry.listeners={value:?}: expected http://HOST:PORT"))?;
        Ok(Some(resolved))
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

    /// The roles and the metadata quorum this node runs.
    pub fn cluster(&self) -> Result<ClusterSettings> {
        let node_id: i32 = self.parse("node.id")?;
        if node_id < 0 {
            bail!("node.id must be 0 or more");
        }
        let roles = Roles::parse(self.get("process.roles"))?;
        let controller_names = self.controller_listener_names();
        let controller_listener = parse_listeners(self.get("listeners"))?
            .into_iter()
            .find(|l| controller_names.contains(&l.name));
        let voters = parse_voters(self.get("controller.quorum.voters"))?;
        let mut quorum = QuorumConfig::single(node_id as u64, PathBuf::from(self.get("log.dirs")));
        if !voters.is_empty() {
            quorum.voters = voters.clone();
        } else if let Some(listener) = &controller_listener {
            quorum.voters = BTreeMap::from([(node_id as u64, format!("{}:{}", listener.host, listener.port))]);
        }
        // A controller not among the voters is a new voter joining a running quorum: it
        // waits until `strom cluster add-voter` adds it, and needs its controller
        // listener for the leader to reach it.
        if roles.controller && !quorum.voters.contains_key(&(node_id as u64)) && controller_listener.is_none() {
            bail!(
                "process.roles includes controller, but node.id {node_id} is not in controller.quorum.voters ({}) \
                 and there is no CONTROLLER listener to join through",
                self.get("controller.quorum.voters")
            );
        }
        if !roles.controller {
            // A broker that is not a voter receives the metadata log as a learner: it
            // asks the voters to take it in, and the leader replicates to its
            // controller listener.
            if voters.is_empty() {
                bail!("process.roles=broker needs controller.quorum.voters: the voters whose metadata log it follows");
            }
            if quorum.voters.contains_key(&(node_id as u64)) {
                bail!("process.roles=broker, but node.id {node_id} is listed in controller.quorum.voters; a voter runs the controller role");
            }
            if controller_listener.is_none() {
                bail!("process.roles=broker needs a CONTROLLER listener too: the quorum's leader replicates the metadata log to it");
            }
        }
        if quorum.voters.len() > 1 && controller_listener.is_none() {
            bail!("controller.quorum.voters lists several voters, so listeners needs a CONTROLLER://host:port listener for them to reach this node");
        }
        let election_ms: u64 = self.parse("controller.quorum.election.timeout.ms")?;
        if election_ms < 50 {
            bail!("controller.quorum.election.timeout.ms must be at least 50");
        }
        quorum.election_timeout_min_ms = election_ms;
        quorum.election_timeout_max_ms = election_ms * 2;
        quorum.heartbeat_interval_ms = (election_ms / 5).max(10);
        let cluster_id = Some(self.get("cluster.id").to_string()).filter(|c| !c.is_empty());
        quorum.cluster_id = cluster_id.clone();
        quorum.broker_session_timeout_ms = self.parse("broker.session.timeout.ms")?;
        let rebalance: bool = self.parse("auto.leader.rebalance.enable")?;
        let interval_s: u64 = self.parse("leader.imbalance.check.interval.seconds")?;
        quorum.leader_rebalance_interval_ms = rebalance.then_some(interval_s.max(1).saturating_mul(1000));
        let snapshot_every: u64 = self.parse("metadata.snapshot.interval.entries")?;
        if snapshot_every < 2 {
            bail!("metadata.snapshot.interval.entries must be at least 2");
        }
        quorum.snapshot_after_entries = snapshot_every;
        // Keep part of the log behind a snapshot, so a node slightly behind catches up
        // from entries rather than a whole snapshot.
        quorum.entries_kept_after_snapshot = (snapshot_every / 4).clamp(1, 1000);
        // The controller listener is bound whenever one is configured (a node of one
        // voter then still answers `strom cluster status` and can grow); zero config
        // opens no port besides Kafka's.
        if let Some(listener) = &controller_listener {
            let host = if listener.host.is_empty() {
                "0.0.0.0"
            } else {
                listener.host.as_str()
            };
            quorum.listen = Some(
                (host, listener.port)
                    .to_socket_addrs()
                    .with_context(|| format!("resolving the controller listener {}:{}", listener.host, listener.port))?
                    .next()
                    .context("the controller listener resolves to no address")?,
            );
        }
        Ok(ClusterSettings {
            roles,
            quorum,
            cluster_id,
        })
    }

    fn controller_listener_names(&self) -> Vec<String> {
        self.get("controller.listener.names")
            .split(',')
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect()
    }

    pub fn server_config(&self) -> Result<ServerConfig> {
        let controller_names = self.controller_listener_names();
        let client_listener = |value: &str| -> Result<Option<ListenerAddress>> {
            Ok(parse_listeners(value)?
                .into_iter()
                .find(|l| !controller_names.contains(&l.name)))
        };
        let listener = client_listener(self.get("listeners"))?
            .with_context(|| format!("listeners={} has no listener for clients", self.get("listeners")))?;
        let (bind_host, port) = (listener.host.clone(), listener.port);
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
        let (advertised_host, advertised_port) = match client_listener(self.get("advertised.listeners"))? {
            None => (advertised_for(&bind, &bind_host), port),
            Some(advertised) => (advertised.host, advertised.port),
        };
        Ok(ServerConfig {
            listener_name: listener.name,
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

/// One `NAME://host:port` of `listeners`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerAddress {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// `NAME://host:port[,...]` (a bare `host:port` is PLAINTEXT). Only PLAINTEXT transport
/// exists, so every name maps to it.
fn parse_listeners(value: &str) -> Result<Vec<ListenerAddress>> {
    let mut listeners = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, address) = item.split_once("://").unwrap_or(("PLAINTEXT", item));
        if ["SSL", "SASL_SSL", "SASL_PLAINTEXT"]
            .iter()
            .any(|p| name.eq_ignore_ascii_case(p))
        {
            bail!("listener protocol {name} is not supported yet (use PLAINTEXT)");
        }
        let (host, port) = address
            .rsplit_once(':')
            .with_context(|| format!("listener '{item}' has no port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = port
            .parse::<u16>()
            .with_context(|| format!("listener '{item}' has a bad port"))?;
        if listeners
            .iter()
            .any(|l: &ListenerAddress| l.name == name.to_ascii_uppercase())
        {
            bail!("listener name {name} appears twice in '{value}'");
        }
        listeners.push(ListenerAddress {
            name: name.to_ascii_uppercase(),
            host,
            port,
        });
    }
    Ok(listeners)
}

/// `id@host:port[,...]` → voter id → address.
fn parse_voters(value: &str) -> Result<BTreeMap<u64, String>> {
    let mut voters = BTreeMap::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (id, address) = item
            .split_once('@')
            .with_context(|| format!("controller.quorum.voters entry '{item}' is not id@host:port"))?;
        let id: u64 = id
            .parse()
            .with_context(|| format!("controller.quorum.voters entry '{item}' has a bad id"))?;
        if !address.contains(':') {
            bail!("controller.quorum.voters entry '{item}' has no port");
        }
        if voters.insert(id, address.to_string()).is_some() {
            bail!("voter {id} appears twice in controller.quorum.voters");
        }
    }
    Ok(voters)
}

/// What `process.roles` asks this node to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub broker: bool,
    pub controller: bool,
}

impl Roles {
    fn parse(value: &str) -> Result<Roles> {
        let mut roles = Roles {
            broker: false,
            controller: false,
        };
        for role in value.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            match role {
                "broker" => roles.broker = true,
                "controller" => roles.controller = true,
                other => bail!("process.roles: unknown role '{other}' (broker, controller)"),
            }
        }
        if !roles.broker && !roles.controller {
            bail!("process.roles must name broker, controller or both");
        }
        Ok(roles)
    }
}

/// The cluster part of the configuration.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub roles: Roles,
    pub quorum: QuorumConfig,
    pub cluster_id: Option<String>,
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
    fn cluster_settings_use_kafka_names() {
        let load = |sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            Settings::load(None, std::iter::empty(), &sets).unwrap()
        };
        // Zero config: one voter, itself, with no controller listener to bind.
        let cluster = load(&[]).cluster().unwrap();
        assert_eq!(cluster.quorum.voters.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert!(cluster.roles.broker && cluster.roles.controller);

        let s = load(&[
            "node.id=2",
            "listeners=PLAINTEXT://127.0.0.1:9192,CONTROLLER://127.0.0.1:9193",
            "controller.quorum.voters=1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293",
            "cluster.id=MkU3OEVBNTcwNTJENDM2Qk",
            "broker.rack=r1",
        ]);
        let cluster = s.cluster().unwrap();
        assert_eq!(cluster.quorum.voters.len(), 3);
        assert_eq!(cluster.quorum.voters[&2], "127.0.0.1:9193");
        assert_eq!(cluster.cluster_id.as_deref(), Some("MkU3OEVBNTcwNTJENDM2Qk"));
        let server = s.server_config().unwrap();
        assert_eq!((server.listener_name.as_str(), server.bind.port()), ("PLAINTEXT", 9192));
        let broker = s.broker_config().unwrap();
        assert_eq!(broker.rack.as_deref(), Some("r1"));
        assert_eq!(broker.listeners[0].port, 9192);

        for bad in [
            &["controller.quorum.voters=1@h"][..],
            &["controller.quorum.voters=x@h:1"],
            &["controller.quorum.voters=1@h:1,1@h:2"],
            // Several voters but no controller listener to reach this one.
            &["controller.quorum.voters=1@h:1,2@h:2"],
            // A controller that is not a voter.
            &[
                "listeners=PLAINTEXT://h:1,CONTROLLER://h:2",
                "controller.quorum.voters=2@h:2,3@h:3",
            ],
            &["process.roles=router"],
            // A broker-only node needs voters and a listener for the metadata log.
            &["process.roles=broker"],
            &["process.roles=broker", "controller.quorum.voters=2@h:2"],
        ] {
            let sets: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
            let loaded = Settings::load(None, std::iter::empty(), &sets).and_then(|s| s.cluster());
            assert!(loaded.is_err(), "{bad:?}");
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
