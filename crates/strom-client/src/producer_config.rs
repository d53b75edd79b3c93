//! Producer settings: [`ProducerConfig`] and [`Acks`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::partitioner::{DefaultPartitioner, Partitioner};
use crate::record::Compression;

/// How many acknowledgements the leader waits for before answering a Produce request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// No answer at all (acks=0): a record is "delivered" once written to the socket.
    None,
    /// The leader has appended the records (acks=1).
    Leader,
    /// Every in-sync replica has the records (acks=all / -1).
    #[default]
    All,
}

impl Acks {
    /// The `acks` field of a Produce request.
    pub(crate) fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Producer settings; the defaults are Kafka's.
///
/// ```
/// use std::time::Duration;
/// use strom_client::{Acks, Compression, ProducerConfig};
///
/// let config = ProducerConfig { compression: Compression::Zstd, linger: Duration::from_millis(20), ..Default::default() };
/// assert_eq!(config.acks, Acks::All);
/// assert_eq!(config.batch_size, 16 * 1024);
/// ```
#[derive(Clone)]
pub struct ProducerConfig {
    /// Acknowledgements to wait for.
    pub acks: Acks,
    /// How long a batch waits for more records before it is sent (`linger.ms`).
    pub linger: Duration,
    /// Target size of a batch in bytes of keys, values and headers (`batch.size`).
    pub batch_size: usize,
    /// Bytes of records waiting to be delivered before `send` blocks (`buffer.memory`).
    pub buffer_memory: usize,
    /// How long `send` waits for buffer memory (`max.block.ms`).
    pub max_block: Duration,
    /// Compression of produced batches.
    pub compression: Compression,
    /// Upper bound on the time from `send` to success or failure, retries included
    /// (`delivery.timeout.ms`).
    pub delivery_timeout: Duration,
    /// Exactly-once delivery per partition (producer id and sequence numbers). Only used with
    /// [`Acks::All`]; other acks turn it off, as Kafka's clients do when it is not set
    /// explicitly.
    pub enable_idempotence: bool,
    /// Chooses partitions for records without one.
    pub partitioner: Arc<dyn Partitioner>,
    /// Makes the producer transactional (`transactional.id`): records are sent inside
    /// transactions ([`Producer::begin_transaction`] … [`Producer::commit_transaction`]) and a
    /// newer producer with the same id fences this one. Needs idempotence.
    pub transactional_id: Option<String>,
    /// The coordinator aborts a transaction left open longer than this (`transaction.timeout.ms`).
    pub transaction_timeout: Duration,
}

impl std::fmt::Debug for ProducerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerConfig")
            .field("acks", &self.acks)
            .field("linger", &self.linger)
            .field("batch_size", &self.batch_size)
            .field("buffer_memory", &self.buffer_memory)
            .field("max_block", &self.max_block)
            .field("compression", &self.compression)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("enable_idempotence", &self.enable_idempotence)
            .field("transactional_id", &self.transactional_id)
            .field("transaction_timeout", &self.transaction_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 16 * 1024,
            buffer_memory: 32 * 1024 * 1024,
            max_block: Duration::from_secs(60),
            compression: Compression::None,
            delivery_timeout: Duration::from_secs(120),
            enable_idempotence: true,
            partitioner: Arc::new(DefaultPartitioner::default()),
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
        }
    }
}

impl ProducerConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::Config("batch_size must be positive".into()));
        }
        if self.buffer_memory < self.batch_size || self.buffer_memory > Semaphore::MAX_PERMITS {
            return Err(Error::Config(format!(
                "buffer_memory must be between batch_size ({}) and {}",
                self.batch_size,
                Semaphore::MAX_PERMITS
            )));
        }
        if self.delivery_timeout.is_zero() {
            return Err(Error::Config("delivery_timeout must be positive".into()));
        }
        if self.transactional_id.is_some() && !self.idempotent() {
            return Err(Error::Config(
                "a transactional producer needs enable_idempotence and Acks::All".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn idempotent(&self) -> bool {
        self.enable_idempotence && self.acks == Acks::All
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_are_kafkas() {
        let config = ProducerConfig::default();
        assert_eq!(config.acks, Acks::All);
        assert_eq!(config.linger, Duration::from_millis(5));
        assert_eq!(config.batch_size, 16 * 1024);
        assert_eq!(config.buffer_memory, 32 * 1024 * 1024);
        assert_eq!(config.max_block, Duration::from_secs(60));
        assert_eq!(config.compression, Compression::None);
        assert_eq!(config.delivery_timeout, Duration::from_secs(120));
        assert!(config.enable_idempotence && config.idempotent());
        assert!(!ProducerConfig {
            acks: Acks::Leader,
            ..Default::default()
        }
        .idempotent());
        assert!(config.validate().is_ok());
        assert!(ProducerConfig {
            batch_size: 0,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert_eq!((Acks::None.wire(), Acks::Leader.wire(), Acks::All.wire()), (0, 1, -1));
    }
}
