//! Property tests of compaction: random keyed appends over a small key space (values
//! and tombstones, several codecs), flushes, rolls, compactions with random
//! `delete.retention.ms` / `min.compaction.lag.ms`, clock moves, clean restarts and
//! crashes that cut the unflushed tail of the active segment. After every step: the
//! log end offset is the model's; every record read back is the one written at its
//! offset; offsets strictly increase and every batch passes its CRC; for every key the
//! latest record written (among those that survived crashes) is readable — a value
//! always, a tombstone unless compaction dropped it and every older record of its key.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{active_segment_file, xorshift};
use proptest::prelude::*;
use strom_log::batch::{validate_stored, BatchIter};
use strom_log::record::{decode_record_entries, decompress_records_section};
use strom_log::{Clock, CompactionConfig, Compression, Log, LogConfig, ManualClock, RecordBatchBuilder};

const KEYS: u8 = 6;

#[derive(Clone, Debug)]
enum Op {
    /// One batch: codec index, then (key, tombstone?) per record.
    Append(usize, Vec<(u8, bool)>),
    Flush,
    Roll,
    AdvanceClock(i64),
    Compact {
        delete_retention_ms: i64,
        min_compaction_lag_ms: i64,
    },
    CleanRestart,
    Crash(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0usize..4, prop::collection::vec((0..KEYS, prop::bool::weighted(0.15)), 1..6))
            .prop_map(|(codec, records)| Op::Append(codec, records)),
        2 => Just(Op::Flush),
        2 => Just(Op::Roll),
        2 => (1i64..4_000).prop_map(Op::AdvanceClock),
        4 => (prop_oneof![Just(0i64), Just(2_000), Just(i64::MAX / 2)], prop_oneof![Just(0i64), Just(3_000)])
            .prop_map(|(delete_retention_ms, min_compaction_lag_ms)| Op::Compact { delete_retention_ms, min_compaction_lag_ms }),
        1 => Just(Op::CleanRestart),
        2 => any::<u64>().prop_map(Op::Crash),
    ]
}

const CODECS: [Compression; 4] = [
    Compression::None,
    Compression::Gzip,
    Compression::Zstd,
    Compression::Lz4,
];

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1500,
        segment_ms: i64::MAX / 2,
        retention_ms: -1,
        retention_bytes: -1,
        index_interval_bytes: 128,
        message_timestamp_log_append_time: false,
    }
}

type Record = (u8, Option<Vec<u8>>);

struct Harness {
    dir: PathBuf,
    clock: Arc<ManualClock>,
    log: Option<Log>,
    /// offset -> record, every record appended and not lost in a crash
    written: BTreeMap<i64, Record>,
    flushed: i64,
    end: i64,
    values: u64,
}

impl Harness {
    fn new(dir: &Path) -> Harness {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let log = Log::open(dir, config(), clock.clone()).unwrap();
        Harness {
            dir: dir.to_path_buf(),
            clock,
            log: Some(log),
            written: BTreeMap::new(),
            flushed: 0,
            end: 0,
            values: 0,
        }
    }

    fn log(&self) -> &Log {
        self.log.as_ref().unwrap()
    }

    fn reopen(&mut self) {
        self.log = Some(Log::open(&self.dir, config(), self.clock.clone()).unwrap());
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append(codec, records) => {
                let now = self.clock.now_ms();
                let mut builder = RecordBatchBuilder::new().compression(CODECS[*codec % CODECS.len()]);
                let mut model = Vec::new();
                for (key, tombstone) in records {
                    self.values += 1;
                    let value =
                        (!tombstone).then(|| format!("value-{}-{}", self.values, "x".repeat(*key as usize * 7)));
                    builder.push(now, Some(&[b'k', *key]), value.as_deref().map(str::as_bytes));
                    model.push((*key, value.map(String::into_bytes)));
                }
                let info = self.log().append(&builder.build().unwrap()).unwrap();
                assert_eq!(info.base_offset, self.end);
                for (index, record) in model.into_iter().enumerate() {
                    self.written.insert(self.end + index as i64, record);
                }
                self.end = info.last_offset + 1;
            }
            Op::Flush => {
                self.flushed = self.log().flush().unwrap();
                assert_eq!(self.flushed, self.end);
            }
            Op::Roll => {
                self.log().roll_now().unwrap();
            }
            Op::AdvanceClock(ms) => self.clock.advance_ms(*ms),
            Op::Compact {
                delete_retention_ms,
                min_compaction_lag_ms,
            } => {
                let before = self.log().size_bytes();
                let stats = self
                    .log()
                    .compact(CompactionConfig {
                        delete_retention_ms: *delete_retention_ms,
                        min_compaction_lag_ms: *min_compaction_lag_ms,
                    })
                    .unwrap();
                assert_eq!(self.log().size_bytes(), before - stats.bytes_before + stats.bytes_after);
                // Compaction flushes what it cleans.
                self.flushed = self.log().flushed_offset();
            }
            Op::CleanRestart => {
                self.log().close().unwrap();
                self.log = None;
                self.reopen();
                self.flushed = self.end;
            }
            Op::Crash(seed) => self.crash(*seed),
        }
        self.check();
    }

    fn crash(&mut self, seed: u64) {
        self.log = None; // dropped without close
        let path = active_segment_file(&self.dir);
        let bytes = std::fs::read(&path).unwrap();
        let flushed_position = BatchIter::new(&bytes)
            .scan(0usize, |position, (header, batch)| {
                let at = *position;
                *position += batch.len();
                Some((at, header.base_offset))
            })
            .find(|(_, base)| *base >= self.flushed)
            .map_or(bytes.len(), |(at, _)| at);
        let unflushed = (bytes.len() - flushed_position) as u64;
        if unflushed > 0 {
            let mut state = seed | 1;
            let cut = flushed_position as u64 + xorshift(&mut state) % (unflushed + 1);
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(cut).unwrap();
        }
        self.reopen();
        let end = self.log().log_end_offset();
        assert!(
            end >= self.flushed,
            "lost flushed data: end {end} < flushed {}",
            self.flushed
        );
        assert!(end <= self.end);
        self.end = end;
        self.written.retain(|offset, _| *offset < end);
        self.flushed = self.log().flushed_offset();
        assert_eq!(self.flushed, end);
    }

    fn read_back(&self) -> BTreeMap<i64, Record> {
        let log = self.log();
        let mut out = BTreeMap::new();
        let mut offset = log.log_start_offset();
        let mut last_offset = -1;
        while offset < self.end {
            let read = log.read(offset, 1000, i64::MAX).unwrap().records;
            if read.is_empty() {
                // Compaction removed every record from here to the log end.
                assert!(self.written.range(offset..).all(|(later, (key, _))| self
                    .written
                    .range(later + 1..)
                    .any(|(_, (k, _))| k == key)
                    || self.written[later].1.is_none()));
                break;
            }
            let mut iter = BatchIter::new(&read);
            for (_, batch) in iter.by_ref() {
                let header = validate_stored(batch).expect("every stored batch passes its CRC");
                assert!(
                    header.base_offset > last_offset,
                    "batches out of order at {}",
                    header.base_offset
                );
                assert!(header.last_offset() >= offset);
                let (header, section) = decompress_records_section(batch).unwrap();
                for entry in decode_record_entries(&header, &section).unwrap() {
                    assert!(entry.offset > last_offset, "offsets not increasing at {}", entry.offset);
                    assert!(entry.offset <= header.last_offset());
                    last_offset = entry.offset;
                    let key = section[entry.key.clone().unwrap()].to_vec();
                    assert_eq!(key.len(), 2);
                    out.insert(entry.offset, (key[1], entry.value.map(|range| section[range].to_vec())));
                }
                offset = header.next_offset();
            }
            assert_eq!(iter.position(), read.len(), "partial batch returned");
        }
        out
    }

    fn check(&self) {
        let log = self.log();
        assert_eq!(log.log_end_offset(), self.end);
        assert!(log.read(self.end, 100, i64::MAX).unwrap().records.is_empty());
        assert!(log.read(self.end + 1, 100, i64::MAX).is_err());
        let read = self.read_back();
        for (offset, record) in &read {
            assert_eq!(
                self.written.get(offset),
                Some(record),
                "record at {offset} is not what was written"
            );
        }
        let mut latest: BTreeMap<u8, (i64, &Record)> = BTreeMap::new();
        for (offset, record) in &self.written {
            latest.insert(record.0, (*offset, record));
        }
        for (key, (offset, record)) in latest {
            let found = read.contains_key(&offset);
            if record.1.is_some() {
                assert!(found, "latest value of key {key} at {offset} is gone");
            } else if !found {
                assert!(
                    read.values().all(|(k, _)| *k != key),
                    "tombstone of key {key} at {offset} dropped while an older record stays"
                );
            }
        }
        // Within the read range, a key's records that are not its latest are the
        // only ones compaction may have removed.
        for (offset, record) in &self.written {
            if !read.contains_key(offset) {
                let superseded = self.written.range(offset + 1..).any(|(_, later)| later.0 == record.0);
                assert!(
                    superseded || record.1.is_none(),
                    "record at {offset} vanished although it is the latest"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn compaction_keeps_the_latest_record_of_every_key(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut harness = Harness::new(dir.path());
        for op in &ops {
            harness.apply(op);
        }
        harness.log().close().unwrap();
    }
}
