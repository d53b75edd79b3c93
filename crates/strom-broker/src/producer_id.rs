//! Producer id allocation: a broker takes blocks of ids from the metadata log
//! (`ProducerIds` records, each starting where the last one ended), so ids are unique
//! across the cluster and across restarts, and hands out ids from its block.

use std::sync::{Arc, Mutex};

use strom_cluster::{ClusterError, MetadataRecord, Quorum, Refusal};

use crate::error::Result;

/// Ids taken per block.
const BLOCK_SIZE: i64 = 1000;
/// The single-node version's file holding the end of its last block (migrated).
pub const PRODUCER_IDS_FILE: &str = "producer-ids";
/// Attempts at taking a block when other brokers take blocks at the same time.
const BLOCK_ATTEMPTS: usize = 20;

#[derive(Debug, Default)]
struct Block {
    next: i64,
    end: i64,
}

pub struct ProducerIdManager {
    node_id: i32,
    quorum: Arc<Quorum>,
    block: Mutex<Block>,
}

impl ProducerIdManager {
    pub fn new(node_id: i32, quorum: Arc<Quorum>) -> ProducerIdManager {
        ProducerIdManager {
            node_id,
            quorum,
            block: Mutex::new(Block::default()),
        }
    }

    /// A producer id never handed out before, in this cluster.
    pub fn next_id(&self) -> Result<i64> {
        let mut block = crate::sync::lock(&self.block);
        if block.next >= block.end {
            *block = self.take_block()?;
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }

    fn take_block(&self) -> Result<Block> {
        for _ in 0..BLOCK_ATTEMPTS {
            let first = self.quorum.applied().image.next_producer_id();
            let record = MetadataRecord::ProducerIds {
                node_id: self.node_id,
                first,
                next: first + BLOCK_SIZE,
            };
            match self.quorum.propose(vec![record]) {
                Ok(_) => {
                    return Ok(Block {
                        next: first,
                        end: first + BLOCK_SIZE,
                    })
                }
                // Another broker took this block first: try the next one.
                Err(ClusterError::Refused(Refusal::Stale(_))) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ClusterError::NotAvailable("producer id blocks are contended; try again".into()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let quorum = Quorum::start(strom_cluster::QuorumConfig::single(1, dir.path())).unwrap();
        let first = ProducerIdManager::new(1, quorum.clone());
        assert_eq!((first.next_id().unwrap(), first.next_id().unwrap()), (0, 1));
        let second = ProducerIdManager::new(1, quorum.clone());
        assert_eq!(second.next_id().unwrap(), BLOCK_SIZE);
        quorum.shutdown();
        drop(quorum);
        let quorum = Quorum::start(strom_cluster::QuorumConfig::single(1, dir.path())).unwrap();
        quorum
            .wait_for(std::time::Duration::from_secs(10), "replay", |a| {
                a.image.next_producer_id() > 0
            })
            .unwrap();
        assert_eq!(
            ProducerIdManager::new(1, quorum.clone()).next_id().unwrap(),
            2 * BLOCK_SIZE
        );
        quorum.shutdown();
    }
}
