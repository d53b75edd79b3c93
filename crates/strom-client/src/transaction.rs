//! A transactional producer's conversation with its transaction coordinator:
//! InitProducerId with the transactional id, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, and
//! TxnOffsetCommit to the group coordinator.
//!
//! Coordinator errors make the next attempt look the coordinator up again; CONCURRENT_TRANSACTIONS
//! (the previous transaction is still being completed) is retried with backoff. Fencing errors
//! are fatal: every later call returns [`Error::Fatal`].

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, GroupId, InitProducerIdRequest, ProducerId,
    TopicName, TransactionalId, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::{Request, StrBytes};
use tracing::debug;

use crate::client::Client;
use crate::coordinator::{coordinator_id, is_coordinator_error, CoordinatorKind};
use crate::error::{Error, Result};
use crate::group::ConsumerGroupMetadata;
use crate::sync::lock;
use crate::topic_partition::TopicPartition;

/// Kafka's error codes after which a transactional producer cannot go on:
/// INVALID_PRODUCER_EPOCH, PRODUCER_FENCED, TRANSACTIONAL_ID_AUTHORIZATION_FAILED and
/// INVALID_PRODUCER_ID_MAPPING.
fn is_fencing(code: i16) -> bool {
    matches!(code, 47 | 90 | 53 | 49)
}

#[derive(Default)]
struct TransactionState {
    coordinator: Option<i32>,
    producer: Option<(i64, i16)>,
    open: bool,
    partitions: HashSet<TopicPartition>,
    /// Whether the coordinator knows of the open transaction (partitions or offsets added).
    registered: bool,
    /// The first failed delivery of the open transaction: it can only be aborted.
    failed: Option<Error>,
    fatal: Option<Error>,
}

/// The transactional state of one producer.
pub(crate) struct Transactions {
    client: Client,
    transactional_id: String,
    timeout: Duration,
    state: Mutex<TransactionState>,
}

impl Transactions {
    pub fn new(client: Client, transactional_id: String, timeout: Duration) -> Self {
        Transactions {
            client,
            transactional_id,
            timeout,
            state: Mutex::new(TransactionState::default()),
        }
    }

    fn id(&self) -> TransactionalId {
        TransactionalId(StrBytes::from_string(self.transactional_id.clone()))
    }

    /// The producer id and epoch, failing before `init_transactions` or after a fatal error.
    pub fn producer(&self) -> Result<(i64, i16)> {
        let state = lock(&self.state);
        if let Some(fatal) = &state.fatal {
            return Err(fatal.clone());
        }
        state
            .producer
            .ok_or_else(|| Error::Config("call init_transactions first".into()))
    }

    /// Notes a failed delivery inside the open transaction.
    pub fn record_failure(&self, error: &Error) {
        let mut state = lock(&self.state);
        if state.open && state.failed.is_none() {
            state.failed = Some(error.clone());
        }
        if let Some(code) = error.code().filter(|c| is_fencing(*c)) {
            state.fatal = Some(fatal(code, error));
        }
    }

    /// Sends a request to the transaction coordinator, retrying retriable errors and
    /// rediscovering the coordinator; `code` extracts the response's error.
    async fn call<Req: Request>(
        &self,
        build: impl Fn(i16) -> Req,
        code: impl Fn(&Req::Response) -> Result<()>,
    ) -> Result<Req::Response> {
        if let Some(fatal) = lock(&self.state).fatal.clone() {
            return Err(fatal);
        }
        let result = self
            .client
            .retrying(|| async {
                let cached = lock(&self.state).coordinator;
                let coordinator = match cached {
                    Some(id) => id,
                    None => {
                        let id =
                            coordinator_id(&self.client, CoordinatorKind::Transaction, &self.transactional_id).await?;
                        lock(&self.state).coordinator = Some(id);
                        id
                    }
                };
                let version = self.client.version_for::<Req>(Some(coordinator)).await?;
                let outcome = match self.client.send_to(coordinator, &build(version)).await {
                    Ok(response) => code(&response).map(|()| response),
                    Err(error) => Err(error),
                };
                if outcome
                    .as_ref()
                    .is_err_and(|e| is_coordinator_error(e) || matches!(e, Error::Io(_) | Error::Connect { .. }))
                {
                    lock(&self.state).coordinator = None;
                }
                outcome
            })
            .await;
        if let Err(error) = &result {
            if let Some(code) = error.code().filter(|c| is_fencing(*c)) {
                let fatal = fatal(code, error);
                lock(&self.state).fatal = Some(fatal.clone());
                return Err(fatal);
            }
        }
        result
    }

    /// InitProducerId with the transactional id: fences older instances and completes their
    /// open transaction.
    pub async fn init(&self) -> Result<(i64, i16)> {
        let timeout_ms = i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX);
        let response = self
            .call(
                |_| {
                    InitProducerIdRequest::default()
                        .with_transactional_id(Some(self.id()))
                        .with_transaction_timeout_ms(timeout_ms)
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1)
                },
                |response| Error::check(response.error_code, None),
            )
            .await?;
        let producer = (response.producer_id.0, response.producer_epoch);
        debug!(transactional_id = %self.transactional_id, ?producer, "transactions initialised");
        let mut state = lock(&self.state);
        *state = TransactionState {
            coordinator: state.coordinator,
            producer: Some(producer),
            ..Default::default()
        };
        Ok(producer)
    }

    pub fn begin(&self) -> Result<()> {
        self.producer()?;
        let mut state = lock(&self.state);
        if state.open {
            return Err(Error::Config("a transaction is already open".into()));
        }
        state.open = true;
        state.failed = None;
        state.registered = false;
        state.partitions.clear();
        Ok(())
    }

    fn require_open(&self) -> Result<(i64, i16)> {
        let producer = self.producer()?;
        if !lock(&self.state).open {
            return Err(Error::Config("no transaction is open (call begin_transaction)".into()));
        }
        Ok(producer)
    }

    /// AddPartitionsToTxn for a partition not yet part of the open transaction.
    pub async fn add_partition(&self, topic: &str, partition: i32) -> Result<()> {
        let (producer_id, epoch) = self.require_open()?;
        let key = TopicPartition::new(topic, partition);
        if lock(&self.state).partitions.contains(&key) {
            return Ok(());
        }
        self.call(
            |_| {
                AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(self.id())
                    .with_v3_and_below_producer_id(ProducerId(producer_id))
                    .with_v3_and_below_producer_epoch(epoch)
                    .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(vec![partition])])
            },
            |response| {
                Error::check(response.error_code, None)?;
                for topic in &response.results_by_topic_v3_and_below {
                    for result in &topic.results_by_partition {
                        Error::check(result.partition_error_code, None)?;
                    }
                }
                Ok(())
            },
        )
        .await?;
        let mut state = lock(&self.state);
        state.partitions.insert(key);
        state.registered = true;
        Ok(())
    }

    /// AddOffsetsToTxn, then TxnOffsetCommit to the group's coordinator.
    pub async fn send_offsets(
        &self,
        offsets: &BTreeMap<TopicPartition, i64>,
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let (producer_id, epoch) = self.require_open()?;
        let group_id = GroupId(StrBytes::from_string(group.group_id.clone()));
        self.call(
            |_| {
                AddOffsetsToTxnRequest::default()
                    .with_transactional_id(self.id())
                    .with_producer_id(ProducerId(producer_id))
                    .with_producer_epoch(epoch)
                    .with_group_id(group_id.clone())
            },
            |response| Error::check(response.error_code, None),
        )
        .await?;
        lock(&self.state).registered = true;
        let mut by_topic: BTreeMap<&str, Vec<TxnOffsetCommitRequestPartition>> = BTreeMap::new();
        for (key, offset) in offsets {
            by_topic.entry(&key.topic).or_default().push(
                TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(key.partition)
                    .with_committed_offset(*offset),
            );
        }
        let topics: Vec<TxnOffsetCommitRequestTopic> = by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(partitions)
            })
            .collect();
        let client = &self.client;
        client
            .retrying(|| async {
                let coordinator = coordinator_id(client, CoordinatorKind::Group, &group.group_id).await?;
                let version = client.version_for::<TxnOffsetCommitRequest>(Some(coordinator)).await?;
                let mut request = TxnOffsetCommitRequest::default()
                    .with_transactional_id(self.id())
                    .with_group_id(group_id.clone())
                    .with_producer_id(ProducerId(producer_id))
                    .with_producer_epoch(epoch)
                    .with_topics(topics.clone());
                if version >= 3 {
                    request.generation_id = group.generation_id;
                    request.member_id = StrBytes::from_string(group.member_id.clone());
                    request.group_instance_id = group.group_instance_id.clone().map(StrBytes::from_string);
                }
                let response = client.send_to(coordinator, &request).await?;
                for topic in &response.topics {
                    for partition in &topic.partitions {
                        Error::check(partition.error_code, None)?;
                    }
                }
                Ok(())
            })
            .await
            .inspect_err(|error| self.record_failure(error))
    }

    /// EndTxn: commits or aborts the open transaction (whose batches are all delivered).
    pub async fn end(&self, commit: bool) -> Result<()> {
        let (producer_id, epoch) = self.require_open()?;
        if commit {
            if let Some(failed) = lock(&self.state).failed.clone() {
                return Err(Error::Config(format!(
                    "a send of this transaction failed ({failed}); abort it"
                )));
            }
        }
        let registered = lock(&self.state).registered;
        if registered {
            self.call(
                |_| {
                    EndTxnRequest::default()
                        .with_transactional_id(self.id())
                        .with_producer_id(ProducerId(producer_id))
                        .with_producer_epoch(epoch)
                        .with_committed(commit)
                },
                |response| Error::check(response.error_code, None),
            )
            .await?;
        }
        let mut state = lock(&self.state);
        state.open = false;
        state.partitions.clear();
        state.registered = false;
        state.failed = None;
        Ok(())
    }
}

fn fatal(code: i16, error: &Error) -> Error {
    if code == 90 || code == 47 {
        Error::Fatal(format!(
            "producer fenced by a newer instance with the same transactional id ({error})"
        ))
    } else {
        Error::Fatal(error.to_string())
    }
}
