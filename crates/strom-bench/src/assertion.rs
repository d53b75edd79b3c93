//! `--assert` conditions on a run's summary: `p99_e2e_ms<5`, `throughput_rps>=100000`.
//!
//! A condition is a metric name from [`METRIC_NAMES`], an operator (`<`, `<=`, `>`, `>=`,
//! `==`) and a number.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::result::{Summary, METRIC_NAMES};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
    /// `==`
    Equal,
}

impl Operator {
    /// Two-character operators first, so `<=` is not read as `<`.
    const SYMBOLS: [(&'static str, Operator); 5] = [
        ("<=", Operator::LessOrEqual),
        (">=", Operator::GreaterOrEqual),
        ("==", Operator::Equal),
        ("<", Operator::Less),
        (">", Operator::Greater),
    ];

    /// Whether `actual` compared with `threshold` holds.
    pub fn holds(self, actual: f64, threshold: f64) -> bool {
        match self {
            Operator::Less => actual < threshold,
            Operator::LessOrEqual => actual <= threshold,
            Operator::Greater => actual > threshold,
            Operator::GreaterOrEqual => actual >= threshold,
            Operator::Equal => actual == threshold,
        }
    }

    fn symbol(self) -> &'static str {
        Operator::SYMBOLS
            .iter()
            .find(|(_, operator)| *operator == self)
            .map_or("?", |(symbol, _)| symbol)
    }
}

/// One condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assertion {
    /// Metric name.
    pub metric: String,
    /// Operator.
    pub operator: Operator,
    /// The number compared with.
    pub threshold: f64,
}

impl fmt::Display for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.metric, self.operator.symbol(), self.threshold)
    }
}

impl FromStr for Assertion {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (position, symbol, operator) = Operator::SYMBOLS
            .iter()
            .filter_map(|(symbol, operator)| text.find(symbol).map(|position| (position, *symbol, *operator)))
            .min_by_key(|(position, symbol, _)| (*position, std::cmp::Reverse(symbol.len())))
            .ok_or_else(|| format!("assertion {text:?}: expected METRIC OP NUMBER with OP one of < <= > >= =="))?;
        let metric = text[..position].trim();
        let number = text[position + symbol.len()..].trim();
        if !METRIC_NAMES.contains(&metric) {
            return Err(format!(
                "assertion {text:?}: unknown metric {metric:?}; known: {}",
                METRIC_NAMES.join(", ")
            ));
        }
        let threshold: f64 = number
            .parse()
            .ok()
            .filter(|value: &f64| value.is_finite())
            .ok_or_else(|| format!("assertion {text:?}: {number:?} is not a number"))?;
        Ok(Assertion {
            metric: metric.to_string(),
            operator,
            threshold,
        })
    }
}

/// The result of checking one assertion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The assertion.
    pub assertion: Assertion,
    /// The metric's value in the run.
    pub actual: f64,
    /// Whether it held.
    pub passed: bool,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed { "ok" } else { "FAILED" };
        write!(f, "assertion {verdict}: {} (actual {:.3})", self.assertion, self.actual)
    }
}

impl Assertion {
    /// Checks the assertion against a summary.
    pub fn evaluate(&self, summary: &Summary) -> Outcome {
        // Parsing accepts only known names, so the metric is present; NaN fails every operator.
        let actual = summary.metric(&self.metric).unwrap_or(f64::NAN);
        Outcome {
            assertion: self.clone(),
            actual,
            passed: self.operator.holds(actual, self.threshold),
        }
    }
}

/// Checks every assertion.
pub fn evaluate_all(assertions: &[Assertion], summary: &Summary) -> Vec<Outcome> {
    assertions.iter().map(|assertion| assertion.evaluate(summary)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::LatencySummary;

    fn summary() -> Summary {
        Summary {
            throughput_rps: 150_000.0,
            errors: 0,
            e2e_latency: LatencySummary {
                p99_ms: 4.2,
                ..LatencySummary::default()
            },
            ..Summary::default()
        }
    }

    #[test]
    fn parses_every_operator() {
        let cases = [
            ("p99_e2e_ms<5", Operator::Less),
            ("p99_e2e_ms <= 5", Operator::LessOrEqual),
            ("p99_e2e_ms>5", Operator::Greater),
            ("p99_e2e_ms >=5", Operator::GreaterOrEqual),
            ("p99_e2e_ms==5", Operator::Equal),
        ];
        for (text, operator) in cases {
            let assertion: Assertion = text.parse().unwrap();
            assert_eq!(assertion.metric, "p99_e2e_ms", "{text}");
            assert_eq!(assertion.operator, operator, "{text}");
            assert_eq!(assertion.threshold, 5.0, "{text}");
        }
    }

    #[test]
    fn rejects_bad_assertions() {
        let error = "p99_latency<5".parse::<Assertion>().unwrap_err();
        assert!(
            error.contains("unknown metric") && error.contains("p99_e2e_ms"),
            "{error}"
        );
        assert!("p99_e2e_ms<fast".parse::<Assertion>().is_err());
        assert!("p99_e2e_ms 5".parse::<Assertion>().is_err());
        assert!("p99_e2e_ms<".parse::<Assertion>().is_err());
    }

    #[test]
    fn passing_and_failing_assertions() {
        let summary = summary();
        let pass = "p99_e2e_ms<5".parse::<Assertion>().unwrap().evaluate(&summary);
        assert!(pass.passed, "{pass}");
        let fail = "throughput_rps>200000".parse::<Assertion>().unwrap().evaluate(&summary);
        assert!(!fail.passed);
        assert_eq!(
            fail.to_string(),
            "assertion FAILED: throughput_rps > 200000 (actual 150000.000)"
        );
        let outcomes = evaluate_all(
            &["errors==0".parse().unwrap(), "p99_e2e_ms>=4.2".parse().unwrap()],
            &summary,
        );
        assert!(outcomes.iter().all(|outcome| outcome.passed));
    }
}
