//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics and for the
//! broker (its node id, or "" for the default of all brokers; only the broker defaults
//! of topic configs are dynamic). Entries carry their source and synonyms, so admin
//! tools can tell a default from an override.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_broker::api::{ConfigAlteration, ConfigChanges, ConfigOp, ConfigResource};
use strom_broker::dynamic_config::{GROUP_CONFIGS, LISTENER_DYNAMIC_SETTINGS};
use strom_broker::topic_config::config_def_by_broker_synonym;
use strom_broker::{AlterOp, BrokerError, ConfigEntry, ConfigSource, ConfigType};

use super::str_bytes;
use crate::context::{Context, Peer};
use crate::error_code::{error_code, error_message};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_GROUP: i8 = 32;
/// Kafka's ConfigSource GROUP_CONFIG.
const SOURCE_GROUP_CONFIG: i8 = 8;

/// The broker settings a group falls back to, by name.
fn broker_setting(context: &Context, name: &str) -> Option<String> {
    context
        .config
        .broker_configs
        .iter()
        .find(|(n, ..)| n == name)
        .map(|(_, value, ..)| value.clone())
}

/// DescribeConfigs on a GROUP: its own values, else the broker's.
fn describe_group(
    context: &Context,
    group: &str,
    wanted: impl Fn(&str) -> bool,
    synonyms: bool,
    docs: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let own = context.api.broker().group_configs(group);
    GROUP_CONFIGS
        .iter()
        .filter(|def| wanted(def.name))
        .map(|def| {
            let fallback = broker_setting(context, def.broker_synonym).unwrap_or_default();
            let mut chain = Vec::new();
            if let Some(value) = own.get(def.name) {
                chain.push((def.name, value.clone(), SOURCE_GROUP_CONFIG));
            }
            chain.push((def.broker_synonym, fallback, source_code(ConfigSource::Default)));
            let (_, value, source) = chain[0].clone();
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(def.name))
                .with_value(Some(str_bytes(value)))
                .with_read_only(false)
                .with_config_source(source)
                .with_config_type(type_code(ConfigType::Int))
                .with_documentation(docs.then(|| str_bytes(def.doc)))
                .with_synonyms(if synonyms {
                    chain
                        .into_iter()
                        .map(|(name, value, source)| {
                            DescribeConfigsSynonym::default()
                                .with_name(str_bytes(name))
                                .with_value(Some(str_bytes(value)))
                                .with_source(source)
                        })
                        .collect()
                } else {
                    Vec::new()
                })
        })
        .collect()
}

/// Kafka's ConfigSource codes.
pub fn source_code(source: ConfigSource) -> i8 {
    match source {
        ConfigSource::DynamicTopic => 1,
        ConfigSource::DynamicBroker => 2,
        ConfigSource::DynamicDefaultBroker => 3,
        ConfigSource::StaticBroker => 4,
        ConfigSource::Default => 5,
    }
}

fn type_code(kind: ConfigType) -> i8 {
    match kind {
        ConfigType::Boolean => 1,
        ConfigType::String => 2,
        ConfigType::Int => 3,
        ConfigType::Long => 5,
        ConfigType::Double => 6,
        ConfigType::List => 7,
    }
}

pub fn describe_configs(context: &Context, request: DescribeConfigsRequest, version: i16) -> DescribeConfigsResponse {
    let synonyms = request.include_synonyms;
    let docs = request.include_documentation && version >= 3;
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let keys = resource.configuration_keys.clone();
            let wanted = |name: &str| keys.as_ref().is_none_or(|k| k.iter().any(|k| k.as_str() == name));
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match resource.resource_type {
                RESOURCE_TOPIC => match context.api.broker().topic(&resource.resource_name) {
                    Some(topic) => {
                        let configs = context
                            .api
                            .broker()
                            .resolve_configs(&topic.overrides())
                            .into_iter()
                            .filter(|c| wanted(c.def.name))
                            .map(|c| config_entry(c.def.name, &c, synonyms, docs))
                            .collect();
                        result.with_configs(configs)
                    }
                    None => result.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                },
                RESOURCE_GROUP => {
                    result.with_configs(describe_group(context, &resource.resource_name, wanted, synonyms, docs))
                }
                RESOURCE_BROKER if resource.resource_name.is_empty() => {
                    // The cluster-wide entity holds only what was set on it.
                    let defaults = context.api.broker().defaults();
                    let configs = defaults
                        .dynamic_default
                        .iter()
                        .filter(|(name, _)| wanted(name))
                        .map(|(name, value)| {
                            let kind = config_def_by_broker_synonym(name).map_or(ConfigType::String, |d| d.kind);
                            DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(name.clone()))
                                .with_value(Some(str_bytes(value.clone())))
                                .with_config_source(source_code(ConfigSource::DynamicDefaultBroker))
                                .with_config_type(type_code(kind))
                                .with_synonyms(if synonyms {
                                    vec![DescribeConfigsSynonym::default()
                                        .with_name(str_bytes(name.clone()))
                                        .with_value(Some(str_bytes(value.clone())))
                                        .with_source(source_code(ConfigSource::DynamicDefaultBroker))]
                                } else {
                                    Vec::new()
                                })
                        })
                        .collect();
                    result.with_configs(configs)
                }
                RESOURCE_BROKER if is_this_broker(context, &resource.resource_name) => {
                    let defaults = context.api.broker().defaults();
                    let configs = context
                        .config
                        .broker_configs
                        .iter()
                        .filter(|(name, ..)| wanted(name))
                        .map(|(name, value, explicit, doc)| {
                            if let Some(def) = config_def_by_broker_synonym(name) {
                                let entry = defaults.resolve(def, &BTreeMap::new());
                                return config_entry(name, &entry, synonyms, docs);
                            }
                            if LISTENER_DYNAMIC_SETTINGS.contains(&name.as_str()) {
                                return listener_entry(&defaults, name, value, *explicit, synonyms, docs, doc);
                            }
                            let source = if *explicit {
                                ConfigSource::StaticBroker
                            } else {
                                ConfigSource::Default
                            };
                            DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(name.clone()))
                                .with_value(Some(str_bytes(value.clone())))
                                .with_read_only(true)
                                .with_config_source(source_code(source))
                                .with_config_type(type_code(ConfigType::String))
                                .with_documentation(docs.then(|| str_bytes(doc.clone())))
                                .with_synonyms(if synonyms {
                                    vec![DescribeConfigsSynonym::default()
                                        .with_name(str_bytes(name.clone()))
                                        .with_value(Some(str_bytes(value.clone())))
                                        .with_source(source_code(source))]
                                } else {
                                    Vec::new()
                                })
                        })
                        .collect();
                    result.with_configs(configs)
                }
                RESOURCE_BROKER => result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes(format!("unknown broker {}", resource.resource_name)))),
                other => result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes(format!("unsupported resource type {other}")))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// A resolved topic config, or a dynamic broker setting (the broker default of a topic
/// config: this broker's dynamic value, the cluster-wide one, the static one, the
/// default), under `name`. Neither is read-only.
fn config_entry(name: &str, entry: &ConfigEntry, synonyms: bool, docs: bool) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(entry.value.clone())))
        .with_read_only(false)
        .with_config_source(source_code(entry.source))
        .with_config_type(type_code(entry.def.kind))
        .with_documentation(docs.then(|| str_bytes(entry.def.doc)))
        .with_synonyms(if synonyms {
            entry
                .synonyms
                .iter()
                .map(|(name, value, source)| {
                    DescribeConfigsSynonym::default()
                        .with_name(str_bytes(name.clone()))
                        .with_value(Some(str_bytes(value.clone())))
                        .with_source(source_code(*source))
                })
                .collect()
        } else {
            Vec::new()
        })
}

/// A connection limit: this broker's dynamic value, the cluster-wide one, the static
/// one or the default.
fn listener_entry(
    defaults: &strom_broker::TopicDefaults,
    name: &str,
    value: &str,
    explicit: bool,
    synonyms: bool,
    docs: bool,
    doc: &str,
) -> DescribeConfigsResourceResult {
    let mut chain = Vec::new();
    if let Some(v) = defaults.dynamic_broker.get(name) {
        chain.push((v.clone(), ConfigSource::DynamicBroker));
    }
    if let Some(v) = defaults.dynamic_default.get(name) {
        chain.push((v.clone(), ConfigSource::DynamicDefaultBroker));
    }
    chain.push((
        value.to_string(),
        if explicit {
            ConfigSource::StaticBroker
        } else {
            ConfigSource::Default
        },
    ));
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(chain[0].0.clone())))
        .with_read_only(false)
        .with_config_source(source_code(chain[0].1))
        .with_config_type(type_code(ConfigType::Int))
        .with_documentation(docs.then(|| str_bytes(doc)))
        .with_synonyms(if synonyms {
            chain
                .iter()
                .map(|(v, source)| {
                    DescribeConfigsSynonym::default()
                        .with_name(str_bytes(name))
                        .with_value(Some(str_bytes(v.clone())))
                        .with_source(source_code(*source))
                })
                .collect()
        } else {
            Vec::new()
        })
}

fn is_this_broker(context: &Context, name: &StrBytes) -> bool {
    name.as_str() == context.api.broker().node_id().to_string()
}

fn not_alterable(resource_type: i8) -> BrokerError {
    BrokerError::InvalidRequest(format!("unsupported resource type {resource_type}"))
}

fn config_resource(resource_type: i8, name: &StrBytes) -> Result<ConfigResource, BrokerError> {
    match resource_type {
        RESOURCE_TOPIC => Ok(ConfigResource::Topic(name.to_string())),
        RESOURCE_GROUP => Ok(ConfigResource::Group(name.to_string())),
        RESOURCE_BROKER => Ok(ConfigResource::Broker(name.to_string())),
        other => Err(not_alterable(other)),
    }
}

pub async fn alter_configs(context: &Context, peer: &Peer, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let alterations = request
        .resources
        .iter()
        .map(|resource| ConfigAlteration {
            resource: config_resource(resource.resource_type, &resource.resource_name),
            changes: Ok(ConfigChanges::Replace(
                resource
                    .configs
                    .iter()
                    .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
                    .collect::<BTreeMap<_, _>>(),
            )),
        })
        .collect();
    let results = context
        .api
        .alter_configs(&peer.caller, alterations, request.validate_only)
        .await;
    let responses = request
        .resources
        .into_iter()
        .zip(results)
        .map(|(resource, outcome)| {
            let response = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name);
            match outcome {
                Ok(()) => response,
                Err(e) => response
                    .with_error_code(error_code(&e))
                    .with_error_message(error_message(&e)),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn incremental_alter_configs(
    context: &Context,
    peer: &Peer,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let alterations = request
        .resources
        .iter()
        .map(|resource| ConfigAlteration {
            resource: config_resource(resource.resource_type, &resource.resource_name),
            changes: resource
                .configs
                .iter()
                .map(|c| {
                    let op = match c.config_operation {
                        0 => AlterOp::Set,
                        1 => AlterOp::Delete,
                        2 => AlterOp::Append,
                        3 => AlterOp::Subtract,
                        other => return Err(BrokerError::InvalidRequest(format!("unknown config operation {other}"))),
                    };
                    Ok(ConfigOp {
                        name: c.name.to_string(),
                        op,
                        value: c.value.as_ref().map(|v| v.to_string()),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(ConfigChanges::Incremental),
        })
        .collect();
    let results = context
        .api
        .alter_configs(&peer.caller, alterations, request.validate_only)
        .await;
    let responses = request
        .resources
        .into_iter()
        .zip(results)
        .map(|(resource, outcome)| {
            let response = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name);
            match outcome {
                Ok(()) => response,
                Err(e) => response
                    .with_error_code(error_code(&e))
                    .with_error_message(error_message(&e)),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
