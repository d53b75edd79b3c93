//! The metadata log and the vote in one redb database. redb commits with fsync
//! (`Durability::Immediate`, its default), so when a method returns, what it wrote
//! survives a crash: openraft is told of an append only after that, and a vote is
//! persisted before the node answers with it.
//!
//! The quorum runs on its own runtime, so these short blocking writes stall only the
//! quorum's tasks, never the brokers' I/O threads.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::io_error;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// A file of allocated zeros beside the log, given up when the disk is nearly full so
/// metadata changes still commit: a topic deletion that gives space back, say.
const BALLAST_FILE: &str = "ballast";
const BALLAST_BYTES: u64 = 1 << 20;
/// Below this much free space a write gives up the ballast first (redb cannot be used
/// again after a failed commit until it is reopened, so the log must not run out).
const LOW_SPACE_BYTES: u64 = 256 << 10;
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// The metadata log: entries by index, plus the vote, the committed and the last purged
/// log ids. Clones share the database (a clone is the log reader).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    ballast: Option<Arc<Ballast>>,
}

/// The ballast file (see [`BALLAST_FILE`]).
struct Ballast {
    path: std::path::PathBuf,
}

impl Ballast {
    /// The ballast at `path`, written if it is missing and the disk has room for it
    /// and more.
    fn open(path: std::path::PathBuf) -> Ballast {
        let ballast = Ballast { path };
        ballast.restore();
        ballast
    }

    fn free_bytes(&self) -> Option<u64> {
        let dir = self.path.parent()?;
        let stat = rustix::fs::statvfs(dir).ok()?;
        Some(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// Writes the ballast again once the disk has room for it and the low mark.
    fn restore(&self) {
        if self.path.exists()
            || self
                .free_bytes()
                .is_none_or(|free| free < BALLAST_BYTES + 4 * LOW_SPACE_BYTES)
        {
            return;
        }
        let written = (|| {
            use std::io::Write;
            let tmp = self.path.with_extension("tmp");
            let mut file = std::fs::File::create(&tmp)?;
            // Zeros written, not a sparse length: the blocks must really be held.
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..BALLAST_BYTES / zeros.len() as u64 {
                file.write_all(&zeros)?;
            }
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(self.path.with_extension("tmp"));
            tracing::debug!(error = %e, "could not write the metadata log's ballast");
        }
    }

    /// Before a write: gives the ballast up when the disk is nearly full, or puts it
    /// back when there is room again.
    fn before_write(&self) {
        match self.free_bytes() {
            Some(free) if free < LOW_SPACE_BYTES => {
                if std::fs::remove_file(&self.path).is_ok() {
                    tracing::warn!(
                        free,
                        "the disk is nearly full: gave up the metadata log's reserved space"
                    );
                }
            }
            _ => self.restore(),
        }
    }
}

impl LogStore {
    /// Opens (creating it if new) the log at `path`.
    pub fn open(path: &Path) -> Result<LogStore, StorageError> {
        let db = Database::create(path).map_err(|e| io_error(ErrorSubject::Store, ErrorVerb::Read, e))?;
        let mut store = LogStore {
            db: Arc::new(db),
            ballast: None,
        };
        // Create the tables, so that reads of a new log find them empty.
        store.write(ErrorSubject::Store, |txn| {
            txn.open_table(ENTRIES)?;
            txn.open_table(META)?;
            Ok(())
        })?;
        let ballast = path.with_file_name(BALLAST_FILE);
        store.ballast = Some(Arc::new(Ballast::open(ballast)));
        Ok(store)
    }

    /// Whether nothing was ever stored: no entry, no vote, nothing purged.
    pub fn is_empty(&self) -> Result<bool, StorageError> {
        let no_entries = self.read(ErrorSubject::Logs, |txn| Ok(txn.open_table(ENTRIES)?.last()?.is_none()))?;
        Ok(no_entries && self.meta::<Vote>(VOTE)?.is_none() && self.meta::<LogId>(LAST_PURGED)?.is_none())
    }

    fn read<T>(
        &self,
        subject: ErrorSubject<u64>,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StorageError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| io_error(subject.clone(), ErrorVerb::Read, e))?;
        f(&txn).map_err(|e| io_error(subject, ErrorVerb::Read, e))
    }

    /// One write transaction, committed (fsynced) before this returns.
    fn write(
        &self,
        subject: ErrorSubject<u64>,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), StorageError> {
        if let Some(ballast) = &self.ballast {
            ballast.before_write();
        }
        self.commit(subject, f)
    }

    fn commit(
        &self,
        subject: ErrorSubject<u64>,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), StorageError> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| io_error(subject.clone(), ErrorVerb::Write, e))?;
        f(&txn).map_err(|e| io_error(subject.clone(), ErrorVerb::Write, e))?;
        txn.commit().map_err(|e| io_error(subject, ErrorVerb::Write, e))
    }

    fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StorageError> {
        let bytes = self.read(ErrorSubject::Store, |txn| {
            Ok(txn.open_table(META)?.get(key)?.map(|v| v.value().to_vec()))
        })?;
        bytes.map(|b| decode(ErrorSubject::Store, &b)).transpose()
    }

    fn set_meta<T: Serialize>(&self, subject: ErrorSubject<u64>, key: &str, value: &T) -> Result<(), StorageError> {
        let bytes = encode(subject.clone(), value)?;
        self.write(subject, |txn| {
            txn.open_table(META)?.insert(key, bytes.as_slice())?;
            Ok(())
        })
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StorageError> {
        let last = self.read(ErrorSubject::Logs, |txn| {
            Ok(txn.open_table(ENTRIES)?.last()?.map(|(_, v)| v.value().to_vec()))
        })?;
        Ok(last
            .map(|bytes| decode::<Entry>(ErrorSubject::Logs, &bytes))
            .transpose()?
            .map(|entry| entry.log_id))
    }
}

fn encode<T: Serialize>(subject: ErrorSubject<u64>, value: &T) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(value).map_err(|e| io_error(subject, ErrorVerb::Write, e))
}

fn decode<T: DeserializeOwned>(subject: ErrorSubject<u64>, bytes: &[u8]) -> Result<T, StorageError> {
    serde_json::from_slice(bytes).map_err(|e| io_error(subject, ErrorVerb::Read, e))
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let raw = self.read(ErrorSubject::Logs, |txn| {
            let table = txn.open_table(ENTRIES)?;
            let mut raw = Vec::new();
            for item in table.range((range.start_bound().cloned(), range.end_bound().cloned()))? {
                raw.push(item?.1.value().to_vec());
            }
            Ok(raw)
        })?;
        raw.iter().map(|bytes| decode(ErrorSubject::Logs, bytes)).collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id = self.meta::<LogId>(LAST_PURGED)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.set_meta(ErrorSubject::Vote, VOTE, vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.set_meta(ErrorSubject::Store, COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded = entries
            .into_iter()
            .map(|entry| Ok((entry.log_id.index, encode(ErrorSubject::Logs, &entry)?)))
            .collect::<Result<Vec<_>, StorageError>>()?;
        let result = self.write(ErrorSubject::Logs, |txn| {
            let mut table = txn.open_table(ENTRIES)?;
            for (index, bytes) in &encoded {
                table.insert(*index, bytes.as_slice())?;
            }
            Ok(())
        });
        // Acknowledged only now that the entries are on disk.
        callback.log_io_completed(
            result
                .as_ref()
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string())),
        );
        result
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write(ErrorSubject::Logs, |txn| {
            txn.open_table(ENTRIES)?.retain_in(log_id.index.., |_, _| false)?;
            Ok(())
        })
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let bytes = encode(ErrorSubject::Logs, &log_id)?;
        // The purge mark and the removal commit together: a crash leaves both or neither.
        self.write(ErrorSubject::Logs, |txn| {
            txn.open_table(META)?.insert(LAST_PURGED, bytes.as_slice())?;
            txn.open_table(ENTRIES)?.retain_in(..=log_id.index, |_, _| false)?;
            Ok(())
        })
    }
}
