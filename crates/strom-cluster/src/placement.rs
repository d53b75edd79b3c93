//! Placement of new partitions on brokers: Kafka's round robin, rack-aware when the
//! brokers name racks (`AdminUtils.assignReplicasToBrokers`). Leaders spread over the
//! brokers; the other replicas follow at a shift that changes every round, so the
//! followers of one broker's leaders are spread too; with racks, a partition's replicas
//! go to as many racks as there are before a rack gets a second one.

use std::collections::{BTreeMap, BTreeSet};

/// A broker that can take replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub node_id: i32,
    pub rack: Option<String>,
}

/// Why replicas cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("Replication factor: {replication_factor} larger than available brokers: {brokers}.")]
    NotEnoughBrokers { replication_factor: usize, brokers: usize },
    #[error("Not all brokers have rack information. Brokers without a rack: {0:?}")]
    PartialRacks(Vec<i32>),
}

/// Replicas for `partitions` new partitions numbered from `first_partition`, leader
/// first. `start` and `shift` pick where the round robin starts (Kafka draws them at
/// random; callers pass values derived from the topic, so placement is reproducible).
pub fn place(
    candidates: &[Candidate],
    first_partition: i32,
    partitions: i32,
    replication_factor: usize,
    start: usize,
    shift: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    if replication_factor == 0 || replication_factor > candidates.len() {
        return Err(PlacementError::NotEnoughBrokers {
            replication_factor,
            brokers: candidates.len(),
        });
    }
    let with_rack = candidates.iter().filter(|c| c.rack.is_some()).count();
    if with_rack == 0 {
        let mut brokers: Vec<i32> = candidates.iter().map(|c| c.node_id).collect();
        brokers.sort_unstable();
        return Ok(round_robin(
            &brokers,
            first_partition,
            partitions,
            replication_factor,
            start,
            shift,
        ));
    }
    if with_rack != candidates.len() {
        let mut missing: Vec<i32> = candidates
            .iter()
            .filter(|c| c.rack.is_none())
            .map(|c| c.node_id)
            .collect();
        missing.sort_unstable();
        return Err(PlacementError::PartialRacks(missing));
    }
    Ok(rack_aware(
        candidates,
        first_partition,
        partitions,
        replication_factor,
        start,
        shift,
    ))
}

fn replica_index(first: usize, shift: usize, j: usize, n: usize) -> usize {
    (first + 1 + (shift + j) % (n - 1)) % n
}

/// Kafka's walk over the new partitions: each one's first-replica index among `n`
/// brokers and the follower shift, which grows by one every `n` partitions.
fn walk(first_partition: i32, partitions: i32, n: usize, start: usize, shift: usize) -> Vec<(usize, usize)> {
    let (start, mut shift) = (start % n, shift % n);
    (0..partitions.max(0) as usize)
        .map(|p| {
            let partition = first_partition.max(0) as usize + p;
            if partition > 0 && partition.is_multiple_of(n) {
                shift += 1;
            }
            ((partition + start) % n, shift)
        })
        .collect()
}

fn round_robin(
    brokers: &[i32],
    first_partition: i32,
    partitions: i32,
    replication_factor: usize,
    start: usize,
    shift: usize,
) -> Vec<Vec<i32>> {
    let n = brokers.len();
    walk(first_partition, partitions, n, start, shift)
        .into_iter()
        .map(|(first, shift)| {
            let mut replicas = vec![brokers[first]];
            for j in 0..replication_factor - 1 {
                replicas.push(brokers[replica_index(first, shift, j, n)]);
            }
            replicas
        })
        .collect()
}

/// The brokers ordered so that consecutive ones are on different racks where possible
/// (rack a, rack b, rack c, rack a, ...).
fn rack_alternated(candidates: &[Candidate]) -> Vec<(i32, String)> {
    let mut by_rack: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for c in candidates {
        by_rack
            .entry(c.rack.clone().unwrap_or_default())
            .or_default()
            .push(c.node_id);
    }
    for brokers in by_rack.values_mut() {
        brokers.sort_unstable();
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut ordered = Vec::with_capacity(candidates.len());
    for i in 0..longest {
        for (rack, brokers) in &by_rack {
            if let Some(b) = brokers.get(i) {
                ordered.push((*b, rack.clone()));
            }
        }
    }
    ordered
}

fn rack_aware(
    candidates: &[Candidate],
    first_partition: i32,
    partitions: i32,
    replication_factor: usize,
    start: usize,
    shift: usize,
) -> Vec<Vec<i32>> {
    let arranged = rack_alternated(candidates);
    let n = arranged.len();
    let racks: BTreeSet<&str> = arranged.iter().map(|(_, r)| r.as_str()).collect();
    let mut placed = Vec::with_capacity(partitions.max(0) as usize);
    for (first, shift) in walk(first_partition, partitions, n, start, shift) {
        let (leader, leader_rack) = &arranged[first];
        let mut replicas = vec![*leader];
        let mut used_racks = BTreeSet::from([leader_rack.as_str()]);
        let mut used_brokers = BTreeSet::from([*leader]);
        let mut k = 0;
        while replicas.len() < replication_factor {
            let (broker, rack) = &arranged[replica_index(first, shift * racks.len(), k, n)];
            k += 1;
            let rack_ok = !used_racks.contains(rack.as_str()) || used_racks.len() == racks.len();
            let broker_ok = !used_brokers.contains(broker) || used_brokers.len() == n;
            if rack_ok && broker_ok {
                replicas.push(*broker);
                used_racks.insert(rack.as_str());
                used_brokers.insert(*broker);
            }
            if k > n * n {
                // Unreachable with rf <= n (some unused broker always qualifies); a guard
                // against looping forever on a bug.
                break;
            }
        }
        placed.push(replicas);
    }
    placed
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn brokers(ids: &[i32]) -> Vec<Candidate> {
        ids.iter().map(|&node_id| Candidate { node_id, rack: None }).collect()
    }

    #[test]
    fn kafka_round_robin() {
        // Kafka's documented example: 5 brokers, 10 partitions, RF 3, start 0, shift 0.
        let placed = place(&brokers(&[0, 1, 2, 3, 4]), 0, 10, 3, 0, 0).unwrap();
        assert_eq!(
            placed,
            vec![
                vec![0, 1, 2],
                vec![1, 2, 3],
                vec![2, 3, 4],
                vec![3, 4, 0],
                vec![4, 0, 1],
                vec![0, 2, 3],
                vec![1, 3, 4],
                vec![2, 4, 0],
                vec![3, 0, 1],
                vec![4, 1, 2],
            ]
        );
    }

    #[test]
    fn leaders_and_replicas_spread_evenly() {
        let placed = place(&brokers(&[1, 2, 3]), 0, 30, 1, 2, 1).unwrap();
        let mut per_broker = BTreeMap::new();
        for replicas in &placed {
            *per_broker.entry(replicas[0]).or_insert(0) += 1;
        }
        assert_eq!(per_broker, BTreeMap::from([(1, 10), (2, 10), (3, 10)]));
        assert_eq!(
            place(&brokers(&[1, 2]), 0, 1, 3, 0, 0),
            Err(PlacementError::NotEnoughBrokers {
                replication_factor: 3,
                brokers: 2
            })
        );
    }

    #[test]
    fn rack_aware_puts_replicas_on_distinct_racks() {
        let candidates: Vec<Candidate> = [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]
            .iter()
            .map(|(id, rack)| Candidate {
                node_id: *id,
                rack: Some(rack.to_string()),
            })
            .collect();
        let rack_of = |id: i32| {
            candidates
                .iter()
                .find(|c| c.node_id == id)
                .unwrap()
                .rack
                .clone()
                .unwrap()
        };
        for (start, shift) in [(0, 0), (1, 3), (4, 2)] {
            let placed = place(&candidates, 0, 12, 3, start, shift).unwrap();
            for replicas in &placed {
                let racks: BTreeSet<String> = replicas.iter().map(|r| rack_of(*r)).collect();
                assert_eq!(racks.len(), 3, "{replicas:?}");
                let unique: BTreeSet<i32> = replicas.iter().copied().collect();
                assert_eq!(unique.len(), 3);
            }
        }
        let mut partial = candidates.clone();
        partial[0].rack = None;
        assert_eq!(
            place(&partial, 0, 1, 1, 0, 0),
            Err(PlacementError::PartialRacks(vec![1]))
        );
    }
}
