//! Loading and unloading transactions per `__transaction_state` partition, as
//! Kafka's `onElection` / `onResignation`: the latest record per transactional id
//! wins; a transaction left between Prepare and Complete is finished once loaded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::coordinator::{lock, TxnCoordinator};
use super::state_record::{self, TxnMetadata, TxnState};
use crate::coordinator_log::Replayed;
use crate::error::Result;

impl TxnCoordinator {
    /// This node now leads `__transaction_state` partition `index` at `leader_epoch`:
    /// load its transactions from the log, serve them, and finish those a crash left
    /// in a Prepare state. Until loaded, their requests answer
    /// COORDINATOR_LOAD_IN_PROGRESS. A repeated or older election is ignored. A
    /// transaction whose markers cannot all be written yet stays prepared (see
    /// [`TxnCoordinator::retry_unfinished`]).
    pub fn on_elected(&self, index: i32, leader_epoch: i32) -> Result<()> {
        if !self.log.elect(index, leader_epoch) {
            return Ok(());
        }
        let loaded = match self.load_partition(index) {
            Ok(loaded) => loaded,
            Err(e) => {
                self.log.resign(index, leader_epoch);
                return Err(e);
            }
        };
        let unfinished: Vec<String> = loaded
            .values()
            .filter(|m| {
                matches!(
                    m.state,
                    TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence
                )
            })
            .map(|m| m.transactional_id.clone())
            .collect();
        tracing::info!(
            partition = index,
            transactions = loaded.len(),
            unfinished = unfinished.len(),
            "loaded transactions"
        );
        {
            let mut txns = self.txns();
            for (id, meta) in loaded {
                txns.insert(id, Arc::new(Mutex::new(meta)));
            }
        }
        self.log.loaded(index, leader_epoch);
        for id in unfinished {
            let Some(txn) = self.txns().get(&id).cloned() else {
                continue;
            };
            let mut meta = lock(&txn);
            let commit = meta.state == TxnState::PrepareCommit;
            // A leader that cannot be reached now must not stop the load (nor the
            // broker's start): the transaction stays prepared and is retried.
            if let Err(e) = self.complete(&mut meta, commit) {
                tracing::warn!(transactional_id = %id, error = %e, "could not finish a prepared transaction yet");
            }
        }
        Ok(())
    }

    /// This node no longer leads partition `index` (as of `leader_epoch`): drop its
    /// transactions; their requests answer NOT_COORDINATOR.
    pub fn on_resigned(&self, index: i32, leader_epoch: i32) {
        if !self.log.resign(index, leader_epoch) {
            return;
        }
        let mut txns = self.txns();
        let before = txns.len();
        txns.retain(|id, _| self.log.partition_for(id) != index);
        tracing::info!(
            partition = index,
            transactions = before - txns.len(),
            "unloaded transactions"
        );
    }

    fn load_partition(&self, index: i32) -> Result<HashMap<String, TxnMetadata>> {
        let mut loaded: HashMap<String, TxnMetadata> = HashMap::new();
        self.log.for_each_record(index, |replayed| {
            let Replayed::Record { key, value, .. } = replayed else {
                return;
            };
            let Some(id) = state_record::decode_key(key) else {
                return;
            };
            match value.and_then(|v| state_record::decode_value(&id, v)) {
                Some(meta) => loaded.insert(id, meta),
                None => loaded.remove(&id),
            };
        })?;
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{Broker, BrokerConfig};
    use crate::error::BrokerError;
    use crate::group::{GroupConfig, GroupCoordinator};
    use crate::txn::{InitProducerId, NoRemoteMarkers, TxnConfig};

    #[test]
    fn a_resigned_partition_answers_not_coordinator_until_elected_again() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(BrokerConfig::new(dir.path())).unwrap();
        let groups = GroupCoordinator::open(broker.clone(), GroupConfig::default()).unwrap();
        let config = TxnConfig {
            state_topic_partitions: 2,
            ..Default::default()
        };
        let txns = TxnCoordinator::open(broker, groups, config, Arc::new(NoRemoteMarkers)).unwrap();
        let init = InitProducerId {
            transactional_id: Some("app".into()),
            transaction_timeout_ms: 60_000,
            producer_id: -1,
            producer_epoch: -1,
        };
        let producer = txns.init_producer_id(&init).unwrap();
        let index = txns.log.partition_for("app");

        txns.on_resigned(index, i32::MAX);
        assert!(matches!(txns.describe("app"), Err(BrokerError::NotCoordinator)));
        assert!(matches!(txns.init_producer_id(&init), Err(BrokerError::NotCoordinator)));
        assert!(matches!(
            txns.end_txn("app", producer, true),
            Err(BrokerError::NotCoordinator)
        ));

        txns.on_elected(index, 1).unwrap();
        let meta = txns.describe("app").unwrap().expect("reloaded from the log");
        assert_eq!(
            (meta.producer_id, meta.producer_epoch),
            (producer.producer_id, producer.producer_epoch)
        );
        assert!(!txns.log.elect(index, 1), "a repeated election does not reload");
    }
}
