//! `LeaderEpochCache`: for each leader epoch of a partition, the first offset written
//! in it — Kafka's `LeaderEpochFileCache`, answering OffsetsForLeaderEpoch so a
//! follower (or a consumer after a leader change) finds where its log diverges.
//!
//! File `leader-epoch-checkpoint` in the partition directory, Kafka's text format:
//!
//! ```text
//! 0                      version
//! 2                      number of entries
//! 0 0                    epoch startOffset
//! 3 1200
//! ```
//!
//! Written atomically on every change (`files.rs`: temporary file, fsync, rename, directory fsync). A missing or
//! unparsable file is not an error: the owning log rebuilds the cache from the leader
//! epochs of its batches.
//!
//! Invariants: epochs and start offsets both strictly increase along the entries;
//! no epoch or start offset is negative.

use std::path::{Path, PathBuf};

use crate::constants::LEADER_EPOCH_CHECKPOINT_FILE_NAME;
use crate::error::LogError;
use crate::files::write_file_atomically;

/// Kafka's `UNDEFINED_EPOCH`: no epoch is known.
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's `UNDEFINED_EPOCH_OFFSET`: no end offset is known.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// Version of the checkpoint file format.
const CHECKPOINT_VERSION: u32 = 0;

/// One leader epoch and the first offset written in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// Offset of the first record appended in this epoch.
    pub start_offset: i64,
}

/// The leader epochs of one partition's log, persisted in its directory.
#[derive(Debug)]
pub(crate) struct LeaderEpochCache {
    dir: PathBuf,
    entries: Vec<EpochEntry>,
    /// Changed since the file was last written (a write failed).
    dirty: bool,
}

impl LeaderEpochCache {
    /// An empty cache for `dir` (nothing is written until it changes).
    pub fn new(dir: &Path) -> LeaderEpochCache {
        LeaderEpochCache {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
            dirty: false,
        }
    }

    /// An empty cache for `dir` that is about to be rebuilt from the log: written at
    /// the next save even if it stays empty, so the next open finds it.
    pub(crate) fn rebuilt(dir: &Path) -> LeaderEpochCache {
        LeaderEpochCache {
            dirty: true,
            ..LeaderEpochCache::new(dir)
        }
    }

    /// Loads the checkpoint in `dir`; `None` when it is missing or does not parse (the
    /// caller rebuilds the cache from the log).
    pub fn load(dir: &Path) -> Option<LeaderEpochCache> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => {
                if error.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), %error, "unreadable leader epoch checkpoint, rebuilding it");
                }
                return None;
            }
        };
        match parse_checkpoint(&text) {
            Some(entries) => Some(LeaderEpochCache {
                dir: dir.to_path_buf(),
                entries,
                dirty: false,
            }),
            None => {
                tracing::warn!(path = %path.display(), "leader epoch checkpoint does not parse, rebuilding it");
                None
            }
        }
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The latest epoch, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|entry| entry.epoch)
    }

    /// Records that `epoch` starts at `start_offset`, with Kafka's rules: nothing changes
    /// when `epoch` is the latest epoch and `start_offset` is not below its start;
    /// otherwise every entry from the end whose epoch is >= `epoch` or whose start
    /// offset is >= `start_offset` is removed and the new entry appended, so both stay
    /// strictly increasing. A negative epoch or offset (a batch never stamped by a
    /// leader) is ignored. Returns whether the cache changed; writes the file if so.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<bool, LogError> {
        if !self.assign_in_memory(epoch, start_offset) {
            return Ok(false);
        }
        self.save().map(|()| true)
    }

    /// [`LeaderEpochCache::assign`] without writing the file (it is marked dirty).
    pub(crate) fn assign_in_memory(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        let needed = self
            .entries
            .last()
            .is_none_or(|latest| latest.epoch != epoch || start_offset < latest.start_offset);
        if !needed {
            return false;
        }
        let kept = self
            .entries
            .iter()
            .rposition(|entry| entry.epoch < epoch && entry.start_offset < start_offset)
            .map_or(0, |last_kept| last_kept + 1);
        if kept + 1 < self.entries.len() || self.entries.get(kept).is_some_and(|e| e.start_offset != start_offset) {
            tracing::warn!(
                dir = %self.dir.display(),
                epoch,
                start_offset,
                removed = ?self.entries.get(kept..),
                "new leader epoch entry replaces later entries"
            );
        }
        self.entries.truncate(kept);
        self.entries.push(EpochEntry { epoch, start_offset });
        self.dirty = true;
        self.check_invariants();
        true
    }

    /// Kafka's OffsetsForLeaderEpoch answer for `requested_epoch`, as `(epoch, end
    /// offset)`: the latest epoch ends at `log_end_offset`; an older known epoch ends
    /// where the next epoch starts; an unknown epoch between known ones answers the
    /// largest epoch below it and the start of the next one above; an epoch below every
    /// known epoch answers itself and the first start offset above it; an undefined or
    /// too large epoch answers `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`.
    pub fn end_offset_for(&self, requested_epoch: i32, log_end_offset: i64) -> (i32, i64) {
        if requested_epoch == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested_epoch) {
            return (requested_epoch, log_end_offset);
        }
        let Some(higher) = self.entries.iter().find(|entry| entry.epoch > requested_epoch) else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        match self.entries.iter().rev().find(|entry| entry.epoch <= requested_epoch) {
            Some(floor) => (floor.epoch, higher.start_offset),
            None => (requested_epoch, higher.start_offset),
        }
    }

    /// After the log was truncated to end at `end_offset` (a follower cutting its
    /// divergent tail): removes every entry starting at or after it. Writes the file if
    /// anything changed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<bool, LogError> {
        if end_offset < 0
            || self
                .entries
                .last()
                .is_none_or(|latest| latest.start_offset < end_offset)
        {
            return Ok(false);
        }
        self.entries.retain(|entry| entry.start_offset < end_offset);
        self.dirty = true;
        self.save().map(|()| true)
    }

    /// After the log start offset advanced to `start_offset` (retention, DeleteRecords):
    /// removes the entries starting at or before it, keeping the last of them with its
    /// start moved to `start_offset` (the epoch of the first record still in the log).
    /// Writes the file if anything changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<bool, LogError> {
        let removed = self.entries.partition_point(|entry| entry.start_offset <= start_offset);
        let Some(last_removed) = removed
            .checked_sub(1)
            .and_then(|index| self.entries.get(index))
            .copied()
        else {
            return Ok(false);
        };
        if removed == 1 && last_removed.start_offset == start_offset {
            return Ok(false);
        }
        self.entries.drain(..removed);
        self.entries.insert(
            0,
            EpochEntry {
                epoch: last_removed.epoch,
                start_offset,
            },
        );
        self.dirty = true;
        self.check_invariants();
        self.save().map(|()| true)
    }

    /// Writes the checkpoint if the cache changed since it was last written.
    pub(crate) fn save_if_dirty(&mut self) -> Result<(), LogError> {
        if self.dirty {
            self.save()?;
        }
        Ok(())
    }

    /// Drops every entry (the log was emptied and restarted).
    pub(crate) fn clear(&mut self) -> Result<(), LogError> {
        if self.entries.is_empty() {
            return Ok(());
        }
        self.entries.clear();
        self.dirty = true;
        self.save()
    }

    fn save(&mut self) -> Result<(), LogError> {
        let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", self.entries.len());
        for entry in &self.entries {
            text.push_str(&format!("{} {}\n", entry.epoch, entry.start_offset));
        }
        write_file_atomically(&self.dir, LEADER_EPOCH_CHECKPOINT_FILE_NAME, text.as_bytes())?;
        self.dirty = false;
        Ok(())
    }

    fn check_invariants(&self) {
        debug_assert!(
            self.entries.windows(2).all(|pair| match pair {
                [a, b] => a.epoch < b.epoch && a.start_offset < b.start_offset,
                _ => true,
            }),
            "leader epoch entries must strictly increase: {:?}",
            self.entries
        );
        debug_assert!(self.entries.iter().all(|e| e.epoch >= 0 && e.start_offset >= 0));
    }
}

/// The entries of a checkpoint file; `None` unless it is exactly Kafka's format with
/// strictly increasing, non-negative entries.
fn parse_checkpoint(text: &str) -> Option<Vec<EpochEntry>> {
    let mut lines = text.lines();
    if lines.next()?.trim().parse::<u32>().ok()? != CHECKPOINT_VERSION {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    // The count is checked against the lines present before it sizes anything.
    let mut entries = Vec::new();
    for line in lines.by_ref().take(count) {
        let mut fields = line.split_whitespace();
        let epoch: i32 = fields.next()?.parse().ok()?;
        let start_offset: i64 = fields.next()?.parse().ok()?;
        if fields.next().is_some() || epoch < 0 || start_offset < 0 {
            return None;
        }
        if entries
            .last()
            .is_some_and(|last: &EpochEntry| last.epoch >= epoch || last.start_offset >= start_offset)
        {
            return None;
        }
        entries.push(EpochEntry { epoch, start_offset });
    }
    if entries.len() != count || lines.any(|line| !line.trim().is_empty()) {
        return None;
    }
    Some(entries)
}

#[cfg(test)]
mod tests;
