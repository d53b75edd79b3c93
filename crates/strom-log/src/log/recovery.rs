//! Opening a log: finishing interrupted compaction swaps, loading trusted segments and
//! recovering the rest (see [`Log::open`]).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};

use super::{FlushState, Log, LogConfig};
use crate::cleaner;
use crate::clock::Clock;
use crate::constants::{
    CLEAN_SHUTDOWN_FILE_NAME, LOG_FILE_SUFFIX, LOG_START_OFFSET_FILE_NAME, OFFSET_INDEX_FILE_SUFFIX,
    RECOVERY_POINT_FILE_NAME, TEMPORARY_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX,
};
use crate::error::LogError;
use crate::files::{read_number_file, sync_directory};
use crate::leader_epoch::{LeaderEpochCache, UNDEFINED_EPOCH};
use crate::segment::LogSegment;
use crate::segment_name::parse_segment_file_name;

/// Finishes or discards interrupted compaction swaps, lists segment base offsets and
/// removes leftovers (temporary files, indexes without a log file). Also returns the
/// base offsets of segments that must be recovered (finished swaps).
fn scan_directory(dir: &Path) -> Result<(Vec<i64>, Vec<i64>), LogError> {
    let must_recover = cleaner::finish_interrupted_swaps(dir)?;
    let mut bases = Vec::new();
    let mut index_files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(TEMPORARY_FILE_SUFFIX) {
            std::fs::remove_file(entry.path())?;
        } else if let Some(base) = parse_segment_file_name(name, LOG_FILE_SUFFIX) {
            bases.push(base);
        } else if let Some(base) = parse_segment_file_name(name, OFFSET_INDEX_FILE_SUFFIX)
            .or_else(|| parse_segment_file_name(name, TIME_INDEX_FILE_SUFFIX))
        {
            index_files.push((base, entry.path()));
        }
    }
    bases.sort_unstable();
    for (base, path) in index_files {
        if bases.binary_search(&base).is_err() {
            std::fs::remove_file(path)?;
        }
    }
    Ok((bases, must_recover))
}

/// The leader epoch cache of a log just recovered: the checkpoint, brought up to date
/// with the batches above `recovery_point` (their epochs may not have reached it before
/// a crash), or rebuilt from every batch when it is missing or does not parse; then cut
/// to `[log_start_offset, log_end_offset]`: an epoch starting right at the log end is
/// a leader's epoch that holds no records yet and stays known (KAFKA-20961), so a
/// follower diverging from it is still told where it began. Never fails: a cache it cannot read or
/// write is rebuilt or retried, the log opens regardless.
fn load_leader_epochs(
    dir: &Path,
    segments: &[Arc<LogSegment>],
    recovery_point: i64,
    log_start_offset: i64,
    log_end_offset: i64,
) -> LeaderEpochCache {
    let (mut cache, replay_from) = match LeaderEpochCache::load(dir) {
        Some(cache) => (cache, recovery_point),
        None => (LeaderEpochCache::rebuilt(dir), i64::MIN),
    };
    for segment in segments.iter().filter(|segment| segment.next_offset() > replay_from) {
        let replayed = segment.for_each_header(|header| {
            let epoch = header.partition_leader_epoch;
            if epoch > cache.latest_epoch().unwrap_or(UNDEFINED_EPOCH) {
                cache.assign_in_memory(epoch, header.base_offset);
            }
        });
        if let Err(error) = replayed {
            tracing::warn!(dir = %dir.display(), base = segment.base_offset(), %error, "could not read leader epochs of a segment");
        }
    }
    let trimmed = cache
        .truncate_from_end(log_end_offset.saturating_add(1))
        .and_then(|_| cache.truncate_from_start(log_start_offset))
        .and_then(|_| cache.save_if_dirty());
    if let Err(error) = trimmed {
        tracing::warn!(dir = %dir.display(), %error, "could not write the leader epoch checkpoint; retrying at the next flush");
    }
    cache
}

impl Log {
    /// Opens (creating if missing) the log in `dir`, recovering after an unclean
    /// shutdown: interrupted compaction swaps are finished or discarded (see
    /// [`cleaner`]); segments not covered by the recovery point, and
    /// always the last one, are checked batch by batch and cut at the first torn or
    /// corrupt batch; a cut in a middle segment discards the segments after it.
    /// Offsets must strictly increase across batches and segments; a gap is accepted
    /// only below the recovery point (where compaction leaves them), any other gap or
    /// overlap counts as damage.
    pub fn open(dir: &Path, config: LogConfig, clock: Arc<dyn Clock>) -> Result<Log, LogError> {
        std::fs::create_dir_all(dir)?;
        let config = config.normalized();
        let now_ms = clock.now_ms();
        let clean_marker = dir.join(CLEAN_SHUTDOWN_FILE_NAME);
        let clean = clean_marker.exists();
        let (bases, must_recover) = scan_directory(dir)?;
        let persisted_start = read_number_file(&dir.join(LOG_START_OFFSET_FILE_NAME));
        let recovery_point = if clean {
            i64::MAX
        } else {
            read_number_file(&dir.join(RECOVERY_POINT_FILE_NAME)).unwrap_or(i64::MIN)
        };
        let mut segments = Self::open_segments(dir, &bases, &must_recover, recovery_point, now_ms, &config)?;
        let recovered_end = segments.last().map_or(0, |s| s.next_offset());
        if let Some(start) = persisted_start.filter(|start| *start > recovered_end) {
            // Recovery lost records up to and past the log start offset. Offsets below
            // it were already handed out, so the log restarts empty at the start offset.
            tracing::warn!(
                start,
                recovered_end,
                "log end below log start after recovery, restarting log at log start"
            );
            for segment in segments.drain(..) {
                segment.delete()?;
            }
        }
        if segments.is_empty() {
            let base = persisted_start.unwrap_or(0).max(0);
            segments.push(Arc::new(LogSegment::create(dir, base, now_ms)?));
        }
        // Offsets up to the persisted recovery point were fsynced, and may have been
        // consumed and committed past: if damage cost the tail below it, the log goes on
        // from there (a gap) rather than hand those offsets out again.
        let flushed_end = read_number_file(&dir.join(RECOVERY_POINT_FILE_NAME));
        if let Some(flushed_end) = flushed_end.filter(|end| *end > segments.last().map_or(0, |s| s.next_offset())) {
            tracing::warn!(dir = %dir.display(), flushed_end, "the log lost flushed offsets to damage; continuing after them");
            segments.push(Arc::new(LogSegment::create(dir, flushed_end, now_ms)?));
        }
        let first_base = segments.first().map_or(0, |s| s.base_offset());
        let log_end_offset = segments.last().map_or(0, |s| s.next_offset());
        let log_start_offset = persisted_start
            .unwrap_or(first_base)
            .max(first_base)
            .min(log_end_offset);
        let leader_epochs = load_leader_epochs(dir, &segments, recovery_point, log_start_offset, log_end_offset);
        if clean {
            std::fs::remove_file(&clean_marker)?;
            sync_directory(dir)?;
        }
        let log = Log {
            dir: dir.to_path_buf(),
            clock,
            config: RwLock::new(config),
            segments: RwLock::new(Arc::new(segments)),
            writer: Mutex::new(()),
            cleaner: Mutex::new(()),
            truncations: AtomicU64::new(0),
            flush_state: Mutex::new(FlushState {
                checkpointed_segment_base: i64::MIN,
                recovery_point: i64::MIN,
            }),
            log_start_offset: AtomicI64::new(log_start_offset),
            log_end_offset: AtomicI64::new(log_end_offset),
            flushed_offset: AtomicI64::new(if clean { log_end_offset } else { first_base }),
            directory_dirty: AtomicBool::new(!clean),
            closed: AtomicBool::new(false),
            leader_epochs: Mutex::new(leader_epochs),
        };
        if !clean {
            log.flush()?;
        }
        log.debug_check_offsets();
        tracing::debug!(dir = %dir.display(), clean, log_start_offset, log_end_offset, "log opened");
        Ok(log)
    }

    fn open_segments(
        dir: &Path,
        bases: &[i64],
        must_recover: &[i64],
        recovery_point: i64,
        now_ms: i64,
        config: &LogConfig,
    ) -> Result<Vec<Arc<LogSegment>>, LogError> {
        let interval = config.index_interval_bytes;
        let mut segments: Vec<Arc<LogSegment>> = Vec::with_capacity(bases.len());
        let mut discard_from = None;
        for (index, &base) in bases.iter().enumerate() {
            if let Some(previous) = segments.last() {
                let expected = previous.next_offset();
                if base < expected && base <= recovery_point {
                    // Both segments are durable: one of them is damaged (most likely a
                    // flipped bit in the last base offset of the earlier one). Dropping the
                    // later segments would lose intact records; refuse to open instead.
                    return Err(LogError::corrupt(format!(
                        "segment {base} starts below the end {expected} of the segment before it, \
                         and both are below the recovery point; nothing was removed: check the \
                         directory with `strom storage verify`"
                    ))
                    .stored_at(dir.display()));
                }
                if base < expected || (base > expected && base > recovery_point) {
                    tracing::warn!(
                        base,
                        expected,
                        recovery_point,
                        "segment overlaps or leaves a gap above the recovery point, discarding it and later segments"
                    );
                    discard_from = Some(index);
                    break;
                }
            }
            let trusted = bases
                .get(index + 1)
                .is_some_and(|next_base| *next_base <= recovery_point);
            let swapped = must_recover.contains(&base);
            let segment = if trusted && !swapped {
                LogSegment::load(dir, base, now_ms, interval)?
            } else {
                let gaps_below = if swapped { i64::MAX } else { recovery_point };
                let (segment, cut) = LogSegment::open_and_recover(dir, base, now_ms, interval, gaps_below)?;
                if cut > 0 && index + 1 < bases.len() {
                    segments.push(Arc::new(segment));
                    discard_from = Some(index + 1);
                    break;
                }
                segment
            };
            segments.push(Arc::new(segment));
        }
        if let Some(from) = discard_from {
            for &base in bases.get(from..).unwrap_or(&[]) {
                LogSegment::load(dir, base, now_ms, interval)?.delete()?;
            }
        }
        Ok(segments)
    }
}
