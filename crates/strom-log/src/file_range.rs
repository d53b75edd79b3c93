//! `FileRange`: a run of whole stored batches, named by file and byte range instead of
//! copied out, so a fetch can send it from the page cache to a socket (`sendfile`)
//! without a copy in between. It holds the segment's open file, so the data stays
//! readable even if retention or compaction removes the segment meanwhile.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::error::LogError;

#[derive(Clone)]
pub struct FileRange {
    file: Arc<File>,
    position: u64,
    len: u64,
}

impl std::fmt::Debug for FileRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileRange(+{}, {} bytes)", self.position, self.len)
    }
}

impl FileRange {
    pub(crate) fn new(file: Arc<File>, position: u64, len: u64) -> FileRange {
        FileRange { file, position, len }
    }

    /// The segment file's descriptor (for `sendfile`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Where the batches start in the file.
    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads the bytes (for readers that need them in memory: coordinators replaying
    /// their topics, a TLS connection, tests). The file may have been cut meanwhile (a
    /// follower's truncation): then this fails instead of returning fewer bytes.
    pub fn read(&self) -> Result<Bytes, LogError> {
        let len = usize::try_from(self.len).map_err(|_| LogError::corrupt("file range too large"))?;
        let mut buffer = BytesMut::zeroed(len);
        self.file.read_exact_at(&mut buffer, self.position)?;
        Ok(buffer.freeze())
    }
}
