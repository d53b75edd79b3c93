//! Record values, keys and headers written by bench producers.
//!
//! A value of at least [`STAMP_BYTES`] bytes starts with a stamp: the 4-byte marker
//! [`STAMP_MARKER`] and the send time in microseconds since the Unix epoch (u64, big endian),
//! so consumers can measure end-to-end latency. The rest is pseudo-random filler (so
//! compression has realistic work) drawn from a seeded generator.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use strom_client::{Header, ProducerRecord};

use crate::scenario::ProducerGroup;

/// Marks a stamped value.
pub const STAMP_MARKER: &[u8; 4] = b"SBT1";
/// Bytes of the stamp at the start of a value.
pub const STAMP_BYTES: usize = 12;

/// A small, fast, seeded pseudo-random generator (SplitMix64); not for cryptography.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator with this seed.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Builds the records of one producer.
#[derive(Debug)]
pub struct RecordFactory {
    topic: String,
    group: ProducerGroup,
    filler: Bytes,
    rng: Rng,
}

impl RecordFactory {
    /// A factory for a producer of `group`, writing to `topic`.
    pub fn new(topic: &str, group: &ProducerGroup, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let (_, max) = group.message_size.bounds();
        // Filler drawn from a small alphabet: compressible, but not trivially.
        let filler: Vec<u8> = (0..max).map(|_| b'a' + (rng.next_u64() % 16) as u8).collect();
        RecordFactory {
            topic: topic.to_string(),
            group: group.clone(),
            filler: Bytes::from(filler),
            rng,
        }
    }

    /// The next record and its value size in bytes, stamped with the current time.
    pub fn next_record(&mut self) -> (ProducerRecord, usize) {
        let size = self.group.message_size.pick(self.rng.next_u64());
        let value = stamped_value(&self.filler[..size], SystemTime::now());
        let mut record = ProducerRecord::new(self.topic.clone(), value);
        if self.group.key_space > 0 {
            let key = self.rng.next_u64() % self.group.key_space;
            record = record.with_key(format!("key-{key}"));
        }
        for index in 0..self.group.headers {
            record = record.with_header(Header::new(format!("h{index}"), "bench"));
        }
        (record, size)
    }
}

/// The filler with a stamp for `now` over its start (when it is long enough).
pub fn stamped_value(filler: &[u8], now: SystemTime) -> Bytes {
    let mut value = BytesMut::from(filler);
    if value.len() >= STAMP_BYTES {
        let micros = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_micros();
        let micros = u64::try_from(micros).unwrap_or(u64::MAX);
        value[..4].copy_from_slice(STAMP_MARKER);
        value[4..STAMP_BYTES].copy_from_slice(&micros.to_be_bytes());
    }
    value.freeze()
}

/// Time from a stamped value's send time to `now`; `None` for values without a stamp.
pub fn stamp_age(value: &[u8], now: SystemTime) -> Option<Duration> {
    let stamp = value.get(..STAMP_BYTES)?;
    if &stamp[..4] != STAMP_MARKER {
        return None;
    }
    let micros = u64::from_be_bytes(stamp[4..STAMP_BYTES].try_into().ok()?);
    let sent = UNIX_EPOCH + Duration::from_micros(micros);
    Some(now.duration_since(sent).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::MessageSize;

    #[test]
    fn stamps_round_trip() {
        let sent = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let value = stamped_value(&[b'x'; 40], sent);
        assert_eq!(value.len(), 40);
        assert_eq!(
            stamp_age(&value, sent + Duration::from_millis(3)),
            Some(Duration::from_millis(3))
        );
        assert_eq!(stamp_age(b"short", sent), None);
        assert_eq!(stamp_age(&[b'x'; 40], sent), None);
        assert_eq!(stamped_value(b"tiny", sent).as_ref(), b"tiny");
    }

    #[test]
    fn records_follow_the_group() {
        let group = ProducerGroup {
            message_size: MessageSize::Range { min: 20, max: 30 },
            key_space: 5,
            headers: 2,
            ..ProducerGroup::default()
        };
        let mut factory = RecordFactory::new("t", &group, 7);
        for _ in 0..100 {
            let (record, size) = factory.next_record();
            assert!((20..=30).contains(&size));
            assert_eq!(record.value.as_ref().map(Bytes::len), Some(size));
            assert!(record.key.is_some());
            assert_eq!(record.headers.len(), 2);
        }
    }
}
