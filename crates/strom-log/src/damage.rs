//! `Damage`: stretches of a segment file that were durable (fsynced) but no longer hold
//! valid batches — bit rot, a flipped byte, a damaged length field.
//!
//! A bad batch above the recovery point is a torn write: recovery cuts the tail there.
//! Below it the data was complete on disk, so a bad batch is damage, and everything
//! after it is still intact: recovery must skip exactly the damaged bytes, never cut the
//! records behind them. `find_damage` walks the file; where a batch does not validate
//! it searches forward for the next position holding a valid batch with a later offset
//! (magic byte, length and CRC-32C must all agree, so a false match is negligible).
//! `cut_out` copies each damaged stretch aside to `<segment>.log.<position>.damaged`
//! (for inspection; best effort), rewrites the segment without them (written to a
//! `.tmp` file, fsynced, renamed over the original: a crash leaves either file whole)
//! and leaves an offset gap where the damaged batches were. `strom storage verify`
//! reports the same findings offline.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::batch::{validate_stored, RecordBatchHeader};
use crate::constants::{
    BATCH_HEADER_SIZE, LOG_FILE_SUFFIX, MAGIC_V2, OFFSET_INDEX_FILE_SUFFIX, RECOVERY_CHUNK_BYTES, SEGMENT_BYTES_MAX,
    TEMPORARY_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX,
};
use crate::error::LogError;
use crate::files::sync_directory;
use crate::scanner::Scanner;
use crate::segment_name::segment_file_name;

/// Suffix of the copies of damaged bytes kept beside a segment.
pub(crate) const DAMAGED_FILE_SUFFIX: &str = "damaged";

/// One damaged stretch of a segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Byte position in the `.log` file where the damage starts.
    pub position: u64,
    /// Damaged bytes.
    pub length: u64,
    /// The first offset the damaged bytes held (the offset expected there).
    pub first_offset: i64,
    /// Base offset of the intact batch that follows, or `None` when the damage runs to
    /// the end of the file.
    pub next_offset: Option<i64>,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.next_offset {
            Some(next) => write!(
                f,
                "{} damaged bytes at position {}: offsets {}..{} lost, the log resumes at {}",
                self.length,
                self.position,
                self.first_offset,
                next - 1,
                next
            ),
            None => write!(
                f,
                "{} damaged bytes at position {} to the end of the segment: offsets from {} lost",
                self.length, self.position, self.first_offset
            ),
        }
    }
}

/// Finds the damaged stretches of a segment file whose data below `durable_below` was
/// fsynced. The walk stops (without reporting damage) at the first bad batch at or
/// above `durable_below`: that is a torn tail, which recovery cuts.
pub(crate) fn find_damage(file: &File, base_offset: i64, durable_below: i64) -> Result<Vec<Damage>, LogError> {
    Ok(check_segment(file, base_offset, durable_below)?.damage)
}

/// What [`check_segment`] found in one segment file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentCheck {
    /// Valid batches.
    pub batches: u64,
    /// Offset after the last valid batch.
    pub next_offset: i64,
    /// Damaged stretches of durable data.
    pub damage: Vec<Damage>,
    /// Bytes after the last valid batch that are not durable (a torn tail recovery cuts).
    pub torn_tail_bytes: u64,
}

/// Walks a whole segment file: every batch's length, magic, CRC-32C and offsets.
///
/// `baseOffset` lies outside the CRC, so a flipped bit there leaves a batch that
/// validates but claims later offsets than it holds; every intact batch after it then
/// seems to overlap. When a valid batch overlaps the one before it and the batch after
/// agrees with it, the one before is the damaged batch (its offsets are wrong, its
/// neighbours agree) and is what gets cut; otherwise the overlapping batch is.
pub fn check_segment(file: &File, base_offset: i64, durable_below: i64) -> Result<SegmentCheck, LogError> {
    let end = file.metadata()?.len().min(SEGMENT_BYTES_MAX);
    let mut scanner = Scanner::new(file, 0, end, RECOVERY_CHUNK_BYTES);
    let mut damage: Vec<Damage> = Vec::new();
    let mut expected = base_offset;
    // The last accepted batch: (position, length, the offset expected before it).
    let mut previous: Option<(u64, u64, i64)> = None;
    // Where the last batch would end had its base offset (outside the CRC) not been
    // damaged: so a flipped base offset does not make durable data look like a torn tail.
    let mut honest_next = base_offset;
    let mut batches = 0;
    let mut torn_tail_bytes = 0;
    while scanner.position() < end {
        let at = scanner.position();
        match batch_at(&mut scanner, at, base_offset)? {
            Some(header) if header.base_offset >= expected => {
                previous = Some((at, scanner.position() - at, expected));
                honest_next = expected.saturating_add(i64::from(header.last_offset_delta) + 1);
                expected = header.next_offset();
                batches += 1;
                continue;
            }
            Some(header) => {
                // This batch overlaps the one before. Blame that one only when the batch
                // after this one agrees with this one and not with it (two against one);
                // otherwise this batch is the odd one and is cut below.
                let after = scanner.position();
                let agrees = batch_at(&mut scanner, after, base_offset)?
                    .is_some_and(|next| next.base_offset >= header.next_offset() && next.base_offset < expected);
                if let Some((position, length, before)) = previous.filter(|_| agrees) {
                    if before < durable_below && header.base_offset >= before {
                        damage.push(Damage {
                            position,
                            length,
                            first_offset: before,
                            next_offset: Some(header.base_offset),
                        });
                        scanner.seek(after);
                        previous = Some((at, after - at, before));
                        honest_next = header.next_offset();
                        expected = header.next_offset();
                        continue;
                    }
                }
                scanner.seek(at);
            }
            None => {}
        }
        if expected.min(honest_next) >= durable_below {
            torn_tail_bytes = end - at;
            break;
        }
        previous = None;
        match resync(&mut scanner, at + 1, end, base_offset, expected)? {
            Some((found, base)) => {
                damage.push(Damage {
                    position: at,
                    length: found - at,
                    first_offset: expected,
                    next_offset: Some(base),
                });
                scanner.seek(found);
            }
            None => {
                damage.push(Damage {
                    position: at,
                    length: end - at,
                    first_offset: expected,
                    next_offset: None,
                });
                break;
            }
        }
    }
    Ok(SegmentCheck {
        batches,
        next_offset: expected,
        damage,
        torn_tail_bytes,
    })
}

/// The header of a batch at `at` whose length, magic and CRC-32C check out and whose
/// offsets fit the segment (the scanner is then past it), or `None` (the scanner is
/// back at `at`).
fn batch_at(scanner: &mut Scanner<'_>, at: u64, base_offset: i64) -> Result<Option<RecordBatchHeader>, LogError> {
    scanner.seek(at);
    let header = match scanner.next_batch()? {
        Some((_, batch)) => validate_stored(batch).ok().filter(|header| {
            header.base_offset >= base_offset && header.last_offset().saturating_sub(base_offset) <= i64::from(u32::MAX)
        }),
        None => None,
    };
    if header.is_none() {
        scanner.seek(at);
    }
    Ok(header)
}

/// First position in `[from, end)` holding a valid batch at or after `expected`. The
/// header's fields are checked before the batch is read and its CRC computed, so a long
/// damaged stretch is crossed at the cost of a byte compare per position.
fn resync(
    scanner: &mut Scanner<'_>,
    from: u64,
    end: u64,
    base_offset: i64,
    expected: i64,
) -> Result<Option<(u64, i64)>, LogError> {
    let mut at = from;
    while at + BATCH_HEADER_SIZE as u64 <= end {
        if !scanner.fill(at, BATCH_HEADER_SIZE)? {
            return Ok(None);
        }
        let plausible = scanner
            .slice(at, BATCH_HEADER_SIZE)
            .and_then(|bytes| RecordBatchHeader::parse(bytes).ok())
            .is_some_and(|h| {
                h.magic == MAGIC_V2
                    && h.base_offset >= expected
                    && h.last_offset_delta >= 0
                    && h.last_offset().saturating_sub(base_offset) <= i64::from(u32::MAX)
                    && h.total_size().is_some_and(|total| at + total as u64 <= end)
            });
        if plausible {
            if let Some(header) = batch_at(scanner, at, base_offset)? {
                return Ok(Some((at, header.base_offset)));
            }
        }
        at += 1;
    }
    Ok(None)
}

/// Rewrites the segment `base_offset` in `dir` without the damaged stretches, keeping a
/// copy of each beside it. The segment's files must not be open for writing.
pub(crate) fn cut_out(dir: &Path, base_offset: i64, damage: &[Damage]) -> Result<(), LogError> {
    let log_name = segment_file_name(base_offset, LOG_FILE_SUFFIX);
    let log_path = dir.join(&log_name);
    let mut source = File::open(&log_path)?;
    let size = source.metadata()?.len();
    for stretch in damage {
        let aside = dir.join(format!("{log_name}.{}.{DAMAGED_FILE_SUFFIX}", stretch.position));
        if let Err(error) = copy_range(&mut source, stretch.position, stretch.length, &aside) {
            tracing::warn!(path = %aside.display(), %error, "could not keep a copy of the damaged bytes");
            let _ = std::fs::remove_file(&aside);
        }
    }
    let temporary = dir.join(format!("{log_name}.{TEMPORARY_FILE_SUFFIX}"));
    let mut output = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)?;
    let mut kept_from = 0;
    let result = (|| {
        for stretch in damage {
            copy_into(&mut source, kept_from, stretch.position - kept_from, &mut output)?;
            kept_from = stretch.position + stretch.length;
        }
        copy_into(&mut source, kept_from, size.saturating_sub(kept_from), &mut output)?;
        output.sync_all()?;
        // The kept batches move: the old indexes must not outlive the old file, or a
        // crash before they are rebuilt could leave entries that point into it.
        for suffix in [OFFSET_INDEX_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX] {
            let index = dir.join(segment_file_name(base_offset, suffix));
            if let Ok(file) = OpenOptions::new().write(true).open(&index) {
                file.set_len(0)?;
                file.sync_all()?;
            }
        }
        std::fs::rename(&temporary, &log_path)?;
        sync_directory(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

fn copy_range(source: &mut File, position: u64, length: u64, to: &Path) -> Result<(), LogError> {
    let mut output = File::create(to)?;
    copy_into(source, position, length, &mut output)?;
    output.sync_all()?;
    Ok(())
}

fn copy_into(source: &mut File, position: u64, length: u64, output: &mut File) -> Result<(), LogError> {
    source.seek(SeekFrom::Start(position))?;
    let copied = std::io::copy(&mut source.take(length), output)?;
    if copied != length {
        return Err(LogError::corrupt(format!(
            "segment ended after {copied} of {length} bytes at position {position}"
        )));
    }
    output.flush()?;
    Ok(())
}
