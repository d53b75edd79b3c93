//! The registry's log on the broker: the compacted topic `_schemas` (one partition,
//! replicated like the internal topics), written with acks=all and read from the local
//! replica, through the broker's own API (an internal caller), as Confluent's registry
//! keeps its state in Kafka.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use strom_broker::api::{Acks, ClientRack, FetchParams, FetchPartition, ProducePartition, ProduceRequest};
use strom_broker::{AppendOrigin, BrokerApi, BrokerError, Caller, FetchIsolation, NewTopic, TopicRef};
use strom_log::RecordBatchBuilder;

use crate::error::RegistryError;
use crate::registry::{KeyValue, LogEntry, SchemaLog};

/// Confluent's topic name, so its tools and backups recognise it.
pub const SCHEMAS_TOPIC: &str = "_schemas";
const READ_BYTES: usize = 1 << 20;
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct BrokerLog {
    api: Arc<BrokerApi>,
    caller: Caller,
}

impl BrokerLog {
    pub fn new(api: Arc<BrokerApi>) -> BrokerLog {
        BrokerLog {
            api,
            caller: Caller::internal(),
        }
    }

    /// Creates `_schemas` if it is missing: compacted, one partition, replication
    /// factor min(3, brokers).
    async fn ensure_topic(&self) -> Result<(), RegistryError> {
        if self.api.broker().topic(SCHEMAS_TOPIC).is_some() {
            return Ok(());
        }
        let brokers = self.api.brokers().len().clamp(1, 3) as i16;
        let broker = self.api.broker().clone();
        let created = tokio::task::spawn_blocking(move || {
            broker.create_topic(
                NewTopic {
                    name: SCHEMAS_TOPIC.into(),
                    num_partitions: 1,
                    replication_factor: brokers,
                    assignments: Vec::new(),
                    configs: BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]),
                },
                false,
            )
        })
        .await
        .map_err(|e| RegistryError::Store(e.to_string()))?;
        match created {
            Ok(_) | Err(BrokerError::TopicAlreadyExists(_)) => Ok(()),
            Err(e) => Err(RegistryError::Store(format!("creating {SCHEMAS_TOPIC}: {e}"))),
        }
    }
}

fn store_error(e: &BrokerError) -> RegistryError {
    match e {
        BrokerError::RequestTimedOut(why) => RegistryError::Timeout(why.clone()),
        other => RegistryError::Store(other.to_string()),
    }
}

impl SchemaLog for BrokerLog {
    fn append(&self, records: Vec<KeyValue>) -> BoxFuture<'_, Result<i64, RegistryError>> {
        Box::pin(async move {
            self.ensure_topic().await?;
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let mut batch = RecordBatchBuilder::new();
            for (key, value) in &records {
                batch.push(now_ms, Some(key), value.as_deref());
            }
            let batch = batch.build().map_err(|e| RegistryError::Store(e.to_string()))?;
            let request = ProduceRequest {
                acks: Acks::All,
                timeout: WRITE_TIMEOUT,
                transactional_id: None,
                partitions: vec![ProducePartition {
                    topic: TopicRef::Name(SCHEMAS_TOPIC.into()),
                    partition: 0,
                    records: Some(Bytes::from(batch)),
                    txn: Default::default(),
                }],
                origin: AppendOrigin::Client,
            };
            let results = self.api.produce(&self.caller, request).durable().await;
            match results.into_iter().next() {
                Some(Ok(produced)) => Ok(produced.base_offset + records.len() as i64),
                Some(Err(e)) => Err(store_error(&e)),
                None => Err(RegistryError::Store("no produce result".into())),
            }
        })
    }

    fn read(&self, offset: i64, wait: Duration) -> BoxFuture<'_, Result<Vec<LogEntry>, RegistryError>> {
        Box::pin(async move {
            if self.api.broker().topic(SCHEMAS_TOPIC).is_none() {
                // Nothing registered yet anywhere.
                tokio::time::sleep(wait).await;
                return Ok(Vec::new());
            }
            let params = FetchParams {
                replica: None,
                isolation: FetchIsolation::HighWatermark,
                min_bytes: 1,
                max_wait: wait,
                max_bytes: READ_BYTES,
                partitions: vec![FetchPartition {
                    topic: TopicRef::Name(SCHEMAS_TOPIC.into()),
                    partition: 0,
                    fetch_offset: offset,
                    max_bytes: READ_BYTES,
                    current_leader_epoch: -1,
                    last_fetched_epoch: -1,
                }],
                // Any replica serves the registry's reads, up to its high watermark.
                follower_reads: Some(ClientRack(None)),
            };
            let fetched = self.api.fetch(&self.caller, params).await;
            let Some(partition) = fetched.into_iter().next() else {
                return Ok(Vec::new());
            };
            if let Some(error) = partition.error {
                if matches!(
                    error.as_ref(),
                    BrokerError::NotLeaderOrFollower | BrokerError::UnknownTopicOrPartition
                ) {
                    tokio::time::sleep(wait).await;
                    return Ok(Vec::new());
                }
                return Err(store_error(&error));
            }
            let Some(range) = partition.records else {
                return Ok(Vec::new());
            };
            let bytes = tokio::task::spawn_blocking(move || range.read())
                .await
                .map_err(|e| RegistryError::Store(e.to_string()))?
                .map_err(|e| RegistryError::Store(e.to_string()))?;
            let mut entries = Vec::new();
            for (header, batch) in strom_log::BatchIter::new(&bytes) {
                if header.is_control() {
                    continue;
                }
                let (_, records) =
                    strom_log::record::decode_batch(batch).map_err(|e| RegistryError::Store(e.to_string()))?;
                for record in records {
                    if record.offset < offset {
                        continue;
                    }
                    // A keyless record is not the registry's: kept (and skipped when
                    // applied) so the position still moves past it.
                    let key = record.key.map(|k| k.to_vec()).unwrap_or_default();
                    entries.push((record.offset, key, record.value.map(|v| v.to_vec())));
                }
            }
            Ok(entries)
        })
    }
}
