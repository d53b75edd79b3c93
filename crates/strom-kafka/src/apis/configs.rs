//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (and
//! DescribeConfigs for the broker). Entries carry their source and synonyms, so
//! admin tools can tell a default from an override.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_broker::{AlterOp, BrokerError, ConfigSource, ConfigType};

use super::{blocking, str_bytes};
use crate::error_code::{error_code, error_message};
use crate::server::Context;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// Kafka's ConfigSource codes.
pub fn source_code(source: ConfigSource) -> i8 {
    match source {
        ConfigSource::DynamicTopic => 1,
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
                RESOURCE_TOPIC => match context.broker.topic(&resource.resource_name) {
                    Some(topic) => {
                        let configs = context
                            .broker
                            .resolve_configs(&topic.overrides())
                            .into_iter()
                            .filter(|c| wanted(c.def.name))
                            .map(|c| {
                                DescribeConfigsResourceResult::default()
                                    .with_name(str_bytes(c.def.name))
                                    .with_value(Some(str_bytes(c.value.clone())))
                                    .with_config_source(source_code(c.source))
                                    .with_config_type(type_code(c.def.kind))
                                    .with_documentation(docs.then(|| str_bytes(c.def.doc)))
                                    .with_synonyms(if synonyms {
                                        c.synonyms
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
                            })
                            .collect();
                        result.with_configs(configs)
                    }
                    None => result.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                },
                RESOURCE_BROKER if is_this_broker(context, &resource.resource_name) => {
                    let configs = context
                        .config
                        .broker_configs
                        .iter()
                        .filter(|(name, ..)| wanted(name))
                        .map(|(name, value, explicit, doc)| {
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

fn is_this_broker(context: &Context, name: &StrBytes) -> bool {
    name.is_empty() || name.as_str() == context.broker.node_id().to_string()
}

fn not_alterable(resource_type: i8) -> BrokerError {
    if resource_type == RESOURCE_BROKER {
        BrokerError::InvalidRequest("dynamic broker configs are not supported; set them in the config file".into())
    } else {
        BrokerError::InvalidRequest(format!("unsupported resource type {resource_type}"))
    }
}

pub async fn alter_configs(context: &Context, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let validate_only = request.validate_only;
    let responses = blocking(context, move |broker| {
        request
            .resources
            .into_iter()
            .map(|resource| {
                let outcome = if resource.resource_type == RESOURCE_TOPIC {
                    let configs: BTreeMap<String, String> = resource
                        .configs
                        .iter()
                        .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
                        .collect();
                    broker.alter_topic_configs(&resource.resource_name, configs, validate_only)
                } else {
                    Err(not_alterable(resource.resource_type))
                };
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
            .collect()
    })
    .await;
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn incremental_alter_configs(
    context: &Context,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let validate_only = request.validate_only;
    let responses = blocking(context, move |broker| {
        request
            .resources
            .into_iter()
            .map(|resource| {
                let outcome = if resource.resource_type == RESOURCE_TOPIC {
                    resource
                        .configs
                        .iter()
                        .map(|c| {
                            let op = match c.config_operation {
                                0 => AlterOp::Set,
                                1 => AlterOp::Delete,
                                2 => AlterOp::Append,
                                3 => AlterOp::Subtract,
                                other => {
                                    return Err(BrokerError::InvalidRequest(format!(
                                        "unknown config operation {other}"
                                    )))
                                }
                            };
                            Ok((c.name.to_string(), op, c.value.as_ref().map(|v| v.to_string())))
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .and_then(|ops| {
                            broker.incremental_alter_topic_configs(&resource.resource_name, &ops, validate_only)
                        })
                } else {
                    Err(not_alterable(resource.resource_type))
                };
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
            .collect()
    })
    .await;
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
