//! Quorums of several controllers over the real transport (gRPC on 127.0.0.1), all in
//! this process, each node with its own directory: forming a quorum, proposals through
//! followers, leader failover with catch-up by snapshot, the handshake's refusals, and
//! membership changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strom_cluster::{ClusterError, MetadataRecord, Quorum, QuorumConfig, Refusal, TopicRecord};
use tempfile::TempDir;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(15);

fn topic(name: &str) -> MetadataRecord {
    MetadataRecord::Topic(TopicRecord {
        name: name.into(),
        id: Uuid::new_v4(),
        configs: BTreeMap::new(),
    })
}

/// A port on 127.0.0.1 that binds now, outside Linux's ephemeral range (32768–60999):
/// a port from that range can be taken by an outgoing connection (the nodes' own, to
/// each other) between this check and the node binding it, which failed cluster starts
/// with AddrInUse.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let seed = std::process::id().wrapping_mul(2_654_435_761) ^ nanos;
    for _ in 0..COUNT {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + seed.wrapping_add(step.wrapping_mul(7_919)) % COUNT;
        let port = u16::try_from(port).expect("below 32000");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + COUNT);
}

fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

fn config(node_id: u64, dir: &Path, voters: &BTreeMap<u64, String>) -> QuorumConfig {
    let mut config = QuorumConfig::single(node_id, dir);
    config.voters = voters.clone();
    config.heartbeat_interval_ms = 50;
    config.election_timeout_min_ms = 300;
    config.election_timeout_max_ms = 600;
    config.request_timeout_ms = 5_000;
    config
}

/// A node of a test cluster: its directory and address outlive its restarts.
struct Node {
    id: u64,
    addr: String,
    dir: PathBuf,
    quorum: Option<Arc<Quorum>>,
}

impl Node {
    fn q(&self) -> &Arc<Quorum> {
        self.quorum.as_ref().expect("node is running")
    }

    fn stop(&mut self) {
        if let Some(quorum) = self.quorum.take() {
            quorum.shutdown();
        }
    }
}

struct Cluster {
    _dirs: TempDir,
    voters: BTreeMap<u64, String>,
    nodes: Vec<Node>,
}

impl Cluster {
    /// Voters 1..=n from empty directories; every node initializes.
    fn start(n: u64, tweak: impl Fn(&mut QuorumConfig)) -> Cluster {
        let dirs = tempfile::tempdir().unwrap();
        let voters: BTreeMap<u64, String> = (1..=n).map(|id| (id, free_addr())).collect();
        let nodes = voters
            .iter()
            .map(|(id, addr)| {
                let dir = dirs.path().join(format!("node-{id}"));
                let mut config = config(*id, &dir, &voters);
                tweak(&mut config);
                Node {
                    id: *id,
                    addr: addr.clone(),
                    dir,
                    quorum: Some(Quorum::start(config).unwrap()),
                }
            })
            .collect();
        Cluster {
            _dirs: dirs,
            voters,
            nodes,
        }
    }

    fn node(&self, id: u64) -> &Node {
        self.nodes.iter().find(|n| n.id == id).unwrap()
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.id == id).unwrap()
    }

    fn running(&self) -> Vec<&Arc<Quorum>> {
        self.nodes.iter().filter_map(|n| n.quorum.as_ref()).collect()
    }

    /// Waits until every running node names the same leader, itself running and
    /// leading; returns its id.
    fn leader(&self) -> u64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let statuses: Vec<_> = self.running().iter().map(|q| q.status()).collect();
            if let Some(leader) = statuses[0].leader {
                let agreed = statuses.iter().all(|s| s.leader == Some(leader));
                let leading = self
                    .running()
                    .iter()
                    .any(|q| q.node_id() == leader && q.is_controller());
                if agreed && leading {
                    return leader;
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader: {statuses:#?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn follower(&self, leader: u64) -> &Arc<Quorum> {
        self.running().into_iter().find(|q| q.node_id() != leader).unwrap()
    }

    /// Waits until every running node has applied the same image as `reference`, up to
    /// its last applied index.
    fn converged(&self, reference: &Arc<Quorum>) {
        let index = reference.applied().index();
        let image = reference.applied().image.clone();
        for q in self.running() {
            let applied = q.wait_applied(index, WAIT).unwrap();
            assert_eq!(*applied.image, *image, "node {} differs", q.node_id());
        }
    }

    fn stop_all(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

#[test]
fn three_voters_form_one_quorum_and_a_follower_proposes() {
    let mut cluster = Cluster::start(3, |_| {});
    let leader = cluster.leader();
    let leaders = cluster.running().iter().filter(|q| q.is_controller()).count();
    assert_eq!(leaders, 1, "exactly one active controller");
    for q in cluster.running() {
        assert_eq!(q.status().voters, vec![1, 2, 3]);
        assert!(q.listen_addr().is_some());
    }

    let follower = cluster.follower(leader).clone();
    let index = follower.propose(vec![topic("through-a-follower")]).unwrap();
    // Returned only once the follower itself applied it.
    assert!(follower.applied().index() >= index);
    assert!(follower.applied().image.topic("through-a-follower").is_some());
    cluster.converged(&follower);

    // A refusal comes back from the leader as it would locally.
    match follower.propose(vec![topic("through-a-follower")]) {
        Err(ClusterError::Refused(Refusal::TopicExists(name))) => assert_eq!(name, "through-a-follower"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    // A peer's status over the transport.
    let status = follower.peer_status(leader, &cluster.node(leader).addr).unwrap();
    assert_eq!(status.node_id, leader);
    assert_eq!(status.leader, Some(leader));
    cluster.stop_all();
}

#[test]
fn leader_failover_keeps_acknowledged_proposals_and_the_old_leader_catches_up_by_snapshot() {
    let mut cluster = Cluster::start(3, |config| {
        config.snapshot_after_entries = 10;
        config.entries_kept_after_snapshot = 3;
    });
    let old_leader = cluster.leader();
    let proposer = cluster.follower(old_leader).clone();

    // Proposals run through a follower that stays up while the leader goes away.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let proposals = {
        let (proposer, acknowledged, stop) = (proposer.clone(), acknowledged.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut failed = 0;
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let name = format!("p{i}");
                match proposer.propose(vec![topic(&name)]) {
                    Ok(_) => acknowledged.lock().unwrap().push(name),
                    // Unknown or refused during the failover: not acknowledged.
                    Err(_) => failed += 1,
                }
            }
            failed
        })
    };
    let wait_acknowledged = |count: usize| {
        let deadline = Instant::now() + WAIT;
        while acknowledged.lock().unwrap().len() < count {
            assert!(Instant::now() < deadline, "proposals stalled");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_acknowledged(15);

    let killed_at = cluster.node(old_leader).q().applied().index();
    cluster.node_mut(old_leader).stop();
    let stopped = Instant::now();
    let new_leader = cluster.leader();
    let election = stopped.elapsed();
    assert_ne!(new_leader, old_leader);
    assert!(election < Duration::from_secs(5), "new leader after {election:?}");

    // Enough while the old leader is down that the log it would need is purged.
    let before = acknowledged.lock().unwrap().len();
    wait_acknowledged(before + 40);
    stop.store(true, Ordering::Relaxed);
    let failed = proposals.join().unwrap();
    let leader_q = cluster.node(new_leader).q().clone();
    let deadline = Instant::now() + WAIT;
    while leader_q.status().purged_index <= killed_at {
        assert!(Instant::now() < deadline, "log not purged: {:?}", leader_q.status());
        std::thread::sleep(Duration::from_millis(20));
    }

    cluster.converged(&proposer);
    let image = leader_q.applied().image.clone();
    let acknowledged = acknowledged.lock().unwrap().clone();
    for name in &acknowledged {
        assert!(image.topic(name).is_some(), "acknowledged {name} lost");
    }

    // The old leader restarts from its directory and catches up by a snapshot.
    let node = cluster.node(old_leader);
    let config = config(node.id, &node.dir, &cluster.voters);
    let restarted = Quorum::start(config).unwrap();
    cluster.node_mut(old_leader).quorum = Some(restarted.clone());
    let target = leader_q.applied().index();
    let applied = restarted.wait_applied(target, WAIT).unwrap();
    assert!(
        restarted.status().snapshot_index > killed_at,
        "no snapshot installed: {:?} (stopped at {killed_at})",
        restarted.status()
    );
    for name in &acknowledged {
        assert!(
            applied.image.topic(name).is_some(),
            "{name} missing on the restarted node"
        );
    }
    // And it follows the log again.
    leader_q.propose(vec![topic("after-rejoin")]).unwrap();
    cluster.converged(&leader_q);
    eprintln!(
        "failover: election {election:?}, {} acknowledged, {failed} failed",
        acknowledged.len()
    );
    cluster.stop_all();
}

#[test]
fn a_peer_of_another_cluster_or_node_id_is_refused() {
    // Nodes 1 and 2 are configured with the cluster id; node 3 learns it from the image.
    let mut cluster = Cluster::start(3, |config| {
        if config.node_id != 3 {
            config.cluster_id = Some("alpha".into());
        }
    });
    let leader = cluster.leader();
    cluster
        .node(3)
        .q()
        .propose(vec![MetadataRecord::ClusterId { id: "alpha".into() }])
        .unwrap();
    cluster.converged(cluster.node(3).q());

    // A call addressed to another node id than the one answering.
    let one = cluster.node(1).q().clone();
    match one.peer_status(2, &cluster.node(3).addr) {
        Err(ClusterError::PeerRefused(message)) => assert!(message.contains("not node 2"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(one.peer_status(3, &cluster.node(3).addr).unwrap().node_id, 3);

    // A node of cluster "beta" that believes it is a voter with the three.
    let dirs = tempfile::tempdir().unwrap();
    let mut voters = cluster.voters.clone();
    voters.insert(4, free_addr());
    let mut intruder_config = config(4, dirs.path(), &voters);
    intruder_config.cluster_id = Some("beta".into());
    intruder_config.request_timeout_ms = 1_000;
    let intruder = Quorum::start(intruder_config).unwrap();
    for id in [1, 3] {
        match intruder.peer_status(id, &cluster.node(id).addr) {
            Err(ClusterError::PeerRefused(message)) => assert!(message.contains("not beta"), "{message}"),
            other => panic!("expected a refusal from node {id}, got {other:?}"),
        }
    }

    // It campaigns for a while; nobody accepts its votes.
    let term = cluster.node(leader).q().status().term;
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        assert_ne!(intruder.status().leader, Some(4), "the intruder got elected");
        std::thread::sleep(Duration::from_millis(50));
    }
    match intruder.propose(vec![topic("from-beta")]) {
        Err(ClusterError::NotAvailable(_) | ClusterError::Timeout(_)) => {}
        other => panic!("the intruder's proposal should fail, got {other:?}"),
    }
    assert_eq!(cluster.leader(), leader, "the intruder disturbed the quorum");
    let status = cluster.node(leader).q().status();
    assert_eq!(status.term, term, "the intruder's votes reached Raft");
    assert_eq!(status.voters, vec![1, 2, 3]);
    cluster.node(1).q().propose(vec![topic("still-alpha")]).unwrap();
    assert!(cluster.node(1).q().applied().image.topic("from-beta").is_none());
    intruder.shutdown();
    cluster.stop_all();
}

#[test]
fn a_fourth_voter_joins_and_a_voter_leaves_while_the_quorum_keeps_committing() {
    let mut cluster = Cluster::start(3, |_| {});
    let leader = cluster.leader();
    let leader_q = cluster.node(leader).q().clone();
    for i in 0..5 {
        leader_q.propose(vec![topic(&format!("before-{i}"))]).unwrap();
    }

    // Node 4 starts empty, not among the configured voters: it waits to be added.
    let dir = cluster._dirs.path().join("node-4");
    let addr = free_addr();
    let mut joining = config(4, &dir, &cluster.voters);
    joining.listen = Some(addr.parse().unwrap());
    let four = Quorum::start(joining).unwrap();
    cluster.nodes.push(Node {
        id: 4,
        addr: addr.clone(),
        dir,
        quorum: Some(four.clone()),
    });
    assert_eq!(four.applied().index(), 0);

    // Membership changes run on the leader.
    match cluster.follower(leader).add_voter(4, &addr) {
        Err(ClusterError::NotAvailable(message)) => {
            assert!(message.contains(&format!("node {leader}")), "{message}")
        }
        other => panic!("expected NotAvailable on a follower, got {other:?}"),
    }
    leader_q.add_voter(4, &addr).unwrap();
    assert_eq!(leader_q.status().voters, vec![1, 2, 3, 4]);
    leader_q.add_voter(4, &addr).unwrap(); // already a voter: nothing to do
    cluster.converged(&leader_q);
    let index = four.propose(vec![topic("through-node-4")]).unwrap();
    assert!(four.applied().index() >= index);
    assert_eq!(four.status().voters, vec![1, 2, 3, 4]);

    // The leader removes itself; the other three go on.
    leader_q.remove_voter(leader).unwrap();
    let deadline = Instant::now() + WAIT;
    let rest: Vec<u64> = [1, 2, 3, 4].into_iter().filter(|id| *id != leader).collect();
    let committed = loop {
        match four.propose(vec![topic("after-removal")]) {
            Ok(index) => break index,
            Err(e) => assert!(Instant::now() < deadline, "no commit after the removal: {e}"),
        }
    };
    cluster.node_mut(leader).stop();
    let new_leader = cluster.leader();
    assert!(rest.contains(&new_leader));
    for id in &rest {
        let q = cluster.node(*id).q();
        q.wait_applied(committed, WAIT).unwrap();
        assert_eq!(q.status().voters, rest);
    }
    cluster.node(new_leader).q().propose(vec![topic("with-three")]).unwrap();
    cluster.converged(cluster.node(new_leader).q());
    cluster.stop_all();
}
