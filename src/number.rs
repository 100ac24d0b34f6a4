//! Phone numbers: E.164 parsing, a compact `u64` form, NANP area codes and
//! sender kinds.
//!
//! Parsing here is a few integer operations so it can sit on the selection
//! path; full libphonenumber-style validation is not attempted (numpool only
//! needs the shape of E.164 and the NANP area code).

use std::fmt;

/// A NANP area code (the three digits after `+1`).
pub(crate) type Npa = u16;

/// The NANP area codes of toll-free numbers.
pub(crate) const TOLL_FREE_NPAS: [Npa; 7] = [800, 833, 844, 855, 866, 877, 888];

/// Bit 63 marks a short code; bits 56..60 hold its digit count (so leading
/// zeros survive). E.164 numbers are the plain value of their digits, which
/// is unambiguous because E.164 has no leading zero.
const SHORT_CODE_FLAG: u64 = 1 << 63;
const SHORT_LEN_SHIFT: u32 = 56;
const DIGITS_MASK: u64 = (1 << SHORT_LEN_SHIFT) - 1;

/// An E.164 number (`+` then 8–15 digits, no leading zero) or a short code
/// (5–6 digits), packed in a `u64`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(u64);

/// What is wrong with a phone number string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// Nothing was given.
    #[error("phone number is empty")]
    Empty,
    /// E.164 starts with `+`.
    #[error("phone number must start with '+' (E.164)")]
    MissingPlus,
    /// Something other than a digit after the `+`.
    #[error("phone number may contain only digits after the '+'")]
    InvalidCharacter,
    /// Fewer than 8 or more than 15 digits.
    #[error("an E.164 number has 8 to 15 digits, this one has {0}")]
    InvalidLength(usize),
    /// A country calling code never starts with 0.
    #[error("an E.164 number cannot start with 0 after the '+'")]
    LeadingZero,
    /// Neither E.164 nor a 5-6 digit short code.
    #[error("a sender is an E.164 number or a 5-6 digit short code")]
    NotASender,
}

/// The kinds of sender the pool distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SenderKind {
    /// NANP geographic numbers and every non-NANP number.
    LongCode,
    /// NANP numbers in a toll-free area code.
    TollFree,
    /// 5–6 digit short codes: usable as an explicit sender, never picked by the pool.
    ShortCode,
}

impl SenderKind {
    /// The name the Telnyx API uses (`longcode`, `tollfree`, `shortcode`).
    pub fn api_name(self) -> &'static str {
        match self {
            SenderKind::LongCode => "longcode",
            SenderKind::TollFree => "tollfree",
            SenderKind::ShortCode => "shortcode",
        }
    }

    /// Parses an API name as written by [`SenderKind::api_name`].
    pub fn from_api_name(s: &str) -> Option<Self> {
        match s {
            "longcode" => Some(SenderKind::LongCode),
            "tollfree" => Some(SenderKind::TollFree),
            "shortcode" => Some(SenderKind::ShortCode),
            _ => None,
        }
    }
}

/// The value of at most 15 ASCII digits (callers check the length first).
fn digits_value(digits: &[u8]) -> u64 {
    debug_assert!(digits.len() <= 15);
    digits
        .iter()
        .fold(0u64, |v, &b| v * 10 + u64::from(b - b'0'))
}

impl PhoneNumber {
    /// Parses a number in +E.164 form: `+` then 8 to 15 digits, the first not 0.
    pub fn parse_e164(s: &str) -> Result<Self, NumberError> {
        let bytes = s.as_bytes();
        let digits = match bytes.split_first() {
            None => return Err(NumberError::Empty),
            Some((b'+', rest)) => rest,
            Some(_) => return Err(NumberError::MissingPlus),
        };
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(NumberError::InvalidCharacter);
        }
        if !(8..=15).contains(&digits.len()) {
            return Err(NumberError::InvalidLength(digits.len()));
        }
        if digits[0] == b'0' {
            return Err(NumberError::LeadingZero);
        }
        Ok(PhoneNumber(digits_value(digits)))
    }

    /// Parses a sender: an E.164 number, or a short code of 5 or 6 digits.
    pub fn parse_sender(s: &str) -> Result<Self, NumberError> {
        if s.starts_with('+') {
            return Self::parse_e164(s);
        }
        let digits = s.as_bytes();
        if digits.is_empty() {
            return Err(NumberError::Empty);
        }
        if !(5..=6).contains(&digits.len()) || !digits.iter().all(u8::is_ascii_digit) {
            return Err(NumberError::NotASender);
        }
        Ok(PhoneNumber(
            SHORT_CODE_FLAG | ((digits.len() as u64) << SHORT_LEN_SHIFT) | digits_value(digits),
        ))
    }

    /// The packed form; [`PhoneNumber::from_u64`] takes it back.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Rebuilds a number from [`PhoneNumber::as_u64`]; `None` if the value is
    /// not a packed number.
    pub fn from_u64(raw: u64) -> Option<Self> {
        if raw & SHORT_CODE_FLAG != 0 {
            let len = (raw >> SHORT_LEN_SHIFT) & 0x7f;
            let value = raw & DIGITS_MASK;
            ((5..=6).contains(&len) && value < 10u64.pow(len as u32)).then_some(PhoneNumber(raw))
        } else {
            (10_000_000..1_000_000_000_000_000)
                .contains(&raw)
                .then_some(PhoneNumber(raw))
        }
    }

    /// Whether this is a short code.
    pub const fn is_short_code(self) -> bool {
        self.0 & SHORT_CODE_FLAG != 0
    }

    /// Whether this is a NANP number (`+1` and ten digits).
    pub const fn is_nanp(self) -> bool {
        !self.is_short_code() && self.0 >= 10_000_000_000 && self.0 < 20_000_000_000
    }

    /// The NANP area code, for NANP numbers.
    pub const fn npa(self) -> Option<Npa> {
        if self.is_nanp() {
            Some(((self.0 / 10_000_000) % 1000) as Npa)
        } else {
            None
        }
    }

    /// The region (ISO 3166-1 alpha-2) the number belongs to, as
    /// libphonenumber resolves it; short codes are taken as US.
    pub(crate) fn region_code(self) -> Option<crate::geo::destinations::RegionCode> {
        if self.is_short_code() {
            return crate::geo::destinations::region_of(12_025_550_100);
        }
        crate::geo::destinations::region_of(self.0)
    }

    /// The country calling code (`1` for NANP numbers); `None` for short
    /// codes and numbers that start with no assigned code.
    pub(crate) fn calling_code(self) -> Option<u16> {
        if self.is_short_code() {
            return None;
        }
        crate::geo::destinations::calling_code(self.0)
    }

    /// The sender kind this number has in a pool.
    pub fn kind(self) -> SenderKind {
        if self.is_short_code() {
            SenderKind::ShortCode
        } else if self.npa().is_some_and(|npa| TOLL_FREE_NPAS.contains(&npa)) {
            SenderKind::TollFree
        } else {
            SenderKind::LongCode
        }
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_short_code() {
            let len = ((self.0 >> SHORT_LEN_SHIFT) & 0x7f) as usize;
            write!(f, "{:0len$}", self.0 & DIGITS_MASK, len = len)
        } else {
            write!(f, "+{}", self.0)
        }
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_round_trips() {
        for s in [
            "+13125550100",
            "+4915112345678",
            "+12345678",
            "+123456789012345",
        ] {
            let n = PhoneNumber::parse_e164(s).unwrap();
            assert_eq!(n.to_string(), s);
            assert_eq!(PhoneNumber::from_u64(n.as_u64()), Some(n));
        }
    }

    #[test]
    fn e164_rejects_bad_shapes() {
        use NumberError::*;
        let cases = [
            ("", Empty),
            ("13125550100", MissingPlus),
            ("+1312555010a", InvalidCharacter),
            ("+1 312 555 0100", InvalidCharacter),
            ("+", InvalidLength(0)),
            ("+1234567", InvalidLength(7)),
            ("+1234567890123456", InvalidLength(16)),
            ("+01234567890", LeadingZero),
            ("+99999999999999999999999", InvalidLength(23)),
        ];
        for (s, err) in cases {
            assert_eq!(PhoneNumber::parse_e164(s), Err(err), "{s:?}");
        }
    }

    #[test]
    fn nanp_area_codes_and_kinds() {
        let n = PhoneNumber::parse_e164("+13125550100").unwrap();
        assert!(n.is_nanp());
        assert_eq!(n.npa(), Some(312));
        assert_eq!(n.kind(), SenderKind::LongCode);
        for npa in TOLL_FREE_NPAS {
            let tf = PhoneNumber::parse_e164(&format!("+1{npa}5550100")).unwrap();
            assert_eq!(tf.kind(), SenderKind::TollFree, "{npa}");
        }
        let uk = PhoneNumber::parse_e164("+447700900123").unwrap();
        assert!(!uk.is_nanp());
        assert_eq!(uk.npa(), None);
        assert_eq!(uk.kind(), SenderKind::LongCode);
        // +1 with the wrong digit count is not NANP.
        let short_one = PhoneNumber::parse_e164("+1312555010").unwrap();
        assert_eq!(short_one.npa(), None);
    }

    #[test]
    fn short_codes_keep_their_digits() {
        let sc = PhoneNumber::parse_sender("012345").unwrap();
        assert!(sc.is_short_code());
        assert_eq!(sc.kind(), SenderKind::ShortCode);
        assert_eq!(sc.to_string(), "012345");
        assert_ne!(sc, PhoneNumber::parse_sender("12345").unwrap());
        assert_eq!(PhoneNumber::from_u64(sc.as_u64()), Some(sc));
        assert_eq!(
            PhoneNumber::parse_sender("1234"),
            Err(NumberError::NotASender)
        );
        assert_eq!(
            PhoneNumber::parse_sender("1234567"),
            Err(NumberError::NotASender)
        );
        assert_eq!(
            PhoneNumber::parse_sender("12a45"),
            Err(NumberError::NotASender)
        );
        assert!(PhoneNumber::parse_e164("12345").is_err());
    }

    #[test]
    fn from_u64_rejects_garbage() {
        assert_eq!(PhoneNumber::from_u64(5), None);
        assert_eq!(PhoneNumber::from_u64(SHORT_CODE_FLAG | 123), None);
    }

    #[test]
    fn very_long_digit_strings_do_not_overflow() {
        let long = format!("+{}", "9".repeat(40));
        assert_eq!(
            PhoneNumber::parse_e164(&long),
            Err(NumberError::InvalidLength(40))
        );
        assert_eq!(
            PhoneNumber::parse_sender(&"9".repeat(40)),
            Err(NumberError::NotASender)
        );
    }
}
