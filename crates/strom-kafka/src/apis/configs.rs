//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics and for the
//! broker (its node id, or "" for the default of all brokers; only the broker defaults
//! of topic configs are dynamic). Entries carry their source and synonyms, so admin
//! tools can tell a default from an override.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_broker::api::{ConfigAlteration, ConfigChanges, ConfigOp, ConfigResource, DescribedConfig};
use strom_broker::{AlterOp, BrokerError, ConfigSource, ConfigType};

use super::str_bytes;
use crate::context::{Context, Peer};
use crate::error_code::{error_code, error_message};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_GROUP: i8 = 32;

/// Kafka's ConfigSource codes.
pub fn source_code(source: ConfigSource) -> i8 {
    match source {
        ConfigSource::DynamicTopic => 1,
        ConfigSource::DynamicBroker => 2,
        ConfigSource::DynamicDefaultBroker => 3,
        ConfigSource::StaticBroker => 4,
        ConfigSource::Default => 5,
        ConfigSource::GroupConfig => 8,
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

pub fn describe_configs(
    context: &Context,
    peer: &Peer,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let synonyms = request.include_synonyms;
    let docs = request.include_documentation && version >= 3;
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let names: Option<Vec<String>> = resource
                .configuration_keys
                .as_ref()
                .map(|keys| keys.iter().map(|k| k.to_string()).collect());
            let described = config_resource(resource.resource_type, &resource.resource_name)
                .and_then(|target| context.api.describe_configs(&peer.caller, &target, names.as_deref()));
            match described {
                Ok(configs) => {
                    result.with_configs(configs.into_iter().map(|c| encode_config(c, synonyms, docs)).collect())
                }
                Err(e) => result
                    .with_error_code(error_code(&e))
                    .with_error_message(error_message(&e)),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn encode_config(config: DescribedConfig, synonyms: bool, docs: bool) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(config.name))
        .with_value(Some(str_bytes(config.value)))
        .with_read_only(config.read_only)
        .with_config_source(source_code(config.source))
        .with_config_type(type_code(config.kind))
        .with_documentation(docs.then(|| str_bytes(config.doc)))
        .with_synonyms(if synonyms {
            config
                .synonyms
                .into_iter()
                .map(|s| {
                    DescribeConfigsSynonym::default()
                        .with_name(str_bytes(s.name))
                        .with_value(Some(str_bytes(s.value)))
                        .with_source(source_code(s.source))
                })
                .collect()
        } else {
            Vec::new()
        })
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
