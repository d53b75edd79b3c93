//! Durable storage of the metadata quorum, under `<data dir>/__cluster_metadata-0/`:
//! - `raft.redb`: the log entries, the vote, the committed log id and the last purged
//!   log id ([`LogStore`]); every write is one redb transaction committed with fsync
//!   before openraft hears of it (the vote before it is answered, entries before the
//!   append is acknowledged).
//! - `snapshot-<index>.json`: the latest snapshot of the metadata image with the last
//!   applied log id and membership, written atomically ([`StateMachine`]).
//!
//! The state machine is the in-memory image; a restart loads the snapshot and openraft
//! re-applies the committed entries after it. So the image, the last applied log id
//! and the membership always change together.

// openraft's traits return its `StorageError` (large); the helpers return the same type.
#![allow(clippy::result_large_err)]

mod log_store;
mod state_machine;

pub use log_store::LogStore;
pub use state_machine::{Applied, StateMachine};

use crate::types::StorageError;

fn io_error(
    what: openraft::ErrorSubject<u64>,
    verb: openraft::ErrorVerb,
    e: impl std::error::Error + 'static,
) -> StorageError {
    openraft::StorageIOError::new(what, verb, openraft::AnyError::new(&e)).into()
}
