//! Choosing a partition for a record.
//!
//! The hash of keyed records is Kafka's murmur2, byte-compatible with the Java client, so a
//! key lands on the same partition whichever client produced it.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

/// Picks the partition of a record whose partition was not given explicitly.
///
/// ```
/// use strom_client::{Murmur2Partitioner, Partitioner};
///
/// let partitioner = Murmur2Partitioner;
/// assert_eq!(partitioner.partition("events", Some(b"user-42"), 6), partitioner.partition("events", Some(b"user-42"), 6));
/// ```
pub trait Partitioner: Send + Sync {
    /// The partition, in `0..partitions`, for a record of `topic` with `key`.
    /// `partitions` is at least 1.
    fn partition(&self, topic: &str, key: Option<&[u8]>, partitions: i32) -> i32;

    /// Called by the producer when a record chosen for `previous` would start a new batch there,
    /// before asking [`Partitioner::partition`] again. Sticky partitioners move on here.
    fn on_new_batch(&self, topic: &str, partitions: i32, previous: i32) {
        let _ = (topic, partitions, previous);
    }
}

/// Kafka's murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`).
///
/// ```
/// assert_eq!(strom_client::partitioner::murmur2(b"21"), -973932308);
/// ```
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    // Java computes `seed ^ length` on ints; lengths beyond i32 wrap the same way.
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    // Java sign-extends the tail bytes before masking with 0xff, which is a no-op on u8.
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(first) = tail.first() {
        h ^= u32::from(*first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit.
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Kafka's clients choose for a keyed record: `toPositive(murmur2(key)) % partitions`.
///
/// ```
/// assert_eq!(strom_client::partitioner::murmur2_partition(b"key-3", 6), 5);
/// ```
pub fn murmur2_partition(key: &[u8], partitions: i32) -> i32 {
    to_positive(murmur2(key)) % partitions.max(1)
}

fn random_below(bound: i32) -> i32 {
    let random = RandomState::new().hash_one(std::time::Instant::now());
    i32::try_from(random % u64::try_from(bound.max(1)).unwrap_or(1)).unwrap_or(0)
}

/// murmur2 for keyed records; unkeyed records get a random partition.
/// Use [`DefaultPartitioner`] for the sticky behaviour of Kafka's default.
#[derive(Debug, Clone, Copy, Default)]
pub struct Murmur2Partitioner;

impl Partitioner for Murmur2Partitioner {
    fn partition(&self, _topic: &str, key: Option<&[u8]>, partitions: i32) -> i32 {
        match key {
            Some(key) => murmur2_partition(key, partitions),
            None => random_below(partitions),
        }
    }
}

/// Kafka's default since 2.4: murmur2 for keyed records; unkeyed records stick to one
/// partition until a batch is started there, then move to another one.
///
/// ```
/// use strom_client::{DefaultPartitioner, Partitioner};
///
/// let partitioner = DefaultPartitioner::default();
/// let first = partitioner.partition("t", None, 8);
/// assert_eq!(partitioner.partition("t", None, 8), first); // sticky
/// partitioner.on_new_batch("t", 8, first);
/// assert_ne!(partitioner.partition("t", None, 8), first); // moved on
/// ```
#[derive(Debug, Default)]
pub struct DefaultPartitioner {
    sticky: StickyPartitions,
}

impl Partitioner for DefaultPartitioner {
    fn partition(&self, topic: &str, key: Option<&[u8]>, partitions: i32) -> i32 {
        match key {
            Some(key) => murmur2_partition(key, partitions),
            None => self.sticky.current(topic, partitions),
        }
    }

    fn on_new_batch(&self, topic: &str, partitions: i32, previous: i32) {
        self.sticky.next(topic, partitions, previous);
    }
}

/// The sticky partition of each topic.
#[derive(Debug, Default)]
struct StickyPartitions {
    current: Mutex<HashMap<String, i32>>,
}

impl StickyPartitions {
    fn current(&self, topic: &str, partitions: i32) -> i32 {
        let mut current = crate::sync::lock(&self.current);
        match current.get(topic) {
            Some(&partition) if partition < partitions => partition,
            _ => {
                let partition = random_below(partitions);
                current.insert(topic.to_string(), partition);
                partition
            }
        }
    }

    fn next(&self, topic: &str, partitions: i32, previous: i32) {
        let mut current = crate::sync::lock(&self.current);
        let sticky = current.get(topic).copied();
        if sticky.is_some() && sticky != Some(previous) {
            return; // someone else already moved on
        }
        let partition = if partitions <= 1 {
            0
        } else {
            // Any partition but the previous one.
            let offset = 1 + random_below(partitions - 1);
            (previous.max(0) + offset) % partitions
        };
        current.insert(topic.to_string(), partition);
    }
}

/// Every record (keyed or not) goes to the next partition in turn, per topic.
///
/// ```
/// use strom_client::{Partitioner, RoundRobinPartitioner};
///
/// let partitioner = RoundRobinPartitioner::default();
/// let picks: Vec<i32> = (0..4).map(|_| partitioner.partition("t", None, 3)).collect();
/// assert_eq!(picks, vec![0, 1, 2, 0]);
/// ```
#[derive(Debug, Default)]
pub struct RoundRobinPartitioner {
    counters: Mutex<HashMap<String, u32>>,
}

impl Partitioner for RoundRobinPartitioner {
    fn partition(&self, topic: &str, _key: Option<&[u8]>, partitions: i32) -> i32 {
        let mut counters = crate::sync::lock(&self.counters);
        let counter = counters.entry(topic.to_string()).or_insert(0);
        let pick = *counter;
        *counter = counter.wrapping_add(1);
        let partitions = u32::try_from(partitions.max(1)).unwrap_or(1);
        i32::try_from(pick % partitions).unwrap_or(0)
    }
}

/// Splits the positive murmur2 hash space `0..2^31` into `partitions` contiguous ranges, so
/// keys with nearby hashes share a partition and adding partitions moves few keys
/// between neighbours. Unkeyed records are sticky, as with [`DefaultPartitioner`].
///
/// ```
/// use strom_client::{HashRangePartitioner, Partitioner};
///
/// let partitioner = HashRangePartitioner::default();
/// let partition = partitioner.partition("t", Some(b"key"), 4);
/// assert!((0..4).contains(&partition));
/// ```
#[derive(Debug, Default)]
pub struct HashRangePartitioner {
    sticky: StickyPartitions,
}

impl HashRangePartitioner {
    /// The range a positive hash falls into.
    pub fn range_of(hash: i32, partitions: i32) -> i32 {
        let partitions = i64::from(partitions.max(1));
        let range = (i64::from(to_positive(hash)) * partitions) >> 31;
        i32::try_from(range).unwrap_or(0)
    }
}

impl Partitioner for HashRangePartitioner {
    fn partition(&self, topic: &str, key: Option<&[u8]>, partitions: i32) -> i32 {
        match key {
            Some(key) => Self::range_of(murmur2(key), partitions),
            None => self.sticky.current(topic, partitions),
        }
    }

    fn on_new_batch(&self, topic: &str, partitions: i32, previous: i32) {
        self.sticky.next(topic, partitions, previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values asserted by the Java client's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_java() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
            (b"abc", 479470107),
            (b"\xff\xfe\xfd", 998637092),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input), *expected, "{}", String::from_utf8_lossy(input));
        }
    }

    /// Partitions the Java client picks for `"key-N"` with 6 partitions.
    #[test]
    fn murmur2_partitions_match_java() {
        let expected = [1, 0, 2, 5, 3];
        for (index, partition) in expected.iter().enumerate() {
            assert_eq!(murmur2_partition(format!("key-{index}").as_bytes(), 6), *partition);
        }
    }

    #[test]
    fn murmur2_partition_is_positive_modulo() {
        for partitions in 1..20 {
            for key in [&b"21"[..], b"foobar", b"", b"\xff\xfe\xfd"] {
                let partition = Murmur2Partitioner.partition("t", Some(key), partitions);
                assert!((0..partitions).contains(&partition));
                assert_eq!(partition, (murmur2(key) & 0x7fff_ffff) % partitions);
            }
        }
    }

    #[test]
    fn sticky_moves_to_another_partition() {
        let partitioner = DefaultPartitioner::default();
        let first = partitioner.partition("t", None, 5);
        for _ in 0..10 {
            assert_eq!(partitioner.partition("t", None, 5), first);
        }
        partitioner.on_new_batch("t", 5, first);
        let second = partitioner.partition("t", None, 5);
        assert_ne!(second, first);
        partitioner.on_new_batch("t", 5, first); // stale notification: no move
        assert_eq!(partitioner.partition("t", None, 5), second);
        let single = DefaultPartitioner::default();
        single.on_new_batch("u", 1, 0);
        assert_eq!(single.partition("u", None, 1), 0);
    }

    #[test]
    fn hash_ranges_are_contiguous_and_cover_all_partitions() {
        assert_eq!(HashRangePartitioner::range_of(0, 4), 0);
        assert_eq!(HashRangePartitioner::range_of(i32::MAX, 4), 3);
        assert_eq!(HashRangePartitioner::range_of(1 << 29, 4), 1);
        assert_eq!(HashRangePartitioner::range_of((1 << 30) - 1, 4), 1);
        assert_eq!(HashRangePartitioner::range_of(1 << 30, 4), 2);
        assert_eq!(HashRangePartitioner::range_of(-1, 7), 6);
        let mut last = 0;
        for step in 0..1000i64 {
            let hash = i32::try_from(step * (i64::from(i32::MAX) / 1000)).unwrap_or(i32::MAX);
            let range = HashRangePartitioner::range_of(hash, 7);
            assert!(range >= last && range < 7);
            last = range;
        }
    }

    #[test]
    fn round_robin_cycles_per_topic() {
        let partitioner = RoundRobinPartitioner::default();
        assert_eq!(partitioner.partition("a", Some(b"k"), 2), 0);
        assert_eq!(partitioner.partition("b", None, 2), 0);
        assert_eq!(partitioner.partition("a", None, 2), 1);
        assert_eq!(partitioner.partition("a", None, 2), 0);
    }
}
