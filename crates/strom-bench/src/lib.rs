//! `strom-bench`: load testing for Strom and other Kafka-protocol brokers, the library behind
//! `strom bench`.
//!
//! - [`scenario`]: what runs ([`Scenario`], TOML, presets, flag overrides).
//! - [`runner`]: runs a scenario with `strom-client` producers and consumers.
//! - [`metrics`]: HdrHistogram latencies and per-second series, merged across tasks.
//! - [`result`]: the [`BenchResult`] and its [`Summary`].
//! - [`report`]: summary table, JSON, HTML with inline SVG charts.
//! - [`assertion`]: `--assert 'p99_e2e_ms<5'`.
//! - [`search`]: the highest rate within a p99 SLO (binary search, stress ramp).
//! - [`compare`]: A/B runs and their ratios.
//! - [`cli`]: [`BenchArgs`] and [`run`], wired into the `strom` binary.
//!
//! **Architecture invariant:** like `strom-client`, this crate talks to brokers only over the
//! Kafka wire protocol; it knows nothing about broker internals.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use strom_bench::{run_scenario, Preset, RunOptions};
//!
//! let scenario = Preset::E2e.scenario();
//! let result = run_scenario("127.0.0.1:9092", &scenario, &RunOptions::default()).await?;
//! println!("p99 end-to-end: {} ms", result.summary.e2e_latency.p99_ms);
//! # Ok(()) }
//! ```

pub mod assertion;
pub mod cli;
pub mod compare;
pub mod metrics;
pub mod payload;
pub mod report;
pub mod result;
pub mod runner;
pub mod scenario;
pub mod search;

pub use assertion::Assertion;
pub use cli::{run, BenchArgs};
pub use result::{BenchResult, Summary};
pub use runner::{run_scenario, RunOptions};
pub use scenario::{Preset, Scenario};
