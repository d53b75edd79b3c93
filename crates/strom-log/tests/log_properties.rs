//! Property tests of the log's invariants under appends, flushes, rolls, retention,
//! record deletion, clean restarts and crashes with torn or corrupted tails: offsets
//! stay dense and increasing (nothing here compacts, and recovery accepts a gap only
//! below the recovery point, so a damaged `baseOffset` in an unflushed tail is still
//! cut), every flushed batch that retention and deletion kept is readable
//! byte-identical at its offset, and no invalid batch is ever returned. Compaction,
//! which leaves gaps, has its own properties in `compaction_properties.rs`.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{active_segment_file, xorshift};
use proptest::prelude::*;
use strom_log::batch::{validate, BatchIter};
use strom_log::{Clock, Log, LogConfig, ManualClock, RecordBatchBuilder};

#[derive(Clone, Debug)]
enum Op {
    /// (records, value bytes) per batch, appended in one call.
    Append(Vec<(usize, usize)>),
    Flush,
    Roll,
    AdvanceClock(i64),
    RetainBytes(i64),
    RetainTime,
    /// Fraction (per mille) of the way from log start to log end.
    DeleteRecords(u16),
    CleanRestart,
    CrashCut(u64),
    CrashFlip(u64, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop::collection::vec((1usize..5, 0usize..150), 1..4).prop_map(Op::Append),
        3 => Just(Op::Flush),
        1 => Just(Op::Roll),
        1 => (1i64..20_000).prop_map(Op::AdvanceClock),
        1 => (0i64..8_000).prop_map(Op::RetainBytes),
        1 => Just(Op::RetainTime),
        1 => (0u16..=1000).prop_map(Op::DeleteRecords),
        1 => Just(Op::CleanRestart),
        2 => any::<u64>().prop_map(Op::CrashCut),
        2 => (any::<u64>(), 1u8..5).prop_map(|(seed, n)| Op::CrashFlip(seed, n)),
    ]
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 3000,
        segment_ms: i64::MAX / 2,
        retention_ms: -1,
        retention_bytes: -1,
        index_interval_bytes: 256,
        message_timestamp_log_append_time: false,
    }
}

struct Harness {
    dir: PathBuf,
    clock: Arc<ManualClock>,
    log: Option<Log>,
    /// base offset -> stored bytes
    batches: BTreeMap<i64, Vec<u8>>,
    flushed: i64,
    start: i64,
    end: i64,
}

fn next_offset(batch: &[u8]) -> i64 {
    validate(batch).expect("model batch").next_offset()
}

impl Harness {
    fn new(dir: &Path) -> Harness {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let log = Log::open(dir, config(), clock.clone()).unwrap();
        Harness {
            dir: dir.to_path_buf(),
            clock,
            log: Some(log),
            batches: BTreeMap::new(),
            flushed: 0,
            start: 0,
            end: 0,
        }
    }

    fn log(&self) -> &Log {
        self.log.as_ref().unwrap()
    }

    fn reopen(&mut self) {
        self.log = Some(Log::open(&self.dir, config(), self.clock.clone()).unwrap());
    }

    fn prune_below_start(&mut self) {
        let start = self.start;
        self.batches.retain(|_, bytes| next_offset(bytes) > start);
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append(shape) => {
                let now = self.clock.now_ms();
                let mut input = Vec::new();
                for (records, value_bytes) in shape {
                    let mut builder = RecordBatchBuilder::new();
                    for i in 0..*records {
                        builder.push(now + i as i64, Some(b"key"), Some(&vec![i as u8; *value_bytes]));
                    }
                    input.extend_from_slice(&builder.build().unwrap());
                }
                let info = self.log().append(&input).unwrap();
                assert_eq!(info.base_offset, self.end);
                assert_eq!(info.batch_count, shape.len());
                // The stored copy carries the assigned offsets; the input is untouched.
                let mut offset = info.base_offset;
                for (header, bytes) in BatchIter::new(&input) {
                    let mut stored = bytes.to_vec();
                    strom_log::batch::set_base_offset(&mut stored, offset).unwrap();
                    self.batches.insert(offset, stored);
                    offset += i64::from(header.last_offset_delta) + 1;
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
            Op::RetainBytes(bytes) => {
                self.log().set_config(LogConfig {
                    retention_bytes: *bytes,
                    ..config()
                });
                self.log().apply_retention().unwrap();
                self.log().set_config(config());
                self.after_retention();
            }
            Op::RetainTime => {
                self.log().set_config(LogConfig {
                    retention_ms: 10_000,
                    ..config()
                });
                self.log().apply_retention().unwrap();
                self.log().set_config(config());
                self.after_retention();
            }
            Op::DeleteRecords(per_mille) => {
                let target = self.start + (self.end - self.start) * i64::from(*per_mille) / 1000;
                let start = self.log().delete_records(target).unwrap();
                assert_eq!(start, target.max(self.start));
                self.start = start;
                self.prune_below_start();
                assert!(self.log().delete_records(self.end + 1).is_err());
            }
            Op::CleanRestart => {
                self.log().close().unwrap();
                self.log = None;
                self.reopen();
                assert_eq!(self.log().log_end_offset(), self.end);
                assert_eq!(self.log().log_start_offset(), self.start);
                self.flushed = self.end;
            }
            Op::CrashCut(seed) => self.crash(*seed, None),
            Op::CrashFlip(seed, flips) => self.crash(*seed, Some(*flips)),
        }
        self.check();
    }

    fn after_retention(&mut self) {
        let start = self.log().log_start_offset();
        assert!(start >= self.start);
        self.start = start;
        self.prune_below_start();
    }

    fn crash(&mut self, seed: u64, flips: Option<u8>) {
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
        let mut state = seed | 1;
        if unflushed > 0 {
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            match flips {
                None => {
                    let cut = flushed_position as u64 + xorshift(&mut state) % (unflushed + 1);
                    file.set_len(cut).unwrap();
                }
                Some(count) => {
                    for _ in 0..count {
                        let at = flushed_position as u64 + xorshift(&mut state) % unflushed;
                        let old = bytes[at as usize];
                        let flip = (xorshift(&mut state) % 255 + 1) as u8;
                        file.write_all_at(&[old ^ flip], at).unwrap();
                    }
                }
            }
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
        self.batches.retain(|base, _| *base < end);
        // Offsets below the log start are never reused: a log that lost them restarts there.
        assert!(end >= self.start);
        assert_eq!(self.log().log_start_offset(), self.start);
        let flushed = self.flushed;
        // Unflushed batches survive as a prefix, and may differ from what was appended
        // only outside the CRC (e.g. the leader epoch).
        let candidates: Vec<i64> = self.batches.range(flushed..).map(|(b, _)| *b).collect();
        let mut lost = false;
        for base in candidates {
            let survivor = if lost || base >= end {
                None
            } else {
                let read = self.log().read(base.max(self.start), 1, i64::MAX).unwrap().records;
                BatchIter::new(&read)
                    .next()
                    .filter(|(header, _)| header.base_offset == base)
                    .map(|(_, batch)| {
                        validate(batch).unwrap();
                        batch.to_vec()
                    })
            };
            match survivor {
                Some(batch) => {
                    self.batches.insert(base, batch);
                }
                None => {
                    lost = true;
                    self.batches.remove(&base);
                }
            }
        }
        self.flushed = self.log().flushed_offset();
        assert_eq!(self.flushed, end);
    }

    fn check(&self) {
        let log = self.log();
        assert_eq!(log.log_end_offset(), self.end);
        assert_eq!(log.log_start_offset(), self.start);
        // Every kept batch is readable byte-identical at its offset.
        for (base, bytes) in &self.batches {
            let offset = (*base).max(self.start);
            let read = log.read(offset, 1, i64::MAX).unwrap().records;
            assert!(read.len() >= bytes.len(), "batch at {base} missing");
            assert_eq!(&read[..bytes.len()], &bytes[..], "batch at {base} differs");
        }
        // A full scan returns only valid, dense batches.
        let mut offset = self.start;
        let mut expected_base = None;
        while offset < self.end {
            let read = log.read(offset, 2000, i64::MAX).unwrap().records;
            assert!(!read.is_empty(), "empty read at {offset} below end {}", self.end);
            let mut iter = BatchIter::new(&read);
            for (_, batch) in iter.by_ref() {
                let header = validate(batch).unwrap();
                if let Some(expected) = expected_base {
                    assert_eq!(header.base_offset, expected);
                }
                assert!(header.last_offset() >= offset);
                expected_base = Some(header.next_offset());
                offset = header.next_offset();
            }
            assert_eq!(iter.position(), read.len(), "partial batch returned");
        }
        assert_eq!(offset.max(self.start), self.end);
        assert!(log.read(self.end, 100, i64::MAX).unwrap().records.is_empty());
        assert!(log.read(self.end + 1, 100, i64::MAX).is_err());
        if self.start > 0 {
            assert!(log.read(self.start - 1, 100, i64::MAX).is_err());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn log_invariants_hold(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut harness = Harness::new(dir.path());
        for op in &ops {
            harness.apply(op);
        }
        harness.log().close().unwrap();
    }
}
