//! The time selections run at, in each unit their parts use.

/// The time selections run at, worked out once for a call (a batch's group
/// shares it) rather than per message: the divisions and products that
/// turn milliseconds into the sticky map's seconds, the queues'
/// nanoseconds and the journal's minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SelectAt {
    /// Milliseconds since the Unix epoch.
    pub ms: u64,
    /// Seconds since the Unix epoch (the largest `u32` past it).
    pub secs: u32,
    /// The first second of the minute `secs` is in.
    pub minute: u32,
    /// Nanoseconds since the Unix epoch (the largest `u64` past it).
    pub ns: u64,
}

impl SelectAt {
    pub(crate) fn new(ms: u64) -> SelectAt {
        let secs = u32::try_from(ms / 1000).unwrap_or(u32::MAX);
        SelectAt {
            ms,
            secs,
            minute: secs - secs % 60,
            ns: ms.saturating_mul(1_000_000),
        }
    }

    /// Whether a sticky hit now, on a mapping last used at `previous`
    /// (seconds), moves its last use into a later minute: the journal then
    /// records the touch (touches are journaled coarsely, once a minute).
    /// A previous use later than now was not moved by the hit.
    #[inline(always)]
    pub(crate) fn moves_minute(&self, previous: u32) -> bool {
        previous < self.minute
    }
}

#[cfg(test)]
mod tests {
    use super::SelectAt;

    /// A hit is journaled only when its mapping was last used in an
    /// earlier minute: not earlier in the same minute, and not later than
    /// now.
    #[test]
    fn a_hit_moves_its_mapping_into_a_later_minute_once() {
        // 12:34:56 into a day: the minute began 56 s ago.
        let at = SelectAt::new((1_800_000_000 / 60 * 60 + 56) * 1000 + 789);
        assert_eq!((at.secs - at.minute, at.secs % 60), (56, 56));
        assert!(!at.moves_minute(at.secs));
        assert!(!at.moves_minute(at.minute), "earlier in the same minute");
        assert!(!at.moves_minute(at.secs + 30), "later than now");
        assert!(at.moves_minute(at.minute - 1));
        assert!(at.moves_minute(at.minute - 3_600));
    }
}
