//! The outcome of one run: a summary (the numbers assertions and comparisons use), the
//! per-second series and the latency distributions the report draws.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::{megabytes, LatencySummary, PercentilePoint, Recorder, SecondSample};
use crate::scenario::Scenario;

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// Bootstrap address the run used.
    pub bootstrap: String,
    /// Start of the run, in milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// The scenario that ran.
    pub scenario: Scenario,
    /// Totals and percentiles.
    pub summary: Summary,
    /// One sample per second.
    pub series: Vec<SecondSample>,
    /// Produce-ack latency by percentile.
    pub produce_distribution: Vec<PercentilePoint>,
    /// End-to-end latency by percentile.
    pub e2e_distribution: Vec<PercentilePoint>,
}

/// Totals of a run. `records`, `bytes` and `throughput_*` count acknowledged produced records,
/// or consumed records when the scenario has no producers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Records.
    pub records: u64,
    /// Bytes of record values.
    pub bytes: u64,
    /// Seconds from the start to the last acknowledgement or consumed record.
    pub duration_s: f64,
    /// Records per second.
    pub throughput_rps: f64,
    /// Megabytes (10^6) per second.
    pub throughput_mbps: f64,
    /// Records consumed (all consumer groups).
    pub consumed_records: u64,
    /// Consumed records per second.
    pub consume_throughput_rps: f64,
    /// Consumed megabytes per second.
    pub consume_throughput_mbps: f64,
    /// Produce-ack latency.
    pub produce_latency: LatencySummary,
    /// End-to-end latency (send to consume).
    pub e2e_latency: LatencySummary,
    /// Errors of all kinds.
    pub errors: u64,
    /// Errors by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
}

/// Metric names assertions and comparisons may use, in display order.
pub const METRIC_NAMES: [&str; 21] = [
    "records",
    "bytes",
    "duration_s",
    "throughput_rps",
    "throughput_mbps",
    "consumed_records",
    "consume_throughput_rps",
    "consume_throughput_mbps",
    "errors",
    "p50_produce_ms",
    "p90_produce_ms",
    "p99_produce_ms",
    "p999_produce_ms",
    "max_produce_ms",
    "mean_produce_ms",
    "p50_e2e_ms",
    "p90_e2e_ms",
    "p99_e2e_ms",
    "p999_e2e_ms",
    "max_e2e_ms",
    "mean_e2e_ms",
];

impl Summary {
    /// Builds the summary of a merged recorder.
    pub fn from_recorder(recorder: &Recorder, has_producers: bool) -> Summary {
        let (produced_records, produced_bytes) = recorder.produced();
        let (consumed_records, consumed_bytes) = recorder.consumed();
        let duration_s = recorder.last_event().as_secs_f64();
        let per_second = |value: f64| if duration_s > 0.0 { value / duration_s } else { 0.0 };
        let (records, bytes) = if has_producers {
            (produced_records, produced_bytes)
        } else {
            (consumed_records, consumed_bytes)
        };
        Summary {
            records,
            bytes,
            duration_s,
            throughput_rps: per_second(records as f64),
            throughput_mbps: per_second(megabytes(bytes)),
            consumed_records,
            consume_throughput_rps: per_second(consumed_records as f64),
            consume_throughput_mbps: per_second(megabytes(consumed_bytes)),
            produce_latency: recorder.produce_latency().summary(),
            e2e_latency: recorder.e2e_latency().summary(),
            errors: recorder.errors().values().sum(),
            errors_by_kind: recorder.errors().clone(),
        }
    }

    /// A metric by name (see [`METRIC_NAMES`]).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let latency = |summary: &LatencySummary, stat: &str| match stat {
            "p50" => Some(summary.p50_ms),
            "p90" => Some(summary.p90_ms),
            "p99" => Some(summary.p99_ms),
            "p999" => Some(summary.p999_ms),
            "max" => Some(summary.max_ms),
            "mean" => Some(summary.mean_ms),
            _ => None,
        };
        match name {
            "records" => Some(self.records as f64),
            "bytes" => Some(self.bytes as f64),
            "duration_s" => Some(self.duration_s),
            "throughput_rps" => Some(self.throughput_rps),
            "throughput_mbps" => Some(self.throughput_mbps),
            "consumed_records" => Some(self.consumed_records as f64),
            "consume_throughput_rps" => Some(self.consume_throughput_rps),
            "consume_throughput_mbps" => Some(self.consume_throughput_mbps),
            "errors" => Some(self.errors as f64),
            _ => {
                let stem = name.strip_suffix("_ms")?;
                if let Some(stat) = stem.strip_suffix("_produce") {
                    latency(&self.produce_latency, stat)
                } else if let Some(stat) = stem.strip_suffix("_e2e") {
                    latency(&self.e2e_latency, stat)
                } else {
                    None
                }
            }
        }
    }

    /// Every metric with its name.
    pub fn metrics(&self) -> Vec<(&'static str, f64)> {
        METRIC_NAMES
            .iter()
            .filter_map(|name| self.metric(name).map(|value| (*name, value)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_name_resolves() {
        let summary = Summary {
            e2e_latency: LatencySummary {
                p99_ms: 4.5,
                ..LatencySummary::default()
            },
            throughput_rps: 10.0,
            ..Summary::default()
        };
        assert_eq!(summary.metrics().len(), METRIC_NAMES.len());
        assert_eq!(summary.metric("p99_e2e_ms"), Some(4.5));
        assert_eq!(summary.metric("throughput_rps"), Some(10.0));
        assert_eq!(summary.metric("p98_e2e_ms"), None);
        assert_eq!(summary.metric("nonsense"), None);
    }
}
