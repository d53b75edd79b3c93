//! Appending producers' batches: validate, assign offsets in header copies, write.

use super::{AppendInfo, Log};
use crate::batch::{set_base_offset, set_partition_leader_epoch, stamp_log_append_time, validate};
use crate::constants::BATCH_HEADER_SIZE;
use crate::error::LogError;
use crate::leader_epoch::UNDEFINED_EPOCH;
use std::sync::atomic::Ordering;

impl Log {
    /// Appends one or more concatenated v2 batches as a producer sent them. Every batch
    /// is validated first (nothing is written if any is bad); offsets are then assigned
    /// densely from the log end offset in copies of the batch headers (`baseOffset`,
    /// and for LogAppendTime logs the max timestamp and CRC), which one vectored write
    /// stores ahead of the untouched records: `batches` itself is not modified.
    pub fn append(&self, batches: &[u8]) -> Result<AppendInfo, LogError> {
        self.append_stamped(batches, None)
    }

    /// [`Log::append`] that also stamps `partitionLeaderEpoch` (outside the CRC) into
    /// every batch header.
    pub fn append_stamped(&self, batches: &[u8], leader_epoch: Option<i32>) -> Result<AppendInfo, LogError> {
        self.append_with(batches, Offsets::Assign { leader_epoch })
    }

    /// Appends batches replicated from the leader (Kafka's follower append): every
    /// batch is validated as in [`Log::append`], but stored exactly as given — base
    /// offsets, leader epochs and timestamps are the leader's. The first batch must
    /// start at the log end offset and each next batch right after the one before it
    /// ([`LogError::NonContiguousReplication`] otherwise; nothing is written).
    pub fn append_as_follower(&self, batches: &[u8]) -> Result<AppendInfo, LogError> {
        self.append_with(batches, Offsets::Keep)
    }

    fn append_with(&self, batches: &[u8], offsets: Offsets) -> Result<AppendInfo, LogError> {
        if batches.is_empty() {
            return Err(LogError::EmptyAppend);
        }
        let config = self.config();
        if batches.len() as u64 > config.segment_bytes {
            return Err(LogError::BatchTooLarge {
                size: batches.len() as u64,
                max: config.segment_bytes,
            });
        }
        let mut layout = Vec::new();
        let mut position = 0usize;
        while let Some(rest) = batches.get(position..).filter(|rest| !rest.is_empty()) {
            let header = validate(rest)?;
            let size = header.total_size().unwrap_or(rest.len());
            layout.push((position, size, header));
            position += size;
        }
        let _writer = crate::sync::lock(&self.writer);
        self.check_open()?;
        let now_ms = self.clock.now_ms();
        let stamp_append_time = config.message_timestamp_log_append_time && matches!(offsets, Offsets::Assign { .. });
        let base_offset = self.log_end_offset();
        let mut next_offset = base_offset;
        let mut max_timestamp = i64::MIN;
        let mut heads: Vec<([u8; BATCH_HEADER_SIZE], &[u8])> = Vec::with_capacity(layout.len());
        // (leader epoch, base offset) of every batch as stored.
        let mut epochs = Vec::with_capacity(layout.len());
        for (position, size, header) in &layout {
            let batch = batches
                .get(*position..position + size)
                .filter(|batch| batch.len() >= BATCH_HEADER_SIZE)
                .ok_or_else(|| LogError::corrupt("batch outside the append buffer"))?;
            let (head_bytes, rest) = batch.split_at(BATCH_HEADER_SIZE);
            let mut head = [0u8; BATCH_HEADER_SIZE];
            head.copy_from_slice(head_bytes);
            let mut epoch = header.partition_leader_epoch;
            match offsets {
                Offsets::Assign { leader_epoch } => {
                    set_base_offset(&mut head, next_offset)?;
                    if let Some(leader_epoch) = leader_epoch {
                        set_partition_leader_epoch(&mut head, leader_epoch)?;
                        epoch = leader_epoch;
                    }
                }
                Offsets::Keep if header.base_offset != next_offset => {
                    return Err(LogError::NonContiguousReplication {
                        reason: format!(
                            "batch {} of the append starts at offset {}, expected {next_offset} (log end offset {base_offset})",
                            epochs.len(),
                            header.base_offset
                        ),
                    });
                }
                Offsets::Keep => {}
            }
            if stamp_append_time {
                stamp_log_append_time(&mut head, rest, now_ms)?;
                max_timestamp = now_ms;
            } else {
                max_timestamp = max_timestamp.max(header.max_timestamp);
            }
            epochs.push((epoch, next_offset));
            next_offset = next_offset
                .checked_add(i64::from(header.last_offset_delta) + 1)
                .ok_or(LogError::OffsetOverflow)?;
            heads.push((head, rest));
        }
        let last_offset = next_offset - 1;
        let active = self.roll_for_append(now_ms, batches.len() as u64, last_offset, &config)?;
        let parts: Vec<(&[u8], &[u8])> = heads.iter().map(|(head, rest)| (&head[..], *rest)).collect();
        active.append_parts(&parts, config.index_interval_bytes)?;
        // Offsets stay dense: the active segment now ends exactly after the last record.
        debug_assert_eq!(active.next_offset(), last_offset + 1);
        self.log_end_offset.store(next_offset, Ordering::Release);
        self.debug_check_offsets();
        self.record_leader_epochs(&epochs);
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms: if stamp_append_time { now_ms } else { -1 },
            max_timestamp,
            batch_count: layout.len(),
        })
    }

    /// Assigns each appended batch's leader epoch that is newer than the latest known
    /// one. The records are already in the log, so a failed checkpoint write does not
    /// fail the append: the cache stays dirty and the next flush writes it.
    fn record_leader_epochs(&self, epochs: &[(i32, i64)]) {
        let mut cache = crate::sync::lock(&self.leader_epochs);
        for &(epoch, start_offset) in epochs {
            if epoch <= cache.latest_epoch().unwrap_or(UNDEFINED_EPOCH) {
                continue;
            }
            if let Err(error) = cache.assign(epoch, start_offset) {
                tracing::warn!(dir = %self.dir.display(), %error, "could not write the leader epoch checkpoint; retrying at the next flush");
            }
        }
    }
}

/// Who decides the offsets and leader epochs of appended batches.
#[derive(Clone, Copy, Debug)]
enum Offsets {
    /// The log assigns offsets from its end (and stamps the leader epoch if given).
    Assign { leader_epoch: Option<i32> },
    /// The batches keep theirs (a follower copying the leader).
    Keep,
}
