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
    pub outcome: BatchOutcome,
    pub live_mappings: u64,
    pub bytes_per_mapping: Option<f64>,
    /// Queue waits of the messages sent (ns), when measured.
    pub waits: Option<Percentiles>,
}

/// The percentiles the spectrum plot is drawn through.
const SPECTRUM: [f64; 12] = [
    0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0,
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
            outcome,
            live_mappings,
            bytes_per_mapping,
            waits: None,
        }
    }

    /// Sends refused for a full sender queue, over all sends.
    pub fn queue_full_share(&self) -> f64 {
        let o = &self.outcome;
        let total = o.sticky + o.geomatch + o.weighted + o.failed + o.queue_full;
        o.queue_full as f64 / (total.max(1)) as f64
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

/// The summary printed on stdout: one block per engine, then the ratios.
pub fn summary(workload: &str, reports: &[RunReport]) -> String {
    let mut out = format!("workload: {workload}\n\n");
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
    if let Some(base) = reports
        .iter()
        .find(|r| r.engine == "numpool" || r.engine == "http")
    {
        for r in reports.iter().filter(|r| r.engine != base.engine) {
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

/// Draws every report's latency percentile spectrum on one SVG chart.
pub fn plot(reports: &[RunReport], path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    // x: "nines" of the percentile, -log10(1 - p); 100% is drawn at the end.
    let nines = |p: f64| {
        if p >= 100.0 {
            5.0
        } else {
            -(1.0 - p / 100.0).log10()
        }
    };
    let values = || {
        reports
            .iter()
            .flat_map(|r| r.spectrum.iter().map(|(_, v)| (*v as f64 / 1e3).max(0.001)))
    };
    let max_us = values().fold(0.001f64, f64::max);
    let min_us = values().fold(f64::MAX, f64::min).min(max_us);
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Request latency by percentile (a request carries --batch messages)",
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0f64..5.0f64, (min_us / 2.0..max_us * 2.0).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (us, log scale)")
        .x_label_formatter(&|x| match x.round() as i64 {
            0 => "0%".into(),
            1 => "90%".into(),
            2 => "99%".into(),
            3 => "99.9%".into(),
            4 => "99.99%".into(),
            _ => "max".into(),
        })
        .x_labels(6)
        .draw()
        .map_err(|e| e.to_string())?;
    let colors = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
    for (i, r) in reports.iter().enumerate() {
        let color = colors[i % colors.len()];
        let points: Vec<(f64, f64)> = r
            .spectrum
            .iter()
            .map(|(p, v)| (nines(*p), (*v as f64 / 1e3).max(0.001)))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(format!("{} ({:.0} msg/s)", r.engine, r.throughput_per_sec))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
