//! DescribeConfigs on topics, groups and brokers: each config's value and where it came
//! from, with the chain of values that could have supplied it (Kafka's synonyms), most
//! specific first.

use std::collections::BTreeMap;

use strom_cluster::ConfigScope;

use super::configs::ConfigResource;
use super::BrokerApi;
use crate::caller::{Caller, Operation, Resource};
use crate::dynamic_config::{GROUP_CONFIGS, LISTENER_DYNAMIC_SETTINGS};
use crate::error::{BrokerError, Result};
use crate::topic_config::{config_def_by_broker_synonym, ConfigEntry, ConfigSource, ConfigType, TopicDefaults};

/// A setting of the node as started (file, environment, command line or default), for
/// DescribeConfigs on the BROKER resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticSetting {
    pub name: String,
    pub value: String,
    /// Set by the operator rather than left at its default.
    pub explicit: bool,
    pub doc: String,
}

/// One described config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConfig {
    pub name: String,
    pub value: String,
    pub source: ConfigSource,
    pub kind: ConfigType,
    pub read_only: bool,
    pub doc: String,
    pub synonyms: Vec<ConfigSynonym>,
}

/// A value that could have supplied a config, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    pub name: String,
    pub value: String,
    pub source: ConfigSource,
}

impl BrokerApi {
    /// DescribeConfigs of one resource; `names` None means every config.
    pub fn describe_configs(
        &self,
        caller: &Caller,
        resource: &ConfigResource,
        names: Option<&[String]>,
    ) -> Result<Vec<DescribedConfig>> {
        let wanted = |name: &str| names.is_none_or(|n| n.iter().any(|k| k == name));
        let target = match resource {
            ConfigResource::Topic(name) => Resource::Topic(name),
            ConfigResource::Group(name) => Resource::Group(name),
            ConfigResource::Broker(_) => Resource::Cluster,
        };
        self.authorize(caller, Operation::DescribeConfigs, target)?;
        let broker = &self.broker;
        let described = match resource {
            ConfigResource::Topic(name) => {
                let topic = broker.topic(name).ok_or(BrokerError::UnknownTopicOrPartition)?;
                broker
                    .resolve_configs(&topic.overrides())
                    .into_iter()
                    .filter(|c| wanted(c.def.name))
                    .map(|c| resolved(c.def.name, &c))
                    .collect()
            }
            ConfigResource::Group(group) => self.describe_group(group, &wanted),
            ConfigResource::Broker(name) if name.is_empty() => {
                // The cluster-wide entity holds only what was set on it.
                dynamic_only(
                    &broker.defaults().dynamic_default,
                    ConfigSource::DynamicDefaultBroker,
                    &wanted,
                )
            }
            ConfigResource::Broker(name) if *name == self.node_id().to_string() => {
                let defaults = broker.defaults();
                self.static_settings
                    .iter()
                    .filter(|s| wanted(&s.name))
                    .map(|s| {
                        if let Some(def) = config_def_by_broker_synonym(&s.name) {
                            return resolved(&s.name, &defaults.resolve(def, &BTreeMap::new()));
                        }
                        if LISTENER_DYNAMIC_SETTINGS.contains(&s.name.as_str()) {
                            return listener_setting(&defaults, s);
                        }
                        let source = static_source(s);
                        single(&s.name, &s.value, source, ConfigType::String, true, &s.doc)
                    })
                    .collect()
            }
            ConfigResource::Broker(name) => {
                // Another broker: only its dynamic configs, which the metadata has (its
                // static settings are known only to itself).
                let image = broker.image();
                let configs = name
                    .parse::<i32>()
                    .ok()
                    .filter(|id| image.broker(*id).is_some() || image.configs(&ConfigScope::Broker(*id)).is_some())
                    .map(|id| image.configs(&ConfigScope::Broker(id)).cloned().unwrap_or_default())
                    .ok_or_else(|| BrokerError::InvalidRequest(format!("unknown broker {name}")))?;
                dynamic_only(&configs, ConfigSource::DynamicBroker, &wanted)
            }
        };
        Ok(described)
    }

    /// A GROUP's configs: its own values, else the broker's settings they default to.
    fn describe_group(&self, group: &str, wanted: &dyn Fn(&str) -> bool) -> Vec<DescribedConfig> {
        let own = self.broker.group_configs(group);
        let config = self.groups.config();
        GROUP_CONFIGS
            .iter()
            .filter(|def| wanted(def.name))
            .map(|def| {
                let fallback = match def.broker_synonym {
                    "group.consumer.heartbeat.interval.ms" => config.consumer_heartbeat_interval_ms,
                    _ => config.consumer_session_timeout_ms,
                };
                let mut synonyms = Vec::new();
                if let Some(value) = own.get(def.name) {
                    synonyms.push(synonym(def.name, value, ConfigSource::GroupConfig));
                }
                synonyms.push(synonym(
                    def.broker_synonym,
                    &fallback.to_string(),
                    ConfigSource::Default,
                ));
                DescribedConfig {
                    name: def.name.to_string(),
                    value: synonyms[0].value.clone(),
                    source: synonyms[0].source,
                    kind: ConfigType::Int,
                    read_only: false,
                    doc: def.doc.to_string(),
                    synonyms,
                }
            })
            .collect()
    }
}

/// The dynamic configs set on a BROKER entity, each as set.
fn dynamic_only(
    configs: &BTreeMap<String, String>,
    source: ConfigSource,
    wanted: &dyn Fn(&str) -> bool,
) -> Vec<DescribedConfig> {
    configs
        .iter()
        .filter(|(name, _)| wanted(name))
        .map(|(name, value)| {
            let kind = config_def_by_broker_synonym(name).map_or(ConfigType::String, |d| d.kind);
            single(name, value, source, kind, false, "")
        })
        .collect()
}

fn synonym(name: &str, value: &str, source: ConfigSource) -> ConfigSynonym {
    ConfigSynonym {
        name: name.to_string(),
        value: value.to_string(),
        source,
    }
}

fn single(
    name: &str,
    value: &str,
    source: ConfigSource,
    kind: ConfigType,
    read_only: bool,
    doc: &str,
) -> DescribedConfig {
    DescribedConfig {
        name: name.to_string(),
        value: value.to_string(),
        source,
        kind,
        read_only,
        doc: doc.to_string(),
        synonyms: vec![synonym(name, value, source)],
    }
}

fn static_source(setting: &StaticSetting) -> ConfigSource {
    if setting.explicit {
        ConfigSource::StaticBroker
    } else {
        ConfigSource::Default
    }
}

/// A resolved topic config, or a broker's default of one, under `name`.
fn resolved(name: &str, entry: &ConfigEntry) -> DescribedConfig {
    DescribedConfig {
        name: name.to_string(),
        value: entry.value.clone(),
        source: entry.source,
        kind: entry.def.kind,
        read_only: false,
        doc: entry.def.doc.to_string(),
        synonyms: entry
            .synonyms
            .iter()
            .map(|(name, value, source)| synonym(name, value, *source))
            .collect(),
    }
}

/// A connection limit: this broker's dynamic value, the cluster-wide one, the static
/// one or the default.
fn listener_setting(defaults: &TopicDefaults, setting: &StaticSetting) -> DescribedConfig {
    let name = setting.name.as_str();
    let mut synonyms = Vec::new();
    if let Some(v) = defaults.dynamic_broker.get(name) {
        synonyms.push(synonym(name, v, ConfigSource::DynamicBroker));
    }
    if let Some(v) = defaults.dynamic_default.get(name) {
        synonyms.push(synonym(name, v, ConfigSource::DynamicDefaultBroker));
    }
    synonyms.push(synonym(name, &setting.value, static_source(setting)));
    DescribedConfig {
        name: name.to_string(),
        value: synonyms[0].value.clone(),
        source: synonyms[0].source,
        kind: ConfigType::Int,
        read_only: false,
        doc: setting.doc.clone(),
        synonyms,
    }
}
