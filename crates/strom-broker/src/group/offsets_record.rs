//! Records of the internal `__consumer_offsets` topic, in Kafka's own formats so
//! existing tools can read them:
//!
//! - offset commit: key v1 `(version i16 = 1, group string, topic string, partition i32)`,
//!   value v3 `(version i16 = 3, offset i64, leader_epoch i32, metadata string,
//!   commit_timestamp i64)`;
//! - group metadata: key v2 `(version i16 = 2, group string)`, value v3
//!   `(version i16 = 3, protocol_type string, generation i32, protocol nullable string,
//!   leader nullable string, current_state_timestamp i64, members [member_id string,
//!   group_instance_id nullable string, client_id string, client_host string,
//!   rebalance_timeout i32, session_timeout i32, subscription bytes, assignment bytes])`.
//!
//! A record with a null value is a tombstone for its key. Strings are i16-length
//! prefixed (nullable: -1), bytes i32-length prefixed. Decoding never panics.

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OffsetsKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberValue {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Vec<u8>,
    pub assignment: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

struct Writer(Vec<u8>);

impl Writer {
    fn i16(&mut self, v: i16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn string(&mut self, s: &str) {
        let len = s.len().min(i16::MAX as usize);
        self.i16(len as i16);
        self.0.extend_from_slice(&s.as_bytes()[..len]);
    }
    fn nullable_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.i16(-1),
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.i32(b.len() as i32);
        self.0.extend_from_slice(b);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(slice)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4).and_then(|b| b.try_into().ok()).map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8).and_then(|b| b.try_into().ok()).map(i64::from_be_bytes)
    }
    fn nullable_string(&mut self) -> Option<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Some(None);
        }
        let bytes = self.take(len as usize)?;
        Some(Some(String::from_utf8_lossy(bytes).into_owned()))
    }
    fn string(&mut self) -> Option<String> {
        self.nullable_string()?
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = self.i32()?;
        if len < 0 {
            return Some(Vec::new());
        }
        self.take(len as usize).map(<[u8]>::to_vec)
    }
}

pub fn encode_key(key: &OffsetsKey) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64));
    match key {
        OffsetsKey::Offset {
            group,
            topic,
            partition,
        } => {
            w.i16(1);
            w.string(group);
            w.string(topic);
            w.i32(*partition);
        }
        OffsetsKey::Group { group } => {
            w.i16(2);
            w.string(group);
        }
    }
    w.0
}

pub fn decode_key(bytes: &[u8]) -> Option<OffsetsKey> {
    let mut r = Reader { bytes, at: 0 };
    match r.i16()? {
        0 | 1 => Some(OffsetsKey::Offset {
            group: r.string()?,
            topic: r.string()?,
            partition: r.i32()?,
        }),
        2 => Some(OffsetsKey::Group { group: r.string()? }),
        _ => None,
    }
}

pub fn encode_offset_value(v: &OffsetValue) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(32 + v.metadata.len()));
    w.i16(3);
    w.i64(v.offset);
    w.i32(v.leader_epoch);
    w.string(&v.metadata);
    w.i64(v.commit_timestamp);
    w.0
}

/// Reads value versions 0–3 (v1 carries an expire timestamp, v2 drops it, v3 adds the epoch).
pub fn decode_offset_value(bytes: &[u8]) -> Option<OffsetValue> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.i16()?;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp = r.i64()?;
    Some(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

pub fn encode_group_value(v: &GroupValue) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(128));
    w.i16(3);
    w.string(&v.protocol_type);
    w.i32(v.generation);
    w.nullable_string(v.protocol.as_deref());
    w.nullable_string(v.leader.as_deref());
    w.i64(v.state_timestamp);
    w.i32(v.members.len() as i32);
    for m in &v.members {
        w.string(&m.member_id);
        w.nullable_string(m.instance_id.as_deref());
        w.string(&m.client_id);
        w.string(&m.client_host);
        w.i32(m.rebalance_timeout_ms);
        w.i32(m.session_timeout_ms);
        w.bytes(&m.subscription);
        w.bytes(&m.assignment);
    }
    w.0
}

pub fn decode_group_value(bytes: &[u8]) -> Option<GroupValue> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return None;
    }
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?.max(0) as usize;
    let mut members = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let member_id = r.string()?;
        let instance_id = if version >= 3 { r.nullable_string()? } else { None };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        members.push(MemberValue {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Some(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        for key in [
            OffsetsKey::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
            },
            OffsetsKey::Group { group: "g".into() },
        ] {
            assert_eq!(decode_key(&encode_key(&key)), Some(key));
        }
        let offset = OffsetValue {
            offset: 42,
            leader_epoch: 0,
            metadata: "meta".into(),
            commit_timestamp: 1,
        };
        assert_eq!(decode_offset_value(&encode_offset_value(&offset)), Some(offset));
        let group = GroupValue {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            state_timestamp: 5,
            members: vec![MemberValue {
                member_id: "m1".into(),
                instance_id: Some("i".into()),
                ..Default::default()
            }],
        };
        assert_eq!(decode_group_value(&encode_group_value(&group)), Some(group));
    }

    #[test]
    fn garbage_does_not_decode() {
        assert_eq!(decode_key(&[0, 1, 0, 9, b'x']), None);
        assert_eq!(decode_key(&[]), None);
        assert_eq!(decode_offset_value(&[0, 3, 1]), None);
        assert_eq!(
            decode_group_value(&[0, 3, 0, 1, b'c', 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]),
            None
        );
    }
}
