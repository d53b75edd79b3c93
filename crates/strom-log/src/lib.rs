//! Strom's storage engine: a partition's log as a directory of segments holding Kafka
//! v2 record batches exactly as producers sent them (only the headers' offsets and
//! leader epoch, and for LogAppendTime topics the max timestamp, differ: patched in
//! copies of the headers, written ahead of the untouched records by one vectored write).
//!
//! **Architecture invariant:** this crate knows nothing about sockets, async runtimes or
//! wire protocols. The broker calls [`Log`]; everything else here serves it.
//!
//! Map: [`batch`] (the v2 header view, validation, patches), [`record`] (records,
//! decoded only for timestamp lookups, compaction and internal topics),
//! [`compression`], [`batch_builder`], [`control`] (transaction markers), [`cleaner`]
//! (compaction), [`damage`] (skipping damaged durable data), [`segment`], [`log`],
//! [`leader_epoch`] (leader epoch → start offset, persisted), [`clock`], [`constants`],
//! [`error`]; inside the crate: `offset_index` and `time_index` (on `index_file`),
//! `files` (atomic small files), `scanner` (batch boundaries in a segment file),
//! `segment_name`.
//!
//! Dependencies between files form a DAG (`scripts/check-import-cycles strom-log`).

pub mod batch;
pub mod batch_builder;
pub mod cleaner;
pub mod clock;
pub mod compression;
pub mod constants;
pub mod control;
pub mod damage;
pub mod error;
pub mod file_range;
mod files;
mod index_file;
pub mod leader_epoch;
pub mod log;
mod offset_index;
pub mod record;
mod scanner;
pub mod segment;
mod segment_name;
mod sync;
mod time_index;

pub use batch::{BatchIter, RecordBatchHeader};
pub use batch_builder::RecordBatchBuilder;
pub use cleaner::{CompactionConfig, CompactionStats};
pub use clock::{Clock, ManualClock, SystemClock};
pub use compression::Compression;
pub use control::{ControlRecordType, Marker};
pub use error::LogError;
pub use file_range::FileRange;
pub use leader_epoch::EpochEntry;
pub use log::{AppendInfo, Log, LogConfig, RangeRead, ReadResult};
