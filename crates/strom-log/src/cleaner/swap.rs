//! Swap records: committing a cleaned group in place of the segments it replaces, and
//! finishing or discarding interrupted swaps on open (module doc of
//! [`cleaner`](crate::cleaner), "Crash safety").

use std::path::Path;

use super::{CleanedGroup, SegmentGroup};
use crate::constants::{
    CLEANED_FILE_SUFFIX, LOG_FILE_SUFFIX, OFFSET_INDEX_FILE_SUFFIX, SWAP_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX,
};
use crate::error::LogError;
use crate::files::{read_number_file, remove_if_present, sync_directory, write_number_file};
use crate::segment::LogSegment;
use crate::segment_name::{parse_segment_file_name, segment_file_name};

pub(super) fn swap_record_name(base_offset: i64) -> String {
    segment_file_name(base_offset, SWAP_FILE_SUFFIX)
}

pub(super) fn cleaned_name(base_offset: i64, suffix: &str) -> String {
    format!("{}.{CLEANED_FILE_SUFFIX}", segment_file_name(base_offset, suffix))
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
