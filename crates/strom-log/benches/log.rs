//! Append and read throughput of one log with 1 KiB batches.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use strom_log::{Log, LogConfig, RecordBatchBuilder, SystemClock};

fn one_kib_batch() -> Vec<u8> {
    let mut builder = RecordBatchBuilder::new();
    for i in 0..8 {
        builder.push(1_700_000_000_000 + i, None, Some(&[b'x'; 110]));
    }
    builder.build().expect("batch")
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), LogConfig::default(), Arc::new(SystemClock)).expect("open");
    let batch = one_kib_batch();
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("append_1kib", |b| {
        b.iter_batched_ref(
            || batch.clone(),
            |bytes| log.append(bytes).expect("append"),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), LogConfig::default(), Arc::new(SystemClock)).expect("open");
    let batch = one_kib_batch();
    for _ in 0..10_000 {
        log.append(&batch.clone()).expect("append");
    }
    let end = log.log_end_offset();
    let mut offset = 0;
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Bytes(64 * 1024));
    group.bench_function("read_64kib", |b| {
        b.iter(|| {
            let result = log.read(offset, 64 * 1024, end).expect("read");
            offset = (offset + 800) % (end - 1000);
            result.records.len()
        })
    });
    group.finish();
}

criterion_group!(benches, append, read);
criterion_main!(benches);
