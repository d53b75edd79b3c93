//! `CleanedGroup`: the rewritten copy of a segment group, record by record and batch
//! by batch (module doc of [`cleaner`](crate::cleaner), steps 3 and 4, and crash-safety
//! step 1).

use std::path::Path;

use super::{decode, OffsetMap, Policy, SegmentGroup};
use crate::batch::{rebuild_batch, RecordBatchHeader};
use crate::constants::COMPACTION_WRITE_BUFFER_BYTES;
use crate::error::LogError;
use crate::files::sync_directory;
use crate::record::RecordEntry;
use crate::segment::LogSegment;

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
            // Every batch checked here was read back from the group's segments.
            Err(error.stored_at(dir.display()))
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
