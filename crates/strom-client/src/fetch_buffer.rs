//! Records fetched but not yet returned by `poll` (`max_poll_records` bounds each poll).
//!
//! A partition's position advances only past the records `poll` returns. Each buffered run
//! remembers the position it continues from: a seek or a new assignment moves the position
//! elsewhere, which makes the run stale and drops it. Partitions with buffered records are
//! not fetched again until the buffer is drained.

use std::collections::{BTreeMap, VecDeque};

use crate::assignment::PartitionState;
use crate::record::ConsumerRecord;
use crate::topic_partition::TopicPartition;

/// One partition's fetched, unreturned records.
#[derive(Debug)]
struct Buffered {
    /// The partition position the first buffered record continues from.
    position: i64,
    records: VecDeque<ConsumerRecord>,
    /// The fetch position after the whole run (past trailing control batches).
    next_offset: i64,
}

/// The consumer's fetched records, per partition.
#[derive(Debug, Default)]
pub(crate) struct FetchBuffer {
    partitions: BTreeMap<TopicPartition, Buffered>,
}

impl FetchBuffer {
    /// Buffers what a fetch from `position` returned.
    pub fn insert(&mut self, key: TopicPartition, position: i64, records: Vec<ConsumerRecord>, next_offset: i64) {
        self.partitions.insert(
            key,
            Buffered {
                position,
                records: records.into(),
                next_offset,
            },
        );
    }

    /// Whether the partition has records buffered for its current position (so it is not
    /// fetched).
    pub fn has_records_for(&self, key: &TopicPartition, position: i64) -> bool {
        self.partitions.get(key).is_some_and(|b| b.position == position)
    }

    /// Takes up to `max` records of the assigned, unpaused partitions, advancing their
    /// positions past what it returns; stale runs are dropped.
    pub fn drain(
        &mut self,
        assignment: &mut BTreeMap<TopicPartition, PartitionState>,
        max: usize,
    ) -> Vec<ConsumerRecord> {
        let mut out = Vec::new();
        self.partitions.retain(|key, buffered| match assignment.get(key) {
            Some(state) => state.position == buffered.position,
            None => false,
        });
        let keys: Vec<TopicPartition> = self.partitions.keys().cloned().collect();
        for key in keys {
            let Some(state) = assignment.get_mut(&key) else {
                continue;
            };
            if state.paused {
                continue;
            }
            let Some(buffered) = self.partitions.get_mut(&key) else {
                continue;
            };
            while out.len() < max {
                let Some(record) = buffered.records.pop_front() else {
                    break;
                };
                state.position = record.offset + 1;
                out.push(record);
            }
            if buffered.records.is_empty() {
                state.position = state.position.max(buffered.next_offset);
                self.partitions.remove(&key);
            } else {
                buffered.position = state.position;
            }
            if out.len() >= max {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64) -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 0,
            offset,
            timestamp: 0,
            key: None,
            value: None,
            headers: Vec::new(),
        }
    }

    fn assigned(position: i64) -> BTreeMap<TopicPartition, PartitionState> {
        BTreeMap::from([(
            TopicPartition::new("t", 0),
            PartitionState {
                position,
                paused: false,
            },
        )])
    }

    #[test]
    fn drains_at_most_max_and_advances_only_past_returned_records() {
        let key = TopicPartition::new("t", 0);
        let mut buffer = FetchBuffer::default();
        let mut assignment = assigned(10);
        buffer.insert(key.clone(), 10, (10..15).map(record).collect(), 17);
        let first = buffer.drain(&mut assignment, 3);
        assert_eq!(first.iter().map(|r| r.offset).collect::<Vec<_>>(), [10, 11, 12]);
        assert_eq!(assignment[&key].position, 13);
        assert!(buffer.has_records_for(&key, 13));
        let rest = buffer.drain(&mut assignment, 3);
        assert_eq!(rest.iter().map(|r| r.offset).collect::<Vec<_>>(), [13, 14]);
        assert_eq!(assignment[&key].position, 17, "past the trailing control batch");
        assert!(!buffer.has_records_for(&key, 17));
    }

    #[test]
    fn a_seek_drops_the_buffered_run() {
        let key = TopicPartition::new("t", 0);
        let mut buffer = FetchBuffer::default();
        let mut assignment = assigned(0);
        buffer.insert(key.clone(), 0, (0..5).map(record).collect(), 5);
        assignment.get_mut(&key).expect("assigned").position = 3;
        assert!(buffer.drain(&mut assignment, 10).is_empty());
        assert_eq!(assignment[&key].position, 3);
        assert!(!buffer.has_records_for(&key, 0));
    }
}
