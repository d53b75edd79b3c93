//! Output of runs: a summary table, JSON files and a self-contained HTML report with inline
//! SVG charts (throughput over time, latency percentiles over time, latency distribution).
//! The HTML needs no network and no JavaScript.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::compare::CompareReport;
use crate::metrics::PercentilePoint;
use crate::result::BenchResult;
use crate::search::SearchReport;

/// Chart size in SVG pixels.
const CHART_WIDTH: f64 = 760.0;
const CHART_HEIGHT: f64 = 300.0;
/// Space for axis labels.
const MARGIN_LEFT: f64 = 70.0;
const MARGIN_RIGHT: f64 = 150.0;
const MARGIN_TOP: f64 = 30.0;
const MARGIN_BOTTOM: f64 = 40.0;
/// Grid lines per axis.
const TICKS: usize = 5;
/// Series colours, in order.
const COLORS: [&str; 6] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
/// Dash patterns, in order: lines that coincide (produced and consumed at the same rate)
/// stay visible on top of each other.
const DASHES: [&str; 4] = ["", "6 4", "2 3", "10 3 2 3"];
/// Stroke widths, in order: the first line is wider so a dashed one on it still shows.
const WIDTHS: [f64; 2] = [3.0, 1.5];
/// Seconds shorter than this (the end of a run) are left out of the time series: too
/// short to give a rate.
const PARTIAL_SECOND_MIN_S: f64 = 0.1;

/// Writes the run's summary as an aligned table.
pub fn write_summary(out: &mut impl Write, result: &BenchResult) -> std::io::Result<()> {
    let s = &result.summary;
    writeln!(out, "strom bench: {} on {}", result.scenario.topic, result.bootstrap)?;
    let rows = [
        ("records", format!("{}", s.records)),
        ("bytes", format!("{}", s.bytes)),
        ("duration", format!("{:.2} s", s.duration_s)),
        (
            "throughput",
            format!("{:.0} records/s, {:.2} MB/s", s.throughput_rps, s.throughput_mbps),
        ),
        (
            "consumed",
            format!(
                "{} records, {:.0} records/s, {:.2} MB/s",
                s.consumed_records, s.consume_throughput_rps, s.consume_throughput_mbps
            ),
        ),
        ("errors", format!("{}", s.errors)),
    ];
    for (name, value) in rows {
        writeln!(out, "  {name:<12} {value}")?;
    }
    writeln!(
        out,
        "  {:<12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "latency ms", "p50", "p90", "p99", "p99.9", "max", "mean", "count"
    )?;
    for (name, latency) in [("produce", &s.produce_latency), ("end-to-end", &s.e2e_latency)] {
        if latency.count == 0 {
            continue;
        }
        writeln!(
            out,
            "  {name:<12} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>10}",
            latency.p50_ms,
            latency.p90_ms,
            latency.p99_ms,
            latency.p999_ms,
            latency.max_ms,
            latency.mean_ms,
            latency.count
        )?;
    }
    for (kind, count) in &s.errors_by_kind {
        writeln!(out, "  error        {count:>9} × {kind}")?;
    }
    Ok(())
}

/// Writes a search or ramp report as a table.
pub fn write_search(out: &mut impl Write, report: &SearchReport) -> std::io::Result<()> {
    writeln!(out, "rate search, SLO p99 produce <= {} ms", report.slo_p99_ms)?;
    writeln!(
        out,
        "  {:>12} {:>12} {:>10} {:>7}  result",
        "target/s", "achieved/s", "p99 ms", "errors"
    )?;
    for step in &report.steps {
        writeln!(
            out,
            "  {:>12} {:>12.0} {:>10.3} {:>7}  {}",
            step.rate_rps,
            step.achieved_rps,
            step.p99_produce_ms,
            step.errors,
            if step.passed { "pass" } else { "FAIL" }
        )?;
    }
    match report.knee_rps {
        Some(knee) => writeln!(out, "knee: {knee} records/s"),
        None => writeln!(out, "knee: none (the lowest rate already breaks the SLO)"),
    }
}

/// Writes a comparison as a table of ratios B / A.
pub fn write_compare(out: &mut impl Write, report: &CompareReport) -> std::io::Result<()> {
    writeln!(
        out,
        "compare: B = {} vs A = {} ({} rounds), ratios B / A",
        report.bootstrap_b,
        report.bootstrap_a,
        report.rounds.len()
    )?;
    writeln!(out, "  {:<24} {:>8} {:>8} {:>8}", "metric", "min", "median", "max")?;
    for stats in &report.ratios {
        writeln!(
            out,
            "  {:<24} {:>8.3} {:>8.3} {:>8.3}",
            stats.metric, stats.min, stats.median, stats.max
        )?;
    }
    Ok(())
}

/// Writes any result as pretty JSON.
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).map_err(|error| anyhow::anyhow!("cannot write {}: {error}", path.display()))
}

/// Writes `report.html` and `result.json` into `dir` (created if missing); returns the HTML path.
pub fn write_html_report(dir: &Path, result: &BenchResult) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|error| anyhow::anyhow!("cannot create {}: {error}", dir.display()))?;
    write_json(&dir.join("result.json"), result)?;
    let path = dir.join("report.html");
    std::fs::write(&path, html(result)).map_err(|error| anyhow::anyhow!("cannot write {}: {error}", path.display()))?;
    Ok(path)
}

/// The HTML report of a run.
pub fn html(result: &BenchResult) -> String {
    let mut table = Vec::new();
    let _ = write_summary(&mut table, result);
    let seconds = |f: &dyn Fn(&crate::metrics::SecondSample) -> f64| -> Vec<(f64, f64)> {
        result
            .series
            .iter()
            .filter(|s| s.duration_s >= PARTIAL_SECOND_MIN_S)
            .map(|s| (s.second as f64, f(s)))
            .collect()
    };
    let has_consumers = result.summary.consumed_records > 0;
    let has_e2e = result.summary.e2e_latency.count > 0;
    let has_produce = result.summary.produce_latency.count > 0;

    let mut throughput = vec![Series::new("produced records/s", seconds(&|s| s.produced_rps))];
    if has_consumers {
        throughput.push(Series::new("consumed records/s", seconds(&|s| s.consumed_rps)));
    }
    let mut megabytes = vec![Series::new("produced MB/s", seconds(&|s| s.produced_mbps))];
    if has_consumers {
        megabytes.push(Series::new("consumed MB/s", seconds(&|s| s.consumed_mbps)));
    }
    let mut charts = vec![
        line_chart(
            "Throughput (records/s)",
            "second",
            "records/s",
            &throughput,
            Axis::Linear,
        ),
        line_chart("Throughput (MB/s)", "second", "MB/s", &megabytes, Axis::Linear),
    ];
    if has_produce {
        let percentiles = [
            Series::new("p50", seconds(&|s| s.produce.p50_ms)),
            Series::new("p99", seconds(&|s| s.produce.p99_ms)),
            Series::new("p99.9", seconds(&|s| s.produce.p999_ms)),
            Series::new("max", seconds(&|s| s.produce.max_ms)),
        ];
        charts.push(line_chart(
            "Produce latency per second",
            "second",
            "ms",
            &percentiles,
            Axis::Linear,
        ));
    }
    if has_e2e {
        let percentiles = [
            Series::new("p50", seconds(&|s| s.e2e.p50_ms)),
            Series::new("p99", seconds(&|s| s.e2e.p99_ms)),
            Series::new("p99.9", seconds(&|s| s.e2e.p999_ms)),
            Series::new("max", seconds(&|s| s.e2e.max_ms)),
        ];
        charts.push(line_chart(
            "End-to-end latency per second",
            "second",
            "ms",
            &percentiles,
            Axis::Linear,
        ));
    }
    let mut distribution = Vec::new();
    if has_produce {
        distribution.push(Series::new("produce", nines(&result.produce_distribution)));
    }
    if has_e2e {
        distribution.push(Series::new("end-to-end", nines(&result.e2e_distribution)));
    }
    if !distribution.is_empty() {
        charts.push(line_chart(
            "Latency distribution",
            "percentile",
            "ms",
            &distribution,
            Axis::Nines,
        ));
    }

    let mut page = String::new();
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    let _ = writeln!(page, "<title>strom bench: {}</title>", escape(&result.scenario.topic));
    page.push_str(
        "<style>body{font-family:sans-serif;margin:2em;color:#222}pre{background:#f6f6f6;padding:1em}\
         svg{display:block;margin:1.5em 0}</style>\n</head><body>\n",
    );
    let _ = writeln!(
        page,
        "<h1>strom bench</h1>\n<pre>{}</pre>",
        escape(&String::from_utf8_lossy(&table))
    );
    for chart in charts {
        page.push_str(&chart);
        page.push('\n');
    }
    let scenario = toml::to_string_pretty(&result.scenario).unwrap_or_default();
    let _ = writeln!(page, "<h2>Scenario</h2>\n<pre>{}</pre>", escape(&scenario));
    page.push_str("</body></html>\n");
    page
}

/// A distribution as (nines, latency): percentile p is drawn at -log10(1 - p/100).
fn nines(points: &[PercentilePoint]) -> Vec<(f64, f64)> {
    points
        .iter()
        .filter(|p| p.percentile < 100.0)
        .map(|p| (-(1.0 - p.percentile / 100.0).log10(), p.latency_ms))
        .collect()
}

/// How the x axis is labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Axis {
    Linear,
    /// x is a count of nines: 0 → 0%, 1 → 90%, 2 → 99%, …
    Nines,
}

struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

impl Series {
    fn new(name: &str, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.to_string(),
            points: points
                .into_iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect(),
        }
    }
}

/// A line chart as inline SVG.
fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series], axis: Axis) -> String {
    let all = series.iter().flat_map(|s| s.points.iter());
    let (x_max, y_max) = all.fold((0.0_f64, 0.0_f64), |(x, y), (px, py)| (x.max(*px), y.max(*py)));
    let x_max = if axis == Axis::Nines {
        x_max.ceil().max(1.0)
    } else {
        x_max.max(1.0)
    };
    let y_max = nice_ceiling(y_max);
    let plot_width = CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let plot_height = CHART_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let x_at = |x: f64| MARGIN_LEFT + x / x_max * plot_width;
    let y_at = |y: f64| MARGIN_TOP + plot_height - y / y_max * plot_height;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{CHART_WIDTH}\" height=\"{CHART_HEIGHT}\" \
         viewBox=\"0 0 {CHART_WIDTH} {CHART_HEIGHT}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = writeln!(
        svg,
        "<text x=\"{MARGIN_LEFT}\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        escape(title)
    );
    // Grid and y labels.
    for tick in 0..=TICKS {
        let value = y_max * tick as f64 / TICKS as f64;
        let y = y_at(value);
        let _ = writeln!(
            svg,
            "<line x1=\"{MARGIN_LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            MARGIN_LEFT + plot_width,
            MARGIN_LEFT - 6.0,
            y + 4.0,
            format_number(value)
        );
    }
    // x labels.
    let x_ticks: Vec<(f64, String)> = match axis {
        Axis::Linear => (0..=TICKS)
            .map(|tick| {
                let value = x_max * tick as f64 / TICKS as f64;
                (value, format_number(value))
            })
            .collect(),
        Axis::Nines => (0..=x_max as u32)
            .map(|nines| (f64::from(nines), nines_label(nines)))
            .collect(),
    };
    for (value, label) in x_ticks {
        let x = x_at(value);
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{MARGIN_TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            MARGIN_TOP + plot_height,
            MARGIN_TOP + plot_height + 15.0,
            escape(&label)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
         <text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">{}</text>",
        MARGIN_LEFT + plot_width / 2.0,
        CHART_HEIGHT - 6.0,
        escape(x_label),
        MARGIN_TOP + plot_height / 2.0,
        MARGIN_TOP + plot_height / 2.0,
        escape(y_label)
    );
    let _ = writeln!(
        svg,
        "<rect x=\"{MARGIN_LEFT}\" y=\"{MARGIN_TOP}\" width=\"{plot_width:.1}\" height=\"{plot_height:.1}\" \
         fill=\"none\" stroke=\"#888\"/>"
    );
    if axis == Axis::Linear && series.iter().all(|s| s.points.len() < 2) {
        // One point is no line: say why the chart is (nearly) empty.
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#888\">\
             The run was too short for a time series (under 2 s); see the summary above.</text>",
            MARGIN_LEFT + plot_width / 2.0,
            MARGIN_TOP + plot_height / 2.0
        );
    }
    for (index, series) in series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let style = line_style(index);
        let points: Vec<String> = series
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", x_at(*x), y_at(*y)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\"{style} points=\"{}\"/>",
            points.join(" ")
        );
        // A short series is hard to see as a line; its points are marked.
        if series.points.len() < 3 {
            for (x, y) in &series.points {
                let _ = writeln!(
                    svg,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
                    x_at(*x),
                    y_at(*y)
                );
            }
        }
        let legend_y = MARGIN_TOP + 14.0 * index as f64 + 8.0;
        let legend_x = MARGIN_LEFT + plot_width + 10.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{legend_x:.1}\" y1=\"{legend_y:.1}\" x2=\"{:.1}\" y2=\"{legend_y:.1}\" stroke=\"{color}\"\
             {style}/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            legend_x + 16.0,
            legend_x + 20.0,
            legend_y + 4.0,
            escape(&series.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Stroke width and dashes of the `index`th series, as SVG attributes.
fn line_style(index: usize) -> String {
    let width = WIDTHS[index.min(WIDTHS.len() - 1)];
    match DASHES[index % DASHES.len()] {
        "" => format!(" stroke-width=\"{width}\""),
        dashes => format!(" stroke-width=\"{width}\" stroke-dasharray=\"{dashes}\""),
    }
}

/// The smallest 1, 2 or 5 × 10^k at or above `value` (1 for nothing).
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10_f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|step| step * magnitude)
        .find(|candidate| *candidate >= value)
        .unwrap_or(10.0 * magnitude)
}

fn nines_label(nines: u32) -> String {
    match nines {
        0 => "0%".to_string(),
        1 => "90%".to_string(),
        n => format!("99.{}%", "9".repeat(n as usize - 2)).replace("99.%", "99%"),
    }
}

fn format_number(value: f64) -> String {
    if value >= 1_000_000.0 {
        format!("{:.1}M", value / 1_000_000.0)
    } else if value >= 10_000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if value >= 100.0 || value == value.trunc() {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Recorder;
    use crate::result::Summary;
    use crate::scenario::Scenario;
    use std::time::{Duration, Instant};

    fn result() -> BenchResult {
        let start = Instant::now();
        let mut recorder = Recorder::new(start);
        for i in 0..2000u64 {
            let at = start + Duration::from_millis(i);
            recorder.record_produce(at, 100, Duration::from_micros(500 + i));
            recorder.record_consume(at, 100, Some(Duration::from_micros(900 + i)));
        }
        BenchResult {
            bootstrap: "127.0.0.1:9092".into(),
            started_at_ms: 0,
            scenario: Scenario::default(),
            summary: Summary::from_recorder(&recorder, true),
            series: recorder.series(),
            produce_distribution: recorder.produce_latency().distribution(),
            e2e_distribution: recorder.e2e_latency().distribution(),
        }
    }

    #[test]
    fn html_has_every_chart_and_no_script() {
        let page = html(&result());
        assert_eq!(
            page.matches("<svg").count(),
            5,
            "2 throughput, 2 latency over time, 1 distribution"
        );
        assert!(page.contains("<polyline"));
        assert!(!page.contains("<script"));
        assert!(
            !page.contains("<link") && !page.contains("src="),
            "nothing loaded from elsewhere"
        );
        assert!(!page.contains("NaN"));
    }

    #[test]
    fn coinciding_lines_stay_visible() {
        let page = html(&result());
        let throughput = page.split("</svg>").next().unwrap_or_default();
        assert!(throughput.contains("consumed records/s"), "{throughput}");
        assert!(
            throughput.contains("stroke-dasharray=\"6 4\""),
            "the second line is dashed"
        );
        assert!(
            !page.contains(">The run was too short"),
            "two seconds of data draw lines"
        );
    }

    #[test]
    fn a_sub_second_run_says_why_its_charts_are_empty() {
        let start = Instant::now();
        let mut recorder = Recorder::new(start);
        for i in 0..300u64 {
            recorder.record_produce(start + Duration::from_millis(i), 100, Duration::from_micros(500));
        }
        let mut short = result();
        short.series = recorder.series();
        let page = html(&short);
        assert!(page.contains("The run was too short for a time series"), "{page}");
        assert!(page.contains("<circle"), "the single point is marked");
    }

    #[test]
    fn summary_table_lists_latencies() {
        let mut out = Vec::new();
        write_summary(&mut out, &result()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("records      2000"), "{text}");
        assert!(text.contains("produce") && text.contains("end-to-end"), "{text}");
    }

    #[test]
    fn axis_helpers() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nines_label(0), "0%");
        assert_eq!(nines_label(2), "99%");
        assert_eq!(nines_label(4), "99.99%");
        assert_eq!(escape("<a&b>"), "&lt;a&amp;b&gt;");
    }
}
