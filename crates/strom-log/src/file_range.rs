//! `FileRange`: a run of whole stored batches, named by file and byte range instead of
//! copied out, so a fetch can send it from the page cache to a socket (`sendfile`)
//! without a copy in between. It holds its segment, so the file stays open (and its
//! data readable) even if retention or compaction removes the segment meanwhile.

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::error::LogError;
use crate::segment::LogSegment;

#[derive(Clone)]
pub struct FileRange {
    segment: Arc<LogSegment>,
    position: u64,
    len: u64,
}

impl std::fmt::Debug for FileRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FileRange({}+{}, {} bytes)",
            self.segment.base_offset(),
            self.position,
            self.len
        )
    }
}

impl FileRange {
    pub(crate) fn new(segment: Arc<LogSegment>, position: u64, len: u64) -> FileRange {
        FileRange { segment, position, len }
    }

    /// The segment file's descriptor (for `sendfile`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.segment.log_file().as_fd()
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
        self.segment.log_file().read_exact_at(&mut buffer, self.position)?;
        Ok(buffer.freeze())
    }
}
