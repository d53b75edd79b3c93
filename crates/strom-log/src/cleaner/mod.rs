//! The log cleaner: `cleanup.policy=compact`, Kafka's LogCleaner semantics, driven by
//! [`Log::compact`](crate::Log::compact).
//!
//! # Algorithm
//!
//! One pass:
//! 1. **Offset map.** Every batch of the log below the log end offset (the active
//!    segment included) is decoded and each keyed record of a non-transactional,
//!    non-control batch sets `map[key] = offset` — the latest offset of each key. Keyed
//!    records of transactional batches only *pin* their key (see below): they may be
//!    aborted, so they never supersede anything. The map has a memory budget
//!    ([`COMPACTION_OFFSET_MAP_BYTES_MAX`](crate::constants::COMPACTION_OFFSET_MAP_BYTES_MAX)); when full it covers a prefix of the log
//!    and only segments wholly inside that prefix are cleaned in this pass.
//! 2. **Groups.** Closed segments (never the active one), oldest first, are grouped
//!    greedily into runs whose total size fits `segment.bytes` and whose offsets fit
//!    the u32 relative offsets of the indexes. Each group is rewritten as one segment
//!    named for its first base offset, so repeated passes merge shrinking segments.
//!    A lone segment in which nothing would change is not rewritten.
//! 3. **Records.** A record is kept when any of these holds: its key is null; its batch
//!    is a control or transactional batch (kept as is: transactions are not cleaned
//!    yet); it is the latest for its key and not an expired tombstone; it is younger
//!    than `min_compaction_lag_ms` (record timestamp against the log's clock); its
//!    batch does not decode (kept as is, with a warning). A tombstone (null value) that
//!    is the latest for its key is dropped once `delete_retention_ms` has passed since
//!    its segment's largest timestamp (the file's modification time when it has none)
//!    by the log's clock — the largest timestamp stands for the time the segment was
//!    closed; Kafka uses the file's modification time, which rewriting would reset and
//!    tests cannot control — and only if no older record of its key is still kept (a
//!    record kept for the lag, or one in a transactional batch): dropping it then would
//!    bring an old value back.
//! 4. **Batches.** A batch losing nothing is copied byte for byte. A batch losing some
//!    records is re-encoded with the retained records' bytes unchanged, under the
//!    original header: same `baseOffset`, `lastOffsetDelta`, `baseTimestamp`, leader
//!    epoch, attributes (so the same codec) and producer fields; new `batchLength`,
//!    `recordCount`, CRC and (CreateTime) `maxTimestamp` (`batch::rebuild_batch`). A batch
//!    losing every record is dropped, also when it carries a producer id (so the last
//!    sequence of an idempotent producer may disappear from the log).
//!
//! # Invariants
//!
//! Every retained record keeps its original offset; offsets are no longer dense (gaps
//! between batches, inside batches, whole empty segments) but strictly increase; the
//! log end offset, the log start offset and the active segment are untouched. For
//! every key, the latest record of a compacted log is the latest record written.
//!
//! # Crash safety
//!
//! A group `[B, E)` (B the first segment's base offset, E the base offset of the segment
//! after the group) is rewritten as follows; only the last two steps hold the log's
//! writer lock, so appends are not blocked by the rewrite.
//! 1. Write `B.log.cleaned`, `B.index.cleaned`, `B.timeindex.cleaned`; fsync them and
//!    the directory.
//! 2. Once per pass, before any swap: flush the log up to the end of the offset map
//!    (a record is removed only because a later one exists, which must not be lost in
//!    a crash), and make sure the persisted recovery point is at least E, so a gap
//!    left by compaction always lies below the recovery point; recovery accepts gaps
//!    only there (see `LogSegment::recover`).
//! 3. Under the writer lock, check that the group's segments are still in the log and
//!    not truncated, then **commit**: write the swap record `B.swap` holding E
//!    atomically (temporary file, fsync, rename, directory fsync).
//! 4. Delete the files of every segment in the group, rename the `.cleaned` files to
//!    their final names (the `.log` last), fsync the directory, swap the segment list.
//! 5. After the lock: delete `B.swap`, fsync the directory.
//!
//! On open (`swap::finish_interrupted_swaps`): for each `B.swap` holding E — if
//! `B.log.cleaned` exists, delete the files of every segment with a base offset in
//! `[B, E)` and rename it to `B.log`; otherwise the rename was done, and the files of
//! segments with a base offset in `(B, E)` are deleted. Either way `B`'s index files are
//! deleted and the segment is recovered (indexes rebuilt). Then the swap records and
//! every remaining `.cleaned` file are deleted. Without a swap record nothing was
//! committed and the original segments are intact. No segment other than the group's
//! has a base offset in `(B, E)`, so the rule cannot touch anything else. Readers
//! holding a replaced segment keep reading its unlinked file.

mod cleaned_group;
mod offset_map;
mod segment_group;
mod swap;
#[cfg(test)]
mod tests;

use crate::batch::RecordBatchHeader;
use crate::constants::{DELETE_RETENTION_MS_DEFAULT, MIN_COMPACTION_LAG_MS_DEFAULT};
use crate::record::{decode_record_entries, decompress_records_section, RecordEntry};

pub(crate) use cleaned_group::{clean_group, CleanedGroup};
pub(crate) use offset_map::OffsetMap;
pub(crate) use segment_group::{plan_groups, SegmentGroup};
pub(crate) use swap::{commit_swap, finish_interrupted_swaps, remove_stale_swap_records, remove_swap_record};

/// Settings of one compaction pass, named after Kafka's topic configs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactionConfig {
    /// `delete.retention.ms`: how long a tombstone that is the latest for its key stays
    /// after its segment's largest timestamp.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this (by record timestamp) are
    /// never removed.
    pub min_compaction_lag_ms: i64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            delete_retention_ms: DELETE_RETENTION_MS_DEFAULT,
            min_compaction_lag_ms: MIN_COMPACTION_LAG_MS_DEFAULT,
        }
    }
}

/// What a compaction pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Segments rewritten (a group of merged segments counts each of them).
    pub segments_cleaned: usize,
    /// Records removed.
    pub records_removed: u64,
    /// Bytes of the rewritten segments before the pass.
    pub bytes_before: u64,
    /// Bytes of their replacements.
    pub bytes_after: u64,
}

/// Decompresses and decodes a batch; `None` (with a warning) when it does not decode.
fn decode(header: &RecordBatchHeader, batch: &[u8]) -> Option<(Vec<u8>, Vec<RecordEntry>)> {
    let decoded = decompress_records_section(batch)
        .and_then(|(_, section)| decode_record_entries(header, &section).map(|entries| (section, entries)));
    match decoded {
        Ok(decoded) => Some(decoded),
        Err(error) => {
            tracing::warn!(base_offset = header.base_offset, %error, "undecodable batch kept as is by compaction");
            None
        }
    }
}

/// The clock reading and settings of one pass.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Policy {
    pub(crate) now_ms: i64,
    pub(crate) config: CompactionConfig,
}
