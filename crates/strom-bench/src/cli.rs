//! The `strom bench` command line: flags, and the mode they select (one run, a rate search,
//! a stress ramp or an A/B comparison).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::assertion::{evaluate_all, Assertion};
use crate::compare::{compare, Side};
use crate::report::{write_compare, write_html_report, write_json, write_search, write_summary};
use crate::result::Summary;
use crate::runner::{run_scenario, RunOptions};
use crate::scenario::{parse_duration, AcksSetting, CompressionSetting, MessageSize, Overrides, Preset, Scenario};
use crate::search::{binary_search, ramp, SearchConfig};

/// SLO of `--search` when `--slo-p99-ms` is not given.
const SLO_P99_MS_DEFAULT: f64 = 10.0;

/// Arguments of `strom bench` (the bootstrap address comes from the caller's `--brokers`).
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Built-in scenario (default: produce).
    #[arg(value_enum, conflicts_with = "scenario")]
    pub preset: Option<Preset>,
    /// Scenario file (TOML); flags override its values.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Topic to write and read.
    #[arg(long)]
    pub topic: Option<String>,
    /// Records per producer group (replaces a duration limit); for `consume`, records prefilled
    #[arg(long)]
    pub records: Option<u64>,
    /// Value size in bytes: N, or MIN..MAX for uniform sizes.
    #[arg(long, value_name = "BYTES")]
    pub message_size: Option<MessageSize>,
    /// Producers per group (0 = none).
    #[arg(long)]
    pub producers: Option<u32>,
    /// Consumers per group (0 = none).
    #[arg(long)]
    pub consumers: Option<u32>,
    /// Target rate per producer group in records/s (0 = unthrottled).
    #[arg(long, value_name = "RECORDS_PER_S")]
    pub rate: Option<u64>,
    /// Partitions of the topic when created.
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Producer acks.
    #[arg(long, value_enum)]
    pub acks: Option<AcksSetting>,
    /// Producer compression.
    #[arg(long, value_enum)]
    pub compression: Option<CompressionSetting>,
    /// Producer batch size in bytes (`batch.size`).
    #[arg(long, value_name = "BYTES")]
    pub batch_size: Option<usize>,
    /// How long a producer batch waits for more records, e.g. 5ms (`linger.ms`).
    #[arg(long, value_parser = parse_duration)]
    pub linger: Option<Duration>,
    /// How long producers run, e.g. 30s (replaces a record limit).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Write an HTML report (and result.json) into this directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Write the result as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Print the result as JSON instead of the summary table (the CLI's `--output json`).
    #[arg(skip)]
    pub print_json: bool,
    /// Condition on the summary, e.g. 'p99_e2e_ms<5' or 'throughput_rps>100000'; repeatable.
    /// The command fails when any does not hold.
    #[arg(long = "assert", value_name = "CONDITION")]
    pub assertions: Vec<Assertion>,
    /// Binary-search the target rate for the highest one within the p99 produce SLO.
    #[arg(long)]
    pub search: bool,
    /// p99 produce latency SLO of --search and the stress preset.
    #[arg(long, value_name = "MS")]
    pub slo_p99_ms: Option<f64>,
    /// Lowest rate --search tries (records/s).
    #[arg(long, default_value_t = 1_000)]
    pub search_floor: u64,
    /// Highest rate --search tries (records/s).
    #[arg(long, default_value_t = 1_000_000)]
    pub search_ceiling: u64,
    /// Length of each --search probe.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub step_duration: Duration,
    /// Also run against these brokers, alternating A B A B …, and report ratios B / A.
    #[arg(long, value_name = "BOOTSTRAP_B")]
    pub compare: Option<String>,
    /// Rounds of --compare.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Do not draw the progress line.
    #[arg(long)]
    pub no_progress: bool,
    /// Keep the topic the run created (it is deleted afterwards otherwise; a topic that
    /// existed before is always kept).
    #[arg(long)]
    pub keep_topic: bool,
}

impl BenchArgs {
    /// The scenario: the file or preset, with the flags applied.
    pub fn scenario(&self) -> anyhow::Result<Scenario> {
        let mut scenario = match &self.scenario {
            Some(path) => Scenario::load(path)?,
            None => self.preset.unwrap_or(Preset::Produce).scenario(),
        };
        scenario.apply(&self.overrides());
        if let (Some(plan), Some(slo)) = (&mut scenario.stress, self.slo_p99_ms) {
            plan.slo_p99_ms = slo;
        }
        scenario.validate()?;
        Ok(scenario)
    }

    /// The flags that replace scenario values.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            topic: self.topic.clone(),
            partitions: self.partitions,
            records: self.records,
            duration: self.duration,
            message_size: self.message_size,
            producers: self.producers,
            consumers: self.consumers,
            rate: self.rate,
            acks: self.acks,
            compression: self.compression,
            batch_size: self.batch_size,
            linger: self.linger,
        }
    }

    fn options(&self, label: String) -> RunOptions {
        RunOptions {
            progress: !self.no_progress,
            label,
            keep_topic: self.keep_topic,
        }
    }
}

/// Runs `strom bench`. Returns `Ok(false)` when an assertion failed.
pub async fn run(brokers: &str, args: BenchArgs) -> anyhow::Result<bool> {
    let scenario = args.scenario()?;
    if let Some(bootstrap_b) = &args.compare {
        return run_compare(brokers, bootstrap_b, &scenario, &args).await;
    }
    if args.search || scenario.stress.is_some() {
        return run_search(brokers, &scenario, &args).await;
    }
    let result = run_scenario(brokers, &scenario, &args.options(String::new())).await?;
    if args.print_json {
        writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(&result)?)?;
    } else {
        write_summary(&mut std::io::stdout().lock(), &result)?;
    }
    if let Some(path) = &args.json {
        write_json(path, &result)?;
    }
    if let Some(dir) = &args.report {
        let path = write_html_report(dir, &result)?;
        eprintln!("report: {}", path.display());
    }
    check_assertions(&args.assertions, &[&result.summary])
}

/// Every step of a search or ramp runs the scenario for a fixed time at one target rate.
async fn run_search(brokers: &str, scenario: &Scenario, args: &BenchArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(!scenario.producers.is_empty(), "a rate search needs producers");
    let step_duration = match &scenario.stress {
        Some(plan) if !args.search => Duration::from_millis(plan.step_duration_ms),
        _ => args.step_duration,
    };
    let mut probe_scenario = scenario.clone();
    probe_scenario.apply(&Overrides {
        duration: Some(step_duration),
        ..Overrides::default()
    });
    let probe = |rate: u64| {
        let scenario = probe_scenario.clone().with_rate(rate);
        let options = args.options(format!("{rate}/s"));
        async move { Ok(run_scenario(brokers, &scenario, &options).await?.summary) }
    };
    let report = match (&scenario.stress, args.search) {
        (Some(plan), false) => ramp(plan, probe).await?,
        _ => {
            let config = SearchConfig {
                floor_rps: args.search_floor,
                ceiling_rps: args.search_ceiling,
                slo_p99_ms: args.slo_p99_ms.unwrap_or(SLO_P99_MS_DEFAULT),
                resolution_rps: (args.search_ceiling / 100).max(1),
            };
            binary_search(config, probe).await?
        }
    };
    write_search(&mut std::io::stdout().lock(), &report)?;
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    if let Some(dir) = &args.report {
        write_json(&dir.join("search.json"), &report)?;
    }
    if !args.assertions.is_empty() {
        eprintln!("note: --assert is not checked for a rate search");
    }
    Ok(true)
}

/// Runs A and B alternately; assertions must hold for every run on both sides.
async fn run_compare(brokers: &str, bootstrap_b: &str, scenario: &Scenario, args: &BenchArgs) -> anyhow::Result<bool> {
    let run_side = |side: Side, round: u32| {
        let bootstrap = match side {
            Side::A => brokers,
            Side::B => bootstrap_b,
        };
        let options = args.options(format!("round {} {side:?}", round + 1));
        async move { Ok(run_scenario(bootstrap, scenario, &options).await?.summary) }
    };
    let report = compare(brokers, bootstrap_b, args.rounds, run_side).await?;
    write_compare(&mut std::io::stdout().lock(), &report)?;
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    if let Some(dir) = &args.report {
        write_json(&dir.join("compare.json"), &report)?;
    }
    let summaries: Vec<&Summary> = report.rounds.iter().flat_map(|(a, b)| [a, b]).collect();
    check_assertions(&args.assertions, &summaries)
}

/// Prints every failed assertion; true when all hold for every summary.
fn check_assertions(assertions: &[Assertion], summaries: &[&Summary]) -> anyhow::Result<bool> {
    let mut stdout = std::io::stdout().lock();
    let mut passed = true;
    for summary in summaries {
        for outcome in evaluate_all(assertions, summary) {
            writeln!(stdout, "{outcome}")?;
            passed &= outcome.passed;
        }
    }
    Ok(passed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        Command::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.bench)
    }

    #[test]
    fn preset_and_overrides() {
        let args = parse(&[
            "e2e",
            "--records",
            "5000",
            "--message-size",
            "100..200",
            "--acks",
            "1",
            "--compression",
            "zstd",
            "--batch-size",
            "65536",
            "--linger",
            "20ms",
            "--assert",
            "p99_e2e_ms<5",
            "--assert",
            "errors==0",
        ])
        .unwrap();
        assert_eq!(args.preset, Some(Preset::E2e));
        assert_eq!(args.assertions.len(), 2);
        let scenario = args.scenario().unwrap();
        assert_eq!(scenario.producers[0].records, 5000);
        assert_eq!(scenario.producers[0].acks, AcksSetting::Leader);
        assert_eq!(scenario.producers[0].batch_size, 65536);
        assert_eq!(scenario.producers[0].linger_ms, 20);
        assert_eq!(
            scenario.producers[0].message_size,
            MessageSize::Range { min: 100, max: 200 }
        );
        assert_eq!(scenario.consumers.len(), 1);
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scenario.toml");
        std::fs::write(
            &path,
            "topic = \"file-topic\"\npartitions = 2\n[[producers]]\ntarget_rate = 5\n",
        )
        .unwrap();
        let args = parse(&["--scenario", path.to_str().unwrap(), "--partitions", "4", "--rate", "9"]).unwrap();
        let scenario = args.scenario().unwrap();
        assert_eq!(scenario.topic, "file-topic");
        assert_eq!(scenario.partitions, 4);
        assert_eq!(scenario.producers[0].target_rate, 9);
    }

    #[test]
    fn bad_flags_are_rejected() {
        assert!(parse(&["--assert", "p99<5"]).is_err());
        assert!(parse(&["e2e", "--scenario", "x.toml"]).is_err());
        assert!(parse(&["--duration", "soon"]).is_err());
        assert!(parse(&["--acks", "2"]).is_err());
    }

    #[test]
    fn stress_slo_from_the_flag() {
        let args = parse(&["stress", "--slo-p99-ms", "2.5"]).unwrap();
        assert_eq!(args.scenario().unwrap().stress.unwrap().slo_p99_ms, 2.5);
    }

    #[test]
    fn assertions_over_several_summaries() {
        let fast = Summary {
            throughput_rps: 10.0,
            ..Summary::default()
        };
        let slow = Summary {
            throughput_rps: 1.0,
            ..Summary::default()
        };
        let assertions = vec!["throughput_rps>5".parse().unwrap()];
        assert!(check_assertions(&assertions, &[&fast]).unwrap());
        assert!(!check_assertions(&assertions, &[&fast, &slow]).unwrap());
    }
}
