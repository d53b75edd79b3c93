//! Truncation: removing the tail of the log from an offset on.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::Log;
use crate::constants::{LOG_START_OFFSET_FILE_NAME, RECOVERY_POINT_FILE_NAME};
use crate::error::LogError;
use crate::files::write_number_file;
use crate::segment::LogSegment;

impl Log {
    /// Removes every record at or above `offset`, and every leader epoch beginning at or
    /// above it (the whole batch containing `offset`
    /// goes, so the log end offset may end below `offset`; in a compacted log it ends
    /// at the last kept batch, so offsets of a removed range may be handed out again). Truncating below the log
    /// start offset empties the log and restarts it at `offset`.
    pub fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        let _writer = crate::sync::lock(&self.writer);
        self.check_open()?;
        let end = self.log_end_offset();
        if offset >= end {
            if offset == end {
                // No records go, but an epoch beginning here (a leader's epoch that
                // wrote nothing) does: the leader this follower truncates for does not
                // have it, and the next fetch must name an epoch both have.
                crate::sync::lock(&self.leader_epochs).truncate_from_end(offset)?;
            }
            return Ok(());
        }
        self.truncations.fetch_add(1, Ordering::AcqRel);
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset(),
                end,
            });
        }
        let config = self.config();
        let segments = self.snapshot();
        let first_base = segments.first().map_or(0, |s| s.base_offset());
        let (kept, doomed): (Vec<_>, Vec<_>) = if offset <= first_base || offset < self.log_start_offset() {
            let fresh = Arc::new(LogSegment::create(&self.dir, offset, self.clock.now_ms())?);
            let doomed = segments.iter().filter(|s| s.base_offset() != offset).cloned().collect();
            (vec![fresh], doomed)
        } else {
            segments.iter().cloned().partition(|s| s.base_offset() < offset)
        };
        let last = kept.last().cloned();
        self.replace_segments(kept);
        for segment in &doomed {
            segment.delete()?;
        }
        let new_end = match last {
            Some(last) => {
                last.truncate_to(offset, config.index_interval_bytes)?;
                last.next_offset()
            }
            None => offset,
        };
        self.log_end_offset.store(new_end, Ordering::Release);
        let start = self.log_start_offset();
        let new_start = if offset < start || offset <= first_base {
            offset.min(new_end)
        } else {
            start.min(new_end)
        };
        if new_start != start {
            write_number_file(&self.dir, LOG_START_OFFSET_FILE_NAME, new_start)?;
            self.log_start_offset.store(new_start, Ordering::Release);
        }
        {
            let mut leader_epochs = crate::sync::lock(&self.leader_epochs);
            if offset < start {
                // Restarted below its start: no epoch of the old records applies (Kafka
                // clears the cache when it truncates fully).
                leader_epochs.clear()?;
            } else {
                leader_epochs.truncate_from_end(new_end)?;
                if new_start > start {
                    leader_epochs.truncate_from_start(new_start)?;
                }
            }
        }
        let mut state = crate::sync::lock(&self.flush_state);
        let flushed = self.flushed_offset().min(new_end);
        self.flushed_offset.store(flushed, Ordering::Release);
        write_number_file(&self.dir, RECOVERY_POINT_FILE_NAME, flushed)?;
        state.checkpointed_segment_base = i64::MIN;
        state.recovery_point = flushed;
        self.directory_dirty.store(true, Ordering::Release);
        self.debug_check_offsets();
        Ok(())
    }

    /// Empties the log and restarts it at `offset` (Kafka's `truncateFullyAndStartAt`):
    /// a follower whose log ends below the leader's log start offset, or that has
    /// nothing in common with the leader, starts over where the leader's log begins.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), LogError> {
        let _writer = crate::sync::lock(&self.writer);
        self.check_open()?;
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset(),
                end: self.log_end_offset(),
            });
        }
        self.truncations.fetch_add(1, Ordering::AcqRel);
        let segments = self.snapshot();
        // A segment with this base offset is emptied in place by `create`.
        let fresh = Arc::new(LogSegment::create(&self.dir, offset, self.clock.now_ms())?);
        self.replace_segments(vec![fresh]);
        for segment in segments.iter().filter(|s| s.base_offset() != offset) {
            segment.delete()?;
        }
        self.log_end_offset.store(offset, Ordering::Release);
        write_number_file(&self.dir, LOG_START_OFFSET_FILE_NAME, offset)?;
        self.log_start_offset.store(offset, Ordering::Release);
        crate::sync::lock(&self.leader_epochs).clear()?;
        let mut state = crate::sync::lock(&self.flush_state);
        self.flushed_offset.store(offset, Ordering::Release);
        write_number_file(&self.dir, RECOVERY_POINT_FILE_NAME, offset)?;
        state.checkpointed_segment_base = i64::MIN;
        state.recovery_point = offset;
        self.directory_dirty.store(true, Ordering::Release);
        self.debug_check_offsets();
        Ok(())
    }
}
