//! Small files of a log directory written atomically and read forgivingly: the decimal
//! `log-start-offset`, `recovery-point` and compaction swap records, and any text file
//! that must be replaced whole (the leader-epoch checkpoint).
//!
//! Atomic replacement: write `name.tmp`, fsync it, rename it over `name`, fsync the
//! directory. A crash leaves either the old or the new file; a leftover `.tmp` is
//! removed when the log is opened.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::constants::TEMPORARY_FILE_SUFFIX;
use crate::error::LogError;

/// The decimal number in `path`, or `None` when it is missing or does not parse.
pub(crate) fn read_number_file(path: &Path) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// fsyncs the directory itself, making creations, renames and removals in it durable.
pub(crate) fn sync_directory(dir: &Path) -> Result<(), LogError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Writes `value` to `dir/name` atomically.
pub(crate) fn write_number_file(dir: &Path, name: &str, value: i64) -> Result<(), LogError> {
    write_file_atomically(dir, name, format!("{value}\n").as_bytes())
}

/// Replaces `dir/name` with `contents` atomically (temporary file, fsync, rename,
/// directory fsync).
pub(crate) fn write_file_atomically(dir: &Path, name: &str, contents: &[u8]) -> Result<(), LogError> {
    let path = dir.join(name);
    let temporary = dir.join(format!("{name}.{TEMPORARY_FILE_SUFFIX}"));
    let mut file = File::create(&temporary)?;
    file.write_all(contents)?;
    file.sync_data()?;
    drop(file);
    std::fs::rename(&temporary, &path)?;
    sync_directory(dir)
}

/// Removes `path`; a file already gone is not an error.
pub(crate) fn remove_if_present(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error.into()),
    }
}
