//! The log manager: the data directory and the partition logs in it (Kafka's
//! `LogManager`). It owns the directory lock and `meta.properties`, creates, checks and
//! deletes partition directories, and does the time-based work on the logs (segment
//! rolls, retention, compaction, `flush.ms`), which the broker's background loops call.
//!
//! Layout of the data directory (`log.dirs`):
//! - `meta.properties`: `cluster.id`, `node.id` and `directory.id`, written once the
//!   metadata quorum has fixed the cluster id.
//! - `__cluster_metadata-0/`: the metadata quorum's log and snapshot (`strom_cluster`).
//! - `topics.json.migrated`: the topic list of the single-node version, kept after its
//!   topics moved into the metadata log (`migration`).
//! - `dynamic-configs.json.migrated`: the dynamic broker and group configs of the
//!   previous version, kept after they moved into the metadata log (`migration`).
//! - `<topic>-<partition>.<topic id>-delete/`: a deleted topic's partition, renamed (the
//!   deletion's commit point) and then removed; a start removes leftovers and finishes
//!   the deletion of their topic.
//! - `<topic>-<partition>/`: one partition's log (see `strom_log::Log`), with a
//!   `partition.metadata` file naming the topic id it belongs to.
//! - `<topic>-<partition>.<topic id>-stray/`: a partition of a topic the metadata does
//!   not know, set aside at start (never deleted: the operator decides).
//! - `.lock`: held while a broker runs, so two cannot share a directory.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strom_log::{Clock, LogConfig};
use uuid::Uuid;

use crate::constants::{DELETE_DIR_SUFFIX, META_PROPERTIES_FILE, STRAY_DIR_SUFFIX};
use crate::error::{BrokerError, Result};
use crate::files::write_atomically;
use crate::partition::Partition;
use crate::topic::Topic;

pub struct LogManager {
    data_dir: PathBuf,
    node_id: i32,
    meta: MetaProperties,
    clock: Arc<dyn Clock>,
    /// Ids of topics whose deletion a previous run committed (renamed directories).
    deleted_at_start: HashSet<Uuid>,
    _lock: fs::File,
}

impl LogManager {
    /// Locks the data directory (creating it), reads `meta.properties` and removes
    /// directories of committed deletions.
    pub fn open(data_dir: &Path, node_id: i32, clock: Arc<dyn Clock>) -> Result<LogManager> {
        fs::create_dir_all(data_dir)?;
        let lock = fs::File::create(data_dir.join(".lock"))?;
        if lock.try_lock().is_err() {
            return Err(BrokerError::Storage(format!(
                "data directory {} is in use by another process",
                data_dir.display()
            )));
        }
        let meta = load_meta(data_dir, node_id)?;
        let deleted_at_start = remove_deleted_dirs(data_dir);
        Ok(LogManager {
            data_dir: data_dir.to_path_buf(),
            node_id,
            meta,
            clock,
            deleted_at_start,
            _lock: lock,
        })
    }

    /// The cluster this directory belongs to (known once the quorum fixed it).
    pub fn cluster_id(&self) -> &str {
        self.meta.cluster_id.get().map_or("", String::as_str)
    }

    /// The cluster id `meta.properties` names, if this directory joined one before.
    pub fn stored_cluster_id(&self) -> Option<&str> {
        self.meta.stored.as_deref()
    }

    /// The id of this data directory: new when it was first used, so a node whose disk
    /// was replaced is told apart from the one before it.
    pub fn directory_id(&self) -> Uuid {
        self.meta.directory_id
    }

    /// Records the cluster id the quorum fixed, writing `meta.properties` if it is new.
    /// Refuses an id other than the stored one: the directory belongs to another cluster.
    pub fn set_cluster_id(&self, cluster_id: &str) -> Result<()> {
        match &self.meta.stored {
            Some(stored) if stored != cluster_id => {
                return Err(BrokerError::Storage(format!(
                    "data directory {} belongs to cluster {stored}, but the metadata quorum is cluster {cluster_id}; \
                     point this node at its own cluster's voters or give it an empty data directory",
                    self.data_dir.display()
                )))
            }
            Some(_) => {}
            None => {
                let text = format!(
                    "version=1\ncluster.id={cluster_id}\nnode.id={}\ndirectory.id={}\n",
                    self.node_id, self.meta.directory_id
                );
                write_atomically(&self.data_dir.join(META_PROPERTIES_FILE), text.as_bytes())?;
            }
        }
        let _ = self.meta.cluster_id.set(cluster_id.to_string());
        Ok(())
    }

    /// Sets aside partition directories of topics the metadata does not know (`known`
    /// says which ids it does) as `*.<id>-stray`: a deletion committed while this node
    /// was down, or a directory copied in by hand. Never deleted: data is removed only
    /// for a committed deletion this node applies.
    pub fn set_aside_strays(&self, known: impl Fn(Uuid) -> bool) {
        let Ok(entries) = fs::read_dir(&self.data_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with(STRAY_DIR_SUFFIX) || name.ends_with(DELETE_DIR_SUFFIX) {
                continue;
            }
            let Ok(text) = fs::read_to_string(entry.path().join("partition.metadata")) else {
                continue;
            };
            let Some(id) = parse_partition_metadata(&text) else {
                continue;
            };
            if known(id) {
                continue;
            }
            let aside = self.data_dir.join(format!("{name}.{}{STRAY_DIR_SUFFIX}", id.simple()));
            match fs::rename(entry.path(), &aside) {
                Ok(()) => {
                    tracing::warn!(dir = %aside.display(), topic_id = %id, "partition of a topic the metadata does not know set aside")
                }
                Err(e) => {
                    tracing::warn!(dir = %entry.path().display(), error = %e, "could not set aside a stray partition")
                }
            }
        }
    }

    /// Whether a previous run committed the deletion of topic `id`.
    pub fn was_deleted(&self, id: Uuid) -> bool {
        self.deleted_at_start.contains(&id)
    }

    fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{partition}"))
    }

    /// Opens (creating it if new) the directory of partition `index` of topic `name`
    /// with id `id`, checking its `partition.metadata` marker: a directory left by an
    /// earlier topic of the same name is removed; one whose marker does not parse is
    /// refused, never deleted.
    pub fn open_partition(
        &self,
        name: &Arc<str>,
        id: Uuid,
        index: i32,
        log_config: LogConfig,
    ) -> Result<Arc<Partition>> {
        let dir = self.partition_dir(name, index);
        let marker = dir.join("partition.metadata");
        let expected = format!("version: 0\ntopic_id: {id}\n");
        let mut write_marker = !marker.exists();
        match fs::read_to_string(&marker) {
            Ok(found) if found != expected => match parse_partition_metadata(&found) {
                Some(found_id) if found_id == id => {
                    // Ours, written differently (blank lines, spacing): keep the data.
                    write_marker = true;
                }
                Some(found_id) => {
                    // A well-formed marker naming another topic id: left over from an
                    // earlier topic of the same name whose deletion was cut short.
                    tracing::warn!(dir = %dir.display(), %found_id, topic_id = %id, "removing the partition directory of an earlier topic of this name");
                    fs::remove_dir_all(&dir)?;
                    write_marker = true;
                }
                None => {
                    // Never delete data because a marker does not parse.
                    return Err(BrokerError::Storage(format!(
                        "{} does not parse, so it is not known which topic the data in {} belongs to; \
                         if it is topic {name} (id {id}), delete that file and start again; \
                         otherwise move the directory away",
                        marker.display(),
                        dir.display()
                    )));
                }
            },
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        fs::create_dir_all(&dir)?;
        if write_marker {
            write_atomically(&marker, expected.as_bytes())?;
        }
        Ok(Arc::new(Partition::open(
            name.clone(),
            index,
            &dir,
            log_config,
            self.clock.clone(),
            self.node_id,
        )?))
    }

    /// Commits the deletion of a topic's partitions by renaming their directories to
    /// `*.<id>-delete`: it needs no free space, and a start that finds them finishes the
    /// deletion. If no directory could be renamed the renames are undone and the error
    /// returned; otherwise the deletion stands. Returns the renamed directories.
    pub fn commit_deletion(&self, name: &str, id: Uuid, partitions: &[i32]) -> Result<Vec<PathBuf>> {
        let mut renamed = Vec::new();
        for index in partitions {
            let dir = self.partition_dir(name, *index);
            let gone = self
                .data_dir
                .join(format!("{name}-{index}.{}{DELETE_DIR_SUFFIX}", id.simple()));
            match fs::rename(&dir, &gone) {
                Ok(()) => renamed.push((dir, gone)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    let undone = renamed.iter().rev().all(|(dir, gone)| fs::rename(gone, dir).is_ok());
                    if undone {
                        return Err(e.into());
                    }
                    // A renamed directory that stays renamed is a committed deletion
                    // (the next start finishes it): go on deleting.
                    tracing::error!(topic = %name, error = %e, "could not rename a partition directory; deleting the topic anyway");
                    break;
                }
            }
        }
        // Make the renames (the commit) durable before any data goes.
        if let Err(e) = fs::File::open(&self.data_dir).and_then(|d| d.sync_all()) {
            tracing::warn!(error = %e, "could not sync the data directory");
        }
        Ok(renamed.into_iter().map(|(_, gone)| gone).collect())
    }

    /// Removes directories renamed by [`LogManager::commit_deletion`].
    pub fn remove_deleted(&self, renamed: &[PathBuf]) {
        for gone in renamed {
            // Readers may still hold the files open; emptying them frees the space now.
            release_space(gone);
            if let Err(e) = fs::remove_dir_all(gone) {
                tracing::warn!(dir = %gone.display(), error = %e, "could not remove partition directory");
            }
        }
    }

    /// Time-based work: roll segments past `segment.ms`, apply retention, forget idle
    /// producers. Blocking I/O.
    pub fn maintain(&self, topics: &[Arc<Topic>], producer_id_expiration_ms: i64) {
        let now = self.clock.now_ms();
        for topic in topics {
            let delete = topic.limits().delete;
            for partition in topic.partitions() {
                partition.expire_producers(now, producer_id_expiration_ms);
                let log = partition.log();
                if let Err(e) = log.roll_if_due() {
                    tracing::warn!(partition = ?partition, error = %e, "segment roll failed");
                }
                if !delete {
                    continue;
                }
                match log.apply_retention() {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(partition = ?partition, segments = n, "retention deleted segments"),
                    Err(e) => tracing::warn!(partition = ?partition, error = %e, "retention failed"),
                }
            }
        }
    }

    /// Compact the closed segments of every `cleanup.policy=compact` topic. Blocking I/O.
    pub fn compact(&self, topics: &[Arc<Topic>]) {
        for topic in topics {
            let limits = topic.limits();
            if !limits.compact {
                continue;
            }
            for partition in topic.partitions() {
                match partition.log().compact(limits.compaction) {
                    Ok(stats) if stats.records_removed > 0 => tracing::info!(
                        partition = ?partition,
                        removed = stats.records_removed,
                        bytes_before = stats.bytes_before,
                        bytes_after = stats.bytes_after,
                        "compacted"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(partition = ?partition, error = %e, "compaction failed"),
                }
            }
        }
    }

    /// `flush.ms`: fsyncs every partition whose records have waited past its topic's
    /// `flush.ms` since the last fsync. Blocking I/O.
    pub fn flush_stale(&self, topics: &[Arc<Topic>]) {
        for topic in topics {
            let flush_ms = topic.limits().flush_ms;
            if flush_ms == i64::MAX {
                continue;
            }
            for partition in topic.partitions() {
                if let Err(error) = partition.flush_if_older_than(flush_ms) {
                    tracing::error!(?partition, %error, "scheduled fsync failed");
                }
            }
        }
    }
}

/// The topic id in a `partition.metadata` file (`version: 0` and `topic_id: <uuid>` lines,
/// in any order, blank lines and spacing ignored), or `None` unless it is well formed.
fn parse_partition_metadata(text: &str) -> Option<Uuid> {
    let mut version = None;
    let mut topic_id = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (key, value) = line.split_once(':')?;
        let slot = match key.trim() {
            "version" => &mut version,
            "topic_id" => &mut topic_id,
            _ => return None,
        };
        if slot.replace(value.trim()).is_some() {
            return None;
        }
    }
    if version? != "0" {
        return None;
    }
    Uuid::parse_str(topic_id?).ok()
}

/// Removes `<topic>-<partition>.<topic id>-delete` directories; returns the ids of
/// the topics they belonged to.
fn remove_deleted_dirs(data_dir: &Path) -> std::collections::HashSet<Uuid> {
    let mut ids = std::collections::HashSet::new();
    let Ok(entries) = fs::read_dir(data_dir) else {
        return ids;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(DELETE_DIR_SUFFIX) else {
            continue;
        };
        if let Some(id) = stem.rsplit_once('.').and_then(|(_, id)| Uuid::parse_str(id).ok()) {
            ids.insert(id);
        }
        if let Err(e) = fs::remove_dir_all(entry.path()) {
            tracing::warn!(dir = %entry.path().display(), error = %e, "could not remove deleted partition");
        }
    }
    ids
}

/// Empties the files of a deleted partition directory (best effort).
fn release_space(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if let Ok(file) = fs::OpenOptions::new().write(true).open(entry.path()) {
            let _ = file.set_len(0);
        }
    }
}

/// What `meta.properties` says, and the cluster id once the quorum fixed it.
struct MetaProperties {
    stored: Option<String>,
    directory_id: Uuid,
    cluster_id: std::sync::OnceLock<String>,
}

/// Reads `meta.properties` (absent in a new directory, written once the cluster id is
/// known); refuses a directory of another node.
fn load_meta(data_dir: &Path, node_id: i32) -> Result<MetaProperties> {
    let path = data_dir.join(META_PROPERTIES_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(MetaProperties {
                stored: None,
                directory_id: Uuid::new_v4(),
                cluster_id: Default::default(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    let props: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    if let Some(stored) = props.get("node.id") {
        if *stored != node_id.to_string() {
            return Err(BrokerError::Storage(format!(
                "{} belongs to node.id {stored}, but this broker is node.id {node_id}",
                path.display()
            )));
        }
    }
    let stored = props
        .get("cluster.id")
        .map(|s| s.to_string())
        .ok_or_else(|| BrokerError::Storage(format!("{} has no cluster.id", path.display())))?;
    // Directories of the single-node version have no directory.id: give them one now.
    let directory_id = match props.get("directory.id").map(|s| Uuid::parse_str(s)) {
        Some(Ok(id)) => id,
        Some(Err(_)) => {
            return Err(BrokerError::Storage(format!(
                "{} has a malformed directory.id",
                path.display()
            )))
        }
        None => {
            let id = Uuid::new_v4();
            let text = format!("version=1\ncluster.id={stored}\nnode.id={node_id}\ndirectory.id={id}\n");
            write_atomically(&path, text.as_bytes())?;
            id
        }
    };
    Ok(MetaProperties {
        stored: Some(stored),
        directory_id,
        cluster_id: Default::default(),
    })
}

/// A Kafka-style cluster id: a random UUID in URL-safe base64 without padding (22 chars).
pub fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let value = u128::from_be_bytes(*Uuid::new_v4().as_bytes());
    // 22 base64 digits cover 132 bits; the top 4 are zero padding.
    (0..22)
        .rev()
        .map(|i| ALPHABET[((value >> (i * 6)) & 63) as usize] as char)
        .collect()
}
