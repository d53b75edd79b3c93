//! openraft's storage conformance suite against the metadata log and state machine.

use openraft::testing::{StoreBuilder, Suite};
use strom_cluster::storage::{LogStore, StateMachine};
use strom_cluster::TypeConfig;
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), openraft::StorageError<u64>> {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(&dir.path().join("raft.redb"))?;
        let state_machine = StateMachine::open(dir.path())?;
        Ok((dir, log, state_machine))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}
