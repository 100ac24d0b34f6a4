//! `/metrics`: Prometheus text from the engine's counters and the server's
//! own (requests by status class, send latency histogram).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::error::code;
use crate::{EngineStats, Error, NoSender, Selection};

/// A Prometheus histogram with fixed buckets, updated lock-free.
struct Histogram {
    /// Upper bounds of the buckets, in seconds.
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: Duration) {
        let secs = value.as_secs_f64();
        // Cumulative buckets: the first that holds the value and every later one.
        if let Some(first) = self.bounds.iter().position(|b| secs <= *b) {
            for bucket in &self.buckets[first..] {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// Send latency buckets, in seconds.
const LATENCY: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0,
];

/// Queue wait buckets, in seconds (up to the default cap of 4 h).
const WAIT: &[f64] = &[0.0, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14_400.0];

/// Sends refused by a rule of the profile, by cause (the label) and code.
const REFUSALS: [(&str, &str); 6] = [
    ("disabled", code::DISABLED),
    ("destination", code::DESTINATION),
    ("opted_out", code::OPTED_OUT),
    ("queue_full", code::QUEUE_FULL),
    ("daily_limit", code::DAILY_LIMIT),
    ("new_recipient_limit", code::NO_SENDER),
];

/// The server's own counters. Every series is a fixed set, whatever the
/// number of senders or profiles: `/metrics` costs the same with five
/// numbers or five million (per-sender figures are on the number routes).
pub(crate) struct Metrics {
    /// Responses by status class (index 1..=5 for 1xx..5xx).
    responses: [AtomicU64; 6],
    send_latency: Histogram,
    queue_wait: Histogram,
    refused: [AtomicU64; REFUSALS.len()],
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            responses: Default::default(),
            send_latency: Histogram::new(LATENCY),
            queue_wait: Histogram::new(WAIT),
            refused: Default::default(),
        }
    }
}

impl Metrics {
    pub(crate) fn response(&self, status: u16) {
        let class = usize::from(status / 100).min(5);
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long one send request took.
    pub(crate) fn send_latency(&self, took: Duration) {
        self.send_latency.observe(took);
    }

    /// Records a send's queue wait.
    pub(crate) fn selected(&self, selection: &Selection) {
        self.queue_wait.observe(selection.wait);
    }

    /// Counts a send refused by a compliance or capacity rule.
    pub(crate) fn refused(&self, e: &Error) {
        let cause = match e {
            Error::ProfileDisabled => "disabled",
            Error::DestinationNotAllowed { .. } => "destination",
            Error::OptedOut => "opted_out",
            Error::QueueFull { .. } => "queue_full",
            Error::DailyLimit => "daily_limit",
            Error::NoSender(NoSender::NewRecipientLimit) => "new_recipient_limit",
            _ => return,
        };
        if let Some(i) = REFUSALS.iter().position(|(c, _)| *c == cause) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self, stats: &EngineStats) -> String {
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
        for (reason, n) in stats.selections.iter() {
            let reason = reason.api_name();
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
        self.send_latency.render(
            &mut out,
            "numpool_send_latency_seconds",
            "Send request latency.",
        );
        self.queue_wait.render(
            &mut out,
            "numpool_queue_wait_seconds",
            "How long sent messages wait in their sender's queue.",
        );
        let _ = writeln!(
            out,
            "# HELP numpool_sends_refused_total Sends refused by a rule of the profile, by cause.\n# TYPE numpool_sends_refused_total counter"
        );
        for ((cause, code), n) in REFUSALS.iter().zip(&self.refused) {
            let _ = writeln!(
                out,
                "numpool_sends_refused_total{{cause=\"{cause}\",code=\"{code}\"}} {}",
                get(n)
            );
        }
        out
    }
}
