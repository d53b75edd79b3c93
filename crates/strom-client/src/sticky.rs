//! The assignment of the cooperative-sticky assignor (KIP-54 stickiness, KIP-429 incremental
//! rebalancing), computed by the group leader from every member's subscription.
//!
//! 1. Current owners: each member's owned partitions (that still exist and it still
//!    subscribes to). A partition claimed by several members goes to the claim of the highest
//!    generation; a tie at the highest generation leaves it unowned.
//! 2. Every owner keeps its partitions; the unowned ones go, those with the fewest eligible
//!    members first, to the eligible member holding the fewest.
//! 3. Balance: while some member holds at least two more than another member eligible for one
//!    of its partitions, one such partition moves (freshly placed partitions before owned
//!    ones). Each move lowers the sum of squared counts, so the loop ends; with identical
//!    subscriptions the counts then differ by at most one.
//! 4. Cooperative: a partition that moves from one member to another is withheld from its new
//!    member in this generation. Its owner revokes it and rejoins, and the follow-up
//!    rebalance finds it unowned and places it.

use std::collections::{BTreeMap, BTreeSet};

use crate::consumer_protocol::MemberSubscription;

type TopicPartition = (String, i32);

/// The cooperative-sticky assignment of the subscribed topics' partitions (`partition_counts`)
/// to the members; every member gets an entry, possibly empty.
pub(crate) fn assign(
    members: &BTreeMap<String, MemberSubscription>,
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let eligible = |member: &str, topic: &str| {
        partition_counts.contains_key(topic) && members[member].topics.iter().any(|t| t == topic)
    };
    let owners = current_owners(members, &eligible);
    let mut assignment: BTreeMap<&str, BTreeSet<TopicPartition>> = members
        .keys()
        .map(|member| (member.as_str(), BTreeSet::new()))
        .collect();
    for (partition, owner) in &owners {
        assignment.entry(owner).or_default().insert(partition.clone());
    }

    let mut unowned: Vec<(usize, TopicPartition)> = Vec::new();
    for (topic, count) in partition_counts {
        let candidates = members.keys().filter(|m| eligible(m, topic)).count();
        if candidates == 0 {
            continue;
        }
        for partition in 0..*count {
            let key = (topic.clone(), partition);
            if !owners.contains_key(&key) {
                unowned.push((candidates, key));
            }
        }
    }
    unowned.sort();
    for (_, partition) in unowned {
        let least = assignment
            .iter()
            .filter(|(member, _)| eligible(member, &partition.0))
            .min_by_key(|(member, held)| (held.len(), **member))
            .map(|(member, _)| *member);
        if let Some(member) = least {
            assignment.entry(member).or_default().insert(partition);
        }
    }

    while let Some((from, to, partition)) = next_move(&assignment, &owners, &eligible) {
        assignment.entry(from).or_default().remove(&partition);
        assignment.entry(to).or_default().insert(partition);
    }

    assignment
        .into_iter()
        .map(|(member, held)| {
            let kept = held
                .into_iter()
                .filter(|partition| owners.get(partition).is_none_or(|owner| *owner == member))
                .collect();
            (member.to_string(), kept)
        })
        .collect()
}

/// The owner of each validly claimed partition (step 1).
fn current_owners<'a>(
    members: &'a BTreeMap<String, MemberSubscription>,
    eligible: &impl Fn(&str, &str) -> bool,
) -> BTreeMap<TopicPartition, &'a str> {
    let mut claims: BTreeMap<&TopicPartition, Vec<(i32, &str)>> = BTreeMap::new();
    for (member, subscription) in members {
        for partition in &subscription.owned {
            if eligible(member, &partition.0) {
                claims
                    .entry(partition)
                    .or_default()
                    .push((subscription.generation, member));
            }
        }
    }
    let mut owners = BTreeMap::new();
    for (partition, mut claimants) in claims {
        claimants.sort();
        claimants.dedup();
        let Some(&(generation, owner)) = claimants.last() else {
            continue;
        };
        let tied = claimants.iter().filter(|(g, _)| *g == generation).count();
        if tied == 1 {
            owners.insert(partition.clone(), owner);
        } else {
            tracing::warn!(topic = %partition.0, partition = partition.1, generation,
                "several members claim a partition in the same generation; none keeps it");
        }
    }
    owners
}

/// A move that improves the balance (step 3): from the most loaded member that has one, a
/// partition its owner did not hold before if possible, to the least loaded eligible member.
fn next_move<'a>(
    assignment: &BTreeMap<&'a str, BTreeSet<TopicPartition>>,
    owners: &BTreeMap<TopicPartition, &str>,
    eligible: &impl Fn(&str, &str) -> bool,
) -> Option<(&'a str, &'a str, TopicPartition)> {
    let mut by_load: Vec<(&'a str, usize)> = assignment.iter().map(|(m, held)| (*m, held.len())).collect();
    by_load.sort_by_key(|(member, count)| (std::cmp::Reverse(*count), *member));
    for &(from, count) in &by_load {
        let held = &assignment[from];
        let fresh = held.iter().filter(|p| owners.get(*p) != Some(&from));
        let owned = held.iter().filter(|p| owners.get(*p) == Some(&from));
        for partition in fresh.chain(owned) {
            let target = by_load
                .iter()
                .rev()
                .find(|(to, to_count)| to_count + 1 < count && eligible(to, &partition.0));
            if let Some(&(to, _)) = target {
                return Some((from, to, partition.clone()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(topics: &[&str], owned: &[(&str, i32)], generation: i32) -> MemberSubscription {
        MemberSubscription {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            owned: owned.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
            generation,
        }
    }

    fn group(entries: Vec<(&str, MemberSubscription)>) -> BTreeMap<String, MemberSubscription> {
        entries.into_iter().map(|(id, s)| (id.to_string(), s)).collect()
    }

    fn counts(entries: &[(&str, i32)]) -> BTreeMap<String, i32> {
        entries.iter().map(|(t, c)| (t.to_string(), *c)).collect()
    }

    fn sizes(assigned: &BTreeMap<String, Vec<TopicPartition>>) -> Vec<usize> {
        assigned.values().map(Vec::len).collect()
    }

    /// Feeds an assignment back as the owned partitions of the next generation.
    fn next_round(
        members: &BTreeMap<String, MemberSubscription>,
        assigned: &BTreeMap<String, Vec<TopicPartition>>,
        generation: i32,
    ) -> BTreeMap<String, MemberSubscription> {
        members
            .iter()
            .map(|(id, s)| {
                let owned = assigned.get(id).cloned().unwrap_or_default();
                (
                    id.clone(),
                    MemberSubscription {
                        owned,
                        generation,
                        ..s.clone()
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_fresh_group_is_balanced() {
        let members = group(vec![
            ("a", member(&["t", "u"], &[], -1)),
            ("b", member(&["t", "u"], &[], -1)),
            ("c", member(&["t", "u"], &[], -1)),
        ]);
        let assigned = assign(&members, &counts(&[("t", 5), ("u", 3)]));
        let mut all: Vec<TopicPartition> = assigned.values().flatten().cloned().collect();
        all.sort();
        assert_eq!(all.len(), 8);
        all.dedup();
        assert_eq!(all.len(), 8, "no partition twice");
        let (min, max) = (sizes(&assigned).into_iter().min(), sizes(&assigned).into_iter().max());
        assert_eq!((min, max), (Some(2), Some(3)));
    }

    #[test]
    fn a_moved_partition_is_withheld_until_its_owner_revoked_it() {
        let all: Vec<(&str, i32)> = (0..4).map(|p| ("t", p)).collect();
        let members = group(vec![("a", member(&["t"], &all, 3)), ("b", member(&["t"], &[], -1))]);
        let first = assign(&members, &counts(&[("t", 4)]));
        assert_eq!(first["a"].len(), 2, "a keeps two of its four");
        assert!(
            first["b"].is_empty(),
            "b gets nothing while a still owns them: {first:?}"
        );

        // a revoked the other two and rejoins; the follow-up round hands them to b.
        let second = assign(&next_round(&members, &first, 4), &counts(&[("t", 4)]));
        assert_eq!(second["a"], first["a"], "a keeps what it kept");
        assert_eq!(second["b"].len(), 2);
        assert!(second["b"].iter().all(|p| !second["a"].contains(p)));
    }

    #[test]
    fn members_keep_their_partitions_when_one_joins_or_leaves() {
        let topics = counts(&[("t", 6)]);
        let two = group(vec![("a", member(&["t"], &[], -1)), ("b", member(&["t"], &[], -1))]);
        let before = assign(&two, &topics);
        assert_eq!(sizes(&before), [3, 3]);

        let mut three = next_round(&two, &before, 1);
        three.insert("c".into(), member(&["t"], &[], -1));
        let withheld = assign(&three, &topics);
        for id in ["a", "b"] {
            assert_eq!(withheld[id].len(), 2);
            assert!(withheld[id].iter().all(|p| before[id].contains(p)), "{id} only loses");
        }
        let after = assign(&next_round(&three, &withheld, 2), &topics);
        assert_eq!(sizes(&after), [2, 2, 2]);
        assert_eq!(after["a"], withheld["a"]);
        assert_eq!(after["b"], withheld["b"]);

        // c leaves: nobody owns its partitions, so they go straight to the others.
        let mut remaining = next_round(&three, &after, 3);
        remaining.remove("c");
        let rebalanced = assign(&remaining, &topics);
        assert_eq!(sizes(&rebalanced), [3, 3]);
        assert!(after["a"].iter().all(|p| rebalanced["a"].contains(p)));
    }

    #[test]
    fn claims_of_the_newest_generation_win_and_ties_own_nothing() {
        let members = group(vec![
            ("a", member(&["t"], &[("t", 0), ("t", 1)], 5)),
            ("b", member(&["t"], &[("t", 1)], 4)),
            ("c", member(&["t"], &[("t", 2)], 5)),
        ]);
        let owners = current_owners(&members, &|_: &str, _: &str| true);
        assert_eq!(owners.get(&("t".to_string(), 1)), Some(&"a"));
        let tie = group(vec![
            ("a", member(&["t"], &[("t", 0)], 5)),
            ("b", member(&["t"], &[("t", 0)], 5)),
        ]);
        assert!(current_owners(&tie, &|_: &str, _: &str| true).is_empty());
    }

    /// Members join and leave at random; every round is run to its follow-up rounds. Checks
    /// that no partition is ever handed to a member while another owns it, that members only
    /// lose partitions within a round, and that the settled counts differ by at most one.
    #[test]
    fn random_membership_changes_stay_cooperative_and_settle_balanced() {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        println!("seed {seed}");
        let mut state = seed;
        let mut next = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        let topics = counts(&[("t", 7), ("u", 5)]);
        let mut members: BTreeMap<String, MemberSubscription> = BTreeMap::new();
        let mut generation = 0;
        for step in 0..40 {
            let id = format!("m{}", next(6));
            if members.remove(&id).is_none() {
                members.insert(id, member(&["t", "u"], &[], -1));
            }
            for _round in 0..3 {
                generation += 1;
                let assigned = assign(&members, &topics);
                for (id, subscription) in &members {
                    for partition in &assigned[id] {
                        let other = members
                            .iter()
                            .find(|(other, s)| *other != id && s.owned.contains(partition));
                        assert!(
                            other.is_none(),
                            "seed {seed} step {step}: {partition:?} given to {id} while owned"
                        );
                    }
                    let gained = assigned[id].iter().any(|p| !subscription.owned.contains(p));
                    let lost = subscription.owned.iter().any(|p| !assigned[id].contains(p));
                    assert!(
                        !(gained && lost),
                        "seed {seed} step {step}: {id} gains and loses in one round"
                    );
                }
                members = next_round(&members, &assigned, generation);
            }
            let held: Vec<usize> = members.values().map(|s| s.owned.len()).collect();
            if !members.is_empty() {
                let (min, max) = (held.iter().min(), held.iter().max());
                assert!(
                    max.zip(min).is_some_and(|(max, min)| max - min <= 1),
                    "seed {seed} step {step}: {held:?}"
                );
                assert_eq!(
                    held.iter().sum::<usize>(),
                    12,
                    "seed {seed} step {step}: every partition held"
                );
            }
        }
    }

    #[test]
    fn partitions_go_only_to_subscribers_and_unsubscribed_ones_are_dropped() {
        let members = group(vec![
            ("a", member(&["t"], &[("u", 0), ("t", 0)], 2)),
            ("b", member(&["t", "u"], &[], 2)),
        ]);
        let assigned = assign(&members, &counts(&[("t", 2), ("u", 2)]));
        assert!(assigned["a"].iter().all(|(topic, _)| topic == "t"));
        assert!(assigned["a"].contains(&("t".to_string(), 0)));
        // u-0 was a's, but a no longer subscribes to u: it is free for b at once.
        assert!(assigned["b"].contains(&("u".to_string(), 0)));
        assert!(assigned["b"].contains(&("u".to_string(), 1)));
    }
}
