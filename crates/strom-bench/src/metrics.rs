//! Measurements: HdrHistograms of produce-ack and end-to-end latency (microseconds), a
//! per-second series of throughput and latency, and errors by kind.
//!
//! Every producer and consumer task owns a [`Recorder`] (no locks on the hot path); all
//! recorders of a run share one start instant, so their seconds line up when they are
//! [merged](Recorder::merge) at the end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest latency a histogram holds (µs); larger values are recorded as this.
pub const LATENCY_MAX_US: u64 = 600_000_000;
/// Significant digits of the whole-run histograms.
const SIGNIFICANT_DIGITS: u8 = 3;
/// Significant digits of the per-second histograms (smaller, one per second per task).
const SIGNIFICANT_DIGITS_PER_SECOND: u8 = 2;
/// Points of a latency distribution curve.
const DISTRIBUTION_TICKS_PER_HALF: u32 = 5;

/// A latency histogram in microseconds.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    histogram: Histogram<u64>,
}

impl LatencyHistogram {
    fn with_digits(digits: u8) -> Self {
        let histogram = Histogram::new_with_bounds(1, LATENCY_MAX_US, digits)
            .unwrap_or_else(|error| unreachable!("constant histogram bounds are valid: {error}"));
        LatencyHistogram { histogram }
    }

    /// An empty histogram.
    pub fn new() -> Self {
        LatencyHistogram::with_digits(SIGNIFICANT_DIGITS)
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        self.histogram.saturating_record(micros.min(LATENCY_MAX_US));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Both have the same bounds, so adding cannot fail; saturate just in case.
        if self.histogram.add(&other.histogram).is_err() {
            for value in other.histogram.iter_recorded() {
                self.histogram
                    .saturating_record_n(value.value_iterated_to(), value.count_at_value());
            }
        }
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The value at a percentile (0–100) in milliseconds; 0 when empty.
    pub fn percentile_ms(&self, percentile: f64) -> f64 {
        if self.histogram.is_empty() {
            return 0.0;
        }
        micros_to_ms(self.histogram.value_at_percentile(percentile))
    }

    /// Percentiles, mean and maximum in milliseconds.
    pub fn summary(&self) -> LatencySummary {
        if self.histogram.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.count(),
            p50_ms: self.percentile_ms(50.0),
            p90_ms: self.percentile_ms(90.0),
            p99_ms: self.percentile_ms(99.0),
            p999_ms: self.percentile_ms(99.9),
            max_ms: micros_to_ms(self.histogram.max()),
            mean_ms: self.histogram.mean() / 1000.0,
        }
    }

    /// The latency distribution: latency at quantiles up to the maximum, denser in the tail.
    pub fn distribution(&self) -> Vec<PercentilePoint> {
        if self.histogram.is_empty() {
            return Vec::new();
        }
        let mut points: Vec<PercentilePoint> = self
            .histogram
            .iter_quantiles(DISTRIBUTION_TICKS_PER_HALF)
            .map(|value| PercentilePoint {
                percentile: value.quantile_iterated_to() * 100.0,
                latency_ms: micros_to_ms(value.value_iterated_to()),
            })
            .collect();
        points.dedup_by(|a, b| a.percentile == b.percentile);
        points
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::new()
    }
}

fn micros_to_ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Latency percentiles of a run, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest value.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

/// One point of a latency distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PercentilePoint {
    /// Percentile (0–100).
    pub percentile: f64,
    /// Latency at that percentile.
    pub latency_ms: f64,
}

/// What happened in one second of a run (of one task before merging).
#[derive(Clone, Debug, Default)]
struct SecondBucket {
    produced_records: u64,
    produced_bytes: u64,
    consumed_records: u64,
    consumed_bytes: u64,
    errors: u64,
    produce: Option<LatencyHistogram>,
    e2e: Option<LatencyHistogram>,
}

impl SecondBucket {
    fn merge(&mut self, other: &SecondBucket) {
        self.produced_records += other.produced_records;
        self.produced_bytes += other.produced_bytes;
        self.consumed_records += other.consumed_records;
        self.consumed_bytes += other.consumed_bytes;
        self.errors += other.errors;
        merge_optional(&mut self.produce, &other.produce);
        merge_optional(&mut self.e2e, &other.e2e);
    }
}

fn merge_optional(into: &mut Option<LatencyHistogram>, from: &Option<LatencyHistogram>) {
    if let Some(from) = from {
        into.get_or_insert_with(|| LatencyHistogram::with_digits(SIGNIFICANT_DIGITS_PER_SECOND))
            .merge(from);
    }
}

/// Throughput and latency of one second of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecondSample {
    /// Seconds since the start of the run.
    pub second: u64,
    /// How much of this second the run covered: 1 except for the last second, which
    /// ends with the run. The rates below are per second of that part.
    #[serde(default = "one")]
    pub duration_s: f64,
    /// Records acknowledged per second in this second.
    pub produced_rps: f64,
    /// Megabytes (10^6 bytes of values) acknowledged per second in this second.
    pub produced_mbps: f64,
    /// Records consumed per second in this second.
    pub consumed_rps: f64,
    /// Megabytes consumed per second in this second.
    pub consumed_mbps: f64,
    /// Errors in this second.
    pub errors: u64,
    /// Produce latency of records acknowledged in this second.
    pub produce: LatencySummary,
    /// End-to-end latency of records consumed in this second.
    pub e2e: LatencySummary,
}

fn one() -> f64 {
    1.0
}

/// Measurements of one task (or, after merging, of a whole run).
#[derive(Clone, Debug)]
pub struct Recorder {
    start: Instant,
    produce: LatencyHistogram,
    e2e: LatencyHistogram,
    seconds: Vec<SecondBucket>,
    errors: BTreeMap<String, u64>,
    last_event: Duration,
}

/// Upper bound on the seconds a recorder keeps; later events count in the last second.
pub const SECONDS_MAX: usize = 24 * 3600;

impl Recorder {
    /// A recorder whose seconds count from `start` (shared by all tasks of a run).
    pub fn new(start: Instant) -> Self {
        Recorder {
            start,
            produce: LatencyHistogram::new(),
            e2e: LatencyHistogram::new(),
            seconds: Vec::new(),
            errors: BTreeMap::new(),
            last_event: Duration::ZERO,
        }
    }

    fn bucket(&mut self, at: Instant) -> &mut SecondBucket {
        let elapsed = at.saturating_duration_since(self.start);
        self.last_event = self.last_event.max(elapsed);
        let index = usize::try_from(elapsed.as_secs())
            .unwrap_or(usize::MAX)
            .min(SECONDS_MAX - 1);
        if self.seconds.len() <= index {
            self.seconds.resize_with(index + 1, SecondBucket::default);
        }
        &mut self.seconds[index]
    }

    /// A record of `bytes` was acknowledged at `at`, `latency` after it was sent.
    pub fn record_produce(&mut self, at: Instant, bytes: usize, latency: Duration) {
        self.produce.record(latency);
        let bucket = self.bucket(at);
        bucket.produced_records += 1;
        bucket.produced_bytes += bytes as u64;
        bucket
            .produce
            .get_or_insert_with(|| LatencyHistogram::with_digits(SIGNIFICANT_DIGITS_PER_SECOND))
            .record(latency);
    }

    /// A record of `bytes` was consumed at `at`; `e2e` is the time since it was sent, when known.
    pub fn record_consume(&mut self, at: Instant, bytes: usize, e2e: Option<Duration>) {
        let bucket = self.bucket(at);
        bucket.consumed_records += 1;
        bucket.consumed_bytes += bytes as u64;
        if let Some(latency) = e2e {
            bucket
                .e2e
                .get_or_insert_with(|| LatencyHistogram::with_digits(SIGNIFICANT_DIGITS_PER_SECOND))
                .record(latency);
            self.e2e.record(latency);
        }
    }

    /// An error of this kind happened at `at`.
    pub fn record_error(&mut self, at: Instant, kind: &str) {
        self.bucket(at).errors += 1;
        *self.errors.entry(kind.to_string()).or_default() += 1;
    }

    /// Adds another task's measurements (taken from the same start instant).
    pub fn merge(&mut self, other: &Recorder) {
        self.produce.merge(&other.produce);
        self.e2e.merge(&other.e2e);
        if self.seconds.len() < other.seconds.len() {
            self.seconds.resize_with(other.seconds.len(), SecondBucket::default);
        }
        for (into, from) in self.seconds.iter_mut().zip(&other.seconds) {
            into.merge(from);
        }
        for (kind, count) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += count;
        }
        self.last_event = self.last_event.max(other.last_event);
    }

    /// Produce-ack latency of the whole run.
    pub fn produce_latency(&self) -> &LatencyHistogram {
        &self.produce
    }

    /// End-to-end latency of the whole run.
    pub fn e2e_latency(&self) -> &LatencyHistogram {
        &self.e2e
    }

    /// Errors by kind.
    pub fn errors(&self) -> &BTreeMap<String, u64> {
        &self.errors
    }

    /// Time from the start to the last event recorded.
    pub fn last_event(&self) -> Duration {
        self.last_event
    }

    /// Records and bytes acknowledged by producers.
    pub fn produced(&self) -> (u64, u64) {
        self.seconds
            .iter()
            .fold((0, 0), |(r, b), s| (r + s.produced_records, b + s.produced_bytes))
    }

    /// Records and bytes consumed.
    pub fn consumed(&self) -> (u64, u64) {
        self.seconds
            .iter()
            .fold((0, 0), |(r, b), s| (r + s.consumed_records, b + s.consumed_bytes))
    }

    /// The per-second series.
    pub fn series(&self) -> Vec<SecondSample> {
        let summary = |h: &Option<LatencyHistogram>| h.as_ref().map(LatencyHistogram::summary).unwrap_or_default();
        let last = self.seconds.len().saturating_sub(1);
        self.seconds
            .iter()
            .enumerate()
            .map(|(second, bucket)| {
                // The last second ends with the run: counting its records as a full
                // second's would draw every run as ending in a drop.
                let covered = match second == last {
                    true => (self.last_event.as_secs_f64() - second as f64).clamp(0.0, 1.0),
                    false => 1.0,
                };
                let rate = |value: f64| if covered > 0.0 { value / covered } else { value };
                SecondSample {
                    second: second as u64,
                    duration_s: covered,
                    produced_rps: rate(bucket.produced_records as f64),
                    produced_mbps: rate(megabytes(bucket.produced_bytes)),
                    consumed_rps: rate(bucket.consumed_records as f64),
                    consumed_mbps: rate(megabytes(bucket.consumed_bytes)),
                    errors: bucket.errors,
                    produce: summary(&bucket.produce),
                    e2e: summary(&bucket.e2e),
                }
            })
            .collect()
    }
}

/// Bytes in megabytes (10^6).
pub fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_partial_second_is_a_rate_not_a_drop() {
        let start = Instant::now();
        let mut recorder = Recorder::new(start);
        // 1000 records/s for 1.5 s.
        for ms in 0..1500u64 {
            recorder.record_produce(start + Duration::from_millis(ms), 100, Duration::from_millis(1));
        }
        let series = recorder.series();
        assert_eq!(series.len(), 2);
        assert_eq!((series[0].duration_s, series[0].produced_rps), (1.0, 1000.0));
        assert!((series[1].duration_s - 0.5).abs() < 0.01, "{:?}", series[1]);
        assert!((series[1].produced_rps - 1000.0).abs() < 25.0, "{:?}", series[1]);
    }

    #[test]
    fn merged_histograms_hold_every_value() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        for ms in 1..=50 {
            a.record(Duration::from_millis(ms));
        }
        for ms in 51..=100 {
            b.record(Duration::from_millis(ms));
        }
        a.merge(&b);
        let summary = a.summary();
        assert_eq!(summary.count, 100);
        assert!((summary.p50_ms - 50.0).abs() < 0.1, "{summary:?}");
        assert!((summary.p99_ms - 99.0).abs() < 0.1, "{summary:?}");
        assert!((summary.max_ms - 100.0).abs() < 0.1, "{summary:?}");
        assert!(!a.distribution().is_empty());
    }

    #[test]
    fn empty_histogram_summarises_to_zero() {
        assert_eq!(LatencyHistogram::new().summary(), LatencySummary::default());
        assert_eq!(LatencyHistogram::new().percentile_ms(99.0), 0.0);
    }

    #[test]
    fn huge_latencies_saturate() {
        let mut histogram = LatencyHistogram::new();
        histogram.record(Duration::from_secs(100_000));
        assert_eq!(histogram.count(), 1);
    }

    #[test]
    fn recorders_merge_by_second() {
        let start = Instant::now();
        let mut a = Recorder::new(start);
        let mut b = Recorder::new(start);
        a.record_produce(start, 100, Duration::from_millis(2));
        a.record_error(start + Duration::from_millis(1500), "produce: timeout");
        b.record_produce(start + Duration::from_millis(2500), 50, Duration::from_millis(4));
        b.record_consume(start + Duration::from_millis(2600), 50, Some(Duration::from_millis(9)));
        b.record_error(start, "produce: timeout");
        a.merge(&b);

        assert_eq!(a.produced(), (2, 150));
        assert_eq!(a.consumed(), (1, 50));
        assert_eq!(a.errors().get("produce: timeout"), Some(&2));
        assert_eq!(a.produce_latency().count(), 2);
        assert_eq!(a.e2e_latency().count(), 1);
        assert_eq!(a.last_event(), Duration::from_millis(2600));
        let series = a.series();
        assert_eq!(series.len(), 3);
        assert_eq!(series[0].produced_rps, 1.0);
        assert_eq!(series[0].errors, 1);
        assert_eq!(series[1].errors, 1);
        // The run ended 0.6 s into the last second: one record there is 1/0.6 per second.
        assert!((series[2].duration_s - 0.6).abs() < 1e-9);
        assert!((series[2].produced_rps - 1.0 / 0.6).abs() < 1e-9);
        assert!((series[2].consumed_rps - 1.0 / 0.6).abs() < 1e-9);
        assert!((series[2].e2e.p50_ms - 9.0).abs() < 0.1);
    }
}
