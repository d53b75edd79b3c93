//! One test per rule of [`LeaderEpochCache`], and the checkpoint file format.

use super::*;

fn entries(pairs: &[(i32, i64)]) -> Vec<EpochEntry> {
    pairs
        .iter()
        .map(|&(epoch, start_offset)| EpochEntry { epoch, start_offset })
        .collect()
}

fn cache_with(dir: &Path, pairs: &[(i32, i64)]) -> LeaderEpochCache {
    let mut cache = LeaderEpochCache::new(dir);
    for &(epoch, start) in pairs {
        assert!(cache.assign(epoch, start).unwrap());
    }
    cache
}

#[test]
fn assign_appends_larger_epochs_and_ignores_the_latest_epoch_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = cache_with(dir.path(), &[(1, 0), (3, 10)]);
    assert_eq!(cache.latest_epoch(), Some(3));
    assert!(!cache.assign(3, 10).unwrap(), "same entry");
    assert!(
        !cache.assign(3, 25).unwrap(),
        "the latest epoch keeps its first start offset"
    );
    assert!(cache.assign(4, 30).unwrap());
    assert_eq!(cache.entries(), entries(&[(1, 0), (3, 10), (4, 30)]));
}

#[test]
fn assign_ignores_negative_epochs_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = LeaderEpochCache::new(dir.path());
    assert!(!cache.assign(UNDEFINED_EPOCH, 5).unwrap());
    assert!(!cache.assign(2, -1).unwrap());
    assert_eq!(cache.latest_epoch(), None);
    assert!(
        !dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE_NAME).exists(),
        "nothing written"
    );
}

#[test]
fn assign_of_a_larger_epoch_removes_entries_starting_at_or_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = cache_with(dir.path(), &[(1, 0), (2, 10), (3, 20)]);
    assert!(cache.assign(5, 10).unwrap());
    assert_eq!(cache.entries(), entries(&[(1, 0), (5, 10)]));
}

#[test]
fn assign_of_the_latest_epoch_at_a_lower_offset_moves_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = cache_with(dir.path(), &[(1, 0), (3, 20)]);
    assert!(cache.assign(3, 15).unwrap());
    assert_eq!(cache.entries(), entries(&[(1, 0), (3, 15)]));
}

#[test]
fn assign_of_an_older_epoch_removes_the_later_epochs_as_kafka_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = cache_with(dir.path(), &[(1, 0), (3, 20), (5, 40)]);
    assert!(cache.assign(2, 50).unwrap());
    assert_eq!(cache.entries(), entries(&[(1, 0), (2, 50)]));
}

#[test]
fn end_offset_for_follows_offsets_for_leader_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_with(dir.path(), &[(2, 10), (4, 30), (7, 50)]);
    let end = |epoch| cache.end_offset_for(epoch, 80);
    assert_eq!(end(7), (7, 80), "latest epoch ends at the log end");
    assert_eq!(end(4), (4, 50), "known epoch ends where the next starts");
    assert_eq!(end(2), (2, 30));
    assert_eq!(
        end(5),
        (4, 50),
        "unknown epoch between: the epoch below, the start above"
    );
    assert_eq!(end(1), (1, 10), "below every epoch: itself and the first start");
    assert_eq!(end(8), (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET), "too large");
    assert_eq!(end(UNDEFINED_EPOCH), (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET));
    let empty = LeaderEpochCache::new(dir.path());
    assert_eq!(empty.end_offset_for(0, 80), (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET));
}

#[test]
fn truncate_from_end_removes_entries_starting_at_or_after_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = cache_with(dir.path(), &[(1, 0), (2, 10), (3, 20)]);
    assert!(!cache.truncate_from_end(21).unwrap(), "latest starts below the end");
    assert!(!cache.truncate_from_end(-1).unwrap());
    assert!(cache.truncate_from_end(10).unwrap());
    assert_eq!(cache.entries(), entries(&[(1, 0)]));
    assert!(cache.truncate_from_end(0).unwrap());
    assert!(cache.entries().is_empty());
}

#[test]
fn truncate_from_start_keeps_the_epoch_of_the_new_first_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = cache_with(dir.path(), &[(1, 0), (2, 10), (3, 20)]);
    assert!(!cache.truncate_from_start(0).unwrap(), "already starts there");
    assert!(cache.truncate_from_start(15).unwrap());
    assert_eq!(cache.entries(), entries(&[(2, 15), (3, 20)]));
    assert!(cache.truncate_from_start(20).unwrap());
    assert_eq!(cache.entries(), entries(&[(3, 20)]));
    assert!(!cache.truncate_from_start(20).unwrap());
    assert!(cache.truncate_from_start(99).unwrap());
    assert_eq!(cache.entries(), entries(&[(3, 99)]));
}

#[test]
fn the_checkpoint_is_kafkas_text_format_and_survives_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = cache_with(dir.path(), &[(0, 0), (3, 1200)]);
    let path = dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE_NAME);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "0\n2\n0 0\n3 1200\n");
    cache.truncate_from_start(5).unwrap();
    let loaded = LeaderEpochCache::load(dir.path()).unwrap();
    assert_eq!(loaded.entries(), entries(&[(0, 5), (3, 1200)]));
    assert!(!dir
        .path()
        .join(format!("{LEADER_EPOCH_CHECKPOINT_FILE_NAME}.tmp"))
        .exists());
}

#[test]
fn a_missing_or_malformed_checkpoint_does_not_load() {
    let dir = tempfile::tempdir().unwrap();
    assert!(LeaderEpochCache::load(dir.path()).is_none());
    let path = dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE_NAME);
    for text in [
        "",
        "1\n0\n",
        "0\n2\n0 0\n",
        "0\n1\n0 0\n1 5\n",
        "0\n2\n3 10\n2 20\n",
        "0\n2\n1 10\n2 10\n",
        "0\n1\n-1 0\n",
        "0\n1\n1 x\n",
        "0\n1\n1 2 3\n",
        "0\n99999999999\n",
    ] {
        std::fs::write(&path, text).unwrap();
        assert!(LeaderEpochCache::load(dir.path()).is_none(), "{text:?}");
    }
    std::fs::write(&path, "0\n0\n").unwrap();
    assert!(LeaderEpochCache::load(dir.path()).unwrap().entries().is_empty());
}
