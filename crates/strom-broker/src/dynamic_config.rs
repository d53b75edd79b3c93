//! Dynamic broker configs: set at runtime with AlterConfigs / IncrementalAlterConfigs on
//! the BROKER resource — this node's id, or `""` for the default of every broker — and
//! committed to the metadata log as `Configs` records (`ConfigScope::Broker(id)`,
//! `ConfigScope::ClusterDefault`), so every node applies them and they survive restarts,
//! beating the file and command line as Kafka's dynamic configs do.
//!
//! Dynamic are the broker-level defaults of topic configs (`log.retention.ms`,
//! `message.max.bytes`, `log.segment.bytes`, ...; Kafka's DynamicLogConfig), which apply
//! at once to every topic without its own override, and the connection limits
//! `max.connections` and `max.connections.per.ip` (checked by the listener at each
//! accept), as in Kafka. Other settings (listeners, `log.dirs`, ...) are read once at
//! start; changing them is refused with Kafka's INVALID_REQUEST "Cannot update these
//! configs dynamically".
//! Group configs (Kafka 4.0's GROUP resource: `consumer.session.timeout.ms` and
//! `consumer.heartbeat.interval.ms` of one consumer-protocol group) are `Configs` records
//! too (`ConfigScope::Group(id)`). This module holds the rules; the broker commits and
//! applies them (`broker/dynamic_configs.rs`).

use std::collections::BTreeMap;

use crate::error::{BrokerError, Result};
use crate::topic_config::{self, config_def_by_broker_synonym};

/// Which BROKER resource a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerEntity {
    /// This node (`resource_name` = its node id).
    ThisBroker,
    /// The default for every broker (`resource_name` = "").
    ClusterDefault,
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
}
