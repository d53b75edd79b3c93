//! Strom's broker core: topics and partitions, produce / fetch / offsets semantics,
//! the high watermark and topic configs. It knows nothing of wire formats: the
//! protocol front-ends (`strom-kafka`) translate requests into calls on [`Broker`].

pub mod broker;
pub mod constants;
pub mod dynamic_config;
pub mod error;
pub mod group;
pub mod partition;
pub mod producer_id;
pub mod producer_state;
pub mod topic;
pub mod topic_config;
pub mod topic_store;
pub mod txn;

pub use broker::{AlterOp, AppendOrigin, Appended, Broker, BrokerConfig, NewTopic, TopicSummary};
pub use dynamic_config::BrokerEntity;
pub use error::{BrokerError, Result};
pub use group::GroupCoordinator;
pub use partition::{FetchedData, Partition};
pub use strom_log::AppendInfo;
pub use topic::{is_internal_topic, Topic};
pub use topic_config::{ConfigEntry, ConfigSource, ConfigType, TopicDefaults};
