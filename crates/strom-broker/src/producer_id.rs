//! Producer id allocation: ids are handed out from blocks; the end of the current
//! block is written to `producer-ids` (atomically) before any id of it is used, so a
//! restart continues after the block and never reuses an id.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::Result;
use crate::files::write_atomically;

/// Ids reserved per write of the block file.
const BLOCK_SIZE: i64 = 1000;
const FILE_NAME: &str = "producer-ids";

#[derive(Debug)]
struct State {
    next: i64,
    block_end: i64,
}

#[derive(Debug)]
pub struct ProducerIdManager {
    path: PathBuf,
    state: Mutex<State>,
}

impl ProducerIdManager {
    pub fn open(data_dir: &Path) -> Result<ProducerIdManager> {
        let path = data_dir.join(FILE_NAME);
        let block_end = match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<i64>().unwrap_or(0).max(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        Ok(ProducerIdManager {
            path,
            state: Mutex::new(State {
                next: block_end,
                block_end,
            }),
        })
    }

    /// A producer id never handed out before.
    pub fn next_id(&self) -> Result<i64> {
        let mut state = crate::sync::lock(&self.state);
        if state.next >= state.block_end {
            let block_end = state.next + BLOCK_SIZE;
            write_atomically(&self.path, block_end.to_string().as_bytes())?;
            state.block_end = block_end;
        }
        let id = state.next;
        state.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let first = ProducerIdManager::open(dir.path()).unwrap();
        assert_eq!((first.next_id().unwrap(), first.next_id().unwrap()), (0, 1));
        drop(first);
        let second = ProducerIdManager::open(dir.path()).unwrap();
        assert_eq!(second.next_id().unwrap(), BLOCK_SIZE);
    }
}
