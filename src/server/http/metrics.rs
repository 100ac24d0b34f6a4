//! `/metrics`: Prometheus text from the engine's counters and the server's
//! own (requests by status class, send latency histogram).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::EngineStats;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0,
];

/// The server's own counters.
#[derive(Default)]
pub struct Metrics {
    /// Responses by status class (index 1..=5 for 1xx..5xx).
    responses: [AtomicU64; 6],
    send_buckets: [AtomicU64; BUCKETS.len()],
    send_count: AtomicU64,
    send_sum_ns: AtomicU64,
}

impl Metrics {
    pub fn response(&self, status: u16) {
        let class = usize::from(status / 100).min(5);
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long one send request took.
    pub fn send_latency(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.send_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.send_count.fetch_add(1, Ordering::Relaxed);
        self.send_sum_ns
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, stats: &EngineStats) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP numpool_http_responses_total HTTP responses by status class."
        );
        let _ = writeln!(out, "# TYPE numpool_http_responses_total counter");
        for class in 1..=5 {
            let _ = writeln!(
                out,
                "numpool_http_responses_total{{class=\"{class}xx\"}} {}",
                get(&self.responses[class])
            );
        }
        let _ = writeln!(out, "# HELP numpool_selections_total Selections by reason.");
        let _ = writeln!(out, "# TYPE numpool_selections_total counter");
        for (reason, n) in [
            ("sticky", stats.sticky),
            ("geomatch", stats.geomatch),
            ("weighted", stats.weighted),
        ] {
            let _ = writeln!(out, "numpool_selections_total{{reason=\"{reason}\"}} {n}");
        }
        let gauges = [
            (
                "numpool_selections_rejected_total",
                "counter",
                "Selections refused.",
                stats.rejected,
            ),
            (
                "numpool_mappings_created_total",
                "counter",
                "Sticky mappings created.",
                stats.mappings_created,
            ),
            (
                "numpool_expirations_total",
                "counter",
                "Sticky mappings expired.",
                stats.expired,
            ),
            (
                "numpool_live_mappings",
                "gauge",
                "Sticky mappings stored.",
                stats.stored_mappings as u64,
            ),
            (
                "numpool_profiles",
                "gauge",
                "Messaging profiles.",
                stats.profiles as u64,
            ),
            (
                "numpool_senders",
                "gauge",
                "Numbers in pools.",
                stats.senders as u64,
            ),
            (
                "numpool_mailbox_depth",
                "gauge",
                "Messages queued in actor mailboxes.",
                stats.mailbox_depth as u64,
            ),
            (
                "numpool_mailbox_depth_max",
                "gauge",
                "Deepest actor mailbox.",
                stats.max_mailbox_depth as u64,
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP numpool_send_latency_seconds Send request latency."
        );
        let _ = writeln!(out, "# TYPE numpool_send_latency_seconds histogram");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "numpool_send_latency_seconds_bucket{{le=\"{bound}\"}} {}",
                get(&self.send_buckets[i])
            );
        }
        let count = get(&self.send_count);
        let _ = writeln!(
            out,
            "numpool_send_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "numpool_send_latency_seconds_sum {}",
            get(&self.send_sum_ns) as f64 / 1e9
        );
        let _ = writeln!(out, "numpool_send_latency_seconds_count {count}");
        out
    }
}
