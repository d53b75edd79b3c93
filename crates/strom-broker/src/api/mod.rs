//! The request façade: the one API every front-end calls (Kafka now; AMQP, gRPC and the
//! Schema Registry's validation hook next), in the broker's terms — plain structs, no
//! wire types.
//!
//! Every call takes the [`Caller`] and passes the one authorization point
//! ([`crate::caller::Authorizer`]); every call decides itself what runs on the blocking
//! pool ([`crate::blocking::offload`], one policy for a panicked task). Front-end
//! handlers only decode, call and encode.
//!
//! [`BrokerApi::start`] opens the data directory, loads the coordinators and starts
//! the broker's own periodic work (retention, compaction, `flush.ms`, group timers,
//! transaction timeouts); [`BrokerApi::shutdown`] stops it and closes the logs.

mod admin;
mod background;
mod configs;
mod coordinators;
mod describe_configs;
mod fetch;
mod offsets;
mod produce;

use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub(crate) use admin::broker_endpoints;
pub use admin::{
    BrokerEndpoint, DeletedTopic, LogDirDescription, NewPartitions, PartitionMetadata, ReplicaDescription,
    TopicMetadata,
};
pub use configs::{ConfigAlteration, ConfigChanges, ConfigOp, ConfigResource};
pub use coordinators::CoordinatorKind;
pub use describe_configs::{ConfigSynonym, DescribedConfig, StaticSetting};
pub use fetch::{ClientRack, FetchParams, FetchPartition, FetchedPartition, FetchingReplica};
pub use offsets::{DeleteRecordsPartition, ListOffsetsPartition, ListedOffset, OffsetSpec};
pub use produce::{Acks, ProduceFuture, ProducePartition, ProduceRequest, Produced, TxnCheck};

use crate::broker::{Broker, BrokerConfig};
use crate::caller::{self, AllowAll, Authorizer, Caller, Operation, Resource};
use crate::error::{BrokerError, Result};
use crate::group::{GroupConfig, GroupCoordinator};
use crate::partition::Partition;
use crate::replication::{LeaderClient, NoLeaderClient};
use crate::sync::lock;
use crate::topic::Topic;
use crate::txn::{NoRemoteMarkers, RemoteMarkers, TxnConfig, TxnCoordinator};

/// A topic as a request names it: by name, or by id (Fetch and Produce v13+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicRef {
    Name(String),
    Id(Uuid),
}

/// Everything the broker needs to start.
#[derive(Debug, Clone)]
pub struct StartConfig {
    pub broker: BrokerConfig,
    pub groups: GroupConfig,
    pub txns: TxnConfig,
    /// The node's settings as started, for DescribeConfigs on the broker.
    pub static_settings: Vec<StaticSetting>,
    /// How the transaction coordinator writes markers on other nodes (a front-end's
    /// client of WriteTxnMarkers).
    pub remote_markers: Arc<dyn RemoteMarkers>,
    /// How followers fetch from leaders on other nodes (a front-end's Fetch client).
    pub leader_client: Arc<dyn LeaderClient>,
}

/// One broker: its logs and metadata, its coordinators, its periodic work.
pub struct BrokerApi {
    broker: Arc<Broker>,
    groups: Arc<GroupCoordinator>,
    txns: Arc<TxnCoordinator>,
    authorizer: Arc<dyn Authorizer>,
    static_settings: Vec<StaticSetting>,
    /// How this node's followers fetch from leaders elsewhere.
    leader_client: Arc<dyn LeaderClient>,
    /// Set when the broker shuts down: long-poll fetches return, loops stop.
    closing: watch::Sender<bool>,
    /// The schema registry's check of produced records, for topics that validate.
    validator: std::sync::RwLock<Option<Arc<dyn crate::validation::RecordValidator>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl BrokerApi {
    /// Opens the data directory and the coordinators, then starts the periodic work.
    /// Runs on a tokio runtime; the loading itself is blocking I/O done on the pool.
    pub async fn start(config: StartConfig) -> Result<Arc<BrokerApi>> {
        let StartConfig {
            broker,
            groups,
            txns,
            static_settings,
            remote_markers,
            leader_client,
        } = config;
        let broker = crate::blocking::offload_result("open broker", move || Broker::open(broker)).await?;
        Self::start_inner(
            broker,
            groups,
            txns,
            Arc::new(AllowAll),
            (remote_markers, leader_client),
            static_settings,
        )
        .await
    }

    /// [`BrokerApi::start`] on an opened broker (tests open it with their own clock).
    pub async fn start_with(broker: Arc<Broker>, groups: GroupConfig, txns: TxnConfig) -> Result<Arc<BrokerApi>> {
        Self::start_authorized(broker, groups, txns, Arc::new(AllowAll)).await
    }

    /// [`BrokerApi::start_with`] with an authorizer other than [`AllowAll`]. Markers
    /// for partitions led by other nodes cannot be written ([`NoRemoteMarkers`]).
    pub async fn start_authorized(
        broker: Arc<Broker>,
        groups: GroupConfig,
        txns: TxnConfig,
        authorizer: Arc<dyn Authorizer>,
    ) -> Result<Arc<BrokerApi>> {
        Self::start_opened(
            broker,
            groups,
            txns,
            authorizer,
            Arc::new(NoRemoteMarkers),
            Arc::new(NoLeaderClient),
        )
        .await
    }

    /// [`BrokerApi::start_authorized`] with ways to reach other nodes: to write
    /// markers and to fetch as a follower.
    pub async fn start_opened(
        broker: Arc<Broker>,
        groups: GroupConfig,
        txns: TxnConfig,
        authorizer: Arc<dyn Authorizer>,
        remote_markers: Arc<dyn RemoteMarkers>,
        leader_client: Arc<dyn LeaderClient>,
    ) -> Result<Arc<BrokerApi>> {
        Self::start_inner(
            broker,
            groups,
            txns,
            authorizer,
            (remote_markers, leader_client),
            Vec::new(),
        )
        .await
    }

    async fn start_inner(
        broker: Arc<Broker>,
        groups: GroupConfig,
        txns: TxnConfig,
        authorizer: Arc<dyn Authorizer>,
        (remote_markers, leader_client): (Arc<dyn RemoteMarkers>, Arc<dyn LeaderClient>),
        static_settings: Vec<StaticSetting>,
    ) -> Result<Arc<BrokerApi>> {
        let groups = {
            let broker = broker.clone();
            crate::blocking::offload_result("load groups", move || GroupCoordinator::open(broker, groups)).await?
        };
        let txns = {
            let (broker, groups) = (broker.clone(), groups.clone());
            crate::blocking::offload_result("load transactions", move || {
                TxnCoordinator::open(broker, groups, txns, remote_markers)
            })
            .await?
        };
        let (closing, _) = watch::channel(false);
        let api = Arc::new(BrokerApi {
            broker,
            groups,
            txns,
            authorizer,
            static_settings,
            leader_client,
            closing,
            validator: std::sync::RwLock::new(None),
            tasks: Mutex::new(Vec::new()),
        });
        let tasks = background::spawn_all(&api);
        lock(&api.tasks).extend(tasks);
        Ok(api)
    }

    /// Installs the schema registry's check of produced records (topics with
    /// `confluent.*.schema.validation`).
    pub fn set_record_validator(&self, validator: Arc<dyn crate::validation::RecordValidator>) {
        *crate::sync::write(&self.validator) = Some(validator);
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    pub fn groups(&self) -> &Arc<GroupCoordinator> {
        &self.groups
    }

    pub fn txns(&self) -> &Arc<TxnCoordinator> {
        &self.txns
    }

    pub fn node_id(&self) -> i32 {
        self.broker.node_id()
    }

    pub fn cluster_id(&self) -> &str {
        self.broker.cluster_id()
    }

    /// Woken (true) when the broker begins to shut down.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Tells long-poll fetches and the periodic work to stop.
    pub fn begin_shutdown(&self) {
        let _ = self.closing.send(true);
    }

    /// Stops the periodic work, then flushes and closes every log.
    pub async fn shutdown(&self) -> Result<()> {
        self.begin_shutdown();
        let broker = self.broker.clone();
        // Controlled shutdown first: leadership moves while this node still answers.
        let _ = crate::blocking::offload("controlled shutdown", move || broker.leave()).await;
        let tasks: Vec<_> = lock(&self.tasks).drain(..).collect();
        for task in tasks {
            let _ = task.await;
        }
        let broker = self.broker.clone();
        crate::blocking::offload_result("close logs", move || broker.shutdown()).await
    }

    /// The authorization point every façade call passes.
    pub fn authorize(&self, caller: &Caller, operation: Operation, resource: Resource<'_>) -> Result<()> {
        caller::check(self.authorizer.as_ref(), caller, operation, resource)
    }

    fn topic(&self, topic: &TopicRef) -> Result<Arc<Topic>> {
        match topic {
            TopicRef::Name(name) => self.broker.topic(name).ok_or(BrokerError::UnknownTopicOrPartition),
            TopicRef::Id(id) => self.broker.topic_by_id(*id).ok_or(BrokerError::UnknownTopicId),
        }
    }

    /// The partition a request names, after `operation` on its topic is authorized.
    fn partition(
        &self,
        caller: &Caller,
        operation: Operation,
        topic: &TopicRef,
        index: i32,
    ) -> Result<(Arc<Topic>, Arc<Partition>)> {
        // By name, the caller is checked before the topic's existence shows.
        let topic = match topic {
            TopicRef::Name(name) => {
                self.authorize(caller, operation, Resource::Topic(name))?;
                self.topic(topic)?
            }
            TopicRef::Id(_) => {
                let found = self.topic(topic)?;
                self.authorize(caller, operation, Resource::Topic(found.name()))?;
                found
            }
        };
        let partition = match topic.partition(index) {
            Some(partition) => partition,
            // Placed on other nodes.
            None if (0..topic.partition_count()).contains(&index) => return Err(BrokerError::NotLeaderOrFollower),
            None => return Err(BrokerError::UnknownTopicOrPartition),
        };
        if !partition.replica().is_leader() {
            return Err(BrokerError::NotLeaderOrFollower);
        }
        Ok((topic, partition))
    }

    /// [`BrokerApi::partition`] for a consumer that may read from a follower (KIP-392):
    /// any replica hosted here.
    fn hosted_partition(
        &self,
        caller: &Caller,
        operation: Operation,
        topic: &TopicRef,
        index: i32,
    ) -> Result<(Arc<Topic>, Arc<Partition>)> {
        match self.partition(caller, operation, topic, index) {
            Err(BrokerError::NotLeaderOrFollower) => {
                let topic = self.topic(topic)?;
                let partition = topic.partition(index).ok_or(BrokerError::NotLeaderOrFollower)?;
                Ok((topic, partition))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests;
