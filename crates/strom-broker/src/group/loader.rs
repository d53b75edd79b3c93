//! Rebuilding groups from `__consumer_offsets`: the latest record per key wins;
//! offsets committed in a transaction wait for its marker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::classic::ClassicGroup;
use super::coordinator::{GroupCoordinator, OFFSETS_TOPIC};
use super::offsets_record::{self, OffsetsKey};
use super::Group;
use crate::error::{BrokerError, Result};

impl GroupCoordinator {
    /// Rebuild every group from `__consumer_offsets` (latest record per key wins).
    pub(super) fn load(&self) -> Result<()> {
        let Some(topic) = self.broker.topic(OFFSETS_TOPIC) else {
            return Ok(());
        };
        let now = Instant::now();
        let mut groups: HashMap<String, Group> = HashMap::new();
        let mut records = 0usize;
        for partition in topic.partitions() {
            partition.for_each_batch(|header, batch| {
                if header.is_control() {
                    if let Some(commit) = crate::partition::marker_type(batch) {
                        for group in groups.values_mut() {
                            group.complete_txn(header.producer_id, commit);
                        }
                    }
                    return Ok(());
                }
                let pending = header.is_transactional().then_some(header.producer_id);
                for (key, value) in key_values(batch)? {
                    records += 1;
                    apply_record(&mut groups, Some(&key), value.as_deref(), now, pending);
                }
                Ok(())
            })?;
        }
        groups.retain(|_, g| !(g.classic.is_empty() && g.offsets.is_empty() && g.classic.generation_id == 0));
        tracing::info!(groups = groups.len(), records, "loaded consumer groups");
        let mut map = self.groups();
        for (id, group) in groups {
            self.sessions.arm(group.next_deadline());
            map.insert(id, Arc::new(Mutex::new(group)));
        }
        Ok(())
    }
}

/// A record's key and value (None = tombstone).
type KeyValue = (Vec<u8>, Option<Vec<u8>>);

/// The keyed records of one stored batch (records without a key are not ours).
fn key_values(batch: &[u8]) -> Result<Vec<KeyValue>> {
    let (header, section) = strom_log::record::decompress_records_section(batch)?;
    let entries = strom_log::record::decode_record_entries(&header, &section)?;
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some(key) = entry.key else { continue };
        let key_bytes = section.get(key.clone()).unwrap_or_default().to_vec();
        let value = match entry.value {
            Some(range) => Some(
                section
                    .get(range)
                    .ok_or_else(|| BrokerError::CorruptMessage("record value".into()))?
                    .to_vec(),
            ),
            None => None,
        };
        out.push((key_bytes, value));
    }
    Ok(out)
}

fn apply_record(
    groups: &mut HashMap<String, Group>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    now: Instant,
    pending_txn: Option<i64>,
) {
    let Some(key) = key.and_then(offsets_record::decode_key) else {
        return;
    };
    match key {
        OffsetsKey::Offset {
            group,
            topic,
            partition,
        } => {
            let entry = groups.entry(group.clone()).or_insert_with(|| Group::new(&group));
            if let Some(producer_id) = pending_txn {
                if let Some(v) = value.and_then(offsets_record::decode_offset_value) {
                    entry
                        .pending_txn_offsets
                        .entry(producer_id)
                        .or_default()
                        .insert((topic, partition), v);
                }
                return;
            }
            match value.and_then(offsets_record::decode_offset_value) {
                Some(v) => {
                    entry.offsets.insert((topic, partition), v);
                }
                None => {
                    entry.offsets.remove(&(topic, partition));
                }
            }
        }
        OffsetsKey::Group { group } => match value.and_then(offsets_record::decode_group_value) {
            Some(v) => {
                let entry = groups.entry(group.clone()).or_insert_with(|| Group::new(&group));
                entry.classic = ClassicGroup::restore(&v, now);
            }
            None => {
                if let Some(entry) = groups.get_mut(&group) {
                    entry.classic = ClassicGroup::default();
                }
            }
        },
    }
}
