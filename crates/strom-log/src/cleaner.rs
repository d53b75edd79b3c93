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
//!    ([`COMPACTION_OFFSET_MAP_BYTES_MAX`]); when full it covers a prefix of the log
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
//!    `recordCount`, CRC and (CreateTime) `maxTimestamp` ([`rebuild_batch`]). A batch
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
//!    only there (see [`LogSegment::recover`]).
//! 3. Under the writer lock, check that the group's segments are still in the log and
//!    not truncated, then **commit**: write the swap record `B.swap` holding E
//!    atomically (temporary file, fsync, rename, directory fsync).
//! 4. Delete the files of every segment in the group, rename the `.cleaned` files to
//!    their final names (the `.log` last), fsync the directory, swap the segment list.
//! 5. After the lock: delete `B.swap`, fsync the directory.
//!
//! On open ([`finish_interrupted_swaps`]): for each `B.swap` holding E — if
//! `B.log.cleaned` exists, delete the files of every segment with a base offset in
//! `[B, E)` and rename it to `B.log`; otherwise the rename was done, and the files of
//! segments with a base offset in `(B, E)` are deleted. Either way `B`'s index files are
//! deleted and the segment is recovered (indexes rebuilt). Then the swap records and
//! every remaining `.cleaned` file are deleted. Without a swap record nothing was
//! committed and the original segments are intact. No segment other than the group's
//! has a base offset in `(B, E)`, so the rule cannot touch anything else. Readers
//! holding a replaced segment keep reading its unlinked file.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::batch::{rebuild_batch, RecordBatchHeader};
use crate::constants::{
    CLEANED_FILE_SUFFIX, COMPACTION_OFFSET_MAP_ENTRY_OVERHEAD_BYTES, COMPACTION_WRITE_BUFFER_BYTES,
    DELETE_RETENTION_MS_DEFAULT, LOG_FILE_SUFFIX, MIN_COMPACTION_LAG_MS_DEFAULT, OFFSET_INDEX_FILE_SUFFIX,
    SWAP_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX,
};
use crate::error::LogError;
use crate::log::{read_number_file, sync_directory, write_number_file};
use crate::record::{decode_record_entries, decompress_records_section, RecordEntry};
use crate::segment::{parse_segment_file_name, segment_file_name, LogSegment};

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

#[derive(Clone, Copy, Debug)]
struct KeyState {
    /// Latest offset of a non-transactional record with this key, `i64::MIN` if none.
    latest: i64,
    /// Lowest offset of a record with this key that this pass keeps although it is not
    /// the latest (transactional, or younger than the lag); `i64::MAX` if none.
    kept_below: i64,
}

/// Key → latest offset over `[log start, end_offset)`.
pub(crate) struct OffsetMap {
    keys: HashMap<Vec<u8>, KeyState>,
    bytes: usize,
    end_offset: i64,
}

impl OffsetMap {
    /// Scans `segments` below `end_offset`, stopping early (and lowering its end) once
    /// the map holds more than `bytes_max` bytes.
    pub(crate) fn build(
        segments: &[Arc<LogSegment>],
        end_offset: i64,
        bytes_max: usize,
    ) -> Result<OffsetMap, LogError> {
        let mut map = OffsetMap {
            keys: HashMap::new(),
            bytes: 0,
            end_offset,
        };
        let mut full = false;
        for segment in segments {
            if full || segment.base_offset() >= end_offset {
                break;
            }
            segment.for_each_batch(|_, batch| {
                let header = RecordBatchHeader::parse(batch)?;
                if header.base_offset >= end_offset {
                    return Ok(false);
                }
                if !header.is_control() {
                    map.add_batch(&header, batch);
                }
                if map.bytes > bytes_max {
                    tracing::info!(
                        end = header.next_offset(),
                        "compaction offset map full, cleaning a prefix"
                    );
                    map.end_offset = header.next_offset();
                    full = true;
                    return Ok(false);
                }
                Ok(true)
            })?;
        }
        Ok(map)
    }

    fn add_batch(&mut self, header: &RecordBatchHeader, batch: &[u8]) {
        let Some((section, entries)) = decode(header, batch) else {
            return;
        };
        for entry in &entries {
            let Some(key) = entry.key.clone().and_then(|range| section.get(range)) else {
                continue;
            };
            let state = match self.keys.get_mut(key) {
                Some(state) => state,
                None => {
                    self.bytes += key.len() + COMPACTION_OFFSET_MAP_ENTRY_OVERHEAD_BYTES;
                    self.keys.entry(key.to_vec()).or_insert(KeyState {
                        latest: i64::MIN,
                        kept_below: i64::MAX,
                    })
                }
            };
            if header.is_transactional() {
                state.kept_below = state.kept_below.min(entry.offset);
            } else {
                state.latest = entry.offset;
            }
        }
    }

    /// The map covers offsets below this.
    pub(crate) fn end_offset(&self) -> i64 {
        self.end_offset
    }

    /// Decides one keyed record of a cleanable batch (see the module doc, step 3).
    fn keep(&mut self, key: &[u8], entry: &RecordEntry, policy: &Policy, tombstones_expired: bool) -> bool {
        let Some(state) = self.keys.get_mut(key) else {
            return true;
        };
        let young = policy.now_ms.saturating_sub(entry.timestamp) < policy.config.min_compaction_lag_ms;
        if entry.offset < state.latest {
            if young {
                state.kept_below = state.kept_below.min(entry.offset);
            }
            return young;
        }
        if entry.offset > state.latest || entry.value.is_some() {
            return true;
        }
        !(tombstones_expired && !young && state.kept_below > entry.offset)
    }
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

/// What cleaning does to one batch.
enum BatchOutcome {
    Unchanged,
    /// Re-encoded bytes, or empty when only asked whether the batch changes.
    Rewritten(Vec<u8>),
    Removed,
}

/// Cleans one batch; `encode` false only classifies it. Returns the outcome and the
/// number of records removed.
fn clean_batch(
    batch: &[u8],
    map: &mut OffsetMap,
    policy: &Policy,
    tombstones_expired: bool,
    encode: bool,
) -> Result<(BatchOutcome, u64), LogError> {
    let header = RecordBatchHeader::parse(batch)?;
    if header.is_control() || header.is_transactional() || header.base_offset >= map.end_offset {
        return Ok((BatchOutcome::Unchanged, 0));
    }
    let Some((section, entries)) = decode(&header, batch) else {
        return Ok((BatchOutcome::Unchanged, 0));
    };
    let kept: Vec<&RecordEntry> = entries
        .iter()
        .filter(|entry| match entry.key.clone().and_then(|range| section.get(range)) {
            None => true,
            Some(key) => map.keep(key, entry, policy, tombstones_expired),
        })
        .collect();
    let removed = (entries.len() - kept.len()) as u64;
    if removed == 0 {
        return Ok((BatchOutcome::Unchanged, 0));
    }
    if kept.is_empty() {
        return Ok((BatchOutcome::Removed, removed));
    }
    if !encode {
        return Ok((BatchOutcome::Rewritten(Vec::new()), removed));
    }
    let mut records = Vec::with_capacity(section.len());
    for entry in &kept {
        records.extend_from_slice(section.get(entry.bytes.clone()).unwrap_or(&[]));
    }
    let max_timestamp = kept
        .iter()
        .map(|entry| entry.timestamp)
        .max()
        .unwrap_or(header.max_timestamp);
    let compressed = header.compression()?.compress(&records)?;
    // `kept` is non-empty and no longer than recordCount, an i32.
    let count = kept.len() as i32;
    let rebuilt = rebuild_batch(batch, &compressed, count, max_timestamp)?;
    Ok((BatchOutcome::Rewritten(rebuilt), removed))
}

/// Consecutive closed segments rewritten into one, covering `[first base, end_offset)`.
#[derive(Debug)]
pub(crate) struct SegmentGroup {
    pub(crate) segments: Vec<Arc<LogSegment>>,
    /// Base offset of the segment following the group.
    pub(crate) end_offset: i64,
}

impl SegmentGroup {
    pub(crate) fn base_offset(&self) -> i64 {
        self.segments.first().map_or(self.end_offset, |s| s.base_offset())
    }

    fn size(&self) -> u64 {
        self.segments.iter().map(|s| s.size()).sum()
    }
}

/// Groups the closed segments of `segments` (all but the last) that end at or below
/// `end_offset` (see the module doc, step 2).
pub(crate) fn plan_groups(segments: &[Arc<LogSegment>], segment_bytes: u64, end_offset: i64) -> Vec<SegmentGroup> {
    let mut groups: Vec<SegmentGroup> = Vec::new();
    for pair in segments.windows(2) {
        let [segment, next] = pair else { continue };
        let end = next.base_offset();
        if end > end_offset {
            break;
        }
        if let Some(group) = groups.last_mut() {
            let fits_bytes = group.size() + segment.size() <= segment_bytes;
            let fits_offsets = end - 1 - group.base_offset() <= i64::from(u32::MAX);
            let adjacent = group.end_offset == segment.base_offset();
            if fits_bytes && fits_offsets && adjacent {
                group.segments.push(segment.clone());
                group.end_offset = end;
                continue;
            }
        }
        groups.push(SegmentGroup {
            segments: vec![segment.clone()],
            end_offset: end,
        });
    }
    groups
}

/// A group's replacement, written under the `.cleaned` names and fsynced.
pub(crate) struct CleanedGroup {
    pub(crate) segment: LogSegment,
    pub(crate) bytes_before: u64,
    pub(crate) records_removed: u64,
}

/// Whether tombstones of `segment` have outlived `delete.retention.ms`.
fn tombstones_expired(segment: &LogSegment, policy: &Policy) -> Result<bool, LogError> {
    let closed_ms = match segment.max_timestamp() {
        Some(max) if max.timestamp >= 0 => max.timestamp,
        _ => segment.last_modified_ms()?,
    };
    Ok(policy.now_ms.saturating_sub(closed_ms) > policy.config.delete_retention_ms)
}

/// True when cleaning a lone segment would change nothing (also applies the pins of
/// kept records to the map, as cleaning would).
fn unchanged(segment: &LogSegment, map: &mut OffsetMap, policy: &Policy) -> Result<bool, LogError> {
    let expired = tombstones_expired(segment, policy)?;
    let mut changed = false;
    segment.for_each_batch(|_, batch| {
        let (outcome, _) = clean_batch(batch, map, policy, expired, false)?;
        changed = !matches!(outcome, BatchOutcome::Unchanged);
        Ok(!changed)
    })?;
    Ok(!changed)
}

/// Writes the cleaned copy of `group` (module doc, step 1), or returns `None` when the
/// group is one segment that cleaning would not change.
pub(crate) fn clean_group(
    dir: &Path,
    group: &SegmentGroup,
    map: &mut OffsetMap,
    policy: &Policy,
    index_interval_bytes: u32,
) -> Result<Option<CleanedGroup>, LogError> {
    if let [segment] = group.segments.as_slice() {
        if unchanged(segment, map, policy)? {
            return Ok(None);
        }
    }
    let cleaned = LogSegment::create_cleaned(dir, group.base_offset(), policy.now_ms)?;
    match write_group(&cleaned, group, map, policy, index_interval_bytes) {
        Ok(records_removed) => {
            sync_directory(dir)?;
            Ok(Some(CleanedGroup {
                segment: cleaned,
                bytes_before: group.size(),
                records_removed,
            }))
        }
        Err(error) => {
            cleaned.delete()?;
            Err(error)
        }
    }
}

fn write_group(
    cleaned: &LogSegment,
    group: &SegmentGroup,
    map: &mut OffsetMap,
    policy: &Policy,
    index_interval_bytes: u32,
) -> Result<u64, LogError> {
    let mut buffer = Vec::new();
    let mut removed = 0u64;
    for segment in &group.segments {
        let expired = tombstones_expired(segment, policy)?;
        segment.for_each_batch(|_, batch| {
            let (outcome, lost) = clean_batch(batch, map, policy, expired, true)?;
            removed += lost;
            match outcome {
                BatchOutcome::Unchanged => buffer.extend_from_slice(batch),
                BatchOutcome::Rewritten(bytes) => buffer.extend_from_slice(&bytes),
                BatchOutcome::Removed => {}
            }
            if buffer.len() >= COMPACTION_WRITE_BUFFER_BYTES {
                cleaned.append(&buffer, index_interval_bytes)?;
                buffer.clear();
            }
            Ok(true)
        })?;
    }
    if !buffer.is_empty() {
        cleaned.append(&buffer, index_interval_bytes)?;
    }
    cleaned.seal()?;
    cleaned.flush()?;
    Ok(removed)
}

fn swap_record_name(base_offset: i64) -> String {
    segment_file_name(base_offset, SWAP_FILE_SUFFIX)
}

fn cleaned_name(base_offset: i64, suffix: &str) -> String {
    format!("{}.{CLEANED_FILE_SUFFIX}", segment_file_name(base_offset, suffix))
}

fn remove_if_present(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Commits a cleaned group and puts its files in place (module doc, steps 3 and 4).
/// Caller holds the writer lock and has checked the group is still in the log.
/// Returns the replacement segment, opened under its final names.
pub(crate) fn commit_swap(
    dir: &Path,
    cleaned: CleanedGroup,
    group: &SegmentGroup,
    now_ms: i64,
    index_interval_bytes: u32,
) -> Result<LogSegment, LogError> {
    let base = group.base_offset();
    drop(cleaned.segment);
    write_number_file(dir, &swap_record_name(base), group.end_offset)?;
    for segment in &group.segments {
        segment.delete()?;
    }
    for suffix in [OFFSET_INDEX_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX, LOG_FILE_SUFFIX] {
        std::fs::rename(
            dir.join(cleaned_name(base, suffix)),
            dir.join(segment_file_name(base, suffix)),
        )?;
    }
    sync_directory(dir)?;
    LogSegment::load(dir, base, now_ms, index_interval_bytes)
}

/// Deletes the swap record of a committed group (module doc, step 5).
pub(crate) fn remove_swap_record(dir: &Path, base_offset: i64) -> Result<(), LogError> {
    remove_if_present(&dir.join(swap_record_name(base_offset)))?;
    sync_directory(dir)
}

fn swap_records(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(base) = name.to_str().and_then(|n| parse_segment_file_name(n, SWAP_FILE_SUFFIX)) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Before a pass on an open log: deletes swap records of swaps that completed (their
/// removal failed). Fails when a swap did not complete: only reopening the log
/// finishes it.
pub(crate) fn remove_stale_swap_records(dir: &Path) -> Result<(), LogError> {
    for base in swap_records(dir)? {
        if dir.join(cleaned_name(base, LOG_FILE_SUFFIX)).exists() {
            return Err(LogError::Io(std::io::Error::other(format!(
                "interrupted compaction swap at {base}: reopen the log to finish it"
            ))));
        }
        remove_swap_record(dir, base)?;
    }
    Ok(())
}

/// On open: finishes committed swaps and deletes uncommitted `.cleaned` files (module
/// doc, "On open"). Returns the base offsets of segments that must be recovered.
pub(crate) fn finish_interrupted_swaps(dir: &Path) -> Result<Vec<i64>, LogError> {
    let records = swap_records(dir)?;
    let mut recover = Vec::new();
    if !records.is_empty() {
        let mut segment_bases = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            if let Some(base) = name.to_str().and_then(|n| parse_segment_file_name(n, LOG_FILE_SUFFIX)) {
                segment_bases.push(base);
            }
        }
        for &base in &records {
            let Some(end) = read_number_file(&dir.join(swap_record_name(base))) else {
                tracing::warn!(base, "unreadable compaction swap record, ignoring it");
                continue;
            };
            let cleaned_log = dir.join(cleaned_name(base, LOG_FILE_SUFFIX));
            let pending = cleaned_log.exists();
            for &old in segment_bases.iter().filter(|b| **b > base && **b < end) {
                for suffix in [LOG_FILE_SUFFIX, OFFSET_INDEX_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX] {
                    remove_if_present(&dir.join(segment_file_name(old, suffix)))?;
                }
            }
            for suffix in [OFFSET_INDEX_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX] {
                remove_if_present(&dir.join(segment_file_name(base, suffix)))?;
            }
            if pending {
                std::fs::rename(&cleaned_log, dir.join(segment_file_name(base, LOG_FILE_SUFFIX)))?;
            }
            tracing::warn!(base, end, pending, "finished an interrupted compaction swap");
            recover.push(base);
        }
        sync_directory(dir)?;
        for &base in &records {
            remove_if_present(&dir.join(swap_record_name(base)))?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let is_cleaned = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.ends_with(&format!(".{CLEANED_FILE_SUFFIX}")));
        if is_cleaned {
            std::fs::remove_file(entry.path())?;
        }
    }
    sync_directory(dir)?;
    Ok(recover)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{validate, validate_stored, BatchIter};
    use crate::batch_builder::RecordBatchBuilder;
    use crate::clock::ManualClock;
    use crate::compression::Compression;
    use crate::log::{Log, LogConfig};
    use std::collections::BTreeMap;

    type Records = BTreeMap<i64, (Vec<u8>, Option<Vec<u8>>)>;

    const NOW_MS: i64 = 1_000_000;

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 100_000,
            index_interval_bytes: 200,
            ..LogConfig::default()
        }
    }

    fn open(dir: &Path, clock: &Arc<ManualClock>) -> Log {
        Log::open(dir, config(), clock.clone()).unwrap()
    }

    fn append(log: &Log, codec: Compression, records: &[(&str, Option<&str>)]) -> i64 {
        let mut builder = RecordBatchBuilder::new().compression(codec);
        for (key, value) in records {
            builder.push(NOW_MS, Some(key.as_bytes()), value.map(str::as_bytes));
        }
        log.append(&builder.build().unwrap()).unwrap().base_offset
    }

    /// Every record readable from the log start, by offset; checks batch validity and
    /// strictly increasing offsets along the way.
    fn read_all(log: &Log) -> Records {
        let mut out = Records::new();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let read = log.read(offset, 1 << 20, i64::MAX).unwrap().records;
            assert!(!read.is_empty(), "nothing at {offset}");
            for (header, batch) in BatchIter::new(&read) {
                validate_stored(batch).unwrap();
                assert!(header.last_offset() >= offset);
                let (header, section) = decompress_records_section(batch).unwrap();
                for entry in decode_record_entries(&header, &section).unwrap() {
                    assert!(out.keys().next_back().is_none_or(|last| *last < entry.offset));
                    let key = section[entry.key.clone().unwrap()].to_vec();
                    let value = entry.value.clone().map(|range| section[range].to_vec());
                    out.insert(entry.offset, (key, value));
                }
                offset = header.next_offset();
            }
        }
        out
    }

    fn expect(entries: &[(i64, &str, Option<&str>)]) -> Records {
        entries
            .iter()
            .map(|(offset, key, value)| (*offset, (key.as_bytes().to_vec(), value.map(|v| v.as_bytes().to_vec()))))
            .collect()
    }

    fn keep_everything_young() -> CompactionConfig {
        CompactionConfig {
            delete_retention_ms: 1000,
            min_compaction_lag_ms: 0,
        }
    }

    #[test]
    fn latest_value_per_key_survives_at_its_original_offset() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(NOW_MS));
        let log = open(dir.path(), &clock);
        append(&log, Compression::None, &[("a", Some("a1")), ("b", Some("b1"))]); // 0, 1
        append(&log, Compression::None, &[("c", Some("c1"))]); // 2
        log.roll_now().unwrap();
        append(&log, Compression::None, &[("a", Some("a2")), ("d", Some("d1"))]); // 3, 4
        log.roll_now().unwrap();
        append(&log, Compression::None, &[("b", Some("b2"))]); // 5, active
        let before = log.size_bytes();
        let stats = log.compact(keep_everything_young()).unwrap();
        assert_eq!(stats.records_removed, 2);
        assert_eq!(stats.segments_cleaned, 2);
        assert!(stats.bytes_after < stats.bytes_before);
        assert!(log.size_bytes() < before);
        // The two closed segments were merged into one.
        assert_eq!(log.segment_count(), 2);
        assert_eq!(log.log_end_offset(), 6);
        assert_eq!(log.log_start_offset(), 0);
        assert_eq!(
            read_all(&log),
            expect(&[
                (2, "c", Some("c1")),
                (3, "a", Some("a2")),
                (4, "d", Some("d1")),
                (5, "b", Some("b2"))
            ])
        );
        // A second pass finds nothing to do.
        assert_eq!(
            log.compact(keep_everything_young()).unwrap(),
            CompactionStats::default()
        );
        assert_eq!(append(&log, Compression::None, &[("e", Some("e1"))]), 6);
    }

    #[test]
    fn tombstones_stay_until_delete_retention_has_passed() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(NOW_MS));
        let log = open(dir.path(), &clock);
        append(&log, Compression::None, &[("a", Some("a1")), ("b", Some("b1"))]);
        append(&log, Compression::None, &[("a", None)]); // 2
        log.roll_now().unwrap();
        append(&log, Compression::None, &[("c", Some("c1"))]); // 3, active
        log.compact(keep_everything_young()).unwrap();
        assert_eq!(
            read_all(&log),
            expect(&[(1, "b", Some("b1")), (2, "a", None), (3, "c", Some("c1"))])
        );
        clock.advance_ms(1000);
        assert_eq!(log.compact(keep_everything_young()).unwrap().records_removed, 0);
        clock.advance_ms(1);
        let stats = log.compact(keep_everything_young()).unwrap();
        assert_eq!(stats.records_removed, 1);
        assert_eq!(read_all(&log), expect(&[(1, "b", Some("b1")), (3, "c", Some("c1"))]));
        assert_eq!(log.log_end_offset(), 4);
    }

    #[test]
    fn min_compaction_lag_protects_young_records_and_their_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(NOW_MS));
        let log = open(dir.path(), &clock);
        append(&log, Compression::None, &[("a", Some("a1"))]);
        append(&log, Compression::None, &[("a", None)]);
        log.roll_now().unwrap();
        append(&log, Compression::None, &[("z", Some("z1"))]);
        clock.advance_ms(5000);
        let config = CompactionConfig {
            delete_retention_ms: 0,
            min_compaction_lag_ms: 10_000,
        };
        assert_eq!(log.compact(config).unwrap().records_removed, 0);
        assert_eq!(read_all(&log).len(), 3);
        clock.advance_ms(5000);
        assert_eq!(log.compact(config).unwrap().records_removed, 2);
        assert_eq!(read_all(&log), expect(&[(2, "z", Some("z1"))]));
    }

    #[test]
    fn compressed_batches_are_rewritten_with_their_codec_and_range() {
        for codec in [
            Compression::Gzip,
            Compression::Zstd,
            Compression::Snappy,
            Compression::Lz4,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let clock = Arc::new(ManualClock::new(NOW_MS));
            let log = open(dir.path(), &clock);
            append(
                &log,
                codec,
                &[
                    ("a", Some("a1")),
                    ("b", Some("b1")),
                    ("a", Some("a2")),
                    ("c", Some("c1")),
                ],
            );
            append(&log, codec, &[("b", Some("b2")), ("d", Some("d1"))]); // 4, 5
            log.roll_now().unwrap();
            append(&log, Compression::None, &[("d", Some("d2"))]); // 6
            assert_eq!(log.compact(keep_everything_young()).unwrap().records_removed, 3);
            let read = log.read(0, 1 << 20, i64::MAX).unwrap().records;
            let headers: Vec<_> = BatchIter::new(&read).map(|(h, b)| (h, b.to_vec())).collect();
            assert_eq!(headers.len(), 2, "a read stops at the end of a segment");
            let (first, bytes) = &headers[0];
            assert_eq!(
                (first.base_offset, first.last_offset_delta, first.record_count),
                (0, 3, 2)
            );
            assert_eq!(first.compression().unwrap(), codec);
            assert!(
                validate(bytes).is_err(),
                "{codec:?}: a sparse batch is not a producer batch"
            );
            assert_eq!(first.max_timestamp, NOW_MS);
            let (second, _) = &headers[1];
            assert_eq!(
                (second.base_offset, second.last_offset_delta, second.record_count),
                (4, 1, 1)
            );
            assert_eq!(
                read_all(&log),
                expect(&[
                    (2, "a", Some("a2")),
                    (3, "c", Some("c1")),
                    (4, "b", Some("b2")),
                    (6, "d", Some("d2"))
                ]),
                "{codec:?}"
            );
            assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((2, NOW_MS)));
        }
    }

    #[test]
    fn emptied_batches_and_segments_disappear_and_reads_skip_the_gap() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(NOW_MS));
        let log = open(dir.path(), &clock);
        append(&log, Compression::None, &[("a", Some("a1"))]); // 0
        append(&log, Compression::None, &[("b", Some("b1"))]); // 1
        log.roll_now().unwrap();
        append(&log, Compression::None, &[("a", Some("a2")), ("b", Some("b2"))]); // 2, 3
        log.roll_now().unwrap();
        append(&log, Compression::None, &[("a", Some("a3"))]); // 4, active
        let stats = log.compact(keep_everything_young()).unwrap();
        assert_eq!(stats.records_removed, 3);
        for offset in 0..=2 {
            let read = log.read(offset, 1, i64::MAX).unwrap();
            let header = validate_stored(&read.records).unwrap();
            assert_eq!((header.base_offset, header.record_count), (2, 1), "read at {offset}");
        }
        assert_eq!(read_all(&log), expect(&[(3, "b", Some("b2")), (4, "a", Some("a3"))]));
        assert_eq!(log.offset_for_timestamp(NOW_MS).unwrap(), Some((3, NOW_MS)));
        // A segment whose every record went stays as an empty segment holding its range.
        append(&log, Compression::None, &[("b", Some("b3"))]); // 5
        log.roll_now().unwrap();
        log.compact(keep_everything_young()).unwrap();
        assert_eq!(read_all(&log), expect(&[(4, "a", Some("a3")), (5, "b", Some("b3"))]));
        assert_eq!(
            log.read(0, 1, i64::MAX).unwrap().records.len(),
            log.read(4, 1, i64::MAX).unwrap().records.len()
        );
        assert_eq!(log.log_end_offset(), 6);
        // Retention and compaction share the segment list.
        log.set_config(LogConfig {
            retention_ms: 10,
            ..config()
        });
        clock.advance_ms(100);
        assert!(log.apply_retention().unwrap() > 0);
        assert_eq!(log.log_end_offset(), 6);
        assert_eq!(
            log.compact(keep_everything_young()).unwrap(),
            CompactionStats::default()
        );
    }

    #[test]
    fn reopening_after_compaction_keeps_records_and_log_end_offset() {
        for clean in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let clock = Arc::new(ManualClock::new(NOW_MS));
            let log = open(dir.path(), &clock);
            for round in 0..30 {
                let value = format!("v{round}");
                append(&log, Compression::Gzip, &[("k1", Some(&value)), ("k2", Some(&value))]);
                append(&log, Compression::None, &[(&format!("u{round}"), Some("once"))]);
                if round % 7 == 6 {
                    log.roll_now().unwrap();
                }
            }
            append(&log, Compression::None, &[("k1", None)]);
            log.roll_now().unwrap();
            append(&log, Compression::None, &[("k2", Some("last"))]);
            assert!(log.compact(keep_everything_young()).unwrap().records_removed > 50);
            let records = read_all(&log);
            let end = log.log_end_offset();
            if clean {
                log.close().unwrap();
            }
            drop(log);
            let log = open(dir.path(), &clock);
            assert_eq!(log.log_end_offset(), end, "clean {clean}");
            assert_eq!(read_all(&log), records, "clean {clean}");
            assert_eq!(append(&log, Compression::None, &[("k3", Some("x"))]), end);
        }
    }

    /// Writes the cleaned copy of the first closed segment and returns the log's
    /// records before and after cleaning it, without swapping it in.
    fn prepare_swap(dir: &Path, clock: &Arc<ManualClock>) -> (Records, Records, SegmentGroup) {
        let log = open(dir, clock);
        append(&log, Compression::None, &[("a", Some("a1")), ("b", Some("b1"))]);
        log.roll_now().unwrap();
        append(&log, Compression::None, &[("a", Some("a2"))]); // 2
        log.roll_now().unwrap();
        append(&log, Compression::None, &[("b", Some("b2"))]); // 3
        log.flush().unwrap();
        let before = read_all(&log);
        let mut after = before.clone();
        after.remove(&0);
        after.remove(&1);
        drop(log);
        // Reopen only the segment files needed to build the cleaned copy.
        let first = Arc::new(LogSegment::load(dir, 0, NOW_MS, 200).unwrap());
        let second = Arc::new(LogSegment::load(dir, 2, NOW_MS, 200).unwrap());
        let third = Arc::new(LogSegment::load(dir, 3, NOW_MS, 200).unwrap());
        let all = vec![first, second, third];
        let mut map = OffsetMap::build(&all, 4, usize::MAX).unwrap();
        let mut groups = plan_groups(&all, 100_000, 4);
        assert_eq!(groups.len(), 1);
        let group = groups.remove(0);
        let policy = Policy {
            now_ms: NOW_MS,
            config: keep_everything_young(),
        };
        let cleaned = clean_group(dir, &group, &mut map, &policy, 200).unwrap().unwrap();
        drop(cleaned);
        (before, after, group)
    }

    #[test]
    fn open_discards_uncommitted_cleaned_files() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(NOW_MS));
        let (before, _, _) = prepare_swap(dir.path(), &clock);
        assert!(dir.path().join(cleaned_name(0, LOG_FILE_SUFFIX)).exists());
        let log = open(dir.path(), &clock);
        assert_eq!(read_all(&log), before);
        assert!(!dir.path().join(cleaned_name(0, LOG_FILE_SUFFIX)).exists());
        assert_eq!(log.segment_count(), 3);
    }

    #[test]
    fn open_finishes_a_committed_swap_at_any_step() {
        for step in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let clock = Arc::new(ManualClock::new(NOW_MS));
            let (_, after, group) = prepare_swap(dir.path(), &clock);
            write_number_file(dir.path(), &swap_record_name(0), group.end_offset).unwrap();
            if step >= 1 {
                // Old files deleted, some indexes renamed.
                for segment in &group.segments {
                    segment.delete().unwrap();
                }
                std::fs::rename(
                    dir.path().join(cleaned_name(0, OFFSET_INDEX_FILE_SUFFIX)),
                    dir.path().join(segment_file_name(0, OFFSET_INDEX_FILE_SUFFIX)),
                )
                .unwrap();
            }
            if step >= 2 {
                std::fs::rename(
                    dir.path().join(cleaned_name(0, LOG_FILE_SUFFIX)),
                    dir.path().join(segment_file_name(0, LOG_FILE_SUFFIX)),
                )
                .unwrap();
            }
            drop(group);
            let log = open(dir.path(), &clock);
            assert_eq!(read_all(&log), after, "step {step}");
            assert_eq!(log.segment_count(), 2, "step {step}");
            assert_eq!(log.log_end_offset(), 4);
            assert!(!dir.path().join(swap_record_name(0)).exists());
            drop(log);
            let names: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert!(names.iter().all(|n| !n.ends_with(CLEANED_FILE_SUFFIX)), "{names:?}");
        }
    }

    #[test]
    fn a_pass_racing_a_truncation_stops() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(NOW_MS));
        let log = open(dir.path(), &clock);
        append(&log, Compression::None, &[("a", Some("a1"))]);
        log.roll_now().unwrap();
        append(&log, Compression::None, &[("a", Some("a2"))]);
        let segments = log_segments(&log);
        let mut map = OffsetMap::build(&segments, 2, usize::MAX).unwrap();
        let groups = plan_groups(&segments, 100_000, map.end_offset());
        let policy = Policy {
            now_ms: NOW_MS,
            config: keep_everything_young(),
        };
        let cleaned = clean_group(dir.path(), &groups[0], &mut map, &policy, 200)
            .unwrap()
            .unwrap();
        assert!(dir.path().join(cleaned_name(0, LOG_FILE_SUFFIX)).exists());
        log.truncate_to(1).unwrap();
        assert_eq!(log.swap_in_cleaned_for_tests(&groups[0], cleaned, 0).unwrap(), None);
        assert!(!dir.path().join(cleaned_name(0, LOG_FILE_SUFFIX)).exists());
        assert_eq!(read_all(&log), expect(&[(0, "a", Some("a1"))]));
    }

    fn log_segments(log: &Log) -> Vec<Arc<LogSegment>> {
        log.segments_for_tests()
    }

    #[test]
    fn undecodable_batches_are_kept_and_the_map_respects_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(NOW_MS));
        let log = open(dir.path(), &clock);
        // A batch with a valid CRC whose records section is garbage.
        let mut builder = RecordBatchBuilder::new();
        builder.push(NOW_MS, Some(b"a"), Some(b"a1"));
        let mut garbage = builder.build().unwrap();
        garbage[crate::constants::BATCH_HEADER_SIZE] = 0x7e; // record length 63: past the end
        let crc = crate::batch::compute_crc(&garbage).unwrap();
        garbage[17..21].copy_from_slice(&crc.to_be_bytes());
        log.append(&garbage).unwrap();
        append(&log, Compression::None, &[("a", Some("a2"))]);
        log.roll_now().unwrap();
        append(&log, Compression::None, &[("a", Some("a3"))]);
        assert_eq!(log.compact(keep_everything_young()).unwrap().records_removed, 1);
        assert_eq!(log.read(0, 1, i64::MAX).unwrap().records.len(), garbage.len());
        // A map with no room stops after the first keyed batch (the one at 2, since
        // the batch at 1 is gone); only segments wholly below its end are cleaned.
        let segments = log_segments(&log);
        let map = OffsetMap::build(&segments, 3, 0).unwrap();
        assert_eq!(map.end_offset(), 3);
        assert_eq!(plan_groups(&segments, 100_000, map.end_offset()).len(), 1);
        assert!(plan_groups(&segments, 100_000, 1).is_empty());
    }
}
