//! Retention (`retention.ms`, `retention.bytes`) and DeleteRecords: advancing the log
//! start offset and deleting the segments wholly below it.

use std::sync::atomic::Ordering;

use super::Log;
use crate::constants::LOG_START_OFFSET_FILE_NAME;
use crate::error::LogError;
use crate::files::write_number_file;

impl Log {
    /// Deletes closed segments (never the active one), oldest first, while they are
    /// wholly below the log start offset, older than `retention.ms` (by their largest
    /// timestamp, or the file's modification time when they have none) or beyond
    /// `retention.bytes`. Advances the log start offset; returns the number deleted.
    pub fn apply_retention(&self) -> Result<usize, LogError> {
        let _writer = crate::sync::lock(&self.writer);
        let config = self.config();
        let now_ms = self.clock.now_ms();
        let segments = self.snapshot();
        let log_start_offset = self.log_start_offset();
        let total: u64 = segments.iter().map(|s| s.size()).sum();
        let mut excess = if config.retention_bytes >= 0 {
            total as i64 - config.retention_bytes
        } else {
            i64::MIN
        };
        let mut count = 0;
        for segment in segments.iter().take(segments.len().saturating_sub(1)) {
            let below_start = segment.next_offset() <= log_start_offset;
            let expired = config.retention_ms >= 0 && {
                let timestamp = match segment.max_timestamp() {
                    Some(max) if max.timestamp >= 0 => max.timestamp,
                    _ => segment.last_modified_ms()?,
                };
                now_ms.saturating_sub(timestamp) > config.retention_ms
            };
            let size = segment.size() as i64;
            let oversize = excess >= size && excess > 0;
            if !(below_start || expired || oversize) {
                break;
            }
            excess = excess.saturating_sub(size);
            count += 1;
        }
        if count > 0 {
            self.delete_oldest_segments(count)?;
        }
        Ok(count)
    }

    /// Removes the `count` oldest segments and advances the log start offset past
    /// them. Writer lock held; never removes the active segment.
    fn delete_oldest_segments(&self, count: usize) -> Result<(), LogError> {
        let segments = self.snapshot();
        let count = count.min(segments.len().saturating_sub(1));
        let (doomed, kept) = segments.split_at(count);
        let new_first_base = kept.first().map_or(0, |s| s.base_offset());
        if new_first_base > self.log_start_offset() {
            write_number_file(&self.dir, LOG_START_OFFSET_FILE_NAME, new_first_base)?;
            self.log_start_offset.fetch_max(new_first_base, Ordering::AcqRel);
            crate::sync::lock(&self.leader_epochs).truncate_from_start(new_first_base)?;
        }
        self.replace_segments(kept.to_vec());
        for segment in doomed {
            segment.delete()?;
            tracing::debug!(dir = %self.dir.display(), base = segment.base_offset(), "deleted segment");
        }
        self.directory_dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Advances the log start offset to `new_log_start_offset` (persisted) and deletes
    /// closed segments wholly below it. Returns the log start offset afterwards.
    pub fn delete_records(&self, new_log_start_offset: i64) -> Result<i64, LogError> {
        let _writer = crate::sync::lock(&self.writer);
        let start = self.log_start_offset();
        let end = self.log_end_offset();
        if new_log_start_offset > end || new_log_start_offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset: new_log_start_offset,
                start,
                end,
            });
        }
        if new_log_start_offset <= start {
            return Ok(start);
        }
        write_number_file(&self.dir, LOG_START_OFFSET_FILE_NAME, new_log_start_offset)?;
        self.log_start_offset.store(new_log_start_offset, Ordering::Release);
        crate::sync::lock(&self.leader_epochs).truncate_from_start(new_log_start_offset)?;
        self.debug_check_offsets();
        let segments = self.snapshot();
        let below = segments
            .iter()
            .take(segments.len().saturating_sub(1))
            .take_while(|s| s.next_offset() <= new_log_start_offset)
            .count();
        if below > 0 {
            self.delete_oldest_segments(below)?;
        }
        Ok(new_log_start_offset)
    }
}
