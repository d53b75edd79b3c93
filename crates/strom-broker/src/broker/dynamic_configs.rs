//! The `Broker` methods that read, alter and apply dynamic broker configs and group
//! configs (their rules are in [`crate::dynamic_config`]). A change is a `Configs`
//! record committed to the metadata log; every node applies it in
//! [`Broker::sync_metadata`], whichever node committed it.

use std::collections::BTreeMap;
use std::sync::Arc;

use strom_cluster::{ConfigScope, MetadataImage, MetadataRecord};

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

    /// The metadata scope a BROKER resource stands for.
    fn broker_scope(&self, entity: BrokerEntity) -> ConfigScope {
        match entity {
            BrokerEntity::ThisBroker => ConfigScope::Broker(self.node_id()),
            BrokerEntity::ClusterDefault => ConfigScope::ClusterDefault,
        }
    }

    /// The configs committed for a scope. From the applied image rather than the synced
    /// one, so an incremental change builds on the latest commit of any node.
    fn committed_configs(&self, scope: &ConfigScope) -> BTreeMap<String, String> {
        self.quorum.applied().image.configs(scope).cloned().unwrap_or_default()
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
        self.commit_configs(self.broker_scope(entity), configs)
    }

    /// IncrementalAlterConfigs on a BROKER resource.
    pub fn incremental_alter_broker_configs(
        &self,
        entity: BrokerEntity,
        ops: &[(String, AlterOp, Option<String>)],
        validate_only: bool,
    ) -> Result<()> {
        let _admin = crate::sync::lock(&self.admin);
        let scope = self.broker_scope(entity);
        let mut configs = self.committed_configs(&scope);
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
        self.commit_configs(scope, configs)
    }

    /// The configs set on a group (GROUP resource); empty when none.
    pub fn group_configs(&self, group: &str) -> BTreeMap<String, String> {
        self.image()
            .configs(&ConfigScope::Group(group.to_string()))
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
        let scope = ConfigScope::Group(group.to_string());
        let mut configs = if replace {
            BTreeMap::new()
        } else {
            self.committed_configs(&scope)
        };
        for (name, op, value) in ops {
            set_or_delete(&mut configs, name, *op, value)?;
        }
        crate::dynamic_config::validate_group(&configs, bounds)?;
        if validate_only {
            return Ok(());
        }
        self.commit_configs(scope, configs)
    }

    /// Commits a scope's whole set of configs (an empty set removes it); applied here
    /// by the sync after the commit, elsewhere when their nodes sync.
    fn commit_configs(&self, resource: ConfigScope, configs: BTreeMap<String, String>) -> Result<()> {
        self.commit(vec![MetadataRecord::Configs {
            resource: resource.clone(),
            configs,
        }])?;
        tracing::info!(?resource, "dynamic configs changed");
        Ok(())
    }

    /// Puts this broker's and the cluster-wide dynamic configs of `image` in force;
    /// says whether they changed (then every live topic needs
    /// [`Broker::reconfigure_topics`]). Group configs need nothing: they are read from
    /// the synced image.
    pub(super) fn sync_dynamic_configs(&self, image: &MetadataImage) -> bool {
        let scoped = |scope: ConfigScope| image.configs(&scope).cloned().unwrap_or_default();
        let broker = scoped(ConfigScope::Broker(self.node_id()));
        let default = scoped(ConfigScope::ClusterDefault);
        let current = self.defaults();
        if current.dynamic_broker == broker && current.dynamic_default == default {
            return false;
        }
        let mut defaults = (*current).clone();
        defaults.dynamic_broker = broker;
        defaults.dynamic_default = default;
        *crate::sync::write(&self.topic_defaults) = Arc::new(defaults);
        tracing::info!("dynamic broker configs applied");
        true
    }

    /// Resolves every live topic's limits and log config again against the defaults
    /// in force (after the dynamic broker configs changed).
    pub(super) fn reconfigure_topics(&self) {
        let defaults = self.defaults();
        for topic in self.topics() {
            let overrides = topic.overrides();
            topic.set_overrides(overrides.clone(), defaults.limits(&overrides));
            let log_config = defaults.log_config(&overrides);
            for partition in topic.partitions() {
                partition.set_config(log_config);
            }
        }
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
