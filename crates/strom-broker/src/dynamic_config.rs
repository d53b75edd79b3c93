//! Dynamic broker configs: set at runtime with AlterConfigs / IncrementalAlterConfigs on
//! the BROKER resource — this node's id, or `""` for the default of every broker — and
//! kept in `dynamic-configs.json` in the data directory (written atomically), so they
//! survive restarts and beat the file and command line, as Kafka's dynamic configs do.
//!
//! Dynamic are the broker-level defaults of topic configs (`log.retention.ms`,
//! `message.max.bytes`, `log.segment.bytes`, ...; Kafka's DynamicLogConfig), which apply
//! at once to every topic without its own override, and the connection limits
//! `max.connections` and `max.connections.per.ip` (checked by the listener at each
//! accept), as in Kafka. Other settings (listeners, `log.dirs`, ...) are read once at
//! start; changing them is refused with Kafka's INVALID_REQUEST "Cannot update these
//! configs dynamically".
//! Group configs (Kafka 4.0's GROUP resource: `consumer.session.timeout.ms` and
//! `consumer.heartbeat.interval.ms` of one consumer-protocol group) live in the same
//! file. (In a cluster these records move to the metadata log.)

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};
use crate::files::write_atomically;
use crate::topic_config::{self, config_def_by_broker_synonym};

const FILE_NAME: &str = "dynamic-configs.json";

/// Which BROKER resource a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerEntity {
    /// This node (`resource_name` = its node id).
    ThisBroker,
    /// The default for every broker (`resource_name` = "").
    ClusterDefault,
}

/// What the file holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DynamicConfigs {
    #[serde(default)]
    pub broker: BTreeMap<String, String>,
    #[serde(default)]
    pub cluster_default: BTreeMap<String, String>,
    /// Group id → its group configs.
    #[serde(default)]
    pub groups: BTreeMap<String, BTreeMap<String, String>>,
}

/// A group config: its name and the broker setting that supplies its default.
#[derive(Debug)]
pub struct GroupConfigDef {
    pub name: &'static str,
    pub broker_synonym: &'static str,
    pub doc: &'static str,
}

/// The group configs Strom knows (those of consumer-protocol groups).
pub const GROUP_CONFIGS: &[GroupConfigDef] = &[
    GroupConfigDef {
        name: "consumer.heartbeat.interval.ms",
        broker_synonym: "group.consumer.heartbeat.interval.ms",
        doc: "heartbeat interval given to this group's consumer-protocol members",
    },
    GroupConfigDef {
        name: "consumer.session.timeout.ms",
        broker_synonym: "group.consumer.session.timeout.ms",
        doc: "session timeout of this group's consumer-protocol members",
    },
];

/// The broker settings a group config falls back to and must stay within (Kafka's
/// `group.consumer.{min,max}.{session.timeout,heartbeat.interval}.ms`).
#[derive(Debug, Clone, Copy)]
pub struct GroupConfigBounds {
    /// (default, min, max) of `consumer.session.timeout.ms`.
    pub session_ms: (i64, i64, i64),
    /// (default, min, max) of `consumer.heartbeat.interval.ms`.
    pub heartbeat_ms: (i64, i64, i64),
}

/// Checks a group's whole set of configs: known names, values within the broker's
/// bounds, and a heartbeat interval below the session timeout (as Kafka's GroupConfig
/// does).
pub fn validate_group(configs: &BTreeMap<String, String>, bounds: GroupConfigBounds) -> Result<()> {
    let number = |name: &str, (default, min, max): (i64, i64, i64)| -> Result<i64> {
        match configs.get(name) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    BrokerError::InvalidConfig(format!(
                        "Invalid value {value} for configuration {name}: must be between {min} and {max} ms"
                    ))
                }),
        }
    };
    if let Some(unknown) = configs
        .keys()
        .find(|k| !GROUP_CONFIGS.iter().any(|d| d.name == k.as_str()))
    {
        return Err(BrokerError::InvalidConfig(format!(
            "Unknown group config name: {unknown}"
        )));
    }
    let session = number("consumer.session.timeout.ms", bounds.session_ms)?;
    let heartbeat = number("consumer.heartbeat.interval.ms", bounds.heartbeat_ms)?;
    if heartbeat >= session {
        return Err(BrokerError::InvalidConfig(format!(
            "consumer.heartbeat.interval.ms ({heartbeat}) must be less than consumer.session.timeout.ms ({session})"
        )));
    }
    Ok(())
}

impl DynamicConfigs {
    #[cfg(test)]
    pub fn entity_mut(&mut self, entity: BrokerEntity) -> &mut BTreeMap<String, String> {
        match entity {
            BrokerEntity::ThisBroker => &mut self.broker,
            BrokerEntity::ClusterDefault => &mut self.cluster_default,
        }
    }
}

pub struct DynamicConfigStore {
    path: PathBuf,
}

impl DynamicConfigStore {
    pub fn new(data_dir: &Path) -> DynamicConfigStore {
        DynamicConfigStore {
            path: data_dir.join(FILE_NAME),
        }
    }

    pub fn load(&self) -> Result<DynamicConfigs> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| BrokerError::Storage(format!("{}: {e}", self.path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DynamicConfigs::default()),
            Err(e) => Err(e.into()),
        }
    }

    pub fn save(&self, configs: &DynamicConfigs) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(configs).map_err(|e| BrokerError::Storage(e.to_string()))?;
        write_atomically(&self.path, &bytes)
    }
}

/// Dynamic broker settings that are not topic defaults: the listener reads them at
/// every accept.
pub const LISTENER_DYNAMIC_SETTINGS: &[&str] = &["max.connections", "max.connections.per.ip"];

/// Whether a broker setting can change at runtime.
pub fn is_dynamic(name: &str) -> bool {
    config_def_by_broker_synonym(name).is_some() || LISTENER_DYNAMIC_SETTINGS.contains(&name)
}

/// Checks that every setting may change at runtime and has a valid value.
pub fn validate(configs: &BTreeMap<String, String>) -> Result<()> {
    let fixed: Vec<&str> = configs
        .keys()
        .filter(|name| !is_dynamic(name))
        .map(String::as_str)
        .collect();
    if !fixed.is_empty() {
        return Err(BrokerError::InvalidRequest(format!(
            "Cannot update these configs dynamically: Set({})",
            fixed.join(", ")
        )));
    }
    for (name, value) in configs {
        if LISTENER_DYNAMIC_SETTINGS.contains(&name.as_str()) && value.trim().parse::<u32>().map_or(true, |n| n == 0) {
            return Err(BrokerError::InvalidConfig(format!(
                "Invalid value {value} for configuration {name}: must be a positive whole number"
            )));
        }
        if let Some(def) = config_def_by_broker_synonym(name) {
            topic_config::validate(def.name, value).map_err(|e| match e {
                BrokerError::InvalidConfig(why) => BrokerError::InvalidConfig(why.replace(def.name, name)),
                other => other,
            })?;
        }
    }
    Ok(())
}

/// The dynamic-config side of [`Broker`]: reading, altering and applying dynamic broker
/// configs and group configs.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_topic_defaults_are_dynamic() {
        let ok = BTreeMap::from([("log.retention.ms".to_string(), "1000".to_string())]);
        validate(&ok).unwrap();
        let fixed = BTreeMap::from([("log.dirs".to_string(), "/x".to_string())]);
        assert!(matches!(validate(&fixed), Err(BrokerError::InvalidRequest(m)) if m.contains("log.dirs")));
        let bad = BTreeMap::from([("log.retention.ms".to_string(), "soon".to_string())]);
        assert!(matches!(validate(&bad), Err(BrokerError::InvalidConfig(m)) if m.contains("log.retention.ms")));
    }

    #[test]
    fn the_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = DynamicConfigStore::new(dir.path());
        assert_eq!(store.load().unwrap(), DynamicConfigs::default());
        let mut configs = DynamicConfigs::default();
        configs
            .entity_mut(BrokerEntity::ClusterDefault)
            .insert("message.max.bytes".into(), "2000".into());
        store.save(&configs).unwrap();
        assert_eq!(store.load().unwrap(), configs);
    }
}
