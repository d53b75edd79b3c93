use super::*;
use crate::batch::{set_base_offset, set_max_timestamp_log_append_time};
use crate::batch_builder::RecordBatchBuilder;
use crate::compression::Compression;
use crate::error::LogError;

#[test]
fn varints_round_trip() {
    for value in [0i64, 1, -1, 63, -64, 64, 300, -300, i32::MAX as i64, i64::MIN, i64::MAX] {
        let mut out = Vec::new();
        write_varlong(&mut out, value);
        let mut at = 0;
        assert_eq!(read_varlong(&out, &mut at).unwrap(), value);
        assert_eq!(at, out.len());
    }
    let mut out = Vec::new();
    write_varint(&mut out, -12345);
    assert_eq!(read_varint(&out, &mut 0).unwrap(), -12345);
    assert!(read_varint(&[0xff; 6], &mut 0).is_err());
    assert!(read_varlong(&[0x80], &mut 0).is_err());
}

fn batch_with(codec: Compression, timestamps: &[i64]) -> Vec<u8> {
    let mut builder = RecordBatchBuilder::new().compression(codec);
    for ts in timestamps {
        builder.push(*ts, None, Some(b"value value value"));
    }
    let mut batch = builder.build().unwrap();
    set_base_offset(&mut batch, 100).unwrap();
    batch
}

#[test]
fn finds_first_record_in_every_codec() {
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let batch = batch_with(codec, &[10, 30, 20, 40]);
        crate::batch::validate(&batch).unwrap();
        let find = |ts, min| find_first_record_at_or_after(&batch, ts, min).unwrap();
        assert_eq!(find(0, 0), Some((100, 10)), "{codec:?}");
        assert_eq!(find(15, 0), Some((101, 30)));
        assert_eq!(find(30, 0), Some((101, 30)));
        assert_eq!(find(31, 0), Some((103, 40)));
        assert_eq!(find(41, 0), None);
        assert_eq!(find(0, 102), Some((102, 20)));
    }
}

#[test]
fn log_append_time_batches_use_the_header() {
    let mut batch = batch_with(Compression::Gzip, &[1, 2, 3]);
    set_max_timestamp_log_append_time(&mut batch, 500).unwrap();
    assert_eq!(find_first_record_at_or_after(&batch, 400, 0).unwrap(), Some((100, 500)));
    assert_eq!(find_first_record_at_or_after(&batch, 501, 0).unwrap(), None);
}

#[test]
fn record_entries_locate_keys_values_and_bytes() {
    let mut builder = RecordBatchBuilder::new().compression(Compression::Zstd);
    builder.push(10, Some(b"alpha"), Some(b"one"));
    builder.push(12, None, Some(b"two"));
    builder.push(11, Some(b"beta"), None);
    let mut batch = builder.build().unwrap();
    set_base_offset(&mut batch, 40).unwrap();
    let (header, section) = decompress_records_section(&batch).unwrap();
    let entries = decode_record_entries(&header, &section).unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].offset, 40);
    assert_eq!(&section[entries[0].key.clone().unwrap()], b"alpha");
    assert_eq!(&section[entries[0].value.clone().unwrap()], b"one");
    assert_eq!(entries[1].key, None);
    assert_eq!(entries[2].timestamp, 11);
    assert_eq!(&section[entries[2].key.clone().unwrap()], b"beta");
    assert_eq!(entries[2].value, None);
    assert_eq!(entries[2].bytes.end, section.len());
    assert_eq!(entries[1].bytes.start, entries[0].bytes.end);
    for cut in 0..section.len() {
        assert!(decode_record_entries(&header, &section[..cut]).is_err());
    }
}

#[test]
fn garbage_records_are_errors() {
    let batch = batch_with(Compression::None, &[1, 2, 3]);
    for cut in BATCH_HEADER_SIZE..batch.len() {
        let mut broken = batch.clone();
        broken[cut] = 0xff;
        let _ = decode_batch(&broken);
        let _ = decode_batch(&batch[..cut]);
        if let Ok((header, section)) = decompress_records_section(&broken) {
            let _ = decode_record_entries(&header, &section);
        }
    }
}

/// A one-record uncompressed batch whose record body is `body` (attributes onwards).
fn batch_with_record_body(body: &[u8]) -> Vec<u8> {
    let mut builder = RecordBatchBuilder::new();
    builder.push(0, None, None);
    let built = builder.build().unwrap();
    let mut section = Vec::new();
    write_varint(&mut section, body.len() as i32);
    section.extend_from_slice(body);
    crate::batch::rebuild_batch(&built, &section, 1, 0).unwrap()
}

#[test]
fn header_errors_are_corrupt_not_panics() {
    // attributes, timestampDelta 0, offsetDelta 0, null key, null value, then headers.
    let prefix = [0u8, 0, 0, 1, 1];
    let mut negative_count = prefix.to_vec();
    write_varint(&mut negative_count, -1);
    let mut null_header_key = prefix.to_vec();
    write_varint(&mut null_header_key, 1);
    write_varint(&mut null_header_key, -1);
    write_varint(&mut null_header_key, -1);
    let mut huge_count = prefix.to_vec();
    write_varint(&mut huge_count, i32::MAX);
    let mut trailing = prefix.to_vec();
    write_varint(&mut trailing, 0);
    trailing.push(7);
    for body in [negative_count, null_header_key, huge_count, trailing] {
        let batch = batch_with_record_body(&body);
        assert!(
            matches!(decode_batch(&batch), Err(LogError::CorruptBatch { .. })),
            "{body:?}"
        );
    }
    let mut fine = prefix.to_vec();
    write_varint(&mut fine, 0);
    assert!(decode_batch(&batch_with_record_body(&fine)).unwrap().1[0]
        .headers
        .is_empty());
}

#[test]
fn decode_batch_agrees_with_record_entries() {
    let mut builder = RecordBatchBuilder::new().compression(Compression::Lz4);
    builder.push_with_headers(10, Some(b"alpha"), Some(b"one"), &[("h", Some(b"x"))]);
    builder.push(12, None, Some(b"two"));
    let mut batch = builder.build().unwrap();
    set_base_offset(&mut batch, 7).unwrap();
    let (header, records) = decode_batch(&batch).unwrap();
    let (_, section) = decompress_records_section(&batch).unwrap();
    let entries = decode_record_entries(&header, &section).unwrap();
    assert_eq!(records.len(), entries.len());
    for (record, entry) in records.iter().zip(&entries) {
        assert_eq!((record.offset, record.timestamp), (entry.offset, entry.timestamp));
        assert_eq!(record.key.as_deref(), entry.key.clone().map(|r| &section[r]));
        assert_eq!(record.value.as_deref(), entry.value.clone().map(|r| &section[r]));
        assert_eq!(record.headers, entry.headers);
    }
}
