//! The `Broker` methods that read, alter and apply dynamic broker configs and group
//! configs (their store and rules are in [`crate::dynamic_config`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{AlterOp, Broker};
use crate::dynamic_config::*;
use crate::error::{BrokerError, Result};
use crate::topic_config::TopicDefaults;

impl Broker {
    /// Topic defaults in force: static settings with the dynamic broker configs.
    pub fn defaults(&self) -> Arc<TopicDefaults> {
        crate::sync::read(&self.topic_defaults).clone()
    }

    /// A dynamic broker setting in force (this broker's, else the cluster-wide one), if set.
    pub fn dynamic_setting(&self, name: &str) -> Option<String> {
        let defaults = self.defaults();
        defaults
            .dynamic_broker
            .get(name)
            .or_else(|| defaults.dynamic_default.get(name))
            .cloned()
    }

    /// The dynamic configs set on a BROKER resource (AlterConfigs).
    pub fn dynamic_broker_configs(&self, entity: BrokerEntity) -> BTreeMap<String, String> {
        let defaults = self.defaults();
        match entity {
            BrokerEntity::ThisBroker => defaults.dynamic_broker.clone(),
            BrokerEntity::ClusterDefault => defaults.dynamic_default.clone(),
        }
    }

    /// AlterConfigs on a BROKER resource: replaces all its dynamic configs.
    pub fn alter_broker_configs(
        &self,
        entity: BrokerEntity,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<()> {
        crate::dynamic_config::validate(&configs)?;
        if validate_only {
            return Ok(());
        }
        let _admin = crate::sync::lock(&self.admin);
        self.apply_dynamic(entity, configs)
    }

    /// IncrementalAlterConfigs on a BROKER resource.
    pub fn incremental_alter_broker_configs(
        &self,
        entity: BrokerEntity,
        ops: &[(String, AlterOp, Option<String>)],
        validate_only: bool,
    ) -> Result<()> {
        let _admin = crate::sync::lock(&self.admin);
        let mut configs = self.dynamic_broker_configs(entity);
        for (name, op, value) in ops {
            if !crate::dynamic_config::is_dynamic(name) {
                return Err(BrokerError::InvalidRequest(format!(
                    "Cannot update these configs dynamically: Set({name})"
                )));
            }
            set_or_delete(&mut configs, name, *op, value)?;
        }
        crate::dynamic_config::validate(&configs)?;
        if validate_only {
            return Ok(());
        }
        self.apply_dynamic(entity, configs)
    }

    fn save_dynamic(
        &self,
        defaults: &TopicDefaults,
        groups: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<()> {
        self.dynamic_store.save(&crate::dynamic_config::DynamicConfigs {
            broker: defaults.dynamic_broker.clone(),
            cluster_default: defaults.dynamic_default.clone(),
            groups: groups.clone(),
        })
    }

    fn all_group_configs(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        crate::sync::read(&self.group_configs).clone()
    }

    /// The configs set on a group (GROUP resource); empty when none.
    pub fn group_configs(&self, group: &str) -> BTreeMap<String, String> {
        crate::sync::read(&self.group_configs)
            .get(group)
            .cloned()
            .unwrap_or_default()
    }

    /// Alter a group's configs: `ops` applied to its current set (AlterConfigs passes
    /// the whole new set as Set operations after clearing). `bounds` are the broker
    /// settings the group falls back to and must stay within.
    pub fn alter_group_configs(
        &self,
        group: &str,
        replace: bool,
        ops: &[(String, AlterOp, Option<String>)],
        bounds: crate::dynamic_config::GroupConfigBounds,
        validate_only: bool,
    ) -> Result<()> {
        if group.is_empty() {
            return Err(BrokerError::InvalidGroupId);
        }
        let _admin = crate::sync::lock(&self.admin);
        let mut configs = if replace {
            BTreeMap::new()
        } else {
            self.group_configs(group)
        };
        for (name, op, value) in ops {
            set_or_delete(&mut configs, name, *op, value)?;
        }
        crate::dynamic_config::validate_group(&configs, bounds)?;
        if validate_only {
            return Ok(());
        }
        let mut groups = self.all_group_configs();
        if configs.is_empty() {
            groups.remove(group);
        } else {
            groups.insert(group.to_string(), configs);
        }
        self.save_dynamic(&self.defaults(), &groups)?;
        *crate::sync::write(&self.group_configs) = groups;
        Ok(())
    }

    /// Persists an entity's dynamic configs, then applies them to every topic.
    fn apply_dynamic(&self, entity: BrokerEntity, configs: BTreeMap<String, String>) -> Result<()> {
        let mut defaults = (*self.defaults()).clone();
        match entity {
            BrokerEntity::ThisBroker => defaults.dynamic_broker = configs,
            BrokerEntity::ClusterDefault => defaults.dynamic_default = configs,
        }
        self.save_dynamic(&defaults, &self.all_group_configs())?;
        let defaults = Arc::new(defaults);
        *crate::sync::write(&self.topic_defaults) = defaults.clone();
        for topic in self.topics() {
            let overrides = topic.overrides();
            topic.set_overrides(overrides.clone(), defaults.limits(&overrides));
            let log_config = defaults.log_config(&overrides);
            for partition in topic.partitions() {
                partition.set_config(log_config);
            }
        }
        tracing::info!(?entity, "dynamic broker configs changed");
        Ok(())
    }
}

/// Applies a SET or DELETE to a set of configs whose values are not lists.
fn set_or_delete(
    configs: &mut BTreeMap<String, String>,
    name: &str,
    op: AlterOp,
    value: &Option<String>,
) -> Result<()> {
    match op {
        AlterOp::Set => {
            configs.insert(name.to_string(), value.clone().unwrap_or_default());
        }
        AlterOp::Delete => {
            configs.remove(name);
        }
        AlterOp::Append | AlterOp::Subtract => {
            return Err(BrokerError::InvalidConfig(format!(
                "Config value append/subtract is not allowed for config key {name}"
            )))
        }
    }
    Ok(())
}
