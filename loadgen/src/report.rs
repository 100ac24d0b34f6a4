//! What a run found: the summary table, the JSON file and the SVG plot.

use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::target::BatchOutcome;

/// Latency percentiles in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of `hist`.
    pub fn of(hist: &Histogram<u64>) -> Percentiles {
        let q = |p: f64| hist.value_at_quantile(p);
        Percentiles {
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: hist.max(),
        }
    }
}

/// The result of one engine's run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub engine: String,
    pub messages: u64,
    pub wall: Duration,
    pub throughput_per_sec: f64,
    pub latency: Percentiles,
    /// `(percentile, latency ns)` from 0 to 100, for the plot.
    pub spectrum: Vec<(f64, u64)>,
    /// Latency samples recorded (one per call).
    pub samples: u64,
    pub outcome: BatchOutcome,
    pub live_mappings: u64,
    pub bytes_per_mapping: Option<f64>,
    /// Queue waits of the messages sent (ns), when measured.
    pub waits: Option<Percentiles>,
    /// With `--rounds`: the throughput of every round, in round order (this
    /// report is the median one).
    pub rounds: Vec<f64>,
}

/// The percentiles the spectrum plot is drawn through.
const SPECTRUM: [f64; 16] = [
    0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999, 99.9995,
    99.9999, 100.0,
];

impl RunReport {
    pub fn new(
        engine: &str,
        messages: u64,
        wall: Duration,
        hist: &Histogram<u64>,
        outcome: BatchOutcome,
        live_mappings: u64,
        bytes_per_mapping: Option<f64>,
    ) -> Self {
        let q = |p: f64| hist.value_at_quantile(p);
        RunReport {
            engine: engine.to_string(),
            messages,
            wall,
            throughput_per_sec: messages as f64 / wall.as_secs_f64().max(1e-9),
            latency: Percentiles::of(hist),
            spectrum: SPECTRUM.iter().map(|p| (*p, q(p / 100.0))).collect(),
            samples: hist.len(),
            outcome,
            live_mappings,
            bytes_per_mapping,
            waits: None,
            rounds: Vec::new(),
        }
    }

    /// The median of `runs` (one engine's rounds, in order) by throughput,
    /// carrying every round's throughput.
    pub fn median_of(mut runs: Vec<RunReport>) -> Option<RunReport> {
        let rounds: Vec<f64> = runs.iter().map(|r| r.throughput_per_sec).collect();
        runs.sort_by(|a, b| a.throughput_per_sec.total_cmp(&b.throughput_per_sec));
        let mut median = runs.into_iter().nth(rounds.len() / 2)?;
        if rounds.len() > 1 {
            median.rounds = rounds;
        }
        Some(median)
    }

    /// Sends refused for a full sender queue, over all sends.
    pub fn queue_full_share(&self) -> f64 {
        let o = &self.outcome;
        let total = o.sticky + o.geomatch + o.weighted + o.failed + o.queue_full;
        o.queue_full as f64 / (total.max(1)) as f64
    }

    /// Refused sends (no sender, queue full) over all sends.
    pub fn refused_share(&self) -> f64 {
        let o = &self.outcome;
        let total = o.sticky + o.geomatch + o.weighted + o.failed + o.queue_full;
        (o.failed + o.queue_full) as f64 / (total.max(1)) as f64
    }

    /// Sticky hits over all selections.
    pub fn sticky_hit_ratio(&self) -> f64 {
        let o = &self.outcome;
        let total = o.sticky + o.geomatch + o.weighted;
        if total == 0 {
            0.0
        } else {
            o.sticky as f64 / total as f64
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "engine": self.engine,
            "messages": self.messages,
            "wall_secs": self.wall.as_secs_f64(),
            "throughput_per_sec": self.throughput_per_sec,
            "latency_ns": {
                "p50": self.latency.p50, "p90": self.latency.p90, "p99": self.latency.p99,
                "p999": self.latency.p999, "max": self.latency.max,
            },
            "latency_samples": self.samples,
            "sticky_hit_ratio": self.sticky_hit_ratio(),
            "selections": {
                "sticky": self.outcome.sticky, "geomatch": self.outcome.geomatch,
                "weighted": self.outcome.weighted, "failed": self.outcome.failed,
                "queue_full": self.outcome.queue_full,
            },
            "queue_full_share": self.queue_full_share(),
            "wait_ns": self.waits.map(|w| json!({"p50": w.p50, "p99": w.p99, "max": w.max})),
            "live_mappings": self.live_mappings,
            "bytes_per_mapping": self.bytes_per_mapping,
            "rounds_throughput_per_sec": self.rounds,
        })
    }
}

fn human_ns(ns: u64) -> String {
    match ns {
        0..=9_999 => format!("{ns} ns"),
        10_000..=9_999_999 => format!("{:.1} us", ns as f64 / 1e3),
        _ => format!("{:.1} ms", ns as f64 / 1e6),
    }
}

/// What the summary needs to know about the run besides its reports.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    /// Messages per call (one latency sample is one call).
    pub batch: u32,
    /// Open loop: the offered rate, messages per second.
    pub offered: Option<f64>,
    /// Rules in use that the baselines do not implement, by baseline:
    /// a throughput ratio against a baseline is printed only when this is
    /// empty for it (comparisons must be like for like).
    pub naive_lacks: Vec<&'static str>,
    pub redis_lacks: Vec<&'static str>,
}

impl RunContext {
    /// What one latency sample is.
    pub fn sample(&self) -> String {
        match self.batch {
            1 => "one message (one call)".to_string(),
            n => format!("one call of {n} messages"),
        }
    }
}

/// The summary printed on stdout: one block per engine, then the ratios.
pub fn summary(workload: &str, reports: &[RunReport], ctx: &RunContext) -> String {
    let mut out = format!(
        "workload: {workload}
"
    );
    out.push_str(&format!(
        "latency: one sample is {}; mappings: live ones only\n\n",
        ctx.sample()
    ));
    out.push_str(&format!(
        "{:<8} {:>11} {:>9} {:>13} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>11} {:>8}\n",
        "engine",
        "messages",
        "wall",
        "msg/s",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "sticky",
        "mappings",
        "B/map"
    ));
    for r in reports {
        out.push_str(&format!(
            "{:<8} {:>11} {:>8.2}s {:>13.0} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6.1}% {:>11} {:>8}\n",
            r.engine,
            r.messages,
            r.wall.as_secs_f64(),
            r.throughput_per_sec,
            human_ns(r.latency.p50),
            human_ns(r.latency.p90),
            human_ns(r.latency.p99),
            human_ns(r.latency.p999),
            human_ns(r.latency.max),
            r.sticky_hit_ratio() * 100.0,
            r.live_mappings,
            r.bytes_per_mapping
                .map_or("-".into(), |b| format!("{b:.1}")),
        ));
    }
    for r in reports {
        let o = &r.outcome;
        out.push_str(&format!(
            "{}: selections sticky {}, geomatch {}, weighted {}, refused {} (queue full {}, {:.2}%)\n",
            r.engine,
            o.sticky,
            o.geomatch,
            o.weighted,
            o.failed + o.queue_full,
            o.queue_full,
            r.queue_full_share() * 100.0
        ));
        if let Some(w) = r.waits {
            let secs = |ns: u64| ns as f64 / 1e9;
            out.push_str(&format!(
                "{}: queue wait p50 {:.2} s, p99 {:.2} s, max {:.2} s\n",
                r.engine,
                secs(w.p50),
                secs(w.p99),
                secs(w.max)
            ));
        }
    }
    if let Some(offered) = ctx.offered {
        for r in reports {
            out.push_str(&format!(
                "{}: achieved {} msg/s of {} offered ({:.0}%)\n",
                r.engine,
                human_rate(r.throughput_per_sec),
                human_rate(offered),
                100.0 * r.throughput_per_sec / offered
            ));
        }
    }
    out.push_str(&ratios(reports, ctx));
    out
}

/// How far apart two engines' refused shares may be for their throughputs
/// to compare (one percentage point): an engine that refuses work is not
/// faster for it.
const REFUSED_SHARE_TOLERANCE: f64 = 0.01;

/// With `--rounds`: `base`'s throughput over `other`'s in each round (the
/// two measured in the same round, one right after the other).
fn paired_ratios(base: &RunReport, other: &RunReport) -> Option<Vec<f64>> {
    (base.rounds.len() > 1 && base.rounds.len() == other.rounds.len()).then(|| {
        base.rounds
            .iter()
            .zip(&other.rounds)
            .map(|(b, o)| b / o.max(1e-9))
            .collect()
    })
}

/// The middle value (the upper of the two middle ones for an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// Throughput ratios of numpool (or http) against each other engine, when
/// they compare like for like: the same rules, the same share refused.
fn ratios(reports: &[RunReport], ctx: &RunContext) -> String {
    let mut out = String::new();
    let Some(base) = reports
        .iter()
        .find(|r| r.engine == "numpool" || r.engine == "http")
    else {
        return out;
    };
    // Open loop: an engine that met the offered rate is not slower than
    // another that met it too; only a shortfall tells them apart.
    let met = |r: &RunReport| {
        ctx.offered
            .is_some_and(|o| r.throughput_per_sec >= 0.97 * o)
    };
    for r in reports.iter().filter(|r| r.engine != base.engine) {
        let lacks = match r.engine.as_str() {
            "naive" => &ctx.naive_lacks,
            "redis" => &ctx.redis_lacks,
            _ => &Vec::new(),
        };
        if !lacks.is_empty() {
            out.push_str(&format!(
                "{} / {}: no ratio, {} does not implement {} (not like for like)\n",
                base.engine,
                r.engine,
                r.engine,
                lacks.join(", ")
            ));
        } else if (base.refused_share() - r.refused_share()).abs() > REFUSED_SHARE_TOLERANCE {
            out.push_str(&format!(
                "{} / {}: no ratio, {} refused {:.2}% of sends and {} {:.2}% (not like for like)\n",
                base.engine,
                r.engine,
                base.engine,
                base.refused_share() * 100.0,
                r.engine,
                r.refused_share() * 100.0
            ));
        } else if met(base) && met(r) {
            out.push_str(&format!(
                "{} / {}: no ratio, both met the offered rate\n",
                base.engine, r.engine
            ));
        } else if let Some(each) = paired_ratios(base, r) {
            let shown: Vec<String> = each.iter().map(|x| format!("{x:.2}")).collect();
            out.push_str(&format!(
                "{} throughput / {}: {:.2}x (median of {} rounds, each: {})\n",
                base.engine,
                r.engine,
                median(&each),
                each.len(),
                shown.join(", ")
            ));
        } else {
            out.push_str(&format!(
                "{} throughput / {}: {:.1}x\n",
                base.engine,
                r.engine,
                base.throughput_per_sec / r.throughput_per_sec.max(1e-9)
            ));
        }
    }
    out
}

/// `11.3 M`, `850 k`, `12`.
pub fn human_rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.1} M", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.0} k", per_sec / 1e3)
    } else {
        format!("{per_sec:.0}")
    }
}

/// The colour-blind-safe palette of Okabe and Ito.
const PALETTE: [(u8, u8, u8); 6] = [
    (0, 114, 178),   // blue
    (230, 159, 0),   // orange
    (0, 158, 115),   // bluish green
    (204, 121, 167), // reddish purple
    (86, 180, 233),  // sky blue
    (213, 94, 0),    // vermillion
];

/// A latency in microseconds, in human units.
fn human_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{} ms", trim(us / 1000.0))
    } else if us >= 1.0 {
        format!("{} µs", trim(us))
    } else {
        format!("{} ns", trim(us * 1000.0))
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Draws every report's latency percentile spectrum on one SVG chart. A
/// percentile is drawn only when at least 10 samples lie above it, so the
/// tail stops where the samples run out instead of flattening into a line.
pub fn plot(
    reports: &[RunReport],
    path: &Path,
    workload: &str,
    ctx: &RunContext,
) -> Result<(), String> {
    use plotters::prelude::*;
    // x: "nines" of the percentile, -log10(1 - p).
    let nines = |p: f64| -(1.0 - p / 100.0).log10();
    let supported = |r: &RunReport| {
        r.spectrum
            .iter()
            .filter(|(p, _)| *p < 100.0 && r.samples as f64 * (1.0 - p / 100.0) >= 10.0)
            .map(|(p, v)| (nines(*p), (*v as f64 / 1e3).max(0.001)))
            .collect::<Vec<(f64, f64)>>()
    };
    let curves: Vec<Vec<(f64, f64)>> = reports.iter().map(supported).collect();
    let values = || curves.iter().flatten().map(|(_, v)| *v);
    let max_us = values().fold(0.001f64, f64::max);
    let min_us = values().fold(f64::MAX, f64::min).min(max_us);
    let max_x = curves
        .iter()
        .flatten()
        .map(|(x, _)| *x)
        .fold(1.0f64, f64::max)
        .ceil();
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (top, chart_area) = root.split_vertically(56);
    top.draw(&Text::new(
        format!("Latency by percentile; one sample is {}", ctx.sample()),
        (16, 8),
        ("sans-serif", 20),
    ))
    .map_err(|e| e.to_string())?;
    let short: String = workload.chars().take(150).collect();
    top.draw(&Text::new(short, (16, 34), ("sans-serif", 11)))
        .map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&chart_area)
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0f64..max_x, (min_us / 2.0..max_us * 2.0).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (log scale)")
        .x_label_formatter(&|x| match x.round() as i64 {
            0 => "0%".into(),
            1 => "90%".into(),
            2 => "99%".into(),
            3 => "99.9%".into(),
            4 => "99.99%".into(),
            5 => "99.999%".into(),
            _ => String::new(),
        })
        .x_labels(max_x as usize + 1)
        .y_label_formatter(&|us| human_us(*us))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (r, points)) in reports.iter().zip(curves).enumerate() {
        let (red, green, blue) = PALETTE[i % PALETTE.len()];
        let color = RGBColor(red, green, blue);
        let label = format!("{} ({} msg/s)", r.engine, human_rate(r.throughput_per_sec));
        let series = if i % 2 == 0 {
            chart.draw_series(LineSeries::new(points, color.stroke_width(3)))
        } else {
            chart.draw_series(DashedLineSeries::new(points, 10, 6, color.stroke_width(3)))
        };
        series
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(engine: &str, per_sec: u64, refused: u64) -> RunReport {
        let mut hist = Histogram::<u64>::new(3).unwrap();
        hist.record(1_000).unwrap();
        let outcome = BatchOutcome {
            weighted: 1_000 - refused,
            queue_full: refused,
            ..Default::default()
        };
        RunReport::new(
            engine,
            per_sec,
            Duration::from_secs(1),
            &hist,
            outcome,
            0,
            None,
        )
    }

    #[test]
    fn a_ratio_is_printed_only_between_runs_that_refused_alike() {
        let ctx = RunContext::default();
        let alike = ratios(&[report("numpool", 300, 5), report("naive", 100, 0)], &ctx);
        assert!(
            alike.contains("numpool throughput / naive: 3.0x"),
            "{alike}"
        );
        let unlike = ratios(&[report("numpool", 300, 91), report("naive", 100, 0)], &ctx);
        assert!(unlike.contains("no ratio"), "{unlike}");
        assert!(unlike.contains("refused 9.10%"), "{unlike}");
        let lacking = RunContext {
            naive_lacks: vec!["geomatch"],
            ..Default::default()
        };
        let text = ratios(
            &[report("numpool", 300, 0), report("naive", 100, 0)],
            &lacking,
        );
        assert!(text.contains("does not implement geomatch"), "{text}");
    }

    #[test]
    fn rounds_give_the_median_report_and_the_median_of_paired_ratios() {
        // Round 2 is slow for both engines (a busy machine): paired, its
        // ratio is still 2.0; the medians of each engine alone would give
        // 300 / 100 = 3.0.
        let ours = RunReport::median_of(vec![
            report("numpool", 400, 0),
            report("numpool", 200, 0),
            report("numpool", 300, 0),
        ])
        .unwrap();
        let theirs = RunReport::median_of(vec![
            report("naive", 100, 0),
            report("naive", 100, 0),
            report("naive", 200, 0),
        ])
        .unwrap();
        assert_eq!(ours.throughput_per_sec, 300.0);
        assert_eq!(ours.rounds, vec![400.0, 200.0, 300.0]);
        let text = ratios(&[ours, theirs], &RunContext::default());
        assert!(
            text.contains(
                "numpool throughput / naive: 2.00x (median of 3 rounds, each: 4.00, 2.00, 1.50)"
            ),
            "{text}"
        );
        // One round: no list, the ratio of the two runs.
        let one = RunReport::median_of(vec![report("numpool", 300, 0)]).unwrap();
        assert!(one.rounds.is_empty());
    }
}
