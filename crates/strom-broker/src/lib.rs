//! Strom's broker core: topics and partitions, produce / fetch / offsets semantics,
//! the high watermark and topic configs. It knows nothing of wire formats: the
//! protocol front-ends (`strom-kafka`) translate requests into calls on [`Broker`].

pub mod api;
pub(crate) mod blocking;
pub mod broker;
pub mod caller;
pub mod constants;
pub(crate) mod coordinator_log;
pub mod dynamic_config;
pub mod error;
mod files;
pub mod group;
pub mod log_manager;
pub mod metadata;
pub mod partition;
pub mod producer_id;
pub mod producer_state;
mod sync;
pub mod topic;
pub mod topic_config;
pub mod txn;

pub use api::{BrokerApi, StartConfig, TopicRef};
pub use broker::{AlterOp, AppendOrigin, Appended, Broker, BrokerConfig, NewTopic, TopicSummary};
pub use caller::{Caller, Principal};
pub use dynamic_config::BrokerEntity;
pub use error::{BrokerError, Result};
pub use group::GroupCoordinator;
pub use partition::{FetchIsolation, FetchedData, Partition};
pub use strom_log::AppendInfo;
pub use topic::{is_internal_topic, Topic};
pub use topic_config::{ConfigEntry, ConfigSource, ConfigType, TopicDefaults};
