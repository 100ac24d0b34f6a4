//! Sender health from delivery outcomes over a sliding window.
//!
//! The window is kept as a ring of `buckets` equal slices, so memory per
//! sender is fixed and reading health is cheap. An outcome counts while its
//! slice is one of the newest `buckets` slices: it leaves the window between
//! `window − window/buckets` and `window` after it was recorded.

use std::cell::Cell;

/// Health thresholds and window, shared by every sender of an engine.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// Length of the sliding window in seconds (default 24 h).
    pub window_secs: u32,
    /// Number of slices the window is kept in (default 24).
    pub buckets: u16,
    /// Outcomes needed in the window before a sender can be unhealthy (default 20).
    pub min_samples: u32,
    /// Unhealthy below this success ratio (default 0.25).
    pub min_success_ratio: f64,
    /// Unhealthy above this spam ratio (default 0.75).
    pub max_spam_ratio: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            window_secs: 24 * 3600,
            buckets: 24,
            min_samples: 20,
            min_success_ratio: 0.25,
            max_spam_ratio: 0.75,
        }
    }
}

impl HealthConfig {
    /// Seconds covered by one slice (at least one).
    pub fn bucket_secs(&self) -> u32 {
        self.window_secs
            .div_ceil(u32::from(self.buckets.max(1)))
            .max(1)
    }

    fn bucket_of(&self, now_secs: u32) -> u32 {
        now_secs / self.bucket_secs()
    }
}

/// One slice of a health window: `(slice index, finalized, delivered, spam)`.
pub(crate) type HealthSlice = (u32, u32, u32, u32);

/// One finalized message, as reported by a delivery webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryOutcome {
    /// The message reached the handset.
    pub delivered: bool,
    /// The carrier flagged or blocked it as spam.
    pub spam: bool,
}

/// Counts of outcomes in the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthCounts {
    /// Messages with a final status.
    pub finalized: u32,
    /// Of those, delivered.
    pub delivered: u32,
    /// Of those, flagged or blocked as spam.
    pub spam: u32,
}

impl HealthCounts {
    /// delivered / finalized (1.0 with no outcomes).
    pub fn success_ratio(&self) -> f64 {
        if self.finalized == 0 {
            1.0
        } else {
            f64::from(self.delivered) / f64::from(self.finalized)
        }
    }

    /// spam / finalized (0.0 with no outcomes).
    pub fn spam_ratio(&self) -> f64 {
        if self.finalized == 0 {
            0.0
        } else {
            f64::from(self.spam) / f64::from(self.finalized)
        }
    }

    /// Whether these counts make a sender unhealthy under `config`.
    pub fn is_unhealthy(&self, config: &HealthConfig) -> bool {
        self.finalized >= config.min_samples
            && (self.success_ratio() < config.min_success_ratio
                || self.spam_ratio() > config.max_spam_ratio)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Which slice of time (`now / bucket_secs`) these counts belong to.
    index: u32,
    counts: HealthCounts,
}

/// The outcomes of one sender. A sender with no outcomes costs one pointer:
/// the window is allocated when the first outcome arrives.
#[derive(Debug, Clone, Default)]
pub(crate) struct Health {
    window: Option<Box<Window>>,
}

#[derive(Debug, Clone)]
struct Window {
    buckets: Box<[Bucket]>,
    /// `(slice index, unhealthy)` computed last: the verdict only changes
    /// when an outcome arrives or a new slice starts, so selection reads this.
    verdict: Cell<Option<(u32, bool)>>,
}

impl Window {
    fn new(config: &HealthConfig) -> Box<Window> {
        Box::new(Window {
            buckets: vec![Bucket::default(); usize::from(config.buckets.max(1))].into(),
            verdict: Cell::new(None),
        })
    }
}

impl Health {
    /// The window, (re)allocated if `config` asks for another slice count.
    fn window_mut(&mut self, config: &HealthConfig) -> &mut Window {
        let n = usize::from(config.buckets.max(1));
        let window = self.window.get_or_insert_with(|| Window::new(config));
        if window.buckets.len() != n {
            *window = Window::new(config);
        }
        window
    }

    /// Records one outcome at `now_secs`.
    pub(crate) fn record(
        &mut self,
        outcome: DeliveryOutcome,
        now_secs: u32,
        config: &HealthConfig,
    ) {
        let index = config.bucket_of(now_secs);
        let window = self.window_mut(config);
        let n = window.buckets.len();
        let bucket = &mut window.buckets[index as usize % n];
        if bucket.index != index || bucket.counts.finalized == 0 {
            *bucket = Bucket {
                index,
                counts: HealthCounts::default(),
            };
        }
        bucket.counts.finalized += 1;
        bucket.counts.delivered += u32::from(outcome.delivered);
        bucket.counts.spam += u32::from(outcome.spam);
        window.verdict.set(None);
    }

    fn buckets(&self) -> &[Bucket] {
        self.window.as_ref().map_or(&[], |w| &w.buckets)
    }

    /// The outcomes inside the window at `now_secs`.
    pub(crate) fn counts(&self, now_secs: u32, config: &HealthConfig) -> HealthCounts {
        let current = config.bucket_of(now_secs);
        let span = u32::from(config.buckets.max(1));
        let mut total = HealthCounts::default();
        for b in self.buckets() {
            if b.index <= current && current - b.index < span {
                total.finalized += b.counts.finalized;
                total.delivered += b.counts.delivered;
                total.spam += b.counts.spam;
            }
        }
        total
    }

    /// The non-empty slices as `(slice index, finalized, delivered, spam)` (snapshots).
    pub(crate) fn slices(&self) -> Vec<HealthSlice> {
        self.buckets()
            .iter()
            .filter(|b| b.counts.finalized > 0)
            .map(|b| {
                (
                    b.index,
                    b.counts.finalized,
                    b.counts.delivered,
                    b.counts.spam,
                )
            })
            .collect()
    }

    /// A health record holding `slices` (as [`Health::slices`] gave them).
    pub(crate) fn from_slices(slices: &[HealthSlice], config: &HealthConfig) -> Health {
        let mut h = Health::default();
        if slices.is_empty() {
            return h;
        }
        let window = h.window_mut(config);
        let n = window.buckets.len();
        for &(index, finalized, delivered, spam) in slices {
            window.buckets[index as usize % n] = Bucket {
                index,
                counts: HealthCounts {
                    finalized,
                    delivered,
                    spam,
                },
            };
        }
        h
    }

    /// Whether the sender is unhealthy at `now_secs`.
    #[inline]
    pub(crate) fn is_unhealthy(&self, now_secs: u32, config: &HealthConfig) -> bool {
        let Some(window) = &self.window else {
            return false;
        };
        let current = config.bucket_of(now_secs);
        if let Some((at, verdict)) = window.verdict.get() {
            if at == current {
                return verdict;
            }
        }
        let verdict = self.counts(now_secs, config).is_unhealthy(config);
        window.verdict.set(Some((current, verdict)));
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELIVERED: DeliveryOutcome = DeliveryOutcome {
        delivered: true,
        spam: false,
    };
    const FAILED: DeliveryOutcome = DeliveryOutcome {
        delivered: false,
        spam: false,
    };
    const SPAM: DeliveryOutcome = DeliveryOutcome {
        delivered: false,
        spam: true,
    };

    fn config() -> HealthConfig {
        HealthConfig {
            window_secs: 100,
            buckets: 10,
            min_samples: 4,
            ..HealthConfig::default()
        }
    }

    #[test]
    fn too_few_samples_is_healthy() {
        let cfg = config();
        let mut h = Health::default();
        for _ in 0..3 {
            h.record(FAILED, 1000, &cfg);
        }
        assert!(!h.is_unhealthy(1000, &cfg));
        h.record(FAILED, 1000, &cfg);
        assert!(h.is_unhealthy(1000, &cfg));
    }

    #[test]
    fn success_ratio_threshold_is_strict() {
        let cfg = config();
        let mut h = Health::default();
        // 1 of 4 delivered: success 0.25, not below 0.25.
        h.record(DELIVERED, 1000, &cfg);
        for _ in 0..3 {
            h.record(FAILED, 1000, &cfg);
        }
        assert!(!h.is_unhealthy(1000, &cfg));
        h.record(FAILED, 1000, &cfg); // 1/5 = 0.2
        assert!(h.is_unhealthy(1000, &cfg));
    }

    #[test]
    fn spam_ratio_threshold_is_strict() {
        let cfg = config();
        let mut h = Health::default();
        // 3 of 4 spam (0.75, not above), but delivered 1 of 4: success 0.25 also not below.
        for _ in 0..3 {
            h.record(SPAM, 1000, &cfg);
        }
        h.record(DELIVERED, 1000, &cfg);
        assert!(!h.is_unhealthy(1000, &cfg));
        // 4 spam of 5 = 0.8 > 0.75 (success 0.2 too, so add successes to isolate spam).
        let mut h = Health::default();
        for _ in 0..4 {
            h.record(
                DeliveryOutcome {
                    delivered: true,
                    spam: true,
                },
                1000,
                &cfg,
            );
        }
        h.record(DELIVERED, 1000, &cfg);
        assert_eq!(h.counts(1000, &cfg).spam_ratio(), 0.8);
        assert!(h.is_unhealthy(1000, &cfg));
    }

    #[test]
    fn outcomes_leave_the_window() {
        let cfg = config(); // 10 slices of 10 s
        let mut h = Health::default();
        for _ in 0..4 {
            h.record(FAILED, 1005, &cfg); // slice 100
        }
        assert!(h.is_unhealthy(1005, &cfg));
        assert!(h.is_unhealthy(1099, &cfg)); // slice 109: still inside
        assert_eq!(h.counts(1099, &cfg).finalized, 4);
        assert!(!h.is_unhealthy(1100, &cfg)); // slice 110: gone
        assert_eq!(h.counts(1100, &cfg).finalized, 0);
    }

    #[test]
    fn reused_slice_is_reset() {
        let cfg = config();
        let mut h = Health::default();
        h.record(FAILED, 1000, &cfg); // slice 100, ring position 0
        h.record(DELIVERED, 1100, &cfg); // slice 110, same ring position
        let c = h.counts(1100, &cfg);
        assert_eq!((c.finalized, c.delivered), (1, 1));
    }
}
