//! Compliance: whether a message may go at all. A profile can be switched
//! off, limited to destinations, and its recipients can opt out by texting
//! a keyword to any of its numbers (the whole profile stops sending to
//! them) and back in.
//!
//! The checks run before anything is selected, in this order: the profile
//! is enabled, the recipient's region is allowed, the recipient has not
//! opted out. A refused message changes nothing.

use std::fmt;

use crate::destinations::{is_known_region, RegionCode};
use crate::number::PhoneNumber;

/// Where a profile may send: anywhere, or to the listed regions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Destinations {
    /// `["*"]`.
    #[default]
    Anywhere,
    /// ISO 3166-1 alpha-2 codes, sorted.
    Only(Vec<RegionCode>),
}

/// Why a `whitelisted_destinations` list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("whitelisted_destinations[{index}]: {value:?} is not an ISO 3166-1 alpha-2 region code or \"*\"")]
pub struct DestinationsError {
    /// The position of the entry at fault.
    pub index: usize,
    /// The entry.
    pub value: String,
}

impl Destinations {
    /// The destinations a `whitelisted_destinations` list names: `"*"`
    /// anywhere in it means anywhere; every other entry must be a region
    /// code numbers can have (or an ISO code without numbers of its own).
    pub fn parse(list: &[String]) -> Result<Destinations, DestinationsError> {
        let mut regions = Vec::with_capacity(list.len());
        let mut anywhere = false;
        for (index, value) in list.iter().enumerate() {
            if value == "*" {
                anywhere = true;
            } else if is_known_region(value) {
                let b = value.as_bytes();
                regions.push(RegionCode::new([b[0], b[1]]));
            } else {
                return Err(DestinationsError {
                    index,
                    value: value.clone(),
                });
            }
        }
        if anywhere {
            return Ok(Destinations::Anywhere);
        }
        regions.sort_unstable();
        regions.dedup();
        Ok(Destinations::Only(regions))
    }

    /// [`Destinations::parse`] for a list read back from disk: an entry
    /// this build does not know is left out rather than stop start-up.
    pub fn recovered(list: &[String]) -> Destinations {
        let known: Vec<String> = list
            .iter()
            .filter(|v| *v == "*" || is_known_region(v))
            .cloned()
            .collect();
        Destinations::parse(&known).unwrap_or(Destinations::Only(Vec::new()))
    }

    /// Whether a message to `to` may go: `Err` with the recipient's region
    /// (`None` when it has none) when it may not.
    #[inline]
    pub fn check(&self, to: PhoneNumber) -> Result<(), Option<RegionCode>> {
        match self {
            Destinations::Anywhere => Ok(()),
            Destinations::Only(allowed) => {
                let region = to.region_code();
                match region {
                    Some(r) if allowed.binary_search(&r).is_ok() => Ok(()),
                    _ => Err(region),
                }
            }
        }
    }
}

/// A keyword that opts a recipient out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptOutKeyword {
    /// `STOP`.
    Stop,
    /// `STOPALL`.
    StopAll,
    /// `UNSUBSCRIBE`.
    Unsubscribe,
    /// `CANCEL`.
    Cancel,
    /// `END`.
    End,
    /// `QUIT`.
    Quit,
}

const KEYWORDS: [(OptOutKeyword, &str); 6] = [
    (OptOutKeyword::Stop, "STOP"),
    (OptOutKeyword::StopAll, "STOPALL"),
    (OptOutKeyword::Unsubscribe, "UNSUBSCRIBE"),
    (OptOutKeyword::Cancel, "CANCEL"),
    (OptOutKeyword::End, "END"),
    (OptOutKeyword::Quit, "QUIT"),
];

impl OptOutKeyword {
    /// The keyword as texted, upper case.
    pub fn as_str(self) -> &'static str {
        KEYWORDS[self as usize].1
    }

    /// The keyword's code in the journal (1 to 6).
    pub(crate) fn code(self) -> u8 {
        self as u8 + 1
    }

    /// The keyword of a journal code.
    pub(crate) fn from_code(code: u8) -> Option<OptOutKeyword> {
        KEYWORDS.get(usize::from(code).checked_sub(1)?).map(|k| k.0)
    }
}

impl fmt::Display for OptOutKeyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an inbound text asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundKeyword {
    /// Opt out (`STOP`, ...).
    OptOut(OptOutKeyword),
    /// Opt back in (`START`, `UNSTOP`).
    OptIn,
}

impl InboundKeyword {
    /// The keyword an inbound text is, if it is one: the whole text,
    /// trimmed, compared without regard to case. A keyword inside a longer
    /// text is not one.
    pub fn parse(text: &str) -> Option<InboundKeyword> {
        let word = text.trim();
        if ["START", "UNSTOP"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(word))
        {
            return Some(InboundKeyword::OptIn);
        }
        KEYWORDS
            .iter()
            .find(|(_, k)| k.eq_ignore_ascii_case(word))
            .map(|(kw, _)| InboundKeyword::OptOut(*kw))
    }
}

/// One recipient's opt-out: how (the keyword texted, or `None` when set
/// through the API), through which of the profile's numbers, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptOut {
    /// The keyword texted; `None` when set through the API.
    pub keyword: Option<OptOutKeyword>,
    /// The pool number texted; `None` when set through the API.
    pub via: Option<PhoneNumber>,
    /// When (seconds since the Unix epoch).
    pub at: u32,
}

type FastMap<K, V> = hashbrown::HashMap<K, V, foldhash::fast::RandomState>;

/// A profile's opted-out recipients: a hash map from the recipient to its
/// opt-out packed in one word (`at` in the high 32 bits, then the number
/// of the `via` sender among `vias` plus one, then the keyword's code), so
/// an entry is two words; empty (and unallocated) for most profiles.
#[derive(Debug, Clone, Default)]
pub struct OptOuts {
    by_recipient: FastMap<u64, u64>,
    /// The pool numbers opt-outs came through (a profile has few).
    vias: Vec<PhoneNumber>,
}

impl OptOuts {
    fn pack(&mut self, o: OptOut) -> u64 {
        let via = match o.via {
            None => 0,
            Some(n) => match self.vias.iter().position(|v| *v == n) {
                Some(i) => i + 1,
                None => {
                    self.vias.push(n);
                    self.vias.len()
                }
            },
        };
        u64::from(o.at) << 32 | (via as u64 & 0x1fff_ffff) << 3 | u64::from(o.keyword.map_or(0, OptOutKeyword::code))
    }

    fn unpack(&self, meta: u64) -> OptOut {
        let via = ((meta >> 3) & 0x1fff_ffff) as usize;
        OptOut {
            keyword: OptOutKeyword::from_code((meta & 7) as u8),
            via: via.checked_sub(1).and_then(|i| self.vias.get(i).copied()),
            at: (meta >> 32) as u32,
        }
    }

    /// Whether `to` has opted out.
    #[inline]
    pub fn contains(&self, to: PhoneNumber) -> bool {
        !self.by_recipient.is_empty() && self.by_recipient.contains_key(&to.as_u64())
    }

    /// The opt-out of `to`, if any.
    pub fn get(&self, to: PhoneNumber) -> Option<OptOut> {
        self.by_recipient.get(&to.as_u64()).map(|&m| self.unpack(m))
    }

    /// Records that `to` opted out (replacing an earlier opt-out).
    pub fn insert(&mut self, to: PhoneNumber, opt_out: OptOut) {
        let meta = self.pack(opt_out);
        self.by_recipient.insert(to.as_u64(), meta);
    }

    /// `to` opts back in; returns its opt-out, if it had one.
    pub fn remove(&mut self, to: PhoneNumber) -> Option<OptOut> {
        let meta = self.by_recipient.remove(&to.as_u64())?;
        Some(self.unpack(meta))
    }

    /// Opted-out recipients.
    pub fn len(&self) -> usize {
        self.by_recipient.len()
    }

    /// `limit` opt-outs from `offset`, in recipient order. Costs a pass
    /// over every opt-out of the profile (no index is kept in order).
    pub fn page(&self, offset: usize, limit: usize) -> Vec<(PhoneNumber, OptOut)> {
        let mut keys: Vec<u64> = self.by_recipient.keys().copied().collect();
        if offset >= keys.len() || limit == 0 {
            return Vec::new();
        }
        // keys[offset..] become the entries from rank `offset` on, and
        // their first `limit` the page.
        if offset > 0 {
            keys.select_nth_unstable(offset);
        }
        let rest = &mut keys[offset..];
        let end = limit.min(rest.len());
        if end < rest.len() {
            rest.select_nth_unstable(end);
        }
        let page = &mut rest[..end];
        page.sort_unstable();
        page.iter()
            .filter_map(|&k| Some((PhoneNumber::from_u64(k)?, self.get(PhoneNumber::from_u64(k)?)?)))
            .collect()
    }

    /// Every opt-out, unordered (snapshots).
    pub fn all(&self) -> impl Iterator<Item = (PhoneNumber, OptOut)> + '_ {
        self.by_recipient
            .iter()
            .filter_map(|(&to, &meta)| Some((PhoneNumber::from_u64(to)?, self.unpack(meta))))
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.by_recipient.allocation_size() + self.vias.capacity() * std::mem::size_of::<PhoneNumber>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> PhoneNumber {
        PhoneNumber::parse_e164(s).unwrap()
    }

    #[test]
    fn keywords_are_whole_texts_trimmed_in_any_case() {
        use InboundKeyword::*;
        for (text, want) in [
            ("STOP", Some(OptOut(OptOutKeyword::Stop))),
            ("  stop\n", Some(OptOut(OptOutKeyword::Stop))),
            ("StopAll", Some(OptOut(OptOutKeyword::StopAll))),
            ("unsubscribe", Some(OptOut(OptOutKeyword::Unsubscribe))),
            ("Cancel", Some(OptOut(OptOutKeyword::Cancel))),
            ("end", Some(OptOut(OptOutKeyword::End))),
            ("QUIT ", Some(OptOut(OptOutKeyword::Quit))),
            ("start", Some(OptIn)),
            ("UNSTOP", Some(OptIn)),
            ("please stop", None),
            ("STOP!", None),
            ("", None),
            ("stopp", None),
        ] {
            assert_eq!(InboundKeyword::parse(text), want, "{text:?}");
        }
    }

    #[test]
    fn opt_outs_keep_how_and_when() {
        let mut set = OptOuts::default();
        let via = n("+13125550001");
        let o = OptOut {
            keyword: Some(OptOutKeyword::Quit),
            via: Some(via),
            at: 1_800_000_000,
        };
        set.insert(n("+14155550100"), o);
        let api = OptOut { keyword: None, via: None, at: 7 };
        set.insert(n("+14155550101"), api);
        assert_eq!(set.get(n("+14155550100")), Some(o));
        assert_eq!(set.get(n("+14155550101")), Some(api));
        assert!(set.contains(n("+14155550100")) && !set.contains(n("+14155550102")));
        let page: Vec<_> = set.page(0, 10).into_iter().map(|(to, _)| to).collect();
        assert_eq!(page, [n("+14155550100"), n("+14155550101")]);
        assert_eq!(set.remove(n("+14155550100")), Some(o));
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn pages_are_in_recipient_order() {
        let mut set = OptOuts::default();
        for i in (0..100u64).rev() {
            let to = PhoneNumber::from_u64(14_155_550_000 + i * 7 % 100).unwrap();
            set.insert(to, OptOut { keyword: None, via: None, at: i as u32 });
        }
        let all: Vec<u64> = (0..100).flat_map(|p| set.page(p * 7, 7)).map(|(to, _)| to.as_u64()).take(100).collect();
        let want: Vec<u64> = (0..100).map(|i| 14_155_550_000 + i).collect();
        assert_eq!(all, want);
        assert!(set.page(100, 5).is_empty());
    }

    #[test]
    fn destinations_by_region_of_the_recipient() {
        let only = |l: &[&str]| Destinations::parse(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let us = only(&["US"]).unwrap();
        assert!(us.check(n("+14155550100")).is_ok());
        // Canada and Puerto Rico share +1 and are not US.
        assert_eq!(us.check(n("+14165550100")).unwrap_err().map(|r| r.to_string()), Some("CA".into()));
        assert_eq!(us.check(n("+17875550100")).unwrap_err().map(|r| r.to_string()), Some("PR".into()));
        let london = n("+442079460000");
        assert_eq!(us.check(london).unwrap_err().map(|r| r.to_string()), Some("GB".into()));
        assert!(only(&["GB", "US"]).unwrap().check(london).is_ok());
        // +44 7911 is Guernsey, which shares +44: not GB.
        assert!(only(&["GB"]).unwrap().check(n("+447911123456")).is_err());
        // A number of no region passes only "*".
        assert_eq!(only(&["GB"]).unwrap().check(n("+447700900123")), Err(None));
        assert!(only(&["*"]).unwrap().check(n("+447700900123")).is_ok());
        assert!(only(&[]).unwrap().check(n("+14155550100")).is_err(), "[] allows nothing");
        assert_eq!(only(&["US", "ZZ"]).unwrap_err().index, 1);
        assert_eq!(only(&["us"]).unwrap_err().index, 0);
    }
}
