//! `OffsetMap`: key → latest offset over a prefix of the log (module doc of
//! [`cleaner`](crate::cleaner), step 1), and the per-record keep decision (step 3).

use std::collections::HashMap;
use std::sync::Arc;

use super::{decode, Policy};
use crate::batch::RecordBatchHeader;
use crate::constants::COMPACTION_OFFSET_MAP_ENTRY_OVERHEAD_BYTES;
use crate::error::LogError;
use crate::record::RecordEntry;
use crate::segment::LogSegment;

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
    pub(super) end_offset: i64,
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
    pub(super) fn keep(&mut self, key: &[u8], entry: &RecordEntry, policy: &Policy, tombstones_expired: bool) -> bool {
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
