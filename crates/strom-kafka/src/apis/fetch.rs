//! Fetch: decode, call [`strom_broker::BrokerApi::fetch`] (which owns the long-poll
//! and the KIP-74 byte budget), encode the stored batches byte for byte.
//!
//! The batches are not copied into the response: each partition's records are encoded
//! as a 16-byte placeholder, found again in the encoded response (in order, with its
//! length prefix checked) and replaced by the real length prefix and the file range,
//! which the connection sends with `sendfile`. kafka-protocol stays the only encoder of
//! the response's structure. Should a placeholder not be found where expected, the
//! ranges are read into memory and the response encoded as usual.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};
use strom_broker::api::{ClientRack, FetchParams, FetchPartition, FetchingReplica};
use strom_broker::{FetchIsolation, TopicRef};
use strom_log::FileRange;

use super::ResponseHeader;

use crate::context::{Context, Peer};
use crate::error_code::error_code;
use crate::outbound::Outbound;

/// The placeholder's first 12 bytes; the last 4 are the file range's index. A topic name
/// cannot hold 0xff or 0x00, and a number that happened to match would also need the
/// index and the length prefix to match, or the response falls back to copying.
const PLACEHOLDER_MAGIC: [u8; 12] = [0xff, 0x00, b'S', 0xfe, b'T', 0x01, b'R', 0xfd, b'O', 0x02, b'M', 0xfc];
const PLACEHOLDER_BYTES: usize = 16;

fn placeholder(index: usize) -> Bytes {
    let mut bytes = BytesMut::with_capacity(PLACEHOLDER_BYTES);
    bytes.extend_from_slice(&PLACEHOLDER_MAGIC);
    bytes.put_u32(index as u32);
    bytes.freeze()
}

/// The response, whose records are placeholders for `files` (in order).
pub async fn handle(
    context: &Context,
    peer: &Peer,
    request: FetchRequest,
    version: i16,
) -> (FetchResponse, Vec<FileRange>) {
    let mut partitions = Vec::new();
    for topic in &request.topics {
        let topic_ref = if version >= 13 {
            TopicRef::Id(topic.topic_id)
        } else {
            TopicRef::Name(topic.topic.0.to_string())
        };
        for p in &topic.partitions {
            partitions.push(FetchPartition {
                topic: topic_ref.clone(),
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: p.last_fetched_epoch,
            });
        }
    }
    // A follower names itself (ReplicaState from v15, replica_id before); consumers
    // send -1.
    let (replica_id, broker_epoch) = if version >= 15 {
        (request.replica_state.replica_id.0, request.replica_state.replica_epoch)
    } else {
        (request.replica_id.0, -1)
    };
    let params = FetchParams {
        replica: (replica_id >= 0).then_some(FetchingReplica {
            node_id: replica_id,
            broker_epoch,
        }),
        isolation: FetchIsolation::from_isolation_level(request.isolation_level),
        min_bytes: request.min_bytes.max(0) as usize,
        max_wait: Duration::from_millis(request.max_wait_ms.max(0) as u64),
        max_bytes: if request.max_bytes <= 0 {
            usize::MAX
        } else {
            request.max_bytes as usize
        },
        partitions,
        // KIP-392: consumers may read from followers from v11, which carries the rack.
        follower_reads: (replica_id < 0 && version >= 11)
            .then(|| ClientRack(Some(request.rack_id.to_string()).filter(|rack| !rack.is_empty()))),
    };
    let mut fetched = context.api.fetch(&peer.caller, params).await.into_iter();
    let mut files = Vec::new();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let data = PartitionData::default().with_partition_index(p.partition);
                    let Some(f) = fetched.next() else {
                        return data.with_error_code(kafka_protocol::error::ResponseError::UnknownServerError.code());
                    };
                    let data = data
                        .with_high_watermark(f.high_watermark)
                        .with_last_stable_offset(f.last_stable_offset)
                        .with_log_start_offset(f.log_start_offset);
                    let data = match f.diverging_epoch {
                        Some((epoch, end_offset)) => data.with_diverging_epoch(
                            EpochEndOffset::default().with_epoch(epoch).with_end_offset(end_offset),
                        ),
                        None => data,
                    };
                    match &f.error {
                        Some(e) => data.with_error_code(error_code(e)),
                        None => data
                            .with_aborted_transactions(f.aborted.map(|aborted| {
                                aborted
                                    .iter()
                                    .map(|a| {
                                        AbortedTransaction::default()
                                            .with_producer_id(ProducerId(a.producer_id))
                                            .with_first_offset(a.first_offset)
                                    })
                                    .collect()
                            }))
                            .with_preferred_read_replica(BrokerId(f.preferred_read_replica.unwrap_or(-1)))
                            .with_records(Some(match f.records {
                                Some(range) => {
                                    files.push(range);
                                    placeholder(files.len() - 1)
                                }
                                None => Bytes::new(),
                            })),
                    }
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(topic.topic)
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    (FetchResponse::default().with_responses(topics), files)
}

/// Writes the framed response to `output`, each placeholder replaced by its file range.
pub fn write(
    output: &mut Outbound,
    header: ResponseHeader,
    response: &FetchResponse,
    files: Vec<FileRange>,
) -> Result<(), String> {
    let mut encoded = BytesMut::new();
    header.write(&mut encoded, response)?;
    if files.is_empty() {
        output.buffer().extend_from_slice(&encoded);
        return Ok(());
    }
    let flexible = header.version >= 12;
    let Some(cuts) = find_placeholders(&encoded, files.len(), flexible) else {
        tracing::warn!("fetch response placeholders not found; copying the records instead");
        return write_copied(output, header, response, &files);
    };
    // The frame's length: the placeholders and their prefixes out, the ranges in.
    let mut length = encoded.len() - 4;
    let mut prefixes = Vec::with_capacity(files.len());
    for (file, (start, end)) in files.iter().zip(&cuts) {
        let mut prefix = BytesMut::new();
        let len = usize::try_from(file.len()).map_err(|_| "fetched range too large".to_string())?;
        if flexible {
            put_unsigned_varint(&mut prefix, len as u64 + 1);
        } else {
            prefix.put_i32(i32::try_from(len).map_err(|_| "fetched range too large".to_string())?);
        }
        length = length - (end - start) + prefix.len() + len;
        prefixes.push(prefix);
    }
    let length = i32::try_from(length).map_err(|_| "fetch response too large".to_string())?;
    encoded[..4].copy_from_slice(&length.to_be_bytes());
    let mut cursor = 0;
    for ((file, (start, end)), prefix) in files.into_iter().zip(cuts).zip(prefixes) {
        output.buffer().extend_from_slice(&encoded[cursor..start]);
        output.buffer().extend_from_slice(&prefix);
        output.push_file(file);
        cursor = end;
    }
    output.buffer().extend_from_slice(&encoded[cursor..]);
    Ok(())
}

/// Where each placeholder and its length prefix lie in `encoded`: (start of the
/// prefix, end of the placeholder), in order; None if any is not where it should be.
fn find_placeholders(encoded: &[u8], count: usize, flexible: bool) -> Option<Vec<(usize, usize)>> {
    // The prefix of 16 bytes: compact bytes (length + 1 as a varint) or an i32.
    let prefix: &[u8] = if flexible {
        &[PLACEHOLDER_BYTES as u8 + 1]
    } else {
        &[0, 0, 0, PLACEHOLDER_BYTES as u8]
    };
    let mut cuts = Vec::with_capacity(count);
    let mut from = 0;
    for index in 0..count {
        let at = from + find(encoded.get(from..)?, &PLACEHOLDER_MAGIC)?;
        let end = at + PLACEHOLDER_BYTES;
        let tag = encoded.get(at + PLACEHOLDER_MAGIC.len()..end)?;
        let start = at.checked_sub(prefix.len())?;
        if tag != (index as u32).to_be_bytes() || encoded.get(start..at)? != prefix {
            return None;
        }
        cuts.push((start, end));
        from = end;
    }
    Some(cuts)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn put_unsigned_varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// The response with the ranges read into memory (the fallback).
fn write_copied(
    output: &mut Outbound,
    header: ResponseHeader,
    response: &FetchResponse,
    files: &[FileRange],
) -> Result<(), String> {
    let mut response = response.clone();
    let mut next = 0;
    for partition in response.responses.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
        if partition
            .records
            .as_ref()
            .is_some_and(|r| r.len() == PLACEHOLDER_BYTES && r.starts_with(&PLACEHOLDER_MAGIC))
        {
            let file = files.get(next).ok_or("placeholder without a file range")?;
            partition.records = Some(file.read().map_err(|e| format!("reading fetched records: {e}"))?);
            next += 1;
        }
    }
    header.write(output.buffer(), &response)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{ApiKey, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    /// The placeholders are found in every version's encoding, so fetches take the
    /// sendfile path (the wire tests check the bytes that arrive).
    #[test]
    fn placeholders_are_found_in_every_fetch_version() {
        for version in 4..=18i16 {
            let partitions = (0..3)
                .map(|i| {
                    PartitionData::default()
                        .with_partition_index(i)
                        .with_high_watermark(-1)
                        .with_records(Some(placeholder(i as usize)))
                })
                .collect();
            let topic = FetchableTopicResponse::default()
                .with_topic(if version < 13 {
                    TopicName(StrBytes::from_static_str("t"))
                } else {
                    TopicName::default()
                })
                .with_partitions(partitions);
            let response = FetchResponse::default().with_responses(vec![topic]);
            let header = ResponseHeader {
                correlation_id: 1,
                api_key: ApiKey::Fetch,
                version,
            };
            let mut encoded = BytesMut::new();
            header.write(&mut encoded, &response).unwrap();
            let cuts = find_placeholders(&encoded, 3, version >= 12).expect("placeholders");
            assert_eq!(cuts.len(), 3, "v{version}");
            assert!(find_placeholders(&encoded, 4, version >= 12).is_none());
        }
    }

    #[test]
    fn varints_are_kafkas() {
        let mut out = BytesMut::new();
        put_unsigned_varint(&mut out, 300);
        assert_eq!(&out[..], &[0xac, 0x02]);
    }
}
