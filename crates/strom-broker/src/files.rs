//! Small files the broker keeps beside the logs (`topics.json`, `meta.properties`,
//! `partition.metadata`, snapshots), written so that a crash leaves the old or the new
//! contents, never a mix.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::Result;

/// Replaces `path` with `bytes`: a temporary file, fsync, rename, directory fsync.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let written = fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    });
    if let Err(e) = written {
        // Leave no half-written file behind (a full disk, say).
        let _ = fs::remove_file(&tmp);
        return Err(e.into());
    }
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
