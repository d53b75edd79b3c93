//! `IndexFile`: the storage shared by the offset and time indexes — a file of
//! fixed-size big-endian entries mirrored in memory.
//!
//! Readers search the in-memory copy under a read lock that is never held across I/O;
//! the single writer appends to the file first, then publishes the entry. A trailing
//! partial entry (torn write) is ignored on load. There is no checksum: after an
//! unclean shutdown the owning segment rebuilds its indexes from the log file.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use crate::error::LogError;

/// One fixed-size entry.
pub(crate) trait IndexEntry: Copy {
    /// Encoded size in bytes.
    const SIZE: usize;
    /// Writes exactly `SIZE` bytes.
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes `SIZE` bytes; `None` when malformed.
    fn decode(bytes: &[u8]) -> Option<Self>;
}

pub(crate) struct IndexFile<E: IndexEntry> {
    path: PathBuf,
    file: Mutex<File>,
    entries: RwLock<Vec<E>>,
}

impl<E: IndexEntry> IndexFile<E> {
    /// Opens (creating if missing) and loads the entries; `keep` decides, given the
    /// previous accepted entry, whether the next one is plausible — loading stops at
    /// the first that is not.
    pub(crate) fn open(path: &Path, keep: impl Fn(Option<&E>, &E) -> bool) -> Result<IndexFile<E>, LogError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut entries: Vec<E> = Vec::with_capacity(bytes.len() / E::SIZE);
        for chunk in bytes.chunks_exact(E::SIZE) {
            match E::decode(chunk) {
                Some(entry) if keep(entries.last(), &entry) => entries.push(entry),
                _ => break,
            }
        }
        let kept_bytes = (entries.len() * E::SIZE) as u64;
        if kept_bytes != bytes.len() as u64 {
            file.set_len(kept_bytes)?;
        }
        Ok(IndexFile {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            entries: RwLock::new(entries),
        })
    }

    /// Appends one entry to the file, then makes it visible to readers.
    pub(crate) fn push(&self, entry: E) -> Result<(), LogError> {
        let file = crate::sync::lock(&self.file);
        let count = crate::sync::read(&self.entries).len();
        let mut bytes = Vec::with_capacity(E::SIZE);
        entry.encode(&mut bytes);
        file.write_all_at(&bytes, (count * E::SIZE) as u64)?;
        crate::sync::write(&self.entries).push(entry);
        Ok(())
    }

    /// Keeps the first `count` entries.
    pub(crate) fn truncate(&self, count: usize) -> Result<(), LogError> {
        let file = crate::sync::lock(&self.file);
        crate::sync::write(&self.entries).truncate(count);
        file.set_len((count * E::SIZE) as u64)?;
        Ok(())
    }

    /// Runs `f` over the entries under the read lock.
    pub(crate) fn with_entries<T>(&self, f: impl FnOnce(&[E]) -> T) -> T {
        f(&crate::sync::read(&self.entries))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        crate::sync::read(&self.entries).len()
    }

    pub(crate) fn last(&self) -> Option<E> {
        crate::sync::read(&self.entries).last().copied()
    }

    pub(crate) fn sync(&self) -> Result<(), LogError> {
        crate::sync::lock(&self.file).sync_data()?;
        Ok(())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}
