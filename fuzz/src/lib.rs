//! The fuzz targets' bodies, one function per target (`src/bin/<target>.rs` hands each
//! AFL++ input to one of them). Besides "never panics", each checks what the code under
//! test promises, so a wrong answer is a crash too.
//!
//! Input layouts (the seed corpora in `corpus/` are written by `src/bin/gen_corpus.rs`):
//! - `frame`: one control byte (size cap, read chunk size), then a byte stream.
//! - `request_header`: one request frame without its length prefix.
//! - `request_body`: an index into `strom_kafka::SUPPORTED`, a version pick, a body.
//! - `batch`: one control byte (bit 0: fix the CRC first), then batches.
//! - `records`: one control byte (bit 0: compress the records with the batch's codec),
//!   the 61-byte batch header, the records section.

use bytes::{Bytes, BytesMut};
use strom_kafka::fuzzing::frame::{self, FrameError};
use strom_kafka::fuzzing::{self, Decoded};
use strom_kafka::SUPPORTED;
use strom_log::batch::{self, BatchIter, RecordBatchHeader};
use strom_log::compression::Compression;
use strom_log::constants::{BATCH_BYTES_MAX, BATCH_HEADER_SIZE, BATCH_LOG_OVERHEAD, MAGIC_V2};
use strom_log::record;

/// Frame size caps the `frame` target picks from: none allowed, tiny, and the default
/// `socket.request.max.bytes`.
const FRAME_CAPS: [usize; 4] = [0, 8, 1024, 100 * 1024 * 1024];

/// Feeds a byte stream to the frame parser in chunks, as socket reads would, and checks
/// that frames come out whole, in order and within the cap, and that nothing is lost.
pub fn frame(data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let max = FRAME_CAPS[usize::from(control & 3)];
    let chunk = usize::from(control >> 2) + 1;
    let mut buf = BytesMut::new();
    let mut fed = 0;
    // Bytes of `stream` taken off as whole frames, length prefixes included.
    let mut taken = 0;
    loop {
        if let Some(total) = frame::pending(&buf) {
            assert!(total > buf.len(), "pending {total} with {} buffered", buf.len());
        }
        match frame::parse(&mut buf, max) {
            Ok(Some(request)) => {
                assert!(request.len() <= max);
                let start = taken + 4;
                assert_eq!(&stream[start..start + request.len()], &request[..]);
                taken = start + request.len();
                continue;
            }
            Ok(None) => {
                // Incomplete: either no length yet, or one the caller must wait for.
                assert!(buf.len() < 4 || frame::pending(&buf).is_some());
            }
            Err(FrameError::TooLarge(len, cap)) => {
                assert!(len > max && cap == max);
                return;
            }
            Err(FrameError::Negative(len)) => {
                assert!(len < 0);
                return;
            }
        }
        if fed == stream.len() {
            break;
        }
        let next = (fed + chunk).min(stream.len());
        buf.extend_from_slice(&stream[fed..next]);
        fed = next;
    }
    assert_eq!(taken + buf.len(), stream.len());
}

/// Decodes one request frame as a connection does before dispatching it.
pub fn request_header(data: &[u8]) {
    match fuzzing::decode_request(Bytes::copy_from_slice(data)) {
        Ok(Decoded::Request { api_key, version }) => {
            assert!(strom_kafka::fuzzing::is_supported(api_key, version));
        }
        Ok(Decoded::UnsupportedApiVersions { .. }) | Err(_) => {}
    }
}

/// Decodes a body of a served API and version: the first two bytes pick them, so every
/// input reaches a body decoder.
pub fn request_body(data: &[u8]) {
    let [which, pick, body @ ..] = data else { return };
    let (api_key, min, max) = SUPPORTED[usize::from(*which) % SUPPORTED.len()];
    let version = min + i16::from(*pick) % (max - min + 1);
    let _ = fuzzing::decode_body(api_key, version, Bytes::copy_from_slice(body));
}

/// Validates, iterates and patches batches. With bit 0 of the control byte the first
/// batch's CRC is set right first, so the checks behind the CRC are reached.
pub fn batch(data: &[u8]) {
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    let mut bytes = bytes.to_vec();
    if control & 1 != 0 {
        fix_crc(&mut bytes);
    }
    let bytes = &bytes[..];

    let parsed = RecordBatchHeader::parse(bytes).ok();
    if let Some(header) = parsed {
        let _ = (header.total_size(), header.next_offset(), header.compression());
        let _ = (
            header.is_log_append_time(),
            header.is_transactional(),
            header.is_control(),
        );
    }
    if let Ok(header) = batch::validate(bytes) {
        assert_eq!(Some(header), parsed);
        assert!(
            batch::validate_stored(bytes).is_ok(),
            "validate_stored refuses a valid batch"
        );
        let total = header.total_size().expect("a valid batch has a total size");
        assert!(total <= bytes.len());
        assert_eq!(batch::compute_crc(&bytes[..total]).ok(), Some(header.crc));
        // The broker's patches keep a batch valid.
        let mut copy = bytes[..total].to_vec();
        batch::set_base_offset(&mut copy, 1 << 40).expect("set_base_offset");
        batch::set_partition_leader_epoch(&mut copy, 7).expect("set_partition_leader_epoch");
        let patched = batch::validate(&copy).expect("patching offset and epoch broke the batch");
        assert_eq!((patched.base_offset, patched.partition_leader_epoch), (1 << 40, 7));
        batch::set_max_timestamp_log_append_time(&mut copy, 1234).expect("LogAppendTime");
        let stamped = batch::validate(&copy).expect("stamping LogAppendTime broke the batch");
        assert!(stamped.is_log_append_time());
        assert_eq!(stamped.max_timestamp, 1234);
    }
    let _ = batch::validate_stored(bytes);

    let mut iter = BatchIter::new(bytes);
    let mut end = 0;
    for (header, one) in iter.by_ref() {
        assert_eq!(Some(one.len()), header.total_size());
        end += one.len();
        let _ = batch::validate(one);
    }
    assert_eq!(iter.position(), end);
    assert!(end <= bytes.len());
}

/// Sets the CRC of the batch at the start of `bytes` to match its covered bytes.
fn fix_crc(bytes: &mut [u8]) {
    let Ok(header) = RecordBatchHeader::parse(bytes) else {
        return;
    };
    let end = header.total_size().unwrap_or(bytes.len()).min(bytes.len());
    if let Ok(crc) = batch::compute_crc(&bytes[..end]) {
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Builds a valid batch (length, magic, offset range and CRC set right) around a fuzzed
/// header and records section, then decodes its records both ways and checks they agree.
pub fn records(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let mut batch = vec![0u8; BATCH_HEADER_SIZE];
    let head = rest.len().min(BATCH_HEADER_SIZE);
    batch[..head].copy_from_slice(&rest[..head]);
    let raw_section = rest.get(BATCH_HEADER_SIZE..).unwrap_or(&[]);
    let codec = Compression::from_codec(batch[22] & 7);
    let compressed = control & 1 != 0 && codec.is_ok();
    match codec {
        Ok(codec) if compressed => {
            batch.extend_from_slice(&codec.compress(raw_section).expect("compression of any input"))
        }
        _ => batch.extend_from_slice(raw_section),
    }
    if batch.len() > BATCH_BYTES_MAX {
        return;
    }

    // The fields `validate` checks, so every input gets past it.
    let count = i32::from_be_bytes(batch[57..61].try_into().unwrap()).max(1);
    let length = (batch.len() - BATCH_LOG_OVERHEAD) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    batch[16] = MAGIC_V2 as u8;
    batch[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    batch[57..61].copy_from_slice(&count.to_be_bytes());
    fix_crc(&mut batch);
    let header = batch::validate(&batch).expect("the batch was built to be valid");

    let Ok((decompressed_header, section)) = record::decompress_records_section(&batch) else {
        assert!(record::decode_batch(&batch).is_err());
        return;
    };
    assert_eq!(decompressed_header, header);
    if compressed {
        assert_eq!(section, raw_section, "compression did not round-trip");
    }
    let entries = record::decode_record_entries(&header, &section);
    let records = record::decode_batch(&batch).map(|(_, records)| records);
    if let Ok(entries) = entries {
        assert_eq!(entries.len(), count as usize);
        // Records tile the section, and keys and values lie inside their record.
        let mut at = 0;
        for entry in &entries {
            assert_eq!(entry.bytes.start, at);
            at = entry.bytes.end;
            for part in [&entry.key, &entry.value].into_iter().flatten() {
                assert!(entry.bytes.start <= part.start && part.end <= entry.bytes.end);
            }
        }
        assert_eq!(at, section.len());
        let records = records.expect("decode_batch refuses what decode_record_entries accepts");
        assert_eq!(records.len(), entries.len());
        for (record, entry) in records.iter().zip(&entries) {
            assert_eq!((record.offset, record.timestamp), (entry.offset, entry.timestamp));
        }
    }
    let target = header.base_timestamp.wrapping_add(i64::from(control >> 1));
    let _ = record::find_first_record_at_or_after(&batch, target, header.base_offset);
}
