//! Humane durations (`8d`, `12h`, `90s`, `500ms`, `1h30m`): what the
//! command line, the configuration file and the journal settings accept.

use std::time::Duration;

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing was given.
    #[error("empty duration")]
    Empty,
    /// Not digits followed by a unit.
    #[error("{0:?} is not a duration like 8d, 12h, 90s or 500ms")]
    Malformed(String),
    /// A unit other than ms, s, m, h, d, w.
    #[error("{input:?}: unknown unit {unit:?} (use ms, s, m, h, d or w)")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The unit found.
        unit: String,
    },
    /// A number too large to represent.
    #[error("{0:?}: number too large")]
    TooLarge(String),
}

/// Parses a humane duration: `8d`, `12h`, `90s`, `500ms`, `1h30m`, or plain
/// seconds (`42`).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(numpool::parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
/// assert!(numpool::parse_duration("8 days").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(DurationError::Malformed(s.to_string()));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::TooLarge(s.to_string()))?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let secs = |per: u64| {
            n.checked_mul(per)
                .map(Duration::from_secs)
                .ok_or_else(|| DurationError::TooLarge(s.to_string()))
        };
        let part = match &rest[..unit] {
            "ms" => Duration::from_millis(n),
            "s" => secs(1)?,
            "m" => secs(60)?,
            "h" => secs(3600)?,
            "d" => secs(86_400)?,
            "w" => secs(7 * 86_400)?,
            other => {
                return Err(DurationError::UnknownUnit {
                    input: s.to_string(),
                    unit: other.to_string(),
                })
            }
        };
        total = total
            .checked_add(part)
            .ok_or_else(|| DurationError::TooLarge(s.to_string()))?;
        rest = &rest[unit..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humane_durations() {
        assert_eq!(parse_duration("8d"), Ok(Duration::from_secs(8 * 86_400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("42"), Ok(Duration::from_secs(42)));
        assert_eq!(parse_duration(" "), Err(DurationError::Empty));
        assert!(matches!(
            parse_duration("8 days"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("d"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration("99999999999999999999w"),
            Err(DurationError::TooLarge(_))
        ));
        assert!(matches!(
            parse_duration("999999999999999999w"),
            Err(DurationError::TooLarge(_))
        ));
    }
}
