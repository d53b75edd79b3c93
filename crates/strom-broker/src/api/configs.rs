//! AlterConfigs and IncrementalAlterConfigs on topics, groups and brokers. Every change
//! is committed to the metadata log: on the blocking pool.

use std::collections::BTreeMap;

use super::BrokerApi;
use crate::blocking::offload_each;
use crate::broker::AlterOp;
use crate::caller::{Caller, Operation, Resource};
use crate::dynamic_config::BrokerEntity;
use crate::error::{BrokerError, Result};

/// What a config change is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    Group(String),
    /// A broker by name: its node id, or "" for the default of every broker.
    Broker(String),
}

/// One change of one config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigOp {
    pub name: String,
    pub op: AlterOp,
    pub value: Option<String>,
}

/// The changes of one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChanges {
    /// AlterConfigs: the resource's whole set of configs becomes this.
    Replace(BTreeMap<String, String>),
    /// IncrementalAlterConfigs: these operations, in order.
    Incremental(Vec<ConfigOp>),
}

/// One resource to alter; `changes` is an error when the request could not say what.
#[derive(Debug)]
pub struct ConfigAlteration {
    pub resource: Result<ConfigResource>,
    pub changes: Result<ConfigChanges>,
}

impl BrokerApi {
    /// Alters each resource's configs (or only checks, with `validate_only`), in order.
    pub async fn alter_configs(
        &self,
        caller: &Caller,
        alterations: Vec<ConfigAlteration>,
        validate_only: bool,
    ) -> Vec<Result<()>> {
        let node = self.node_id().to_string();
        let checked: Vec<Result<(ConfigResource, ConfigChanges)>> = alterations
            .into_iter()
            .map(|a| {
                let resource = a.resource?;
                let target = match &resource {
                    ConfigResource::Topic(name) => Resource::Topic(name),
                    ConfigResource::Group(name) => Resource::Group(name),
                    ConfigResource::Broker(_) => Resource::Cluster,
                };
                self.authorize(caller, Operation::AlterConfigs, target)?;
                Ok((resource, a.changes?))
            })
            .collect();
        let broker = self.broker.clone();
        let bounds = self.groups.config().group_config_bounds();
        offload_each("alter configs", checked, move |(resource, changes)| {
            match (resource, changes) {
                (ConfigResource::Topic(name), ConfigChanges::Replace(configs)) => {
                    broker.alter_topic_configs(&name, configs, validate_only)
                }
                (ConfigResource::Topic(name), changes) => {
                    broker.incremental_alter_topic_configs(&name, &ops(changes), validate_only)
                }
                (ConfigResource::Group(name), changes) => {
                    let replace = matches!(changes, ConfigChanges::Replace(_));
                    broker.alter_group_configs(&name, replace, &ops(changes), bounds, validate_only)
                }
                (ConfigResource::Broker(name), changes) => {
                    let entity = broker_entity(&name, &node)?;
                    match changes {
                        ConfigChanges::Replace(configs) => broker.alter_broker_configs(entity, configs, validate_only),
                        changes => broker.incremental_alter_broker_configs(entity, &ops(changes), validate_only),
                    }
                }
            }
        })
        .await
    }
}

/// The changes as the broker's (name, operation, value) list: a replacement is a SET of
/// each config.
fn ops(changes: ConfigChanges) -> Vec<(String, AlterOp, Option<String>)> {
    match changes {
        ConfigChanges::Replace(configs) => configs.into_iter().map(|(k, v)| (k, AlterOp::Set, Some(v))).collect(),
        ConfigChanges::Incremental(ops) => ops.into_iter().map(|o| (o.name, o.op, o.value)).collect(),
    }
}

/// The BROKER entity a resource name stands for.
fn broker_entity(name: &str, node: &str) -> Result<BrokerEntity> {
    if name.is_empty() {
        Ok(BrokerEntity::ClusterDefault)
    } else if name == node {
        Ok(BrokerEntity::ThisBroker)
    } else {
        Err(BrokerError::InvalidRequest(format!("unknown broker {name}")))
    }
}
