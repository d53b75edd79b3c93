//! Rolling: sealing the active segment and starting the next one.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Log, LogConfig};
use crate::error::LogError;
use crate::segment::LogSegment;

impl Log {
    /// Rolls first if the append would overflow the active segment (bytes or relative
    /// offsets) or the segment is older than `segment.ms`. Writer lock held.
    pub(super) fn roll_for_append(
        &self,
        now_ms: i64,
        incoming_bytes: u64,
        last_offset: i64,
        config: &LogConfig,
    ) -> Result<Arc<LogSegment>, LogError> {
        let active = self.active_segment();
        let size = active.size();
        let full = size + incoming_bytes > config.segment_bytes;
        let old = now_ms.saturating_sub(active.created_ms()) >= config.segment_ms;
        let offsets_overflow = last_offset - active.base_offset() > i64::from(u32::MAX);
        if size > 0 && (full || old || offsets_overflow) {
            return self.roll(now_ms);
        }
        Ok(active)
    }

    /// Seals the active segment and starts a new one at the log end offset. Writer
    /// lock held.
    pub(super) fn roll(&self, now_ms: i64) -> Result<Arc<LogSegment>, LogError> {
        let segments = self.snapshot();
        if let Some(active) = segments.last() {
            active.seal()?;
        }
        let base = self.log_end_offset();
        let segment = Arc::new(LogSegment::create(&self.dir, base, now_ms)?);
        self.directory_dirty.store(true, Ordering::Release);
        let mut next = Vec::with_capacity(segments.len() + 1);
        next.extend(segments.iter().cloned());
        next.push(segment.clone());
        self.replace_segments(next);
        tracing::debug!(dir = %self.dir.display(), base, "rolled segment");
        Ok(segment)
    }

    /// Rolls the active segment if it is non-empty and older than `segment.ms`.
    pub fn roll_if_due(&self) -> Result<bool, LogError> {
        let _writer = crate::sync::lock(&self.writer);
        self.check_open()?;
        let config = self.config();
        let now_ms = self.clock.now_ms();
        let active = self.active_segment();
        if active.size() > 0 && now_ms.saturating_sub(active.created_ms()) >= config.segment_ms {
            self.roll(now_ms)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Rolls the active segment now if it is non-empty (for tests and admin tools).
    pub fn roll_now(&self) -> Result<bool, LogError> {
        let _writer = crate::sync::lock(&self.writer);
        self.check_open()?;
        if self.active_segment().size() == 0 {
            return Ok(false);
        }
        self.roll(self.clock.now_ms())?;
        Ok(true)
    }
}
