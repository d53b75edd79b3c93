//! `SegmentGroup`: runs of closed segments rewritten as one (module doc of
//! [`cleaner`](crate::cleaner), step 2).

use std::sync::Arc;

use crate::segment::LogSegment;

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

    pub(super) fn size(&self) -> u64 {
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
