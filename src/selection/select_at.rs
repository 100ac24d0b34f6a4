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
}
