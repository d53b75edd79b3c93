//! Compaction passes on a log: the cleaner does the rewriting (see
//! [`cleaner`](crate::cleaner)); this file plans a pass and swaps results in under the
//! writer lock.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::Log;
use crate::cleaner::{self, CleanedGroup, CompactionConfig, CompactionStats, OffsetMap, Policy, SegmentGroup};
use crate::constants::COMPACTION_OFFSET_MAP_BYTES_MAX;
use crate::error::LogError;

impl Log {
    /// Compacts the closed segments (`cleanup.policy=compact`): keeps the latest record
    /// of every key at its original offset, drops tombstones older than
    /// `delete_retention_ms`, never removes records younger than
    /// `min_compaction_lag_ms`. The algorithm, its crash safety and its invariants are
    /// in [`cleaner`]. Appends go on while segments are rewritten; a
    /// pass that races a truncation stops early. Passes on one log are serialised.
    pub fn compact(&self, config: CompactionConfig) -> Result<CompactionStats, LogError> {
        let _cleaner = crate::sync::lock(&self.cleaner);
        self.check_open()?;
        cleaner::remove_stale_swap_records(&self.dir)?;
        let truncations = self.truncations.load(Ordering::Acquire);
        let end = self.log_end_offset();
        let segments = self.snapshot();
        let log_config = self.config();
        let policy = Policy {
            now_ms: self.clock.now_ms(),
            config,
        };
        let mut map = OffsetMap::build(&segments, end, COMPACTION_OFFSET_MAP_BYTES_MAX)?;
        let groups = cleaner::plan_groups(&segments, log_config.segment_bytes, map.end_offset());
        let mut stats = CompactionStats::default();
        let Some(cover) = groups.last().map(|group| group.end_offset) else {
            return Ok(stats);
        };
        // A record is removed only because a later one exists: everything the map saw
        // must be durable first, or a crash could lose the later record too.
        self.flush_to(map.end_offset())?;
        self.checkpoint_recovery_point(cover)?;
        for group in &groups {
            let interval = log_config.index_interval_bytes;
            let Some(cleaned) = cleaner::clean_group(&self.dir, group, &mut map, &policy, interval)? else {
                continue;
            };
            let (bytes_before, records_removed) = (cleaned.bytes_before, cleaned.records_removed);
            let Some(bytes_after) = self.swap_in_cleaned(group, cleaned, truncations, interval)? else {
                tracing::debug!(dir = %self.dir.display(), "log changed under compaction, stopping the pass");
                break;
            };
            cleaner::remove_swap_record(&self.dir, group.base_offset())?;
            stats.segments_cleaned += group.segments.len();
            stats.records_removed += records_removed;
            stats.bytes_before += bytes_before;
            stats.bytes_after += bytes_after;
        }
        tracing::debug!(dir = %self.dir.display(), ?stats, "compacted");
        Ok(stats)
    }

    /// Under the writer lock: if `group` is still in the log unchanged (same segments,
    /// not the active one, no truncation since the pass began), commits the cleaned
    /// copy and swaps it into the segment list; returns its size. Otherwise discards
    /// the copy and returns `None`.
    fn swap_in_cleaned(
        &self,
        group: &SegmentGroup,
        cleaned: CleanedGroup,
        truncations: u64,
        index_interval_bytes: u32,
    ) -> Result<Option<u64>, LogError> {
        let _writer = crate::sync::lock(&self.writer);
        let segments = self.snapshot();
        let position = segments
            .iter()
            .position(|s| group.segments.first().is_some_and(|first| Arc::ptr_eq(s, first)));
        let after = position.map(|p| p + group.segments.len());
        let still_there = position.zip(after).is_some_and(|(p, after)| {
            segments
                .get(p..after)
                .is_some_and(|run| run.iter().zip(&group.segments).all(|(a, b)| Arc::ptr_eq(a, b)))
                && segments
                    .get(after)
                    .is_some_and(|next| next.base_offset() == group.end_offset)
        });
        let unchanged = still_there
            && self.truncations.load(Ordering::Acquire) == truncations
            && !self.closed.load(Ordering::Acquire);
        let (Some(position), Some(after), true) = (position, after, unchanged) else {
            cleaned.segment.delete()?;
            return Ok(None);
        };
        let replacement = Arc::new(cleaner::commit_swap(
            &self.dir,
            cleaned,
            group,
            self.clock.now_ms(),
            index_interval_bytes,
        )?);
        let size = replacement.size();
        let mut next = Vec::with_capacity(segments.len());
        next.extend(segments.iter().take(position).cloned());
        next.push(replacement);
        next.extend(segments.iter().skip(after).cloned());
        self.replace_segments(next);
        self.directory_dirty.store(true, Ordering::Release);
        Ok(Some(size))
    }

    #[cfg(test)]
    pub(crate) fn swap_in_cleaned_for_tests(
        &self,
        group: &SegmentGroup,
        cleaned: CleanedGroup,
        truncations: u64,
    ) -> Result<Option<u64>, LogError> {
        self.swap_in_cleaned(group, cleaned, truncations, self.config().index_interval_bytes)
    }
}
