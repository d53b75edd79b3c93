//! Flushing with group commit, and the persisted recovery point.

use std::sync::atomic::Ordering;

use super::Log;
use crate::constants::RECOVERY_POINT_FILE_NAME;
use crate::error::LogError;
use crate::files::{sync_directory, write_number_file};

impl Log {
    /// fdatasyncs everything appended so far; returns the flushed offset.
    pub fn flush(&self) -> Result<i64, LogError> {
        self.flush_to(self.log_end_offset())
    }

    /// Makes everything below `offset` durable. Group commit: returns at once if a
    /// flush already covered it, and concurrent callers share one fdatasync — a caller
    /// waiting for the flush lock finds its offset covered by the flush that held it.
    pub fn flush_to(&self, offset: i64) -> Result<i64, LogError> {
        let flushed = self.flushed_offset();
        if flushed >= offset {
            return Ok(flushed);
        }
        let mut state = crate::sync::lock(&self.flush_state);
        let flushed = self.flushed_offset();
        if flushed >= offset {
            return Ok(flushed);
        }
        let end = self.log_end_offset();
        let segments = self.snapshot();
        let last_index = segments.len().saturating_sub(1);
        for (index, segment) in segments.iter().enumerate() {
            if index == last_index {
                // The active segment is above the recovery point: after a crash its
                // indexes are rebuilt from the log, so only the log needs the fsync.
                segment.flush_data()?;
            } else if segment.next_offset() > flushed || segment.indexes_dirty() {
                segment.flush()?;
            }
        }
        if self.directory_dirty.swap(false, Ordering::AcqRel) {
            if let Err(error) = sync_directory(&self.dir) {
                self.directory_dirty.store(true, Ordering::Release);
                return Err(error);
            }
        }
        self.flushed_offset.fetch_max(end, Ordering::AcqRel);
        let holding = segments
            .iter()
            .rev()
            .find(|s| s.base_offset() <= end)
            .map_or(i64::MIN, |s| s.base_offset());
        if holding > state.checkpointed_segment_base {
            // Recovery replays leader epochs only above the recovery point: the
            // checkpoint must hold every epoch below it first.
            crate::sync::lock(&self.leader_epochs).save_if_dirty()?;
            match write_number_file(&self.dir, RECOVERY_POINT_FILE_NAME, end) {
                Ok(()) => {
                    state.checkpointed_segment_base = holding;
                    state.recovery_point = end;
                    debug_assert!(
                        end <= self.flushed_offset(),
                        "recovery point {end} above the flushed offset"
                    );
                }
                // The data is synced; an older recovery point only means more to
                // check after a crash. Retried at the next flush, so a full disk does
                // not stop the broker from starting, closing or serving reads.
                Err(error) if error.is_out_of_space() => {
                    tracing::warn!(dir = %self.dir.display(), "no space to update the recovery point; keeping the older one");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(self.flushed_offset())
    }

    /// Makes sure the persisted recovery point is at least `offset` (everything below
    /// it must already be flushed).
    pub(super) fn checkpoint_recovery_point(&self, offset: i64) -> Result<(), LogError> {
        let mut state = crate::sync::lock(&self.flush_state);
        if state.recovery_point >= offset {
            return Ok(());
        }
        let flushed = self.flushed_offset();
        write_number_file(&self.dir, RECOVERY_POINT_FILE_NAME, flushed)?;
        state.recovery_point = flushed;
        Ok(())
    }
}
