//! Time as the engine sees it.
//!
//! Every expiry and health window reads time through [`Clock`], so tests and
//! simulations can move time forward without sleeping. The core types never
//! call a clock themselves: they take `now` as an argument, and only the
//! runtime layer asks a clock for it.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time, in milliseconds since the Unix epoch.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The timestamp `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis)
    }

    /// The timestamp `secs` seconds after the Unix epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(secs.saturating_mul(1000))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the Unix epoch (rounded down).
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// Whole seconds since the Unix epoch as the compact `u32` the sticky map
    /// and health windows store (enough until the year 2106).
    pub fn as_secs_u32(self) -> u32 {
        u32::try_from(self.as_secs()).unwrap_or(u32::MAX)
    }

    /// This timestamp moved forward by `d`.
    pub fn after(self, d: Duration) -> Self {
        Timestamp(
            self.0
                .saturating_add(d.as_millis().min(u64::MAX as u128) as u64),
        )
    }
}

impl Timestamp {
    /// RFC 3339 in UTC with milliseconds, e.g. `2027-01-15T08:00:00.000Z`.
    pub fn to_rfc3339(self) -> String {
        self.rfc3339().to_string()
    }

    /// [`Timestamp::to_rfc3339`]'s text as a `Display`, for writing it
    /// straight into a response without a `String` of its own.
    pub(crate) fn rfc3339(self) -> Rfc3339 {
        Rfc3339(self)
    }
}

/// A timestamp shown in RFC 3339 (see [`Timestamp::to_rfc3339`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rfc3339(Timestamp);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0 .0;
        let secs = millis / 1000;
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        // Digits by hand: `write!` with seven padded fields cost about
        // 0.2 µs a timestamp, three of them in every send's answer.
        let mut text = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut value: u64| {
            for i in (at..at + width).rev() {
                text[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        // Four digits of year until 9999; `write!` after that.
        let (hour, minute, second, milli) = (rem / 3600, rem % 3600 / 60, rem % 60, millis % 1000);
        if year > 9999 {
            return write!(
                f,
                "{year}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z"
            );
        }
        put(0, 4, year as u64);
        put(5, 2, month as u64);
        put(8, 2, day as u64);
        put(11, 2, hour);
        put(14, 2, minute);
        put(17, 2, second);
        put(20, 3, milli);
        f.write_str(std::str::from_utf8(&text).expect("ASCII digits"))
    }
}

/// Whole seconds since the epoch of `text` in the form [`Rfc3339`] writes,
/// `YYYY-MM-DDTHH:MM:SS` then a fraction of one to nine digits or none,
/// then `Z`, from 1970 to 9998 (jiff's timestamps end late in 9999): read by hand, without a parser (an
/// import of an export reads two a line). `None` for anything else, which
/// a general parser then reads: other forms, offsets, leap seconds, dates
/// that do not exist.
pub(crate) fn utc_seconds(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[b.len() - 1] != b'Z' {
        return None;
    }
    let digit = |i: usize| {
        let d = b[i].wrapping_sub(b'0');
        (d < 10).then_some(u64::from(d))
    };
    let two = |i: usize| Some(digit(i)? * 10 + digit(i + 1)?);
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let fraction = &b[19..b.len() - 1];
    if !fraction.is_empty()
        && (fraction[0] != b'.'
            || !(2..=10).contains(&fraction.len())
            || !fraction[1..].iter().all(u8::is_ascii_digit))
    {
        return None;
    }
    let year = two(0)? * 100 + two(2)?;
    let (month, day) = (two(5)?, two(8)?);
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if !(1970..=9998).contains(&year)
        || day == 0
        || day > month_days
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    // Days since 1970-01-01 from the civil date (the inverse of the
    // algorithm in `Rfc3339`'s `fmt`), with years starting in March.
    let y = year - u64::from(month <= 2);
    let (era, yoe) = (y / 400, y % 400);
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// The current time as precisely as this clock can tell it, for
    /// comparing with times another clock stamped (an import's rows may
    /// not be sent after now): a coarse [`Clock::now`] may be a tick behind
    /// them.
    fn precise_now(&self) -> Timestamp {
        self.now()
    }
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Timestamp(since.as_millis() as u64)
    }
}

/// The wall clock as of the kernel's last timer tick: what
/// [`Engine::start`](crate::Engine::start) reads. On Linux it is
/// `CLOCK_REALTIME_COARSE`, at most one tick (1 to 10 ms, by the kernel's
/// configuration; 4 ms here) behind [`SystemClock`], never ahead of it, and a fifth
/// of its cost (about 5 ns a read against 25 to 35 ns here): one send
/// from an embedder reads the clock once, and the precise read was 6% of
/// it. Every window numpool keeps is seconds to days long. Elsewhere it
/// is [`SystemClock`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CoarseClock;

impl Clock for CoarseClock {
    #[cfg(target_os = "linux")]
    fn now(&self) -> Timestamp {
        // SAFETY: a timespec is plain integers (padding too, on some
        // targets), for which all zeroes is a valid value; the call writes
        // only into `at`. It cannot fail for a clock the kernel has had
        // since 2.6.32; if it did, the precise clock answers instead.
        let mut at: libc::timespec = unsafe { std::mem::zeroed() };
        let read = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut at) };
        match (read, u64::try_from(at.tv_sec), u64::try_from(at.tv_nsec)) {
            (0, Ok(secs), Ok(nanos)) => {
                Timestamp(secs.saturating_mul(1000).saturating_add(nanos / 1_000_000))
            }
            _ => SystemClock.now(),
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn now(&self) -> Timestamp {
        SystemClock.now()
    }

    fn precise_now(&self) -> Timestamp {
        SystemClock.now()
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }

    fn precise_now(&self) -> Timestamp {
        (**self).precise_now()
    }
}

/// A clock that only moves when told to: for tests, benches and simulations.
///
/// Share it with `Arc<ManualClock>`; every holder sees the same time.
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug, Default)]
pub struct ManualClock {
    millis: std::sync::atomic::AtomicU64,
}

#[cfg(any(test, feature = "test-util"))]
impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            millis: std::sync::atomic::AtomicU64::new(start.as_millis()),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.millis
            .fetch_add(d.as_millis() as u64, std::sync::atomic::Ordering::SeqCst);
    }

    /// Sets the clock to `t` (which may be earlier than now).
    pub fn set(&self, t: Timestamp) {
        self.millis
            .store(t.as_millis(), std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.millis.load(std::sync::atomic::Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp::from_secs(100));
        assert_eq!(clock.now(), Timestamp::from_secs(100));
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now().as_millis(), 101_500);
        assert_eq!(clock.now().as_secs(), 101);
        clock.set(Timestamp::from_secs(5));
        assert_eq!(clock.now().as_secs(), 5);
    }

    #[test]
    fn rfc3339_formatting() {
        assert_eq!(
            Timestamp::from_millis(0).to_rfc3339(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_millis(951_782_400_123).to_rfc3339(),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(
            Timestamp::from_secs(1_800_000_000).to_rfc3339(),
            "2027-01-15T08:00:00.000Z"
        );
        // Past four digits of year, written out in full.
        assert_eq!(
            Timestamp::from_secs(253_402_300_800).to_rfc3339(),
            "10000-01-01T00:00:00.000Z"
        );
    }

    /// The hand reading against jiff's: instants `Rfc3339` writes (spread
    /// from 1970 to 9998), with fractions of one, three and nine digits
    /// and none; then texts one character away from such an instant (a
    /// digit changed, a separator or the fraction broken), which it must
    /// read as jiff does or leave to jiff.
    #[test]
    fn utc_seconds_agrees_with_jiff() {
        let jiff_seconds = |text: &str| text.parse::<jiff::Timestamp>().ok().map(|t| t.as_second());
        let last = 253_370_764_799_999u64; // 9998-12-31T23:59:59.999Z
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut millis = vec![0, 999, 951_782_400_123, 951_868_800_000, last];
        millis.extend((0..20_000).map(|_| next() % (last + 1)));
        let mut read = 0;
        for ms in millis {
            let text = Timestamp::from_millis(ms).to_rfc3339();
            assert_eq!(utc_seconds(&text), Some(ms / 1000), "{text}");
            let whole = &text[..19];
            for fraction in ["", ".1", ".123456789", ".5"] {
                let text = format!("{whole}{fraction}Z");
                assert_eq!(utc_seconds(&text), Some(ms / 1000), "{text}");
            }
            let pieces = b"0123456789-:TZ.+ z";
            for _ in 0..8 {
                let mut bytes = text.clone().into_bytes();
                let at = next() as usize % bytes.len();
                bytes[at] = pieces[next() as usize % pieces.len()];
                let Ok(text) = String::from_utf8(bytes) else {
                    continue;
                };
                // What it does not read is left to jiff, whatever jiff
                // makes of it.
                if let Some(secs) = utc_seconds(&text) {
                    read += 1;
                    assert_eq!(Some(secs as i64), jiff_seconds(&text), "{text}");
                }
            }
        }
        assert!(read > 40_000, "{read}");
        for text in [
            "2023-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+00:00",
            "9999-01-01T00:00:00Z",
        ] {
            assert_eq!(utc_seconds(text), None, "{text}");
        }
        assert_eq!(utc_seconds("2024-02-29T12:00:00Z"), Some(1_709_208_000));
    }

    /// The digits written by hand, against jiff's formatting of the same
    /// instants: from 1970 to 9999-12-30T22:00Z (as far as jiff goes),
    /// spread; then the last instants of the four-digit path and the
    /// largest timestamp, by hand.
    #[test]
    fn rfc3339_agrees_with_jiff() {
        let last = 253_402_207_200_000u64;
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut millis = vec![0, 1, 999, 86_399_999, 951_782_400_123, last];
        millis.extend((0..20_000).map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % (last + 1)
        }));
        for ms in millis {
            let expected = jiff::Timestamp::from_millisecond(ms as i64)
                .unwrap()
                .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            assert_eq!(Timestamp::from_millis(ms).to_rfc3339(), expected, "{ms}");
        }
        assert_eq!(
            Timestamp::from_millis(253_402_300_799_999).to_rfc3339(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(
            Timestamp::from_millis(u64::MAX).to_rfc3339(),
            "584556019-04-03T14:25:51.615Z"
        );
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now().as_secs() > 1_577_836_800);
    }

    #[test]
    fn the_coarse_clock_is_the_wall_clock_at_most_a_tick_behind() {
        for _ in 0..1000 {
            let before = SystemClock.now();
            let coarse = CoarseClock.now();
            let after = SystemClock.now();
            assert!(coarse <= after, "{coarse:?} ahead of {after:?}");
            // A tick is at most 10 ms (HZ=100); the margin is for a thread
            // descheduled between the reads.
            assert!(
                coarse.as_millis() + 50 >= before.as_millis(),
                "{coarse:?} far behind {before:?}"
            );
        }
    }
}
