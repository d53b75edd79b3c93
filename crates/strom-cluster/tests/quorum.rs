//! A quorum of one voter: proposals commit and apply, refusals change nothing, and the
//! image survives restarts, from the log and from a snapshot with the log purged behind it.

use std::collections::BTreeMap;
use std::time::Duration;

use strom_cluster::{ClusterError, MetadataRecord, Quorum, QuorumConfig, Refusal, TopicRecord};
use uuid::Uuid;

fn topic(name: &str) -> MetadataRecord {
    MetadataRecord::Topic(TopicRecord {
        name: name.into(),
        id: Uuid::new_v4(),
        configs: BTreeMap::new(),
    })
}

fn config(dir: &std::path::Path) -> QuorumConfig {
    let mut config = QuorumConfig::single(1, dir);
    config.snapshot_after_entries = 5;
    config.entries_kept_after_snapshot = 2;
    config
}

#[test]
fn one_voter_commits_and_recovers_from_log_and_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let quorum = Quorum::start(config(dir.path())).unwrap();
    // A zero-config node opens no port.
    assert_eq!(quorum.listen_addr(), None);
    let first = quorum.propose(vec![topic("t0")]).unwrap();
    assert!(quorum.applied().index() >= first);
    assert!(quorum.applied().image.topic("t0").is_some());
    match quorum.propose(vec![topic("t0")]) {
        Err(ClusterError::Refused(Refusal::TopicExists(name))) => assert_eq!(name, "t0"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    for i in 1..20 {
        quorum.propose(vec![topic(&format!("t{i}"))]).unwrap();
    }
    assert!(quorum.is_controller());
    let image = quorum.applied().image.clone();
    // Wait for a snapshot and the purge behind it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while quorum.status().snapshot_index < 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot: {:?}",
            quorum.status()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    quorum.shutdown();
    drop(quorum);

    let quorum = Quorum::start(config(dir.path())).unwrap();
    let applied = quorum
        .wait_for(Duration::from_secs(10), "replay", |a| a.image.topics().len() == 20)
        .unwrap();
    assert_eq!(*applied.image, *image);
    // Still the controller of its one-voter quorum: new proposals commit.
    quorum.propose(vec![topic("after-restart")]).unwrap();
    quorum.shutdown();
}

#[test]
fn a_node_outside_the_voters_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = QuorumConfig::single(1, dir.path());
    config.node_id = 2;
    assert!(matches!(Quorum::start(config), Err(ClusterError::Config(_))));
}
