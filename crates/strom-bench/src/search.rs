//! Finding the knee: the highest target rate whose p99 produce latency stays within an SLO.
//!
//! Both strategies drive a *probe*, a closure that runs the scenario at one target rate and
//! returns its [`Summary`], so they are tested with synthetic latency functions.
//! - [`binary_search`] (`--search`): bisects between a floor and a ceiling.
//! - [`ramp`] (the `stress` preset): raises the rate in fixed steps until a step fails.
//!
//! A step passes when its p99 produce latency is at most the SLO, it had no errors, and it
//! achieved at least [`ACHIEVED_FRACTION_MIN`] of the target rate (a broker that cannot keep
//! up shows up as missing throughput before it shows up as latency).

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::result::Summary;
use crate::scenario::StressPlan;

/// A step must reach this fraction of its target rate to pass.
pub const ACHIEVED_FRACTION_MIN: f64 = 0.9;
/// Upper bound on the probes of one binary search.
pub const SEARCH_STEPS_MAX: u32 = 20;

/// Bounds and goal of a binary search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SearchConfig {
    /// Lowest rate tried (records/s).
    pub floor_rps: u64,
    /// Highest rate tried.
    pub ceiling_rps: u64,
    /// p99 produce latency limit.
    pub slo_p99_ms: f64,
    /// Stop when the bracket is narrower than this (records/s).
    pub resolution_rps: u64,
}

/// One probe of a search or ramp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchStep {
    /// Target rate.
    pub rate_rps: u64,
    /// Rate achieved.
    pub achieved_rps: f64,
    /// p99 produce latency.
    pub p99_produce_ms: f64,
    /// Errors.
    pub errors: u64,
    /// Whether the step met the SLO.
    pub passed: bool,
}

/// The outcome of a search or ramp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchReport {
    /// The SLO.
    pub slo_p99_ms: f64,
    /// Highest passing rate; `None` when even the lowest rate failed.
    pub knee_rps: Option<u64>,
    /// Every probe in the order run.
    pub steps: Vec<SearchStep>,
}

/// Judges one probe's summary against the SLO.
pub fn judge(rate_rps: u64, summary: &Summary, slo_p99_ms: f64) -> SearchStep {
    let achieved_rps = summary.throughput_rps;
    let p99_produce_ms = summary.produce_latency.p99_ms;
    SearchStep {
        rate_rps,
        achieved_rps,
        p99_produce_ms,
        errors: summary.errors,
        passed: p99_produce_ms <= slo_p99_ms
            && summary.errors == 0
            && achieved_rps >= rate_rps as f64 * ACHIEVED_FRACTION_MIN,
    }
}

/// Bisects the target rate between floor and ceiling for the highest rate that passes.
pub async fn binary_search<P, F>(config: SearchConfig, mut probe: P) -> anyhow::Result<SearchReport>
where
    P: FnMut(u64) -> F,
    F: Future<Output = anyhow::Result<Summary>>,
{
    anyhow::ensure!(
        config.floor_rps > 0 && config.floor_rps <= config.ceiling_rps,
        "search needs 0 < floor ({}) <= ceiling ({})",
        config.floor_rps,
        config.ceiling_rps
    );
    let mut steps = Vec::new();
    let report = |knee_rps, steps| SearchReport {
        slo_p99_ms: config.slo_p99_ms,
        knee_rps,
        steps,
    };
    if !probe_step(&mut probe, config.floor_rps, config.slo_p99_ms, &mut steps).await? {
        return Ok(report(None, steps));
    }
    if config.ceiling_rps == config.floor_rps
        || probe_step(&mut probe, config.ceiling_rps, config.slo_p99_ms, &mut steps).await?
    {
        return Ok(report(Some(config.ceiling_rps), steps));
    }
    // Invariant: `low` passed, `high` failed.
    let (mut low, mut high) = (config.floor_rps, config.ceiling_rps);
    let resolution = config.resolution_rps.max(1);
    let mut probes = 2;
    while high - low > resolution && probes < SEARCH_STEPS_MAX {
        let middle = low + (high - low) / 2;
        if probe_step(&mut probe, middle, config.slo_p99_ms, &mut steps).await? {
            low = middle;
        } else {
            high = middle;
        }
        probes += 1;
    }
    Ok(report(Some(low), steps))
}

/// Runs one probe, records its step and returns whether it passed.
async fn probe_step<P, F>(
    probe: &mut P,
    rate: u64,
    slo_p99_ms: f64,
    steps: &mut Vec<SearchStep>,
) -> anyhow::Result<bool>
where
    P: FnMut(u64) -> F,
    F: Future<Output = anyhow::Result<Summary>>,
{
    let step = judge(rate, &probe(rate).await?, slo_p99_ms);
    let passed = step.passed;
    steps.push(step);
    Ok(passed)
}

/// Raises the target rate by the plan's step until a step fails or the maximum is passed.
pub async fn ramp<P, F>(plan: &StressPlan, mut probe: P) -> anyhow::Result<SearchReport>
where
    P: FnMut(u64) -> F,
    F: Future<Output = anyhow::Result<Summary>>,
{
    anyhow::ensure!(plan.start_rate > 0, "stress needs a positive start rate");
    let mut steps = Vec::new();
    let mut knee_rps = None;
    let mut rate = plan.start_rate;
    while rate <= plan.max_rate {
        if !probe_step(&mut probe, rate, plan.slo_p99_ms, &mut steps).await? {
            break;
        }
        knee_rps = Some(rate);
        if plan.step_rate == 0 {
            break;
        }
        rate = rate.saturating_add(plan.step_rate);
    }
    Ok(SearchReport {
        slo_p99_ms: plan.slo_p99_ms,
        knee_rps,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::LatencySummary;

    /// A synthetic broker: latency 1 ms up to `knee`, then growing steeply; it always achieves
    /// the target rate.
    fn synthetic(knee: u64) -> impl FnMut(u64) -> std::future::Ready<anyhow::Result<Summary>> {
        move |rate| {
            let p99_ms = if rate <= knee {
                1.0
            } else {
                1.0 + (rate - knee) as f64 / 100.0
            };
            std::future::ready(Ok(Summary {
                throughput_rps: rate as f64,
                produce_latency: LatencySummary {
                    p99_ms,
                    ..LatencySummary::default()
                },
                ..Summary::default()
            }))
        }
    }

    fn config() -> SearchConfig {
        SearchConfig {
            floor_rps: 1_000,
            ceiling_rps: 1_000_000,
            slo_p99_ms: 5.0,
            resolution_rps: 1_000,
        }
    }

    #[tokio::test]
    async fn binary_search_finds_the_knee() {
        // p99 <= 5 ms up to knee + 400.
        let report = binary_search(config(), synthetic(250_000)).await.unwrap();
        let knee = report.knee_rps.unwrap();
        assert!((249_400..=250_400).contains(&knee), "knee {knee}");
        assert!(report.steps.len() <= SEARCH_STEPS_MAX as usize);
        assert!(report.steps.iter().any(|s| !s.passed));
    }

    #[tokio::test]
    async fn binary_search_edges() {
        let all_fail = binary_search(config(), synthetic(0)).await.unwrap();
        assert_eq!(all_fail.knee_rps, None);
        assert_eq!(all_fail.steps.len(), 1);

        let all_pass = binary_search(config(), synthetic(u64::MAX)).await.unwrap();
        assert_eq!(all_pass.knee_rps, Some(1_000_000));
        assert_eq!(all_pass.steps.len(), 2);

        let bad = SearchConfig {
            floor_rps: 10,
            ceiling_rps: 5,
            ..config()
        };
        assert!(binary_search(bad, synthetic(1)).await.is_err());
    }

    #[tokio::test]
    async fn missing_throughput_or_errors_fail_a_step() {
        let slow = |rate: u64| {
            std::future::ready(Ok(Summary {
                throughput_rps: (rate as f64).min(50_000.0),
                ..Summary::default()
            }))
        };
        let report = binary_search(config(), slow).await.unwrap();
        let knee = report.knee_rps.unwrap();
        assert!((50_000..=55_556).contains(&knee), "knee {knee}");

        let failing = Summary {
            throughput_rps: 100.0,
            errors: 1,
            ..Summary::default()
        };
        assert!(!judge(100, &failing, 5.0).passed);
    }

    #[tokio::test]
    async fn ramp_stops_at_the_first_failing_step() {
        let plan = StressPlan {
            start_rate: 10_000,
            step_rate: 10_000,
            max_rate: 100_000,
            step_duration_ms: 1,
            slo_p99_ms: 5.0,
        };
        let report = ramp(&plan, synthetic(35_000)).await.unwrap();
        assert_eq!(report.knee_rps, Some(30_000));
        assert_eq!(report.steps.len(), 4);
        assert!(!report.steps[3].passed);

        let report = ramp(&plan, synthetic(u64::MAX)).await.unwrap();
        assert_eq!(report.knee_rps, Some(100_000));
        assert_eq!(report.steps.len(), 10);
    }
}
