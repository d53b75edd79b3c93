//! Response bytes on their way to the socket: encoded bytes, and the stored batches of
//! fetch responses as file ranges, sent with `sendfile` straight from the page cache
//! (no read into a buffer, no copy into the response).

use std::collections::VecDeque;
use std::os::fd::AsFd;

use bytes::{Bytes, BytesMut};
use strom_log::FileRange;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// Most bytes one `sendfile` call is asked for.
const SENDFILE_CHUNK_BYTES: u64 = 1 << 20;

enum Chunk {
    Bytes(Bytes),
    File(FileRange),
}

/// What is queued for one connection, in order.
#[derive(Default)]
pub(crate) struct Outbound {
    chunks: VecDeque<Chunk>,
    /// Encoded bytes after the last chunk, still growing.
    tail: BytesMut,
    /// Bytes in `chunks` (file ranges counted by their length).
    queued: usize,
}

impl Outbound {
    /// The buffer responses are encoded into.
    pub(crate) fn buffer(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    /// Queues `range` after everything encoded so far.
    pub(crate) fn push_file(&mut self, range: FileRange) {
        self.seal_tail();
        self.queued += range.len() as usize;
        self.chunks.push_back(Chunk::File(range));
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            let bytes = self.tail.split().freeze();
            self.queued += bytes.len();
            self.chunks.push_back(Chunk::Bytes(bytes));
        }
    }

    /// Everything queued, in bytes.
    pub(crate) fn len(&self) -> usize {
        self.queued + self.tail.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `other` after this.
    pub(crate) fn append(&mut self, mut other: Outbound) {
        if other.chunks.is_empty() {
            self.tail.extend_from_slice(&other.tail);
            return;
        }
        self.seal_tail();
        other.seal_tail();
        self.queued += other.queued;
        self.chunks.append(&mut other.chunks);
    }

    /// Writes everything queued, in order; empty afterwards.
    pub(crate) async fn write_to(&mut self, stream: &mut TcpStream) -> std::io::Result<()> {
        self.seal_tail();
        while let Some(chunk) = self.chunks.pop_front() {
            match &chunk {
                Chunk::Bytes(bytes) => {
                    stream.write_all(bytes).await?;
                    self.queued -= bytes.len();
                }
                Chunk::File(range) => {
                    send_file(stream, range).await?;
                    self.queued -= range.len() as usize;
                }
            }
        }
        Ok(())
    }
}

impl From<BytesMut> for Outbound {
    fn from(tail: BytesMut) -> Outbound {
        Outbound {
            tail,
            ..Outbound::default()
        }
    }
}

/// Sends `range` with `sendfile`, waiting while the socket is full. A file cut shorter
/// than the range meanwhile (a follower truncating its log) fails the connection: the
/// response's length is already on the wire.
async fn send_file(stream: &TcpStream, range: &FileRange) -> std::io::Result<()> {
    let mut offset = range.position();
    let end = range.position() + range.len();
    while offset < end {
        stream.writable().await?;
        let count = (end - offset).min(SENDFILE_CHUNK_BYTES) as usize;
        let sent = stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream.as_fd(), range.fd(), Some(&mut offset), count).map_err(std::io::Error::from)
        });
        match sent {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the log file is shorter than the fetched range",
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
