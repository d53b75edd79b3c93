//! Strom's broker core: topics and partitions, produce / fetch / offsets semantics,
//! the high watermark, configs, and the group and transaction coordinators. It knows
//! nothing of wire formats: the protocol front-ends (`strom-kafka`) translate requests
//! into calls on the façade, [`BrokerApi`]. Public are the façade and the types its
//! calls take and return; the log manager, producer state and the
//! coordinators' shell are internal.

pub mod api;
pub(crate) mod blocking;
pub(crate) mod broker;
pub mod caller;
pub(crate) mod constants;
pub(crate) mod coordinator_log;
pub(crate) mod dynamic_config;
pub mod error;
mod files;
pub mod group;
pub(crate) mod log_manager;
pub(crate) mod migration;
pub mod partition;
pub(crate) mod producer_id;
pub(crate) mod producer_state;
pub mod replication;
mod sync;
pub(crate) mod topic;
pub mod topic_config;
pub mod txn;
pub mod validation;

pub use api::{BrokerApi, StartConfig, TopicRef};
pub use broker::{AlterOp, AppendOrigin, Appended, Broker, BrokerConfig, NewTopic, OngoingReassignment, TopicSummary};
pub use caller::{Caller, Principal};
pub use dynamic_config::BrokerEntity;
pub use dynamic_config::{GroupConfigBounds, GROUP_CONFIGS};
pub use error::{BrokerError, Result};
pub use group::GroupCoordinator;
pub use partition::{FetchIsolation, FetchedData, FetchedRange, Partition, ProducerSummary};
pub use producer_state::{AbortedTxn, TxnGuard};
pub use strom_cluster::{Listener, MetadataImage, MetadataRecord, Quorum, QuorumConfig};
pub use strom_log::AppendInfo;
pub use topic::{is_internal_topic, Topic};
pub use topic_config::{ConfigEntry, ConfigSource, ConfigType, SchemaRule, SubjectStrategy, TopicDefaults};
