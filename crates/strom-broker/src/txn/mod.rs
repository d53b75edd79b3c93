//! Transactions: the transaction coordinator and the records it keeps in the
//! internal compacted topic `__transaction_state` (Kafka's formats). Markers that
//! end a transaction are control batches written into every partition it touched;
//! the partitions' producer state tracks open and aborted transactions from them.
//! Markers for partitions led by other nodes are sent to their leader, and a leader
//! asks the coordinator before a transaction opens in its partition (`verify`).

pub(crate) mod coordinator;
mod listing;
mod loader;
mod markers;
mod remote;
pub(crate) mod state_record;
mod verify;

pub use crate::coordinator_log::ProducerIdAndEpoch;
pub use coordinator::{InitProducerId, TxnConfig, TxnCoordinator, TRANSACTION_STATE_TOPIC};
pub use listing::{TxnListFilter, TxnListing};
pub use remote::{MarkerRequest, MarkerResults, NoRemoteMarkers, RemoteMarkers};
pub use state_record::{TxnMetadata, TxnState};
