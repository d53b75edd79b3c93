//! The state machine: the metadata image with the last applied log id and membership,
//! held together in memory and snapshotted together to `snapshot.json` (temporary
//! file, fsync, rename, directory fsync). Each applied batch is published to the
//! node's subscribers (the broker) as a new [`Applied`].

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::io_error;
use crate::image::MetadataImage;
use crate::types::{CommandResult, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

const SNAPSHOT_FILE: &str = "snapshot.json";

/// What a node has applied: the image as of `last_applied`.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub image: Arc<MetadataImage>,
}

impl Applied {
    /// The index of the last applied entry (0 before any).
    pub fn index(&self) -> u64 {
        self.last_applied.map_or(0, |id| id.index)
    }
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    image: MetadataImage,
}

struct State {
    applied: Applied,
    /// Tells snapshots built at the same log id apart.
    snapshot_seq: u64,
}

struct Inner {
    dir: PathBuf,
    state: Mutex<State>,
    /// The last log id of the snapshot on disk; held while one is written, so a
    /// snapshot built from an older state never replaces a newer installed one.
    on_disk: Mutex<Option<LogId>>,
    published: watch::Sender<Arc<Applied>>,
}

/// The metadata state machine; clones share it (a clone is the snapshot builder).
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Inner>,
}

impl StateMachine {
    /// Opens the state machine in `dir`, starting from its snapshot if there is one.
    pub fn open(dir: &Path) -> Result<StateMachine, StorageError> {
        let applied = match std::fs::read(dir.join(SNAPSHOT_FILE)) {
            Ok(bytes) => applied_from(parse(&bytes)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Applied::default(),
            Err(e) => return Err(io_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, e)),
        };
        let (published, _) = watch::channel(Arc::new(applied.clone()));
        Ok(StateMachine {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                on_disk: Mutex::new(applied.last_applied),
                state: Mutex::new(State {
                    applied,
                    snapshot_seq: 0,
                }),
                published,
            }),
        })
    }

    /// What is applied now, and every later change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Applied>> {
        self.inner.published.subscribe()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while applying leaves the image as the last batch left it (batches
        // apply to a copy first), so the state is usable either way.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, applied: Applied) {
        self.inner.published.send_replace(Arc::new(applied));
    }

    fn write_snapshot(&self, last_log_id: Option<LogId>, bytes: &[u8]) -> Result<(), StorageError> {
        let mut on_disk = self.inner.on_disk.lock().unwrap_or_else(|p| p.into_inner());
        if last_log_id < *on_disk {
            return Ok(());
        }
        write_atomically(&self.inner.dir.join(SNAPSHOT_FILE), bytes)
            .map_err(|e| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        *on_disk = last_log_id;
        Ok(())
    }
}

fn parse(bytes: &[u8]) -> Result<SnapshotFile, StorageError> {
    serde_json::from_slice(bytes).map_err(|e| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))
}

fn applied_from(file: SnapshotFile) -> Applied {
    let mut image = file.image;
    image.reindex();
    Applied {
        last_applied: file.meta.last_log_id,
        membership: file.meta.last_membership,
        image: Arc::new(image),
    }
}

/// Writes `path` so a crash leaves the old or the new content, never a mix.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (meta, image) = {
            let mut state = self.state();
            state.snapshot_seq += 1;
            let applied = &state.applied;
            let snapshot_id = format!(
                "{}-{}-{}",
                applied.last_applied.map_or(0, |id| id.leader_id.term),
                applied.index(),
                state.snapshot_seq
            );
            let meta = SnapshotMeta {
                last_log_id: applied.last_applied,
                last_membership: applied.membership.clone(),
                snapshot_id,
            };
            (meta, applied.image.clone())
        };
        let file = SnapshotFile {
            meta: meta.clone(),
            image: (*image).clone(),
        };
        let bytes =
            serde_json::to_vec(&file).map_err(|e| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        self.write_snapshot(meta.last_log_id, &bytes)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let state = self.state();
        Ok((state.applied.last_applied, state.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = self.state();
        let mut applied = state.applied.clone();
        let mut image = (*applied.image).clone();
        let mut results = Vec::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let outcome = match entry.payload {
                EntryPayload::Blank => Ok(()),
                EntryPayload::Normal(command) => {
                    let outcome = image.apply_batch(&command.records, entry.log_id.index);
                    if let Err(refusal) = &outcome {
                        tracing::debug!(index = entry.log_id.index, %refusal, "metadata batch refused");
                    }
                    outcome
                }
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Ok(())
                }
            };
            results.push(CommandResult { outcome });
        }
        applied.image = Arc::new(image);
        state.applied = applied.clone();
        drop(state);
        self.publish(applied);
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> StateMachine {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let mut file = parse(snapshot.get_ref())?;
        file.meta = meta.clone();
        let bytes =
            serde_json::to_vec(&file).map_err(|e| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        // On disk first: a crash after this restarts from the installed snapshot.
        self.write_snapshot(meta.last_log_id, &bytes)?;
        let applied = applied_from(file);
        tracing::info!(
            last_applied = applied.index(),
            "installed a metadata snapshot from the leader"
        );
        self.state().applied = applied.clone();
        self.publish(applied);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        match std::fs::read(self.inner.dir.join(SNAPSHOT_FILE)) {
            Ok(bytes) => {
                let file = parse(&bytes)?;
                Ok(Some(Snapshot {
                    meta: file.meta,
                    snapshot: Box::new(Cursor::new(bytes)),
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, e)),
        }
    }
}
