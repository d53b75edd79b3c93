//! `--compare`: the same scenario against two brokers, alternating A B A B … so drift of the
//! machine (caches, thermal, other load) hits both sides alike, then per-pair ratios B / A
//! with their minimum, median and maximum.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::result::Summary;

/// Metrics compared, as named in [`crate::result::METRIC_NAMES`].
pub const COMPARED_METRICS: [&str; 8] = [
    "throughput_rps",
    "throughput_mbps",
    "consume_throughput_rps",
    "p50_produce_ms",
    "p99_produce_ms",
    "p999_produce_ms",
    "p50_e2e_ms",
    "p99_e2e_ms",
];

/// Which broker a run went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    /// The baseline (`--brokers`).
    A,
    /// The candidate (`--compare`).
    B,
}

/// Ratios B / A of one metric over all rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioStats {
    /// Metric name.
    pub metric: String,
    /// One ratio per round where A's value was not zero.
    pub ratios: Vec<f64>,
    /// Smallest ratio.
    pub min: f64,
    /// Median ratio.
    pub median: f64,
    /// Largest ratio.
    pub max: f64,
}

/// Everything a comparison measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareReport {
    /// Baseline bootstrap address.
    pub bootstrap_a: String,
    /// Candidate bootstrap address.
    pub bootstrap_b: String,
    /// Summaries per round: (A, B).
    pub rounds: Vec<(Summary, Summary)>,
    /// Ratios of the compared metrics that had data.
    pub ratios: Vec<RatioStats>,
}

/// Runs `rounds` pairs, A then B each round, and computes the ratios.
pub async fn compare<R, F>(
    bootstrap_a: &str,
    bootstrap_b: &str,
    rounds: u32,
    mut run: R,
) -> anyhow::Result<CompareReport>
where
    R: FnMut(Side, u32) -> F,
    F: Future<Output = anyhow::Result<Summary>>,
{
    anyhow::ensure!(rounds > 0, "compare needs at least one round");
    let mut pairs = Vec::new();
    for round in 0..rounds {
        let a = run(Side::A, round).await?;
        let b = run(Side::B, round).await?;
        pairs.push((a, b));
    }
    Ok(CompareReport {
        bootstrap_a: bootstrap_a.to_string(),
        bootstrap_b: bootstrap_b.to_string(),
        ratios: ratio_stats(&pairs),
        rounds: pairs,
    })
}

/// Ratios B / A per compared metric; metrics where A is zero in every round are left out.
pub fn ratio_stats(pairs: &[(Summary, Summary)]) -> Vec<RatioStats> {
    COMPARED_METRICS
        .iter()
        .filter_map(|metric| {
            let ratios: Vec<f64> = pairs
                .iter()
                .filter_map(|(a, b)| ratio(a.metric(metric)?, b.metric(metric)?))
                .collect();
            let (min, median, max) = min_median_max(&ratios)?;
            Some(RatioStats {
                metric: metric.to_string(),
                ratios,
                min,
                median,
                max,
            })
        })
        .collect()
}

/// `b / a`, or `None` when `a` is zero or either is not finite.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (a != 0.0 && a.is_finite() && b.is_finite()).then(|| b / a)
}

/// Minimum, median (mean of the middle two for an even count) and maximum.
pub fn min_median_max(values: &[f64]) -> Option<(f64, f64, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (first, last) = (*sorted.first()?, *sorted.last()?);
    let middle = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    };
    Some((first, median, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::LatencySummary;

    fn summary(throughput_rps: f64, p99_produce_ms: f64) -> Summary {
        Summary {
            throughput_rps,
            produce_latency: LatencySummary {
                p99_ms: p99_produce_ms,
                ..LatencySummary::default()
            },
            ..Summary::default()
        }
    }

    #[test]
    fn medians() {
        assert_eq!(min_median_max(&[3.0, 1.0, 2.0]), Some((1.0, 2.0, 3.0)));
        assert_eq!(min_median_max(&[4.0, 1.0, 2.0, 3.0]), Some((1.0, 2.5, 4.0)));
        assert_eq!(min_median_max(&[]), None);
    }

    #[test]
    fn ratios_per_pair() {
        let pairs = vec![
            (summary(100.0, 2.0), summary(200.0, 1.0)),
            (summary(100.0, 4.0), summary(150.0, 4.0)),
            (summary(200.0, 0.0), summary(500.0, 3.0)),
        ];
        let stats = ratio_stats(&pairs);
        let throughput = stats.iter().find(|s| s.metric == "throughput_rps").unwrap();
        assert_eq!(throughput.ratios, vec![2.0, 1.5, 2.5]);
        assert_eq!((throughput.min, throughput.median, throughput.max), (1.5, 2.0, 2.5));
        let p99 = stats.iter().find(|s| s.metric == "p99_produce_ms").unwrap();
        assert_eq!(p99.ratios, vec![0.5, 1.0], "a zero baseline gives no ratio");
        assert_eq!(p99.median, 0.75);
        assert!(stats.iter().all(|s| s.metric != "p99_e2e_ms"), "no e2e data at all");
    }

    #[tokio::test]
    async fn runs_alternate() {
        let mut order = Vec::new();
        let report = compare("a:1", "b:1", 3, |side, round| {
            order.push((side, round));
            let rate = if side == Side::A { 100.0 } else { 300.0 };
            std::future::ready(Ok(summary(rate, 1.0)))
        })
        .await
        .unwrap();
        assert_eq!(
            order,
            vec![
                (Side::A, 0),
                (Side::B, 0),
                (Side::A, 1),
                (Side::B, 1),
                (Side::A, 2),
                (Side::B, 2)
            ]
        );
        assert_eq!(report.rounds.len(), 3);
        let throughput = report.ratios.iter().find(|s| s.metric == "throughput_rps").unwrap();
        assert_eq!(throughput.median, 3.0);
    }
}
