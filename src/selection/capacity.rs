//! Sender capacity: how fast each number may send, the virtual queue that
//! follows from it, and the daily caps of a profile.
//!
//! numpool does not send, but it sees every reservation, so it can keep
//! each sender's queue: the time its next slot is free. A message of
//! `parts` segments given to sender S at `now` is scheduled at
//! `send_at = max(now, free_S)`, and `free_S` moves to
//! `send_at + parts / rate_S`. Its wait is `send_at - now`. Times are
//! nanoseconds since the Unix epoch, so rates like 3 per second stay exact
//! to the nanosecond.
//!
//! Daily counters belong to a day of the profile's time zone; a counter of
//! an earlier day reads as zero, so nothing has to run at midnight.

use jiff::tz::TimeZone;

use crate::number::SenderKind;
use crate::resources::CapacityLimits;

/// Nanoseconds in a second.
pub(crate) const NANOS_PER_SEC: u64 = 1_000_000_000;

/// The default queue cap: 4 hours, as the hosted service queues.
pub(crate) const DEFAULT_MAX_QUEUE_SECS: f64 = 14_400.0;

/// The longest queue cap accepted: 30 days.
pub(crate) const MAX_QUEUE_SECS_LIMIT: f64 = 30.0 * 86_400.0;

/// The fastest rate accepted, messages per second.
pub(crate) const MAX_RATE: f64 = 100_000.0;

/// The slowest rate accepted: one message a day (a slower one would keep a
/// sender's queue jammed for longer than any queue cap).
pub(crate) const MIN_RATE: f64 = 1.0 / 86_400.0;

/// Messages per second of a sender kind, when the number has no rate of
/// its own: long code 1, toll-free 3, short code 100 (carrier guidance).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KindRates {
    /// Long codes.
    pub long_code: f64,
    /// Toll-free numbers.
    pub toll_free: f64,
    /// Short codes.
    pub short_code: f64,
}

impl Default for KindRates {
    fn default() -> Self {
        KindRates {
            long_code: 1.0,
            toll_free: 3.0,
            short_code: 100.0,
        }
    }
}

impl KindRates {
    /// The same rate for every kind (benchmarks use the highest, so that
    /// millions of messages a second never fill a queue).
    pub fn uniform(rate: f64) -> KindRates {
        KindRates {
            long_code: rate,
            toll_free: rate,
            short_code: rate,
        }
    }

    /// The rate of `kind`.
    pub fn of(&self, kind: SenderKind) -> f64 {
        match kind {
            SenderKind::LongCode => self.long_code,
            SenderKind::TollFree => self.toll_free,
            SenderKind::ShortCode => self.short_code,
        }
    }
}

/// Whether `rate` is a usable messages-per-second value.
pub(crate) fn valid_rate(rate: f64) -> bool {
    rate.is_finite() && (MIN_RATE..=MAX_RATE).contains(&rate)
}

/// Nanoseconds a sender of `rate` messages per second is busy with `parts`
/// (selection charges `parts` times the time of one part).
#[inline]
pub(crate) fn busy_ns(parts: u32, rate: f64) -> u64 {
    (f64::from(parts.max(1)) * NANOS_PER_SEC as f64 / rate).ceil() as u64
}

/// Daily counts are journaled in blocks: a send that starts a block writes
/// the block's end, so the journal holds a bound on every count without a
/// write per send. A count a cap depends on uses blocks of at most this
/// many sends.
pub(crate) const DAILY_BLOCK: u32 = 64;

/// The block of a count no cap depends on (a sender's; a profile's without
/// `daily_message_limit`): such counts only inform, so they are written
/// rarely (in a cluster each write is a commit to etcd), and after a crash
/// read at most this much high.
pub(crate) const INFORMING_BLOCK: u32 = 1024;

/// The block a profile's count is reserved in: at most a twentieth of its
/// `daily_message_limit`, so a crash costs it at most 5% of the day.
#[inline]
pub(crate) fn profile_block(limit: Option<u32>) -> u32 {
    limit.map_or(INFORMING_BLOCK, |l| (l / 20).clamp(1, DAILY_BLOCK))
}

/// Whether the `n`-th send of a day starts a block of `block`.
#[inline]
pub(crate) fn starts_block(n: u32, block: u32) -> bool {
    n % block == 1 % block
}

/// `n` rounded up to the end of its block of `block`.
#[inline]
pub(crate) fn reserved(n: u32, block: u32) -> u32 {
    n.div_ceil(block).saturating_mul(block)
}

/// How an engine keeps sender capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacityConfig {
    /// Keep queues and daily counters, and enforce the caps (default on).
    /// Off, every wait is 0 and no cap applies: for measuring what the
    /// bookkeeping costs.
    pub enabled: bool,
    /// Among equal candidates, pick the sender whose queue frees first
    /// (default on); off, plain round-robin.
    pub load_aware: bool,
    /// Default rates by kind.
    pub rates: KindRates,
}

impl Default for CapacityConfig {
    fn default() -> Self {
        CapacityConfig {
            enabled: true,
            load_aware: true,
            rates: KindRates::default(),
        }
    }
}

/// One sender's own rate and today's counters (its queue end is kept
/// inline in the sender: picks read it for every candidate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SenderLoad {
    /// Its own messages per second (NaN: its kind's default).
    pub rate: f64,
    /// Nanoseconds one part takes at its rate; 0 until worked out (and
    /// again after its rate changes).
    pub part_ns: u64,
    /// The day (of the profile's time zone) the counters below are of.
    pub day: i32,
    /// Messages given to it that day.
    pub messages: u32,
    /// New mappings it took that day.
    pub new_recipients: u32,
}

impl Default for SenderLoad {
    fn default() -> Self {
        SenderLoad::IDLE
    }
}

impl SenderLoad {
    /// A sender that never sent, at its kind's rate.
    pub(crate) const IDLE: SenderLoad = SenderLoad {
        rate: f64::NAN,
        part_ns: 0,
        day: 0,
        messages: 0,
        new_recipients: 0,
    };

    /// Whether it holds nothing: no own rate, no counts.
    pub(crate) fn is_idle(&self) -> bool {
        self.rate.is_nan() && self.messages == 0 && self.new_recipients == 0
    }

    /// Its own rate, if it has one.
    #[inline]
    pub(crate) fn own_rate(&self) -> Option<f64> {
        (!self.rate.is_nan()).then_some(self.rate)
    }

    /// `(messages, new recipients)` of `day`.
    #[inline]
    pub(crate) fn counts(&self, day: i32) -> (u32, u32) {
        if self.day == day {
            (self.messages, self.new_recipients)
        } else {
            (0, 0)
        }
    }

    /// Starts counting `day` from zero.
    #[inline]
    pub(crate) fn start_day(&mut self, day: i32) {
        self.day = day;
        self.messages = 0;
        self.new_recipients = 0;
    }

    /// Counts a message taken on `day` (and a new recipient, if it made a
    /// mapping).
    #[inline]
    pub(crate) fn count(&mut self, day: i32, new_recipient: bool) {
        if self.day != day {
            self.start_day(day);
        }
        self.messages = self.messages.saturating_add(1);
        self.new_recipients = self.new_recipients.saturating_add(u32::from(new_recipient));
    }
}

/// The capacity settings of one profile, ready for selection.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Limits {
    /// A message that would wait longer than this is refused (queue full).
    pub max_queue_ns: u64,
    /// Messages the profile may send per day.
    pub daily_message_limit: Option<u32>,
    /// New mappings a sender may take per day.
    pub new_recipients_per_sender: Option<u32>,
    /// Where the day starts and ends.
    pub zone: TimeZone,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_queue_ns: (DEFAULT_MAX_QUEUE_SECS * NANOS_PER_SEC as f64) as u64,
            daily_message_limit: None,
            new_recipients_per_sender: None,
            zone: TimeZone::UTC,
        }
    }
}

/// Why capacity settings were refused; each names its field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitsError {
    /// `max_queue_seconds` is not a number of seconds above 0 and at most 30 days.
    #[error(
        "max_queue_seconds must be above 0 and at most {MAX_QUEUE_SECS_LIMIT} (30 days), not {0}"
    )]
    MaxQueue(f64),
    /// `daily_message_limit` is 0.
    #[error("daily_message_limit must be a whole number above 0, or null")]
    DailyMessageLimit,
    /// `new_recipients_per_sender_per_day` is 0.
    #[error("new_recipients_per_sender_per_day must be a whole number above 0, or null")]
    NewRecipientsPerSender,
    /// `daily_reset_time_zone` is not an IANA time zone name.
    #[error("daily_reset_time_zone {0:?} is not an IANA time zone name (such as \"America/Los_Angeles\")")]
    TimeZone(String),
    /// `messages_per_second` is not a rate of at least one a day and at most 100000.
    #[error(
        "messages_per_second must be at least one a day (1/86400) and at most {MAX_RATE}, not {0}"
    )]
    Rate(f64),
}

impl LimitsError {
    /// The field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            LimitsError::MaxQueue(_) => "max_queue_seconds",
            LimitsError::DailyMessageLimit => "daily_message_limit",
            LimitsError::NewRecipientsPerSender => "new_recipients_per_sender_per_day",
            LimitsError::TimeZone(_) => "daily_reset_time_zone",
            LimitsError::Rate(_) => "messages_per_second",
        }
    }
}

/// Checks a sender's own rate.
pub(crate) fn check_rate(rate: Option<f64>) -> Result<(), LimitsError> {
    match rate {
        Some(r) if !valid_rate(r) => Err(LimitsError::Rate(r)),
        _ => Ok(()),
    }
}

impl Limits {
    /// The limits `settings` describe, or why they are invalid.
    pub(crate) fn new(settings: &CapacityLimits) -> Result<Limits, LimitsError> {
        let secs = settings.max_queue_seconds;
        if !(secs.is_finite() && secs > 0.0 && secs <= MAX_QUEUE_SECS_LIMIT) {
            return Err(LimitsError::MaxQueue(secs));
        }
        if settings.daily_message_limit == Some(0) {
            return Err(LimitsError::DailyMessageLimit);
        }
        if settings.new_recipients_per_sender_per_day == Some(0) {
            return Err(LimitsError::NewRecipientsPerSender);
        }
        let name = &settings.daily_reset_time_zone;
        // UTC needs no zone data (and no allocation): most profiles use it.
        let zone = if name == "UTC" {
            TimeZone::UTC
        } else {
            TimeZone::get(name).map_err(|_| LimitsError::TimeZone(name.clone()))?
        };
        Ok(Limits {
            max_queue_ns: (secs * NANOS_PER_SEC as f64).round() as u64,
            daily_message_limit: settings.daily_message_limit,
            new_recipients_per_sender: settings.new_recipients_per_sender_per_day,
            zone,
        })
    }

    /// [`Limits::new`] for settings read back from disk: a time zone this
    /// build no longer knows falls back to UTC rather than stop start-up.
    pub(crate) fn recovered(settings: &CapacityLimits) -> Limits {
        Limits::new(settings).unwrap_or_else(|_| {
            let utc = CapacityLimits {
                daily_reset_time_zone: "UTC".into(),
                ..settings.clone()
            };
            Limits::new(&utc).unwrap_or_default()
        })
    }
}

/// The day of a time zone an instant falls in: its number and bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Day {
    /// Days since 1970-01-01 of the local date.
    pub index: i32,
    start_ms: i64,
    end_ms: i64,
}

impl Day {
    /// The day of `zone` holding `ms` (milliseconds since the epoch): from
    /// its local midnight to the next (23 or 25 hours on a change of
    /// daylight saving time).
    pub(crate) fn at(ms: u64, zone: &TimeZone) -> Day {
        let fallback = Day {
            index: (ms / 86_400_000) as i32,
            start_ms: (ms - ms % 86_400_000) as i64,
            end_ms: (ms - ms % 86_400_000 + 86_400_000) as i64,
        };
        let day = || -> Option<Day> {
            let ts = jiff::Timestamp::from_millisecond(i64::try_from(ms).ok()?).ok()?;
            let local = ts.to_zoned(zone.clone());
            let start = local.start_of_day().ok()?;
            let end = local.tomorrow().ok()?.start_of_day().ok()?;
            let index = local
                .date()
                .since(jiff::civil::date(1970, 1, 1))
                .ok()?
                .get_days();
            Some(Day {
                index,
                start_ms: start.timestamp().as_millisecond(),
                end_ms: end.timestamp().as_millisecond(),
            })
        };
        day().unwrap_or(fallback)
    }

    /// When it starts (milliseconds since the epoch).
    pub(crate) fn start_ms(&self) -> i64 {
        self.start_ms
    }

    /// When it ends: the next day's start.
    pub(crate) fn end_ms(&self) -> i64 {
        self.end_ms
    }

    /// Whether `ms` falls in this day.
    #[inline]
    pub(crate) fn holds(&self, ms: u64) -> bool {
        let ms = ms as i64;
        self.start_ms <= ms && ms < self.end_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_over_rate_rounded_up_to_the_nanosecond() {
        assert_eq!(busy_ns(1, 3.0), 333_333_334);
        assert_eq!(busy_ns(2, 1.0), 2 * NANOS_PER_SEC);
        assert_eq!(
            busy_ns(0, 1.0),
            NANOS_PER_SEC,
            "a message takes a slot at least"
        );
        assert_eq!(busy_ns(1, 0.5), 2 * NANOS_PER_SEC);
    }

    #[test]
    fn counters_belong_to_their_day() {
        let mut load = SenderLoad::default();
        load.count(7, true);
        load.count(7, false);
        assert_eq!(load.counts(7), (2, 1));
        assert_eq!(load.counts(8), (0, 0), "a new day reads as zero");
        load.count(8, true);
        assert_eq!(load.counts(8), (1, 1));
    }

    #[test]
    fn blocks_bound_counts_from_above() {
        assert_eq!(profile_block(None), INFORMING_BLOCK);
        assert_eq!(profile_block(Some(100)), 5);
        assert_eq!(profile_block(Some(10)), 1);
        assert_eq!(profile_block(Some(1_000_000)), DAILY_BLOCK);
        let starts: Vec<u32> = (1..=12).filter(|&n| starts_block(n, 5)).collect();
        assert_eq!(starts, [1, 6, 11]);
        assert!((1..=3).all(|n| starts_block(n, 1)));
        assert_eq!((reserved(1, 5), reserved(5, 5), reserved(6, 5)), (5, 5, 10));
        assert_eq!(reserved(0, 64), 0);
    }

    #[test]
    fn bad_limits_name_their_field() {
        let ok = CapacityLimits::default();
        assert!(Limits::new(&ok).is_ok());
        for (bad, field) in [
            (
                CapacityLimits {
                    max_queue_seconds: 0.0,
                    ..ok.clone()
                },
                "max_queue_seconds",
            ),
            (
                CapacityLimits {
                    max_queue_seconds: -1.0,
                    ..ok.clone()
                },
                "max_queue_seconds",
            ),
            (
                CapacityLimits {
                    max_queue_seconds: f64::NAN,
                    ..ok.clone()
                },
                "max_queue_seconds",
            ),
            (
                CapacityLimits {
                    max_queue_seconds: 1e300,
                    ..ok.clone()
                },
                "max_queue_seconds",
            ),
            (
                CapacityLimits {
                    daily_message_limit: Some(0),
                    ..ok.clone()
                },
                "daily_message_limit",
            ),
            (
                CapacityLimits {
                    new_recipients_per_sender_per_day: Some(0),
                    ..ok.clone()
                },
                "new_recipients_per_sender_per_day",
            ),
            (
                CapacityLimits {
                    daily_reset_time_zone: "Mars/Olympus".into(),
                    ..ok.clone()
                },
                "daily_reset_time_zone",
            ),
        ] {
            assert_eq!(Limits::new(&bad).unwrap_err().field(), field);
        }
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e9] {
            assert_eq!(
                check_rate(Some(rate)).unwrap_err().field(),
                "messages_per_second"
            );
        }
        assert!(check_rate(Some(0.5)).is_ok() && check_rate(None).is_ok());
    }

    #[test]
    fn days_follow_the_zone_across_daylight_saving() {
        let la = TimeZone::get("America/Los_Angeles").unwrap();
        // 2026-03-08, when Los Angeles springs forward: a 23-hour day.
        let noon = 1_772_996_400_000; // 2026-03-08T12:00-07:00
        let day = Day::at(noon, &la);
        assert_eq!(day.end_ms - day.start_ms, 23 * 3_600_000);
        assert_eq!(day.start_ms, 1_772_956_800_000); // 00:00-08:00
        assert!(day.holds(noon) && !day.holds(day.end_ms as u64));
        let next = Day::at(day.end_ms as u64, &la);
        assert_eq!(next.index, day.index + 1);
        assert_eq!(next.end_ms - next.start_ms, 24 * 3_600_000);
        // UTC days are 24 hours and start at midnight UTC.
        let utc = Day::at(noon, &TimeZone::UTC);
        assert_eq!(utc.start_ms % 86_400_000, 0);
    }
}
